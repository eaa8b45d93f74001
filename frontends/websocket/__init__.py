"""rtoc.frontends.websocket: the websocket frontend (protocol, auth, encryption)."""
