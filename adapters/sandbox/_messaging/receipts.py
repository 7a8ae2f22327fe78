"""Delivery receipts: each one POSTed, signed, to the callback URL, retried until it is taken.

A receipt is ``{"id", "type", "message_id", "reference", "status", "occurred_at"}``, with
``error`` on a failure; its id is derived from the seed, the message and the status, so a run
is repeatable and a receipt sent twice has one id. Signed and retried as every sandbox
callback is (:mod:`adapters.sandbox._control.delivery`): HMAC-SHA256 over ``<timestamp>.<body>``
(``X-Provider-Timestamp``, ``X-Provider-Signature: v1=<hex>``), afresh for every attempt.
``GET /_sandbox/receipts`` shows the log.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from adapters.sandbox._control.delivery import CallbackSender, Tally
from adapters.sandbox._control.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from adapters.sandbox._messaging.faults import MessagingFaults

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Receipt", "ReceiptSender", "sign"]


@dataclass(slots=True)
class Receipt(Tally):
    """One receipt and what became of its delivery."""

    body: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {**self.body, **self.tally()}


class ReceiptSender(CallbackSender[Receipt]):
    """Sends the receipts of accepted messages; its tasks live with the app."""

    def __init__(
        self,
        faults: MessagingFaults,
        rng: random.Random,
        *,
        seed: int,
        secret: str,
        url: str | None,
        max_attempts: int = 8,
        step_seconds: float = 0.02,
    ) -> None:
        super().__init__(secret=secret, url=url, max_attempts=max_attempts)
        self.faults = faults
        self.rng = rng
        self.seed = seed
        self.step_seconds = step_seconds

    def receipt_id(self, message_id: str, status: str) -> str:
        digest = hashlib.sha256(f"{self.seed}:{message_id}:{status}".encode()).hexdigest()
        return "rc_" + digest[:24]

    def schedule(self, message: dict[str, Any], outcome: str, error: str | None) -> None:
        """The receipts of one accepted message: ``sent``, then ``delivered`` or ``failed``."""
        faults = self.faults
        receipts = []
        for status in ("sent", outcome):
            body: dict[str, Any] = {
                "id": self.receipt_id(message["id"], status),
                "type": f"message.{status}",
                "message_id": message["id"],
                "reference": message["reference"],
                "status": status,
                "occurred_at": _now(),
            }
            if status == "failed" and error:
                body["error"] = error
            receipts.append(body)
        if faults.receipt_reorder:
            receipts.reverse()
        delay = faults.receipt_delay_ms / 1000
        for position, body in enumerate(receipts):
            entry = self.log.setdefault(body["id"], Receipt(body))
            at = delay + (position + 1) * self.step_seconds
            self._spawn_entry(entry, at)
            if self.rng.random() < faults.receipt_duplicate_rate:
                self._spawn_entry(entry, at + 0.05 + self.rng.random() * 0.1)

    def redeliver(self, receipt_id: str) -> bool:
        entry = self.log.get(receipt_id)
        if entry is None:
            return False
        self._spawn_entry(entry, 0.0)
        return True

    def _spawn_entry(self, entry: Receipt, delay: float) -> None:
        body = json.dumps(entry.body, separators=(",", ":"), sort_keys=True).encode()
        self._dispatch(entry, body, delay=delay, name=f"receipt-{entry.body['id']}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
