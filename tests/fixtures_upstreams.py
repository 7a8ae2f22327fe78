"""Shared upstream fixtures: a blue and a green echo server, and the document routing to blue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.upstreams import UpstreamServer

__all__ = ["blue_document", "upstreams"]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    """Two upstreams, blue and green, for a module's configuration edits."""
    blue, green = UpstreamServer("blue").start(), UpstreamServer("green").start()
    try:
        yield blue, green
    finally:
        blue.close()
        green.close()


def blue_document(blue: UpstreamServer) -> dict[str, Any]:
    """Version 1, seeded from the policies folder: /svc/ goes to the blue upstream as is."""
    return {
        "upstreams": [{"id": "blue", "targets": [{"url": blue.url}]}],
        "routes": [{"id": "svc", "prefix": "/svc/", "upstream": "blue"}],
        "products": [],
    }
