"""The circuit breaker's state machine, driven by an injected clock."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.config.model import BreakerSpec
from hub.upstream.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    failure_threshold: int = 3, open_seconds: float = 10.0, half_open_max: int = 1
) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    spec = BreakerSpec(
        failure_threshold=failure_threshold, open_seconds=open_seconds, half_open_max=half_open_max
    )
    return CircuitBreaker(spec, clock=clock), clock


def test_starts_closed_and_allows() -> None:
    breaker, _ = make()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(100))


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _ = make(failure_threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert not breaker.would_allow()


def test_success_resets_the_consecutive_count() -> None:
    breaker, _ = make(failure_threshold=3)
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_open_turns_half_open_after_open_seconds() -> None:
    breaker, clock = make(failure_threshold=1, open_seconds=10)
    breaker.record_failure()
    clock.now += 9.999
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.001
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_admits_at_most_half_open_max_probes() -> None:
    breaker, clock = make(failure_threshold=1, open_seconds=1, half_open_max=2)
    breaker.record_failure()
    clock.now += 1
    assert breaker.would_allow()
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.would_allow()
    assert not breaker.allow()
    assert breaker.probes_in_flight == 2
    breaker.release_probe()
    assert breaker.allow()
    assert not breaker.allow()


def test_half_open_success_closes() -> None:
    breaker, clock = make(failure_threshold=1, open_seconds=1)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_half_open_failure_reopens_for_a_full_period() -> None:
    breaker, clock = make(failure_threshold=5, open_seconds=2)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 2
    assert breaker.allow()
    clock.now += 0.5
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 1.9
    assert breaker.state is BreakerState.OPEN
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN


def test_success_while_open_is_ignored() -> None:
    breaker, _ = make(failure_threshold=1)
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN


def test_on_change_reports_each_transition() -> None:
    breaker, clock = make(failure_threshold=1, open_seconds=1)
    seen: list[tuple[BreakerState, BreakerState]] = []
    breaker.on_change = lambda old, new: seen.append((old, new))
    generation = breaker.generation
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.record_success()
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert breaker.generation == generation + 3


class BreakerMachine(RuleBasedStateMachine):
    """Random traffic against one breaker; probes are resolved the way the pool resolves them."""

    def __init__(self) -> None:
        super().__init__()
        self.breaker, self.clock = make(failure_threshold=3, open_seconds=5, half_open_max=2)
        # Probes granted in the current half-open spell and not yet resolved (the model).
        self.probes: list[int] = []

    def _spell_changed(self, generation: int) -> None:
        if self.breaker.generation != generation:
            self.probes.clear()

    @rule()
    def request(self) -> None:
        state = self.breaker.state
        generation = self.breaker.generation
        granted = self.breaker.allow()
        if state is BreakerState.CLOSED:
            assert granted
        elif state is BreakerState.OPEN:
            assert not granted
        else:
            assert granted == (len(self.probes) < 2)
            if granted:
                self.probes.append(generation)

    @precondition(lambda self: bool(self.probes))
    @rule(verdict=st.sampled_from([True, False, None]))
    def resolve_probe(self, verdict: bool | None) -> None:
        self.probes.pop()
        assert self.breaker.state is BreakerState.HALF_OPEN
        if verdict is None:
            self.breaker.release_probe()
            assert self.breaker.state is BreakerState.HALF_OPEN
        elif verdict:
            self.breaker.record_success()
            assert self.breaker.state is BreakerState.CLOSED
            self.probes.clear()
        else:
            self.breaker.record_failure()
            assert self.breaker.state is BreakerState.OPEN
            self.probes.clear()

    @precondition(lambda self: self.breaker.state is BreakerState.CLOSED)
    @rule(ok=st.booleans())
    def closed_outcome(self, ok: bool) -> None:
        if ok:
            self.breaker.record_success()
        else:
            self.breaker.record_failure()

    @rule(seconds=st.floats(min_value=0, max_value=8, allow_nan=False))
    def tick(self, seconds: float) -> None:
        generation = self.breaker.generation
        self.clock.now += seconds
        _ = self.breaker.state
        self._spell_changed(generation)

    @invariant()
    def probes_bounded(self) -> None:
        assert self.breaker.probes_in_flight <= 2
        if self.breaker.state is BreakerState.HALF_OPEN:
            assert self.breaker.probes_in_flight == len(self.probes)
        else:
            assert self.breaker.probes_in_flight == 0
            assert not self.probes


BreakerMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestBreakerMachine = BreakerMachine.TestCase
