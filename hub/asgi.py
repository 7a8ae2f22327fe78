"""The ASGI entry point: the hub's own endpoints go to Litestar, everything else to the gateway.

The split happens on the first path segment, before any framework work, so proxied requests
pay nothing for Litestar; the reserved prefixes can never be claimed by a configured route
(configuration validation refuses it).
"""

from __future__ import annotations

import weakref
from typing import Any

from litestar import Litestar

from hub.app import build_litestar
from hub.gateway import Gateway
from hub.ops.logging import configure_logging
from hub.ops.metrics import Metrics
from hub.problems import REQUEST_ID_STATE_KEY
from hub.proxy.headers import request_id_from
from hub.runtime import Runtime
from hub.settings import Settings

__all__ = ["RESERVED_SEGMENTS", "HubApp", "create_app", "drain_all", "is_reserved"]

RESERVED_SEGMENTS = frozenset(
    {"admin", "healthz", "readyz", "metrics", "schema", ".well-known", "oauth2", "account"}
)

# The hub's own endpoints under /api: the catalog, the person's data-access view, webhooks,
# providers' callbacks.
_OWN_API = frozenset({"/api/catalog", "/api/me/v1/data-access"})
_OWN_PREFIXES = (
    "/api/catalog/",
    "/api/me/v1/data-access/",
    "/api/webhooks/v1/",
    "/api/signatures/v1/",  # employment contracts (issue 7): hub-signed signatures
    "/api/callbacks/v1/",  # notification providers' receipts (hub.callbacks)
)


def is_reserved(path: str) -> bool:
    """Whether a path belongs to the hub's own endpoints."""
    first = path[1:].partition("/")[0]
    if first in RESERVED_SEGMENTS:
        return True
    return first == "api" and (path in _OWN_API or path.startswith(_OWN_PREFIXES))


class HubApp:
    """The outer ASGI app of one hub process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings, Metrics(pools=self._pools))
        self.gateway = Gateway(self.runtime, settings)
        self.litestar: Litestar = build_litestar(self.runtime)

    def _pools(self) -> Any:
        snapshot = self.runtime.snapshot
        return snapshot.pools if snapshot else {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if not is_reserved(scope["path"]):
                await self.gateway(scope, receive, send)
                return
            await self._own(scope, receive, send)
            return
        await self.litestar(scope, receive, send)  # type: ignore[arg-type]

    async def _own(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})[REQUEST_ID_STATE_KEY] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.litestar(scope, receive, send_with_id)  # type: ignore[arg-type]


# The apps of this process, so a signal handler can mark them all as draining.
_APPS: weakref.WeakSet[HubApp] = weakref.WeakSet()


def drain_all() -> None:
    """Start draining every hub app of this process: new requests get 503, readiness fails."""
    for app in _APPS:
        app.runtime.draining = True


def create_app(settings: Settings | None = None) -> HubApp:
    """Build the hub from settings (from ``HUB_*`` variables when not given)."""
    settings = settings or Settings.from_env()
    configure_logging(level=settings.log_level, json=settings.log_json)
    app = HubApp(settings)
    _APPS.add(app)
    return app
