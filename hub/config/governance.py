"""Four-eyes rules: which changes of the configuration need a second admin's approval.

The ``governance`` section of a document holds approval rules. Each names the sections it
protects and, optionally, a tag: with ``tagged: personal_data`` only items that carry the tag,
or are tied to an item that does, are protected::

    governance:
      approvals:
        - id: personal-data
          sections: [routes, permissions, upstreams, products]
          tagged: personal_data        # routes and products say `tags: [personal_data]`
        - id: trust
          sections: [issuers, plans]   # every item of these sections

What a tag reaches, per section:

- **routes**: a route tagged so, or belonging to a product version tagged so;
- **products**: a product version tagged so;
- **permissions**: a permission covering such a route, or naming such a product;
- **upstreams**: an upstream serving such a route.

:func:`protected_changes` compares two documents (the active version and a draft) with
:func:`hub.config.diff.diff_documents` and returns each protected item that is added, removed,
changed or (for a rule without a tag) reordered. Both sides count, so nobody escapes a rule by
removing it, or a tag, in the same change: the rules and tags of the active version and those of
the draft all apply. The ``governance`` section itself is always protected once either side has
one, or changing the rules would be a way around them. The first version (nothing active yet)
is the bootstrap and needs no approval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.config._issues import section_items
from hub.config.diff import diff_documents
from hub.errors import ApprovalRequired

__all__ = [
    "GOVERNANCE",
    "TAGGABLE_SECTIONS",
    "ApprovalRule",
    "GovernanceSpec",
    "ProtectedChange",
    "approval_required",
    "check_approval",
    "governance_from_raw",
    "protected_changes",
]

GOVERNANCE = "governance"
#: Sections whose items a rule's ``tagged`` can select (directly or through a tagged route).
TAGGABLE_SECTIONS = frozenset({"routes", "products", "permissions", "upstreams"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRule:
    """Changes of ``sections`` (only items reached by ``tagged``, when set) need an approval."""

    id: str
    sections: tuple[str, ...]
    tagged: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernanceSpec:
    """The ``governance`` section: the four-eyes rules of this configuration."""

    approvals: tuple[ApprovalRule, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectedChange:
    """One protected item a change touches, and the rules that protect it."""

    section: str
    id: str = field(metadata={"description": "the item's id; * for a whole section"})
    change: str = field(metadata={"description": "added, removed, changed or reordered"})
    rules: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.section}/{self.id} ({self.change})"

    def as_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "id": self.id,
            "change": self.change,
            "rules": list(self.rules),
        }


def governance_from_raw(raw: Mapping[str, Any] | None) -> GovernanceSpec:
    """The rules of a document, skipping anything malformed (validation reports that)."""
    section = raw.get(GOVERNANCE) if raw is not None else None
    if not isinstance(section, dict):
        return GovernanceSpec()
    rules: list[ApprovalRule] = []
    for _, item in section_items(section, "approvals"):
        ident, sections = item.get("id"), item.get("sections")
        if not isinstance(ident, str) or not isinstance(sections, list):
            continue
        tagged = item.get("tagged")
        description = item.get("description")
        rules.append(
            ApprovalRule(
                id=ident,
                sections=tuple(s for s in sections if isinstance(s, str)),
                tagged=tagged if isinstance(tagged, str) else None,
                description=description if isinstance(description, str) else "",
            )
        )
    return GovernanceSpec(approvals=tuple(rules))


def _tags(item: Mapping[str, Any]) -> frozenset[str]:
    tags = item.get("tags")
    if not isinstance(tags, list):
        return frozenset()
    return frozenset(t for t in tags if isinstance(t, str))


def _ids(values: Any) -> set[str]:
    return {v for v in values if isinstance(v, str)} if isinstance(values, list) else set()


def _reached(raw: Mapping[str, Any], tag: str) -> dict[str, set[str]]:
    """The item keys (as the diff names them) of each section that ``tag`` reaches in ``raw``."""
    products: set[str] = set()
    product_ids: set[str] = set()
    product_versions: set[tuple[str, Any]] = set()
    for _, item in section_items(raw, "products"):
        if tag in _tags(item) and isinstance(item.get("id"), str):
            products.add(f"{item['id']}@v{item.get('version')}")
            product_ids.add(item["id"])
            product_versions.add((item["id"], item.get("version")))
    routes: set[str] = set()
    upstreams: set[str] = set()
    for _, item in section_items(raw, "routes"):
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if tag in _tags(item) or (item.get("product"), item.get("version")) in product_versions:
            routes.add(ident)
            if isinstance(item.get("upstream"), str):
                upstreams.add(item["upstream"])
    permissions = {
        item["id"]
        for _, item in section_items(raw, "permissions")
        if isinstance(item.get("id"), str)
        and (
            tag in _tags(item)
            or _ids(item.get("routes")) & routes
            or _ids(item.get("products")) & product_ids
        )
    }
    return {
        "routes": routes,
        "products": products,
        "permissions": permissions,
        "upstreams": upstreams,
    }


def _tagged_items(raw: Mapping[str, Any], section: str, tag: str) -> set[str]:
    """Items of a section without tag semantics of its own: those listing the tag themselves."""
    return {
        str(item["id"])
        for _, item in section_items(raw, section)
        if "id" in item and tag in _tags(item)
    }


def _rules(*docs: Mapping[str, Any] | None) -> list[ApprovalRule]:
    seen: list[ApprovalRule] = []
    for doc in docs:
        for rule in governance_from_raw(doc).approvals:
            if rule not in seen:
                seen.append(rule)
    return seen


def protected_changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> tuple[ProtectedChange, ...]:
    """Every protected item that changes from ``before`` (the active version) to ``after``.

    With nothing active (``before`` is ``None``) nothing is protected yet: the first version is
    the bootstrap, as the seed from the policies folder is.
    """
    if before is None:
        return ()
    rules = _rules(before, after)
    found: dict[tuple[str, str], tuple[str, list[str]]] = {}

    def add(section: str, ident: str, change: str, rule: str) -> None:
        _, names = found.setdefault((section, ident), (change, []))
        if rule not in names:
            names.append(rule)

    old_gov = before.get(GOVERNANCE) if before is not None else None
    new_gov = after.get(GOVERNANCE)
    if old_gov != new_gov:
        change = "added" if old_gov is None else "removed" if new_gov is None else "changed"
        add(GOVERNANCE, "*", change, GOVERNANCE)
    if not rules:
        return _ordered(found)

    reach: dict[str, dict[str, set[str]]] = {}

    def reached(section: str, tag: str) -> set[str]:
        if tag not in reach:
            sides = [_reached(doc, tag) for doc in (before, after) if doc is not None]
            reach[tag] = {s: set().union(*(side[s] for side in sides)) for s in TAGGABLE_SECTIONS}
        if section in TAGGABLE_SECTIONS:
            return reach[tag][section]
        return set().union(
            *(_tagged_items(doc, section, tag) for doc in (before, after) if doc is not None)
        )

    for diff in diff_documents(before, after).sections:
        if diff.section == GOVERNANCE:
            continue
        changes: list[tuple[str, str]] = [
            *((ident, "added") for ident in diff.added),
            *((ident, "removed") for ident in diff.removed),
            *((item.id, "changed") for item in diff.changed),
        ]
        for rule in rules:
            if diff.section not in rule.sections:
                continue
            if rule.tagged is None:
                for ident, change in changes:
                    add(diff.section, ident, change, rule.id)
                if diff.reordered:
                    add(diff.section, "*", "reordered", rule.id)
                continue
            selected = reached(diff.section, rule.tagged)
            for ident, change in changes:
                # "*": a section that is not a list of items with ids; it may hold anything.
                if ident in selected or ident == "*":
                    add(diff.section, ident, change, rule.id)
    return _ordered(found)


def _ordered(
    found: Mapping[tuple[str, str], tuple[str, Iterable[str]]],
) -> tuple[ProtectedChange, ...]:
    return tuple(
        ProtectedChange(section=section, id=ident, change=change, rules=tuple(rules))
        for (section, ident), (change, rules) in sorted(found.items())
    )


def approval_required(items: Iterable[ProtectedChange], advice: str) -> ApprovalRequired:
    """403 ``approval_required`` naming the protected items, and what to do instead."""
    changes = list(items)
    shown = ", ".join(item.describe() for item in changes)
    return ApprovalRequired(
        f"this change touches protected configuration ({shown}) and needs a second admin's"
        f" approval: {advice}",
        extra={"items": [item.as_json() for item in changes]},
    )


def check_approval(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    *,
    approved_by: str | None,
    advice: str,
) -> list[dict[str, Any]] | None:
    """The protected items of the change, to audit; 403 when there are some and no approver."""
    items = protected_changes(before, after)
    if items and approved_by is None:
        raise approval_required(items, advice)
    return [item.as_json() for item in items] or None
