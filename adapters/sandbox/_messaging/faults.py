"""Injected faults of a sandbox notification provider, set through ``POST /_sandbox/faults``.

API requests (``/v1/*``): ``latency_ms`` and ``slow_ms`` delay every answer; ``hang`` holds a
request ``hang_seconds`` before anything happens; with probability ``error_rate`` it answers
``error_status`` without accepting anything; with ``malformed_rate`` the message is accepted
and the answer's body is cut short (the client cannot read it, and asks again with the same
reference: the provider answers the same message).

Receipts: with ``receipt_duplicate_rate`` a receipt is delivered twice; ``receipt_reorder``
delivers each message's receipts newest first (``delivered`` before ``sent``);
``receipt_delay_ms`` delays every receipt. ``undeliverable_rate`` makes accepted messages
fail (a ``failed`` receipt instead of ``delivered``).

Draws come from a generator seeded at start, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from adapters.sandbox._control.faults import FaultError, Faults

__all__ = ["Action", "FaultError", "MessagingFaults"]

Action = Literal["ok", "error", "malformed"]


@dataclass(slots=True, kw_only=True)
class MessagingFaults(Faults):
    """The faults in force; every field can be changed at run time."""

    RATES: ClassVar[frozenset[str]] = frozenset(
        {"error_rate", "malformed_rate", "receipt_duplicate_rate", "undeliverable_rate"}
    )
    FLAGS: ClassVar[frozenset[str]] = frozenset({"hang", "receipt_reorder"})
    ACTIONS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("error_rate", "error"),
        ("malformed_rate", "malformed"),
    )

    malformed_rate: float = 0.0
    receipt_duplicate_rate: float = 0.0
    receipt_reorder: bool = False
    receipt_delay_ms: int = 0
    undeliverable_rate: float = 0.0
