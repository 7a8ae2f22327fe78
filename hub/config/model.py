"""Typed, immutable view of a validated configuration document.

The loader (:mod:`hub.config.loader`) builds these from YAML that has already passed the JSON
Schema in ``contracts/config/``; everything downstream (route table, upstream pools, catalog)
reads only these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hub.policy.model import PermissionSpec

__all__ = [
    "AuthSpec",
    "BreakerSpec",
    "ConfigDocument",
    "HealthCheckSpec",
    "IssuerSpec",
    "ProductSpec",
    "RateLimitSpec",
    "RetrySpec",
    "RouteSpec",
    "TargetSpec",
    "TimeoutSpec",
    "UpstreamSpec",
]

Balancing = Literal["round_robin", "least_outstanding"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """One server of an upstream pool, e.g. ``http://127.0.0.1:9101``."""

    url: str
    weight: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheckSpec:
    """Active health check: ``GET path`` every ``interval`` seconds."""

    path: str = "/healthz"
    interval: float = 5.0
    timeout: float = 1.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSpec:
    """Circuit breaker per target; an open breaker is a passively ejected target."""

    failure_threshold: int = 5
    open_seconds: float = 10.0
    half_open_max: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSpec:
    """A pool of targets that serve the same thing."""

    id: str
    targets: tuple[TargetSpec, ...]
    balancing: Balancing = "round_robin"
    health_check: HealthCheckSpec | None = None
    breaker: BreakerSpec = field(default_factory=BreakerSpec)
    max_concurrent: int = 1024
    max_connections: int = 256
    keepalive_seconds: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutSpec:
    """Seconds: TCP connect, gap between reads, and the whole upstream exchange."""

    connect: float = 5.0
    read: float = 30.0
    total: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySpec:
    """Retries of safe requests: jittered exponential backoff within a budget."""

    max_retries: int = 2
    backoff_initial: float = 0.025
    backoff_max: float = 0.5
    budget_ratio: float = 0.2
    on_status: tuple[int, ...] = (502, 503, 504)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSpec:
    """GCRA limit: ``rate`` per ``period`` seconds plus ``burst``, per IP, consumer or route.

    ``fallback`` is what the limit does while the shared store (Redis) is unreachable: a local
    limiter at the limit divided by the number of replicas, fail open, or fail closed (503).
    """

    rate: int
    period: float = 1.0
    burst: int = 0
    key: Literal["ip", "route", "consumer"] = "ip"
    fallback: Literal["local", "open", "closed"] = "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSpec:
    """Who may call a route: accepted credentials, required scopes and minimum assurance.

    ``methods`` holds ``jwt``, ``api_key`` and ``session`` (the hub's session cookie); ``acr``
    is one of :data:`hub.identity.acr.ACR_LEVELS`, the weakest sign-in the person behind the
    call may have made (``None``: any, or no person at all).
    """

    methods: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    acr: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerSpec:
    """A trusted external token issuer, its keys and the algorithms it may use."""

    id: str
    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    """One route: what it matches and where it sends the request.

    Exactly one of ``path`` (a template such as ``/api/visas/v1/applications/{id}``, matched
    whole) and ``prefix`` (matched on segment boundaries) is set.
    """

    id: str
    upstream: str
    path: str | None = None
    prefix: str | None = None
    hosts: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    priority: int = 0
    strip_prefix: bool = False
    upstream_path: str = ""
    preserve_host: bool = False
    timeouts: TimeoutSpec = field(default_factory=TimeoutSpec)
    retries: RetrySpec = field(default_factory=RetrySpec)
    max_body_bytes: int | None = None
    rate_limit: RateLimitSpec | None = None
    auth: AuthSpec | None = None
    product: str | None = None
    version: int | None = None
    order: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductSpec:
    """A managed API product version, listed in the catalog."""

    id: str
    version: int
    title: str
    status: Literal["active", "beta", "deprecated", "retired"] = "active"
    description: str = ""
    contract: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigDocument:
    """The whole configuration: what is stored as one numbered version."""

    upstreams: tuple[UpstreamSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    products: tuple[ProductSpec, ...] = ()
    issuers: tuple[IssuerSpec, ...] = ()
    permissions: tuple[PermissionSpec, ...] = ()
    # Sections filled in by later work (plans, consumers): kept as validated JSON.
    extensions: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""
