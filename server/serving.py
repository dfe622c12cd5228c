"""How the app is served: one uvicorn configuration, used by the CLI and by the tests."""

from __future__ import annotations

import uvicorn
from litestar import Litestar


def build_server(app: Litestar, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``app``: the sans-I/O websockets protocol, a 5 s graceful stop."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)
