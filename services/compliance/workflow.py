"""Standings recomputed from contract events, sectors from the commercial registry.

Each ``contract.activated`` / ``contract.terminated`` event updates the workforce projection and
recomputes the establishment's standing in the consumer's transaction; a band that moved emits
``compliance.band.changed`` (and a notification request to the establishment) through the
outbox. The sector comes from the commercial registry through the hub (purpose
``compliance-monitoring``), read outside any transaction by the refresh loop or when the
establishment registers its CR number; until the sector is known, the band is not (``null``)
and nothing is emitted: a band is never guessed from a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from hub.backends.events.base import Event
from hub.errors import (
    EstablishmentMismatch,
    EstablishmentNotPermitted,
    HubUnavailable,
    StandingNotFound,
)
from hub.servicekit.caller import Caller as ServiceCaller
from hub.servicekit.moments import moment_of
from services.compliance.domain import parse_registration, size_band, standing
from services.compliance.hub_client import HubClient
from services.compliance.store import ComplianceStore, Connection

__all__ = ["READ_SCOPE", "Caller", "ComplianceWorkflow", "caller_of"]

log = structlog.get_logger(__name__)

READ_SCOPE: Final = "compliance.read"
_CR_NUMBER: Final = re.compile(r"[0-9]{10}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller(ServiceCaller):
    """Who called, as the hub's internal token says (the kit's caller), with its rules here."""

    def owns(self, establishment_id: str) -> bool:
        return self.kind == "person" and f"{establishment_id}:owner" in self.memberships

    def may_read(self, establishment_id: str) -> bool:
        """Agency officers; the owner; an HR officer or vendor delegated compliance.read."""
        return self.officer or self.may_act_for(establishment_id, (READ_SCOPE,))


#: The caller from the hub's verified principal and its internal token's claims.
caller_of = Caller.of


def _now() -> datetime:
    return datetime.now(UTC)


class ComplianceWorkflow:
    """The compliance service's operations."""

    def __init__(
        self,
        store: ComplianceStore,
        hub: HubClient,
        *,
        registry_max_age: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self._max_age = registry_max_age
        self._clock = clock

    # ---- views and access ------------------------------------------------------------------

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "establishment_id": row["establishment_id"],
            "cr_number": row["cr_number"],
            "band": row["band"],
            "ratio": round(row["ratio"], 4),
            "citizens": row["citizens"],
            "total": row["total"],
            "required": row["required"],
            "sector": row["sector"],
            "size_band": row["size_band"],
            "registry_size": row["registry_size"],
            "registry_status": row["registry_status"],
            "updated_at": row["updated_at"].isoformat(),
        }

    def require_reader(self, caller: Caller, establishment_id: str) -> None:
        if not caller.may_read(establishment_id):
            raise EstablishmentNotPermitted(
                f"the caller may not read establishment {establishment_id}'s standing (needs "
                f"ownership, a delegation of {READ_SCOPE} or the agency_officer role)"
            )

    async def standing_of(self, caller: Caller, establishment_id: str) -> dict[str, Any]:
        self.require_reader(caller, establishment_id)
        row = await self.store.get(establishment_id)
        if row is None:
            raise StandingNotFound(f"nothing is known yet of establishment {establishment_id}")
        return row

    # ---- the registry ----------------------------------------------------------------------

    async def register(self, caller: Caller, establishment_id: str, body: object) -> dict[str, Any]:
        """The owner (or an officer) names the establishment's CR number; its record is read."""
        if not (caller.owns(establishment_id) or caller.officer):
            raise EstablishmentNotPermitted(
                f"only the owner of {establishment_id} or an agency officer names its CR number"
            )
        cr_number = parse_registration(body)
        current = await self.store.get(establishment_id)
        bound = await self.store.by_cr(cr_number)
        if bound not in {None, establishment_id} or (
            current is not None and current["cr_number"] not in {None, cr_number}
        ):
            raise EstablishmentMismatch(
                f"CR number {cr_number} is not the one on record for {establishment_id}"
            )
        record = await self._read(cr_number)
        async with self.store.writing() as conn:
            await self.store.lock_establishment(conn, establishment_id)
            await self._recompute(
                conn, establishment_id, cr_number=cr_number, record=record, read=record is not None
            )
        row = await self.store.get(establishment_id)
        assert row is not None
        return row

    async def seed(self, establishment_id: str, cr_number: str) -> None:
        """Demo data: bind a CR number (the refresh loop reads its record); never rebinds."""
        if await self.store.by_cr(cr_number) not in {None, establishment_id}:
            return
        async with self.store.writing() as conn:
            await self.store.lock_establishment(conn, establishment_id)
            current = await self.store.get_in(conn, establishment_id)
            if current is None or current["cr_number"] is None:
                await self._recompute(conn, establishment_id, cr_number=cr_number)

    async def _read(self, cr_number: str) -> dict[str, Any] | None:
        """The registry's record, ``{}`` when it has none, ``None`` when it cannot be asked."""
        try:
            record = await self.hub.establishment(cr_number)
        except HubUnavailable as exc:
            log.warning("compliance.registry_unavailable", cr_number=cr_number, error=str(exc))
            return None
        return record if record is not None else {}

    async def refresh(self) -> int:
        """Read the registry again for establishments without a fresh record; how many read."""
        read = 0
        for establishment_id, cr_number in await self.store.stale(self._clock() - self._max_age):
            record = await self._read(cr_number)
            if record is None:
                continue
            async with self.store.writing() as conn:
                await self.store.lock_establishment(conn, establishment_id)
                await self._recompute(conn, establishment_id, record=record, read=True)
            read += 1
        return read

    # ---- events ----------------------------------------------------------------------------

    async def on_contract(self, conn: Connection, event: Event) -> None:
        """Project ``contract.activated`` / ``contract.terminated`` and recompute the band."""
        change = event.type.removeprefix("contract.")
        if change not in {"activated", "terminated"}:
            return
        payload = event.payload
        employee = payload.get("employee")
        contract_id, establishment_id = payload.get("contract_id"), payload.get("establishment_id")
        if (
            not isinstance(employee, dict)
            or not isinstance(employee.get("id"), str)
            or not isinstance(contract_id, str)
            or not isinstance(establishment_id, str)
        ):
            log.warning("compliance.contract_event_malformed", event_id=event.id)
            return
        await self.store.lock_establishment(conn, establishment_id)
        await self.store.contract_changed(
            conn,
            contract_id=contract_id,
            establishment_id=establishment_id,
            person_id=employee["id"],
            citizen=employee.get("citizen") is True,
            change=change,
            at=moment_of(payload.get("at"), self._clock()),
        )
        cr_number = payload.get("cr_number")
        await self._recompute(
            conn,
            establishment_id,
            cr_number=cr_number
            if isinstance(cr_number, str) and _CR_NUMBER.fullmatch(cr_number)
            else None,
        )

    async def _recompute(
        self,
        conn: Connection,
        establishment_id: str,
        *,
        cr_number: str | None = None,
        record: dict[str, Any] | None = None,
        read: bool = False,
    ) -> None:
        now = self._clock()
        current = await self.store.get_in(conn, establishment_id)
        values: dict[str, Any] = dict(current or {})
        values.pop("establishment_id", None)
        if cr_number is not None and not values.get("cr_number"):
            values["cr_number"] = cr_number
        if read and record is not None:
            values.update(
                sector=record.get("sector") or None,
                registry_size=record.get("size") or None,
                registry_status=record.get("status") or ("not_found" if not record else None),
                registry_read_at=now,
            )
        citizens, total = await self.store.headcount(conn, establishment_id)
        sector = values.get("sector")
        figures = standing(sector=sector or "", citizens=citizens, total=total)
        previous = current["band"] if current is not None else None
        band = figures.band if sector else None
        values.update(
            band=band,
            ratio=figures.ratio,
            citizens=citizens,
            total=total,
            required=figures.required if sector else None,
            size_band=size_band(total),
            updated_at=now,
        )
        values.setdefault("cr_number", None)
        for name in ("sector", "registry_size", "registry_status", "registry_read_at"):
            values.setdefault(name, None)
        await self.store.save(conn, establishment_id, values, exists=current is not None)
        if band is None or band == previous:
            return
        change = {
            "establishment_id": establishment_id,
            "band": band,
            "previous": previous,
            "ratio": figures.ratio,
            "citizens": citizens,
            "total": total,
            "at": now,
        }
        payload = {
            **change,
            "ratio": round(figures.ratio, 4),
            "required": figures.required,
            "sector": sector,
            "size_band": figures.size_band,
            "cr_number": values["cr_number"],
            "at": now.isoformat(),
        }
        notification = {
            # the contract's characters only (an ISO time's "+" is not one of them)
            "notification_id": (
                f"compliance.{establishment_id}.{now.astimezone(UTC):%Y%m%dT%H%M%S%f}.{band}"
            ),
            "recipient": {
                "kind": "establishment",
                "id": establishment_id,
                "establishment_id": establishment_id,
            },
            "template": "compliance.band.changed",
            "subject": f"Localisation band: {band}",
            "body": (
                f"The establishment's localisation band is now {band} "
                f"(was {previous or 'not yet known'}): {citizens} citizens of {total} employees, "
                f"{figures.required:.0%} required in {sector}."
            ),
            "data": {"establishment_id": establishment_id, "band": band, "previous": previous},
            "reference": f"compliance:{establishment_id}",
        }
        await self.store.band_changed(
            conn,
            change,
            [("compliance.band.changed", payload), ("notification.requested", notification)],
        )
