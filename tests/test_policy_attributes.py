"""Principal affiliations and contract operations in permission decisions.

Table-driven and property-based: ``member_of`` / ``delegated_by`` (and their negations) against
a plain reading of the principal's sets, operations resolved per route, rules naming operations,
and the validator's exact paths for the new forms.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config.loader import document_from_raw
from hub.config.snapshot import compile_snapshot
from hub.errors import ConfigError
from hub.policy.conditions import ConditionError, compile_condition
from hub.policy.context import RequestContext
from hub.policy.model import ConditionSpec
from hub.policy.operations import Operation, OperationIndex, serves, tokens
from tests.policy_support import decide, principal, snapshot

EST = "est_0000000000000007"
OTHER = "est_0000000000000008"
RECORD = f"/api/est/{EST}/records/42"

HR_OR_OWNER: dict[str, Any] = {
    "id": "est.records",
    "routes": ["records"],
    "rules": [
        {
            "id": "never-ex-employees",
            "effect": "deny",
            "subjects": {"kinds": ["person"]},
            "conditions": [
                {
                    "attr": "principal.memberships",
                    "op": "not_member_of",
                    "ref": "path.establishment_id",
                },
                {
                    "attr": "principal.delegated_scopes",
                    "op": "not_delegated_by",
                    "ref": "path.establishment_id",
                    "value": ["records.read"],
                },
            ],
        },
        {
            "id": "owners",
            "effect": "allow",
            "conditions": [
                {
                    "attr": "principal.memberships",
                    "op": "member_of",
                    "ref": "path.establishment_id",
                    "value": ["owner"],
                }
            ],
        },
        {
            "id": "delegated",
            "effect": "allow",
            "conditions": [
                {
                    "attr": "principal.delegated_scopes",
                    "op": "delegated_by",
                    "ref": "path.establishment_id",
                    "value": ["records.read"],
                }
            ],
        },
        {
            "id": "vendor-acting-for-it",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["records.read"]},
            "conditions": [
                {"attr": "principal.establishment", "op": "eq", "ref": "path.establishment_id"},
                {"attr": "principal.delegation", "op": "exists"},
            ],
        },
        {
            "id": "platform-admins",
            "effect": "allow",
            "subjects": {"roles": ["platform_admin"]},
        },
    ],
}


@pytest.fixture(scope="module")
def snap() -> Any:
    return snapshot([HR_OR_OWNER])


OWNER = principal("person", memberships=[f"{EST}:owner"])
HR = principal(
    "person",
    memberships=[f"{EST}:hr_officer"],
    delegated_scopes=[f"{EST}:records.read", f"{OTHER}:records.read"],
)
HR_WITHOUT_DELEGATION = principal("person", memberships=[f"{EST}:hr_officer"])
EMPLOYEE_ELSEWHERE = principal("person", memberships=[f"{OTHER}:owner"])
VENDOR = principal(
    "client",
    scopes=["records.read"],
    establishment=EST,
    delegation="del_1",
    delegated_scopes=[f"{EST}:records.read"],
)
VENDOR_FOR_OTHER = principal(
    "client",
    scopes=["records.read"],
    establishment=OTHER,
    delegation="del_2",
    delegated_scopes=[f"{OTHER}:records.read"],
)
ADMIN = principal("person", roles=["platform_admin"])


@pytest.mark.parametrize(
    ("who", "path", "allowed", "rule"),
    [
        (OWNER, RECORD, True, "owners"),
        (HR, RECORD, True, "delegated"),
        # an HR officer the owner did not delegate to: a member, but no rule allows it
        (HR_WITHOUT_DELEGATION, RECORD, False, None),
        # an owner elsewhere is neither member nor delegated here: the deny rule wins
        (EMPLOYEE_ELSEWHERE, RECORD, False, "never-ex-employees"),
        (OWNER, f"/api/est/{OTHER}/records/42", False, "never-ex-employees"),
        (HR, f"/api/est/{OTHER}/records/42", True, "delegated"),
        (VENDOR, RECORD, True, "delegated"),
        (VENDOR_FOR_OTHER, RECORD, False, None),
        # the admin is a person with no membership: denied by the deny rule despite the role
        (ADMIN, RECORD, False, "never-ex-employees"),
        (principal("client", roles=["platform_admin"]), RECORD, True, "platform-admins"),
    ],
)
def test_affiliation_decisions(
    snap: Any, who: Any, path: str, allowed: bool, rule: str | None
) -> None:
    decision = decide(snap, who, "GET", path)
    assert decision is not None
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_a_vendor_token_matches_the_establishment_equality_rule(snap: Any) -> None:
    # Without delegated scopes, the vendor still passes on principal.establishment == path.
    who = principal("client", scopes=["records.read"], establishment=EST, delegation="del_1")
    decision = decide(snap, who, "GET", RECORD)
    assert decision is not None
    assert (decision.allowed, decision.rule) == (True, "vendor-acting-for-it")


# --- the operators against a plain reading of the sets ----------------------------------------

ROLES = ("owner", "hr_officer", "employee")
SCOPES = ("a", "b", "c")
ESTABLISHMENTS = ("est_1", "est_2", "est_3")


def _ctx(memberships: frozenset[str], delegated: frozenset[str], target: str) -> RequestContext:
    return RequestContext(
        principal=principal("person", memberships=memberships, delegated_scopes=delegated),
        method="GET",
        path="/",
        params={"establishment_id": target},
    )


@settings(max_examples=300, deadline=None)
@given(
    held=st.frozensets(st.tuples(st.sampled_from(ESTABLISHMENTS), st.sampled_from(ROLES))),
    roles=st.lists(st.sampled_from(ROLES), unique=True, max_size=3),
    target=st.sampled_from((*ESTABLISHMENTS, "")),
)
def test_member_of_is_any_listed_role_in_that_establishment(
    held: frozenset[tuple[str, str]], roles: list[str], target: str
) -> None:
    memberships = frozenset(f"{e}:{r}" for e, r in held)
    spec = ConditionSpec(
        attr="principal.memberships",
        op="member_of",
        ref="path.establishment_id",
        value=tuple(roles) or None,
    )
    expected = any(e == target and (not roles or r in roles) for e, r in held)
    context = _ctx(memberships, frozenset(), target)
    assert compile_condition(spec).test(context) is expected
    negated = ConditionSpec(attr=spec.attr, op="not_member_of", ref=spec.ref, value=spec.value)
    assert compile_condition(negated).test(context) is not expected


@settings(max_examples=300, deadline=None)
@given(
    held=st.frozensets(st.tuples(st.sampled_from(ESTABLISHMENTS), st.sampled_from(SCOPES))),
    wanted=st.lists(st.sampled_from(SCOPES), unique=True, min_size=1, max_size=3),
    target=st.sampled_from((*ESTABLISHMENTS, "")),
)
def test_delegated_by_is_every_listed_scope_from_that_establishment(
    held: frozenset[tuple[str, str]], wanted: list[str], target: str
) -> None:
    delegated = frozenset(f"{e}:{s}" for e, s in held)
    spec = ConditionSpec(
        attr="principal.delegated_scopes",
        op="delegated_by",
        ref="path.establishment_id",
        value=tuple(wanted),
    )
    expected = bool(target) and all((target, s) in held for s in wanted)
    context = _ctx(frozenset(), delegated, target)
    assert compile_condition(spec).test(context) is expected
    negated = ConditionSpec(attr=spec.attr, op="not_delegated_by", ref=spec.ref, value=spec.value)
    assert compile_condition(negated).test(context) is not expected


def test_an_establishment_id_is_never_matched_by_prefix() -> None:
    # "est_1" must not match a membership in "est_10" (the colon ends the id).
    spec = ConditionSpec(attr="principal.memberships", op="member_of", ref="path.establishment_id")
    assert not compile_condition(spec).test(_ctx(frozenset({"est_10:owner"}), frozenset(), "est_1"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ConditionSpec(attr="principal.memberships", op="member_of", value=("owner",)),
            "needs a 'ref'",
        ),
        (
            ConditionSpec(
                attr="principal.memberships", op="member_of", ref="path.x", value=("boss",)
            ),
            "'boss' is not a membership role",
        ),
        (
            ConditionSpec(attr="principal.delegated_scopes", op="delegated_by", ref="path.x"),
            "needs a 'value'",
        ),
        (
            ConditionSpec(attr="principal.memberships", op="member_of", ref="principal.scopes"),
            "must be a text attribute",
        ),
        (
            ConditionSpec(attr="principal.memberships", op="eq", value="x"),
            "does not apply",
        ),
        (
            ConditionSpec(attr="request.method", op="member_of", ref="path.x"),
            "does not apply",
        ),
    ],
)
def test_bad_affiliation_conditions_are_refused(spec: ConditionSpec, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        compile_condition(spec)


# --- contract operations ----------------------------------------------------------------------

ECHO_ROUTES: list[dict[str, Any]] = [
    {
        "id": "items",
        "product": "echo",
        "version": 1,
        "path": "/api/echo/v1/items/{id}",
        "methods": ["GET"],
        "upstream": "svc",
    },
    {"id": "api", "product": "echo", "version": 1, "prefix": "/api/echo/v1/", "upstream": "svc"},
    {"id": "plain", "prefix": "/plain/", "upstream": "svc"},
]


def echo_document(permissions: list[dict[str, Any]]) -> Any:
    return document_from_raw(
        {
            "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
            "routes": ECHO_ROUTES,
            "products": [
                {"id": "echo", "version": 1, "title": "Echo", "contract": "products/echo/v1"}
            ],
            "permissions": permissions,
        }
    )


def echo_snapshot(permissions: list[dict[str, Any]]) -> Any:
    return compile_snapshot(1, echo_document(permissions), {"svc": None})  # type: ignore[dict-item]


CREATE_ONLY_BY_WRITERS: dict[str, Any] = {
    "id": "echo.items",
    "products": ["echo"],
    "rules": [
        {
            "id": "writers-create",
            "effect": "allow",
            "subjects": {"scopes": ["echo.write"]},
            "resources": {"operations": ["createItem"]},
        },
        {
            "id": "readers-read",
            "effect": "allow",
            "subjects": {"scopes": ["echo.read"]},
            "conditions": [
                {"attr": "request.operation", "op": "in", "value": ["getItem", "listItems"]}
            ],
        },
    ],
}


def test_each_route_knows_the_operations_it_serves() -> None:
    snap = echo_snapshot([CREATE_ONLY_BY_WRITERS])
    assert snap.operations["items"].ids == {"getItem"}
    assert snap.operations["api"].ids == {
        "getItem",
        "listItems",
        "createItem",
        "listEstablishmentRecords",
    }
    assert not snap.operations["plain"]
    # the rule naming createItem is not compiled for the route that never serves it
    items = snap.policies["items"].permissions[0]
    assert [rule.id for rule in items.allow] == ["readers-read"]


@pytest.mark.parametrize(
    ("method", "path", "scopes", "allowed", "rule"),
    [
        ("POST", "/api/echo/v1/items", ["echo.write"], True, "writers-create"),
        ("POST", "/api/echo/v1/items", ["echo.read"], False, None),
        ("GET", "/api/echo/v1/items", ["echo.read"], True, "readers-read"),
        ("GET", "/api/echo/v1/items/42", ["echo.read"], True, "readers-read"),
        ("HEAD", "/api/echo/v1/items/42", ["echo.read"], True, "readers-read"),
        ("GET", "/api/echo/v1/items", ["echo.write"], False, None),
        # no operation of the contract: neither rule applies (default deny)
        ("DELETE", "/api/echo/v1/items/42", ["echo.write", "echo.read"], False, None),
        ("GET", "/api/echo/v1/other", ["echo.read"], False, None),
    ],
)
def test_rules_by_operation(
    method: str, path: str, scopes: list[str], allowed: bool, rule: str | None
) -> None:
    snap = echo_snapshot([CREATE_ONLY_BY_WRITERS])
    decision = decide(snap, principal("client", scopes=scopes), method, path)
    assert decision is not None
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_a_literal_segment_wins_over_a_parameter() -> None:
    index = OperationIndex(
        [
            Operation(id="byId", method="GET", path="/a/{id}"),
            Operation(id="mine", method="GET", path="/a/me"),
            Operation(id="deep", method="GET", path="/a/{id}/b"),
        ]
    )
    assert index.lookup("GET", "/a/me") == "mine"
    assert index.lookup("GET", "/a/42") == "byId"
    assert index.lookup("GET", "/a/42/b") == "deep"
    assert index.lookup("GET", "/a/42/c") is None
    assert index.lookup("POST", "/a/42") is None
    assert index.lookup("HEAD", "/a/42") == "byId"


SEGMENT = st.sampled_from(("a", "b", "c", "{p}"))


@settings(max_examples=300, deadline=None)
@given(
    templates=st.lists(st.lists(SEGMENT, min_size=0, max_size=3), min_size=1, max_size=6),
    request=st.lists(st.sampled_from(("a", "b", "c", "d")), min_size=0, max_size=3),
)
def test_lookup_finds_a_template_that_matches_and_nothing_else(
    templates: list[list[str]], request: list[str]
) -> None:
    operations = [
        Operation(id=f"op{i}", method="GET", path="/" + "/".join(t))
        for i, t in enumerate(templates)
    ]
    found = OperationIndex(operations).lookup("GET", "/" + "/".join(request))

    def fits(template: list[str]) -> bool:
        return len(template) == len(request) and all(
            t == "{p}" or t == s for t, s in zip(template, request, strict=True)
        )

    fitting = [op.id for op, t in zip(operations, templates, strict=True) if fits(t)]
    if not fitting:
        assert found is None
    else:
        assert found in fitting
        chosen = templates[int(found[2:])]
        # no fitting template is more literal at the first place where they differ
        for other in (templates[int(f[2:])] for f in fitting):
            for mine, theirs in zip(chosen, other, strict=True):
                if (mine == "{p}") != (theirs == "{p}"):
                    assert theirs == "{p}"
                    break


def test_a_route_serves_an_operation_only_when_it_takes_all_of_its_requests() -> None:
    get_one = Operation(id="g", method="GET", path="/a/{id}")
    assert serves(tokens("/a/{x}"), is_prefix=False, methods=["GET"], operation=get_one)
    assert serves(tokens("/a/"), is_prefix=True, methods=[], operation=get_one)
    assert not serves(tokens("/a/me"), is_prefix=False, methods=[], operation=get_one)
    assert not serves(tokens("/a/{x}"), is_prefix=False, methods=["POST"], operation=get_one)
    assert not serves(tokens("/a/{x}/b"), is_prefix=True, methods=[], operation=get_one)


# --- validation with exact paths --------------------------------------------------------------


def errors(permission: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        echo_document([permission])
    return caught.value.issues


def _rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "effect": "allow", **fields}


@pytest.mark.parametrize(
    ("permission", "expected"),
    [
        (
            {"id": "p", "products": ["echo"], "rules": [_rule(resources={"operations": ["nope"]})]},
            "$.permissions[0].rules[0].resources.operations[0]: 'nope' is not an operation of"
            " the contract of any route this rule applies to",
        ),
        (
            {
                "id": "p",
                "routes": ["items"],
                "rules": [_rule(resources={"operations": ["getItem", "createItem"]})],
            },
            "$.permissions[0].rules[0].resources.operations[1]: operation 'createItem' is not"
            " served by any route this rule applies to, so the rule can never match",
        ),
        (
            {
                "id": "p",
                "products": ["echo"],
                "rules": [_rule(resources={"routes": ["items"], "operations": ["listItems"]})],
            },
            "$.permissions[0].rules[0].resources.operations[0]: operation 'listItems' is not"
            " served by any route this rule applies to, so the rule can never match",
        ),
        (
            {
                "id": "p",
                "routes": ["plain"],
                "rules": [_rule(resources={"operations": ["getItem"]})],
            },
            "$.permissions[0].rules[0].resources.operations[0]: 'getItem' is not an operation"
            " of the contract of any route this rule applies to",
        ),
        (
            {
                "id": "p",
                "products": ["echo"],
                "rules": [_rule(resources={"operations": ["createItem"], "methods": ["GET"]})],
            },
            "$.permissions[0].rules[0].resources.methods: none of the rule's operations uses"
            " these methods, so the rule can never match",
        ),
        (
            {
                "id": "p",
                "products": ["echo"],
                "rules": [
                    _rule(
                        conditions=[
                            {"attr": "request.operation", "op": "in", "value": ["getItem", "x"]}
                        ]
                    )
                ],
            },
            "$.permissions[0].rules[0].conditions[0].value[1]: 'x' is not an operation of the"
            " contract of any route this rule applies to",
        ),
        (
            {
                "id": "p",
                "products": ["echo"],
                "rules": [
                    _rule(
                        conditions=[
                            {
                                "attr": "principal.memberships",
                                "op": "member_of",
                                "ref": "path.establishment_id",
                            }
                        ]
                    )
                ],
            },
            "$.permissions[0].rules[0].conditions[0].ref: no route this rule applies to has a"
            " path parameter 'establishment_id', so path.establishment_id is never set",
        ),
        (
            {
                "id": "p",
                "products": ["echo"],
                "rules": [
                    _rule(
                        conditions=[
                            {
                                "attr": "principal.memberships",
                                "op": "member_of",
                                "ref": "path.id",
                                "value": ["chief"],
                            }
                        ]
                    )
                ],
            },
            "$.permissions[0].rules[0].conditions[0]: 'chief' is not a membership role (use"
            " owner, hr_officer, employee)",
        ),
        (
            {"id": "p", "products": ["echo"], "rules": [_rule(resources={"operations": []})]},
            "$.permissions[0].rules[0].resources.operations: [] should be non-empty",
        ),
    ],
)
def test_bad_operation_and_affiliation_rules_are_refused_with_exact_paths(
    permission: dict[str, Any], expected: str
) -> None:
    assert errors(permission) == [expected]


def test_good_operation_rules_pass() -> None:
    document = echo_document([CREATE_ONLY_BY_WRITERS])
    assert [p.id for p in document.permissions] == ["echo.items"]
    assert document.permissions[0].rules[0].resources.operations == ("createItem",)


def test_roles_come_from_the_principal_unless_a_replay_gives_them(snap: Any) -> None:
    admin = principal("client", roles=["platform_admin"])
    given = RequestContext(
        principal=principal("client"),
        method="GET",
        path=RECORD,
        params={"establishment_id": EST, "id": "42"},
        roles=frozenset({"platform_admin"}),
    )
    assert RequestContext(principal=admin, method="GET", path="/", params={}).roles == {
        "platform_admin"
    }
    decision = snap.policies["records"].decide(given)
    assert (decision.allowed, decision.rule) == (True, "platform-admins")


def test_a_context_without_the_operation_index_gets_the_routes() -> None:
    snap = echo_snapshot([CREATE_ONLY_BY_WRITERS])
    context = RequestContext(
        principal=principal("client", scopes=["echo.write"]),
        method="POST",
        path="/api/echo/v1/items",
        params={},
    )
    decision = snap.policies["api"].decide(context)
    assert (decision.allowed, decision.rule) == (True, "writers-create")
    assert context.operation == "createItem"
