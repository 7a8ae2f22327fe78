"""Permission decisions: table-driven, properties (deny overrides, default deny), operators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.auth.principal import ANONYMOUS
from hub.policy.conditions import ConditionError, compile_condition
from hub.policy.context import RequestContext
from hub.policy.model import ConditionSpec
from tests.policy_support import decide, principal, snapshot

RECORD = "/api/est/e-7/records/42"

VENDOR_POLICY: dict[str, Any] = {
    "id": "est.records",
    "routes": ["records"],
    "rules": [
        {
            "id": "no-deletes-by-vendors",
            "effect": "deny",
            "subjects": {"kinds": ["client", "api_key"]},
            "resources": {"methods": ["DELETE"]},
        },
        {
            "id": "own-establishment",
            "effect": "allow",
            "subjects": {"kinds": ["person", "client"], "scopes": ["est.read"]},
            "conditions": [
                {"attr": "principal.establishment", "op": "eq", "ref": "path.establishment_id"}
            ],
        },
        {
            "id": "vendor-masked",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "clients": ["acme"], "scopes": ["est.read"]},
            "obligations": {"mask": [{"field": "$.person.national_id", "keep_last": 4}]},
        },
    ],
}


@pytest.fixture(scope="module")
def snap() -> Any:
    return snapshot([VENDOR_POLICY])


@pytest.mark.parametrize(
    ("who", "method", "allowed", "rule"),
    [
        # own establishment: allowed by the first allow rule
        (
            principal("person", scopes=["est.read"], establishment="e-7"),
            "GET",
            True,
            "own-establishment",
        ),
        # another establishment's person: no rule allows it -> default deny
        (principal("person", scopes=["est.read"], establishment="e-8"), "GET", False, None),
        # a person without an establishment never equals the path parameter
        (principal("person", scopes=["est.read"]), "GET", False, None),
        # missing scope -> default deny
        (principal("person", establishment="e-7"), "GET", False, None),
        # vendor acme: allowed with masking
        (principal("client", scopes=["est.read"]), "GET", True, "vendor-masked"),
        # another vendor client
        (principal("client", scopes=["est.read"], client_id="other"), "GET", False, None),
        # deny overrides every allow: acme may not delete
        (principal("client", scopes=["est.read"]), "DELETE", False, "no-deletes-by-vendors"),
        # an API key is neither person nor client here
        (principal("api_key", scopes=["est.read"]), "GET", False, None),
        (ANONYMOUS, "GET", False, None),
    ],
)
def test_decisions_table(snap: Any, who: Any, method: str, allowed: bool, rule: str | None) -> None:
    decision = decide(snap, who, method, RECORD)
    assert decision is not None
    assert decision.allowed is allowed
    assert decision.rule == rule
    assert decision.permission == "est.records"


def test_a_route_no_permission_covers_is_not_enforced(snap: Any) -> None:
    assert decide(snap, ANONYMOUS, "GET", "/api/open/x") is None


def test_obligations_of_every_matching_allow_rule_apply(snap: Any) -> None:
    # acme's person-less client token with an establishment matches both allow rules: the first
    # decides, the second's mask still applies (the stricter union).
    who = principal("client", scopes=["est.read"], establishment="e-7")
    decision = decide(snap, who, "GET", RECORD)
    assert decision is not None
    assert decision.rule == "own-establishment"
    assert decision.obligations.describe()["mask"] == ["$.person.national_id (keep last 4)"]


def test_products_cover_all_their_routes() -> None:
    snap = snapshot([{"id": "p", "products": ["est"], "rules": [{"id": "r", "effect": "deny"}]}])
    assert set(snap.policies) == {"records"}


def test_every_covering_permission_must_allow() -> None:
    allow_all = {"id": "a", "routes": ["records"], "rules": [{"id": "any", "effect": "allow"}]}
    vendors = {
        "id": "b",
        "routes": ["records"],
        "rules": [{"id": "v", "effect": "allow", "subjects": {"kinds": ["client"]}}],
    }
    snap = snapshot([allow_all, vendors])
    person = decide(snap, principal("person"), "GET", RECORD)
    assert person is not None
    assert (person.allowed, person.permission) == (False, "b")
    client = decide(snap, principal("client"), "GET", RECORD)
    assert client is not None
    assert client.allowed


def test_rules_restricted_to_routes_apply_only_there() -> None:
    permission = {
        "id": "p",
        "routes": ["records", "open"],
        "rules": [{"id": "only-open", "effect": "allow", "resources": {"routes": ["open"]}}],
    }
    snap = snapshot([permission])
    assert decide(snap, ANONYMOUS, "GET", "/api/open/x").allowed  # type: ignore[union-attr]
    assert not decide(snap, ANONYMOUS, "GET", RECORD).allowed  # type: ignore[union-attr]


def test_get_rules_cover_head() -> None:
    permission = {
        "id": "p",
        "routes": ["open"],
        "rules": [{"id": "reads", "effect": "allow", "resources": {"methods": ["GET"]}}],
    }
    snap = snapshot([permission])
    assert decide(snap, ANONYMOUS, "HEAD", "/api/open/x").allowed  # type: ignore[union-attr]
    assert not decide(snap, ANONYMOUS, "POST", "/api/open/x").allowed  # type: ignore[union-attr]


# --- properties ------------------------------------------------------------------------------

KINDS = st.sampled_from(["client", "person", "api_key", "anonymous"])
SCOPES = st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3)
METHODS = st.sampled_from(["GET", "POST", "DELETE"])


@st.composite
def rules(draw: st.DrawFn, effect: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f"r{draw(st.integers(0, 10_000))}",
        "effect": effect or draw(st.sampled_from(["allow", "deny"])),
    }
    subjects: dict[str, Any] = {}
    if draw(st.booleans()):
        subjects["kinds"] = draw(st.lists(KINDS, unique=True, min_size=1))
    if draw(st.booleans()):
        subjects["scopes"] = draw(SCOPES)
    if subjects:
        rule["subjects"] = subjects
    if draw(st.booleans()):
        rule["resources"] = {"methods": draw(st.lists(METHODS, unique=True, min_size=1))}
    return rule


def _unique_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "id": f"r{n}"} for n, item in enumerate(items)]


@st.composite
def requests(draw: st.DrawFn) -> tuple[Any, str]:
    kind = draw(KINDS)
    return principal(kind, scopes=draw(SCOPES)), draw(METHODS)


@settings(max_examples=150, deadline=None)
@given(base=st.lists(rules(), max_size=5), extra=rules(effect="deny"), request=requests())
def test_adding_a_deny_never_turns_a_deny_into_an_allow(
    base: list[dict[str, Any]], extra: dict[str, Any], request: tuple[Any, str]
) -> None:
    who, method = request
    before = decide(snapshot([_policy(base)]), who, method, RECORD)
    after = decide(snapshot([_policy([*base, extra])]), who, method, RECORD)
    assert before is not None
    assert after is not None
    if not before.allowed:
        assert not after.allowed
    # And a matching deny always wins, whatever the allow rules say.
    only_deny = decide(snapshot([_policy([extra])]), who, method, RECORD)
    assert only_deny is not None
    if only_deny.rule is not None:
        assert not after.allowed


@settings(max_examples=150, deadline=None)
@given(base=st.lists(rules(effect="deny"), max_size=5), request=requests())
def test_without_an_allow_rule_everything_is_denied(
    base: list[dict[str, Any]], request: tuple[Any, str]
) -> None:
    who, method = request
    decision = decide(snapshot([_policy(base)]), who, method, RECORD)
    assert decision is not None
    assert not decision.allowed
    assert decision.permission == "p"


@settings(max_examples=150, deadline=None)
@given(base=st.lists(rules(), max_size=5), request=requests())
def test_allowed_iff_an_allow_matches_and_no_deny_does(
    base: list[dict[str, Any]], request: tuple[Any, str]
) -> None:
    who, method = request
    decision = decide(snapshot([_policy(base)]), who, method, RECORD)
    assert decision is not None

    def matches(rule: dict[str, Any]) -> bool:
        subjects = rule.get("subjects", {})
        methods = rule.get("resources", {}).get("methods")
        return (
            ("kinds" not in subjects or who.kind in subjects["kinds"])
            and set(subjects.get("scopes", [])) <= who.scopes
            and (methods is None or method in methods)
        )

    rules_ = _unique_ids(base)
    denied = any(r["effect"] == "deny" and matches(r) for r in rules_)
    allowed = any(r["effect"] == "allow" and matches(r) for r in rules_)
    assert decision.allowed is (allowed and not denied)


def _policy(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": "p", "routes": ["records"], "rules": _unique_ids(items) or [_never()]}


def _never() -> dict[str, Any]:
    return {"id": "never", "effect": "deny", "subjects": {"clients": ["nobody"]}}


# --- condition operators ---------------------------------------------------------------------

# Wednesday 2025-01-15 09:30 UTC (12:30 in Riyadh)
WEDNESDAY_0930 = datetime(2025, 1, 15, 9, 30, tzinfo=UTC).timestamp()


def context(**overrides: Any) -> RequestContext:
    fields: dict[str, Any] = {
        "principal": principal(
            "person",
            scopes=["est.read", "est.write"],
            establishment="e-7",
            subject="p-1",
            roles=["hr"],
        ),
        "method": "GET",
        "path": "/api/est/e-7/records/42",
        "params": {"establishment_id": "e-7", "id": "42"},
        "query_string": b"view=full&tag=a&tag=b",
        "headers": [(b"x-channel", b"portal")],
        "client_ip": "10.1.2.3",
        "now": WEDNESDAY_0930,
    }
    fields.update(overrides)
    return RequestContext(**fields)


def holds(attr: str, op: str, value: Any = None, ref: str | None = None, **ctx: Any) -> bool:
    if isinstance(value, list):
        value = tuple(value)
    check = compile_condition(
        ConditionSpec(attr=attr, op=op, value=value, ref=ref, tz=ctx.pop("tz", "UTC"))
    )
    return check.test(context(**ctx))


@pytest.mark.parametrize(
    ("attr", "op", "value", "ref", "expected"),
    [
        ("principal.establishment", "eq", None, "path.establishment_id", True),
        ("principal.establishment", "eq", "e-8", None, False),
        ("principal.establishment", "ne", None, "path.establishment_id", False),
        ("principal.establishment", "ne", "e-8", None, True),
        ("principal.acr", "eq", None, "query.missing", False),  # two absent values are not equal
        ("principal.acr", "ne", "x", None, True),  # a negation catches the missing attribute
        ("request.method", "in", ["GET", "HEAD"], None, True),
        ("request.method", "not_in", ["GET", "HEAD"], None, False),
        ("query.view", "eq", "full", None, True),
        ("query.tag", "eq", "a", None, True),  # the first value
        ("query.absent", "in", ["x"], None, False),
        ("query.absent", "not_in", ["x"], None, True),
        ("header.X-Channel", "eq", "portal", None, True),
        ("request.path", "prefix", "/api/est/", None, True),
        ("request.path", "prefix", "/api/other/", None, False),
        ("principal.establishment", "exists", None, None, True),
        ("principal.client_id", "exists", None, None, True),
        ("principal.acr", "exists", None, None, False),
        ("principal.scopes", "contains", "est.write", None, True),
        ("principal.scopes", "contains", "est.admin", None, False),
        ("principal.scopes", "not_contains", "est.admin", None, True),
        ("principal.roles", "contains", "hr", None, True),
        ("principal.scopes", "contains", None, "query.view", False),
        ("principal.scopes", "exists", None, None, True),
        ("request.client_ip", "cidr", ["10.0.0.0/8"], None, True),
        ("request.client_ip", "cidr", ["192.168.0.0/16", "::1/128"], None, False),
        ("request.client_ip", "not_cidr", ["192.168.0.0/16"], None, True),
        ("request.client_ip", "eq", "10.1.2.3", None, True),
        ("request.time", "before", "10:00", None, True),
        ("request.time", "before", "09:30", None, False),  # half-open
        ("request.time", "after", "09:30", None, True),
        ("request.time", "between", ["08:00", "17:00"], None, True),
        ("request.time", "between", ["22:00", "06:00"], None, False),  # wraps midnight
        ("request.weekday", "eq", "wed", None, True),
        ("request.weekday", "in", ["sat", "sun"], None, False),
        ("request.weekday", "not_in", ["sat", "sun"], None, True),
    ],
)
def test_condition_operators(
    attr: str, op: str, value: Any, ref: str | None, expected: bool
) -> None:
    assert holds(attr, op, value, ref) is expected


def test_times_are_read_in_the_conditions_zone() -> None:
    assert holds("request.time", "after", "12:00", tz="Asia/Riyadh")
    assert not holds("request.time", "after", "12:00")
    # 23:30 UTC on Wednesday is Thursday in Riyadh
    late = datetime(2025, 1, 15, 23, 30, tzinfo=UTC).timestamp()
    assert holds("request.weekday", "eq", "thu", tz="Asia/Riyadh", now=late)
    assert holds("request.time", "between", ["22:00", "06:00"], now=late)


def test_a_client_ip_that_is_not_an_address_is_outside_every_network() -> None:
    assert not holds("request.client_ip", "cidr", ["0.0.0.0/0"], client_ip="unix-socket")
    assert holds("request.client_ip", "not_cidr", ["0.0.0.0/0"], client_ip="")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ConditionSpec(attr="principal.shoe_size", op="eq", value="9"), "unknown attribute"),
        (ConditionSpec(attr="principal.scopes", op="eq", value="a"), "does not apply"),
        (ConditionSpec(attr="request.time", op="before", value="25:00"), "not a time of day"),
        (ConditionSpec(attr="request.time", op="between", value=("10:00",)), "two times"),
        (ConditionSpec(attr="request.weekday", op="eq", value="funday"), "not a weekday"),
        (
            ConditionSpec(attr="request.client_ip", op="cidr", value=("10.0.0.0/33",)),
            "not a network",
        ),
        (
            ConditionSpec(attr="request.time", op="after", value="10:00", tz="Mars/Olympus"),
            "time zone",
        ),
        (
            ConditionSpec(attr="request.method", op="in", value="GET", ref="request.path"),
            "not both",
        ),
        (ConditionSpec(attr="request.method", op="eq"), "needs a 'value'"),
        (ConditionSpec(attr="request.method", op="exists", value="x"), "neither"),
        (ConditionSpec(attr="request.method", op="eq", value=("a", "b")), "one value"),
        (ConditionSpec(attr="request.method", op="in", ref="request.path"), "takes a 'value'"),
        (ConditionSpec(attr="request.time", op="before", ref="request.path"), "takes a 'value'"),
    ],
)
def test_bad_conditions_are_refused(spec: ConditionSpec, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        compile_condition(spec)
