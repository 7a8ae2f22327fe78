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

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
