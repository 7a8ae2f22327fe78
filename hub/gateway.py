"""The data plane: a pure ASGI app that takes a request from the edge to its upstream.

request id → size limits → path normalisation → route match → authentication → rate limit →
permission policy → upstream call → response (with the policy's obligations) → metrics and
access log. Every refusal is problem JSON with a stable code. The
configuration snapshot is read once per request, so one version serves it from start to end.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import structlog

from hub.auth.assurance import is_navigation, require_acr
from hub.auth.authenticator import CREDENTIAL_HEADERS
from hub.auth.principal import ANONYMOUS, Principal
from hub.auth.session import (
    SAFE_METHODS,
    check_same_origin,
    origin_of,
    without_session_cookies,
)
from hub.errors import (
    HeadersTooLarge,
    HubError,
    InsufficientUserAuthentication,
    InvalidHeader,
    MethodNotAllowed,
    PermissionDenied,
    RouteNotFound,
    ServiceUnavailable,
    ShuttingDown,
    UriTooLong,
)
from hub.ops.sample import Observed
from hub.policy.compile import Decision as PolicyDecision
from hub.policy.context import RequestContext
from hub.policy.obligations import ObligatedSend
from hub.problems import problem_body, problem_headers
from hub.proxy.forward import ClientGone, Exchange, Forwarder, ResponseAborted
from hub.proxy.headers import client_address, request_id_from
from hub.routing.normalise import encode_path, normalise_path
from hub.routing.table import RouteMatch
from hub.runtime import Runtime
from hub.settings import Settings

__all__ = ["Gateway"]

Scope = dict[str, Any]

access_log = structlog.get_logger("hub.access")
log = structlog.get_logger("hub.gateway")

_NO_ROUTE = "-"
_CLIENT_CLOSED = 499  # nginx's convention for a client that left before the answer


def _host(headers: list[tuple[bytes, bytes]]) -> str:
    """The Host the request names, lower case, without port; refused when given twice."""
    raw: bytes | None = None
    for name, value in headers:
        if name == b"host":
            if raw is not None:
                # RFC 9112 §3.2: two Host headers are a bad request (and a host-confusion trick).
                raise InvalidHeader("the request has more than one Host header")
            raw = value
    if raw is None:
        return ""
    host = raw.decode("latin-1").lower()
    if host.startswith("["):  # [v6]:port
        return host.partition("]")[0] + "]"
    # "api.example.gov." is the same name as "api.example.gov" (DNS root dot).
    return host.partition(":")[0].rstrip(".")


class Gateway:
    """ASGI callable serving every path that is not one of the hub's own endpoints."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = runtime.metrics
        self.forward = Forwarder(max_body_bytes=settings.max_body_bytes)
        self._trusted = settings.trusted_proxies
        self._max_url = settings.max_url_length
        self._max_headers = settings.max_header_bytes
        self._access_log = settings.access_log
        # Pages that may change state with the session cookie are the hub's own origin's.
        self._origin = origin_of(settings.issuer) or settings.issuer
        # Dry-run's request sample and shadow mode watch answered requests (hub.ops.sample).
        self._sampler = runtime.sampler
        self._shadow = runtime.shadow

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = request_id_from(headers)
        method: str = scope["method"]
        snapshot = self.runtime.snapshot
        client = scope.get("client")
        peer = client[0] if client else ""
        address, trusted_peer = client_address(peer, headers, self._trusted)
        exchange = Exchange()
        route_id = _NO_ROUTE
        upstream_id = ""
        held = None
        consumer: str | None = None
        obligated: ObligatedSend | None = None
        policy_rule: str | None = None
        status = 500
        # What the sample and shadow mode look at, as far as the request got.
        path = host = ""
        query = b""
        match: RouteMatch | None = None
        principal: Principal | None = None
        verdict: PolicyDecision | None = None
        refusal: str | None = None

        try:
            if self.runtime.draining:
                raise ShuttingDown(headers={"Connection": "close", "Retry-After": "1"})
            if snapshot is None:
                raise ServiceUnavailable("the configuration is not loaded yet")
            # Servers without raw_path hand over a decoded path: quote it back so it is not
            # decoded twice.
            raw_path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
            query = scope["query_string"]
            # The request target as sent: path, then "?" and the query when there is one.
            if len(raw_path) + (len(query) + 1 if query else 0) > self._max_url:
                raise UriTooLong(f"the request target is longer than {self._max_url} bytes")
            if sum(len(n) + len(v) for n, v in headers) > self._max_headers:
                raise HeadersTooLarge(f"the request headers exceed {self._max_headers} bytes")
            path = normalise_path(raw_path)
            host = _host(headers)
            match = snapshot.table.match(method, host, path, headers)
            if match is None:
                allowed = snapshot.table.allowed_methods(host, path, headers)
                if allowed:
                    raise MethodNotAllowed(
                        f"{method} is not allowed here",
                        headers={"Allow": ", ".join(sorted(allowed))},
                    )
                raise RouteNotFound(f"no route for {method} {path}")
            route = match.route
            route_id = route.id
            upstream_id = route.upstream
            pool = None
            if upstream_id:  # else an adapter operation (route.adapter) or payments serve it
                # Held before the first await: a configuration swap must not close this pool
                # while the request (served by the old snapshot) is still on its way to a lease.
                held = pool = snapshot.pools[upstream_id]
                pool.hold()
            consumed: frozenset[bytes] = frozenset()
            internal_token: str | None = None
            principal = ANONYMOUS
            if route.auth is not None:
                principal = await self.runtime.authenticate(route.auth, headers)
                consumer = principal.client_id or principal.subject
                if principal.via_session and method not in SAFE_METHODS:
                    check_same_origin(headers, self._origin)
                if route.auth.acr is not None:
                    try:
                        require_acr(route.auth.acr, principal, target=_target(path, query))
                    except InsufficientUserAuthentication as step_up:
                        if not (principal.via_session and is_navigation(method, headers)):
                            raise
                        # A page load: the browser signs in again and comes back, no JSON.
                        status = 303
                        await self._redirect(send, str(step_up.extra["step_up"]), request_id)
                        return
                consumed = CREDENTIAL_HEADERS
                internal_token = self.runtime.internal_token(principal, upstream_id)
            # Subscription, quota, and the route's and plan's rates in one limiter round trip
            # (hub/plans/admission.py): 403 subscription_required, 429, or the headers.
            admission = await self.runtime.admit(snapshot, route, principal, address)
            extra_headers = admission.headers
            policy = snapshot.policies.get(route_id)
            downstream = send
            if policy is not None:
                verdict = policy.decide(
                    RequestContext(
                        principal=principal,
                        method=method,
                        path=path,
                        params=match.params,
                        query_string=query,
                        headers=headers,
                        client_ip=address,
                        operations=policy.operations,
                    )
                )
                policy_rule = verdict.rule
                if not verdict.allowed:
                    raise _denied(verdict)
                if verdict.obligations:
                    limit_bytes = max(route.max_body_bytes or 0, self.settings.max_body_bytes)
                    downstream = obligated = ObligatedSend(
                        send, verdict.obligations, limit=limit_bytes, method=method
                    )
            self.runtime.count_usage(admission)  # admitted: it counts towards the quotas
            # The session cookie is the hub's credential, whatever the route: never upstream.
            stripped = without_session_cookies(headers)
            if obligated is not None:
                # The answer must come back readable for the obligations: no compression.
                stripped = [(n, v) for n, v in (stripped or headers) if n != b"accept-encoding"]
            if route.payments is not None:
                # The payments API (hub.payments.api): the hub's own book and the adapter.
                assert self.runtime.payment_routes is not None
                status = await self.runtime.payment_routes.serve(
                    route.payments,
                    params=match.params,
                    principal=principal,
                    headers=headers,
                    receive=receive,
                    request_id=request_id,
                    path=path,
                    send=_with_headers(downstream, extra_headers) if extra_headers else downstream,
                )
                return
            if route.adapter is not None:
                # The one dispatch point for adapters: purpose, audit and the adapter's own
                # resilience path (hub.adapters.routes) instead of the proxy.
                assert self.runtime.adapter_routes is not None
                status = await self.runtime.adapter_routes.serve(
                    route.adapter,
                    snapshot=snapshot,
                    params=match.params,
                    query=query,
                    principal=principal,
                    headers=headers,
                    request_id=request_id,
                    send=_with_headers(downstream, extra_headers) if extra_headers else downstream,
                    receive=receive,
                )
                return
            assert pool is not None
            await self.forward(
                scope if stripped is None else {**scope, "headers": stripped},
                receive,
                _with_headers(downstream, extra_headers) if extra_headers else downstream,
                match=match,
                pool=pool,
                path=path,
                request_id=request_id,
                # X-Forwarded-For gets the TCP peer appended (a trusted proxy's own address),
                # not the client address resolved from the chain, which is already in it.
                peer=peer,
                trusted_peer=trusted_peer,
                exchange=exchange,
                consumed=consumed,
                internal_token=internal_token,
                config_version=snapshot.version_label,
            )
            status = exchange.status
        except HubError as error:
            if upstream_id and error.status >= 500:
                self.metrics.upstream_errors.labels(upstream_id, error.code).inc()
            if obligated is not None and not obligated.sent:
                # Held by the obligations: nothing reached the client, a problem can still go.
                exchange.started = False
            if exchange.started:  # pragma: no cover - errors after start surface as aborts
                raise
            status = error.status
            refusal = error.code
            await self._problem(send, error, request_id, scope.get("path", ""))
        except ClientGone:
            status = _CLIENT_CLOSED
        except ResponseAborted as exc:
            status = exchange.status
            self.metrics.upstream_errors.labels(upstream_id, "upstream_aborted").inc()
            log.warning("upstream.aborted", request_id=request_id, route=route_id, reason=str(exc))
            raise
        except Exception:
            # A bug of ours: logged with its traceback, answered as a problem all the same.
            log.exception("gateway.unhandled", request_id=request_id, route=route_id)
            if exchange.started:
                raise
            status = 500
            await self._problem(send, HubError(), request_id, scope.get("path", ""))
        finally:
            if held is not None:
                held.unhold()
            elapsed = time.perf_counter() - started
            sampled = self._sampler.draw()
            if snapshot is not None and (sampled or self._shadow.on):
                seen = Observed(
                    time.time(), request_id, snapshot, method, host, path, headers, query,
                    address, match, principal, refusal, verdict, status,
                )  # fmt: skip
                if sampled:
                    self._sampler.offer(seen)
                self._shadow.observe(seen)
            self.metrics.observe_request(route_id, method, status, elapsed)
            if exchange.attempts:
                self.metrics.observe_upstream(upstream_id, exchange.upstream_seconds)
            if self._access_log:
                access_log.info(
                    "request",
                    request_id=request_id,
                    method=method,
                    path=scope.get("path", ""),
                    route=route_id,
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                    upstream=upstream_id or None,
                    target=exchange.target or None,
                    attempts=exchange.attempts,
                    client=address,
                    consumer=consumer,
                    rule=policy_rule,
                    config_version=snapshot.version if snapshot else None,
                )

    @staticmethod
    async def _redirect(send: Any, location: str, request_id: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"content-length", b"0"),
                    (b"cache-control", b"no-store"),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _problem(send: Any, error: HubError, request_id: str, instance: str) -> None:
        body = problem_body(error, request_id=request_id, instance=instance)
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": problem_headers(error, body, request_id),
            }
        )
        await send({"type": "http.response.body", "body": body})


def _denied(decision: PolicyDecision) -> PermissionDenied:
    """The 403 of a refusal: it names the missing permission and nothing else of the policy."""
    return PermissionDenied(
        f"missing permission: {decision.permission}",
        extra={"permission": decision.permission},
    )


def _target(path: str, query: bytes) -> str:
    """The request's path and query as a local URL, for a browser to come back to."""
    target = encode_path(path)
    return f"{target}?{query.decode('latin-1')}" if query else target


def _with_headers(send: Any, extra: list[tuple[str, str]]) -> Any:
    encoded = [(k.lower().encode(), v.encode()) for k, v in extra]

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], *encoded]}
        await send(message)

    return wrapped
