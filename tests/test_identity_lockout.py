"""Login throttle (hub.identity.lockout): account lock-out, back-off, spraying, memory bound."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.identity.lockout import (
    AccountState,
    AddressState,
    Decision,
    LoginThrottle,
    ThrottlePolicy,
)

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fail(
    throttle: LoginThrottle, times: int, account: str = "alice", address: str = "10.0.0.1"
) -> Decision:
    decision = Decision(allowed=True)
    for _ in range(times):
        decision = throttle.record(account, address, False)
    return decision


def test_account_locks_after_five_failures() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        assert throttle.check("alice", "10.0.0.1").allowed
        assert throttle.record("alice", "10.0.0.1", False).allowed
    decision = throttle.record("alice", "10.0.0.1", False)
    assert decision == Decision(allowed=False, retry_after=30.0, locked="account")
    assert decision.retry_after_seconds == 30
    # The lock holds for the account from any address, and only for that account.
    assert throttle.check("alice", "192.0.2.9") == decision
    assert throttle.check("bob", "192.0.2.9").allowed
    clock.now += 29.5
    assert throttle.check("alice", "10.0.0.1") == Decision(
        allowed=False, retry_after=0.5, locked="account"
    )
    assert throttle.check("alice", "10.0.0.1").retry_after_seconds == 1
    clock.now += 0.5
    assert throttle.check("alice", "10.0.0.1").allowed


def test_back_off_doubles_to_the_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 4)
    locks = []
    for _ in range(8):
        decision = throttle.record("alice", "10.0.0.1", False)
        locks.append(decision.retry_after)
        clock.now += decision.retry_after
        assert throttle.check("alice", "10.0.0.1").allowed
    assert locks == [30, 60, 120, 240, 480, 900, 900, 900]


def test_success_resets_the_account() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 4)
    assert throttle.record("alice", "10.0.0.1", True).allowed
    assert throttle.account_state("alice") is None
    assert fail(throttle, 4).allowed
    assert not fail(throttle, 1).allowed
    clock.now += 30
    throttle.record("alice", "10.0.0.1", True)
    assert fail(throttle, 4).allowed  # the back-off starts over too


def test_failures_decay_after_a_quiet_period() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 4)
    clock.now += 899
    assert throttle.account_state("alice") == AccountState(
        failures=4, last_failure=T0, locked_until=0.0
    )
    clock.now += 1
    assert throttle.account_state("alice") is None
    assert fail(throttle, 4).allowed


def test_waiting_out_a_lock_does_not_reset_the_back_off() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 6)  # second lock: 60 s from the sixth failure
    clock.now += 60 + 899
    assert throttle.record("alice", "10.0.0.1", False).retry_after == 120
    # A full quiet period after the lock ended, it is forgotten.
    clock.now += 120 + 900
    assert throttle.account_state("alice") is None


def test_accounts_are_matched_case_insensitively() -> None:
    throttle = LoginThrottle(clock=Clock())
    fail(throttle, 3, account="Alice")
    fail(throttle, 2, account=" ALICE ")
    assert not throttle.check("alice", "10.9.9.9").allowed


def test_spraying_from_one_address_is_throttled() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(19):
        assert throttle.record(f"person-{i}", "203.0.113.7", False).allowed
        clock.now += 1
    decision = throttle.record("person-19", "203.0.113.7", False)
    assert decision == Decision(allowed=False, retry_after=30.0, locked="address")
    assert not throttle.check("someone-else", "203.0.113.7").allowed
    # Other addresses, even for the same accounts, are unaffected.
    assert throttle.check("person-1", "203.0.113.8").allowed
    # A valid login from the sprayer does not wash its record.
    clock.now += 30
    assert throttle.record("own-account", "203.0.113.7", True).allowed
    assert throttle.record("person-20", "203.0.113.7", False).retry_after == 60


def test_a_tripped_address_stays_on_probation_until_quiet() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(20):
        throttle.record(f"p{i}", "203.0.113.7", False)
    clock.now += 700  # the first failures have left the window, the strike has not
    assert throttle.check("q", "203.0.113.7").allowed
    assert throttle.record("q", "203.0.113.7", False).retry_after == 60
    clock.now += 60 + 900
    assert throttle.address_state("203.0.113.7") is None
    for i in range(19):
        assert throttle.record(f"r{i}", "203.0.113.7", False).allowed


def test_address_failures_slide_out_of_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(19):
        throttle.record(f"person-{i}", "203.0.113.7", False)
    clock.now += 600
    assert throttle.record("person-x", "203.0.113.7", False).allowed
    assert len(throttle.address_state("203.0.113.7").failures) == 1  # type: ignore[union-attr]


def test_ipv6_clients_are_grouped_by_slash_64() -> None:
    throttle = LoginThrottle(clock=Clock())
    for i in range(20):
        throttle.record(f"person-{i}", f"2001:db8:1:2::{i:x}", False)
    assert not throttle.check("new", "2001:db8:1:2:ffff::1").allowed
    assert throttle.check("new", "2001:db8:1:3::1").allowed
    state = throttle.address_state("2001:db8:1:2::99")
    assert state is not None
    assert state.strikes == 1


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    throttle = LoginThrottle(clock=Clock())
    for i in range(10):
        throttle.record(f"p{i}", "198.51.100.4", False)
        throttle.record(f"q{i}", "::ffff:198.51.100.4", False)
    assert throttle.check("new", "198.51.100.4").locked == "address"


def test_the_longer_lock_is_reported() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(15):
        throttle.record(f"p{i}", "10.1.1.1", False)
    fail(throttle, 5, address="10.1.1.1")  # address trips (20) and alice locks (5)
    decision = throttle.check("alice", "10.1.1.1")
    assert decision.retry_after == 30
    assert throttle.check("bob", "10.1.1.1").locked == "address"
    assert throttle.check("alice", "10.2.2.2").locked == "account"


def test_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(ThrottlePolicy(max_entries=50), clock=clock)
    fail(throttle, 5, account="victim")
    for i in range(1000):
        throttle.record(f"person-{i}", f"10.0.{i // 250}.{i % 250}", False)
        if i % 10 == 0:  # the attacker keeps probing the victim, keeping it recent
            assert not throttle.check("victim", "192.0.2.1").allowed
        clock.now += 0.001
    assert len(throttle) <= 100
    assert throttle.account_state("person-999") is not None
    assert throttle.account_state("person-0") is None
    assert not throttle.check("victim", "192.0.2.1").allowed


def test_snapshot_round_trips_through_json() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, 6)
    for i in range(20):
        throttle.record(f"p{i}", "2001:db8::1", False)
    throttle.record("carol", "10.0.0.3", False)
    data = json.loads(json.dumps(throttle.snapshot()))
    assert data["version"] == 1
    assert data["accounts"]["alice"] == {
        "failures": 6,
        "last_failure": T0,
        "locked_until": T0 + 60,
    }
    assert data["addresses"]["2001:db8::/64"]["strikes"] == 1
    assert len(data["addresses"]["2001:db8::/64"]["failures"]) == 20
    restored = LoginThrottle.from_snapshot(data, clock=clock)
    for account, address in [("alice", "10.0.0.9"), ("x", "2001:db8::5"), ("carol", "1.2.3.4")]:
        assert restored.check(account, address) == throttle.check(account, address)
    assert restored.snapshot() == throttle.snapshot()
    # Forgotten state is not persisted.
    clock.now += 10_000
    assert throttle.snapshot() == {"version": 1, "accounts": {}, "addresses": {}}


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": 2, "accounts": {}, "addresses": {}},
        {"version": 1, "accounts": {"a": {"failures": 1}}, "addresses": {}},
        {"version": 1, "accounts": [], "addresses": {}},
        {"version": 1, "accounts": {}, "addresses": {"a": {"failures": "x"}}},
    ],
)
def test_malformed_snapshots_raise_value_error(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LoginThrottle.from_snapshot(data)


def test_states_are_pure_values() -> None:
    policy = ThrottlePolicy(account_max_failures=2, base_lock=10, max_lock=15)
    state = AccountState()
    state = state.after_failure(100.0, policy)
    assert state == AccountState(failures=1, last_failure=100.0)
    state = state.after_failure(101.0, policy).after_failure(102.0, policy)
    assert state.locked_until == 117.0  # 2x10 capped at 15
    assert AccountState.from_dict(state.to_dict()) == state
    addr = AddressState().after_failure(5.0, policy)
    assert AddressState.from_dict(addr.to_dict()) == addr


@pytest.mark.parametrize(
    "fields",
    [
        {"account_max_failures": 0},
        {"base_lock": 0},
        {"base_lock": 60, "max_lock": 30},
        {"address_window": 1000, "quiet_period": 900},
        {"max_entries": 0},
    ],
)
def test_policy_validation(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(**fields)  # type: ignore[arg-type]


def test_a_persistent_guesser_gets_few_attempts() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    attempts = 0
    for _ in range(3 * 3600):  # one try per second for three hours, one account
        if throttle.check("alice", f"10.7.{attempts % 200}.1").allowed:
            throttle.record("alice", f"10.7.{attempts % 200}.1", False)
            attempts += 1
        clock.now += 1
    assert attempts <= 25


def test_a_persistent_sprayer_gets_few_attempts() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    attempts = 0
    for _ in range(3600):  # one try per second for an hour, a new account each time
        if throttle.check(f"person-{attempts}", "198.51.100.66").allowed:
            throttle.record(f"person-{attempts}", "198.51.100.66", False)
            attempts += 1
        clock.now += 1
    assert attempts <= 30


ops = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=400, allow_nan=False),  # seconds to advance
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]),
        st.sampled_from(["check", "fail", "fail", "fail", "succeed"]),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_never_allows_before_retry_after(steps: list[tuple[float, str, str, str]]) -> None:
    clock = Clock()
    policy = ThrottlePolicy(account_max_failures=3, address_max_failures=5)
    throttle = LoginThrottle(policy, clock=clock)
    # (account, address) -> (until, locked by): a promise made by a refusal.
    promises: dict[tuple[str, str], tuple[float, str]] = {}
    for advance, account, address, action in steps:
        clock.now += advance
        if action == "fail":
            throttle.record(account, address, False)
        elif action == "succeed":
            throttle.record(account, address, True)
            # Only an account lock is lifted by a success.
            for key, (_, by) in list(promises.items()):
                if key[0] == account and by == "account":
                    del promises[key]
        decision = throttle.check(account, address)
        until, _ = promises.get((account, address), (0.0, ""))
        if clock.now < until:
            assert not decision.allowed
            assert clock.now + decision.retry_after >= until - 1e-6
        if not decision.allowed:
            assert decision.retry_after > 0
            assert decision.locked is not None
            promises[(account, address)] = (clock.now + decision.retry_after, decision.locked)
        else:
            assert decision == Decision(allowed=True)
        assert decision.retry_after <= policy.max_lock


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.floats(min_value=0.01, max_value=10.0))
def test_a_lock_lifts_exactly_at_retry_after(failures: int, gap: float) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    decision = Decision(allowed=True)
    for _ in range(failures):
        decision = throttle.record("alice", "10.0.0.1", False)
        clock.now += gap
    decision = throttle.check("alice", "10.0.0.1")
    if decision.allowed:
        return
    clock.now += decision.retry_after - 0.01
    assert not throttle.check("alice", "10.0.0.1").allowed
    clock.now += 0.02
    assert throttle.check("alice", "10.0.0.1").allowed
