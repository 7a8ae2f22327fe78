"""The contract pipeline: draft, offer, accept, sign, activate, amend, terminate, expire.

Glue between the rules (:mod:`services.contracts.domain`), the tables
(:mod:`services.contracts.store`) and the hub (:mod:`services.contracts.hub_client`). Each step
finishes whole or leaves nothing: the registrar check and the hub's signature are obtained
before anything is written, and a row, its transition, its signature, its events and its
notification requests are one transaction. Who may do what is decided here, per object: the
employee is the signed-in person the contract names, the employer is the establishment's
owner or someone it delegated ``contracts.manage`` (``contracts.read`` to read only); anyone
else is told the contract does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

import structlog

from hub.errors import (
    AlreadySigned,
    AmendmentNotFound,
    AmendmentOpen,
    ContractIneligible,
    ContractNotFound,
    EstablishmentMismatch,
    EstablishmentNotActive,
    EstablishmentNotPermitted,
    Forbidden,
    HubUnavailable,
    IdempotencyConflict,
    InvalidRequest,
    InvalidTransition,
)
from hub.servicekit.caller import Caller
from hub.servicekit.idempotency import keyed_id, request_hash
from services.contracts.domain import (
    AMENDABLE,
    PARTIES,
    REASONS,
    Actor,
    AmendmentState,
    Party,
    State,
    amended_document,
    check_amendment,
    check_transition,
    document_hash,
    document_of,
    draft_reasons,
    parse_amendment,
    parse_draft,
    state_after_signing,
)
from services.contracts.hub_client import HubClient, Signed
from services.contracts.messages import REFERENCE_PREFIX, event_payload, notice, transition_events
from services.contracts.signatures import verify_signature
from services.contracts.store import ContractStore

__all__ = ["REFERENCE_PREFIX", "ContractWorkflow"]

log = structlog.get_logger(__name__)

MANAGE_SCOPE: Final = "contracts.manage"
READ_SCOPE: Final = "contracts.read"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


class ContractWorkflow:
    """The contracts service's operations, each one whole or not at all."""

    def __init__(
        self,
        store: ContractStore,
        hub: HubClient,
        *,
        hub_key: Callable[[str], Any | None],
        issuer: str,
        currency: str = "SAR",
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self._hub_key = hub_key
        self._issuer = issuer
        self._currency = currency
        self._clock = clock

    # ---- access ---------------------------------------------------------------------------

    def is_hub_person(self, caller: Caller) -> bool:
        """A person signed in through the hub's own SSO (whose ``sub`` is a hub person id)."""
        return caller.kind == "person" and caller.issuer == self._issuer

    def is_employee(self, caller: Caller, row: dict[str, Any]) -> bool:
        """The person the contract names."""
        return self.is_hub_person(caller) and caller.subject == row["employee_id"]

    @staticmethod
    def is_employer(caller: Caller, row: dict[str, Any], *, write: bool) -> bool:
        scopes = (MANAGE_SCOPE,) if write else (MANAGE_SCOPE, READ_SCOPE)
        return caller.may_act_for(row["establishment_id"], scopes)

    def require_establishment(self, caller: Caller, establishment_id: str, *, write: bool) -> None:
        scopes = (MANAGE_SCOPE,) if write else (MANAGE_SCOPE, READ_SCOPE)
        if not caller.may_act_for(establishment_id, scopes):
            raise EstablishmentNotPermitted(
                f"the caller may not act for establishment {establishment_id} "
                f"(needs ownership or a delegation of {' or '.join(scopes)})"
            )

    async def visible(self, caller: Caller, contract_id: str) -> dict[str, Any]:
        """The contract if the caller is a party to it; otherwise it does not exist for them."""
        row = await self.store.get(contract_id)
        if self.is_employee(caller, row) or self.is_employer(caller, row, write=False):
            return row
        raise ContractNotFound(f"no contract {contract_id}")

    def _side(self, caller: Caller, row: dict[str, Any], wanted: str | None = None) -> Party:
        """The side the caller acts as on ``row`` (``wanted`` when they could be either)."""
        employee = self.is_employee(caller, row)
        employer = self.is_employer(caller, row, write=True)
        if wanted == "employee" or (wanted is None and employee):
            if not employee:
                raise Forbidden("only the employee the contract names may act as the employee")
            return "employee"
        if not employer:
            if self.is_employer(caller, row, write=False):
                self.require_establishment(caller, row["establishment_id"], write=True)
            if employee:
                raise Forbidden("only the employer may act as the employer")
            raise ContractNotFound(f"no contract {row['id']}")
        return "employer"

    def _require(self, caller: Caller, row: dict[str, Any], side: Party) -> Actor:
        actual = self._side(caller, row, side)
        return Actor(kind=actual, id=caller.subject)

    # ---- views ----------------------------------------------------------------------------

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        """A contract as its parties see it."""
        document = row["document"]
        return {
            "id": row["id"],
            "state": row["state"],
            "version": row["terms_version"],
            "establishment_id": row["establishment_id"],
            "cr_number": row["cr_number"],
            "employee": document["employee"],
            "occupation": document["occupation"],
            "salary": document["salary"],
            "allowances": document["allowances"],
            "start_date": document["start_date"],
            "end_date": document["end_date"],
            "terms": document["terms"],
            "document_hash": document_hash(document),
            "termination_reason": row["termination_reason"],
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }

    @staticmethod
    def amendment_view(row: dict[str, Any]) -> dict[str, Any]:
        changes = dict(row["changes"])
        return {
            "id": row["id"],
            "contract_id": row["contract_id"],
            "state": row["state"],
            "proposer": row["proposer"],
            "changes": changes,
            "reason": row["reason"],
            "version": row["document"]["version"],
            "document_hash": document_hash(row["document"]),
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
        }

    @staticmethod
    def signature_view(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "party": row["party"],
            "signer": row["signer"],
            "signed_at": row["signed_at"],
            "document_hash": row["document_hash"],
            "version": row["terms_version"],
            "jws": row["jws"],
        }

    async def current_signatures(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.store.signatures_of(row["id"], row["signature_set"])

    async def verification(self, row: dict[str, Any]) -> dict[str, Any]:
        """Recompute the stored document's hash and check every current signature's JWS."""
        digest = document_hash(row["document"])
        checked: list[dict[str, Any]] = []
        for signature in await self.current_signatures(row):
            problems = verify_signature(
                signature["jws"],
                key_of=self._hub_key,
                issuer=self._issuer,
                contract_id=row["id"],
                document_hash=digest,
                signer=signature["signer"],
                signed_at=signature["signed_at"],
            )
            if signature["document_hash"] != digest:
                problems.append("stored_hash_mismatch")
            checked.append(
                {
                    "party": signature["party"],
                    "signer": signature["signer"],
                    "signed_at": signature["signed_at"],
                    "valid": not problems,
                    "problems": sorted(set(problems)),
                }
            )
        parties = {c["party"] for c in checked}
        complete = parties >= set(PARTIES)
        return {
            "contract_id": row["id"],
            "version": row["terms_version"],
            "state": row["state"],
            "document_hash": digest,
            "complete": complete,
            "valid": complete and all(c["valid"] for c in checked),
            "signatures": checked,
        }

    # ---- draft ----------------------------------------------------------------------------

    async def draft(
        self, caller: Caller, establishment_id: str, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """A new contract draft for ``establishment_id``; ``True`` when it is a replay."""
        self.require_establishment(caller, establishment_id, write=True)
        now = self._clock()
        draft = parse_draft(body, today=now.date())
        scope = f"draft:{establishment_id}:{caller.kind}:{caller.subject}"
        digest = request_hash(body)
        earlier = await self.store.idempotent(scope, key, digest)
        if earlier is not None:
            return await self.store.get(earlier), True
        bound_cr = await self.store.bound_cr(establishment_id)
        bound_est = await self.store.bound_establishment(draft.cr_number)
        if bound_cr not in {None, draft.cr_number} or bound_est not in {None, establishment_id}:
            raise EstablishmentMismatch(
                f"CR number {draft.cr_number} is not the one on record for establishment "
                f"{establishment_id}"
            )
        record = await self.hub.establishment(draft.cr_number)
        status = None if record is None else str(record.get("status"))
        reasons = draft_reasons(
            occupation=draft.occupation,
            salary=draft.salary,
            citizen=draft.employee.citizen,
            establishment_status=status,
        )
        if reasons:
            extra: dict[str, object] = {
                "reasons": reasons,
                "explanations": {reason: REASONS[reason] for reason in reasons},
            }
            if "establishment_not_active" in reasons:
                raise EstablishmentNotActive(
                    f"establishment {draft.cr_number} is {status}: it may make no contracts",
                    extra={**extra, "status": status},
                )
            raise ContractIneligible(
                "the contract cannot be made: " + ", ".join(reasons), extra=extra
            )
        contract_id = keyed_id("ct_", scope, key)
        document = document_of(
            draft,
            contract_id=contract_id,
            establishment_id=establishment_id,
            establishment_name=None if record is None else record.get("name"),
            currency=self._currency,
        )
        row = {
            "id": contract_id,
            "state": "draft",
            "version": 1,
            "terms_version": 1,
            "signature_set": "",
            "establishment_id": establishment_id,
            "cr_number": draft.cr_number,
            "employee_id": draft.employee.id,
            "nationality": draft.employee.nationality,
            "citizen": draft.employee.citizen,
            "visa_number": draft.employee.visa_number,
            "occupation": draft.occupation.code,
            "salary": draft.salary,
            "start_date": draft.start_date,
            "end_date": draft.end_date,
            "document": document,
            "drafter_kind": caller.kind,
            "drafter_id": caller.subject,
            "drafter_client": caller.client_id,
            "contact_email": draft.contact_email,
            "termination_reason": None,
            "created_at": now,
            "updated_at": now,
        }
        events = [
            (f"{contract_id}.1.contract.drafted", "contract.drafted", event_payload(row, now)),
        ]
        created, replayed = await self.store.create(
            row,
            actor=Actor(kind="employer", id=caller.subject),
            idempotency_scope=scope,
            idempotency_key=key,
            digest=digest,
            events=events,
        )
        return await self.store.get(created), replayed

    # ---- the offer and the answer ---------------------------------------------------------

    async def _step(
        self,
        caller: Caller,
        contract_id: str,
        side: Party,
        target: State,
        *,
        reason: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row = await self.visible(caller, contract_id)
        actor = self._require(caller, row, side)
        check_transition(row["state"], target, actor)
        now = self._clock()
        async with self.store.writing() as conn:
            await self.store.transition(
                conn,
                contract_id,
                target,
                actor,
                now=now,
                reason=reason,
                changes=changes,
                events=lambda after, number: transition_events(
                    after,
                    previous=row["state"],
                    state=target,
                    number=number,
                    now=now,
                    reason=reason,
                ),
            )
        return await self.store.get(contract_id)

    async def offer(self, caller: Caller, contract_id: str) -> dict[str, Any]:
        return await self._step(caller, contract_id, "employer", "offered")

    async def accept(self, caller: Caller, contract_id: str) -> dict[str, Any]:
        return await self._step(caller, contract_id, "employee", "accepted")

    async def decline(self, caller: Caller, contract_id: str, reason: str | None) -> dict[str, Any]:
        return await self._step(caller, contract_id, "employee", "declined", reason=reason)

    async def withdraw(
        self, caller: Caller, contract_id: str, reason: str | None
    ) -> dict[str, Any]:
        return await self._step(caller, contract_id, "employer", "withdrawn", reason=reason)

    async def terminate(self, caller: Caller, contract_id: str, reason: str) -> dict[str, Any]:
        row = await self.visible(caller, contract_id)
        side = self._side(caller, row)
        return await self._step(
            caller,
            contract_id,
            side,
            "terminated",
            reason=reason,
            changes={"termination_reason": reason},
        )

    # ---- signatures -----------------------------------------------------------------------

    async def _signature(
        self, caller: Caller, row: dict[str, Any], side: Party, document: dict[str, Any]
    ) -> tuple[str, Signed]:
        """The hub's signature of ``document`` by the caller, checked before it is kept."""
        digest = document_hash(document)
        signed = await self.hub.sign(
            contract_id=row["id"],
            document_hash=digest,
            signer_token=caller.token,
            on_behalf_of=row["establishment_id"] if side == "employer" else None,
        )
        problems = verify_signature(
            signed.jws,
            key_of=self._hub_key,
            issuer=self._issuer,
            contract_id=row["id"],
            document_hash=digest,
            signer=signed.signer,
            signed_at=signed.signed_at,
        )
        if problems:
            raise HubUnavailable(f"the hub's signature does not verify: {', '.join(problems)}")
        if signed.signer.get("id") != caller.subject or signed.signer.get("kind") != caller.kind:
            raise HubUnavailable("the hub signed for another principal than the caller")
        return digest, signed

    async def sign(self, caller: Caller, contract_id: str, wanted: str | None) -> dict[str, Any]:
        """The caller's signature of the contract; both present make it ``active``."""
        row = await self.visible(caller, contract_id)
        side = self._side(caller, row, wanted)
        if row["state"] != "accepted":
            raise InvalidTransition(
                f"a contract that is {row['state']} cannot be signed (it must be accepted)",
                extra={"state": row["state"]},
            )
        existing = await self.current_signatures(row)
        if any(s["party"] == side for s in existing):
            raise AlreadySigned(f"the {side} has already signed this contract")
        digest, signed = await self._signature(caller, row, side, row["document"])
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.get_in(conn, contract_id)
            if current["state"] != "accepted" or current["document"] != row["document"]:
                raise InvalidTransition("the contract changed meanwhile; look at it again")
            parties = {s["party"] for s in await self.store.signatures_of(contract_id, "", conn)}
            if side in parties:
                raise AlreadySigned(f"the {side} has already signed this contract")
            other: Party = "employee" if side == "employer" else "employer"
            await self.store.add_signature(
                conn,
                {
                    "contract_id": contract_id,
                    "signature_set": "",
                    "terms_version": current["terms_version"],
                    "party": side,
                    "document_hash": digest,
                    "signer": signed.signer,
                    "signed_at": signed.signed_at,
                    "jws": signed.jws,
                },
                [
                    notice(
                        current,
                        f"{contract_id}.sig.{side}",
                        "contract.signed",
                        other,
                        f"The {side} signed contract {contract_id}.",
                    )
                ],
            )
            target = state_after_signing(current["state"], frozenset({*parties, side}))
            if target is not None:
                await self.store.transition(
                    conn,
                    contract_id,
                    target,
                    Actor(kind="system", id="contracts"),
                    now=now,
                    events=lambda after, number: transition_events(
                        after,
                        previous="accepted",
                        state="active",
                        number=number,
                        now=now,
                        reason=None,
                    ),
                )
        return await self.store.get(contract_id)

    # ---- amendments -----------------------------------------------------------------------

    async def propose(
        self, caller: Caller, contract_id: str, body: object, key: str
    ) -> tuple[dict[str, Any], bool]:
        """An amendment proposed by either side; it changes nothing until both have signed."""
        row = await self.visible(caller, contract_id)
        side = self._side(caller, row)
        scope = f"amend:{contract_id}:{caller.kind}:{caller.subject}"
        digest = request_hash(body)
        earlier = await self.store.idempotent(scope, key, digest)
        if earlier is not None:
            return await self._amendment(contract_id, earlier), True
        if row["state"] not in AMENDABLE:
            raise InvalidTransition(
                f"a contract that is {row['state']} cannot be amended (it must be active)",
                extra={"state": row["state"]},
            )
        changes, reason = parse_amendment(body, document=row["document"])
        document = amended_document(row["document"], changes)
        amendment_id = keyed_id("am_", scope, key)
        now = self._clock()
        stored_changes = {
            name: (
                value.code
                if name == "occupation"
                else (value.isoformat() if isinstance(value, date) else value)
            )
            for name, value in changes.items()
        }
        amendment = {
            "id": amendment_id,
            "contract_id": contract_id,
            "state": "proposed",
            "proposer": side,
            "proposer_id": caller.subject,
            "changes": stored_changes,
            "document": document,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
        }
        other: Party = "employee" if side == "employer" else "employer"
        try:
            async with self.store.writing() as conn:
                current = await self.store.get_in(conn, contract_id)
                if current["state"] not in AMENDABLE or current["document"] != row["document"]:
                    raise InvalidTransition("the contract changed meanwhile; look at it again")
                if await self.store.open_amendment(conn, contract_id) is not None:
                    raise AmendmentOpen(
                        "the contract has an amendment waiting for signatures: sign, reject or "
                        "withdraw it first"
                    )
                payload = {
                    **event_payload(current, now),
                    "amendment_id": amendment_id,
                    "proposed_by": side,
                    "changes": stored_changes,
                }
                await self.store.add_amendment(
                    conn,
                    amendment,
                    idempotency_scope=scope,
                    idempotency_key=key,
                    digest=digest,
                    events=[
                        (
                            f"{contract_id}.{amendment_id}.contract.amendment.proposed",
                            "contract.amendment.proposed",
                            payload,
                        ),
                        notice(
                            current,
                            f"{contract_id}.{amendment_id}.proposed",
                            "contract.amendment.proposed",
                            other,
                            f"The {side} proposes an amendment to contract {contract_id}.",
                            amendment_id=amendment_id,
                        ),
                    ],
                )
        except IdempotencyConflict:
            raced = await self.store.idempotent(scope, key, digest)
            if raced is None:
                raise
            return await self._amendment(contract_id, raced), True
        return await self._amendment(contract_id, amendment_id), False

    async def _amendment(self, contract_id: str, amendment_id: str) -> dict[str, Any]:
        for row in await self.store.amendments_of(contract_id):
            if row["id"] == amendment_id:
                return row
        raise AmendmentNotFound(f"no amendment {amendment_id} on contract {contract_id}")

    async def amendments(self, caller: Caller, contract_id: str) -> list[dict[str, Any]]:
        await self.visible(caller, contract_id)
        return await self.store.amendments_of(contract_id)

    async def amendment(
        self, caller: Caller, contract_id: str, amendment_id: str
    ) -> dict[str, Any]:
        await self.visible(caller, contract_id)
        return await self._amendment(contract_id, amendment_id)

    async def amendment_signatures(self, amendment: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.store.signatures_of(amendment["contract_id"], amendment["id"])

    async def sign_amendment(
        self, caller: Caller, contract_id: str, amendment_id: str, wanted: str | None
    ) -> dict[str, Any]:
        """A side's signature of an amendment; with both, the contract takes its terms."""
        row = await self.visible(caller, contract_id)
        side = self._side(caller, row, wanted)
        amendment = await self._amendment(contract_id, amendment_id)
        if amendment["state"] != "proposed":
            raise InvalidTransition(
                f"an amendment that is {amendment['state']} cannot be signed",
                extra={"state": amendment["state"]},
            )
        if row["state"] not in AMENDABLE:
            raise InvalidTransition(f"a contract that is {row['state']} cannot be amended")
        existing = await self.amendment_signatures(amendment)
        if any(s["party"] == side for s in existing):
            raise AlreadySigned(f"the {side} has already signed this amendment")
        document = amendment["document"]
        digest, signed = await self._signature(caller, row, side, document)
        now = self._clock()
        other: Party = "employee" if side == "employer" else "employer"
        async with self.store.writing() as conn:
            current = await self.store.get_in(conn, contract_id)
            fresh = await self.store.amendment_in(conn, contract_id, amendment_id)
            if fresh is None or fresh["state"] != "proposed" or current["state"] not in AMENDABLE:
                raise InvalidTransition("the amendment changed meanwhile; look at it again")
            parties = {
                s["party"] for s in await self.store.signatures_of(contract_id, amendment_id, conn)
            }
            if side in parties:
                raise AlreadySigned(f"the {side} has already signed this amendment")
            await self.store.add_signature(
                conn,
                {
                    "contract_id": contract_id,
                    "signature_set": amendment_id,
                    "terms_version": document["version"],
                    "party": side,
                    "document_hash": digest,
                    "signer": signed.signer,
                    "signed_at": signed.signed_at,
                    "jws": signed.jws,
                },
                [
                    notice(
                        current,
                        f"{contract_id}.{amendment_id}.sig.{side}",
                        "contract.amendment.signed",
                        other,
                        f"The {side} signed the amendment to contract {contract_id}.",
                        amendment_id=amendment_id,
                    )
                ],
            )
            if frozenset({*parties, side}) >= frozenset(PARTIES):
                check_amendment("proposed", "applied", "system", fresh["proposer"])
                end = document["end_date"]
                after = await self.store.update(
                    conn,
                    contract_id,
                    {
                        "document": document,
                        "terms_version": document["version"],
                        "signature_set": amendment_id,
                        "occupation": document["occupation"]["code"],
                        "salary": document["salary"]["monthly"],
                        "end_date": None if end is None else date.fromisoformat(end),
                    },
                    now,
                )
                payload = {**event_payload(after, now), "amendment_id": amendment_id}
                await self.store.set_amendment(
                    conn,
                    amendment_id=amendment_id,
                    state="applied",
                    now=now,
                    events=[
                        (
                            f"{contract_id}.{amendment_id}.contract.amended",
                            "contract.amended",
                            payload,
                        ),
                        *(
                            notice(
                                after,
                                f"{contract_id}.{amendment_id}.amended",
                                "contract.amended",
                                party,
                                f"Contract {contract_id} is amended (version "
                                f"{document['version']}).",
                                amendment_id=amendment_id,
                            )
                            for party in PARTIES
                        ),
                    ],
                    contract_id=contract_id,
                )
        return await self._amendment(contract_id, amendment_id)

    async def close_amendment(
        self, caller: Caller, contract_id: str, amendment_id: str, target: AmendmentState
    ) -> dict[str, Any]:
        """The counterparty rejects an amendment, or its proposer withdraws it."""
        row = await self.visible(caller, contract_id)
        side = self._side(caller, row)
        amendment = await self._amendment(contract_id, amendment_id)
        check_amendment(amendment["state"], target, side, amendment["proposer"])
        now = self._clock()
        other: Party = "employee" if side == "employer" else "employer"
        async with self.store.writing() as conn:
            fresh = await self.store.amendment_in(conn, contract_id, amendment_id)
            if fresh is None:  # pragma: no cover - rows are never deleted
                raise AmendmentNotFound(f"no amendment {amendment_id}")
            check_amendment(fresh["state"], target, side, fresh["proposer"])
            await self.store.set_amendment(
                conn,
                amendment_id=amendment_id,
                state=target,
                now=now,
                events=[
                    notice(
                        row,
                        f"{contract_id}.{amendment_id}.{target}",
                        f"contract.amendment.{target}",
                        other,
                        f"The amendment to contract {contract_id} was {target} by the {side}.",
                        amendment_id=amendment_id,
                    )
                ],
                contract_id=contract_id,
            )
        return await self._amendment(contract_id, amendment_id)

    # ---- expiry ---------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire active contracts past their end date."""
        now = self._clock()
        moved = 0
        for contract_id in await self.store.due(now.date()):
            try:
                async with self.store.writing() as conn:
                    await self.store.transition(
                        conn,
                        contract_id,
                        "expired",
                        Actor(kind="system", id="sweeper"),
                        now=now,
                        reason="end_date_passed",
                        events=lambda after, number: transition_events(
                            after,
                            previous="active",
                            state="expired",
                            number=number,
                            now=now,
                            reason="end_date_passed",
                        ),
                    )
                    moved += 1
            except (InvalidTransition, ContractNotFound):
                continue
            except Exception as exc:  # one bad row must not stop the sweep
                log.warning("contracts.sweep_failed", contract_id=contract_id, error=repr(exc))
        return moved


def refuse_body(message: str) -> InvalidRequest:
    """A refused request body (for the app's small bodies)."""
    return InvalidRequest(message, extra={"errors": [message]})
