"""The client credentials grant, and a vendor application's token acting for an establishment.

A vendor application asks for a token to act for an establishment by adding one parameter to
an ordinary client credentials request (RFC 6749 §4.4; §8.2 allows extension parameters)::

    grant_type=client_credentials&establishment=4030000001&scope=visas.apply

``establishment`` is the establishment's CR number (10 digits) or its ``est_`` id. In the words
of RFC 8693 (token exchange) the client is the *actor* and the establishment the party it acts
for; the hub needs no subject token because the establishment's owner recorded the arrangement
beforehand as a delegation. The token's ``sub`` stays the client id (RFC 9068 §2.2 for client
credentials), and it adds ``establishment``, ``delegation`` and ``delegated_scopes``.

- The hub looks for a delegation from that establishment to this client that is active now
  (inside its window, not revoked, grantor and client not disabled). None, or no such
  establishment: ``invalid_grant``, worded the same so a client cannot probe CR numbers.
- The token's scope is the requested scopes (or, when none are asked, every scope of the client)
  ∩ the client's registered scopes ∩ the delegation's scopes. A requested scope the client is
  not registered for, or the delegation does not grant, is ``invalid_scope`` naming it.
- A token acts under one delegation. When several are active, the one granting every requested
  scope that lasts longest is chosen.
- A revoked delegation gives no new token at once; tokens already issued live at most
  ``HUB_ACCESS_TOKEN_SECONDS`` (300 s by default), and the gateway refuses them as soon as it
  knows of the revocation (at once on the replica that revoked it, within
  ``HUB_CONFIG_POLL_SECONDS`` on the others).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio.from_thread
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    ClientCredentialsGrant as _AuthlibClientCredentialsGrant,
)
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)

from hub.auth.affiliations import NO_AFFILIATIONS, Affiliations, qualified
from hub.db.delegation_store import Delegation
from hub.identity.client_auth import CLIENT_AUTH_METHODS, parse_scope

if TYPE_CHECKING:
    from hub.identity.oauth import HubAuthorizationServer

__all__ = ["ESTABLISHMENT_PARAMETER", "ActingFor", "ClientCredentialsGrant", "choose_delegation"]

#: The token request parameter naming the establishment a client acts for.
ESTABLISHMENT_PARAMETER: Final = "establishment"
_NO_DELEGATION: Final = "no active delegation from that establishment to this client"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActingFor:
    """The delegation a token acts under, and the scopes it carries."""

    delegation: Delegation
    scopes: tuple[str, ...]
    #: The establishment's CR number, from the hub's register.
    cr_number: str | None = None

    def affiliations(self) -> Affiliations:
        """The token claims that say so."""
        establishment = self.delegation.establishment_id
        return Affiliations(
            establishment=establishment,
            delegation=self.delegation.id,
            delegated_scopes=qualified(establishment, self.scopes),
            delegations=frozenset({self.delegation.id}),
            registrations=(
                frozenset({f"{establishment}:{self.cr_number}"}) if self.cr_number else frozenset()
            ),
        )


def choose_delegation(
    delegations: Sequence[Delegation], requested: Sequence[str], registered: Sequence[str]
) -> ActingFor:
    """The delegation to act under and the token's scopes; OAuth errors as the module says.

    ``requested`` has already been checked against ``registered``.
    """
    if not delegations:
        raise InvalidGrantError(_NO_DELEGATION)
    # Longest-lasting first; ties by id, so the choice is the same on every replica.
    ordered = sorted(delegations, key=lambda d: (d.valid_until, d.id), reverse=True)
    if requested:
        for delegation in ordered:
            if set(requested) <= set(delegation.scopes):
                return ActingFor(delegation=delegation, scopes=tuple(requested))
        granted = set().union(*(d.scopes for d in delegations))
        missing = [name for name in requested if name not in granted]
        if missing:
            raise InvalidScopeError(f"the delegation does not grant: {' '.join(missing)}")
        raise InvalidScopeError("no single delegation grants all of the requested scopes")
    for delegation in ordered:
        scopes = tuple(name for name in registered if name in delegation.scopes)
        if scopes:
            return ActingFor(delegation=delegation, scopes=scopes)
    raise InvalidScopeError("the delegation grants none of the client's scopes")


class ClientCredentialsGrant(_AuthlibClientCredentialsGrant):  # type: ignore[misc]
    """authlib's ``client_credentials`` grant, with the ``establishment`` parameter."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)
    server: HubAuthorizationServer
    request: Any
    acting: ActingFor | None = None

    def validate_requested_scope(self) -> None:
        requested = parse_scope(self.request.payload.scope)
        allowed = self.request.client.record.scopes
        refused = [name for name in requested if name not in allowed]
        if refused:
            # Scope names were checked to hold no quote or backslash: safe to name them.
            raise InvalidScopeError(f"the client may not request: {' '.join(refused)}")
        reference = self.request.form.get(ESTABLISHMENT_PARAMETER)
        if reference is not None:
            self.acting = self._acting_for(reference, requested, allowed)

    def _acting_for(
        self, reference: str, requested: Sequence[str], registered: Sequence[str]
    ) -> ActingFor:
        directory = self.server.directory
        if directory is None:
            raise InvalidRequestError("acting for an establishment is not available here")
        if not reference:
            raise InvalidRequestError("establishment must be a CR number or an establishment id")
        establishment = anyio.from_thread.run(directory.establishment, reference)
        delegations: list[Delegation] = []
        if establishment is not None:
            client_id = self.request.client.client_id
            delegations = anyio.from_thread.run(
                directory.client_delegations, establishment.id, client_id
            )
        acting = choose_delegation(delegations, requested, registered)
        assert establishment is not None  # choose_delegation refuses an empty list
        return dataclasses.replace(acting, cr_number=establishment.cr_number)

    def generate_token(
        self,
        user: Any = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        client = self.request.client
        acting = self.acting
        scopes = acting.scopes if acting is not None else parse_scope(scope) or client.record.scopes
        return self.server.client_token(
            client=client,
            scopes=scopes,
            affiliations=NO_AFFILIATIONS if acting is None else acting.affiliations(),
        )
