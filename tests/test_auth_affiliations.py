"""Affiliations through the token chain: access token → gateway principal → internal token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.auth import InternalTokenSigner, IssuerConfig, TokenVerifier
from hub.auth.affiliations import Affiliations
from hub.auth.principal import Principal
from hub.errors import InvalidToken
from hub.identity.keys import KeyRing, generate_key
from hub.identity.tokens import TokenIssuer
from hub.settings import Settings
from tests.test_auth_internal import HUB, SigningKey, forge, good_claims, service

ISSUER = "https://hub.test"
EST = "est_00000000000000aa"
AFFILIATIONS = Affiliations(
    establishment=EST,
    delegation="del_1",
    roles=frozenset({"agency_officer"}),
    memberships=frozenset({f"{EST}:hr_officer", "est_2:employee"}),
    delegated_scopes=frozenset({f"{EST}:visas.apply"}),
    delegations=frozenset({"del_1", "del_2"}),
    registrations=frozenset({f"{EST}:4030000001", "est_2:4030000002"}),
    national_id="1000000001",
)


def test_claims_are_sorted_lists_and_read_back_equal() -> None:
    claims = AFFILIATIONS.claims()
    assert claims["memberships"] == ["est_00000000000000aa:hr_officer", "est_2:employee"]
    assert claims["establishment"] == EST
    assert Affiliations.from_claims(claims) == AFFILIATIONS
    assert Affiliations().claims() == {}
    assert not Affiliations()


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": "platform_admin"},
        {"memberships": [1]},
        {"delegation": ["d"]},
        {"registrations": "est_1:4030000001"},
        {"national_id": 1000000001},
    ],
)
def test_a_malformed_affiliation_claim_is_an_invalid_token(claims: dict[str, object]) -> None:
    with pytest.raises(InvalidToken, match="malformed claim"):
        Affiliations.from_claims(claims)


def test_a_service_reads_the_affiliations_from_the_internal_token() -> None:
    principal = Principal(
        subject="client-1",
        kind="client",
        issuer=HUB,
        client_id="client-1",
        scopes=frozenset({"visas.apply"}),
        **AFFILIATIONS.principal_fields(),
    )
    token = InternalTokenSigner(SigningKey(), issuer=HUB).mint(principal, "payroll")
    seen = service().verify(token)
    assert seen.establishment == EST
    assert seen.delegation == "del_1"
    assert seen.roles == AFFILIATIONS.roles
    assert seen.memberships == AFFILIATIONS.memberships
    assert seen.delegated_scopes == AFFILIATIONS.delegated_scopes
    assert seen.delegations == AFFILIATIONS.delegations
    forged = forge(good_claims(delegated_scopes="est_1:x"))
    with pytest.raises(InvalidToken, match="malformed claim: delegated_scopes"):
        service().verify(forged)


async def test_the_gateway_reads_them_and_refuses_a_revoked_delegation_even_when_cached() -> None:
    settings = Settings(issuer=ISSUER, database_url="")
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    ring = KeyRing([generate_key("access", created_at=epoch, activates_at=epoch)], settings)
    issued = TokenIssuer(ring, settings).issue(
        subject="client-1", client_id="client-1", scopes=["visas.apply"], affiliations=AFFILIATIONS
    )
    revoked: set[str] = set()
    verifier = TokenVerifier(
        [IssuerConfig(issuer=ISSUER, audiences=("hub",), algorithms=("RS256",))],
        local_issuer=ISSUER,
        local_keys=ring,
        jwks=None,
        delegation_revoked=revoked.__contains__,
    )
    principal = await verifier.verify(issued.token)
    assert principal.establishment == EST
    assert principal.delegations == {"del_1", "del_2"}
    assert principal.memberships == AFFILIATIONS.memberships
    assert len(verifier) == 1  # cached

    revoked.add("del_2")  # any delegation the token rests on
    with pytest.raises(InvalidToken, match="delegation revoked"):
        await verifier.verify(issued.token)
    assert len(verifier) == 0
    with pytest.raises(InvalidToken, match="delegation revoked"):
        await verifier.verify(issued.token)  # and on a fresh verification
