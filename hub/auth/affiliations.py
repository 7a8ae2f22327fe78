"""What a principal may do for establishments, as token claims: roles, memberships, delegations.

(And who a person is by the state's numbering: ``national_id``.)

One value, :class:`Affiliations`, travels from the hub's records (read by
:mod:`hub.identity.directory` when a token is issued or a session is used) into the access token,
from the access token into the :class:`~hub.auth.principal.Principal` at the gateway, and from
there into the internal token upstream services read. The claims, each present only when not
empty (``roles`` is RFC 9068's; the others are the hub's own):

============================  ==========================================================
``establishment``             the establishment a client acts for (a delegated token)
``delegation``                the delegation it acts under
``roles``                     staff roles: ``platform_admin``, ``agency_officer``
``memberships``               ``"<establishment id>:<role>"``: owner, hr_officer, employee
``delegated_scopes``          ``"<establishment id>:<scope>"``: what establishments delegated
``delegations``               ids of every delegation the token rests on (for revocation)
``registrations``             ``"<establishment id>:<CR number>"`` of every establishment
                              above, from the hub's register: a service checks the CR number
                              a request names against it rather than take the caller's word
``national_id``               a person's national or resident ID, from the hub's records: how
                              services match a signed-in person with the ID an employer or a
                              registrar names
============================  ==========================================================

Establishment ids (``est_…``) hold no ``:``, so ``"<id>:<rest>"`` splits at its first colon.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hub.auth.principal import claim_str, claim_strings

__all__ = ["AFFILIATION_CLAIMS", "NO_AFFILIATIONS", "Affiliations", "qualified"]

#: The claims :meth:`Affiliations.claims` may write, in the order they are written.
AFFILIATION_CLAIMS: Final = (
    "establishment",
    "delegation",
    "roles",
    "memberships",
    "delegated_scopes",
    "delegations",
    "registrations",
    "national_id",
)


def qualified(establishment_id: str, names: Iterable[str]) -> frozenset[str]:
    """``"<establishment id>:<name>"`` for each name: a membership role or a delegated scope."""
    return frozenset(f"{establishment_id}:{name}" for name in names)


@dataclass(frozen=True, slots=True, kw_only=True)
class Affiliations:
    """A principal's establishment, delegation, staff roles, memberships and delegated scopes."""

    establishment: str | None = None
    delegation: str | None = None
    roles: frozenset[str] = frozenset()
    memberships: frozenset[str] = frozenset()
    delegated_scopes: frozenset[str] = frozenset()
    delegations: frozenset[str] = frozenset()
    registrations: frozenset[str] = frozenset()
    national_id: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in AFFILIATION_CLAIMS)

    def claims(self) -> dict[str, Any]:
        """The non-empty ones as JWT claims (lists sorted, so equal values give equal tokens)."""
        out: dict[str, Any] = {}
        for name in AFFILIATION_CLAIMS:
            value = getattr(self, name)
            if isinstance(value, frozenset):
                if value:
                    out[name] = sorted(value)
            elif value is not None:
                out[name] = value
        return out

    def principal_fields(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~hub.auth.principal.Principal` these fill in."""
        return {name: getattr(self, name) for name in AFFILIATION_CLAIMS}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Affiliations:
        """Read back from verified claims; a malformed claim is an ``invalid_token``."""
        return cls(
            establishment=claim_str(claims, "establishment"),
            delegation=claim_str(claims, "delegation"),
            roles=claim_strings(claims, "roles"),
            memberships=claim_strings(claims, "memberships"),
            delegated_scopes=claim_strings(claims, "delegated_scopes"),
            delegations=claim_strings(claims, "delegations"),
            registrations=claim_strings(claims, "registrations"),
            national_id=claim_str(claims, "national_id"),
        )


NO_AFFILIATIONS: Final = Affiliations()
