"""Who is calling: the principal every authenticator produces, and the error each one raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hub.errors import InvalidToken

__all__ = [
    "ANONYMOUS",
    "Kind",
    "Principal",
    "claim_scopes",
    "claim_str",
    "claim_strings",
    "invalid_token",
]

Kind = Literal["client", "person", "api_key", "anonymous"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller; ``expires_at`` is when its credential stops being valid (epoch).

    ``via_session`` marks a person who came with the hub's session cookie, i.e. a browser: such
    a request is held to the same-origin check on unsafe methods, and can be sent to sign in
    again when the route asks for a stronger ``acr``.

    What the principal may do for establishments, all from the hub's own records (never from
    another issuer's word):

    - ``establishment`` and ``delegation``: the establishment a client acts for, and the
      delegation it acts under (a delegated vendor token);
    - ``roles``: staff roles (``platform_admin``, ``agency_officer``);
    - ``memberships``: ``"<establishment id>:<role>"`` for each membership held (``owner``,
      ``hr_officer``, ``employee``);
    - ``delegated_scopes``: ``"<establishment id>:<scope>"`` for each scope an establishment
      delegated to the principal (an HR officer's delegations, or the one a client acts under);
    - ``delegations``: the ids of every delegation the credential rests on, so revoking one
      refuses the credential;
    - ``registrations``: ``"<establishment id>:<CR number>"`` for each establishment above, so a
      service can tell which commercial registration an establishment id stands for;
    - ``national_id``: a person's national or resident ID, from the hub's records.
    """

    subject: str
    kind: Kind
    issuer: str
    client_id: str | None = None
    scopes: frozenset[str] = frozenset()
    acr: str | None = None
    establishment: str | None = None
    delegation: str | None = None
    roles: frozenset[str] = frozenset()
    memberships: frozenset[str] = frozenset()
    delegated_scopes: frozenset[str] = frozenset()
    delegations: frozenset[str] = frozenset()
    registrations: frozenset[str] = frozenset()
    national_id: str | None = None
    token_id: str | None = None
    expires_at: float | None = None
    via_session: bool = False


ANONYMOUS = Principal(subject="anonymous", kind="anonymous", issuer="")


def invalid_token(description: str) -> InvalidToken:
    """A 401 ``invalid_token`` with its RFC 6750 challenge; ``description`` names no token data."""
    return InvalidToken(
        description,
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="hub", error="invalid_token", error_description="{description}"'
            )
        },
    )


def claim_str(claims: Mapping[str, Any], name: str) -> str | None:
    """The string claim ``name``, ``None`` when absent; any other type is a malformed token."""
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    raise invalid_token(f"malformed claim: {name}")


def claim_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated, RFC 9068) or, failing that, ``scp`` (a list)."""
    scope = claims.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise invalid_token("malformed claim: scope")
        return frozenset(scope.split())
    scp = claims.get("scp")
    if scp is None:
        return frozenset()
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list) and all(isinstance(item, str) for item in scp):
        return frozenset(scp)
    raise invalid_token("malformed claim: scp")


def claim_strings(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """The list-of-strings claim ``name`` as a set, empty when absent; malformed otherwise."""
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise invalid_token(f"malformed claim: {name}")
