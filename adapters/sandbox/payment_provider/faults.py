"""Injected faults of the sandbox payment provider, set through ``POST /_sandbox/faults``.

API requests (``/v1/*``): ``latency_ms`` and ``slow_ms`` delay every answer; ``hang`` holds a
request ``hang_seconds`` before anything happens; with probability ``error_rate`` it answers
``error_status`` without doing anything; with ``accept_then_timeout_rate`` it does the work (an
intent is created, a capture or refund is booked) and then holds the answer ``hang_seconds``,
so the client times out not knowing it succeeded (reads are not
held by it: they do no work); with ``malformed_rate`` the work is done and
the answer's body is cut short.

Webhooks: with ``webhook_duplicate_rate`` an event is delivered twice; ``webhook_reorder``
holds events ``webhook_delay_ms`` and delivers each batch in reverse order;
``webhook_delay_ms`` alone delays every delivery. ``ledger_disagree`` makes the settlement
ledger wrong on purpose: its first line is dropped, the second's amount is off by 100, the
third's currency is changed, and a line for a payment nobody knows is added.

Draws come from a generator seeded at start, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from adapters.sandbox._control.faults import FaultError, Faults

__all__ = ["Action", "FaultError", "PaymentFaults"]

Action = Literal["ok", "error", "accept_then_timeout", "malformed"]


@dataclass(slots=True, kw_only=True)
class PaymentFaults(Faults):
    """The faults in force; every field can be changed at run time."""

    RATES: ClassVar[frozenset[str]] = frozenset(
        {"error_rate", "accept_then_timeout_rate", "malformed_rate", "webhook_duplicate_rate"}
    )
    FLAGS: ClassVar[frozenset[str]] = frozenset({"hang", "webhook_reorder", "ledger_disagree"})
    ACTIONS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("error_rate", "error"),
        ("accept_then_timeout_rate", "accept_then_timeout"),
        ("malformed_rate", "malformed"),
    )

    accept_then_timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder: bool = False
    webhook_delay_ms: int = 0
    ledger_disagree: bool = False
