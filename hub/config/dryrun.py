"""Dry-run: replay the request sample through the active configuration and a draft, and count.

Both sides are decided by :func:`hub.config.replay.decide` on the same pseudonymised request,
with the literals of both documents restored (:meth:`Pseudonymiser.vocabulary`), so a
difference is the draft's doing and not an artefact of the pseudonyms. Records pseudonymised
under another key (another replica's random key: set ``HUB_SAMPLE_KEY`` on every replica)
cannot be restored and are skipped, and the report says how many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.config.replay import CHANGE_KINDS, DecisionSnapshot, Outcome, changes, decide, flip
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import SampledRequest

__all__ = ["DryRunReport", "dry_run"]

EXAMPLES = 20
_NO_ROUTE = "(no route)"


def _route_counts() -> dict[str, int]:
    return {"replayed": 0, "unchanged": 0, **dict.fromkeys(CHANGE_KINDS, 0)}


@dataclass(slots=True, kw_only=True)
class DryRunReport:
    """Counts of what would change, per kind, flip, permission and route, with examples."""

    active: str
    draft: str
    replayed: int = 0
    unchanged: int = 0
    skipped: int = 0
    changed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    flips: dict[str, int] = field(default_factory=lambda: {"allow_to_deny": 0, "deny_to_allow": 0})
    by_permission: dict[str, dict[str, int]] = field(default_factory=dict)
    routes: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    oldest: float | None = None
    newest: float | None = None
    versions: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, record: SampledRequest, active: Outcome, draft: Outcome) -> None:
        self.replayed += 1
        found = changes(active, draft)
        route = self.routes.setdefault(record.route or _NO_ROUTE, _route_counts())
        route["replayed"] += 1
        if not found:
            self.unchanged += 1
            route["unchanged"] += 1
            return
        for kind in found:
            self.changed[kind] += 1
            route[kind] += 1
        turned = flip(active, draft)
        if turned is not None:
            self.flips[turned] += 1
            # The permission that now refuses, or that refused before.
            side = draft if turned == "allow_to_deny" else active
            if side.decision == "deny" and side.permission is not None:
                counts = self.by_permission.setdefault(
                    side.permission, {"allow_to_deny": 0, "deny_to_allow": 0}
                )
                counts[turned] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(
                {
                    "request_id": record.request_id,
                    "at": record.at,
                    "method": record.method,
                    "host": record.host,
                    "path": record.path,
                    "principal": {
                        "kind": record.kind,
                        "client_id": record.client_id,
                        "subject": record.subject,
                        "scopes": record.scopes,
                    },
                    "changes": list(found),
                    "flip": turned,
                    "active": active.as_dict(),
                    "draft": draft.as_dict(),
                }
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "draft": self.draft,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "changed": self.changed,
            "decisions": {**self.flips, "by_permission": self.by_permission},
            "routes": self.routes,
            "examples": self.examples,
            "sample": {"oldest": self.oldest, "newest": self.newest, "versions": self.versions},
            "notes": self.notes,
        }


def dry_run(
    records: Sequence[SampledRequest],
    active: DecisionSnapshot,
    draft: DecisionSnapshot,
    pseudonymiser: Pseudonymiser,
) -> DryRunReport:
    """Replay ``records`` through both configurations and count the differences."""
    report = DryRunReport(active=active.label, draft=draft.label)
    vocabulary = pseudonymiser.vocabulary(active.raw, draft.raw)
    versions: Counter[int] = Counter()
    for record in records:
        if record.kid != pseudonymiser.key_id:
            report.skipped += 1
            continue
        request = record.replayable(vocabulary)
        report.add(record, decide(active, request), decide(draft, request))
        versions[record.config_version] += 1
        report.oldest = record.at if report.oldest is None else min(report.oldest, record.at)
        report.newest = record.at if report.newest is None else max(report.newest, record.at)
    report.versions = sorted(versions)
    if not records:
        report.notes.append(
            "the sample is empty: no request was sampled yet (HUB_SAMPLE_RATE, HUB_SAMPLE_SIZE)"
        )
    if report.skipped:
        report.notes.append(
            f"{report.skipped} sampled request(s) were pseudonymised with another replica's key"
            " and could not be replayed: give every replica the same HUB_SAMPLE_KEY"
        )
    return report
