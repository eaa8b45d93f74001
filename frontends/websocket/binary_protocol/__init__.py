"""The binary subprotocol ``rtoc.bin.v1``: the protocol core, its fan-out of data frames,
and its asyncio shell. Frames and AES-GCM are rtoc.client's, shared with the client."""
