"""Micro-benchmark of the request sample and shadow mode: what they add per request.

Run: ``python bench/bench_sample.py`` (a few seconds). Each figure times the work the gateway's
``finally`` block does for them, for one request on a covered route with a verified person:

- off: the random draw that finds the request not sampled (rate 0) and no shadow run;
- sampled at the default rate (0.1), and at rate 1 (every request): the draw, building the
  :class:`~hub.ops.sample.Observed` tuple and the append to the pending deque;
- the flush, per record: pseudonymising it and pushing the batch to the in-process store
  (off the request path, in a background task once a second);
- shadow on, no difference: the request decided a second time with the active configuration
  and with the draft; and with a difference, queued for the decision log.

The baseline is the route match and the permission decision the gateway makes anyway, timed
in the same run, so the ratios hold on any machine. Each figure is the best of several rounds.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import Any

from hub.auth.principal import Principal
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.config.loader import document_from_raw
from hub.config.replay import DecisionSnapshot
from hub.config.shadow import ShadowRunner, ShadowState
from hub.config.snapshot import compile_snapshot
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import Observed, RequestSampler
from hub.policy.context import RequestContext

RAW: dict[str, Any] = {
    "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
    "routes": [
        {
            "id": "records",
            "path": "/api/est/{establishment_id}/records",
            "upstream": "svc",
            "auth": {"methods": ["jwt"], "scopes": ["est.read"]},
            "rate_limit": {"rate": 100, "period": 1},
        },
        {"id": "open", "prefix": "/api/open/", "upstream": "svc"},
    ],
    "permissions": [
        {
            "id": "est.records.read",
            "routes": ["records"],
            "rules": [
                {"id": "no-keys", "effect": "deny", "subjects": {"kinds": ["api_key"]}},
                {
                    "id": "own-establishment",
                    "effect": "allow",
                    "subjects": {"kinds": ["person"], "scopes": ["est.read"]},
                    "conditions": [
                        {
                            "attr": "principal.establishment",
                            "op": "eq",
                            "ref": "path.establishment_id",
                        },
                        {"attr": "request.client_ip", "op": "cidr", "value": ["10.0.0.0/8"]},
                    ],
                },
            ],
        }
    ],
}
SNAPSHOT = compile_snapshot(1, document_from_raw(RAW), {"svc": None})  # type: ignore[dict-item]
PERSON = Principal(
    subject="per_1",
    kind="person",
    issuer="http://hub",
    client_id="portal",
    scopes=frozenset({"est.read"}),
    acr="urn:hub:acr:mfa",
    establishment="e-1",
)
PATH = "/api/est/e-1/records"
HEADERS = [(b"host", b"api.example.gov"), (b"authorization", b"Bearer x"), (b"accept", b"*/*")]


def best(call: Callable[[], object], *, n: int = 20_000, rounds: int = 7) -> float:
    """Best mean ns per call over ``rounds`` rounds of ``n`` calls."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(n):
            call()
        results.append((time.perf_counter_ns() - started) / n)
    return min(results)


def baseline() -> object:
    match = SNAPSHOT.table.match("GET", "api.example.gov", PATH, HEADERS)
    assert match is not None
    policy = SNAPSHOT.policies[match.route.id]
    return policy.decide(
        RequestContext(
            principal=PERSON, method="GET", path=PATH, params=match.params, headers=HEADERS,
            client_ip="10.1.2.3",
        )
    )  # fmt: skip


MATCH = SNAPSHOT.table.match("GET", "api.example.gov", PATH, HEADERS)
VERDICT = baseline()


def gateway_finally(sampler: RequestSampler, shadow: ShadowRunner) -> Callable[[], None]:
    """The lines the gateway runs for the sample and shadow mode after each request."""

    def run() -> None:
        sampled = sampler.draw()
        if sampled or shadow.on:
            seen = Observed(
                time.time(), "rid", SNAPSHOT, "GET", "api.example.gov", PATH, HEADERS, b"",
                "10.1.2.3", MATCH, PERSON, None, VERDICT, 200,  # type: ignore[arg-type]
            )  # fmt: skip
            if sampled:
                sampler.offer(seen)
            shadow.observe(seen)

    return run


def sampler_at(rate: float, store: MemoryEphemeralStore | None = None) -> RequestSampler:
    return RequestSampler(
        store or MemoryEphemeralStore(),
        key="sample:bench",
        size=10_000,
        max_age=3600,
        rate=rate,
        pseudonymiser=Pseudonymiser(b"k" * 32),
    )


def shadow_with(raw: dict[str, Any]) -> ShadowRunner:
    runner = ShadowRunner(pseudonymiser=Pseudonymiser(b"k" * 32), queue_size=10**9)
    runner.state = ShadowState(
        run_id=1,
        draft_id=1,
        draft_revision=1,
        ends_at=time.time() + 3600,
        decisions=DecisionSnapshot.compile(document_from_raw(raw), label="draft"),
    )
    return runner


def main() -> None:
    off = ShadowRunner(pseudonymiser=Pseudonymiser(b"k" * 32), queue_size=1)
    base = best(baseline)
    rows: list[tuple[str, float]] = [
        ("baseline: route match + permission decision", base),
        ("sample off, shadow off (rate 0)", best(gateway_finally(sampler_at(0.0), off))),
        ("sampled at rate 0.1 (the default)", best(gateway_finally(sampler_at(0.1), off))),
        ("sampled at rate 1 (every request)", best(gateway_finally(sampler_at(1.0), off))),
    ]
    same = shadow_with(RAW)
    rows.append(("shadow on, same decision", best(gateway_finally(sampler_at(0.0), same))))
    changed_raw = copy.deepcopy(RAW)
    changed_raw["routes"][0]["rate_limit"] = {"rate": 50, "period": 1}
    changed = shadow_with(changed_raw)
    rows.append(("shadow on, a difference queued", best(gateway_finally(sampler_at(0.0), changed))))

    store = MemoryEphemeralStore()
    flushing = sampler_at(1.0, store)
    seen = Observed(
        time.time(), "rid", SNAPSHOT, "GET", "api.example.gov", PATH, HEADERS, b"a=1",
        "10.1.2.3", MATCH, PERSON, None, VERDICT, 200,  # type: ignore[arg-type]
    )  # fmt: skip

    async def flush_batches() -> float:
        timings = []
        for _ in range(5):
            for _ in range(1000):
                flushing.offer(seen)
            started = time.perf_counter_ns()
            await flushing.flush()
            timings.append((time.perf_counter_ns() - started) / 1000)
        return min(timings)

    rows.append(("flush, per record (background, once a second)", asyncio.run(flush_batches())))

    print(f"{'what':52} {'ns/request':>11} {'vs baseline':>12}")
    for name, ns in rows:
        print(f"{name:52} {ns:11.0f} {ns / base:11.2f}x")


if __name__ == "__main__":
    main()
