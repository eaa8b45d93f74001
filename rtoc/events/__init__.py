"""rtoc.events: the condition language, event rules and actions, their store, the event
list, and the automation API. Base code: no numba, zmq or I/O at import time (the engine's
kernels that run these rules live in rtoc.pipeline)."""
