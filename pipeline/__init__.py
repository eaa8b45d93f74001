"""rtoc.pipeline: shared-memory rings, numba kernels, the ZeroMQ bus, the engine and the
driver host. Everything here may use numpy, numba and zmq; nothing here knows a frontend."""
