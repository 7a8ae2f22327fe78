"""The admin API's guard: a bearer admin token, compared by digest in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from hub.errors import Unauthorized

if TYPE_CHECKING:
    from hub.runtime import Runtime

__all__ = ["admin_guard"]


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Bearer admin token until identity lands: compared by digest, in constant time."""
    runtime: Runtime = connection.app.state.runtime
    expected = runtime.settings.admin_token_sha256
    challenge = {"WWW-Authenticate": 'Bearer realm="hub-admin"'}
    if expected is None:
        raise Unauthorized("the admin API is disabled: set HUB_ADMIN_TOKEN", headers=challenge)
    del handler
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("an admin bearer token is required", headers=challenge)
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    if not hmac.compare_digest(digest, expected):
        raise Unauthorized("the admin token is not valid", headers=challenge)
