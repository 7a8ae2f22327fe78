"""The visa service's only way out: the hub's gateway, called with the service's own credentials.

Registrar reads go to ``/api/registry/v1/...?purpose=visa-eligibility`` (so the hub checks the
purpose, cuts the answer to its fields and writes the read to its audit chain); fees go to the
payments API ``/api/payments/v1/payments`` with an ``Idempotency-Key``. The client-credentials
token, its renewal and the translation of the hub's silence into
:class:`~hub.errors.HubUnavailable` are the kit's (:mod:`hub.servicekit.gateway`).
"""

from __future__ import annotations

from typing import Any

from hub.servicekit.gateway import Gateway, Payment

__all__ = ["HubClient", "Payment"]


class HubClient(Gateway):
    """Calls the hub's gateway as the visa service's OAuth client."""

    service = "visa"
    purpose = "visa-eligibility"

    async def establishment(self, cr_number: str) -> dict[str, Any] | None:
        """The commercial registry's record of ``cr_number``; ``None`` when it has none."""
        return await self.registrar("establishments", cr_number)

    async def person(self, national_id: str) -> dict[str, Any] | None:
        """The civil registry's record of ``national_id``; ``None`` when it has none."""
        return await self.registrar("persons", national_id)
