"""Authentication context classes: how strongly a person proved who they are.

A session, an access token and an ID token carry one ``acr`` value; a route or a relying party
may ask for a minimum. The levels are ordered: a stronger one satisfies a request for a weaker
one, never the other way round. A value the hub does not know ranks below every level, so a
token from elsewhere cannot claim more than it proves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "ACR_LEVELS",
    "ACR_MFA",
    "ACR_NATIONAL_IDP",
    "ACR_PASSWORD",
    "acr_rank",
    "satisfies",
    "weakest_known",
]

#: Identifier and password.
ACR_PASSWORD: Final = "urn:hub:acr:pwd"  # noqa: S105 - a name, not a password
#: Identifier, password and a TOTP code (or a recovery code).
ACR_MFA: Final = "urn:hub:acr:mfa"
#: Signed in through the national identity provider.
ACR_NATIONAL_IDP: Final = "urn:hub:acr:national-idp"

#: Weakest first.
ACR_LEVELS: Final = (ACR_PASSWORD, ACR_MFA, ACR_NATIONAL_IDP)
_RANK: Final = {value: rank for rank, value in enumerate(ACR_LEVELS, start=1)}


def acr_rank(acr: str | None) -> int:
    """The level of ``acr``: 0 for none or unknown, then 1, 2, 3 from weakest to strongest."""
    return _RANK.get(acr or "", 0)


def satisfies(acr: str | None, required: str | None) -> bool:
    """Whether a session at ``acr`` meets a minimum of ``required`` (``None``: no minimum)."""
    return required is None or acr_rank(acr) >= max(acr_rank(required), 1)


def weakest_known(values: Iterable[str]) -> str | None:
    """The minimum an ``acr_values`` request asks for: its weakest known level, or ``None``.

    Any one of the listed values satisfies the relying party (OpenID Connect Core §3.1.2.1), so
    the weakest known one is the bar; unknown values are ignored.
    """
    known = [value for value in values if value in _RANK]
    return min(known, key=acr_rank) if known else None
