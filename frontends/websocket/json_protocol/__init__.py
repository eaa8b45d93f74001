"""RTOC's JSON protocol on the websocket: the protocol core and its commands, the guard that
refuses hostile JSON before parsing, the batch road (frame reader, batch connection, fast
push), and the JSON fan-out."""
