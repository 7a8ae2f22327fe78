"""Properties of the multi-bucket GCRA decision (all buckets pass, or none is charged)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ratelimit.base import Bucket, Decision, Limit, check_buckets
from hub.ratelimit.gcra import decide, decide_all, emission_interval, micros
from hub.ratelimit.memory import MemoryRateLimitStore

limits = st.builds(
    Limit,
    rate=st.integers(1, 50),
    period=st.integers(1, 10_000).map(lambda ms: ms / 1000),
    burst=st.integers(0, 20),
)
EPOCH = 1_700_000_000_000_000


@st.composite
def multi_workloads(draw: st.DrawFn) -> tuple[list[Limit], list[tuple[int, int]]]:
    """One to four limits and (time, cost) hits dense enough for each of them to refuse."""
    chosen = draw(st.lists(limits, min_size=1, max_size=4))
    interval = min(emission_interval(limit) for limit in chosen)
    gaps = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(0, 2 * interval), st.integers(0, 20 * interval)),
            min_size=1,
            max_size=60,
        )
    )
    top = min(limit.burst for limit in chosen) + 1
    costs = draw(st.lists(st.integers(1, top), min_size=len(gaps), max_size=len(gaps)))
    hits, now = [], EPOCH + draw(st.integers(0, 10**9))
    for gap, cost in zip(gaps, costs, strict=True):
        now += gap
        hits.append((now, cost))
    return chosen, hits


def run_all(
    chosen: list[Limit], hits: list[tuple[int, int]]
) -> tuple[list[tuple[Decision, ...]], list[int | None]]:
    tats: list[int | None] = [None] * len(chosen)
    out = []
    for now, cost in hits:
        decisions, new_tats = decide_all(tats, now, chosen, cost)
        out.append(decisions)
        if new_tats is not None:
            tats = list(new_tats)
    return out, tats


@given(multi_workloads())
def test_a_hit_passes_exactly_when_every_bucket_would_pass_alone(
    workload: tuple[list[Limit], list[tuple[int, int]]],
) -> None:
    chosen, hits = workload
    tats: list[int | None] = [None] * len(chosen)
    for now, cost in hits:
        alone = [decide(tat, now, limit, cost) for tat, limit in zip(tats, chosen, strict=True)]
        decisions, new_tats = decide_all(tats, now, chosen, cost)
        expected = all(decision.allowed for decision, _ in alone)
        assert {d.allowed for d in decisions} == {expected}
        if expected:
            assert new_tats == tuple(new for _, new in alone)
            assert decisions == tuple(decision for decision, _ in alone)
            tats = list(new_tats)
        else:
            assert new_tats is None
            for (single, _), multi in zip(alone, decisions, strict=True):
                # the refusing buckets say how long to wait; the others had room and say so
                assert multi.retry_after == single.retry_after
                if single.allowed:
                    assert multi.retry_after == 0.0
                    assert multi.remaining == single.remaining + cost


@given(multi_workloads())
def test_each_bucket_is_charged_only_what_it_alone_would_admit(
    workload: tuple[list[Limit], list[tuple[int, int]]],
) -> None:
    chosen, hits = workload
    results, final = run_all(chosen, hits)
    admitted = [hit for hit, ds in zip(hits, results, strict=True) if ds[0].allowed]
    for index, limit in enumerate(chosen):
        tat: int | None = None
        for now, cost in admitted:
            decision, tat = decide(tat, now, limit, cost)
            assert decision.allowed  # the admitted hits are a valid schedule for every bucket
        assert tat == final[index]


@given(multi_workloads())
def test_a_refused_multi_hit_consumes_nothing_anywhere(
    workload: tuple[list[Limit], list[tuple[int, int]]],
) -> None:
    chosen, hits = workload
    tats: list[int | None] = [None] * len(chosen)
    for now, cost in hits:
        decisions, new_tats = decide_all(tats, now, chosen, cost)
        if new_tats is None:
            # asked again at once: the very same answer, so nothing was taken
            assert decide_all(tats, now, chosen, cost) == (decisions, None)
        else:
            tats = list(new_tats)


@given(multi_workloads())
def test_waiting_the_longest_retry_after_lets_the_hit_through(
    workload: tuple[list[Limit], list[tuple[int, int]]],
) -> None:
    chosen, hits = workload
    tats: list[int | None] = [None] * len(chosen)
    for now, cost in hits:
        decisions, new_tats = decide_all(tats, now, chosen, cost)
        if new_tats is None:
            wait = max(round(d.retry_after * 1_000_000) for d in decisions)
            assert wait > 0
            assert decide_all(tats, now + wait, chosen, cost)[1] is not None
        else:
            tats = list(new_tats)


@given(limits, st.integers(1, 30))
def test_one_bucket_is_the_single_bucket_decision(limit: Limit, attempts: int) -> None:
    tat: int | None = None
    multi: list[int | None] = [None]
    for step in range(attempts):
        now = EPOCH + step * 1000
        single, tat_after = decide(tat, now, limit)
        (decision,), new = decide_all(multi, now, [limit])
        assert decision.allowed == single.allowed
        assert decision.retry_after == single.retry_after
        if single.allowed:
            assert decision == single
            assert new == (tat_after,)
            tat, multi = tat_after, [tat_after]


def test_a_known_refusal_reports_both_buckets() -> None:
    route = Limit(rate=10, period=1, burst=9)  # ten at once
    plan = Limit(rate=1, period=1, burst=1)  # two at once, then one a second
    tats: list[int | None] = [None, None]
    for _ in range(2):
        _, new = decide_all(tats, EPOCH, [route, plan])
        assert new is not None
        tats = list(new)
    (route_d, plan_d), new = decide_all(tats, EPOCH, [route, plan])
    assert new is None
    assert (route_d.allowed, route_d.remaining, route_d.retry_after) == (False, 8, 0.0)
    assert (plan_d.allowed, plan_d.remaining, plan_d.retry_after) == (False, 0, 1.0)


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ([], "at least one"),
        (
            [
                Bucket(key="a", limit=Limit(rate=1, period=1)),
                Bucket(key="a", limit=Limit(rate=2, period=1)),
            ],
            "more than once",
        ),
    ],
)
def test_bucket_lists_must_be_non_empty_and_name_each_key_once(
    buckets: list[Bucket], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_buckets(buckets)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(multi_workloads(), st.integers(1, 3))
async def test_the_memory_store_decides_exactly_as_decide_all(
    workload: tuple[list[Limit], list[tuple[int, int]]], callers: int
) -> None:
    # several callers share the first bucket (a route) and each has its own others (a plan)
    chosen, hits = workload
    clock = _Clock()
    store = MemoryRateLimitStore(clock=clock)
    tats: dict[str, int | None] = {}
    for step, (now, cost) in enumerate(hits):
        clock.now = now / 1_000_000
        caller = step % callers
        buckets = [
            Bucket(key="shared" if i == 0 else f"c{caller}:{i}", limit=limit)
            for i, limit in enumerate(chosen)
        ]
        expected, new_tats = decide_all(
            [tats.get(b.key) for b in buckets], micros(clock.now), chosen, cost
        )
        assert await store.hit_all(buckets, cost) == expected
        if new_tats is not None:
            tats.update({b.key: t for b, t in zip(buckets, new_tats, strict=True)})
