"""rtoc.frontends: websocket, telegram, viewer and archive processes (later issues)."""
