"""Every error the hub reports, as one tree.

Each class carries a stable machine-readable ``code`` and an HTTP ``status``; one place
(:mod:`hub.problems`) renders them as RFC 9457 problem details. Subclasses override class
attributes only. Foreign exceptions (aiohttp, httpx, redis, aio-pika, SQLAlchemy, jwt) are
translated at the module boundary with ``raise ... from exc`` and never escape it.

    HubError
    ├── ConfigError                     (invalid_configuration, 422)
    ├── RequestRejected                 (bad_request, 400)
    │   ├── InvalidPath                 (invalid_path, 400)
    │   ├── PayloadTooLarge             (payload_too_large, 413)
    │   ├── HeadersTooLarge             (headers_too_large, 431)
    │   ├── UriTooLong                  (uri_too_long, 414)
    │   ├── InvalidHeader               (invalid_header, 400)
    │   ├── InvalidRequest              (invalid_request, 400)
    │   │   └── WeakPassword            (weak_password, 400)
    │   ├── InvalidScope                (invalid_scope, 400)
    │   ├── InvalidGrant                (invalid_grant, 400)
    │   │   └── ReuseDetected           (refresh_token_reused, 400)
    │   └── UnsupportedGrantType        (unsupported_grant_type, 400)
    ├── NotFound                        (not_found, 404)
    │   └── RouteNotFound               (route_not_found, 404)
    ├── MethodNotAllowed                (method_not_allowed, 405)
    ├── Unauthorized                    (unauthorized, 401)
    │   ├── InvalidToken                (invalid_token, 401)
    │   ├── InsufficientUserAuthentication (insufficient_user_authentication, 401)
    │   └── InvalidClient               (invalid_client, 401)
    ├── Forbidden                       (forbidden, 403)
    │   ├── InsufficientScope           (insufficient_scope, 403)
    │   ├── UserAuthenticationRequired  (user_authentication_required, 403)
    │   ├── CsrfOriginMismatch          (csrf_origin_mismatch, 403)
    │   ├── PermissionDenied            (permission_denied, 403)
    │   └── AdminRoleRequired           (admin_role_required, 403)
    ├── Conflict                        (conflict, 409)
    ├── RateLimited                     (rate_limited, 429)
    ├── UpstreamError                   (upstream_error, 502)
    │   ├── UpstreamUnavailable         (upstream_unavailable, 503)
    │   │   ├── CircuitOpen             (circuit_open, 503)
    │   │   └── UpstreamOverloaded      (upstream_overloaded, 503)
    │   ├── UpstreamConnectError        (upstream_connect_failed, 502)
    │   ├── UpstreamTimeout             (upstream_timeout, 504)
    │   ├── UpstreamProtocolError       (upstream_protocol_error, 502)
    │   ├── ObligationFailed            (obligation_failed, 502)
    │   └── FederationFailed            (federation_failed, 502)
    ├── ServiceUnavailable              (service_unavailable, 503)
    │   ├── ShuttingDown                (shutting_down, 503)
    │   └── LimiterUnavailable          (limiter_unavailable, 503)
    └── BackendUnavailable              (backend_unavailable, 503)

    ConfigError
    └── EmptyConfiguration              (empty_configuration, 422)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AdminRoleRequired",
    "BackendUnavailable",
    "CircuitOpen",
    "ConfigError",
    "Conflict",
    "CsrfOriginMismatch",
    "EmptyConfiguration",
    "FederationFailed",
    "Forbidden",
    "HeadersTooLarge",
    "HubError",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidClient",
    "InvalidGrant",
    "InvalidHeader",
    "InvalidPath",
    "InvalidRequest",
    "InvalidScope",
    "InvalidToken",
    "LimiterUnavailable",
    "MethodNotAllowed",
    "NotFound",
    "ObligationFailed",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RequestRejected",
    "ReuseDetected",
    "RouteNotFound",
    "ServiceUnavailable",
    "ShuttingDown",
    "Unauthorized",
    "UnsupportedGrantType",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamOverloaded",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UriTooLong",
    "UserAuthenticationRequired",
    "WeakPassword",
]


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


class ConfigError(HubError):
    """A configuration document is invalid; ``issues`` lists every finding."""

    code = "invalid_configuration"
    status = 422
    title = "Invalid configuration"

    def __init__(self, issues: list[str], *, detail: str | None = None) -> None:
        self.issues = list(issues)
        super().__init__(
            detail or "; ".join(self.issues) or self.title, extra={"errors": self.issues}
        )


class RequestRejected(HubError):
    code = "bad_request"
    status = 400
    title = "Bad request"


class InvalidPath(RequestRejected):
    code = "invalid_path"
    title = "Invalid request path"


class PayloadTooLarge(RequestRejected):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


class HeadersTooLarge(RequestRejected):
    code = "headers_too_large"
    status = 431
    title = "Request headers too large"


class UriTooLong(RequestRejected):
    code = "uri_too_long"
    status = 414
    title = "Request URI too long"


class InvalidHeader(RequestRejected):
    code = "invalid_header"
    title = "Invalid request header"


class InvalidRequest(RequestRejected):
    code = "invalid_request"
    title = "Invalid request"


class WeakPassword(InvalidRequest):
    """The password fails the policy; ``extra["reasons"]`` says why, in sentences."""

    code = "weak_password"
    title = "Weak password"


class InvalidScope(RequestRejected):
    code = "invalid_scope"
    title = "Invalid scope"


class InvalidGrant(RequestRejected):
    """An authorization code or refresh token: unknown, spent, expired, or not the client's."""

    code = "invalid_grant"
    title = "Invalid grant"


class ReuseDetected(InvalidGrant):
    """A refresh token presented again after it was rotated: its whole family is now revoked."""

    code = "refresh_token_reused"
    title = "Refresh token reused"


class UnsupportedGrantType(RequestRejected):
    code = "unsupported_grant_type"
    title = "Unsupported grant type"


class NotFound(HubError):
    code = "not_found"
    status = 404
    title = "Not found"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "No route matches this request"


class MethodNotAllowed(HubError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Unauthorized(HubError):
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "The access token is not valid"


class InsufficientUserAuthentication(Unauthorized):
    """The person signed in, but not strongly enough for this route (RFC 9470): step up."""

    code = "insufficient_user_authentication"
    title = "A stronger authentication is required"


class InvalidClient(Unauthorized):
    code = "invalid_client"
    title = "Client authentication failed"


class Forbidden(HubError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "The token lacks a required scope"


class UserAuthenticationRequired(Forbidden):
    """The route needs a person's sign-in at some level; the caller has no person behind it."""

    code = "user_authentication_required"
    title = "This route needs a signed-in person"


class CsrfOriginMismatch(Forbidden):
    """A state-changing request with the session cookie that did not come from the hub's pages."""

    code = "csrf_origin_mismatch"
    title = "The request did not come from the hub's origin"


class PermissionDenied(Forbidden):
    """A permission policy refused the request; the detail names the permission, nothing else."""

    code = "permission_denied"
    title = "A permission is missing"


class AdminRoleRequired(Forbidden):
    """The caller is a signed-in person, but holds no active ``platform_admin`` staff role."""

    code = "admin_role_required"
    title = "The admin API needs a platform admin"


class Conflict(HubError):
    code = "conflict"
    status = 409
    title = "Conflict"


class RateLimited(HubError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class UpstreamError(HubError):
    code = "upstream_error"
    status = 502
    title = "Upstream error"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    status = 503
    title = "No healthy upstream target"


class CircuitOpen(UpstreamUnavailable):
    code = "circuit_open"
    title = "Upstream circuit is open"


class UpstreamOverloaded(UpstreamUnavailable):
    code = "upstream_overloaded"
    title = "Upstream concurrency limit reached"


class UpstreamConnectError(UpstreamError):
    code = "upstream_connect_failed"
    title = "Could not connect to the upstream"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
    title = "Upstream timed out"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    title = "Upstream answered with an invalid response"


class ObligationFailed(UpstreamError):
    """The answer cannot be given under the policy's obligations (e.g. a non-JSON body to mask)."""

    code = "obligation_failed"
    title = "The answer cannot be given under the route's policy"


class FederationFailed(UpstreamError):
    """The national identity provider could not be used for this sign-in."""

    code = "federation_failed"
    title = "The national identity provider could not be used"


class ServiceUnavailable(HubError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


class ShuttingDown(ServiceUnavailable):
    code = "shutting_down"
    title = "The hub is shutting down"


class LimiterUnavailable(ServiceUnavailable):
    """The shared rate limiter is unreachable and the route's limit fails closed."""

    code = "limiter_unavailable"
    title = "The rate limiter is unavailable"


class BackendUnavailable(HubError):
    code = "backend_unavailable"
    status = 503
    title = "A back-end service is unavailable"


class EmptyConfiguration(ConfigError):
    """A valid document would remove every route of the active one, and allow_empty is unset."""

    code = "empty_configuration"
    title = "The configuration would remove every route"
