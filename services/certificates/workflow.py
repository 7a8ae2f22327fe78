"""Submit, verify, re-check and share qualification certificates.

Glue between the rules (:mod:`services.certificates.domain`), the tables
(:mod:`services.certificates.store`) and the hub (:mod:`services.certificates.hub_client`).
The registry is asked before anything is written; the certificate's row, its domain event
(``certificate.verified`` or ``certificate.rejected``) and the worker's notification request
are one transaction. When the registry cannot be asked, the certificate is kept ``pending``
and asked again by the re-check loop (or the worker's ``check``): never a guessed verdict.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog

from hub.errors import (
    CertificateAlreadySubmitted,
    CertificateNotFound,
    EstablishmentNotPermitted,
    Forbidden,
    HubUnavailable,
    InvalidRequest,
    InvalidTransition,
)
from hub.servicekit.caller import Caller as ServiceCaller
from services.certificates.domain import BLOCKING_STATES, Claim, Verdict, judge, parse_claim
from services.certificates.hub_client import HubClient, RegistryAnswer
from services.certificates.store import CertificateStore

__all__ = ["READ_SCOPE", "Caller", "CertificateWorkflow", "caller_of", "parse_establishment"]

log = structlog.get_logger(__name__)

#: What an establishment delegates to an HR officer (or a vendor) to read shared certificates.
READ_SCOPE: Final = "certificates.read"
REFERENCE_PREFIX: Final = "certificate:"
_ESTABLISHMENT: Final = re.compile(r"est_[A-Za-z0-9_-]{1,64}")
_REGISTRY_FIELDS: Final = ("degree", "field", "institution", "year", "status")


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller(ServiceCaller):
    """Who called, as the hub's internal token says (the kit's caller), with its one rule here."""

    def may_read_for(self, establishment_id: str) -> bool:
        """Owner, an HR officer delegated certificates.read, or a vendor delegated it."""
        return self.may_act_for(establishment_id, (READ_SCOPE,))


#: The caller from the hub's verified principal and its internal token's claims.
caller_of = Caller.of


def parse_establishment(body: object) -> str:
    """The establishment of a share request ``{"establishment_id": "est_..."}``."""
    if (
        not isinstance(body, dict)
        or set(body) != {"establishment_id"}
        or not isinstance(body["establishment_id"], str)
        or not _ESTABLISHMENT.fullmatch(body["establishment_id"])
    ):
        raise InvalidRequest(
            'the body is {"establishment_id": "est_..."}',
            extra={"errors": ["establishment_id: an establishment id (est_...)"]},
        )
    return str(body["establishment_id"])


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class CertificateWorkflow:
    """The certificates service's operations, each one whole or not at all."""

    def __init__(
        self,
        store: CertificateStore,
        hub: HubClient,
        *,
        retry_after: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.hub = hub
        self._retry_after = retry_after
        self._clock = clock

    # ---- views and access ------------------------------------------------------------------

    def view(self, row: dict[str, Any], *, owner: bool) -> dict[str, Any]:
        """A certificate as its holder (``owner``) or an establishment it was shared with."""
        body: dict[str, Any] = {
            "id": row["id"],
            "number": row["number"],
            "state": row["state"],
            "claimed": {
                "degree": row["degree"],
                "institution": row["institution"],
                "year": row["year"],
            },
            "mismatches": list(row["mismatches"] or []),
            "registry": row["registry"],
            "submitted_at": _iso(row["submitted_at"]),
            "checked_at": _iso(row["checked_at"]),
        }
        if owner:
            body["national_id"] = row["national_id"]
            body["attempts"] = row["attempts"]
            body["next_check_at"] = _iso(row["next_check_at"])
            body["audit_entry"] = row["audit_entry"]
            body["shared_with"] = list(row.get("shared_with", []))
        return body

    def require_person(self, caller: Caller) -> None:
        if caller.kind != "person":
            raise Forbidden("certificates are submitted and managed by the signed-in worker")

    def require_establishment(self, caller: Caller, establishment_id: str) -> None:
        if not caller.may_read_for(establishment_id):
            raise EstablishmentNotPermitted(
                f"the caller may not read for establishment {establishment_id} "
                f"(needs ownership or a delegation of {READ_SCOPE})"
            )

    async def own(self, caller: Caller, certificate_id: str) -> dict[str, Any]:
        """The caller's own certificate; anyone else's does not exist for them."""
        self.require_person(caller)
        row = await self.store.get(certificate_id)
        if row["person_id"] != caller.subject:
            raise CertificateNotFound(f"no certificate {certificate_id}")
        return row

    async def shared(
        self, caller: Caller, establishment_id: str, certificate_id: str
    ) -> dict[str, Any]:
        """A certificate shared with ``establishment_id``, for whoever may read for it."""
        self.require_establishment(caller, establishment_id)
        if not await self.store.is_shared(certificate_id, establishment_id):
            raise CertificateNotFound(f"no certificate {certificate_id}")
        return await self.store.get(certificate_id)

    # ---- submit and check ------------------------------------------------------------------

    async def submit(self, caller: Caller, body: object) -> tuple[dict[str, Any], bool]:
        """A worker's certificate, verified at once if the registry answers; ``True``: a replay."""
        self.require_person(caller)
        now = self._clock()
        claim = parse_claim(body, this_year=now.year)
        if caller.national_id is not None:
            # the registry's holder is compared with who the hub says signed in, not with an
            # ID typed in (someone else's would otherwise verify their certificate)
            claim = replace(claim, national_id=caller.national_id)
        earlier = await self.store.find(caller.subject, claim.number, sorted(BLOCKING_STATES))
        if earlier is not None:
            return await self._replay(earlier, claim), True
        verdict, answer, error = await self._ask(claim)
        certificate_id = "qc_" + secrets.token_hex(12)
        row: dict[str, Any] = {
            "id": certificate_id,
            "person_id": caller.subject,
            **claim.as_dict(),
            "state": "pending",
            "version": 1,
            "mismatches": [],
            "registry": None,
            "audit_entry": None,
            "attempts": 1,
            "last_error": None,
            "next_check_at": None,
            "checked_at": None,
            "submitted_at": now,
            "updated_at": now,
        }
        row.update(self._outcome(claim, verdict, answer, error, now=now))
        async with self.store.writing() as conn:
            await self.store.lock_person(conn, caller.subject)
            raced = await self.store.blocking(
                conn, caller.subject, claim.number, sorted(BLOCKING_STATES)
            )
            if raced is not None:  # a concurrent submission of the same one committed first
                replay = raced
            else:
                replay = None
                await self.store.insert(conn, row, self._events(row))
        if replay is not None:
            return await self._replay(replay, claim), True
        return await self.store.get(certificate_id), False

    async def _replay(self, earlier: dict[str, Any], claim: Claim) -> dict[str, Any]:
        same = all(earlier[name] == value for name, value in claim.as_dict().items())
        if not same:
            raise CertificateAlreadySubmitted(
                f"certificate {claim.number} is already {earlier['state']} for you "
                f"({earlier['id']})",
                extra={"certificate_id": earlier["id"], "state": earlier["state"]},
            )
        return await self.store.get(earlier["id"])

    async def _ask(self, claim: Claim) -> tuple[Verdict | None, RegistryAnswer | None, str | None]:
        try:
            answer = await self.hub.certificate(claim.number)
        except HubUnavailable as exc:
            log.warning("certificates.registry_unavailable", number=claim.number, error=str(exc))
            return None, None, str(exc)[:300]
        try:
            return judge(claim, answer.record), answer, None
        except ValueError as exc:  # a status the rules do not know: ask again later
            return None, answer, str(exc)[:300]

    def _outcome(
        self,
        claim: Claim,
        verdict: Verdict | None,
        answer: RegistryAnswer | None,
        error: str | None,
        *,
        now: datetime,
    ) -> dict[str, Any]:
        if verdict is None:
            return {
                "state": "pending",
                "last_error": error,
                "next_check_at": now + self._retry_after,
                "updated_at": now,
            }
        record = answer.record if answer is not None else None
        # the registry's fields are shown only to the certificate's own holder
        shown = (
            {name: record.get(name) for name in _REGISTRY_FIELDS}
            if record is not None and "holder" not in verdict.mismatches
            else None
        )
        return {
            "state": verdict.state,
            "mismatches": list(verdict.mismatches),
            "registry": shown,
            "audit_entry": answer.audit_entry if answer is not None else None,
            "last_error": None,
            "next_check_at": None,
            "checked_at": now,
            "updated_at": now,
        }

    async def check(self, caller: Caller, certificate_id: str) -> dict[str, Any]:
        """The worker asks for a pending certificate to be checked again now."""
        row = await self.own(caller, certificate_id)
        if row["state"] != "pending":
            raise InvalidTransition(
                f"certificate {certificate_id} is already {row['state']}",
                extra={"state": row["state"]},
            )
        await self._recheck(certificate_id)
        return await self.store.get(certificate_id)

    async def _recheck(self, certificate_id: str) -> bool:
        row = await self.store.get(certificate_id)
        if row["state"] != "pending":
            return False
        claim = Claim(
            number=row["number"],
            national_id=row["national_id"],
            degree=row["degree"],
            institution=row["institution"],
            year=row["year"],
        )
        verdict, answer, error = await self._ask(claim)
        now = self._clock()
        async with self.store.writing() as conn:
            current = await self.store.lock(conn, certificate_id)
            if current is None or current["state"] != "pending":
                return False  # decided meanwhile by another check
            changes = self._outcome(claim, verdict, answer, error, now=now)
            changes["attempts"] = current["attempts"] + 1
            events = self._events({**current, **changes}) if verdict is not None else []
            await self.store.update(conn, current, changes, events)
        return verdict is not None

    async def sweep(self) -> int:
        """Ask the registry again for every pending certificate that is due; how many decided."""
        decided = 0
        for certificate_id in await self.store.due(self._clock()):
            try:
                decided += await self._recheck(certificate_id)
            except Exception as exc:  # one bad row must not stop the loop
                log.warning("certificates.recheck_failed", id=certificate_id, error=repr(exc))
        return decided

    # ---- sharing ---------------------------------------------------------------------------

    async def share(self, caller: Caller, certificate_id: str, body: object) -> dict[str, Any]:
        establishment_id = parse_establishment(body)
        await self.own(caller, certificate_id)
        async with self.store.writing() as conn:
            await self.store.share(conn, certificate_id, establishment_id, self._clock())
        return await self.store.get(certificate_id)

    async def unshare(
        self, caller: Caller, certificate_id: str, establishment_id: str
    ) -> dict[str, Any]:
        await self.own(caller, certificate_id)
        async with self.store.writing() as conn:
            await self.store.unshare(conn, certificate_id, establishment_id)
        return await self.store.get(certificate_id)

    # ---- events ----------------------------------------------------------------------------

    def _events(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The domain event of a certificate's state and the worker's notification request."""
        state = row["state"]
        at = self._clock().isoformat()
        events: list[tuple[str, dict[str, Any]]] = []
        if state != "pending":
            registry = row["registry"] or {}
            events.append(
                (
                    "certificate.verified" if state == "verified" else "certificate.rejected",
                    {
                        "certificate_id": row["id"],
                        "person_id": row["person_id"],
                        "national_id": row["national_id"],
                        "number": row["number"],
                        "degree": row["degree"],
                        "institution": row["institution"],
                        "year": row["year"],
                        "field": registry.get("field"),
                        "outcome": state,
                        "mismatches": list(row["mismatches"] or []),
                        "at": at,
                    },
                )
            )
        template = {
            "pending": "certificate.pending",
            "verified": "certificate.verified",
        }.get(state, "certificate.rejected")
        events.append(
            (
                "notification.requested",
                {
                    "notification_id": f"{row['id']}.{state}",
                    "recipient": {"kind": "person", "id": row["person_id"]},
                    "template": template,
                    "subject": f"Certificate {row['number']}: {state.replace('_', ' ')}",
                    "body": _message(row),
                    "data": {
                        "certificate_id": row["id"],
                        "number": row["number"],
                        "state": state,
                        "mismatches": list(row["mismatches"] or []),
                    },
                    "reference": REFERENCE_PREFIX + row["id"],
                },
            )
        )
        return events


def _message(row: dict[str, Any]) -> str:
    number = row["number"]
    texts = {
        "pending": f"The education registry could not be asked about {number} yet; "
        "it will be asked again shortly.",
        "verified": f"Certificate {number} was verified with the education registry.",
        "mismatch": f"Certificate {number} does not match the registry's record: "
        + ", ".join(row["mismatches"] or [])
        + ".",
        "not_found": f"The education registry has no certificate {number}.",
        "revoked": f"The education registry records certificate {number} as revoked.",
    }
    return texts[row["state"]]
