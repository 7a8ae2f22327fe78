"""What the work permits service learns from other services' events, kept in its own tables.

Visas (``visa.application.issued`` / ``cancelled`` / ``expired``), contracts
(``contract.activated`` / ``amended`` / ``terminated``), compliance bands
(``compliance.band.changed``) and approved occupation changes (``occupation.change.approved``).
Each event is applied once (the app wraps :meth:`Projections.on_event` in an
``IdempotentConsumer``) and an event older than what a row already says (its ``at``) never
overwrites it. A payload that lacks what the service needs is logged and skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import structlog

from hub.backends.events.base import Event
from hub.servicekit.moments import moment_of
from services.work_permits.store import Connection, PermitStore

__all__ = ["Projections"]

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


class Projections:
    """The effects of the events the service consumes, each inside the consumer's transaction."""

    def __init__(self, store: PermitStore, *, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self._clock = clock

    async def on_event(self, conn: Connection, event: Event) -> None:
        """Keep the projections of visas, contracts, bands and occupations (once per event)."""
        payload = event.payload
        at = moment_of(payload.get("at"), event.occurred_at)
        if event.type.startswith("visa.application."):
            await self._on_visa(conn, event.type.rsplit(".", 1)[1], payload, at)
        elif event.type in {"contract.activated", "contract.amended", "contract.terminated"}:
            await self._on_contract(conn, event.type.split(".", 1)[1], payload, at)
        elif event.type == "compliance.band.changed":
            establishment, band = payload.get("establishment_id"), payload.get("band")
            if isinstance(establishment, str) and isinstance(band, str):
                await self.store.project_band(conn, establishment, band, at)
        elif event.type == "occupation.change.approved":
            await self._on_occupation(conn, payload)

    async def _on_visa(
        self, conn: Connection, state: str, payload: dict[str, Any], at: datetime
    ) -> None:
        number = payload.get("visa_number")
        if state not in {"issued", "cancelled", "expired"} or not isinstance(number, str):
            return
        if payload.get("kind", "work") != "work":
            return
        await self.store.project_visa(
            conn,
            {
                "visa_number": number,
                "application_id": str(payload.get("application_id") or ""),
                "establishment_id": _text(payload.get("establishment_id"), 100),
                "state": state,
                "nationality": _text(payload.get("nationality"), 3),
                "passport_number": _text(payload.get("passport_number"), 12),
                "worker_name": _text(payload.get("worker_name"), 200),
                "occupation": _text(payload.get("occupation"), 4),
                "valid_until": _date(payload.get("valid_until")),
                "event_at": at,
            },
        )

    async def _on_contract(
        self, conn: Connection, kind: str, payload: dict[str, Any], at: datetime
    ) -> None:
        contract_id = payload.get("contract_id")
        employee = payload.get("employee")
        establishment = payload.get("establishment_id")
        if not (
            isinstance(contract_id, str)
            and isinstance(employee, dict)
            and isinstance(employee.get("id"), str)
            and isinstance(establishment, str)
        ):
            log.warning("permits.contract_event_ignored", event_type=f"contract.{kind}")
            return
        state = "terminated" if kind == "terminated" else "active"
        await self.store.project_contract(
            conn,
            {
                "contract_id": contract_id[:100],
                "establishment_id": establishment[:100],
                "person_id": str(employee["id"])[:100],
                "nationality": _text(employee.get("nationality"), 3),
                "citizen": bool(employee.get("citizen", False)),
                "state": state,
                "visa_number": _text(payload.get("visa_number"), 12),
                "occupation": _text(payload.get("occupation"), 4),
                "start_date": _date(payload.get("start_date")),
                "end_date": _date(payload.get("end_date")),
                "event_at": at,
            },
        )

    async def _on_occupation(self, conn: Connection, payload: dict[str, Any]) -> None:
        person, to = payload.get("person_id"), payload.get("to")
        if not isinstance(person, str) or not isinstance(to, str):
            return
        establishment = payload.get("establishment_id")
        for row in await self.store.held_permits(
            conn,
            person_id=person,
            establishment_id=establishment if isinstance(establishment, str) else None,
        ):
            await self.store.note(
                conn,
                row["id"],
                now=self._clock(),
                changes={"occupation": to[:4]},
                tag=f"occupation.{payload.get('request_id')}",
            )
