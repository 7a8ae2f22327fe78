"""The contracts service's only way out: the hub, called with the service's own credentials.

Registrar reads go to ``/api/registry/v1/establishments/{cr}?purpose=employment-contract`` (so
the hub checks the purpose, cuts the answer to its fields and writes the read to its audit
chain); signatures come from the hub's ``POST /api/signatures/v1/sign`` (scope
``signatures.sign``). The client-credentials token and its renewal, the registrar reads and
the translation of the hub's silence into :class:`~hub.errors.HubUnavailable` are the kit's
(:mod:`hub.servicekit.gateway`); only the signing call is the service's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.errors import HubUnavailable, InvalidToken
from hub.servicekit.gateway import Gateway

__all__ = ["HubClient", "Signed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Signed:
    """What the hub's signing endpoint answered: its JWS, the signer it vouches for, when."""

    jws: str
    signer: dict[str, Any]
    signed_at: str


class HubClient(Gateway):
    """Calls the hub's gateway as the contracts service's OAuth client."""

    service = "contracts"
    purpose = "employment-contract"

    async def establishment(self, cr_number: str) -> dict[str, Any] | None:
        """The commercial registry's record of ``cr_number``; ``None`` when it has none."""
        return await self.registrar("establishments", cr_number)

    async def sign(
        self, *, contract_id: str, document_hash: str, signer_token: str, on_behalf_of: str | None
    ) -> Signed:
        """The hub's signature (a JWS) over the document hash, for the signer of ``signer_token``.

        ``signer_token`` is the internal token the hub sent with the signer's request: the hub
        reads the signer from it (not from anything this service says).
        """
        answer = await self.call(
            "POST",
            "/api/signatures/v1/sign",
            json={
                "contract_id": contract_id,
                "document_hash": document_hash,
                "signer_token": signer_token,
                "on_behalf_of": on_behalf_of,
            },
        )
        if answer.status in {401, 403} and answer.code == "invalid_token":
            raise InvalidToken(f"the hub refused the signer's token: {answer.problem}")
        if answer.status != 200:
            raise HubUnavailable(f"the hub did not sign: {answer.problem}")
        body = answer.body
        return Signed(
            jws=str(body["jws"]), signer=dict(body["signer"]), signed_at=str(body["signed_at"])
        )
