"""The I/O shell of fleet: the Litestar app, the CLI, Redis state, sockets and workers."""

__version__ = "0.1.0"
