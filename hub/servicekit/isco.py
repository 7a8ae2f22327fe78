"""The occupation catalogue: the ISCO-08 subset shipped as data (``contracts/data/isco08.json``).

The one data file the visa, occupations and contracts services all read, each through this
module (no service imports another). ISCO-08's skill levels go with its major groups: 1-2
(managers, professionals) are skill level 4, 3 (technicians) level 3, 4-8 level 2, 9
(elementary occupations) level 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

__all__ = ["Occupation", "catalogue", "occupation", "search"]

_DATA: Final = Path(__file__).resolve().parents[2] / "contracts" / "data" / "isco08.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Occupation:
    """One ISCO-08 unit group, with the platform's salary floor and localisation flag."""

    code: str
    title: str
    major_group: str
    major_group_title: str
    skill_level: int
    minimum_monthly_salary: int
    reserved_for_citizens: bool

    @property
    def professional(self) -> bool:
        """Managers and professionals (major groups 1-2, skill level 4)."""
        return self.skill_level >= 4 or self.major_group in {"1", "2"}

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "title": self.title,
            "major_group": self.major_group,
            "major_group_title": self.major_group_title,
            "skill_level": self.skill_level,
            "minimum_monthly_salary": self.minimum_monthly_salary,
            "reserved_for_citizens": self.reserved_for_citizens,
        }


@cache
def catalogue() -> dict[str, Occupation]:
    """Every occupation by its four-digit ISCO-08 code, read once."""
    document = json.loads(_DATA.read_text(encoding="utf-8"))
    return {row["code"]: Occupation(**row) for row in document["occupations"]}


def occupation(code: str) -> Occupation | None:
    """The occupation with ISCO-08 code ``code``, if the catalogue has it."""
    return catalogue().get(code)


def search(
    *, words: str | None = None, skill_level: int | None = None, major_group: str | None = None
) -> list[Occupation]:
    """Occupations whose code or title holds every word, of that skill level and major group."""
    terms = (words or "").casefold().split()
    return [
        item
        for item in catalogue().values()
        if all(term in f"{item.code} {item.title}".casefold() for term in terms)
        and (skill_level is None or item.skill_level == skill_level)
        and (major_group is None or item.major_group == major_group)
    ]
