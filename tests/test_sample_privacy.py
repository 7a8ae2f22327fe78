"""Pseudonyms and the request sample: no raw identifier, address or credential leaves a request.

What goes into the sample (and the shadow decision log) is checked as the JSON that is stored,
for a request carrying everything a leak could come from: a national ID in the path, a person
id, an establishment, a token, an API key, a cookie, a query value and a client address.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hub.auth.principal import Principal
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.config.loader import document_from_raw
from hub.config.replay import DecisionSnapshot, decide
from hub.config.snapshot import compile_snapshot
from hub.ops.pseudonym import Pseudonymiser, truncate_ip
from hub.ops.sample import Observed, RequestSampler, SampledRequest

NATIONAL_ID = "1098765432"
PERSON = "per_7c1d2e3f"
ESTABLISHMENT = "est_55aa"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwZXIifQ.c2lnbmF0dXJl"
API_KEY = "hub_ab12cd_s3cr3tvalue"
COOKIE = "hub_session=9f8e7d6c5b4a"
ADDRESS = "203.0.113.77"
QUERY_VALUE = "2000000001"

DOCUMENT: dict[str, Any] = {
    "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
    "routes": [
        {
            "id": "person",
            "path": "/api/est/{establishment_id}/persons/{national_id}",
            "upstream": "svc",
            "auth": {"methods": ["jwt"]},
        },
        {"id": "files", "prefix": "/api/files/", "upstream": "svc"},
    ],
    "products": [],
    "permissions": [
        {
            "id": "persons.read",
            "routes": ["person"],
            "rules": [
                {
                    "id": "own",
                    "effect": "allow",
                    "conditions": [
                        {"attr": "principal.establishment", "op": "eq",
                         "ref": "path.establishment_id"},
                        {"attr": "header.x-purpose", "op": "exists"},
                    ],
                }
            ],
        }
    ],
}  # fmt: skip


def _sampler(key: bytes | None = b"k" * 32) -> RequestSampler:
    return RequestSampler(
        MemoryEphemeralStore(),
        key="sample:t",
        size=10,
        max_age=60,
        rate=1.0,
        pseudonymiser=Pseudonymiser(key),
    )


def _seen(path: str = f"/api/est/{ESTABLISHMENT}/persons/{NATIONAL_ID}") -> Observed:
    snapshot = compile_snapshot(1, document_from_raw(DOCUMENT), {"svc": None})  # type: ignore[dict-item]
    headers = [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"x-api-key", API_KEY.encode()),
        (b"cookie", COOKIE.encode()),
        (b"x-purpose", b"audit"),
        (b"user-agent", f"client {NATIONAL_ID}".encode()),
    ]
    match = snapshot.table.match("GET", "", path, headers)
    principal = Principal(
        subject=PERSON,
        kind="person",
        issuer="http://hub",
        client_id="portal",
        scopes=frozenset({"openid"}),
        acr="urn:hub:acr:mfa",
        establishment=ESTABLISHMENT,
        token_id="jti-secret-1",
    )
    return Observed(
        1.0e9, "rid-1", snapshot, "GET", "api.example.gov", path, headers,
        f"resident={QUERY_VALUE}&x=1".encode(), ADDRESS, match, principal, None, None, 200,
    )  # fmt: skip


def test_no_raw_identifier_address_or_credential_is_stored() -> None:
    stored = json.dumps(_sampler().record(_seen()).to_json())
    for secret in (NATIONAL_ID, PERSON, ESTABLISHMENT, TOKEN, API_KEY, COOKIE, ADDRESS, QUERY_VALUE,
                   "9f8e7d6c5b4a", "s3cr3tvalue", "jti-secret-1", "203.0.113.77"):  # fmt: skip
        assert secret not in stored, secret
    record = json.loads(stored)
    # Literal segments of the route are kept, its parameters are pseudonyms.
    assert record["path"].startswith("/api/est/~")
    assert "/persons/~" in record["path"]
    assert record["ip_network"] == "203.0.113.0"
    assert set(record["headers"]) == {"x-purpose"}  # only what a condition reads; no credential
    assert set(record["query"]) == {"resident", "x"}
    assert (record["kind"], record["client_id"], record["acr"]) == (
        "person",
        "portal",
        "urn:hub:acr:mfa",
    )


def test_a_prefix_routes_remainder_and_an_unrouted_path_are_pseudonymised() -> None:
    sampler = _sampler()
    under_prefix = sampler.record(_seen(f"/api/files/{NATIONAL_ID}/scan.pdf")).path
    assert under_prefix.startswith("/api/files/~")
    assert NATIONAL_ID not in under_prefix
    assert "scan.pdf" not in under_prefix
    nowhere = sampler.record(_seen(f"/unknown/{NATIONAL_ID}")).path
    assert NATIONAL_ID not in nowhere
    assert "unknown" not in nowhere


def test_equality_is_preserved_so_a_ref_condition_replays_the_same() -> None:
    sampler = _sampler()
    record = sampler.record(_seen())
    assert record.establishment == record.params["establishment_id"]
    assert record.establishment != record.params["national_id"]
    request = record.replayable(sampler.pseudonymise.vocabulary(DOCUMENT))
    assert request.principal is not None
    assert request.principal.establishment in request.path


def test_without_a_cluster_key_each_process_has_its_own() -> None:
    one, two = Pseudonymiser(), Pseudonymiser()
    assert one("x") != two("x")
    assert one.key_id != two.key_id
    keyed, again = Pseudonymiser(b"k" * 32), Pseudonymiser(b"k" * 32)
    assert keyed("x") == again("x")
    assert keyed.key_id == again.key_id


def test_the_vocabulary_restores_only_what_a_document_names() -> None:
    p = Pseudonymiser(b"k" * 32)
    vocabulary = p.vocabulary(
        {"routes": [{"path": "/api/est/e-hq/records"}], "value": ["10.0.0.0/30", "2001:db8::1"]}
    )
    assert vocabulary[p("e-hq")] == "e-hq"
    assert vocabulary[p("10.0.0.2")] == "10.0.0.2"  # a small network, listed address by address
    assert vocabulary[p("2001:db8::1")] == "2001:db8::1"
    assert p("e-other") not in vocabulary
    assert p(NATIONAL_ID) not in vocabulary


def test_truncated_addresses() -> None:
    assert truncate_ip("198.51.100.200") == "198.51.100.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("not-an-address") == ""


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_pseudonyms_are_equal_exactly_when_the_values_are(left: str, right: str) -> None:
    p = Pseudonymiser(b"k" * 32)
    assert (p(left) == p(right)) == (left == right)


def test_affiliations_are_pseudonymised_and_replay_member_of_and_delegated_by() -> None:
    """Memberships, delegated scopes and the delegation keep their shape, not their identifiers."""
    document = copy.deepcopy(DOCUMENT)
    document["permissions"][0]["rules"] = [
        {
            "id": "owner-or-delegated",
            "effect": "allow",
            "conditions": [
                {"attr": "principal.memberships", "op": "member_of",
                 "ref": "path.establishment_id", "value": ["owner"]},
                {"attr": "principal.delegated_scopes", "op": "delegated_by",
                 "ref": "path.establishment_id", "value": ["visas.apply"]},
            ],
        }
    ]  # fmt: skip
    seen = _seen()
    principal = replace(
        seen.principal,
        roles=frozenset({"agency_officer"}),
        memberships=frozenset({f"{ESTABLISHMENT}:owner", "est_other:employee"}),
        delegated_scopes=frozenset({f"{ESTABLISHMENT}:visas.apply"}),
        delegation="dlg_secret_9",
    )
    sampler = _sampler()
    record = sampler.record(seen._replace(principal=principal))
    stored = json.dumps(record.to_json())
    for secret in (ESTABLISHMENT, "est_other", "dlg_secret_9"):
        assert secret not in stored, secret
    assert record.roles == ["agency_officer"]
    assert sorted(m.rpartition(":")[2] for m in record.memberships) == ["employee", "owner"]
    assert record.delegation is not None
    assert record.delegation.startswith("~")

    compiled = DecisionSnapshot.compile(document_from_raw(document), label="draft")
    replayed = record.replayable(sampler.pseudonymise.vocabulary(document))
    assert decide(compiled, replayed).decision == "allow"
    # A record of the same request without the affiliations is refused by the same rule.
    bare = sampler.record(seen)
    assert decide(compiled, bare.replayable({})).decision == "deny"
    # Records of an earlier release (without these fields) still load.
    old = {k: v for k, v in record.to_json().items() if k not in {"memberships", "delegation"}}
    loaded = SampledRequest.from_json(old)
    assert loaded is not None
    assert loaded.memberships == []
