"""The civil registry adapter: persons by national ID (citizens) or resident ID (residents).

Plugin ``civil_registry``; contract ``contracts/adapters/civil-registry``. One operation:

- ``get_person`` (``GET /v1/persons/{id}``): a :class:`Person` or ``None``. A registrar read
  of a person record: every call states a purpose and is audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from adapters._plugin import matched, only
from adapters.base import CallContext, Operation
from adapters.registrars._http import RegistrarAdapter, fetch_record

__all__ = ["Address", "CivilRegistry", "Person", "PersonQuery"]

_ID: Final = re.compile(r"[12][0-9]{9}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonQuery:
    """A national ID (10 digits from 1) or resident ID (10 digits from 2)."""

    national_id: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PersonQuery:
        only(params, "id")
        return cls(national_id=matched(params.get("id"), _ID, "the national or resident ID"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A person's registered address."""

    city: str
    district: str
    street: str
    postal_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """A person as the civil registry records them."""

    national_id: str
    id_kind: str
    given_name: str
    family_name: str
    birth_date: str
    sex: str
    nationality: str
    marital_status: str
    alive: bool
    death_date: str | None
    address: Address

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Person:
        return cls(**{**data, "address": Address(**data["address"])})


class CivilRegistry(RegistrarAdapter):
    """The ``civil_registry`` plugin."""

    system: ClassVar[str] = "civil registry"

    async def get_person(self, query: PersonQuery, context: CallContext) -> Person | None:
        data = await fetch_record(
            self._http,
            f"/v1/persons/{query.national_id}",
            GET_PERSON,
            context,
            system=self.system,
        )
        return Person.from_json(data) if data is not None else None


GET_PERSON: Final[Operation[PersonQuery, Person]] = Operation(
    name="get_person",
    parse=PersonQuery.parse,
    call=CivilRegistry.get_person,
    record="person",
    key="national_id",
    fields=tuple(Person.__dataclass_fields__),
    summary="A person by national or resident ID.",
)
CivilRegistry.operations = {GET_PERSON.name: GET_PERSON}
