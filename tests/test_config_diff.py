"""The configuration diff (per section and item id) and the publish safety checks, as pure code."""

from __future__ import annotations

import pytest

from hub.config.diff import diff_documents, render_text
from hub.config.safety import check_publishable, deny_all_issues, empty_issue
from hub.errors import ConfigError, EmptyConfiguration

ROUTE_A = {"id": "a", "prefix": "/a/", "upstream": "u"}
ROUTE_B = {"id": "b", "path": "/b/{id}", "methods": ["GET"], "upstream": "u"}
UPSTREAM = {"id": "u", "targets": [{"url": "http://127.0.0.1:1"}]}


def test_moving_an_item_is_a_reorder_not_a_change() -> None:
    diff = diff_documents({"routes": [ROUTE_A, ROUTE_B]}, {"routes": [ROUTE_B, ROUTE_A]})
    [section] = diff.sections
    assert (section.added, section.removed, section.changed, section.reordered) == (
        (),
        (),
        (),
        True,
    )
    assert diff.summary() == {
        "routes": {"added": [], "removed": [], "changed": [], "reordered": True}
    }
    assert diff.lines() == ["routes: order changed"]


def test_nested_fields_are_named_by_json_path() -> None:
    changed = {**UPSTREAM, "targets": [{"url": "http://127.0.0.1:2", "weight": 3}]}
    diff = diff_documents({"upstreams": [UPSTREAM]}, {"upstreams": [changed]})
    [item] = diff.sections[0].changed
    assert [(f.path, f.change, f.old, f.new) for f in item.fields] == [
        ("$.targets[0].url", "changed", "http://127.0.0.1:1", "http://127.0.0.1:2"),
        ("$.targets[0].weight", "added", None, 3),
    ]


def test_products_are_keyed_by_id_and_version_and_odd_sections_compared_whole() -> None:
    old = {"products": [{"id": "p", "version": 1}], "plans": {"x": 1}}
    new = {"products": [{"id": "p", "version": 2}], "plans": {"x": 2}}
    assert diff_documents(old, new).summary() == {
        "plans": {"added": [], "removed": [], "changed": ["*"]},
        "products": {"added": ["p@v2"], "removed": ["p@v1"], "changed": []},
    }
    assert diff_documents(old, old).empty
    assert render_text(old, old) == ""


def test_emptying_is_refused_only_when_the_active_version_has_routes() -> None:
    active = {"upstreams": [UPSTREAM], "routes": [ROUTE_A, ROUTE_B]}
    issue = empty_issue({"upstreams": [UPSTREAM]}, active, 7)
    assert issue is not None
    assert str(issue) == (
        "$.routes: the document has no routes: publishing it would remove all 2 route(s) of"
        " the active version 7; send allow_empty: true to publish it anyway"
    )
    assert empty_issue({"routes": [ROUTE_A]}, active, 7) is None
    assert empty_issue({}, {"routes": []}, 7) is None
    assert empty_issue({}, None, None) is None
    with pytest.raises(EmptyConfiguration) as caught:
        check_publishable({}, active=active, active_version=7, allow_empty=False)
    assert caught.value.code == "empty_configuration"
    check_publishable({}, active=active, active_version=7, allow_empty=True)


@pytest.mark.parametrize(
    ("rules", "paths"),
    [
        ([{"id": "d", "effect": "deny"}], [("permissions", 0, "rules")]),
        (
            [{"id": "ok", "effect": "allow"}, {"id": "d", "effect": "deny", "subjects": {}}],
            [("permissions", 0, "rules", 1)],
        ),
        (
            [
                {"id": "ok", "effect": "allow"},
                {
                    "id": "d",
                    "effect": "deny",
                    "subjects": {"kinds": ["client", "person", "api_key", "anonymous"]},
                    "resources": {
                        "routes": ["a", "b"],
                        "methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                    },
                },
            ],
            [("permissions", 0, "rules", 1)],  # everyone, every route, GET covers HEAD
        ),
        (
            [
                {"id": "ok", "effect": "allow"},
                {
                    "id": "d",
                    "effect": "deny",
                    "resources": {"methods": ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
                },
            ],
            [],  # reads of either route still get through
        ),
        (
            [
                {"id": "ok", "effect": "allow"},
                {"id": "d", "effect": "deny", "resources": {"methods": ["GET"]}},
            ],
            [],  # b accepts only GET (and HEAD), but a accepts everything
        ),
        (
            [
                {"id": "ok", "effect": "allow"},
                {
                    "id": "d",
                    "effect": "deny",
                    "conditions": [{"attr": "request.method", "op": "eq", "value": "GET"}],
                },
            ],
            [],
        ),
        (
            [
                {"id": "ok", "effect": "allow"},
                {"id": "d", "effect": "deny", "subjects": {"kinds": ["api_key"]}},
            ],
            [],
        ),
    ],
)
def test_a_policy_that_denies_everything_is_found(
    rules: list[dict[str, object]], paths: list[tuple[object, ...]]
) -> None:
    raw = {
        "upstreams": [UPSTREAM],
        "routes": [ROUTE_A, ROUTE_B],
        "permissions": [{"id": "p", "routes": ["a", "b"], "rules": rules}],
    }
    assert [issue.path for issue in deny_all_issues(raw)] == paths
    if paths:
        with pytest.raises(ConfigError):
            check_publishable(raw, active=None, active_version=None, allow_empty=False)
