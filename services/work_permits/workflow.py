"""The work permit pipeline: issue, renew (fee), transfer (three consents), cancel, expire.

Glue between the rules (:mod:`services.work_permits.domain`), the service's tables
(:mod:`services.work_permits.store`) and the hub (:mod:`services.work_permits.hub_client`, for
the renewal fee only). What the service knows of visas, contracts, compliance bands and
occupation changes it learnt from events (:mod:`services.work_permits.projections`), never by
calling another service; each step's events are built by :mod:`services.work_permits.notices`.
Each step either finishes whole or leaves nothing: the checks read the projections inside the
step's own write transaction, and the permit's row, its transition, its events and its
notification requests commit together. A retried request with the same ``Idempotency-Key``
answers what the first one made; a renewal's payment key is derived from the permit's version,
so neither a retry nor a concurrent second request charges twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import structlog

from hub.backends.events.base import Event
from hub.errors import (
    ComplianceBandBlocks,
    ConsentNotPermitted,
    EstablishmentNotPermitted,
    IdempotencyConflict,
    InvalidRequest,
    InvalidTransition,
    NoActiveContract,
    PermitAlreadyActive,
    PermitNotFound,
    PermitRefused,
    TransferNotFound,
    VisaNotIssued,
)
from hub.servicekit.gateway import payment_outcome
from hub.servicekit.idempotency import keyed_id, request_hash
from services.work_permits.access import MANAGE_SCOPE, READ_SCOPE, Caller
from services.work_permits.domain import (
    REASONS,
    RENEWAL_FEE,
    Actor,
    ActorKind,
    Party,
    State,
    check_transition,
    consents_complete,
    expiry,
    issue_reasons,
    parse_issue_request,
    parse_transfer_request,
    reminder_due,
    renewal_reasons,
    renewed_expiry,
    transfer_reasons,
)
from services.work_permits.hub_client import HubClient
from services.work_permits.notices import REFERENCE_PREFIX, step_events
from services.work_permits.store import Connection, PermitStore

__all__ = ["PermitWorkflow"]

log = structlog.get_logger(__name__)

_REFUSALS: Final[dict[str, type[PermitRefused]]] = {
    "visa_not_issued": VisaNotIssued,
    "no_active_contract": NoActiveContract,
    "compliance_band_blocks": ComplianceBandBlocks,
    "permit_already_active": PermitAlreadyActive,
}
_HELD: Final = ("active", "renewal_pending", "transfer_pending")


def _now() -> datetime:
    return datetime.now(UTC)


def _refused(reasons: list[str]) -> PermitRefused:
    error = _REFUSALS.get(reasons[0], PermitRefused)
    return error(
        "refused: " + ", ".join(reasons),
        extra={"reasons": reasons, "explanations": {r: REASONS[r] for r in reasons}},
    )


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


class PermitWorkflow:
    """The work permits service's operations, each one whole or not at all."""

    def __init__(
        self,
        store: PermitStore,
        hub: HubClient,
        *,
        currency: str = "SAR",
        reminder_days: int = 30,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self._currency = currency
        self._reminder_days = reminder_days
        self._clock = clock

    # ---- views ----------------------------------------------------------------------------

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        """A permit as its holder, its establishment or an officer sees it."""
        return {
            "id": row["id"],
            "state": row["state"],
            "person_id": row["person_id"],
            "worker": {
                "name": row["worker_name"],
                "nationality": row["nationality"],
                "passport_number": row["passport_number"],
            },
            "establishment_id": row["establishment_id"],
            "contract_id": row["contract_id"],
            "visa_number": row["visa_number"],
            "occupation": row["occupation"],
            "issued_on": row["issued_on"].isoformat(),
            "expires_on": row["expires_on"].isoformat(),
            "renewals": row["renewals"],
            "renewal": None
            if row["payment_id"] is None
            else {
                "fee": row["fee"],
                "currency": row["currency"],
                "payment_id": row["payment_id"],
                "paid_at": _iso(row["paid_at"]),
            },
            "transfer_id": row["transfer_id"],
            "cancel_reason": row["cancel_reason"],
            "issued_at": _iso(row["issued_at"]),
            "updated_at": _iso(row["updated_at"]),
        }

    def transfer_view(self, row: dict[str, Any]) -> dict[str, Any]:
        consents = row["consents"] or {}
        return {
            "id": row["id"],
            "permit_id": row["permit_id"],
            "state": row["state"],
            "person_id": row["person_id"],
            "from_establishment": row["from_establishment"],
            "to_establishment": row["to_establishment"],
            "contract_id": row["contract_id"],
            "consents": {party: consents.get(party) for party in ("worker", "current", "new")},
            "missing": [p for p in ("worker", "current", "new") if not consents.get(p)],
            "reason": row["reason"],
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }

    # ---- access ---------------------------------------------------------------------------

    def require_establishment(self, caller: Caller, establishment_id: str, *, write: bool) -> None:
        scopes = (MANAGE_SCOPE,) if write else (MANAGE_SCOPE, READ_SCOPE)
        if not caller.may_act_for(establishment_id, scopes):
            raise EstablishmentNotPermitted(
                f"the caller may not act for establishment {establishment_id} "
                f"(needs ownership or a delegation of {' or '.join(scopes)})"
            )

    def _sees(self, caller: Caller, row: dict[str, Any]) -> bool:
        return (
            caller.officer
            or (caller.kind == "person" and row["person_id"] == caller.subject)
            or caller.may_act_for(row["establishment_id"], (MANAGE_SCOPE, READ_SCOPE))
        )

    async def visible(self, caller: Caller, permit_id: str) -> dict[str, Any]:
        """The permit if the caller may see it; otherwise it does not exist for them."""
        row = await self.store.get(permit_id)
        if not self._sees(caller, row):
            raise PermitNotFound(f"no permit {permit_id}")
        return row

    async def visible_transfer(self, caller: Caller, transfer_id: str) -> dict[str, Any]:
        """The transfer if the caller is one of its parties (or an officer)."""
        row = await self.store.transfer(transfer_id)
        scopes = (MANAGE_SCOPE, READ_SCOPE)
        if not (
            caller.officer
            or (caller.kind == "person" and row["person_id"] == caller.subject)
            or caller.may_act_for(row["from_establishment"], scopes)
            or caller.may_act_for(row["to_establishment"], scopes)
        ):
            raise TransferNotFound(f"no transfer {transfer_id}")
        return row

    def _managing(self, caller: Caller, row: dict[str, Any]) -> Actor:
        """The actor of an establishment's action on its permit (or an officer's)."""
        if caller.officer:
            return Actor(kind="officer", id=caller.subject)
        self.require_establishment(caller, row["establishment_id"], write=True)
        return Actor(kind="establishment", id=caller.client_id or caller.subject)

    # ---- issue ----------------------------------------------------------------------------

    async def issue(
        self, caller: Caller, establishment_id: str, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """A permit for the worker of an issued visa and an active contract; ``True``: replay."""
        self.require_establishment(caller, establishment_id, write=True)
        request = parse_issue_request(body)
        scope = f"issue:{establishment_id}:{caller.kind}:{caller.subject}"
        digest = request_hash(body)
        earlier = await self.store.idempotent(scope, key, digest)
        if earlier is not None:
            return await self.store.get(earlier.result_id), True
        permit_id = keyed_id("wp_", scope, key)
        now = self._clock()
        today = now.date()
        try:
            async with self.store.writing() as conn:
                # the checks read the projections in the transaction that writes the permit
                visa = await self.store.visa(conn, request.visa_number)
                contract = await self.store.contract(conn, request.contract_id)
                band = await self.store.band(conn, establishment_id)
                holds = contract is not None and (
                    await self.store.holder(conn, contract.person_id) is not None
                )
                reasons = issue_reasons(
                    establishment_id, visa, contract, band=band, holds_permit=holds, today=today
                )
                if reasons:
                    raise _refused(reasons)
                assert contract is not None
                visa_row = await self.store.visa_row(conn, request.visa_number) or {}
                row: dict[str, Any] = {
                    "id": permit_id,
                    "state": "active",
                    "version": 1,
                    "person_id": contract.person_id,
                    "worker_name": visa_row.get("worker_name"),
                    "nationality": visa_row.get("nationality"),
                    "passport_number": visa_row.get("passport_number"),
                    "establishment_id": establishment_id,
                    "contract_id": contract.contract_id,
                    "visa_number": request.visa_number,
                    "occupation": contract.occupation or visa_row.get("occupation"),
                    "issued_on": today,
                    "expires_on": expiry(today, contract.end_date),
                    "renewals": 0,
                    "fee": None,
                    "currency": None,
                    "payment_id": None,
                    "paid_at": None,
                    "reminded_for": None,
                    "transfer_id": None,
                    "cancel_reason": None,
                    "requested_by_kind": caller.kind,
                    "requested_by": caller.subject,
                    "requested_by_client": caller.client_id,
                    "issued_at": now,
                    "updated_at": now,
                }
                actor = Actor(kind="establishment", id=caller.client_id or caller.subject)
                await self.store.insert_permit(
                    conn,
                    row,
                    actor=actor,
                    detail={"checks": ["visa_issued", "active_contract", "compliance_band"]},
                    events=self._step_events(row, None, "issued", actor, number=1),
                )
                await self.store.remember(conn, scope, key, digest, permit_id)
        except (PermitRefused, IdempotencyConflict):
            # a concurrent retry with this key may have just issued it (its worker now holds
            # a permit, or its row's id is taken): answer that permit instead of the refusal
            raced = await self.store.idempotent(scope, key, digest)
            if raced is not None:
                return await self.store.get(raced.result_id), True
            raise
        return await self.store.get(permit_id), False

    # ---- renew ----------------------------------------------------------------------------

    async def renew(self, caller: Caller, permit_id: str, key: str) -> tuple[dict[str, Any], bool]:
        """Ask for the renewal fee; the permit is renewed when ``payment.captured`` comes."""
        row = await self.visible(caller, permit_id)
        self.require_establishment(caller, row["establishment_id"], write=True)
        actor = Actor(kind="establishment", id=caller.client_id or caller.subject)
        scope = f"renew:{permit_id}:{caller.kind}:{caller.subject}"
        digest = request_hash({"renew": permit_id})
        earlier = await self.store.idempotent(scope, key, digest)
        if earlier is not None:
            return await self.store.get(permit_id), True
        check_transition(row["state"], "renewal_pending", actor)  # before anything is charged
        # a permit is renewed only on an active contract and outside the red band
        contract, band = await self.store.facts(row["contract_id"], row["establishment_id"])
        reasons = renewal_reasons(
            row["establishment_id"],
            row["person_id"],
            contract,
            band=band,
            today=self._clock().date(),
        )
        if reasons:
            raise _refused(reasons)
        # one payment per version of the permit: a retry or a concurrent second renewal of
        # the same version gets the same payment back, never a second charge
        payment = await self.hub.create_payment(
            key=f"permit-renewal:{permit_id}:{row['version']}",
            amount=RENEWAL_FEE,
            currency=self._currency,
            reference=f"{REFERENCE_PREFIX}{permit_id}",
            description=f"Work permit renewal fee, permit {permit_id}",
        )
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.get_in(conn, permit_id)
            if current is None:  # pragma: no cover - permits are never deleted
                raise PermitNotFound(f"no permit {permit_id}")
            if current["version"] != row["version"]:
                raise InvalidTransition(
                    "the permit changed meanwhile (another renewal or action); reload it",
                    extra={"state": current["state"], "target": "renewal_pending"},
                )
            await self._move(
                conn,
                current,
                "renewal_pending",
                actor,
                now=now,
                changes={
                    "fee": RENEWAL_FEE,
                    "currency": self._currency,
                    "payment_id": payment.id,
                    "paid_at": None,
                },
            )
            await self.store.remember(conn, scope, key, digest, permit_id)
        # a payment event that came before the renewal committed was kept: apply it now
        async with self.store.writing() as conn:
            state = await self.store.receipt(conn, payment.id)
            if state is not None:
                await self._settle_payment(conn, permit_id, payment.id, state)
        return await self.store.get(permit_id), False

    async def on_payment_event(self, conn: Connection, event: Event) -> None:
        """The effect of a payment event (``payment.captured`` and the failures), once per id."""
        outcome = payment_outcome(event, REFERENCE_PREFIX)
        if outcome is None:
            return  # someone else's payment, or not its end
        payment_id, state = outcome
        await self.store.record_receipt(conn, payment_id, state)
        row = await self.store.by_payment(conn, payment_id)
        if row is None:
            return  # the renewal commits later and applies the receipt itself
        await self._settle_payment(conn, row["id"], payment_id, state)

    async def _settle_payment(
        self, conn: Connection, permit_id: str, payment_id: str, state: str
    ) -> None:
        row = await self.store.get_in(conn, permit_id)
        if row is None or row["state"] != "renewal_pending" or row["payment_id"] != payment_id:
            return  # already settled (a redelivered event) or cancelled meanwhile
        now = self._clock()
        system = Actor(kind="system", id="payments")
        if state != "captured":
            await self._move(
                conn,
                row,
                "active",
                system,
                now=now,
                reason=f"payment_{state}",
                template="renewal_failed",
            )
            return
        await self._move(
            conn,
            row,
            "active",
            system,
            now=now,
            reason="renewed",
            changes={
                "expires_on": renewed_expiry(row["expires_on"], now.date()),
                "renewals": row["renewals"] + 1,
                "paid_at": now,
                "reminded_for": None,
            },
            template="renewed",
        )

    # ---- cancel ---------------------------------------------------------------------------

    async def cancel(self, caller: Caller, permit_id: str, reason: str) -> dict[str, Any]:
        """Cancel a permit (its establishment or an officer), with a reason."""
        row = await self.visible(caller, permit_id)
        actor = self._managing(caller, row)
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.get_in(conn, permit_id)
            if current is None:  # pragma: no cover - permits are never deleted
                raise PermitNotFound(f"no permit {permit_id}")
            await self._move(
                conn,
                current,
                "cancelled",
                actor,
                now=now,
                reason=reason,
                changes={"cancel_reason": reason, "transfer_id": None},
            )
        return await self.store.get(permit_id)

    # ---- transfer -------------------------------------------------------------------------

    async def request_transfer(
        self, caller: Caller, establishment_id: str, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """The new establishment asks to take over a worker's permit (its consent given)."""
        self.require_establishment(caller, establishment_id, write=True)
        request = parse_transfer_request(body)
        scope = f"transfer:{establishment_id}:{caller.kind}:{caller.subject}"
        digest = request_hash(body)
        earlier = await self.store.idempotent(scope, key, digest)
        if earlier is not None:
            return await self.store.transfer(earlier.result_id), True
        transfer_id = keyed_id("wt_", scope, key)
        now = self._clock()
        actor = Actor(kind="establishment", id=caller.client_id or caller.subject)
        try:
            async with self.store.writing() as conn:
                contract = await self.store.contract(conn, request.contract_id)
                band = await self.store.band(conn, establishment_id)
                reasons = transfer_reasons(
                    establishment_id, request.person_id, contract, band=band, today=now.date()
                )
                if reasons:
                    raise _refused(reasons)
                permit_id = await self.store.holder(conn, request.person_id)
                permit = None if permit_id is None else await self.store.get_in(conn, permit_id)
                if permit is None:
                    raise PermitNotFound(f"{request.person_id} holds no work permit")
                if permit["establishment_id"] == establishment_id:
                    raise InvalidRequest(
                        "the permit is already this establishment's",
                        extra={"errors": ["person_id: already this establishment's worker"]},
                    )
                await self.store.insert_transfer(
                    conn,
                    {
                        "id": transfer_id,
                        "permit_id": permit["id"],
                        "state": "pending",
                        "from_establishment": permit["establishment_id"],
                        "to_establishment": establishment_id,
                        "person_id": request.person_id,
                        "contract_id": request.contract_id,
                        "consents": {"new": {"by": actor.id, "at": now.isoformat()}},
                        "reason": None,
                        "requested_by_kind": caller.kind,
                        "requested_by": caller.subject,
                        "requested_by_client": caller.client_id,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                await self._move(
                    conn,
                    permit,
                    "transfer_pending",
                    actor,
                    now=now,
                    changes={"transfer_id": transfer_id},
                    detail={"transfer_id": transfer_id, "to": establishment_id},
                )
                await self.store.remember(conn, scope, key, digest, transfer_id)
        except (PermitRefused, InvalidTransition, PermitNotFound, IdempotencyConflict):
            raced = await self.store.idempotent(scope, key, digest)
            if raced is not None:
                return await self.store.transfer(raced.result_id), True
            raise
        return await self.store.transfer(transfer_id), False

    def _party_actor(self, caller: Caller, transfer: dict[str, Any], party: Party) -> Actor:
        """The caller as ``party`` of the transfer, or a refusal when they are not."""
        kind: ActorKind = "worker" if party == "worker" else "establishment"
        if party == "worker":
            allowed = caller.kind == "person" and caller.subject == transfer["person_id"]
        else:
            side = "from_establishment" if party == "current" else "to_establishment"
            allowed = caller.may_act_for(transfer[side], (MANAGE_SCOPE,))
        if not allowed:
            raise ConsentNotPermitted(
                f"the caller cannot answer for the {party} party of transfer {transfer['id']}"
            )
        return Actor(kind=kind, id=caller.client_id or caller.subject)

    async def consent(self, caller: Caller, transfer_id: str, party: Party) -> dict[str, Any]:
        """A party consents; with the last consent the permit moves to the new establishment."""
        transfer = await self.visible_transfer(caller, transfer_id)
        actor = self._party_actor(caller, transfer, party)
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.transfer_in(conn, transfer_id)
            if current is None or current["state"] != "pending":
                state = None if current is None else current["state"]
                raise InvalidTransition(
                    f"the transfer is {state}: it takes no more consents",
                    extra={"state": state, "target": "completed"},
                )
            consents = dict(current["consents"] or {})
            if not consents.get(party):
                consents[party] = {"by": actor.id, "at": now.isoformat()}
            if not consents_complete(consents):
                await self.store.update_transfer(
                    conn, transfer_id, consents=consents, updated_at=now
                )
                return await self._transfer_after(transfer_id, conn)
            # the last consent: the new contract and band are checked again, as they are now
            contract = await self.store.contract(conn, current["contract_id"])
            reasons = transfer_reasons(
                current["to_establishment"],
                current["person_id"],
                contract,
                band=await self.store.band(conn, current["to_establishment"]),
                today=now.date(),
            )
            if reasons:
                raise _refused(reasons)
            permit = await self.store.get_in(conn, current["permit_id"])
            assert permit is not None
            assert contract is not None
            await self.store.update_transfer(
                conn, transfer_id, consents=consents, state="completed", updated_at=now
            )
            await self._move(
                conn,
                permit,
                "active",
                Actor(kind="system", id="transfers"),
                now=now,
                reason="transferred",
                changes={
                    "establishment_id": current["to_establishment"],
                    "contract_id": current["contract_id"],
                    "occupation": contract.occupation or permit["occupation"],
                    "transfer_id": None,
                    # the new establishment's requester hears of the permit from now on
                    "requested_by_kind": current["requested_by_kind"],
                    "requested_by": current["requested_by"],
                    "requested_by_client": current["requested_by_client"],
                },
                detail={"transfer_id": transfer_id, "from": current["from_establishment"]},
                template="transferred",
                extra={"from_establishment": current["from_establishment"]},
            )
        return await self.store.transfer(transfer_id)

    async def _transfer_after(self, transfer_id: str, conn: Connection) -> dict[str, Any]:
        row = await self.store.transfer_in(conn, transfer_id)
        assert row is not None
        return row

    async def decline(
        self, caller: Caller, transfer_id: str, party: Party, reason: str | None
    ) -> dict[str, Any]:
        """A party refuses the transfer: it ends, and the permit stays where it was."""
        transfer = await self.visible_transfer(caller, transfer_id)
        actor = self._party_actor(caller, transfer, party)
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.transfer_in(conn, transfer_id)
            if current is None or current["state"] != "pending":
                state = None if current is None else current["state"]
                raise InvalidTransition(
                    f"the transfer is {state}: it cannot be declined",
                    extra={"state": state, "target": "declined"},
                )
            permit = await self.store.get_in(conn, current["permit_id"])
            assert permit is not None
            text = f"declined by the {party} party" + (f": {reason}" if reason else "")
            await self.store.update_transfer(
                conn, transfer_id, state="declined", reason=text[:500], updated_at=now
            )
            await self._move(
                conn,
                permit,
                "active",
                actor,
                now=now,
                reason=text[:500],
                changes={"transfer_id": None},
                template="transfer_declined",
            )
        return await self.store.transfer(transfer_id)

    # ---- expiry ---------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Send each held permit's expiry reminder once, and expire permits past their day."""
        now = self._clock()
        today = now.date()
        done = 0
        horizon = today + timedelta(days=self._reminder_days)
        for permit_id in await self.store.due(today, horizon):
            try:
                async with self.store.writing() as conn:
                    row = await self.store.get_in(conn, permit_id)
                    if row is None or row["state"] not in _HELD:
                        continue
                    if row["expires_on"] < today:
                        await self._move(
                            conn,
                            row,
                            "expired",
                            Actor(kind="system", id="sweeper"),
                            now=now,
                            reason="validity_ended",
                            changes={"transfer_id": None},
                        )
                        done += 1
                    elif row["reminded_for"] != row["expires_on"] and reminder_due(
                        row["expires_on"], today, days=self._reminder_days
                    ):
                        tag = f"expiring.{row['expires_on'].isoformat()}"
                        sweeper = Actor(kind="system", id="sweeper")
                        await self.store.note(
                            conn,
                            permit_id,
                            now=now,
                            changes={"reminded_for": row["expires_on"]},
                            events=self._step_events(
                                row, row["state"], "expiring", sweeper, number=tag
                            ),
                            tag=tag,
                        )
                        done += 1
            except Exception as exc:  # one bad row must not stop the sweep
                log.warning("permits.sweep_failed", permit_id=permit_id, error=repr(exc))
        return done

    # ---- transitions and their events -----------------------------------------------------

    async def _move(
        self,
        conn: Connection,
        row: dict[str, Any],
        target: State,
        actor: Actor,
        *,
        now: datetime,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        template: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        check_transition(row["state"], target, actor)
        if row["state"] == "transfer_pending" and target in {"cancelled", "expired"}:
            pending = await self.store.pending_transfer_of(conn, row["id"])
            if pending is not None:  # the permit ends: so does the transfer it was waiting for
                await self.store.update_transfer(
                    conn,
                    pending["id"],
                    state="cancelled",
                    reason=f"permit {target}",
                    updated_at=now,
                )
        number = row["version"] + 1  # the transition's number: one more than the permit's
        future = {**row, **(changes or {}), "state": target}
        return await self.store.transition(
            conn,
            row["id"],
            target,
            actor,
            now=now,
            changes=changes,
            reason=reason,
            detail=detail,
            events=self._step_events(
                future,
                row["state"],
                template or target,
                actor,
                number=number,
                reason=reason,
                extra=extra,
            ),
        )

    def _step_events(
        self,
        row: dict[str, Any],
        previous: str | None,
        step: str,
        actor: Actor,
        *,
        number: int | str,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        return step_events(
            row,
            previous,
            step,
            actor,
            number=number,
            at=self._clock().isoformat(),
            reason=reason,
            extra=extra,
        )
