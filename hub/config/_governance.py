"""Checks of the ``governance`` section that its schema cannot say.

Approval rules must have unique ids, and a rule that selects by tag must be able to protect
something: its sections must be ones a tag reaches (routes, products, permissions, upstreams),
and some route or product must carry the tag. A misspelt tag would otherwise protect nothing,
silently, which is the one way a four-eyes rule must never fail.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hub.config._issues import Issue, section_items
from hub.config.governance import GOVERNANCE, TAGGABLE_SECTIONS

__all__ = ["governance_issues"]


def _tags_in_use(raw: Mapping[str, Any]) -> set[str]:
    tags: set[str] = set()
    for section in ("routes", "products"):
        for _, item in section_items(raw, section):
            values = item.get("tags")
            if isinstance(values, list):
                tags.update(v for v in values if isinstance(v, str))
    return tags


def governance_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Duplicate rule ids, and tag rules that can never protect anything."""
    section = raw.get(GOVERNANCE)
    if not isinstance(section, dict):
        return []
    return list(_rule_issues(raw, section))


def _rule_issues(raw: Mapping[str, Any], section: Mapping[str, Any]) -> Iterator[Issue]:
    in_use = _tags_in_use(raw)
    first: dict[str, int] = {}
    for index, rule in section_items(section, "approvals"):
        at = (GOVERNANCE, "approvals", index)
        ident = rule.get("id")
        if isinstance(ident, str):
            if ident in first:
                yield Issue(
                    path=(*at, "id"),
                    reason=f"duplicate approval rule id {ident!r}"
                    f" (first defined at $.governance.approvals[{first[ident]}])",
                )
            else:
                first[ident] = index
        tag = rule.get("tagged")
        if not isinstance(tag, str):
            continue
        sections = rule.get("sections")
        for position, name in enumerate(sections if isinstance(sections, list) else []):
            if isinstance(name, str) and name not in TAGGABLE_SECTIONS and name != GOVERNANCE:
                yield Issue(
                    path=(*at, "sections", position),
                    reason=f"{name} carry no tags, so a rule with tagged: {tag} can never"
                    " protect them; put them in a rule without tagged (a tag reaches routes,"
                    " products, permissions and upstreams)",
                )
        if tag not in in_use:
            yield Issue(
                path=(*at, "tagged"),
                reason=f"no route or product is tagged {tag!r}, so this rule protects nothing"
                " (a misspelt tag?)",
            )
