"""Plans and products' subscription blocks: the model, the compiled book, and every finding."""

from __future__ import annotations

from typing import Any

import pytest

from hub.config.diff import diff_documents
from hub.config.loader import document_from_raw, load_directory
from hub.config.model import PlanOverrideSpec, PlanRateSpec, PlanSpec, QuotaSpec
from hub.errors import ConfigError
from hub.plans.book import Terms, compile_plans
from hub.ratelimit.base import Limit
from hub.settings import PROJECT_ROOT


def plan(ident: str = "free", **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": ident, "title": ident.title()}
    item.update(fields)
    return item


def product(ident: str = "echo", version: int = 1, **subscription: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": ident, "version": version, "title": ident}
    if subscription:
        item["subscription"] = subscription
    return item


def doc(plans: list[Any], products: list[Any]) -> dict[str, Any]:
    """Plans and products, and a route of the echo product when it is declared."""
    route: dict[str, Any] = {"id": "r", "prefix": "/r/", "upstream": "echo"}
    if any(p.get("id") == "echo" for p in products):
        route.update(product="echo", version=1)
    return {
        "upstreams": [{"id": "echo", "targets": [{"url": "http://127.0.0.1:9101"}]}],
        "routes": [route],
        "products": products,
        "plans": plans,
    }


def issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        document_from_raw(raw)
    return info.value.issues


# --- the model and the book ------------------------------------------------------------------


def test_plans_load_into_typed_frozen_specs() -> None:
    raw = doc(
        [
            plan(
                "gold",
                description="for big vendors",
                rate={"rate": 10, "burst": 5},
                quota={"daily": 100, "monthly": 1000},
                overrides={"echo": {"quota": {"daily": 50}, "rate": {"rate": 1, "period": 2}}},
            )
        ],
        [product(required=True, plans=["gold"], approval=True)],
    )
    (gold,) = document_from_raw(raw).plans
    assert gold == PlanSpec(
        id="gold",
        title="Gold",
        description="for big vendors",
        rate=PlanRateSpec(rate=10, burst=5),
        quota=QuotaSpec(daily=100, monthly=1000),
        overrides=(
            (
                "echo",
                PlanOverrideSpec(rate=PlanRateSpec(rate=1, period=2.0), quota=QuotaSpec(daily=50)),
            ),
        ),
    )
    assert isinstance(gold.overrides[0][1].rate.period, float)  # type: ignore[union-attr]
    # the override replaces the rate and the daily quota; the monthly one is inherited
    assert gold.terms("echo") == (
        PlanRateSpec(rate=1, period=2.0),
        QuotaSpec(daily=50, monthly=1000),
    )
    assert gold.terms("other") == (
        PlanRateSpec(rate=10, burst=5),
        QuotaSpec(daily=100, monthly=1000),
    )


def test_the_book_gives_each_routes_product_rules_and_terms() -> None:
    raw = doc(
        [
            plan("free", rate={"rate": 5, "period": 1, "burst": 2}, quota={"daily": 10}),
            plan("big", quota={"monthly": 9}, overrides={"echo": {"quota": {"daily": 3}}}),
        ],
        [product(required=True, plans=["free", "big"], approval=True)],
    )
    raw["routes"].append({"id": "plain", "prefix": "/plain/", "upstream": "echo"})
    book = compile_plans(document_from_raw(raw))
    rules = book.for_route("r")
    assert rules is not None
    assert (rules.product, rules.required, rules.approval) == ("echo", True, True)
    assert rules.offered == ("free", "big")
    assert rules.terms["free"] == Terms(
        plan="free", rate=Limit(rate=5, period=1.0, burst=2), daily=10, monthly=None
    )
    assert rules.terms["big"] == Terms(plan="big", rate=None, daily=3, monthly=9)
    assert book.for_route("plain") is None  # a route of no product
    assert book.plans == ("free", "big")


def test_products_without_a_subscription_block_are_not_in_the_book() -> None:
    book = compile_plans(document_from_raw(doc([plan()], [product()])))
    assert book.for_route("r") is None
    assert dict(book.products) == {}


def test_the_demo_plans_load_and_the_echo_product_requires_a_subscription() -> None:
    document = load_directory(PROJECT_ROOT / "policies")
    book = compile_plans(document)
    rules = book.for_route("echo-secure")
    assert rules is not None
    assert rules.required
    assert not rules.approval
    assert rules.offered == ("sandbox", "free", "standard", "premium")
    assert rules.terms["sandbox"] == Terms(
        plan="sandbox", rate=Limit(rate=2, period=1.0, burst=4), daily=200, monthly=2000
    )
    assert rules.terms["premium"].monthly == 20_000_000  # the echo override
    assert rules.terms["premium"].daily is None


def test_plans_are_diffed_by_id_like_other_sections() -> None:
    before = doc([plan("free", quota={"daily": 10}), plan("old")], [])
    after = doc([plan("free", quota={"daily": 20}), plan("new")], [])
    (section,) = diff_documents(before, after).sections
    assert section.section == "plans"
    assert (section.added, section.removed) == (("new",), ("old",))
    (changed,) = section.changed
    assert changed.id == "free"
    assert [(f.path, f.old, f.new) for f in changed.fields] == [("$.quota.daily", 10, 20)]


def test_old_documents_with_an_empty_plans_placeholder_still_load() -> None:
    # versions stored before plans existed carry `plans: []` and `consumers: []`
    document = document_from_raw({**doc([], []), "consumers": []})
    assert document.plans == ()


# --- schema findings -------------------------------------------------------------------------


def test_plan_schema_findings_have_exact_paths() -> None:
    raw = doc(
        [
            {"id": "Gold", "title": "x"},
            plan("p", rate={"rate": 0}),
            plan("q", quota={}),
            plan("r", quota={"daily": 1, "weekly": 3}),
            plan("s", overrides={"Bad Name": {"quota": {"daily": 1}}}),
            plan("t", rate={"rate": 1, "key": "ip"}),
        ],
        [],
    )
    assert issues(raw) == [
        "$.plans[0].id: 'Gold' does not match '^[a-z][a-z0-9_-]*$'",
        "$.plans[1].rate.rate: 0 is less than the minimum of 1",
        "$.plans[2].quota: {} should be non-empty",
        "$.plans[3].quota.weekly: unknown field 'weekly'",
        "$.plans[4].overrides: key 'Bad Name' does not match '^[a-z][a-z0-9_-]*$'",
        "$.plans[4].overrides['Bad Name']: product 'Bad Name' is not declared in products",
        "$.plans[5].rate.key: unknown field 'key'",
    ]


def test_a_plan_needs_a_title() -> None:
    found = issues(doc([{"id": "free"}], []))
    assert len(found) == 1
    assert found[0].startswith("$.plans[0]:")
    assert "title" in found[0]


def test_subscription_schema_findings_have_exact_paths() -> None:
    raw = doc([plan()], [product(required="yes", plans="free", approve=True)])
    assert issues(raw) == [
        "$.products[0].subscription.approve: unknown field 'approve' (did you mean 'approval'?)",
        "$.products[0].subscription.plans: expected array, got string 'free'",
        "$.products[0].subscription.required: expected boolean, got string 'yes'",
    ]


# --- semantic findings -----------------------------------------------------------------------


def test_duplicate_plan_ids_are_refused() -> None:
    assert issues(doc([plan("free"), plan("free")], [])) == [
        "$.plans[1].id: duplicate plan id 'free' (first defined at $.plans[0])"
    ]


def test_a_product_offering_an_unknown_or_repeated_plan_is_refused() -> None:
    raw = doc([plan("free")], [product(plans=["free", "gold", "free"])])
    assert issues(raw) == [
        "$.products[0].subscription.plans[1]: 'gold' is not a defined plan",
        "$.products[0].subscription.plans[2]: plan 'free' is listed twice",
    ]


def test_a_required_subscription_needs_a_plan_to_subscribe_under() -> None:
    assert issues(doc([plan()], [product(required=True)])) == [
        "$.products[0].subscription.plans: the product requires a subscription but offers"
        " no plan to subscribe under"
    ]


def test_default_plan_must_exist_and_cannot_go_with_a_required_subscription() -> None:
    assert issues(doc([plan()], [product(default_plan="gold")])) == [
        "$.products[0].subscription.default_plan: 'gold' is not a defined plan"
    ]
    assert issues(doc([plan()], [product(required=True, plans=["free"], default_plan="free")])) == [
        "$.products[0].subscription.default_plan: a product that requires a subscription has"
        " no callers without one, so its default_plan can never apply"
    ]


def test_a_default_plan_alone_is_valid() -> None:
    document = document_from_raw(doc([plan()], [product(default_plan="free")]))
    rules = compile_plans(document).for_route("r")
    assert rules is not None
    assert (rules.required, rules.offered, rules.default_plan) == (False, (), "free")


def test_versions_of_one_product_must_agree_on_the_subscription() -> None:
    raw = doc(
        [plan("free"), plan("gold")],
        [product(plans=["free"]), product(version=2, plans=["free", "gold"])],
    )
    assert issues(raw) == [
        "$.products[1].subscription: differs from the subscription of product 'echo' at"
        " $.products[0]: a subscription covers every version of its product, so they must agree"
    ]
    same = doc([plan("free")], [product(plans=["free"]), product(version=2, plans=["free"])])
    assert document_from_raw(same).products[1].subscription is not None


def test_overrides_name_declared_products_that_use_the_plan() -> None:
    raw = doc(
        [
            plan("free", overrides={"visas": {"quota": {"daily": 1}}}),
            plan("gold", overrides={"echo": {"quota": {"daily": 1}}}),
        ],
        [product(plans=["free"])],
    )
    assert issues(raw) == [
        "$.plans[0].overrides.visas: product 'visas' is not declared in products",
        "$.plans[1].overrides.echo: product 'echo' neither offers plan 'gold' nor has it as"
        " default_plan, so this override can never apply",
    ]


def test_a_daily_quota_above_the_monthly_one_is_refused_also_through_an_override() -> None:
    raw = doc(
        [
            plan("free", quota={"daily": 100, "monthly": 10}),
            plan("gold", quota={"monthly": 50}, overrides={"echo": {"quota": {"daily": 60}}}),
        ],
        [product(plans=["free", "gold"])],
    )
    assert issues(raw) == [
        "$.plans[0].quota: the daily quota (100) exceeds the monthly quota (10),"
        " so it can never be reached",
        "$.plans[1].overrides.echo.quota: the daily quota (60) exceeds the monthly quota (50),"
        " so it can never be reached",
    ]


def test_findings_in_files_name_the_file(tmp_path: Any) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "upstreams.yaml").write_text(
        "upstreams:\n  - {id: echo, targets: [{url: 'http://127.0.0.1:9101'}]}\n"
    )
    (folder / "routes.yaml").write_text("routes:\n  - {id: r, prefix: /r/, upstream: echo}\n")
    (folder / "products.yaml").write_text(
        "products:\n  - {id: echo, version: 1, title: E, subscription: {plans: [gold]}}\n"
    )
    (folder / "plans.yaml").write_text("plans:\n  - {id: free, title: Free}\n")
    with pytest.raises(ConfigError) as info:
        load_directory(folder)
    assert info.value.issues == [
        "policies/products.yaml: $.products[0].subscription.plans[0]: 'gold' is not a defined plan"
    ]
