"""What the notification service does: take requests, send by channel, apply receipts.

- ``notification.requested`` (:meth:`Notifications.on_requested`, once per event id through
  :class:`~hub.events.consumer.IdempotentConsumer`, and once per ``notification_id`` however
  many events carry it): the message is rendered in the recipient's language, put in their
  inbox, and planned over their channels; nothing is sent inside that transaction.
- The dispatcher (:meth:`Notifications.dispatch`) sends what is due through the hub, outside
  any transaction: the delivery row is written first, so a receipt that comes back before the
  send's answer finds it. A send refused as malformed moves on to the next channel at once;
  one that fails otherwise is retried with doubling pauses, ``max_attempts`` times, then
  falls back too.
- ``notification.receipt`` (:meth:`Notifications.on_receipt`, the hub's events made from the
  providers' signed callbacks) moves a delivery forward; ``failed`` falls back to the next
  channel, ``delivered`` ends it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from hub.backends.events.base import Event
from hub.errors import HubError, InvalidRequest
from services.notifications.domain import advance, mask, owner_of, plan
from services.notifications.hub_client import HubClient
from services.notifications.metrics import NotificationMetrics
from services.notifications.store import Connection, NotificationStore
from services.notifications.templates import render

__all__ = ["BadEvent", "Notifications", "message_id_of"]

log = structlog.get_logger(__name__)

_ERROR_LIMIT: Final = 500


class BadEvent(ValueError):
    """An event that breaks its contract: the bus retries it, then dead-letters it."""


def message_id_of(notification_id: str) -> str:
    """The inbox id of a notification: the same notification always gets the same id."""
    return "nm_" + hashlib.sha256(notification_id.encode()).hexdigest()[:24]


def _now() -> datetime:
    return datetime.now(UTC)


class Notifications:
    """The service's work, over its store and the hub."""

    def __init__(
        self,
        store: NotificationStore,
        hub: HubClient,
        *,
        schema: Mapping[str, Any],
        metrics: NotificationMetrics,
        max_attempts: int = 3,
        retry_seconds: float = 1.0,
        receipt_seconds: float = 300.0,
        batch: int = 16,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self._validator = Draft202012Validator(schema)
        self._max_attempts = max_attempts
        self._retry = retry_seconds
        self._receipt_wait = timedelta(seconds=receipt_seconds)
        # Sends in flight at once: enough to overlap the hub's answers, few enough to leave
        # database connections to the consumers.
        self._batch = batch
        self._clock = clock
        self._wake = asyncio.Event()

    # ---- requests -------------------------------------------------------------------------

    def check(self, event: Event) -> None:
        """Refuse an event that breaks ``notification.requested``'s contract."""
        error = next(iter(self._validator.iter_errors(event.payload)), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "$"
            self.metrics.events.labels("notification.requested", "invalid").inc()
            log.warning(
                "notifications.bad_event", event_id=event.id, at=where, error=error.message[:200]
            )
            raise BadEvent(f"notification.requested {event.id} breaks its contract at {where}")

    async def on_requested(self, conn: Connection, event: Event) -> None:
        """The effect of one ``notification.requested``: the message in the inbox, planned."""
        payload = event.payload
        recipient = payload["recipient"]
        owner = owner_of(str(recipient["kind"]), str(recipient["id"]))
        chosen = await self.store.preferences_in(conn, owner)
        language = chosen.language if chosen.stored else (recipient.get("language") or "en")
        data = payload.get("data") or {}
        rendered = render(
            str(payload["template"]),
            language,
            subject=str(payload["subject"]),
            body=str(payload["body"]),
            data=data,
        )
        steps, skipped = plan(chosen, recipient)
        now = self._clock()
        message_id = message_id_of(str(payload["notification_id"]))
        added = await self.store.add_message(
            conn,
            {
                "id": message_id,
                "notification_id": str(payload["notification_id"]),
                "owner": owner,
                "template": str(payload["template"]),
                "language": rendered.language,
                "subject": rendered.subject,
                "body": rendered.text,
                "html": rendered.html,
                "data": data,
                "reference": payload.get("reference"),
                "status": "pending" if steps else "inbox_only",
                "channel": steps[0][0] if steps else "inbox",
                "plan": [list(step) for step in steps],
                "step": 0,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "read_at": None,
            },
        )
        if not added:
            self.metrics.events.labels("notification.requested", "duplicate").inc()
            return  # the same notification under another event id: one message
        for channel in skipped:
            self.metrics.deliveries.labels(channel, "skipped").inc()
            await self.store.add_delivery(
                conn,
                {
                    "id": f"{message_id}.{channel}",
                    "message_id": message_id,
                    "channel": channel,
                    "address": "",
                    "status": "skipped",
                    "error": "no address for this channel",
                    "updated_at": now,
                },
            )
        self.metrics.events.labels("notification.requested", "applied").inc()
        if not steps:
            self.metrics.deliveries.labels("inbox", "delivered").inc()
        self.wake()

    # ---- sending --------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, interval: float) -> None:
        """Send what is due, whenever woken and every ``interval`` seconds."""
        while True:
            with_timeout = asyncio.timeout(max(interval, 0.05))
            try:
                async with with_timeout:
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.dispatch():
                    pass
            except HubError as exc:  # the database is away: the next round tries again
                log.warning("notifications.dispatch_failed", error=exc.detail)
            except Exception:  # a bug of ours must not stop every later delivery
                log.exception("notifications.dispatch_crashed")

    async def dispatch(self) -> int:
        """Send every due message once, and look up overdue receipts; how many were due."""
        now = self._clock()
        due = await self.store.due(now, limit=self._batch)
        overdue = await self.store.due(now, status="sent")
        if due or overdue:
            await asyncio.gather(
                *(self._send(row) for row in due), *(self._look_up(row) for row in overdue)
            )
        return len(due)

    async def _look_up(self, row: dict[str, Any]) -> None:
        """Ask the provider, through the hub, what became of a message whose receipt is late."""
        channel = row["plan"][row["step"]][0]
        delivery_id = f"{row['id']}.{channel}"
        async with self.store.reading() as conn:
            delivery = await self.store.delivery_in(conn, delivery_id)
        reported: str | None = None
        if delivery is not None and delivery["provider_id"]:
            try:
                reported = (await self.hub.status(channel, delivery["provider_id"])).status
            except HubError as exc:
                log.info("notifications.lookup_failed", message_id=row["id"], error=exc.detail)
        async with self.store.writing() as conn:
            current = await self.store.message_in(conn, row["id"])
            if current is None or current["status"] != "sent" or current["step"] != row["step"]:
                return  # a receipt came meanwhile
            # Asked again later unless the answer ends it (the receipt may still come, too).
            await self.store.set_message(
                conn, row["id"], next_attempt_at=self._clock() + self._receipt_wait
            )
            if reported in {"delivered", "failed"}:
                self.metrics.events.labels("lookup", "applied").inc()
                await self._apply(conn, delivery_id, reported, None, None)

    async def _send(self, row: dict[str, Any]) -> None:
        channel, address = row["plan"][row["step"]]
        delivery_id = f"{row['id']}.{channel}"
        async with self.store.writing() as conn:
            await self.store.add_delivery(
                conn,
                {
                    "id": delivery_id,
                    "message_id": row["id"],
                    "channel": channel,
                    "address": address,
                    "status": "pending",
                    "updated_at": self._clock(),
                },
            )
        started = time.perf_counter()
        try:
            if channel == "sms":
                sent = await self.hub.send_sms(to=address, text=row["body"], reference=delivery_id)
            else:
                sent = await self.hub.send_email(
                    to=address,
                    subject=row["subject"],
                    text=row["body"],
                    html=row["html"],
                    language=row["language"],
                    reference=delivery_id,
                )
        except HubError as exc:
            self.metrics.sends.labels(channel, "error").inc()
            await self._send_failed(row, channel, delivery_id, exc)
            return
        finally:
            self.metrics.send_seconds.labels(channel).observe(time.perf_counter() - started)
        self.metrics.sends.labels(channel, "accepted").inc()
        async with self.store.writing() as conn:
            delivery = await self.store.delivery_in(conn, delivery_id)
            current = await self.store.message_in(conn, row["id"])
            if delivery is None or current is None:
                return
            status = advance(delivery["status"], "accepted")
            await self.store.set_delivery(
                conn,
                delivery_id,
                status=status,
                provider_id=sent.provider_id,
                updated_at=self._clock(),
            )
            if current["status"] == "pending" and current["step"] == row["step"]:
                # Waiting for the receipt (unless one already ended the delivery meanwhile);
                # past the deadline the provider is asked (a receipt may have been lost).
                await self.store.set_message(
                    conn,
                    row["id"],
                    status="sent",
                    attempts=0,
                    next_attempt_at=self._clock() + self._receipt_wait,
                )

    async def _send_failed(
        self, row: dict[str, Any], channel: str, delivery_id: str, error: HubError
    ) -> None:
        permanent = isinstance(error, InvalidRequest)
        attempts = row["attempts"] + 1
        log.info(
            "notifications.send_failed",
            message_id=row["id"],
            channel=channel,
            attempt=attempts,
            permanent=permanent,
            error=error.detail[:200],
        )
        async with self.store.writing() as conn:
            current = await self.store.message_in(conn, row["id"])
            if current is None or current["status"] != "pending" or current["step"] != row["step"]:
                return
            if permanent or attempts >= self._max_attempts:
                await self.store.set_delivery(
                    conn,
                    delivery_id,
                    status="failed",
                    error=error.detail[:_ERROR_LIMIT],
                    updated_at=self._clock(),
                )
                self.metrics.deliveries.labels(channel, "failed").inc()
                await self._fall_back(conn, current)
                return
            pause = self._retry * (2 ** (attempts - 1))
            await self.store.set_message(
                conn,
                row["id"],
                attempts=attempts,
                next_attempt_at=self._clock() + timedelta(seconds=pause),
            )

    async def _fall_back(self, conn: Connection, row: dict[str, Any]) -> None:
        """The next channel of the plan, or the end: failed outside (the inbox still has it)."""
        step = row["step"] + 1
        if step < len(row["plan"]):
            next_channel = row["plan"][step][0]
            log.info("notifications.fallback", message_id=row["id"], to=next_channel)
            await self.store.set_message(
                conn,
                row["id"],
                status="pending",
                step=step,
                attempts=0,
                channel=next_channel,
                next_attempt_at=self._clock(),
            )
            self.wake()
            return
        await self.store.set_message(conn, row["id"], status="failed")

    # ---- receipts -------------------------------------------------------------------------

    async def on_receipt(self, conn: Connection, event: Event) -> None:
        """The effect of one ``notification.receipt``: a delivery moved forward, or a fallback."""
        payload = event.payload
        reference = str(payload.get("reference") or "")
        status = str(payload.get("status") or "")
        if status not in {"sent", "delivered", "failed"}:
            return
        error = payload.get("error")
        applied = await self._apply(
            conn, reference, status, str(error) if error else None, payload.get("message_id")
        )
        self.metrics.events.labels("notification.receipt", applied).inc()

    async def _apply(
        self,
        conn: Connection,
        delivery_id: str,
        status: str,
        error: str | None,
        provider_id: Any,
    ) -> str:
        """Move a delivery to a reported status; the message follows. What happened."""
        delivery = await self.store.delivery_in(conn, delivery_id)
        if delivery is None:
            return "unknown"  # another system's message (several may share the providers)
        moved = advance(delivery["status"], status)
        if moved == delivery["status"]:
            return "stale"  # a late or repeated report: nothing changes
        await self.store.set_delivery(
            conn,
            delivery_id,
            status=moved,
            provider_id=delivery["provider_id"] or provider_id,
            error=error[:_ERROR_LIMIT] if error else delivery["error"],
            updated_at=self._clock(),
        )
        message = await self.store.message_in(conn, delivery["message_id"])
        if message is None or message["status"] in {"delivered", "failed", "inbox_only"}:
            return "applied"
        current_channel = message["plan"][message["step"]][0] if message["plan"] else None
        if current_channel != delivery["channel"]:
            return "applied"  # a report on a channel already given up on
        if moved == "delivered":
            self.metrics.deliveries.labels(delivery["channel"], "delivered").inc()
            await self.store.set_message(conn, message["id"], status="delivered")
        elif moved == "failed":
            self.metrics.deliveries.labels(delivery["channel"], "failed").inc()
            await self._fall_back(conn, message)
        return "applied"

    # ---- views ----------------------------------------------------------------------------

    @staticmethod
    def view(row: dict[str, Any], delivered: list[dict[str, Any]]) -> dict[str, Any]:
        """A message as the inbox API shows it (addresses masked)."""
        return {
            "id": row["id"],
            "notification_id": row["notification_id"],
            "template": row["template"],
            "language": row["language"],
            "dir": "rtl" if row["language"] == "ar" else "ltr",
            "subject": row["subject"],
            "body": row["body"],
            "data": row["data"],
            "status": row["status"],
            "channel": row["channel"],
            "read": row["read_at"] is not None,
            "read_at": row["read_at"].isoformat() if row["read_at"] else None,
            "created_at": row["created_at"].isoformat(),
            "deliveries": [
                {
                    "channel": d["channel"],
                    "status": d["status"],
                    "address": mask(d["channel"], d["address"]) if d["address"] else "",
                    "provider_id": d["provider_id"],
                    "error": d["error"],
                    "updated_at": d["updated_at"].isoformat(),
                }
                for d in delivered
            ],
        }
