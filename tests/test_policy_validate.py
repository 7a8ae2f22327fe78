"""Bad permission policies are refused with the exact path and reason."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import ConfigError
from tests.policy_support import document


def errors(*permissions: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        document(list(permissions))
    return caught.value.issues


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "effect": "allow", **fields}


def test_a_valid_policy_loads_into_the_typed_model() -> None:
    doc = document(
        [
            {
                "id": "est.records",
                "routes": ["records"],
                "rules": [
                    rule(
                        subjects={"kinds": ["client"], "scopes": ["est.read"]},
                        conditions=[{"attr": "query.limit", "op": "in", "value": [10, 20]}],
                        obligations={"mask": [{"field": "$.id"}], "drop": ["$.phone"]},
                    )
                ],
            }
        ]
    )
    (permission,) = doc.permissions
    condition = permission.rules[0].conditions[0]
    assert condition.value == ("10", "20")  # numbers are compared as text
    assert permission.rules[0].obligations.mask[0].keep_last == 4


@pytest.mark.parametrize(
    ("permission", "expected"),
    [
        (
            {"id": "p", "routes": ["recrods"], "rules": [rule()]},
            "$.permissions[0].routes[0]: 'recrods' is not a defined route",
        ),
        (
            {"id": "p", "products": ["visas"], "rules": [rule()]},
            "$.permissions[0].products[0]: 'visas' is not a declared product",
        ),
        (
            {"id": "p", "rules": [rule()]},
            "$.permissions[0]: the permission covers no route: give 'routes' or 'products'",
        ),
        (
            {"id": "p", "routes": ["records"], "rules": [rule(resources={"routes": ["open"]})]},
            "$.permissions[0].rules[0].resources.routes[0]: route 'open' is not covered by this"
            " permission, so the rule can never match",
        ),
        (
            {
                "id": "p",
                "routes": ["open"],
                "rules": [rule(conditions=[{"attr": "path.id", "op": "exists"}])],
            },
            "$.permissions[0].rules[0].conditions[0].attr: no route this rule applies to has a"
            " path parameter 'id', so path.id is never set",
        ),
        (
            {
                "id": "p",
                "routes": ["records"],
                "rules": [rule(conditions=[{"attr": "principal.shoe", "op": "eq", "value": 1}])],
            },
            "$.permissions[0].rules[0].conditions[0]: unknown attribute 'principal.shoe'",
        ),
        (
            {
                "id": "p",
                "routes": ["records"],
                "rules": [
                    rule(conditions=[{"attr": "request.method", "op": "like", "value": "G"}])
                ],
            },
            "$.permissions[0].rules[0].conditions[0].op: 'like' is not one of ['eq', 'ne', 'in',"
            " 'not_in', 'prefix', 'exists', 'contains', 'not_contains', 'cidr', 'not_cidr',"
            " 'before', 'after', 'between', 'member_of', 'not_member_of', 'delegated_by',"
            " 'not_delegated_by']",
        ),
        (
            {"id": "p", "routes": ["records"], "rules": [rule(obligations={"drop": ["phone"]})]},
            "$.permissions[0].rules[0].obligations.drop[0]: 'phone' must start with '$'",
        ),
        (
            {
                "id": "p",
                "routes": ["records"],
                "rules": [rule(effect="deny", obligations={"drop": ["$.a"]})],
            },
            "$.permissions[0].rules[0].obligations: obligations apply to allowed answers; a deny"
            " rule cannot carry them",
        ),
        (
            {"id": "p", "routes": ["records"], "rules": [rule(), rule()]},
            "$.permissions[0].rules[1].id: duplicate rule id 'r' in this permission (first"
            " defined at rules[0])",
        ),
        (
            {"id": "p", "routes": ["records"], "rules": [rule(subjects={"kinds": ["robot"]})]},
            "$.permissions[0].rules[0].subjects.kinds[0]: 'robot' is not one of ['client',"
            " 'person', 'api_key', 'anonymous']",
        ),
        (
            {"id": "p", "routes": ["records"], "rules": [rule(efect="allow")]},
            "$.permissions[0].rules[0].efect: unknown field 'efect' (did you mean 'effect'?)",
        ),
    ],
)
def test_bad_policies_are_refused_with_exact_paths(
    permission: dict[str, Any], expected: str
) -> None:
    assert errors(permission) == [expected]


def test_methods_no_route_of_the_rule_accepts_can_never_match() -> None:
    routes = [{"id": "reads", "path": "/r/{id}", "methods": ["GET"], "upstream": "svc"}]
    permission = {"id": "p", "routes": ["reads"], "rules": [rule(resources={"methods": ["POST"]})]}
    with pytest.raises(ConfigError) as caught:
        document([permission], routes=routes)
    assert caught.value.issues == [
        "$.permissions[0].rules[0].resources.methods: none of the rule's routes accepts these"
        " methods, so the rule can never match"
    ]


def test_duplicate_permission_ids_are_refused() -> None:
    permission = {"id": "p", "routes": ["records"], "rules": [rule()]}
    assert errors(permission, permission) == [
        "$.permissions[1].id: duplicate permission id 'p' (first defined at $.permissions[0])"
    ]
