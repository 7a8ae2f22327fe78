"""The adapter interface: what the hub needs from a module that talks to one external system.

An adapter is a plugin. A distribution declares it in the ``hub.adapters`` entry-point group::

    [project.entry-points."hub.adapters"]
    civil_registry = "adapters.registrars.civil:CivilRegistry"

The entry point names an :class:`AdapterFactory`: usually the adapter class itself, whose
``operations`` (class attribute) describe what it can do, and which is built from the adapter's
:class:`AdapterConfig` and an ``httpx.AsyncClient``. The hub builds that client; every call
through it already goes through the hub's one resilience path (per-call timeout, retry only
when safe, circuit breaker, bulkhead, outbound rate limit, the adapter's JSON Schema contract,
metrics), so an adapter only speaks its system's protocol. Operations are
typed: a frozen dataclass in (built from the request's path and query parameters by
``Operation.parse``), a frozen dataclass out (or ``None``: no such record).

An adapter tags each outgoing request with :func:`call_extensions`, naming the operation (the
contract checks its bodies against ``operation_id`` in the adapter's ``api.yaml``) and whether
repeating it is safe. Configuration (base URL, credentials, limits) comes from the ``adapters``
section of the policy documents; secrets are named there and resolved from the hub's settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, runtime_checkable

import httpx

from hub.errors import (
    AdapterRateLimited,
    HubError,
    InvalidRequest,
    PaymentRefused,
    UpstreamConnectError,
    UpstreamContractViolation,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "AdapterConfig",
    "AdapterFactory",
    "AdapterRateLimited",
    "BreakerPolicy",
    "CallContext",
    "Credentials",
    "HealthReport",
    "HubError",
    "InvalidRequest",
    "Operation",
    "OutboundLimit",
    "PaymentRefused",
    "RecordKind",
    "RetryPolicy",
    "Timeouts",
    "UpstreamConnectError",
    "UpstreamContractViolation",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "call_extensions",
    "quota_refused",
]

#: The entry-point group adapters are discovered in.
ENTRY_POINT_GROUP: Final = "hub.adapters"

#: What a registrar read returns: the audit log and the person's data-access view use it.
RecordKind = Literal["person", "establishment", "certificate"]

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds: TCP connect and longest read silence per attempt; ``total`` bounds the call."""

    connect: float = 2.0
    read: float = 5.0
    total: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of safe calls only (idempotent operation, or an ``Idempotency-Key``)."""

    max_retries: int = 2
    backoff_initial: float = 0.05
    backoff_max: float = 1.0
    on_status: tuple[int, ...] = (502, 503, 504)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """One circuit breaker per adapter: open after consecutive failures, probe after a while."""

    failure_threshold: int = 5
    open_seconds: float = 10.0
    half_open_max: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundLimit:
    """The external system's own quota: ``rate`` per ``period`` seconds (plus its ``burst``).

    Callers over it wait for their slot up to ``max_wait`` seconds; beyond that they are refused
    (503 ``adapter_rate_limited``) and the external system never sees them.
    """

    rate: int
    period: float = 1.0
    burst: int = 0
    max_wait: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """How the hub authenticates to the external system; ``secret`` is resolved from settings."""

    scheme: Literal["api_key", "bearer", "basic"]
    secret_name: str
    secret: str = field(default="", repr=False)
    header: str = "X-API-Key"
    username: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterConfig:
    """One configured adapter: an instance of a plugin pointed at one external system."""

    id: str
    plugin: str
    base_url: str
    contract: str
    credentials: Credentials | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    max_concurrent: int = 64
    max_connections: int = 32
    rate_limit: OutboundLimit | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallContext:
    """Who is calling and which request this is: travels with each call for logs and audit."""

    request_id: str
    caller: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """The adapter's view of its external system."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation(Generic[In, Out]):
    """One typed operation of an adapter.

    ``parse`` builds the input from the request's path and query parameters (``InvalidRequest``
    when they are malformed); ``call`` (the adapter class's method, unbound: it is called with
    the adapter instance first) runs it and returns the output, a frozen dataclass, or ``None``
    when the external system has no such record.

    ``record`` marks registrar reads (audited, purpose-bound); ``key`` names the input field
    that identifies the record (what the audit log records as read), ``subject_field`` the
    output field holding the ID of the person the record is about when that is not the key
    (an establishment's owner, a certificate's holder); ``fields`` lists the top-level fields
    the output may carry, for purposes to choose from.
    """

    name: str
    parse: Callable[[Mapping[str, str]], In]
    call: Callable[[Any, In, CallContext], Awaitable[Out | None]]
    idempotent: bool = True
    record: RecordKind | None = None
    key: str = ""
    subject_field: str = ""
    fields: tuple[str, ...] = ()
    summary: str = ""
    #: Operations that take a JSON body (sending a message): builds the input from the path
    #: and query parameters and the request's JSON object; ``parse`` is then not used by routes.
    parse_body: Callable[[Mapping[str, str], Mapping[str, Any]], In] | None = None


@runtime_checkable
class Adapter(Protocol):
    """A built adapter: its configuration, operations, health check and shutdown."""

    @property
    def config(self) -> AdapterConfig:
        """The configuration it was built from."""

    @property
    def operations(self) -> Mapping[str, Operation[Any, Any]]:
        """Its operations by name."""

    async def health(self) -> HealthReport:
        """Whether the external system answers (through the same resilience path)."""

    async def aclose(self) -> None:
        """Release what the adapter holds beyond the client the hub gave it."""


class AdapterFactory(Protocol):
    """What a ``hub.adapters`` entry point names: builds an adapter from config and a client.

    Its ``operations`` are known before any adapter is built, so configuration validation can
    check routes and purposes against them.
    """

    @property
    def operations(self) -> Mapping[str, Operation[Any, Any]]:
        """The operations every adapter it builds has, by name."""

    def __call__(self, config: AdapterConfig, http: httpx.AsyncClient) -> Adapter: ...


def call_extensions(
    operation: Operation[Any, Any], context: CallContext, *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """The httpx request extensions that tell the resilience path about one call."""
    return {
        "hub_operation": operation.name,
        "hub_idempotent": operation.idempotent or idempotency_key is not None,
        "hub_request_id": context.request_id,
    }


def quota_refused(system: str, response: httpx.Response) -> AdapterRateLimited:
    """The error for an external system's own 429: its ``Retry-After`` (1 to 3600 s) or 1 s.

    The hub's outbound limit keeps calls under the quota, but a burst of delayed requests can
    still reach the system together; the caller then gets the same ``Retry-After`` as from the
    hub's own limit.
    """
    raw = response.headers.get("Retry-After", "")
    seconds = min(max(int(raw), 1), 3600) if raw.isdigit() else 1
    return AdapterRateLimited(
        f"the {system} refused the call: its quota is exceeded",
        headers={"Retry-After": str(seconds)},
    )
