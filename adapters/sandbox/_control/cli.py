"""The command-line flags every faulted sandbox takes, and how it is served.

Each sandbox's own ``__main__`` adds its flags to :func:`arguments` and hands the app to
:func:`serve`; the flags themselves are part of what the README and the tests use.
"""

from __future__ import annotations

import argparse

import uvicorn
from litestar import Litestar

__all__ = ["arguments", "serve"]


def arguments(
    description: str,
    *,
    default_port: int | None = None,
    api_key_help: str = "the bearer key clients must send (none: open)",
) -> argparse.ArgumentParser:
    """A parser with ``--host``, ``--port`` (required without a default) and ``--api-key``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    if default_port is None:
        parser.add_argument("--port", type=int, required=True)
    else:
        parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--api-key", help=api_key_help)
    return parser


def serve(app: Litestar, args: argparse.Namespace) -> None:
    """Serve ``app`` on ``--host`` and ``--port`` until interrupted."""
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=1,  # a hang fault must not hold the process at stop
    )
