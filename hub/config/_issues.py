"""One finding in a configuration document: a JSON path and a reason, and how paths are shown."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["IDENTIFIER", "Issue", "JsonPath", "format_path", "section_items"]

JsonPath = tuple[str | int, ...]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One finding: where in the document, and what is wrong there."""

    path: JsonPath
    reason: str

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.reason}"

    def position(self) -> tuple[tuple[int, int, str], ...]:
        """Document order: indexes compare as numbers, so [2] sorts before [10]."""
        return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.path)

    def sort_key(self) -> tuple[tuple[tuple[int, int, str], ...], str]:
        return self.position(), self.reason


def format_path(path: JsonPath) -> str:
    """``("routes", 3, "timeouts")`` -> ``$.routes[3].timeouts``; odd keys in brackets."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif IDENTIFIER.fullmatch(part):
            parts.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


def section_items(raw: Mapping[str, Any], section: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The mappings in the list ``raw[section]`` with their indexes; anything else is skipped."""
    items = raw.get(section)
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield index, item
