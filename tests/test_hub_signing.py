"""The hub's signing endpoint (``POST /api/signatures/v1/sign``) in-process, on both back-ends.

The hub runs through Litestar's ``AsyncTestClient`` (lifespan included). A service client with
the ``signatures.sign`` scope has a document hash signed for a signer whose internal token the
hub itself minted; the JWS verifies against the hub's published JWKS and names the signer the
hub authenticated. Every refusal is a problem with a stable code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.auth.internal import INTERNAL_TYP, InternalTokenVerifier
from hub.auth.principal import Principal
from hub.db.migrate import migrate
from hub.errors import InvalidToken
from hub.ratelimit.base import Limit
from hub.settings import Settings
from hub.signing.jws import SIGNATURE_TYP
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
URL = "/api/signatures/v1/sign"
HASH = "ab" * 32


class Hub:
    def __init__(self, app: HubApp, client: AsyncTestClient[Any]) -> None:
        self.app = app
        self.client = client
        self.issuer = app.settings.issuer

    async def service_token(self, scopes: list[str], owner: str = "contracts") -> str:
        created = await self.client.post(
            "/admin/api/clients",
            json={"name": f"svc {owner}", "owner": owner, "scopes": scopes,
                  "auth_method": "client_secret_basic"},
            headers=AUTH,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        body = created.json()
        answer = await self.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
            auth=(body["client_id"], body["client_secret"]),
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def signer_token(self, audience: str = "contracts", **fields: Any) -> str:
        principal = Principal(subject="p-ravi", kind="person", issuer=self.issuer, **fields)
        return self.app.runtime.internal_token(principal, audience)

    async def sign(self, token: str | None, body: Any) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return await self.client.post(URL, json=body, headers=headers)


@pytest.fixture
async def hub(tmp_path: Path, backend_env: dict[str, str]) -> AsyncIterator[Hub]:
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "contracts", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[{"id": "contracts", "prefix": "/api/contracts/v1/", "upstream": "contracts"}],
    )
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=backend_env))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    async with AsyncTestClient(app=app) as client:  # type: ignore[arg-type]
        yield Hub(app, client)


def _problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["code"] == code
    return body


async def test_a_service_has_a_hash_signed_for_the_authenticated_signer(hub: Hub) -> None:
    token = await hub.service_token(["signatures.sign"])
    signer = hub.signer_token(memberships=frozenset({"est_1:owner"}))
    answer = await hub.sign(
        token,
        {"contract_id": "ct_1", "document_hash": HASH, "signer_token": signer,
         "on_behalf_of": "est_1"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["signer"] == {
        "kind": "person", "id": "p-ravi", "idp": hub.issuer, "client_id": None,
        "on_behalf_of": "est_1",
    }  # fmt: skip

    # anyone verifies it with the hub's published keys
    jwks = (await hub.client.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(body["jws"])
    assert (header["typ"], header["alg"], header["kid"]) == (SIGNATURE_TYP, "EdDSA", body["kid"])
    keyring = hub.app.runtime.keyring
    assert keyring is not None
    assert body["kid"] == keyring.signing_key("signature")[0]  # its own key use, not "internal"
    published = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        body["jws"], jwt.PyJWK(published).key, algorithms=["EdDSA"], issuer=hub.issuer
    )
    assert claims["contract_id"] == "ct_1"
    assert claims["document_hash"] == HASH
    assert claims["signer"] == body["signer"]
    assert claims["signed_at"] == body["signed_at"]

    # and it can never pass for an internal token
    verifier = InternalTokenVerifier(
        keyring.public_key,
        issuer=hub.issuer,
        audience="contracts",
    )
    with pytest.raises(InvalidToken):
        verifier.verify(body["jws"])


async def test_the_body_cannot_name_the_signer(hub: Hub) -> None:
    token = await hub.service_token(["signatures.sign"])
    answer = await hub.sign(
        token,
        {"contract_id": "ct_1", "document_hash": HASH, "signer_token": hub.signer_token(),
         "signer": {"kind": "person", "id": "p-boss"}},
    )  # fmt: skip
    body = _problem(answer, 400, "invalid_request")
    assert "signer: unknown field" in body["errors"]


async def test_callers_without_the_scope_or_a_client_token_are_refused(hub: Hub) -> None:
    body = {"contract_id": "ct_1", "document_hash": HASH, "signer_token": hub.signer_token()}
    _problem(await hub.sign(None, body), 401, "unauthorized")
    _problem(await hub.sign("not-a-token", body), 401, "invalid_token")
    other = await hub.service_token(["payments.read"], owner="payroll")
    _problem(await hub.sign(other, body), 403, "insufficient_scope")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not an object", "$: the body must be a JSON object"),
        ({"document_hash": HASH, "signer_token": "x"}, "contract_id: required"),
        ({"contract_id": "ct 1", "document_hash": HASH, "signer_token": "x"}, "contract_id:"),
        ({"contract_id": "ct_1", "document_hash": "AB" * 32, "signer_token": "x"},
         "document_hash:"),
        ({"contract_id": "ct_1", "document_hash": HASH}, "signer_token:"),
        ({"contract_id": "ct_1", "document_hash": HASH, "signer_token": "x",
          "on_behalf_of": 7}, "on_behalf_of:"),
    ],
)  # fmt: skip
async def test_bad_bodies_are_problems(hub: Hub, body: Any, error: str) -> None:
    token = await hub.service_token(["signatures.sign"])
    problem = _problem(await hub.sign(token, body), 400, "invalid_request")
    assert any(e.startswith(error) for e in problem["errors"]), problem["errors"]


async def test_a_body_that_is_not_json_is_a_problem(hub: Hub) -> None:
    token = await hub.service_token(["signatures.sign"])
    answer = await hub.client.post(URL, content=b"{", headers={"Authorization": f"Bearer {token}"})
    _problem(answer, 400, "invalid_request")


async def test_signer_tokens_the_hub_did_not_mint_for_this_service_are_refused(hub: Hub) -> None:
    token = await hub.service_token(["signatures.sign"])

    def body(signer_token: str, **extra: Any) -> dict[str, Any]:
        return {"contract_id": "ct_1", "document_hash": HASH, "signer_token": signer_token,
                **extra}  # fmt: skip

    # minted for another upstream (the client's owner is the audience it may present)
    _problem(await hub.sign(token, body(hub.signer_token("visas"))), 401, "invalid_token")
    # the hub's format, another key
    forged = jwt.encode(
        {"iss": hub.issuer, "aud": "contracts", "sub": "p-boss", "kind": "person",
         "iat": 1, "exp": 4_000_000_000, "jti": "x"},
        ed25519.Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "k", "typ": INTERNAL_TYP},
    )  # fmt: skip
    _problem(await hub.sign(token, body(forged)), 401, "invalid_token")
    # an access token is not an internal token
    _problem(await hub.sign(token, body(token)), 401, "invalid_token")
    # an establishment the signer has nothing to do with
    unaffiliated = body(hub.signer_token(), on_behalf_of="est_9")
    _problem(await hub.sign(token, unaffiliated), 403, "forbidden")
    delegated = body(
        hub.signer_token(delegated_scopes=frozenset({"est_9:contracts.manage"})),
        on_behalf_of="est_9",
    )
    assert (await hub.sign(token, delegated)).status_code == 200


async def test_a_client_asking_too_often_is_refused_and_others_are_not(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.signing.endpoints.SIGNING_LIMIT", Limit(rate=1, period=60, burst=1))
    busy = await hub.service_token(["signatures.sign"])
    calm = await hub.service_token(["signatures.sign"], owner="contracts")
    body = {"contract_id": "ct_9", "document_hash": HASH, "signer_token": hub.signer_token()}
    answers = [await hub.sign(busy, body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = _problem(answers[2], 429, "rate_limited")
    assert "signatures" in refused["detail"]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert answers[2].headers["RateLimit-Policy"] == '"signatures";q=1;w=60'
    assert (await hub.sign(calm, body)).status_code == 200  # another client's allowance
    _problem(await hub.sign(None, body), 401, "unauthorized")  # counted after authentication
