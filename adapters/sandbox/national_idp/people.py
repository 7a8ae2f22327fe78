"""The demo people of the sandbox national identity provider, read from a JSON file.

The default file is ``adapters/sandbox/data/national_idp_people.json``. Every person signs in
with :data:`SANDBOX_PASSWORD`; the sandbox holds no real credentials.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["DEFAULT_PEOPLE_FILE", "SANDBOX_PASSWORD", "Person", "load_people"]

#: The one password of every demo person. A sandbox constant, printed on the sign-in page.
SANDBOX_PASSWORD: Final = "sandbox-pass"  # noqa: S105 - published on purpose
DEFAULT_PEOPLE_FILE: Final = (
    Path(__file__).resolve().parents[1] / "data" / "national_idp_people.json"
)

_NATIONAL_ID: Final = re.compile(r"[0-9]{10}")
_KINDS: Final = ("citizen", "resident")


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """Someone the national identity provider can authenticate."""

    national_id: str
    given_name: str
    family_name: str
    birthdate: str  # ISO 8601 date, as the OpenID Connect ``birthdate`` claim
    kind: Literal["citizen", "resident"]

    @property
    def name(self) -> str:
        """Given and family name, for the sign-in page."""
        return f"{self.given_name} {self.family_name}"

    def claims(self) -> dict[str, str]:
        """The identity claims released to the relying party (without ``sub``)."""
        return {
            "national_id": self.national_id,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birthdate": self.birthdate,
        }


def _person(entry: Any) -> Person:
    if not isinstance(entry, dict):
        raise ValueError("each person must be a JSON object")
    fields = {"national_id", "given_name", "family_name", "birthdate", "kind"}
    if set(entry) != fields or not all(isinstance(entry[name], str) for name in fields):
        raise ValueError(f"a person has exactly the string fields {sorted(fields)}")
    if not _NATIONAL_ID.fullmatch(entry["national_id"]):
        raise ValueError(f"national_id {entry['national_id']!r} is not 10 digits")
    if entry["kind"] not in _KINDS:
        raise ValueError(f"kind {entry['kind']!r} is not one of {_KINDS}")
    datetime.date.fromisoformat(entry["birthdate"])  # ValueError when it is not a date
    return Person(
        national_id=entry["national_id"],
        given_name=entry["given_name"],
        family_name=entry["family_name"],
        birthdate=entry["birthdate"],
        kind=entry["kind"],
    )


def load_people(path: Path = DEFAULT_PEOPLE_FILE) -> tuple[Person, ...]:
    """The people listed in ``path`` (``{"people": [...]}``); ValueError if malformed."""
    document = json.loads(path.read_text(encoding="utf-8"))
    entries = document.get("people") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected an object with a 'people' list")
    people = tuple(_person(entry) for entry in entries)
    ids = [person.national_id for person in people]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: a national_id is listed twice")
    return people
