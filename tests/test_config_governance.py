"""Four-eyes rules: the ``governance`` section validated with exact paths, and which changes of a
document they protect (pure functions over plain documents, no database)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hub.config.governance import (
    ApprovalRule,
    GovernanceSpec,
    ProtectedChange,
    protected_changes,
)
from hub.config.loader import document_from_raw
from hub.errors import ConfigError

PERSONAL = {
    "id": "personal-data",
    "sections": ["routes", "permissions", "upstreams", "products"],
    "tagged": "personal_data",
}
TRUST = {"id": "trust", "sections": ["issuers", "plans"]}
ISSUER = {
    "id": "idp",
    "issuer": "https://idp.example.gov",
    "jwks_uri": "https://idp.example.gov/jwks",
    "audiences": ["hub"],
    "algorithms": ["RS256"],
}


def base(*rules: dict[str, Any]) -> dict[str, Any]:
    """Records (tagged personal data, on its own upstream) beside an open echo route."""
    document: dict[str, Any] = {
        "upstreams": [
            {"id": "registry", "targets": [{"url": "http://127.0.0.1:9101"}]},
            {"id": "echo", "targets": [{"url": "http://127.0.0.1:9102"}]},
        ],
        "routes": [
            {
                "id": "records",
                "prefix": "/records/",
                "upstream": "registry",
                "tags": ["personal_data"],
            },
            {"id": "echo", "prefix": "/echo/", "upstream": "echo"},
        ],
        "products": [],
        "permissions": [
            {
                "id": "records.read",
                "routes": ["records"],
                "rules": [{"id": "people", "effect": "allow", "subjects": {"kinds": ["person"]}}],
            },
            {
                "id": "echo.use",
                "routes": ["echo"],
                "rules": [{"id": "all", "effect": "allow"}],
            },
        ],
        "issuers": [ISSUER],
        "plans": [{"id": "free", "title": "Free"}],
    }
    if rules:
        document["governance"] = {"approvals": list(rules)}
    return document


def changed(document: dict[str, Any], edit: Any) -> dict[str, Any]:
    after = copy.deepcopy(document)
    edit(after)
    return after


def items(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    return [f"{c.describe()} by {','.join(c.rules)}" for c in protected_changes(before, after)]


def issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        document_from_raw(raw)
    return info.value.issues


# --- the section and the tags in the model --------------------------------------------------


def test_rules_and_tags_reach_the_typed_model() -> None:
    document = document_from_raw(base(PERSONAL, TRUST))
    assert document.governance == GovernanceSpec(
        approvals=(
            ApprovalRule(
                id="personal-data",
                sections=("routes", "permissions", "upstreams", "products"),
                tagged="personal_data",
            ),
            ApprovalRule(id="trust", sections=("issuers", "plans")),
        )
    )
    assert [r.tags for r in document.routes] == [("personal_data",), ()]
    assert document_from_raw(base()).governance == GovernanceSpec()


def test_bad_rules_are_refused_with_exact_paths() -> None:
    raw = base(
        {"id": "a", "sections": ["routes", "issuers"], "tagged": "personal_data"},
        {"id": "a", "sections": ["permissions"], "tagged": "personel_data"},
        {"id": "b", "sections": []},
        {"id": "c", "sections": ["roots"]},
        {"sections": ["routes"], "approvers": 2},
    )
    raw["routes"][1]["tags"] = ["Personal Data"]
    assert issues(raw) == [
        "$.governance.approvals[0].sections[1]: issuers carry no tags, so a rule with tagged:"
        " personal_data can never protect them; put them in a rule without tagged (a tag reaches"
        " routes, products, permissions and upstreams)",
        "$.governance.approvals[1].id: duplicate approval rule id 'a' (first defined at"
        " $.governance.approvals[0])",
        "$.governance.approvals[1].tagged: no route or product is tagged 'personel_data', so this"
        " rule protects nothing (a misspelt tag?)",
        "$.governance.approvals[2].sections: [] should be non-empty",
        "$.governance.approvals[3].sections[0]: 'roots' is not one of ['routes', 'upstreams',"
        " 'products', 'permissions', 'issuers', 'plans', 'adapters', 'purposes', 'consumers',"
        " 'governance']",
        "$.governance.approvals[4]: missing required field 'id'",
        "$.governance.approvals[4].approvers: unknown field 'approvers'",
        "$.routes[1].tags[0]: 'Personal Data' does not match '^[a-z][a-z0-9_-]*$'",
    ]


# --- what is protected ----------------------------------------------------------------------


def test_without_rules_nothing_needs_an_approval() -> None:
    before = base()
    after = changed(before, lambda d: d["routes"][0].update(upstream="echo"))
    assert protected_changes(before, after) == ()
    # The first version is the bootstrap, rules or not.
    assert protected_changes(None, after) == ()
    assert protected_changes(None, base(PERSONAL, TRUST)) == ()


CASES: list[tuple[str, Any, list[str]]] = [
    (
        "a tagged route changes",
        lambda d: d["routes"][0].update(prefix="/people/"),
        ["routes/records (changed) by personal-data"],
    ),
    ("an untagged route changes", lambda d: d["routes"][1].update(prefix="/e/"), []),
    (
        "a tagged route is removed (and its permission with it)",
        lambda d: (d["routes"].pop(0), d["permissions"].pop(0)),
        [
            "permissions/records.read (removed) by personal-data",
            "routes/records (removed) by personal-data",
        ],
    ),
    (
        "a new route is tagged",
        lambda d: d["routes"].append(
            {"id": "more", "path": "/more/{id}", "upstream": "echo", "tags": ["personal_data"]}
        ),
        ["routes/more (added) by personal-data"],
    ),
    (
        "the tag is taken off a route",
        lambda d: d["routes"][0].pop("tags"),
        ["routes/records (changed) by personal-data"],
    ),
    (
        "the permission covering personal data changes",
        lambda d: d["permissions"][0]["rules"][0]["subjects"].update(kinds=["person", "client"]),
        ["permissions/records.read (changed) by personal-data"],
    ),
    (
        "another permission starts covering personal data",
        lambda d: d["permissions"][1]["routes"].append("records"),
        ["permissions/echo.use (changed) by personal-data"],
    ),
    ("an unrelated permission changes", lambda d: d["permissions"][1].update(description="x"), []),
    (
        "the upstream of personal data moves",
        lambda d: d["upstreams"][0]["targets"][0].update(url="http://10.0.0.9:80"),
        ["upstreams/registry (changed) by personal-data"],
    ),
    ("another upstream moves", lambda d: d["upstreams"][1].update(max_concurrent=9), []),
    (
        "an issuer is added",
        lambda d: d["issuers"].append({**ISSUER, "id": "x", "issuer": "https://x.example"}),
        ["issuers/x (added) by trust"],
    ),
    (
        "a plan is added",
        lambda d: d["plans"].insert(0, {"id": "gold", "title": "Gold"}),
        ["plans/gold (added) by trust"],
    ),
    (
        "the rules themselves change",
        lambda d: d["governance"]["approvals"].pop(),
        ["governance/* (changed) by governance"],
    ),
    (
        "the rules are removed together with a protected change",
        lambda d: (d.pop("governance"), d["issuers"].clear()),
        ["governance/* (removed) by governance", "issuers/idp (removed) by trust"],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_protected_changes(edit: Any, expected: list[str]) -> None:
    before = base(PERSONAL, TRUST)
    assert items(before, changed(before, edit)) == expected


def test_a_product_tag_reaches_its_routes_permissions_and_upstreams() -> None:
    before = base(PERSONAL)
    before["routes"][0].pop("tags")
    before["routes"][0].update(product="registry", version=1)
    before["products"] = [
        {"id": "registry", "version": 1, "title": "Registry", "tags": ["personal_data"]}
    ]
    before["permissions"].append(
        {"id": "registry.all", "products": ["registry"], "rules": [{"id": "a", "effect": "allow"}]}
    )
    after = changed(
        before,
        lambda d: (
            d["routes"][0].update(upstream="echo"),
            d["products"][0].update(title="Civil registry"),
            d["permissions"][2].update(description="all of it"),
        ),
    )
    assert items(before, after) == [
        "permissions/registry.all (changed) by personal-data",
        "products/registry@v1 (changed) by personal-data",
        "routes/records (changed) by personal-data",
    ]


def test_adding_rules_needs_an_approval_and_they_apply_at_once() -> None:
    before = base()
    after = changed(
        before,
        lambda d: (
            d.update(governance={"approvals": [TRUST]}),
            d["issuers"].clear(),
        ),
    )
    assert items(before, after) == [
        "governance/* (added) by governance",
        "issuers/idp (removed) by trust",
    ]


def test_an_untagged_rule_protects_the_order_too() -> None:
    before = base({"id": "routing", "sections": ["routes"]})
    after = changed(before, lambda d: d["routes"].reverse())
    assert protected_changes(before, after) == (
        ProtectedChange(section="routes", id="*", change="reordered", rules=("routing",)),
    )
    assert protected_changes(before, after)[0].as_json() == {
        "section": "routes",
        "id": "*",
        "change": "reordered",
        "rules": ["routing"],
    }


def test_the_rules_of_both_sides_apply_and_each_item_names_every_rule() -> None:
    everything = {"id": "everything", "sections": ["routes"]}
    before = base(PERSONAL)
    after = changed(
        before,
        lambda d: (
            d["governance"]["approvals"].append(everything),
            d["routes"][0].update(prefix="/r/"),
            d["routes"][1].update(prefix="/e/"),
        ),
    )
    assert items(before, after) == [
        "governance/* (changed) by governance",
        "routes/echo (changed) by everything",
        "routes/records (changed) by personal-data,everything",
    ]
