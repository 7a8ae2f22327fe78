"""The visa pipeline: apply, check, charge, decide, issue, cancel, expire.

Glue between the rules (:mod:`services.visas.domain`), the service's tables
(:mod:`services.visas.store`) and the hub (:mod:`services.visas.hub_client`). Each step either
finishes whole or leaves nothing: the registrar checks and the fee request run before the
application's first row is written, and the row, its transitions, its events and its
notification requests are one transaction. A retried request with the same ``Idempotency-Key``
maps to the same application id and the same payment key, so it can create neither a second
application nor a second charge.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import structlog

from hub.backends.events.base import Event
from hub.errors import (
    AgencyOfficerRequired,
    ApplicationNotFound,
    EstablishmentMismatch,
    EstablishmentNotPermitted,
    Forbidden,
    HubUnavailable,
    InvalidRequest,
    VisaIneligible,
)
from hub.servicekit.caller import Caller as ServiceCaller
from hub.servicekit.gateway import Payment, payment_outcome
from hub.servicekit.idempotency import keyed_id, request_hash
from services.visas import compliance
from services.visas.domain import (
    FEES,
    REASONS,
    Actor,
    EstablishmentFacts,
    Kind,
    SponsorFacts,
    State,
    VisitRequest,
    WorkRequest,
    automatic_decision,
    check_transition,
    parse_visit_request,
    parse_work_request,
    refund_amount,
    validity,
    visit_reasons,
    work_reasons,
)
from services.visas.hub_client import HubClient
from services.visas.occupations import occupation
from services.visas.store import Connection, Idempotent, VisaStore

__all__ = ["Caller", "VisaWorkflow", "caller_of"]

log = structlog.get_logger(__name__)

_QUOTAS: Final = {"micro": 3, "small": 15, "medium": 60, "large": 300}
_APPLY_SCOPE: Final = "visas.apply"
_READ_SCOPE: Final = "visas.read"
REFERENCE_PREFIX: Final = "visa-application:"


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller(ServiceCaller):
    """Who called, as the hub's internal token says (the kit's caller), as the visa steps see it."""

    def actor(self) -> Actor:
        label = self.client_id or self.subject
        return Actor(kind="officer" if self.officer else "applicant", id=self.subject, label=label)


#: The caller from the hub's verified principal and the claims of its internal token.
caller_of = Caller.of


def _now() -> datetime:
    return datetime.now(UTC)


def _masked(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 2)


class VisaWorkflow:
    """The visa service's operations, each one whole or not at all."""

    def __init__(
        self,
        store: VisaStore,
        hub: HubClient,
        *,
        verification_key: bytes,
        currency: str = "SAR",
        payment_window: timedelta = timedelta(hours=72),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self._key = verification_key
        self._currency = currency
        self._window = payment_window
        self._clock = clock

    # ---- views ----------------------------------------------------------------------------

    def verification_code(self, visa_number: str) -> str:
        """The code printed on a visa: an HMAC of its number, 8 characters of base32."""
        digest = hmac.new(self._key, visa_number.encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode()[:8]

    def view(self, row: dict[str, Any], *, officer: bool = False) -> dict[str, Any]:
        """An application as its applicant (or an officer) sees it."""
        found = occupation(row["occupation"]) if row["occupation"] else None
        body: dict[str, Any] = {
            "id": row["id"],
            "kind": row["kind"],
            "state": row["state"],
            "establishment_id": row["establishment_id"],
            "cr_number": row["cr_number"],
            "traveller": {
                "given_name": row["given_name"],
                "family_name": row["family_name"],
                "nationality": row["nationality"],
                "passport_number": row["passport_number"],
                "birth_date": row["birth_date"].isoformat(),
            },
            "occupation": None
            if found is None
            else {"code": found.code, "title": found.title, "skill_level": found.skill_level},
            "monthly_salary": row["monthly_salary"],
            "sponsor_national_id": row["sponsor_national_id"],
            "relationship": row["relationship"],
            "duration": row["duration"],
            "fee": {
                "amount": row["fee"],
                "currency": row["currency"],
                "payment_id": row["payment_id"],
                "paid_at": _iso(row["paid_at"]),
                "refunded": row["refunded"],
            },
            "review_reasons": list(row["review_reasons"] or []),
            "decision_reason": row["decision_reason"],
            "visa": None,
            "submitted_at": _iso(row["submitted_at"]),
            "updated_at": _iso(row["updated_at"]),
            "pay_by": _iso(row["pay_by"]),
        }
        if row["visa_number"]:
            body["visa"] = {
                "number": row["visa_number"],
                "verification_code": self.verification_code(row["visa_number"]),
                "valid_from": row["valid_from"].isoformat(),
                "valid_until": row["valid_until"].isoformat(),
                "issued_at": _iso(row["issued_at"]),
            }
        if officer:
            body["checks"] = row["checks"]
            body["applicant"] = {
                "kind": row["applicant_kind"],
                "id": row["applicant_id"],
                "client_id": row["applicant_client"],
            }
        return body

    def verify(self, row: dict[str, Any] | None, code: str) -> dict[str, Any]:
        """The public answer about a visa: validity and minimal data, only with its code."""
        if row is None or not hmac.compare_digest(
            self.verification_code(row["visa_number"]), code.strip().upper()
        ):
            return {"valid": False}
        today = self._clock().date()
        valid = row["state"] == "issued" and row["valid_from"] <= today <= row["valid_until"]
        return {
            "valid": valid,
            "visa_number": row["visa_number"],
            "kind": row["kind"],
            "status": row["state"],
            "valid_from": row["valid_from"].isoformat(),
            "valid_until": row["valid_until"].isoformat(),
            "holder": f"{row['given_name'][:1]}. {_masked(row['family_name'])}",
            "nationality": row["nationality"],
        }

    # ---- access ---------------------------------------------------------------------------

    def require_establishment(self, caller: Caller, establishment_id: str, *, write: bool) -> None:
        scopes = (_APPLY_SCOPE,) if write else (_APPLY_SCOPE, _READ_SCOPE)
        if not caller.may_act_for(establishment_id, scopes):
            raise EstablishmentNotPermitted(
                f"the caller may not act for establishment {establishment_id} "
                f"(needs ownership or a delegation of {' or '.join(scopes)})"
            )

    def require_officer(self, caller: Caller) -> None:
        if not caller.officer:
            raise AgencyOfficerRequired("only agency officers may use the review queue")

    async def visible(self, caller: Caller, application_id: str) -> dict[str, Any]:
        """The application if the caller may see it; otherwise it does not exist for them."""
        row = await self.store.get(application_id)
        if caller.officer:
            return row
        if row["kind"] == "work" and row["establishment_id"] is not None:
            if caller.may_act_for(row["establishment_id"], (_APPLY_SCOPE, _READ_SCOPE)):
                return row
        elif caller.kind == "person" and row["applicant_id"] == caller.subject:
            return row
        raise ApplicationNotFound(f"no application {application_id}")

    # ---- apply ----------------------------------------------------------------------------

    def _application_id(self, scope: str, key: str) -> str:
        return keyed_id("va_", scope, key)

    async def _replay(self, scope: str, key: str, digest: str) -> dict[str, Any] | None:
        """The application an earlier request with this key made, if one did."""
        earlier = await self.store.idempotent(scope, key, digest)
        return None if earlier is None else await self.store.get(earlier.application_id)

    async def _charge(self, application_id: str, fee: int, *, what: str) -> Payment:
        """The payment of an application's fee (the same application is never charged twice)."""
        return await self.hub.create_payment(
            key=f"visa-fee:{application_id}",
            amount=fee,
            currency=self._currency,
            reference=REFERENCE_PREFIX + application_id,
            description=f"{what}, application {application_id}",
        )

    async def apply_work(
        self, caller: Caller, establishment_id: str, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """A work visa application for ``establishment_id``; ``True`` when it is a replay."""
        self.require_establishment(caller, establishment_id, write=True)
        now = self._clock()
        request = parse_work_request(body, today=now.date())
        scope = f"work:{establishment_id}:{caller.kind}:{caller.subject}"
        digest = request_hash(body)
        replay = await self._replay(scope, key, digest)
        if replay is not None:
            return replay, True
        application_id = self._application_id(scope, key)
        counts = await self.store.eligibility_counts(
            establishment_id=establishment_id,
            nationality=request.traveller.nationality,
            passport_number=request.traveller.passport_number,
        )
        bound = await self.store.establishment_of_cr(request.cr_number)
        registered = caller.cr_number(establishment_id)  # the hub's register, when it says
        if (
            (registered is not None and registered != request.cr_number)
            or (counts["bound_cr"] not in {None, request.cr_number})
            or (bound not in {None, establishment_id})
        ):
            raise EstablishmentMismatch(
                f"CR number {request.cr_number} is not the one on record for establishment "
                f"{establishment_id}"
            )
        facts, record = await self._establishment_facts(request, counts)
        reasons = work_reasons(
            request, facts, blocked=counts["blocked"], open_elsewhere=counts["open_elsewhere"]
        )
        if reasons:
            # a concurrent request with this key may have just made the application (its
            # traveller now counts as "already applied"): answer that application instead
            replay = await self._replay(scope, key, digest)
            if replay is not None:
                return replay, True
            raise _ineligible(reasons)
        fee = FEES["work"]
        payment = await self._charge(application_id, fee, what="Work visa fee")
        checks = {
            "establishment": {
                "status": facts.status,
                "sector": facts.sector,
                "size": facts.size,
                "name": (record or {}).get("name"),
            },
            "compliance": facts.standing.as_dict() if facts.standing else None,
            "quota": {"limit": facts.quota, "used": facts.used},
            "occupation": request.occupation.as_dict(),
            "passed": [
                "establishment_active",
                "compliance_band",
                "visa_quota",
                "occupation_open",
                "salary_minimum",
                "applicant_not_blocked",
            ],
        }
        row = self._row(
            application_id,
            "work",
            caller,
            request,
            now=now,
            fee=fee,
            payment_id=payment.id,
            checks=checks,
            establishment_id=establishment_id,
            establishment_name=(record or {}).get("name"),
        )
        return await self._submit(
            row,
            checks,
            payment.id,
            scope=scope,
            key=key,
            digest=digest,
            bind=(establishment_id, request.cr_number),
            quota=facts.quota,
        )

    async def apply_visit(
        self, caller: Caller, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """A person's visit visa application for a relative; ``True`` when it is a replay."""
        if caller.kind != "person":
            raise Forbidden("a visit visa is applied for by a signed-in person")
        now = self._clock()
        request = parse_visit_request(body, today=now.date())
        if caller.national_id is not None and request.sponsor_national_id != caller.national_id:
            # the sponsor is the signed-in person, by the hub's records: not an ID typed in
            raise Forbidden(
                "sponsor_national_id must be your own national ID: you sponsor your relative"
            )
        scope = f"visit:{caller.subject}"
        digest = request_hash(body)
        replay = await self._replay(scope, key, digest)
        if replay is not None:
            return replay, True
        application_id = self._application_id(scope, key)
        counts = await self.store.eligibility_counts(
            establishment_id=None,
            nationality=request.traveller.nationality,
            passport_number=request.traveller.passport_number,
            sponsor_national_id=request.sponsor_national_id,
        )
        record = await self.hub.person(request.sponsor_national_id)
        sponsor = SponsorFacts(
            found=record is not None,
            alive=bool((record or {}).get("alive", True)),
            open_visits=counts["open_visits"],
        )
        reasons = visit_reasons(
            sponsor, blocked=counts["blocked"], open_elsewhere=counts["open_elsewhere"]
        )
        if reasons:
            # a concurrent request with this key may have just made the application (its
            # traveller now counts as "already applied"): answer that application instead
            replay = await self._replay(scope, key, digest)
            if replay is not None:
                return replay, True
            raise _ineligible(reasons)
        fee = FEES["visit"]
        payment = await self._charge(application_id, fee, what="Visit visa fee")
        checks = {
            "sponsor": {"found": True, "alive": sponsor.alive},
            "open_visits": sponsor.open_visits,
            "passed": ["sponsor_found", "sponsor_alive", "visit_quota", "applicant_not_blocked"],
        }
        row = self._row(
            application_id,
            "visit",
            caller,
            request,
            now=now,
            fee=fee,
            payment_id=payment.id,
            checks=checks,
        )
        return await self._submit(row, checks, payment.id, scope=scope, key=key, digest=digest)

    async def _submit(
        self,
        row: dict[str, Any],
        checks: dict[str, Any],
        payment_id: str,
        *,
        scope: str,
        key: str,
        digest: str,
        bind: tuple[str, str] | None = None,
        quota: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Insert a new application, submitted and now awaiting its fee; ``True``: a replay."""
        created = await self.store.create(
            row,
            actor=Actor(kind="system", id="visas"),
            path=("submitted", "awaiting_payment"),
            detail={"checks": checks["passed"]},
            idempotency_scope=scope,
            idempotency_key=key,
            digest=digest,
            events=self._events(row, None, "submitted", "system")
            + self._events(row, "submitted", "awaiting_payment", "system"),
            bind=bind,
            quota=quota,
        )
        return await self._after_create(created, payment_id)

    async def _after_create(
        self, created: dict[str, Any] | Idempotent, payment_id: str
    ) -> tuple[dict[str, Any], bool]:
        if isinstance(created, Idempotent):
            return await self.store.get(created.application_id), True
        # a payment event that came before the row committed was kept: apply it now. A plain
        # read first: the consumer records receipts under the write lock, so one committed
        # before the row is seen here, and one after it found the row and settled it itself;
        # the write lock is taken only when there is something to apply (rarely).
        if await self.store.has_receipt(payment_id):
            async with self.store.writing() as conn:
                state = await self.store.receipt(conn, payment_id)
                if state is not None:
                    await self._settle_payment(conn, created["id"], state)
        return await self.store.get(created["id"]), False

    async def _establishment_facts(
        self, request: WorkRequest, counts: dict[str, Any]
    ) -> tuple[EstablishmentFacts, dict[str, Any] | None]:
        record = await self.hub.establishment(request.cr_number)
        if record is None:
            return EstablishmentFacts(found=False), None
        sector, size = str(record.get("sector", "")), str(record.get("size", ""))
        standing = _known_standing(counts.get("compliance")) or compliance.standing(
            sector=sector, citizens=counts["citizens"], foreigners=counts["foreigners"]
        )
        facts = EstablishmentFacts(
            found=True,
            status=str(record.get("status")),
            sector=sector,
            size=size,
            standing=standing,
            quota=_QUOTAS.get(size, _QUOTAS["micro"]),
            used=counts["used"],
        )
        return facts, record

    def _row(
        self,
        application_id: str,
        kind: Kind,
        caller: Caller,
        request: WorkRequest | VisitRequest,
        *,
        now: datetime,
        fee: int,
        payment_id: str,
        checks: dict[str, Any],
        establishment_id: str | None = None,
        establishment_name: str | None = None,
    ) -> dict[str, Any]:
        traveller = request.traveller
        work = request if isinstance(request, WorkRequest) else None
        visit = request if isinstance(request, VisitRequest) else None
        words = [
            traveller.given_name,
            traveller.family_name,
            traveller.nationality,
            traveller.passport_number,
            application_id,
        ]
        if work is not None:
            words += [work.cr_number, work.occupation.code, work.occupation.title]
            words += [establishment_name or ""]
        if visit is not None:
            words += [visit.sponsor_national_id, visit.relationship]
        return {
            "id": application_id,
            "kind": kind,
            "state": "awaiting_payment",
            "version": 2,
            "applicant_kind": caller.kind,
            "applicant_id": caller.subject,
            "applicant_client": caller.client_id,
            "delegation_id": caller.delegation,
            "establishment_id": establishment_id,
            "cr_number": work.cr_number if work else None,
            "establishment_name": establishment_name,
            "sponsor_national_id": visit.sponsor_national_id if visit else None,
            "relationship": visit.relationship if visit else None,
            "given_name": traveller.given_name,
            "family_name": traveller.family_name,
            "nationality": traveller.nationality,
            "passport_number": traveller.passport_number,
            "birth_date": traveller.birth_date,
            "occupation": work.occupation.code if work else None,
            "monthly_salary": work.monthly_salary if work else None,
            "duration": work.duration_months if work else (visit.duration_days if visit else 0),
            "contact_email": request.contact_email,
            "fee": fee,
            "currency": self._currency,
            "payment_id": payment_id,
            "paid_at": None,
            "refunded": 0,
            "checks": checks,
            "review_reasons": [],
            "decision_reason": None,
            "visa_number": None,
            "valid_from": None,
            "valid_until": None,
            "issued_at": None,
            "search_text": " ".join(w for w in words if w).lower()[:1000],
            "submitted_at": now,
            "updated_at": now,
            "pay_by": now + self._window,
        }

    # ---- events ---------------------------------------------------------------------------

    def _events(
        self,
        row: dict[str, Any],
        previous: str | None,
        state: str,
        actor_kind: str,
        *,
        reason: str | None = None,
        actor_id: str = "visas",
    ) -> list[tuple[str, dict[str, Any]]]:
        """The domain event of a transition and the applicant's notification request."""
        at = self._clock().isoformat()
        event = {
            "application_id": row["id"],
            "kind": row["kind"],
            "state": state,
            "previous": previous,
            "actor": {"kind": actor_kind, "id": actor_id},
            "at": at,
            "establishment_id": row["establishment_id"],
            "occupation": row["occupation"],
            "nationality": row["nationality"],
            "visa_number": row.get("visa_number"),
            "reason": reason,
            # for the work permits service, which learns of issued visas from this event only
            "passport_number": row["passport_number"],
            "worker_name": f"{row['given_name']} {row['family_name']}",
            "valid_until": _iso(row.get("valid_until")),
        }
        recipient: dict[str, Any] = {
            "kind": row["applicant_kind"],
            "id": row["applicant_id"],
            "client_id": row["applicant_client"],
            "establishment_id": row["establishment_id"],
        }
        if row["contact_email"]:
            recipient["email"] = row["contact_email"]
        notification = {
            "notification_id": f"{row['id']}.{state}",
            "recipient": recipient,  # the recipient's stored preference chooses the channels
            "template": f"visa.application.{state}",
            "subject": f"Visa application {row['id']}: {state.replace('_', ' ')}",
            "body": _message(row, state, reason),
            "data": {
                "application_id": row["id"],
                "state": state,
                "visa_number": row.get("visa_number"),
            },
            "reference": REFERENCE_PREFIX + row["id"],
        }
        return [(f"visa.application.{state}", event), ("notification.requested", notification)]

    # ---- the compliance service's bands ------------------------------------------------------

    async def on_band_changed(self, conn: Connection, event: Event) -> None:
        """Keep ``compliance.band.changed``: the band the eligibility checks prefer."""
        payload = event.payload
        establishment_id, band = payload.get("establishment_id"), payload.get("band")
        citizens, total = payload.get("citizens"), payload.get("total")
        if (
            not isinstance(establishment_id, str)
            or band not in compliance.BANDS
            or not isinstance(citizens, int)
            or not isinstance(total, int)
        ):
            log.warning("visas.band_event_malformed", event_id=event.id)
            return
        try:
            changed_at = datetime.fromisoformat(str(payload.get("at")))
        except ValueError:
            changed_at = event.occurred_at
        ratio, required = payload.get("ratio"), payload.get("required")
        await self.store.record_band(
            conn,
            establishment_id,
            {
                "band": band,
                "citizens": citizens,
                "total": total,
                "ratio": ratio if isinstance(ratio, int | float) else 0.0,
                "required": required if isinstance(required, int | float) else None,
                "changed_at": changed_at if changed_at.tzinfo else changed_at.replace(tzinfo=UTC),
            },
        )

    # ---- payment --------------------------------------------------------------------------

    async def on_payment_event(self, conn: Connection, event: Event) -> None:
        """The effect of a payment event (``payment.captured`` and the failures), once per id."""
        outcome = payment_outcome(event, REFERENCE_PREFIX)
        if outcome is None:
            return  # someone else's payment, or not its end
        payment_id, state = outcome
        await self.store.record_receipt(conn, payment_id, state)
        row = await self.store.by_payment(conn, payment_id)
        if row is None:
            return  # the application commits later and applies the receipt itself
        await self._settle_payment(conn, row["id"], state)

    async def _settle_payment(self, conn: Connection, application_id: str, state: str) -> None:
        row = await self.store.get_in(conn, application_id)
        if row is None or row["state"] != "awaiting_payment":
            return  # already settled (a redelivered event) or cancelled meanwhile
        now = self._clock()
        system = Actor(kind="system", id="payments")
        if state != "captured":
            reason = f"payment_{state}"
            await self._move(conn, row, "lapsed", system, now=now, reason=reason)
            return
        found = occupation(row["occupation"]) if row["occupation"] else None
        standing = (row["checks"] or {}).get("compliance") or {}
        decision = automatic_decision(
            row["kind"],
            skill_level=found.skill_level if found else 4,
            salary=row["monthly_salary"] or 0,
            minimum=found.minimum_monthly_salary if found else 0,
            band=standing.get("band"),
        )
        paid = {"paid_at": now, "review_reasons": list(decision.reasons)}
        if decision.state == "in_review":
            await self._move(conn, row, "in_review", system, now=now, changes=paid)
            return
        approved = await self._move(
            conn, row, "approved", Actor(kind="system", id="automatic-rules"), now=now, changes=paid
        )
        await self._issue(conn, approved, now=now)

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
    ) -> dict[str, Any]:
        future = {**row, **(changes or {})}
        return await self.store.transition(
            conn,
            row["id"],
            target,
            actor,
            now=now,
            changes=changes,
            reason=reason,
            events=self._events(
                future, row["state"], target, actor.kind, reason=reason, actor_id=actor.id
            ),
        )

    async def _issue(
        self, conn: Connection, row: dict[str, Any], *, now: datetime
    ) -> dict[str, Any]:
        prefix = "W" if row["kind"] == "work" else "V"
        number = prefix + str(secrets.randbelow(10**9)).zfill(9)
        today = now.date()
        until = validity(row["kind"], months=row["duration"], days=row["duration"], issued_on=today)
        return await self._move(
            conn,
            row,
            "issued",
            Actor(kind="system", id="issuer"),
            now=now,
            changes={
                "visa_number": number,
                "valid_from": today,
                "valid_until": until,
                "issued_at": now,
            },
        )

    # ---- decisions, cancellation, expiry --------------------------------------------------

    async def decide(
        self, caller: Caller, application_id: str, *, approve: bool, reason: str | None
    ) -> dict[str, Any]:
        """An officer approves (and the visa is issued) or rejects with a reason."""
        self.require_officer(caller)
        if not approve and not (reason and reason.strip()):
            raise InvalidRequest(
                "reason: a rejection needs a reason", extra={"errors": ["reason: required"]}
            )
        officer = Actor(kind="officer", id=caller.subject)
        now = self._clock()
        async with self.store.writing() as conn:
            row = await self.store.get_in(conn, application_id)
            if row is None:
                raise ApplicationNotFound(f"no application {application_id}")
            changes = {"decision_reason": (reason or "").strip() or None}
            if approve:
                approved = await self._move(
                    conn,
                    row,
                    "approved",
                    officer,
                    now=now,
                    changes=changes,
                    reason=changes["decision_reason"],
                )
                await self._issue(conn, approved, now=now)
            else:
                await self._move(
                    conn,
                    row,
                    "rejected",
                    officer,
                    now=now,
                    changes=changes,
                    reason=changes["decision_reason"],
                )
        return await self.store.get(application_id)

    async def cancel(
        self, caller: Caller, application_id: str, reason: str | None
    ) -> dict[str, Any]:
        """Cancel an application or a visa; what was paid is refunded by the refund rules."""
        row = await self.visible(caller, application_id)
        actor = caller.actor()
        check_transition(row["state"], "cancelled", actor)
        now = self._clock()
        amount = refund_amount(
            row["state"],
            fee=row["fee"],
            paid=row["paid_at"] is not None,
            issued_at=row["issued_at"],
            now=now,
        )
        if amount and row["payment_id"]:
            # refund first, under a key of its own: a retried cancel never refunds twice, and a
            # refund the hub refused leaves the application as it was
            await self.hub.refund(
                key=f"visa-refund:{application_id}",
                payment_id=row["payment_id"],
                amount=amount,
                reason="visa application cancelled",
            )
        elif row["state"] == "awaiting_payment" and row["payment_id"]:
            log.info("visas.cancelled_unpaid", application_id=application_id)
        async with self.store.writing() as conn:
            current = await self.store.get_in(conn, application_id)
            if current is None:  # pragma: no cover - rows are never deleted
                raise ApplicationNotFound(f"no application {application_id}")
            await self._move(
                conn,
                current,
                "cancelled",
                Actor(kind=actor.kind, id=caller.subject),
                now=now,
                changes={"refunded": amount},
                reason=(reason or "").strip()[:500] or None,
            )
        return await self.store.get(application_id)

    async def sweep(self) -> int:
        """Lapse unpaid applications past their deadline and expire visas past validity."""
        now = self._clock()
        moved = 0
        for application_id, target in await self.store.due(now, now.date()):
            try:
                async with self.store.writing() as conn:
                    row = await self.store.get_in(conn, application_id)
                    if row is None:
                        continue
                    await self._move(
                        conn,
                        row,
                        target,
                        Actor(kind="system", id="sweeper"),
                        now=now,
                        reason="payment_window_passed" if target == "lapsed" else "validity_ended",
                    )
                    moved += 1
            except (HubUnavailable, ApplicationNotFound):
                continue
            except Exception as exc:  # one bad row must not stop the sweep
                log.warning("visas.sweep_failed", application_id=application_id, error=repr(exc))
        return moved


def _known_standing(known: dict[str, Any] | None) -> compliance.Standing | None:
    """The compliance service's band of the establishment, when one came (preferred)."""
    if known is None or known["band"] not in compliance.BANDS:
        return None
    return compliance.Standing(
        band=known["band"],
        citizens=int(known["citizens"]),
        foreigners=max(int(known["total"]) - int(known["citizens"]), 0),
        ratio=float(known["ratio"]),
        required=float(known["required"] if known["required"] is not None else 0.0),
    )


def _ineligible(reasons: list[str]) -> VisaIneligible:
    return VisaIneligible(
        "the application is not eligible: " + ", ".join(reasons),
        extra={
            "reasons": reasons,
            "explanations": {reason: REASONS[reason] for reason in reasons},
        },
    )


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _message(row: dict[str, Any], state: str, reason: str | None) -> str:
    who = f"{row['given_name']} {row['family_name']}"
    texts = {
        "submitted": f"The {row['kind']} visa application for {who} was received.",
        "awaiting_payment": "The checks passed. The application waits for its fee.",
        "in_review": "The fee was paid. An agency officer will review the application.",
        "approved": "The application was approved.",
        "issued": f"The visa for {who} was issued: {row.get('visa_number')}.",
        "rejected": f"The application was rejected: {reason or 'no reason given'}.",
        "cancelled": "The application was cancelled.",
        "expired": f"The visa {row.get('visa_number')} has expired.",
        "lapsed": "The application lapsed: its fee was not paid.",
    }
    return texts.get(state, state)
