"""Who read a person's data, when and why; and the restrictions that hide entries for a while.

A restriction (say, an ongoing investigation) is itself an entry of the chain (``restrict``,
naming the read and an embargo date), so it cannot be added or removed quietly. While it is in
force the read is hidden from the person. It ends when an admin releases it early (a
``release`` entry, with the admin and the reason) or when the embargo passes: the first look at
an expired restriction, by the person's view or an admin's list, appends its ``release`` entry
(``system:embargo``), so the release is logged in both cases, exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.audit.chain import AuditDraft
from hub.audit.log import AuditLog
from hub.db.audit_store import AuditEntry
from hub.errors import Conflict, InvalidRequest, NotFound

__all__ = ["EMBARGO_ACTOR", "MAX_EMBARGO", "DataAccess", "Restriction"]

#: Who releases a restriction whose embargo has passed.
EMBARGO_ACTOR = "system:embargo"
#: The longest embargo an admin may set.
MAX_EMBARGO = timedelta(days=5 * 365)


@dataclass(frozen=True, slots=True, kw_only=True)
class Restriction:
    """A restriction entry and what became of it."""

    entry: AuditEntry
    release: AuditEntry | None

    @property
    def seq(self) -> int:
        return self.entry.seq

    def active(self, now: datetime) -> bool:
        until = self.entry.embargo_until
        return self.release is None and until is not None and now < until


class DataAccess:
    """Reads of the audit log for people and admins, and restrictions on its entries."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self.store = log.store

    async def restrictions(self, targets: Sequence[int], now: datetime) -> list[Restriction]:
        """Restrictions of these reads; expired ones are released (and logged) on the way."""
        entries = await self.store.targeting("restrict", targets)
        releases = {
            e.target_seq: e for e in await self.store.targeting("release", [e.seq for e in entries])
        }
        found: list[Restriction] = []
        for entry in entries:
            release = releases.get(entry.seq)
            until = entry.embargo_until
            if release is None and until is not None and now >= until:
                release = await self._log.release(
                    AuditDraft(
                        kind="release",
                        at=now,
                        actor=EMBARGO_ACTOR,
                        actor_kind="system",
                        target_seq=entry.seq,
                        person_ref=entry.person_ref,
                        reason="the embargo ended",
                    )
                )
            found.append(Restriction(entry=entry, release=release))
        return found

    async def for_person(
        self, person_ref: str, *, limit: int, before: int | None, now: datetime
    ) -> tuple[list[tuple[AuditEntry, Restriction | None]], int | None]:
        """A page of reads of the person's data, restricted ones left out; the next cursor."""
        reads = await self.store.for_person(person_ref, limit=limit, before=before)
        restrictions = await self.restrictions([e.seq for e in reads], now)
        by_target: dict[int, list[Restriction]] = {}
        for restriction in restrictions:
            by_target.setdefault(restriction.entry.target_seq or 0, []).append(restriction)
        shown: list[tuple[AuditEntry, Restriction | None]] = []
        for read in reads:
            held = by_target.get(read.seq, [])
            if any(r.active(now) for r in held):
                continue
            shown.append((read, held[-1] if held else None))
        cursor = reads[-1].seq if len(reads) == limit else None
        return shown, cursor

    async def restrict(
        self, seq: int, *, actor: str, reason: str, embargo_until: datetime, now: datetime
    ) -> AuditEntry:
        """Hide read ``seq`` from its person until ``embargo_until``; logged in the chain."""
        if embargo_until.tzinfo is None:
            raise InvalidRequest("embargo_until needs a time zone (e.g. 2027-01-31T00:00:00Z)")
        if embargo_until <= now:
            raise InvalidRequest("embargo_until must be in the future")
        if embargo_until - now > MAX_EMBARGO:
            raise InvalidRequest("an embargo may last at most five years")
        if not reason.strip():
            raise InvalidRequest("a restriction needs a reason")
        target = await self.store.get(seq)
        if target is None:
            raise NotFound(f"audit entry {seq} does not exist")
        if target.kind != "read":
            raise Conflict(f"audit entry {seq} is a {target.kind}, not a read")
        if any(r.active(now) for r in await self.restrictions([seq], now)):
            raise Conflict(f"audit entry {seq} is already restricted")
        return await self._log.append(
            AuditDraft(
                kind="restrict",
                at=now,
                actor=actor,
                actor_kind="admin",
                target_seq=seq,
                person_ref=target.person_ref,
                embargo_until=embargo_until.astimezone(UTC),
                reason=reason.strip()[:2000],
            )
        )

    async def release(self, seq: int, *, actor: str, reason: str, now: datetime) -> AuditEntry:
        """End restriction ``seq`` before its embargo; logged in the chain."""
        if not reason.strip():
            raise InvalidRequest("a release needs a reason")
        entry = await self.store.get(seq)
        if entry is None or entry.kind != "restrict":
            raise NotFound(f"restriction {seq} does not exist")
        current = next(
            (r for r in await self.restrictions([entry.target_seq or 0], now) if r.seq == seq),
            None,
        )
        if current is not None and current.release is not None:
            raise Conflict(f"restriction {seq} was already released")
        return await self._log.release(
            AuditDraft(
                kind="release",
                at=now,
                actor=actor,
                actor_kind="admin",
                target_seq=seq,
                person_ref=entry.person_ref,
                reason=reason.strip()[:2000],
            )
        )
