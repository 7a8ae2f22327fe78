"""RFC 9457 problem details: the one place where hub errors become HTTP answers.

The data plane (raw ASGI) calls :func:`problem_message`; the Litestar side registers
:func:`problem_details_plugin`, which maps :class:`~hub.errors.HubError` and Litestar's own HTTP
exceptions onto the same body: ``type``, ``title``, ``status``, ``detail``, ``code``,
``request_id`` and ``instance``.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from hub.errors import HubError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "REQUEST_ID_STATE_KEY",
    "TYPE_BASE",
    "problem_body",
    "problem_details_plugin",
    "problem_headers",
]

PROBLEM_CONTENT_TYPE = b"application/problem+json"
TYPE_BASE = "https://hub.example.gov/problems/"
# Where the request-id middleware leaves the id in the ASGI scope's state.
REQUEST_ID_STATE_KEY = "hub_request_id"

# Codes for Litestar's own exceptions, so every answer of the hub carries a stable code.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def problem_dict(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    instance: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document as a dict, members in a stable order."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request_id:
        body["request_id"] = request_id
    if instance:
        body["instance"] = instance
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def problem_body(error: HubError, *, request_id: str | None, instance: str | None) -> bytes:
    """Serialise a hub error as problem JSON."""
    document = problem_dict(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        request_id=request_id,
        instance=instance,
        extra=error.extra,
    )
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def problem_headers(
    error: HubError, body: bytes, request_id: str | None
) -> list[tuple[bytes, bytes]]:
    """ASGI headers for a problem answer."""
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    )
    return headers


class _Problem(ProblemDetailsException):
    """Litestar's problem exception carrying our fixed members."""

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        extra = dict(self.extra) if isinstance(self.extra, dict) else {}
        request_id = request.scope.get("state", {}).get(REQUEST_ID_STATE_KEY)
        if request_id:
            extra.setdefault("request_id", request_id)
        extra.setdefault("instance", request.url.path)
        self.extra = extra
        return super().to_response(request)


def _from_hub_error(exc: HubError) -> ProblemDetailsException:
    return _Problem(
        detail=exc.detail,
        status_code=exc.status,
        headers=exc.headers or None,
        title=exc.title,
        type_=TYPE_BASE + exc.code,
        extra={"code": exc.code, **exc.extra},
    )


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    extra: dict[str, Any] = {"code": code}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
        code = extra["code"] = "invalid_request"
    return _Problem(
        detail=exc.detail,
        status_code=exc.status_code,
        headers=exc.headers,
        title=exc.detail,
        type_=TYPE_BASE + code,
        extra=extra,
    )


def problem_details_plugin() -> ProblemDetailsPlugin:
    """The Litestar plugin rendering every hub and HTTP error as problem JSON."""
    mapping: dict[type[Exception], Any] = {
        HubError: _from_hub_error,
        HTTPException: _from_http_exception,
    }
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_to_problem_detail_map=mapping))
