"""Properties of the pure GCRA decision (hub.ratelimit.gcra)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ratelimit.base import Decision, Limit
from hub.ratelimit.gcra import bounds, decide, emission_interval, micros

# 1 ms .. 10 s periods; whole milliseconds keep the generated examples readable
limits = st.builds(
    Limit,
    rate=st.integers(1, 50),
    period=st.integers(1, 10_000).map(lambda ms: ms / 1000),
    burst=st.integers(0, 20),
)
EPOCH = 1_700_000_000_000_000  # Redis TIME in microseconds is this large; stay exact there too


@st.composite
def workloads(draw: st.DrawFn) -> tuple[Limit, list[tuple[int, int]]]:
    """A limit and (time, cost) hits with non-decreasing times, dense enough to be refused."""
    limit = draw(limits)
    interval = emission_interval(limit)
    gaps = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(0, 2 * interval), st.integers(0, 10 * interval)),
            min_size=1,
            max_size=80,
        )
    )
    costs = draw(st.lists(st.integers(1, limit.burst + 1), min_size=len(gaps), max_size=len(gaps)))
    hits, now = [], EPOCH + draw(st.integers(0, 10**9))
    for gap, cost in zip(gaps, costs, strict=True):
        now += gap
        hits.append((now, cost))
    return limit, hits


def run(
    limit: Limit, hits: list[tuple[int, int]], tat: int | None = None
) -> tuple[list[Decision], int | None]:
    decisions = []
    for now, cost in hits:
        decision, new_tat = decide(tat, now, limit, cost)
        decisions.append(decision)
        if new_tat is not None:
            tat = new_tat
    return decisions, tat


@given(limits, st.integers(0, 10**15), st.integers(1, 60))
def test_fresh_bucket_lets_exactly_burst_plus_one_through_at_one_instant(
    limit: Limit, now: int, attempts: int
) -> None:
    decisions, _ = run(limit, [(now, 1)] * (limit.burst + 1 + attempts))
    assert [d.allowed for d in decisions] == [True] * (limit.burst + 1) + [False] * attempts
    assert [d.remaining for d in decisions[: limit.burst + 1]] == list(range(limit.burst, -1, -1))


@given(workloads(), st.integers(1, 60))
def test_never_more_than_burst_plus_one_at_one_instant(
    workload: tuple[Limit, list[tuple[int, int]]], attempts: int
) -> None:
    limit, hits = workload
    _, tat = run(limit, hits)
    instant = hits[-1][0]
    decisions, _ = run(limit, [(instant, 1)] * attempts, tat)
    assert sum(d.allowed for d in decisions) <= limit.burst + 1


@given(workloads())
def test_any_window_admits_at_most_burst_plus_one_plus_window_over_interval(
    workload: tuple[Limit, list[tuple[int, int]]],
) -> None:
    limit, hits = workload
    decisions, _ = run(limit, hits)
    admitted = [(now, cost) for (now, cost), d in zip(hits, decisions, strict=True) if d.allowed]
    true_interval = limit.period / limit.rate * 1_000_000
    for i, (start, _) in enumerate(admitted):
        total = 0
        for end, cost in admitted[i:]:
            total += cost
            window = end - start
            # the stored interval is rounded up, so the bound holds for it and the true one
            assert total <= limit.burst + 1 + window // emission_interval(limit)
            # (a hair of slack: window / true_interval may land a rounding error below n)
            assert total <= limit.burst + 1 + math.floor(window / true_interval + 1e-9)


@given(workloads())
def test_refused_hits_never_change_the_tat(workload: tuple[Limit, list[tuple[int, int]]]) -> None:
    limit, hits = workload
    tat: int | None = None
    for now, cost in hits:
        decision, new_tat = decide(tat, now, limit, cost)
        if decision.allowed:
            assert new_tat is not None
            tat = new_tat
        else:
            assert new_tat is None
            # asking again at once gets the very same answer: the refusal consumed nothing
            assert decide(tat, now, limit, cost) == (decision, None)


def exhaust(limit: Limit, tat: int | None, now: int) -> int | None:
    """Hit at ``now`` until refused; return the TAT then (never changed by the refusal)."""
    for _ in range(limit.burst + 2):
        decision, new_tat = decide(tat, now, limit)
        if not decision.allowed:
            return tat
        tat = new_tat
    raise AssertionError("burst + 2 hits at one instant were all allowed")


@given(workloads(), st.integers(1, 60))
def test_waiting_retry_after_is_enough_and_not_more_than_needed(
    workload: tuple[Limit, list[tuple[int, int]]], cost_seed: int
) -> None:
    limit, hits = workload
    _, tat = run(limit, hits)
    now = hits[-1][0]
    tat = exhaust(limit, tat, now)
    cost = 1 + cost_seed % (limit.burst + 1)
    decision, new_tat = decide(tat, now, limit, cost)
    assert not decision.allowed
    assert new_tat is None
    wait = round(decision.retry_after * 1_000_000)
    assert wait > 0
    assert decide(tat, now + wait, limit, cost)[0].allowed
    assert not decide(tat, now + wait - 1, limit, cost)[0].allowed


@given(workloads())
def test_bucket_is_full_again_after_reset_after(
    workload: tuple[Limit, list[tuple[int, int]]],
) -> None:
    limit, hits = workload
    decisions, tat = run(limit, hits)
    now = hits[-1][0]
    later = now + round(decisions[-1].reset_after * 1_000_000)
    if decisions[-1].allowed:
        assert tat == later  # the stored TAT is the moment the bucket is full again
    fresh, _ = decide(None, later, limit)
    assert decide(tat, later, limit) == decide(None, later, limit)
    assert fresh.remaining == limit.burst


@given(workloads(), st.integers(1, 60))
def test_decision_depends_only_on_how_far_the_tat_is_ahead(
    workload: tuple[Limit, list[tuple[int, int]]], cost_seed: int
) -> None:
    # the Redis store relies on this: its script returns max(TAT - now, 0) alone
    limit, hits = workload
    _, tat = run(limit, hits)
    now = hits[-1][0]
    cost = 1 + cost_seed % (limit.burst + 1)
    lead = 0 if tat is None else max(tat - now, 0)
    decision, new_tat = decide(tat, now, limit, cost)
    shifted, shifted_tat = decide(lead, 0, limit, cost)
    assert shifted == decision
    assert (shifted_tat is None) == (new_tat is None)
    if new_tat is not None and shifted_tat is not None:
        assert new_tat - now == shifted_tat


def test_decision_numbers_for_a_known_sequence() -> None:
    limit = Limit(rate=5, period=1, burst=2)  # T = 200 ms, three at once
    t0 = EPOCH
    first, tat = decide(None, t0, limit)
    assert first == Decision(allowed=True, limit=3, remaining=2, retry_after=0.0, reset_after=0.2)
    _, tat = decide(tat, t0, limit)
    third, tat = decide(tat, t0, limit)
    assert third == Decision(allowed=True, limit=3, remaining=0, retry_after=0.0, reset_after=0.6)
    fourth, unchanged = decide(tat, t0 + micros(0.05), limit)
    assert unchanged is None
    assert fourth == Decision(
        allowed=False, limit=3, remaining=0, retry_after=0.15, reset_after=0.55
    )
    double, _ = decide(tat, t0 + micros(0.05), limit, cost=2)
    assert double.retry_after == pytest.approx(0.35)


def test_interval_is_rounded_up_to_whole_microseconds() -> None:
    assert emission_interval(Limit(rate=3, period=1)) == 333_334
    assert emission_interval(Limit(rate=10, period=0.7)) == 70_000
    assert emission_interval(Limit(rate=10_000_000, period=1)) == 1


@pytest.mark.parametrize("cost", [0, -1, 4])
def test_cost_outside_one_to_burst_plus_one_is_rejected(cost: int) -> None:
    with pytest.raises(ValueError, match="cost"):
        bounds(Limit(rate=1, period=1, burst=2), cost)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "period": 1},
        {"rate": 1, "period": 0},
        {"rate": 1, "period": 1e-7},
        {"rate": 1, "period": math.inf},
        {"rate": 1, "period": 1, "burst": -1},
    ],
)
def test_invalid_limits_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limit(**kwargs)  # type: ignore[arg-type]
