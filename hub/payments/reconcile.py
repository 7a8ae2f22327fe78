"""Reconciliation: the provider's settlement ledger of one day against the hub's own book.

Both sides are cut to lines: a capture (keyed by the hub's payment id, the provider's
``merchant_reference``) and a refund (keyed by the hub's refund id). Every difference is a
mismatch: a line only the provider has (``missing_in_hub``; ``state`` when the hub knows the
payment or refund but holds it in another state or on another day), a line only the hub has
(``missing_at_provider``), and on lines both have, a different ``amount`` or ``currency``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from adapters.base import CallContext
from adapters.payments.provider import SettlementQuery
from hub.db.payment_store import PaymentStore
from hub.payments.states import PaymentState

__all__ = ["Line", "Mismatch", "Report", "reconcile"]

Kind = Literal["missing_in_hub", "missing_at_provider", "amount", "currency", "state"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One money movement: a capture or a refund, its amount and currency."""

    type: Literal["capture", "refund"]
    payment_id: str
    refund_id: str | None
    amount: int
    currency: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """One difference between the two books."""

    kind: Kind
    type: str
    payment_id: str
    refund_id: str | None
    provider: str | None
    hub: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "type": self.type,
            "payment_id": self.payment_id,
            "refund_id": self.refund_id,
            "provider": self.provider,
            "hub": self.hub,
        }

    def describe(self) -> str:
        what = f"{self.type} of {self.payment_id}" + (
            f" ({self.refund_id})" if self.refund_id else ""
        )
        return f"{self.kind}: {what}: provider {self.provider or '-'}, hub {self.hub or '-'}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The outcome of one reconciliation."""

    date: str
    adapter: str
    provider_lines: int
    hub_lines: int
    mismatches: tuple[Mismatch, ...]

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "adapter": self.adapter,
            "provider_lines": self.provider_lines,
            "hub_lines": self.hub_lines,
            "clean": self.clean,
            "mismatches": [m.as_json() for m in self.mismatches],
        }


def _key(line: Line) -> tuple[str, str]:
    return (line.type, line.refund_id or line.payment_id)


async def reconcile(
    store: PaymentStore, provider: Any, *, adapter: str, day: date, context: CallContext
) -> Report:
    """Compare the provider's ledger of ``day`` (UTC) with the hub's captures and refunds."""
    settlement = await provider.operations["list_settlements"].call(
        provider, SettlementQuery(date=day.isoformat()), context
    )
    theirs = {
        _key(line): line
        for line in (
            Line(
                type=entry.type,
                payment_id=entry.merchant_reference,
                refund_id=entry.refund_reference if entry.type == "refund" else None,
                amount=entry.amount,
                currency=entry.currency,
            )
            for entry in settlement.lines
        )
    }
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    payments, refunds = await store.booked_between(start, start + timedelta(days=1))
    ours: dict[tuple[str, str], Line] = {}
    for payment in payments:
        if payment.adapter == adapter:
            line = Line(
                type="capture",
                payment_id=payment.id,
                refund_id=None,
                amount=payment.amount_captured,
                currency=payment.currency,
            )
            ours[_key(line)] = line
    for refund, payment in refunds:
        if payment.adapter == adapter and refund.state.value == "succeeded":
            line = Line(
                type="refund",
                payment_id=payment.id,
                refund_id=refund.id,
                amount=refund.amount,
                currency=refund.currency,
            )
            ours[_key(line)] = line
    mismatches: list[Mismatch] = []
    for key, line in sorted(theirs.items()):
        mine = ours.get(key)
        if mine is None:
            mismatches.append(await _missing_in_hub(store, line))
            continue
        for kind, a, b in (
            ("amount", line.amount, mine.amount),
            ("currency", line.currency, mine.currency),
        ):
            if a != b:
                mismatches.append(
                    Mismatch(
                        kind=kind,  # type: ignore[arg-type]
                        type=line.type,
                        payment_id=line.payment_id,
                        refund_id=line.refund_id,
                        provider=str(a),
                        hub=str(b),
                    )
                )
    for key, mine in sorted(ours.items()):
        if key not in theirs:
            mismatches.append(
                Mismatch(
                    kind="missing_at_provider",
                    type=mine.type,
                    payment_id=mine.payment_id,
                    refund_id=mine.refund_id,
                    provider=None,
                    hub=f"{mine.amount} {mine.currency}",
                )
            )
    return Report(
        date=day.isoformat(),
        adapter=adapter,
        provider_lines=len(theirs),
        hub_lines=len(ours),
        mismatches=tuple(mismatches),
    )


async def _missing_in_hub(store: PaymentStore, line: Line) -> Mismatch:
    provider = f"{line.amount} {line.currency}"
    held: str | None = None
    if line.refund_id is not None:
        refund = await store.get_refund(line.refund_id)
        if refund is not None:
            held = f"refund {refund.state.value}" + (
                f" booked {refund.booked_at.date().isoformat()}" if refund.booked_at else ""
            )
    else:
        payment = await store.get(line.payment_id)
        if payment is not None:
            held = payment.state.value
            if payment.captured_at is not None and payment.state != PaymentState.CREATED:
                held += f" captured {payment.captured_at.date().isoformat()}"
    return Mismatch(
        kind="state" if held is not None else "missing_in_hub",
        type=line.type,
        payment_id=line.payment_id,
        refund_id=line.refund_id,
        provider=provider,
        hub=held,
    )
