"""Replay: deciding requests with two configurations, and the dry-run's counts (table-driven).

Each request is observed as the gateway observes it, turned into a pseudonymised sample record
(:class:`~hub.ops.sample.RequestSampler`), and replayed through the active document and a
draft: route changes, auth requirement changes, decision flips and limit changes are counted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from hub.auth.principal import ANONYMOUS, Principal
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.config.dryrun import dry_run
from hub.config.loader import document_from_raw
from hub.config.replay import DecisionSnapshot, Outcome, Replayable, changes, decide, flip
from hub.config.snapshot import Snapshot, compile_snapshot
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import Observed, RequestSampler, SampledRequest
from hub.policy.context import RequestContext

KEY = b"a-cluster-key-for-the-tests-0123"

ACTIVE: dict[str, Any] = {
    "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
    "routes": [
        {
            "id": "records",
            "path": "/api/est/{establishment_id}/records",
            "upstream": "svc",
            "auth": {"methods": ["jwt", "api_key"], "scopes": ["svc.read"]},
            "rate_limit": {"rate": 10, "period": 1},
        },
        {"id": "open", "prefix": "/api/open/", "upstream": "svc"},
        {
            "id": "persons",
            "path": "/api/persons/{national_id}",
            "methods": ["GET"],
            "upstream": "svc",
            "auth": {"methods": ["jwt"]},
        },
    ],
    "products": [],
    "permissions": [
        {
            "id": "est.records.read",
            "routes": ["records"],
            "rules": [
                {"id": "no-keys", "effect": "deny", "subjects": {"kinds": ["api_key"]}},
                {
                    "id": "own-establishment",
                    "effect": "allow",
                    "subjects": {"kinds": ["person", "client"]},
                    "conditions": [
                        {
                            "attr": "principal.establishment",
                            "op": "eq",
                            "ref": "path.establishment_id",
                        }
                    ],
                },
                {
                    "id": "head-office",
                    "effect": "allow",
                    "conditions": [{"attr": "path.establishment_id", "op": "eq", "value": "e-hq"}],
                },
            ],
        },
        {
            "id": "persons.read",
            "routes": ["persons"],
            "rules": [
                {
                    "id": "office-network",
                    "effect": "allow",
                    "conditions": [
                        {"attr": "request.client_ip", "op": "cidr", "value": ["10.1.2.0/28"]}
                    ],
                }
            ],
        },
    ],
}


def edited(**changes_at: Any) -> dict[str, Any]:
    """A copy of the active document with some sections replaced or edited by a function."""
    document = copy.deepcopy(ACTIVE)
    for name, change in changes_at.items():
        change(document) if callable(change) else document.__setitem__(name, change)
    return document


def compiled(raw: Mapping[str, Any]) -> Snapshot:
    return compile_snapshot(1, document_from_raw(raw), {"svc": None})  # type: ignore[dict-item]


def decisions(raw: Mapping[str, Any], label: str) -> DecisionSnapshot:
    return DecisionSnapshot.compile(document_from_raw(raw), label=label)


def person(establishment: str | None = "e-1", **kw: Any) -> Principal:
    values: dict[str, Any] = {
        "subject": "per_0f3a9c",
        "kind": "person",
        "issuer": "http://hub",
        "client_id": "portal",
        "scopes": frozenset({"svc.read"}),
        "acr": "urn:hub:acr:mfa",
        "establishment": establishment,
    }
    values.update(kw)
    return Principal(**values)


def vendor(**kw: Any) -> Principal:
    values: dict[str, Any] = {"establishment": None, "kind": "client", "subject": "acme-hr"}
    values.update(client_id="acme-hr", **kw)
    return person(**values)


def observe(
    snapshot: Snapshot,
    method: str,
    path: str,
    principal: Principal | None,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    client_ip: str = "10.1.2.3",
    status: int = 200,
    refusal: str | None = None,
) -> Observed:
    """What the gateway hands over after answering (the decision as the gateway made it)."""
    match = snapshot.table.match(method, "", path, headers or [])
    verdict = None
    if match is not None and principal is not None:
        policy = snapshot.policies.get(match.route.id)
        if policy is not None:
            verdict = policy.decide(
                RequestContext(
                    principal=principal,
                    method=method,
                    path=path,
                    params=match.params,
                    query_string=query,
                    headers=headers or [],
                    client_ip=client_ip,
                )
            )
    return Observed(
        1_700_000_000.0,
        "req-1",
        snapshot,
        method,
        "",
        path,
        headers or [(b"authorization", b"Bearer eyJ.secret.token")],
        query,
        client_ip,
        match,
        principal,
        refusal,
        verdict,
        status,
    )


@pytest.fixture
def sampler() -> RequestSampler:
    return RequestSampler(
        MemoryEphemeralStore(),
        key="sample:test",
        size=100,
        max_age=3600,
        rate=1.0,
        pseudonymiser=Pseudonymiser(KEY),
        clock=lambda: 1_700_000_100.0,
    )


def replay(
    sampler: RequestSampler, seen: Observed, draft_raw: Mapping[str, Any]
) -> tuple[Outcome, Outcome]:
    """The record of ``seen``, decided by the active document and by the draft."""
    record = SampledRequest.from_json(json.loads(json.dumps(sampler.record(seen).to_json())))
    assert record is not None
    active = decisions(ACTIVE, "active")
    draft = decisions(draft_raw, "draft")
    request = record.replayable(sampler.pseudonymise.vocabulary(ACTIVE, draft_raw))
    return decide(active, request), decide(draft, request)


def _route_special(doc: dict[str, Any]) -> None:
    doc["routes"].insert(1, {"id": "special", "path": "/api/open/special", "upstream": "svc"})


def _deny_clients(doc: dict[str, Any]) -> None:
    rules = doc["permissions"][0]["rules"]
    rules.insert(0, {"id": "no-clients", "effect": "deny", "subjects": {"kinds": ["client"]}})


def _allow_keys(doc: dict[str, Any]) -> None:
    doc["permissions"][0]["rules"][0] = {
        "id": "keys-read",
        "effect": "allow",
        "subjects": {"kinds": ["api_key"]},
    }


def _faster(doc: dict[str, Any]) -> None:
    doc["routes"][0]["rate_limit"] = {"rate": 20, "period": 1, "burst": 5}


def _more_scopes(doc: dict[str, Any]) -> None:
    doc["routes"][0]["auth"]["scopes"] = ["svc.read", "svc.admin"]


def _auth_on_open(doc: dict[str, Any]) -> None:
    doc["routes"][1]["auth"] = {"methods": ["jwt"]}


def _no_head_office(doc: dict[str, Any]) -> None:
    doc["permissions"][0]["rules"][2]["conditions"][0]["value"] = "e-other"


def _remove_persons(doc: dict[str, Any]) -> None:
    doc["routes"].pop(2)
    doc["permissions"].pop(1)


def _office_host(doc: dict[str, Any]) -> None:
    doc["permissions"][1]["rules"][0]["conditions"][0]["value"] = ["10.1.2.3/32"]


def _office_other_host(doc: dict[str, Any]) -> None:
    doc["permissions"][1]["rules"][0]["conditions"][0]["value"] = ["10.1.2.4/32"]


CASES = [
    # (name, request, draft edit, expected changes, expected flip, draft route, draft rule)
    (
        "unchanged",
        ("GET", "/api/est/e-1/records", person()),
        None,
        (),
        None,
        "records",
        "own-establishment",
    ),
    (
        "route change",
        ("GET", "/api/open/special", ANONYMOUS),
        _route_special,
        ("route",),
        None,
        "special",
        None,
    ),
    (
        "route untouched",
        ("GET", "/api/open/other", ANONYMOUS),
        _route_special,
        (),
        None,
        "open",
        None,
    ),
    (
        "allow to deny",
        ("GET", "/api/est/e-1/records", vendor(establishment="e-1")),
        _deny_clients,
        ("decision",),
        "allow_to_deny",
        "records",
        "no-clients",
    ),
    (
        "deny to allow",
        ("GET", "/api/est/e-1/records", person(kind="api_key")),
        _allow_keys,
        ("decision",),
        "deny_to_allow",
        "records",
        "keys-read",
    ),
    (
        "limit change",
        ("GET", "/api/est/e-1/records", person()),
        _faster,
        ("limit",),
        None,
        "records",
        "own-establishment",
    ),
    (
        "scope now missing",
        ("GET", "/api/est/e-1/records", person()),
        _more_scopes,
        ("auth", "decision"),
        "allow_to_deny",
        "records",
        None,
    ),
    (
        "auth on an open route",
        ("GET", "/api/open/x", ANONYMOUS),
        _auth_on_open,
        ("auth", "decision"),
        "allow_to_deny",
        "open",
        None,
    ),
    (
        "literal value restored",
        ("GET", "/api/est/e-hq/records", person(establishment="e-9")),
        _no_head_office,
        ("decision",),
        "allow_to_deny",
        "records",
        None,
    ),
    (
        "route removed",
        ("GET", "/api/persons/1234567890", person()),
        _remove_persons,
        ("route", "auth", "decision"),
        "allow_to_deny",
        "404",
        None,
    ),
    (
        "address in a named host",
        ("GET", "/api/persons/1234567890", person()),
        _office_host,
        (),
        None,
        "persons",
        "office-network",
    ),
    (
        "address outside a named host",
        ("GET", "/api/persons/1234567890", person()),
        _office_other_host,
        ("decision",),
        "allow_to_deny",
        "persons",
        None,
    ),
]


@pytest.mark.parametrize(
    ("request_", "edit", "kinds", "flipped", "route", "rule"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_replay_finds_exactly_what_the_draft_changes(
    sampler: RequestSampler,
    request_: tuple[str, str, Principal],
    edit: Any,
    kinds: tuple[str, ...],
    flipped: str | None,
    route: str,
    rule: str | None,
) -> None:
    method, path, who = request_
    snapshot = compiled(ACTIVE)
    draft_raw = edited(x=edit) if edit is not None else ACTIVE
    active, draft = replay(sampler, observe(snapshot, method, path, who), draft_raw)
    assert changes(active, draft) == kinds
    assert flip(active, draft) == flipped
    assert (draft.route, draft.rule) == (route, rule)


def test_replaying_the_active_document_changes_nothing_and_matches_the_gateway(
    sampler: RequestSampler,
) -> None:
    snapshot = compiled(ACTIVE)
    requests = [
        ("GET", "/api/est/e-1/records", person()),
        ("GET", "/api/est/e-2/records", person()),  # another establishment: denied
        ("GET", "/api/est/e-hq/records", vendor()),  # the head office, by its literal id
        ("GET", "/api/est/e-1/records", person(kind="api_key")),
        ("GET", "/api/persons/1234567890", person()),
        ("DELETE", "/api/persons/1234567890", person()),  # 405
        ("GET", "/nothing/here", ANONYMOUS),  # 404
    ]
    for method, path, who in requests:
        seen = observe(snapshot, method, path, who)
        record = sampler.record(seen)
        active, again = replay(sampler, seen, ACTIVE)
        assert changes(active, again) == ()
        # The replayed decision is the one the gateway made on the raw request.
        if seen.verdict is not None:
            assert (active.decision, active.rule) == (record.decision, record.rule)
    decided = [replay(sampler, observe(snapshot, m, p, w), ACTIVE)[0] for m, p, w in requests]
    assert [outcome.decision for outcome in decided] == [
        "allow", "deny", "allow", "deny", "allow", "skipped", "skipped",
    ]  # fmt: skip


def test_a_failed_credential_fails_again_unless_the_route_asks_for_none(
    sampler: RequestSampler,
) -> None:
    snapshot = compiled(ACTIVE)
    seen = observe(
        snapshot, "GET", "/api/est/e-1/records", ANONYMOUS, status=401, refusal="invalid_token"
    )
    active, draft = replay(sampler, seen, ACTIVE)
    assert (active.auth, draft.auth) == ("invalid_token", "invalid_token")

    def no_auth(doc: dict[str, Any]) -> None:
        del doc["routes"][0]["auth"]

    active, draft = replay(sampler, seen, edited(x=no_auth))
    assert (active.auth, draft.auth, draft.decision) == ("invalid_token", "none", "deny")


def test_the_dry_run_counts_per_kind_flip_permission_and_route(sampler: RequestSampler) -> None:
    snapshot = compiled(ACTIVE)
    seen = [
        observe(snapshot, "GET", "/api/est/e-1/records", vendor(establishment="e-1")),  # flips
        observe(snapshot, "GET", "/api/est/e-1/records", vendor(establishment="e-1")),  # flips
        observe(snapshot, "GET", "/api/est/e-1/records", person()),  # limit only
        observe(snapshot, "GET", "/api/open/special", ANONYMOUS),  # route
        observe(snapshot, "GET", "/api/open/other", ANONYMOUS),  # unchanged
    ]
    records = [sampler.record(s) for s in seen]
    records.append(SampledRequest(**{**records[0].to_json(), "kid": "other-key"}))  # skipped

    def everything(doc: dict[str, Any]) -> None:
        _route_special(doc)
        _deny_clients(doc)
        _faster(doc)

    report = dry_run(
        records,
        decisions(ACTIVE, "version 1"),
        decisions(edited(x=everything), "draft"),
        sampler.pseudonymise,
    )
    result = report.as_dict()
    assert (result["replayed"], result["unchanged"], result["skipped"]) == (5, 1, 1)
    assert result["changed"] == {"route": 1, "auth": 0, "decision": 2, "limit": 3}
    assert result["decisions"] == {
        "allow_to_deny": 2,
        "deny_to_allow": 0,
        "by_permission": {"est.records.read": {"allow_to_deny": 2, "deny_to_allow": 0}},
    }
    assert result["routes"]["records"] == {
        "replayed": 3,
        "unchanged": 0,
        "route": 0,
        "auth": 0,
        "decision": 2,
        "limit": 3,
    }
    assert result["routes"]["open"] == {
        "replayed": 2,
        "unchanged": 1,
        "route": 1,
        "auth": 0,
        "decision": 0,
        "limit": 0,
    }
    assert len(result["examples"]) == 4
    assert result["examples"][0]["draft"]["rule"] == "no-clients"
    assert result["examples"][0]["active"]["rule"] == "own-establishment"
    assert any("HUB_SAMPLE_KEY" in note for note in result["notes"])


def test_an_empty_sample_is_zero_counts_and_a_note() -> None:
    report = dry_run(
        [], decisions(ACTIVE, "version 1"), decisions(ACTIVE, "draft"), Pseudonymiser(KEY)
    )
    result = report.as_dict()
    assert (result["replayed"], result["unchanged"], result["changed"]["route"]) == (0, 0, 0)
    assert result["notes"]
    assert "empty" in result["notes"][0]


def test_a_request_without_principal_or_verdict_decides_like_the_gateway() -> None:
    active = decisions(ACTIVE, "a")
    outcome = decide(active, Replayable(method="GET", host="", path="/api/open/x"))
    assert outcome == Outcome(route="open", auth="none", decision="not_covered")
    assert outcome.allowed
    missing = decide(active, Replayable(method="POST", host="", path="/api/persons/1"))
    assert (missing.route, missing.allowed) == ("405", False)
