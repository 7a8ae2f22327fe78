"""Change-of-occupation requests, and what the service learns from other services' events.

An establishment (its owner, or an HR officer or vendor it delegated ``occupations.manage``)
asks for a worker's occupation to change. The rules (:mod:`services.occupations.domain`) read
the worker's active contract and verified certificates, projected from ``contract.*`` and
``certificate.verified`` events; the request's row, its ``occupation.change.*`` events and the
worker's notification requests are one transaction, and a refused request writes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from hub.backends.events.base import Event
from hub.errors import (
    AgencyOfficerRequired,
    ChangeRequestNotFound,
    ChangeRequestOpen,
    EstablishmentNotPermitted,
    OccupationChangeRefused,
)
from hub.servicekit.caller import Caller as ServiceCaller
from hub.servicekit.moments import moment_of
from services.occupations.catalogue import occupation
from services.occupations.domain import (
    Employment,
    as_reasons,
    check_decision,
    decide,
    parse_change_request,
    parse_decision,
)
from services.occupations.store import Connection, OccupationStore

__all__ = ["MANAGE_SCOPE", "Caller", "OccupationWorkflow", "caller_of"]

log = structlog.get_logger(__name__)

MANAGE_SCOPE: Final = "occupations.manage"
REFERENCE_PREFIX: Final = "occupation-change:"


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller(ServiceCaller):
    """Who called, as the hub's internal token says (the kit's caller), with its one rule here."""

    def may_manage(self, establishment_id: str) -> bool:
        """Owner, an HR officer delegated occupations.manage, or a vendor delegated it."""
        return self.may_act_for(establishment_id, (MANAGE_SCOPE,))


#: The caller from the hub's verified principal and its internal token's claims.
caller_of = Caller.of


def _now() -> datetime:
    return datetime.now(UTC)


class OccupationWorkflow:
    """The occupations service's operations, each one whole or not at all."""

    def __init__(self, store: OccupationStore, *, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self._clock = clock

    # ---- views and access ------------------------------------------------------------------

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        def brief(code: str) -> dict[str, Any]:
            found = occupation(code)
            return {"code": code, "title": found.title if found else None}

        return {
            "id": row["id"],
            "person_id": row["person_id"],
            "establishment_id": row["establishment_id"],
            "contract_id": row["contract_id"],
            "from": brief(row["from_code"]),
            "to": brief(row["to_code"]),
            "state": row["state"],
            "reason": row["reason"],
            "review_reasons": list(row["review_reasons"] or []),
            "decision_reason": row["decision_reason"],
            "submitted_at": row["submitted_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        }

    def require_establishment(self, caller: Caller, establishment_id: str) -> None:
        if not caller.may_manage(establishment_id):
            raise EstablishmentNotPermitted(
                f"the caller may not act for establishment {establishment_id} "
                f"(needs ownership or a delegation of {MANAGE_SCOPE})"
            )

    def require_officer(self, caller: Caller) -> None:
        if not caller.officer:
            raise AgencyOfficerRequired("only agency officers may use the review queue")

    async def visible(self, caller: Caller, request_id: str) -> dict[str, Any]:
        """The request if the caller may see it; otherwise it does not exist for them."""
        row = await self.store.get(request_id)
        if (
            caller.officer
            or caller.may_manage(row["establishment_id"])
            or (caller.kind == "person" and caller.subject == row["person_id"])
        ):
            return row
        raise ChangeRequestNotFound(f"no change request {request_id}")

    # ---- requests and decisions ------------------------------------------------------------

    async def request(self, caller: Caller, establishment_id: str, body: object) -> dict[str, Any]:
        """A change request by the establishment; approved at once, queued, or refused."""
        self.require_establishment(caller, establishment_id)
        change = parse_change_request(body)
        now = self._clock()
        request_id = "oc_" + secrets.token_hex(12)
        async with self.store.writing() as conn:
            await self.store.lock_worker(conn, change.person_id)
            employment_row = await self.store.active_employment(
                conn, establishment_id, change.person_id
            )
            employment = (
                None
                if employment_row is None
                else Employment(
                    contract_id=employment_row["contract_id"],
                    occupation=employment_row["occupation"],
                    citizen=bool(employment_row["citizen"]),
                )
            )
            decision = decide(change, employment, await self.store.degrees(conn, change.person_id))
            if decision.refusals:
                raise OccupationChangeRefused(
                    "the change of occupation is refused: " + ", ".join(decision.refusals),
                    extra=as_reasons(decision.refusals),
                )
            assert employment is not None
            if await self.store.open_request(conn, change.person_id) is not None:
                raise ChangeRequestOpen(
                    f"worker {change.person_id} already has a request waiting for an officer"
                )
            row: dict[str, Any] = {
                "id": request_id,
                "person_id": change.person_id,
                "establishment_id": establishment_id,
                "contract_id": employment.contract_id,
                "from_code": employment.occupation,
                "to_code": change.to.code,
                "state": decision.state,
                "version": 1,
                "reason": change.reason,
                "review_reasons": list(decision.review),
                "decision_reason": None,
                "requested_by": caller.subject,
                "requested_by_kind": caller.kind,
                "decided_by": "automatic-rules" if decision.state == "approved" else None,
                "submitted_at": now,
                "updated_at": now,
            }
            events = self._events(row, "requested")
            if decision.state == "approved":
                events += self._events(row, "approved")
                await self.store.set_occupation(conn, employment.contract_id, change.to.code)
            await self.store.insert(conn, row, events)
        return row

    async def decide(self, caller: Caller, request_id: str, body: object) -> dict[str, Any]:
        """An agency officer approves or rejects (with a reason) a request in review."""
        self.require_officer(caller)
        approve, reason = parse_decision(body)
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.lock(conn, request_id)
            if current is None:
                raise ChangeRequestNotFound(f"no change request {request_id}")
            check_decision(current["state"])
            state = "approved" if approve else "rejected"
            changes = {
                "state": state,
                "decision_reason": reason,
                "decided_by": caller.subject,
                "updated_at": now,
            }
            future = {**current, **changes}
            if approve:
                await self.store.set_occupation(conn, current["contract_id"], current["to_code"])
            return await self.store.update(conn, current, changes, self._events(future, state))

    # ---- what other services tell ----------------------------------------------------------

    async def on_contract(self, conn: Connection, event: Event) -> None:
        """Project ``contract.activated`` / ``contract.amended`` / ``contract.terminated``."""
        change = event.type.removeprefix("contract.")
        if change not in {"activated", "amended", "terminated"}:
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
            log.warning("occupations.contract_event_malformed", event_id=event.id)
            return
        code = payload.get("occupation")
        await self.store.employment_changed(
            conn,
            contract_id=contract_id,
            establishment_id=establishment_id,
            person_id=employee["id"],
            citizen=employee.get("citizen") is True,
            occupation=code if isinstance(code, str) else None,
            change=change,
            at=moment_of(payload.get("at"), self._clock()),
        )

    async def on_certificate(self, conn: Connection, event: Event) -> None:
        """Project ``certificate.verified``: the person holds a verified degree."""
        if event.type != "certificate.verified":
            return
        payload = event.payload
        certificate_id, person_id = payload.get("certificate_id"), payload.get("person_id")
        degree = payload.get("degree")
        if not all(isinstance(value, str) for value in (certificate_id, person_id, degree)):
            log.warning("occupations.certificate_event_malformed", event_id=event.id)
            return
        national_id = payload.get("national_id")
        field = payload.get("field")
        await self.store.certificate_verified(
            conn,
            certificate_id=str(certificate_id),
            person_id=str(person_id),
            national_id=national_id if isinstance(national_id, str) else None,
            degree=str(degree),
            field=field if isinstance(field, str) else None,
            at=moment_of(payload.get("at"), self._clock()),
        )

    # ---- events ----------------------------------------------------------------------------

    def _events(self, row: dict[str, Any], step: str) -> list[tuple[str, dict[str, Any]]]:
        """The domain event of a step and the worker's notification request."""
        reason = row["decision_reason"] or row["reason"]
        if step == "requested" and row["review_reasons"]:
            reason = ", ".join(row["review_reasons"])
        event = {
            "request_id": row["id"],
            "person_id": row["person_id"],
            "establishment_id": row["establishment_id"],
            "contract_id": row["contract_id"],
            "from": row["from_code"],
            "to": row["to_code"],
            "reason": reason,
            "state": row["state"] if step != "requested" else "requested",
            "at": self._clock().isoformat(),
        }
        to = occupation(row["to_code"])
        title = to.title if to else row["to_code"]
        texts = {
            "requested": f"Your establishment asked to change your occupation to {title}."
            + (" An agency officer reviews the request." if row["state"] == "in_review" else ""),
            "approved": f"Your occupation is now {title}.",
            "rejected": f"The change of your occupation to {title} was rejected: {reason}.",
        }
        notification = {
            "notification_id": f"{row['id']}.{step}",
            "recipient": {
                "kind": "person",
                "id": row["person_id"],
                "establishment_id": row["establishment_id"],
            },
            "template": f"occupation.change.{step}",
            "subject": f"Change of occupation {row['id']}: {step}",
            "body": texts[step],
            "data": {
                "request_id": row["id"],
                "state": event["state"],
                "from": row["from_code"],
                "to": row["to_code"],
            },
            "reference": REFERENCE_PREFIX + row["id"],
        }
        return [(f"occupation.change.{step}", event), ("notification.requested", notification)]
