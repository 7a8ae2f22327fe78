"""The compliance service's only way out: the hub's commercial-registry route.

``GET /api/registry/v1/establishments/{cr}?purpose=compliance-monitoring`` with the service's
own client credentials; the hub cuts the record to the purpose's fields (sector, size, status)
and audits the read. ``None`` is the registrar's ``record_not_found``; any other failure is
:class:`~hub.errors.HubUnavailable` (the record is read again later). No httpx exception leaves.
"""

from __future__ import annotations

from typing import Any, Final

from hub.errors import HubUnavailable
from hub.servicekit.gateway import Gateway

__all__ = ["PURPOSE", "HubClient"]

PURPOSE: Final = "compliance-monitoring"


class HubClient(Gateway):
    """Calls the hub's gateway as the compliance service's OAuth client."""

    service = "compliance"
    purpose = PURPOSE

    async def establishment(self, cr_number: str) -> dict[str, Any] | None:
        """The commercial registry's record of ``cr_number``; ``None`` when it has none."""
        answer = await self.call(
            "GET", f"/api/registry/v1/establishments/{cr_number}", params={"purpose": self.purpose}
        )
        if answer.status == 200:
            if answer.body is None:
                raise HubUnavailable("the registry's answer was not JSON")
            if isinstance(answer.body, dict):
                return answer.body
            raise HubUnavailable("the registry's answer was not a record")
        if answer.status == 404 and answer.code == "record_not_found":
            return None
        asked = f"HTTP {answer.status} {answer.code}".strip()
        raise HubUnavailable(f"the commercial registry could not be asked: {asked}")
