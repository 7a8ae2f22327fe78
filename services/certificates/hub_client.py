"""The certificates service's only way out: the hub's education-registry route.

``GET /api/registry/v1/certificates/{number}?purpose=qualification-verification``, called with
the service's own client credentials: the hub checks the purpose, cuts the record to the
purpose's fields and writes the read to its hash-chained audit log (the holder sees it at
``/api/me/v1/data-access``). Only two answers are verdicts: the record, or the registrar's
``record_not_found``; anything else (the hub, the adapter or the registry down, a refused
purpose) is :class:`~hub.errors.HubUnavailable`, and the certificate waits to be asked again. The
token, its renewal and the translation of the hub's silence are the kit's
(:mod:`hub.servicekit.gateway`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from hub.errors import HubUnavailable
from hub.servicekit.gateway import Gateway

__all__ = ["PURPOSE", "HubClient", "RegistryAnswer"]

PURPOSE: Final = "qualification-verification"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryAnswer:
    """The registry's record (``None``: it has no such certificate) and the audit entry."""

    record: dict[str, Any] | None
    audit_entry: int | None


class HubClient(Gateway):
    """Calls the hub's gateway as the certificates service's OAuth client."""

    service = "certificates"
    purpose = PURPOSE

    async def certificate(self, number: str) -> RegistryAnswer:
        """The education registry's record of certificate ``number``, through the hub."""
        answer = await self.call(
            "GET", f"/api/registry/v1/certificates/{number}", params={"purpose": self.purpose}
        )
        entry = answer.headers.get("x-hub-audit-entry")
        audit_entry = int(entry) if entry and entry.isdigit() else None
        if answer.status == 200:
            if answer.body is None:
                raise HubUnavailable("the registry's answer was not JSON")
            if not isinstance(answer.body, dict):
                raise HubUnavailable("the registry's answer was not a record")
            return RegistryAnswer(record=answer.body, audit_entry=audit_entry)
        if answer.status == 404 and answer.code == "record_not_found":
            return RegistryAnswer(record=None, audit_entry=audit_entry)
        asked = f"HTTP {answer.status} {answer.code}".strip()
        raise HubUnavailable(f"the education registry could not be asked: {asked}")
