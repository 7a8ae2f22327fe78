"""The commercial registry adapter: establishments by commercial registration (CR) number.

Plugin ``commercial_registry``; contract ``contracts/adapters/commercial-registry``:

- ``get_establishment`` (``GET /v1/establishments/{cr_number}``): an :class:`Establishment`
  or ``None``. A registrar read: purpose-bound and audited; when the owner's national ID is
  among the fields returned, the owner sees the read in their data-access view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

from adapters._plugin import matched, only
from adapters.base import CallContext, Operation
from adapters.registrars._http import RegistrarAdapter, fetch_record

__all__ = ["CommercialRegistry", "Establishment", "EstablishmentQuery"]

_CR: Final = re.compile(r"[0-9]{10}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EstablishmentQuery:
    """A commercial registration number (10 digits)."""

    cr_number: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> EstablishmentQuery:
        only(params, "cr_number")
        return cls(cr_number=matched(params.get("cr_number"), _CR, "the CR number"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Establishment:
    """An establishment as the commercial registry records it."""

    cr_number: str
    name: str
    owner_national_id: str
    sector: str
    size: str
    status: str  # active, suspended or struck_off
    registered_on: str
    city: str


class CommercialRegistry(RegistrarAdapter):
    """The ``commercial_registry`` plugin."""

    system: ClassVar[str] = "commercial registry"

    async def get_establishment(
        self, query: EstablishmentQuery, context: CallContext
    ) -> Establishment | None:
        data = await fetch_record(
            self._http,
            f"/v1/establishments/{query.cr_number}",
            GET_ESTABLISHMENT,
            context,
            system=self.system,
        )
        return Establishment(**data) if data is not None else None


GET_ESTABLISHMENT: Final[Operation[EstablishmentQuery, Establishment]] = Operation(
    name="get_establishment",
    parse=EstablishmentQuery.parse,
    call=CommercialRegistry.get_establishment,
    record="establishment",
    key="cr_number",
    subject_field="owner_national_id",
    fields=tuple(Establishment.__dataclass_fields__),
    summary="An establishment by commercial registration number.",
)
CommercialRegistry.operations = {GET_ESTABLISHMENT.name: GET_ESTABLISHMENT}
