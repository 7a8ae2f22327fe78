"""Lock-out and back-off after failed sign-ins, per account and per client address.

An account locks after ``account_max_failures`` consecutive failures, for ``base_lock``
seconds doubling with every further failure up to ``max_lock``; a success clears it. An
address that fails ``address_max_failures`` times within ``address_window`` (password
spraying: a few guesses against many accounts) locks the same way, escalating while it keeps
failing (once tripped, every further failure locks it again). A success does not clear an
address, or an attacker holding one valid account could wash its record between guesses.
Either record is forgotten after ``quiet_period`` seconds
without a failure (counted from the end of any lock, so waiting out a lock never resets the
back-off). Nonexistent accounts are throttled exactly like real ones, so lock-out says nothing
about existence. IPv6 clients are grouped by /64, the block one host usually holds.

The state is plain frozen dataclasses so a shared store can persist it later;
:meth:`LoginThrottle.snapshot` gives it as JSON-ready data shaped::

    {
      "version": 1,
      "accounts": {"<account>": {"failures": 3, "last_failure": 1700000000.0,
                                 "locked_until": 0.0}},
      "addresses": {"<address or /64>": {"failures": [1700000000.0, ...],
                                         "strikes": 1, "locked_until": 1700000030.0}}
    }

Times are clock readings (Unix seconds with the default clock, so they survive a restart);
``failures`` of an address lists the recent failure times, oldest first, at most
``address_max_failures`` of them; each mapping is in least-recently-used order. Not
thread-safe: use it from one event loop.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = [
    "AccountState",
    "AddressState",
    "Decision",
    "LoginThrottle",
    "ThrottlePolicy",
]

_SNAPSHOT_VERSION = 1
_MAX_DOUBLINGS = 32  # beyond this every sane cap is reached; avoids huge floats


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottlePolicy:
    """Thresholds and back-off of the login throttle; times in seconds."""

    account_max_failures: int = 5
    address_max_failures: int = 20
    address_window: float = 600.0
    base_lock: float = 30.0
    max_lock: float = 900.0
    quiet_period: float = 900.0
    max_entries: int = 100_000

    def __post_init__(self) -> None:
        if self.account_max_failures < 1 or self.address_max_failures < 1:
            raise ValueError("failure thresholds must be at least 1")
        if not 0 < self.base_lock <= self.max_lock:
            raise ValueError("need 0 < base_lock <= max_lock")
        if self.address_window <= 0 or self.quiet_period < self.address_window:
            raise ValueError("need 0 < address_window <= quiet_period")
        if self.max_entries < 1:
            raise ValueError("max_entries must be at least 1")

    def lock_seconds(self, escalation: int) -> float:
        """Lock length after ``escalation`` doublings (0 → ``base_lock``), capped."""
        return min(self.max_lock, math.ldexp(self.base_lock, min(escalation, _MAX_DOUBLINGS)))


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountState:
    """Consecutive failures of one account and its lock."""

    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0

    def forgotten(self, now: float, policy: ThrottlePolicy) -> bool:
        """Whether the quiet period has passed, so this state no longer counts."""
        return now >= max(self.last_failure, self.locked_until) + policy.quiet_period

    def after_failure(self, now: float, policy: ThrottlePolicy) -> AccountState:
        """The state once one more failure is recorded at ``now``."""
        base = AccountState() if self.forgotten(now, policy) else self
        failures = base.failures + 1
        locked_until = base.locked_until
        over = failures - policy.account_max_failures
        if over >= 0:
            locked_until = max(locked_until, now + policy.lock_seconds(over))
        return AccountState(failures=failures, last_failure=now, locked_until=locked_until)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {
            "failures": self.failures,
            "last_failure": self.last_failure,
            "locked_until": self.locked_until,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            failures=int(data["failures"]),
            last_failure=float(data["last_failure"]),
            locked_until=float(data["locked_until"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressState:
    """Recent failures from one client address, its lock and how often it has tripped."""

    failures: tuple[float, ...] = ()
    strikes: int = 0
    locked_until: float = 0.0

    def forgotten(self, now: float, policy: ThrottlePolicy) -> bool:
        """Whether the quiet period has passed, so this state no longer counts."""
        last = self.failures[-1] if self.failures else 0.0
        return now >= max(last, self.locked_until) + policy.quiet_period

    def after_failure(self, now: float, policy: ThrottlePolicy) -> AddressState:
        """The state once one more failure is recorded at ``now``."""
        base = AddressState() if self.forgotten(now, policy) else self
        horizon = now - policy.address_window
        recent = (*(t for t in base.failures if t > horizon), now)
        recent = recent[-policy.address_max_failures :]
        strikes, locked_until = base.strikes, base.locked_until
        # Once tripped, an address stays on probation: each further failure locks it again,
        # longer each time, until a quiet period passes. Otherwise its old failures would
        # slide out of the window during a long lock and hand it a fresh allowance.
        if strikes or len(recent) >= policy.address_max_failures:
            locked_until = max(locked_until, now + policy.lock_seconds(strikes))
            strikes += 1
        return AddressState(failures=recent, strikes=strikes, locked_until=locked_until)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see the module docstring)."""
        return {
            "failures": list(self.failures),
            "strikes": self.strikes,
            "locked_until": self.locked_until,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AddressState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            failures=tuple(float(t) for t in data["failures"]),
            strikes=int(data["strikes"]),
            locked_until=float(data["locked_until"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Whether a sign-in attempt may proceed, and if not, for how many more seconds."""

    allowed: bool
    retry_after: float = 0.0
    locked: Literal["account", "address"] | None = None

    @property
    def retry_after_seconds(self) -> int:
        """``retry_after`` rounded up, for a ``Retry-After`` header."""
        return math.ceil(self.retry_after)


def _account_key(account: str) -> str:
    return account.strip().casefold()


def _address_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address  # not an IP (a test client, a unix socket): throttle the name as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


_State = TypeVar("_State", AccountState, AddressState)


class LoginThrottle:
    """In-memory throttle over both keys, bounded to ``policy.max_entries`` per key kind (LRU)."""

    __slots__ = ("_accounts", "_addresses", "_clock", "policy")

    def __init__(
        self, policy: ThrottlePolicy | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._accounts: OrderedDict[str, AccountState] = OrderedDict()
        self._addresses: OrderedDict[str, AddressState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accounts) + len(self._addresses)

    def check(self, account: str, address: str) -> Decision:
        """Whether an attempt for ``account`` from ``address`` may be verified now."""
        now = self._clock()
        acc = self._live(self._accounts, _account_key(account), now)
        addr = self._live(self._addresses, _address_key(address), now)
        return self._decide(acc, addr, now)

    def record(self, account: str, address: str, success: bool) -> Decision:
        """Record the outcome of a verified attempt; returns the decision for the next one."""
        now = self._clock()
        acc_key, addr_key = _account_key(account), _address_key(address)
        addr = self._live(self._addresses, addr_key, now)
        if success:
            self._accounts.pop(acc_key, None)
            return self._decide(None, addr, now)
        acc = self._live(self._accounts, acc_key, now) or AccountState()
        acc = acc.after_failure(now, self.policy)
        addr = (addr or AddressState()).after_failure(now, self.policy)
        self._put(self._accounts, acc_key, acc)
        self._put(self._addresses, addr_key, addr)
        return self._decide(acc, addr, now)

    def forget(self, account: str) -> bool:
        """Clear ``account``'s failures and lock (an operator unlocked it); whether it had any.

        Address records stay: unlocking a person says nothing about where the guesses came from.
        """
        return self._accounts.pop(_account_key(account), None) is not None

    def account_state(self, account: str) -> AccountState | None:
        """The live state of ``account``, if any."""
        return self._live(self._accounts, _account_key(account), self._clock())

    def address_state(self, address: str) -> AddressState | None:
        """The live state of ``address`` (or its /64), if any."""
        return self._live(self._addresses, _address_key(address), self._clock())

    def snapshot(self) -> dict[str, Any]:
        """All live state as JSON-ready data (shape in the module docstring)."""
        now = self._clock()
        return {
            "version": _SNAPSHOT_VERSION,
            "accounts": {
                k: s.to_dict()
                for k, s in self._accounts.items()
                if not s.forgotten(now, self.policy)
            },
            "addresses": {
                k: s.to_dict()
                for k, s in self._addresses.items()
                if not s.forgotten(now, self.policy)
            },
        }

    @classmethod
    def from_snapshot(
        cls,
        data: Mapping[str, Any],
        policy: ThrottlePolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> LoginThrottle:
        """A throttle holding the state of :meth:`snapshot` (raises ValueError if malformed)."""
        throttle = cls(policy, clock=clock)
        try:
            if data["version"] != _SNAPSHOT_VERSION:
                raise ValueError(f"unsupported throttle snapshot version {data['version']!r}")
            for key, raw in data["accounts"].items():
                throttle._put(throttle._accounts, str(key), AccountState.from_dict(raw))
            for key, raw in data["addresses"].items():
                throttle._put(throttle._addresses, str(key), AddressState.from_dict(raw))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError("malformed throttle snapshot") from exc
        return throttle

    def _decide(self, acc: AccountState | None, addr: AddressState | None, now: float) -> Decision:
        acc_wait = acc.locked_until - now if acc else 0.0
        addr_wait = addr.locked_until - now if addr else 0.0
        if acc_wait <= 0 and addr_wait <= 0:
            return Decision(allowed=True)
        if acc_wait >= addr_wait:
            return Decision(allowed=False, retry_after=acc_wait, locked="account")
        return Decision(allowed=False, retry_after=addr_wait, locked="address")

    def _live(self, table: OrderedDict[str, _State], key: str, now: float) -> _State | None:
        state = table.get(key)
        if state is None:
            return None
        if state.forgotten(now, self.policy):
            del table[key]
            return None
        table.move_to_end(key)
        return state

    def _put(self, table: OrderedDict[str, _State], key: str, state: _State) -> None:
        table[key] = state
        table.move_to_end(key)
        while len(table) > self.policy.max_entries:
            table.popitem(last=False)
