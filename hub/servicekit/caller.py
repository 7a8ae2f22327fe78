"""Who called a service, as the hub's internal token says: the only identity a service trusts.

The hub sends every request it routes to a service with ``X-Hub-Principal-Token``, a short-lived
JWT it signs for the service's audience. :meth:`Caller.from_token` verifies it and reads the
caller's affiliations (roles, memberships, delegations) from its claims, the names
:mod:`hub.auth.affiliations` gives them, so a service does not depend on which of them the
hub's ``Principal`` carries as fields. A service whose caller needs more (an actor of its own
domain) subclasses :class:`Caller`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self

from hub.auth.internal import InternalTokenVerifier
from hub.auth.principal import Principal
from hub.auth.verify import peek
from hub.errors import Unauthorized

__all__ = ["OFFICER_ROLE", "PRINCIPAL_TOKEN_HEADER", "Caller"]

#: The header the hub's internal token comes in (lower case, as ASGI gives headers).
PRINCIPAL_TOKEN_HEADER: Final = "x-hub-principal-token"  # noqa: S105 - a header name
#: The staff role of an agency's officers.
OFFICER_ROLE: Final = "agency_officer"


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who called, as the hub's internal token says: the only identity the service trusts."""

    kind: str
    subject: str
    #: who authenticated the subject (the ``idp`` claim): a subject is unique only within it
    issuer: str = ""
    #: the internal token itself, for a call that asks the hub to act for this caller
    token: str = field(default="", repr=False)
    client_id: str | None = None
    establishment: str | None = None
    delegation: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    memberships: frozenset[str] = frozenset()
    delegated_scopes: frozenset[str] = frozenset()
    #: ``"<establishment id>:<CR number>"`` from the hub's register
    registrations: frozenset[str] = frozenset()
    #: a person's national or resident ID from the hub's records
    national_id: str | None = None

    def cr_number(self, establishment_id: str) -> str | None:
        """The CR number the hub's register gives for an establishment the caller acts for."""
        prefix = f"{establishment_id}:"
        for item in self.registrations:
            if item.startswith(prefix):
                return item[len(prefix) :]
        return None

    @property
    def officer(self) -> bool:
        return self.kind == "person" and OFFICER_ROLE in self.roles

    def may_act_for(self, establishment_id: str, scopes: tuple[str, ...]) -> bool:
        """Owner, a delegated HR officer, or a vendor delegated by the establishment."""
        delegated = any(f"{establishment_id}:{scope}" in self.delegated_scopes for scope in scopes)
        if self.kind == "client":
            return self.establishment == establishment_id and delegated
        if self.kind == "person":
            return f"{establishment_id}:owner" in self.memberships or delegated
        return False

    @classmethod
    def of(cls, principal: Principal, claims: Mapping[str, Any], token: str = "") -> Self:
        """The caller from the hub's verified principal and the claims of its internal token."""

        def strings(name: str) -> frozenset[str]:
            value = claims.get(name)
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                return frozenset(value)
            return frozenset()

        delegation = claims.get("delegation")
        return cls(
            kind=principal.kind,
            subject=principal.subject,
            issuer=principal.issuer,
            token=token,
            client_id=principal.client_id,
            establishment=principal.establishment,
            delegation=delegation if isinstance(delegation, str) else None,
            scopes=principal.scopes,
            roles=strings("roles"),
            memberships=strings("memberships"),
            delegated_scopes=strings("delegated_scopes"),
            registrations=strings("registrations"),
            national_id=principal.national_id,
        )

    @classmethod
    def from_token(cls, token: str | None, verifier: InternalTokenVerifier) -> Self:
        """The caller of a request that came with ``token``; none or a forged one refuses."""
        if not token:
            raise Unauthorized("this endpoint is reached through the hub only")
        principal = verifier.verify(token)
        _, claims = peek(token)  # verified just above: only the affiliation claims are read here
        return cls.of(principal, claims, token)
