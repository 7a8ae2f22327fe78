"""The baseline: a bare Litestar app with one JSON handler answering the 206-byte document.

What any Litestar-based hub is measured against: server, framework and JSON encoding, no
proxying. Served by the harness as

    uvicorn --app-dir bench bare_litestar:app --loop uvloop --http httptools --no-access-log
    granian --interface asgi --working-dir bench bare_litestar:app
"""

from __future__ import annotations

from typing import Any

from _util import PAYLOAD
from litestar import Litestar, get

__all__ = ["app"]


@get("/bench/json", sync_to_thread=False)
def document() -> dict[str, Any]:
    """The same document, byte for byte, as the upstream answers."""
    return PAYLOAD


app = Litestar(route_handlers=[document], openapi_config=None)
