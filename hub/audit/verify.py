"""``hub audit verify``: walk the chain and say where it was altered, cut or reordered.

Each entry must carry the next ``seq`` (1, 2, 3... : a gap is a removal), link to the previous
entry's hash, and hash to its own ``hash``; the last one must be what the head row records.
A finding names the entry (``seq``) where the chain stops holding.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.audit.chain import GENESIS, entry_hash
from hub.db.audit_store import AuditStore

__all__ = ["Finding", "Report", "verify_chain"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One place where the chain does not hold."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What a walk found: how many entries, the head, and every finding."""

    entries: int
    last_seq: int
    head_seq: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


async def verify_chain(store: AuditStore, *, max_findings: int = 100) -> Report:
    """Walk every entry in order; stop collecting after ``max_findings``."""
    findings: list[Finding] = []
    expected_seq = 1
    previous = GENESIS
    count = 0
    last = 0
    async for entry in store.walk():
        count += 1
        if entry.seq != expected_seq:
            gap = (
                f"entries {expected_seq}..{entry.seq - 1} are missing (removed)"
                if entry.seq > expected_seq
                else f"found where entry {expected_seq} should be (out of order)"
            )
            findings.append(Finding(seq=entry.seq, problem=gap))
        if entry.prev_hash != previous:
            findings.append(
                Finding(
                    seq=entry.seq,
                    problem="its link to the previous entry is broken"
                    " (an entry before it was altered, removed or moved)",
                )
            )
        if entry_hash(entry.values()) != entry.hash:
            findings.append(
                Finding(seq=entry.seq, problem="its content does not match its hash (altered)")
            )
        previous = entry.hash
        expected_seq = entry.seq + 1
        last = entry.seq
        if len(findings) >= max_findings:
            break
    head = await store.head()
    if len(findings) < max_findings:
        if head.seq > last:
            findings.append(
                Finding(
                    seq=last + 1,
                    problem=f"the head records entry {head.seq}, but the chain ends at {last}"
                    f" (entries {last + 1}..{head.seq} removed)",
                )
            )
        elif head.seq < last or head.hash != previous:
            findings.append(
                Finding(
                    seq=last,
                    problem=f"the head records entry {head.seq} with another hash"
                    " (the head or the last entry was altered)",
                )
            )
    return Report(entries=count, last_seq=last, head_seq=head.seq, findings=tuple(findings))
