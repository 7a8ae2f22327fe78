"""Prometheus metrics of the hub, in a registry of its own (one per app instance).

Per-request recording goes through cached label children: the label lookup of
``prometheus_client`` costs more than the observation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub.upstream.pool import UpstreamPool

__all__ = ["CONTENT_TYPE", "Metrics", "OutboxMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class OutboxMetrics:
    """The outbox relay's figures (its RelayObserver): throughput, failures and the backlog."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._published = Counter(
            "hub_outbox_published", "Outbox events published and confirmed", registry=registry
        )
        self._failures = Counter(
            "hub_outbox_failures", "Outbox publishes the event bus refused", registry=registry
        )
        self._depth = Gauge(
            "hub_outbox_depth", "Outbox events not yet published", registry=registry
        )
        self._oldest = Gauge(
            "hub_outbox_oldest_unsent_age_seconds",
            "Age of the oldest outbox event not yet published",
            registry=registry,
        )

    def published(self, count: int) -> None:
        self._published.inc(count)

    def failed(self, count: int) -> None:
        self._failures.inc(count)

    def backlog(self, stats: Any) -> None:
        self._depth.set(stats.depth)
        self._oldest.set(stats.oldest_age_seconds)


class _PoolCollector(Collector):
    """Upstream target health, breaker state and in-flight requests, read at scrape time."""

    def __init__(self, pools: Callable[[], Mapping[str, UpstreamPool]]) -> None:
        self._pools = pools

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return ()  # read lazily: the pools do not exist yet when the registry is built

    def collect(self) -> Iterable[GaugeMetricFamily]:
        healthy = GaugeMetricFamily(
            "hub_upstream_target_healthy",
            "1 when the target passes health checks",
            labels=["upstream", "target"],
        )
        breaker = GaugeMetricFamily(
            "hub_upstream_breaker_state",
            "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
            labels=["upstream", "target"],
        )
        outstanding = GaugeMetricFamily(
            "hub_upstream_outstanding_requests",
            "Requests in flight per target",
            labels=["upstream", "target"],
        )
        for upstream_id, pool in self._pools().items():
            for status in pool.status():
                labels = [upstream_id, status.origin]
                healthy.add_metric(labels, 1.0 if status.healthy else 0.0)
                breaker.add_metric(labels, _BREAKER_VALUE.get(status.breaker.value, 2.0))
                outstanding.add_metric(labels, float(status.outstanding))
        yield healthy
        yield breaker
        yield outstanding


AdapterStates = Callable[[], Mapping[str, tuple[str | None, int]]]


class _AdapterCollector(Collector):
    """Breaker state, availability and calls in flight per adapter, read at scrape time."""

    def __init__(self, states: AdapterStates) -> None:
        self._states = states

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return ()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        breaker = GaugeMetricFamily(
            "hub_adapter_breaker_state",
            "Circuit breaker per adapter: 0 closed, 1 half-open, 2 open",
            labels=["adapter"],
        )
        available = GaugeMetricFamily(
            "hub_adapter_available",
            "1 when the adapter is built (plugin, contract and secret in place)",
            labels=["adapter"],
        )
        in_flight = GaugeMetricFamily(
            "hub_adapter_in_flight", "Calls in flight per adapter (bulkhead)", labels=["adapter"]
        )
        for name, (state, flying) in self._states().items():
            available.add_metric([name], 0.0 if state is None else 1.0)
            if state is not None:
                breaker.add_metric([name], _BREAKER_VALUE.get(state, 2.0))
                in_flight.add_metric([name], float(flying))
        yield breaker
        yield available
        yield in_flight


class Metrics:
    """The hub's metrics and the hot-path recorders."""

    def __init__(self, pools: Callable[[], Mapping[str, UpstreamPool]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "hub_requests",
            "Requests answered by the hub",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "hub_request_duration_seconds",
            "Whole request time in the hub, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "hub_upstream_duration_seconds",
            "Time spent on the upstream call, by upstream",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "hub_upstream_errors",
            "Upstream failures by problem code",
            ["upstream", "code"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "hub_rate_limited",
            "Requests refused by the rate limiter",
            ["route"],
            registry=self.registry,
        )
        self.limiter_unavailable = Counter(
            "hub_limiter_unavailable",
            "Requests decided without the shared limiter store, by the route's fallback mode",
            ["mode"],
            registry=self.registry,
        )
        self.limiter_fallback_active = Gauge(
            "hub_limiter_fallback_active",
            "1 while the shared limiter store is unreachable and limits use their fallback",
            registry=self.registry,
        )
        self.subscription_required = Counter(
            "hub_subscription_required",
            "Requests refused for want of an active subscription, by product",
            ["product"],
            registry=self.registry,
        )
        self.quota_exceeded = Counter(
            "hub_quota_exceeded",
            "Requests refused by a plan's quota, by product and period (daily, monthly)",
            ["product", "period"],
            registry=self.registry,
        )
        self.usage_flushes = Counter(
            "hub_usage_flushes",
            "Flushes of counted usage to the database, by outcome (ok, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.usage_pending = Gauge(
            "hub_usage_pending_requests",
            "Requests counted by this process and not yet written to the database",
            registry=self.registry,
        )
        self.config_version = Gauge(
            "hub_config_version", "Active configuration version", registry=self.registry
        )
        self.config_reloads = Counter(
            "hub_config_reloads",
            "Configuration swaps by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "hub_breaker_transitions",
            "Circuit breaker transitions",
            ["upstream", "target", "to"],
            registry=self.registry,
        )
        self.sample_records = Counter(
            "hub_sample_records",
            "Request-sample records pushed to the fleet's sample",
            registry=self.registry,
        )
        self.sample_dropped = Counter(
            "hub_sample_dropped",
            "Sampled requests lost: the pending deque overflowed or the store was unreachable",
            registry=self.registry,
        )
        self.shadow_active = Gauge(
            "hub_shadow_active",
            "1 while a shadow run decides this replica's requests with a draft too",
            registry=self.registry,
        )
        self.shadow_compared = Counter(
            "hub_shadow_compared",
            "Requests decided by both the active configuration and the shadow draft",
            registry=self.registry,
        )
        self.shadow_differences = Counter(
            "hub_shadow_differences",
            "Requests the shadow draft decided differently, by kind of difference",
            ["kind"],
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "hub_shadow_dropped",
            "Shadow differences not logged because the decision-log queue was full",
            registry=self.registry,
        )
        self.adapter_calls = Counter(
            "hub_adapter_calls",
            "Adapter calls by outcome (ok, http_4xx/5xx, or the problem code)",
            ["adapter", "operation", "outcome"],
            registry=self.registry,
        )
        self.adapter_seconds = Histogram(
            "hub_adapter_call_duration_seconds",
            "Whole adapter call time (retries and quota waits included)",
            ["adapter", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.adapter_errors = Counter(
            "hub_adapter_errors",
            "Failed adapter calls by problem code",
            ["adapter", "code"],
            registry=self.registry,
        )
        self.outbox = OutboxMetrics(self.registry)
        self.webhook_deliveries = Counter(
            "hub_webhook_deliveries",
            "Vendor webhook delivery attempts by outcome (delivered, failed, parked)",
            ["outcome"],
            registry=self.registry,
        )
        if pools is not None:
            self.registry.register(_PoolCollector(pools))
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._upstream_children: dict[str, Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.request_seconds.labels(route)
        latency.observe(seconds)

    def observe_upstream(self, upstream: str, seconds: float) -> None:
        child = self._upstream_children.get(upstream)
        if child is None:
            child = self._upstream_children[upstream] = self.upstream_seconds.labels(upstream)
        child.observe(seconds)

    def adapter_call(self, adapter: str, operation: str, outcome: str, seconds: float) -> None:
        """One adapter call ended (the adapters' CallObserver)."""
        self.adapter_calls.labels(adapter, operation, outcome).inc()
        self.adapter_seconds.labels(adapter, operation).observe(seconds)
        if outcome != "ok" and not outcome.startswith("http_4"):
            self.adapter_errors.labels(adapter, outcome).inc()

    def watch_adapters(self, states: AdapterStates) -> None:
        """Export the adapters' breaker states and bulkheads, read from ``states`` at scrape."""
        self.registry.register(_AdapterCollector(states))

    def render(self) -> bytes:
        return generate_latest(self.registry)
