"""Typed, immutable view of a validated configuration document.

The loader (:mod:`hub.config.loader`) builds these from YAML that has already passed the JSON
Schema in ``contracts/config/``; everything downstream (route table, upstream pools, catalog)
reads only these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.base import AdapterConfig
from hub.config.governance import GovernanceSpec
from hub.policy.model import PermissionSpec, SubjectSpec
from hub.policy.operations import Operation

__all__ = [
    "AdapterConfig",
    "AuthSpec",
    "BreakerSpec",
    "ConfigDocument",
    "HealthCheckSpec",
    "IssuerSpec",
    "PlanOverrideSpec",
    "PlanRateSpec",
    "PlanSpec",
    "ProductSpec",
    "PurposeReadSpec",
    "PurposeSpec",
    "QuotaSpec",
    "RateLimitSpec",
    "RetrySpec",
    "RouteAdapterSpec",
    "RoutePaymentsSpec",
    "RouteSpec",
    "SubscriptionSpec",
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
class RouteAdapterSpec:
    """A route served by an adapter operation (``adapters`` section) instead of an upstream."""

    name: str
    operation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutePaymentsSpec:
    """A route served by the hub's payments API with one payment adapter (``hub/payments``)."""

    operation: Literal["create", "get", "capture", "cancel", "refund", "list_refunds", "webhook"]
    adapter: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    """One route: what it matches and where it sends the request.

    Exactly one of ``path`` (a template such as ``/api/visas/v1/applications/{id}``, matched
    whole) and ``prefix`` (matched on segment boundaries) is set, and exactly one of
    ``upstream`` (a pool), ``adapter`` (an adapter operation) and ``payments`` (the payments API).
    """

    id: str
    upstream: str = ""
    adapter: RouteAdapterSpec | None = None
    payments: RoutePaymentsSpec | None = None
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
    tags: tuple[str, ...] = ()
    order: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionSpec:
    """How vendor applications subscribe to a product, and whether they must.

    ``required``: a caller that is an application (a client, or an API key of one) needs an
    active subscription to call the product's routes. ``plans`` are those a subscription may
    choose; ``approval`` makes new subscriptions wait for an admin; ``default_plan`` is what an
    application without a subscription gets on a product that does not require one.
    """

    required: bool = False
    plans: tuple[str, ...] = ()
    approval: bool = False
    default_plan: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductSpec:
    """A managed API product version, listed in the catalog."""

    id: str
    version: int
    title: str
    status: Literal["active", "beta", "deprecated", "retired"] = "active"
    description: str = ""
    contract: str | None = None
    #: The contract's operations, read from its ``api.yaml`` when the document is loaded.
    operations: tuple[Operation, ...] = ()
    tags: tuple[str, ...] = ()
    subscription: SubscriptionSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeReadSpec:
    """One adapter operation a purpose covers, and the only fields it may return."""

    adapter: str
    operation: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeSpec:
    """A legal purpose of registrar reads: what it may read, which fields, and who may use it.

    ``principals`` match like permission subjects (kinds/clients/subjects/roles any of, scopes
    all of); any one matching lets the caller read for this purpose.
    """

    id: str
    description: str
    reads: tuple[PurposeReadSpec, ...]
    principals: tuple[SubjectSpec, ...]
    legal_basis: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRateSpec:
    """A plan's GCRA rate per application and route; ``fallback`` as for a route's limit."""

    rate: int
    period: float = 1.0
    burst: int = 0
    fallback: Literal["local", "open", "closed"] = "local"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaSpec:
    """Requests an application may make on a product per UTC day and month (``None``: no cap)."""

    daily: int | None = None
    monthly: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOverrideSpec:
    """A plan's terms on one product: a rate replaces the plan's, quota fields replace its own."""

    rate: PlanRateSpec | None = None
    quota: QuotaSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSpec:
    """A plan (sandbox, free, standard, ...): a rate and quotas, optionally per product."""

    id: str
    title: str
    description: str = ""
    rate: PlanRateSpec | None = None
    quota: QuotaSpec = field(default_factory=QuotaSpec)
    # (product id, override), in document order
    overrides: tuple[tuple[str, PlanOverrideSpec], ...] = ()

    def terms(self, product: str) -> tuple[PlanRateSpec | None, QuotaSpec]:
        """The rate and quotas this plan gives on ``product``, overrides applied."""
        for name, override in self.overrides:
            if name == product:
                quota = override.quota or QuotaSpec()
                return (
                    override.rate or self.rate,
                    QuotaSpec(
                        daily=quota.daily if quota.daily is not None else self.quota.daily,
                        monthly=quota.monthly if quota.monthly is not None else self.quota.monthly,
                    ),
                )
        return self.rate, self.quota


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigDocument:
    """The whole configuration: what is stored as one numbered version."""

    upstreams: tuple[UpstreamSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()
    products: tuple[ProductSpec, ...] = ()
    issuers: tuple[IssuerSpec, ...] = ()
    permissions: tuple[PermissionSpec, ...] = ()
    adapters: tuple[AdapterConfig, ...] = ()
    purposes: tuple[PurposeSpec, ...] = ()
    governance: GovernanceSpec = field(default_factory=GovernanceSpec)
    plans: tuple[PlanSpec, ...] = ()
    # Reserved sections (consumers): kept as validated JSON.
    extensions: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""
