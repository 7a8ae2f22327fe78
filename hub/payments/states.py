"""The states of a payment and the one graph of moves between them.

::

    created ──> requires_capture ──> captured ──> partially_refunded ──> refunded
       │  └───> pending ─────────────────^  │            └──(more refunds)──^
       │            (bank transfer)         └──────────────────────────────^
       └──> failed · cancelled · expired  (also from requires_capture and pending)

``created``: the hub has the payment, the provider's answer is not in yet. ``requires_capture``:
authorised, waiting for a capture. ``pending``: the provider is still settling it (a bank
transfer) and will say when it is captured. ``captured`` is money taken; refunds take it to
``partially_refunded`` and finally ``refunded``. ``failed`` (declined), ``cancelled``
(authorisation released) and ``expired`` (authorisation lapsed) end it without money moving.

Every change of state anywhere in the hub goes through :func:`check` (or :func:`advances`,
for news that may be stale), so no code can move a payment along an edge not drawn here, and a
payment only ever moves forward: the graph has no cycle but the refund loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from hub.errors import InvalidPaymentState

__all__ = [
    "FINAL",
    "REFUNDABLE",
    "TRANSITIONS",
    "PaymentState",
    "RefundState",
    "advances",
    "check",
    "reachable",
]


class PaymentState(StrEnum):
    """Where a payment stands."""

    CREATED = "created"
    REQUIRES_CAPTURE = "requires_capture"
    PENDING = "pending"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class RefundState(StrEnum):
    """Where a refund stands: ``pending`` until the provider has booked it."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


S = PaymentState

#: Every allowed move: state → the states it may move to.
TRANSITIONS: Final[Mapping[PaymentState, frozenset[PaymentState]]] = {
    S.CREATED: frozenset(
        {S.REQUIRES_CAPTURE, S.PENDING, S.CAPTURED, S.FAILED, S.CANCELLED, S.EXPIRED}
    ),
    S.REQUIRES_CAPTURE: frozenset({S.CAPTURED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.PENDING: frozenset({S.CAPTURED, S.FAILED, S.CANCELLED, S.EXPIRED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: States with no way out.
FINAL: Final = frozenset(state for state, moves in TRANSITIONS.items() if not moves)
#: States in which money can be refunded.
REFUNDABLE: Final = frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED})


def check(current: PaymentState, target: PaymentState) -> None:
    """Refuse a move the graph does not have (409 ``invalid_payment_state``)."""
    if target not in TRANSITIONS[current]:
        raise InvalidPaymentState(
            f"a payment that is {current.value} cannot become {target.value}",
            extra={"state": current.value},
        )


def advances(current: PaymentState, target: PaymentState) -> bool:
    """Whether news that the payment is ``target`` moves it forward (else it is stale)."""
    return target != current and target in TRANSITIONS[current]


def reachable(start: PaymentState) -> frozenset[PaymentState]:
    """Every state reachable from ``start`` (``start`` itself excluded unless on a loop)."""
    seen: set[PaymentState] = set()
    todo = list(TRANSITIONS[start])
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo.extend(TRANSITIONS[state])
    return frozenset(seen)
