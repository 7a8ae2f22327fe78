"""Delivery receipts from notification providers: verified, deduplicated, put on the outbox.

A provider (an adapter with a ``callback_secret`` in its ``options``) POSTs each receipt to
``/api/callbacks/v1/<adapter id>``, signed like the payment provider's webhooks:
``X-Provider-Timestamp`` (Unix seconds) and ``X-Provider-Signature`` (``v1=<hex HMAC-SHA256 of
"<timestamp>.<body>">``). A bad or missing signature is ``400 invalid_webhook_signature``, a
timestamp further than ``callback_tolerance_seconds`` (default 300) from now ``400
stale_webhook``; a body that breaks the adapter's ``receipt.schema.json`` is ``400
invalid_request``. None of them changes anything.

A receipt taken is one row in ``callback_receipts`` and one ``notification.receipt`` event on
the hub's outbox, in one transaction; the event's id is derived from the adapter and the
receipt id, its key is the message reference (a message's receipts are published in order).
The same receipt again answers ``duplicate`` and adds nothing. Order is the consumer's
business: a receipt carries its status, and the notification service moves a delivery only
forward (``accepted`` → ``sent`` → ``delivered`` or ``failed``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from hub.db.callback_store import CallbackStore
from hub.errors import AdapterUnavailable, InvalidRequest, NotFound
from hub.payments.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

__all__ = [
    "DEFAULT_TOLERANCE",
    "EVENT_TYPE",
    "CallbackSource",
    "ReceiptOutcome",
    "ReceiptReceiver",
    "receipt_event_id",
]

#: The type of the outbox event a receipt becomes.
EVENT_TYPE: Final = "notification.receipt"
DEFAULT_TOLERANCE: Final = 300.0
_NAMESPACE: Final = uuid.UUID("0b7f5d0e-8a2e-4f57-9c1d-6c1e2f0a9b33")
_MAX_BODY: Final = 16 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackSource:
    """What the receiver needs of one adapter: its secret, tolerance and receipt schema."""

    secret: str
    tolerance: float
    schema: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptOutcome:
    """What became of one callback: ``accepted`` (a new event) or ``duplicate``."""

    receipt_id: str
    outcome: str
    event_id: str


def receipt_event_id(adapter: str, receipt_id: str) -> str:
    """The outbox event's id: the same receipt always gives the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{adapter}:{receipt_id}"))


class ReceiptReceiver:
    """Takes the receipt callbacks of one hub's notification adapters."""

    def __init__(
        self,
        store: CallbackStore,
        source_of: Callable[[str], CallbackSource],
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._source_of = source_of  # adapter id → secret, tolerance, schema
        self._on_commit = on_commit
        self._validators: dict[Path, Any] = {}

    def _validator(self, schema: Path) -> Any:
        validator = self._validators.get(schema)
        if validator is None:
            try:
                document = json.loads(schema.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise AdapterUnavailable("the adapter's receipt schema cannot be read") from exc
            validator = self._validators[schema] = Draft202012Validator(document)
        return validator

    async def receive(
        self, adapter: str, headers: Mapping[str, str], body: bytes
    ) -> ReceiptOutcome:
        """Verify, parse and take one receipt (hub errors say why one is refused)."""
        source = self._source_of(adapter)
        if len(body) > _MAX_BODY:
            raise InvalidRequest(f"a receipt is at most {_MAX_BODY} bytes")
        verify_signature(
            secret=source.secret,
            timestamp=headers.get(TIMESTAMP_HEADER),
            signature=headers.get(SIGNATURE_HEADER),
            body=body,
            tolerance=source.tolerance,
        )
        try:
            receipt = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("the receipt is not JSON") from None
        error = next(iter(self._validator(source.schema).iter_errors(receipt)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "$"
            raise InvalidRequest(
                f"the receipt breaks its contract at {where}",
                extra={"errors": [f"{where}: {error.message[:200]}"]},
            )
        return await self._take(adapter, receipt)

    async def _take(self, adapter: str, receipt: dict[str, Any]) -> ReceiptOutcome:
        receipt_id = str(receipt["id"])
        event_id = receipt_event_id(adapter, receipt_id)
        payload = {
            "adapter": adapter,
            "receipt_id": receipt_id,
            "message_id": str(receipt["message_id"]),
            "reference": str(receipt["reference"]),
            "status": str(receipt["status"]),
            "occurred_at": str(receipt["occurred_at"]),
            "error": receipt.get("error"),
        }
        taken = await self._store.take(
            adapter=adapter, receipt_id=receipt_id, event_id=event_id, event_type=EVENT_TYPE,
            payload=payload,
        )  # fmt: skip
        if not taken:
            return ReceiptOutcome(receipt_id=receipt_id, outcome="duplicate", event_id=event_id)
        if self._on_commit is not None:
            self._on_commit()
        return ReceiptOutcome(receipt_id=receipt_id, outcome="accepted", event_id=event_id)


def unknown_adapter(adapter: str) -> NotFound:
    """The error for a callback to an adapter that takes none."""
    return NotFound(f"no adapter {adapter[:64]!r} takes callbacks")
