"""What changes between two configuration documents, for people: per section, per item id.

A section whose items carry ids (routes, upstreams, permissions, issuers, products, ...) is
compared by id, not by position, so moving a route reports nothing but the order; each changed
item lists its changed fields as JSON paths inside the item, with the old and the new value.
Any other section is compared whole. The unified text diff of the two documents rendered as
YAML (sorted keys) is there for eyes that prefer lines.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hub.config._issues import JsonPath, format_path

__all__ = [
    "ConfigDiff",
    "FieldChange",
    "ItemChange",
    "SectionDiff",
    "diff_documents",
    "render_text",
]

_ABSENT: Any = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One changed field of an item: its path inside the item, and the values either side."""

    path: str
    change: str  # added, removed or changed
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemChange:
    """An item present on both sides whose content differs."""

    id: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionDiff:
    """The changes in one top-level section."""

    section: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[ItemChange, ...] = ()
    reordered: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.reordered)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigDiff:
    """Every section that differs, in a stable order."""

    sections: tuple[SectionDiff, ...]

    @property
    def empty(self) -> bool:
        return not self.sections

    def summary(self) -> dict[str, dict[str, Any]]:
        """Counts and ids per section: what the audit record keeps."""
        return {
            s.section: {
                "added": list(s.added),
                "removed": list(s.removed),
                "changed": [item.id for item in s.changed],
                **({"reordered": True} if s.reordered else {}),
            }
            for s in self.sections
        }

    def lines(self) -> list[str]:
        """The diff as short lines for a terminal: ``routes: + visa (added)`` and so on."""
        out: list[str] = []
        for s in self.sections:
            out += [f"{s.section}: + {ident} (added)" for ident in s.added]
            out += [f"{s.section}: - {ident} (removed)" for ident in s.removed]
            for item in s.changed:
                out.append(f"{s.section}: ~ {item.id} (changed)")
                for f in item.fields:
                    old = "(absent)" if f.change == "added" else _short(f.old)
                    new = "(absent)" if f.change == "removed" else _short(f.new)
                    out.append(f"    {f.path}: {old} -> {new}")
            if s.reordered:
                out.append(f"{s.section}: order changed")
        return out


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _key(section: str, item: Mapping[str, Any]) -> str | None:
    ident = item.get("id")
    if not isinstance(ident, str):
        return None
    # Products are versioned: the same id at two versions is two items.
    version = item.get("version")
    if section == "products" and isinstance(version, int) and not isinstance(version, bool):
        return f"{ident}@v{version}"
    return ident


def _keyed(section: str, value: Any) -> dict[str, Any] | None:
    """The items of a list section by id, or ``None`` when it is not such a list."""
    if not isinstance(value, list):
        return None
    items: dict[str, Any] = {}
    for item in value:
        key = _key(section, item) if isinstance(item, dict) else None
        if key is None or key in items:
            return None
        items[key] = item
    return items


def _field_changes(old: Any, new: Any, at: JsonPath) -> Iterator[FieldChange]:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(old.keys() | new.keys()):
            yield from _field_changes(old.get(name, _ABSENT), new.get(name, _ABSENT), (*at, name))
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _field_changes(a, b, (*at, index))
        return
    path = format_path(at)
    if old is _ABSENT:
        yield FieldChange(path=path, change="added", new=new)
    elif new is _ABSENT:
        yield FieldChange(path=path, change="removed", old=old)
    else:
        yield FieldChange(path=path, change="changed", old=old, new=new)


def _section(name: str, old: Any, new: Any) -> SectionDiff:
    before, after = _keyed(name, old), _keyed(name, new)
    if before is None or after is None:
        # Not a list of items with unique ids: the section as a whole.
        fields = tuple(_field_changes(old, new, ()))
        return SectionDiff(section=name, changed=(ItemChange(id="*", fields=fields),))
    changed = tuple(
        ItemChange(id=key, fields=tuple(_field_changes(before[key], after[key], ())))
        for key in after
        if key in before and before[key] != after[key]
    )
    common = [k for k in before if k in after]
    return SectionDiff(
        section=name,
        added=tuple(k for k in after if k not in before),
        removed=tuple(k for k in before if k not in after),
        changed=changed,
        reordered=common != [k for k in after if k in before],
    )


def diff_documents(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> ConfigDiff:
    """The changes from ``old`` (``None``: nothing yet) to ``new``, section by section."""
    old = old or {}
    sections: list[SectionDiff] = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name, []), new.get(name, [])
        if a == b:
            continue
        section = _section(name, a, b)
        if not section.empty:
            sections.append(section)
    return ConfigDiff(sections=tuple(sections))


def render_text(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    old_label: str = "active",
    new_label: str = "draft",
) -> str:
    """A unified diff of the two documents as YAML with sorted keys."""

    def lines(doc: Mapping[str, Any] | None) -> list[str]:
        if not doc:
            return []
        text = yaml.safe_dump(dict(doc), sort_keys=True, allow_unicode=True, width=100)
        return text.splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(old), lines(new), old_label, new_label))
