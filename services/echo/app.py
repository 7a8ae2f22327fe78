"""The echo service: a demo upstream that describes the request it received, as JSON."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Litestar, Request, get, route
from litestar.enums import HttpMethod

__all__ = ["create_app"]

_METHODS = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
    HttpMethod.OPTIONS,
]


def create_app(instance: str = "echo") -> Litestar:
    """An echo app whose answers name ``instance``, so load balancing is visible."""

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "instance": instance}

    async def describe(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body = await request.body()
        return {
            "instance": instance,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[k, v] for k, v in request.headers.items() if k != "authorization"],
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    @route("/", http_method=_METHODS, status_code=200)
    async def root(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return await describe(request)

    @route("/{path:path}", http_method=_METHODS, status_code=200)
    async def anything(request: Request[Any, Any, Any], path: str) -> dict[str, Any]:
        del path
        return await describe(request)

    return Litestar(route_handlers=[healthz, root, anything], openapi_config=None)
