"""Loading policies/*.yaml: files, YAML, merging, contracts, the typed model and the checksum."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hub.config.loader import (
    config_checksum,
    default_schema_path,
    document_from_raw,
    load_directory,
)
from hub.config.model import (
    AuthSpec,
    BreakerSpec,
    HealthCheckSpec,
    PlanRateSpec,
    PlanSpec,
    ProductSpec,
    RateLimitSpec,
    RetrySpec,
    RouteSpec,
    SubscriptionSpec,
    TargetSpec,
    TimeoutSpec,
    UpstreamSpec,
)
from hub.errors import ConfigError
from hub.policy.operations import Operation
from hub.settings import PROJECT_ROOT

FIXTURE_CONTRACTS = Path(__file__).parent / "data" / "config" / "contracts"

UPSTREAMS = """\
upstreams:
  - id: echo
    targets:
      - url: http://127.0.0.1:9101
"""


def write(directory: Path, **files: str) -> Path:
    """Create ``directory`` with files named by keyword: ``routes_yaml`` is ``routes.yaml``."""
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        stem, suffix = name.rsplit("_", 1)
        (directory / f"{stem}.{suffix}").write_text(text)
    return directory


def load_issues(directory: Path, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_directory(directory, **kwargs)
    return info.value.issues


# --- the demo configuration ------------------------------------------------------------------


def test_demo_policies_load_cleanly() -> None:
    document = load_directory(PROJECT_ROOT / "policies")

    # services append their own blocks after these (tests/test_permits_policies.py, ...)
    echo, visas = document.upstreams[:2]
    assert "notifications" in {u.id for u in document.upstreams}
    assert (echo.id, visas.id) == ("echo", "visas")
    assert "contracts" in [u.id for u in document.upstreams]  # employment contracts (issue 7)
    assert echo.balancing == "round_robin"
    assert [t.url for t in echo.targets] == ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
    assert echo.health_check is not None
    assert echo.health_check.path == "/healthz"
    assert echo.health_check.interval == 2.0

    items, secure, api, me, sensitive = document.routes[:5]
    assert (items.id, items.path, items.methods) == (
        "echo-items",
        "/api/echo/v1/items/{id}",
        ("GET",),
    )
    assert (api.id, api.prefix, api.strip_prefix) == ("echo-api", "/api/echo/v1/", False)
    assert (secure.id, secure.prefix) == ("echo-secure", "/api/echo/v1/secure/")
    assert secure.auth == AuthSpec(methods=("jwt", "api_key"), scopes=("echo.read",))
    assert (me.prefix, me.auth) == ("/api/echo/v1/me/", AuthSpec(methods=("jwt", "session")))
    assert (sensitive.prefix, sensitive.auth) == (
        "/api/echo/v1/sensitive/",
        AuthSpec(methods=("jwt", "session"), acr="urn:hub:acr:mfa"),
    )
    assert {(r.product, r.version, r.upstream) for r in document.routes[:5]} == {
        ("echo", 1, "echo")
    }
    assert {r.adapter.name for r in document.routes[5:8] if r.adapter} == {
        "civil-registry",
        "commercial-registry",
        "education-registry",
    }
    (establishments,) = [r for r in document.routes if r.id == "echo-establishments"]
    assert establishments.path == "/api/echo/v1/establishments/{establishment_id}/records"
    assert {r.payments.operation for r in document.routes if r.payments} == {
        "create",
        "get",
        "capture",
        "cancel",
        "refund",
        "list_refunds",
        "webhook",
    }
    assert [(r.order, r.source) for r in document.routes] == [
        (index, "policies/routes.yaml") for index in range(len(document.routes))
    ]
    assert len(document.routes) >= 28  # 23, then the notifications block

    assert [p.id for p in document.products][:3] == ["echo", "payments", "visas"]
    assert "contracts" in [p.id for p in document.products]  # employment contracts (issue 7)
    assert "notifications" in {p.id for p in document.products}
    assert len(document.routes) >= 23  # the services of later issues add theirs

    assert [p.id for p in document.products][:3] == ["echo", "payments", "visas"]
    assert document.products[0] == (
        ProductSpec(
            id="echo",
            version=1,
            title="Echo demo API",
            description="Answers any request with JSON describing it. Used for demos, smoke"
            " tests and load tests of the hub itself.",
            contract="products/echo/v1",
            operations=(
                Operation(id="getItem", method="GET", path="/api/echo/v1/items/{id}"),
                Operation(id="listItems", method="GET", path="/api/echo/v1/items"),
                Operation(id="createItem", method="POST", path="/api/echo/v1/items"),
                Operation(
                    id="listEstablishmentRecords",
                    method="GET",
                    path="/api/echo/v1/establishments/{establishment_id}/records",
                ),
            ),
            subscription=SubscriptionSpec(
                required=True, plans=("sandbox", "free", "standard", "premium")
            ),
        )
    )
    assert [p.id for p in document.plans] == ["sandbox", "free", "standard", "premium"]
    assert document.extensions == {"consumers": []}
    assert [p.id for p in document.permissions][:6] == [
        "echo.secure.read",
        "echo.establishment.read",
        "payments.refund",
        "visas.establishments",
        "visas.me",
        "visas.review",
    ]
    permission_ids = {p.id for p in document.permissions}
    assert {  # issue 7: occupations, certificates, compliance
        "occupations.establishments",
        "occupations.me",
        "occupations.review",
        "certificates.me",
        "certificates.establishments",
        "compliance.establishments",
    } <= permission_ids
    assert {"contracts.parties", "contracts.me"} <= permission_ids  # employment contracts
    assert {"notify.providers", "notifications.me"} <= permission_ids  # notifications
    assert [r.id for r in document.routes if "personal_data" in r.tags][:9] == [
        "echo-me",
        "echo-sensitive",
        "registry-persons",
        "registry-establishments",
        "registry-certificates",
        "visas-establishments",
        "visas-applications",
        "visas-me",
        "visas-review",
    ]
    personal = {r.id for r in document.routes if "personal_data" in r.tags}
    assert {  # issue 7: occupations, certificates (compliance standings carry no personal data)
        "occupations-establishments",
        "occupations-requests",
        "occupations-me",
        "occupations-review",
        "certificates-me",
        "certificates-establishments",
    } <= personal
    assert {"contracts-establishments", "contracts-contracts", "contracts-me"} <= personal
    notify = {"notify-sms", "notify-email", "notify-sms-status", "notify-email-status"}
    assert notify | {"notifications-me"} <= personal  # notifications
    assert [rule.id for rule in document.governance.approvals] == [
        "personal-data",
        "trust-and-money",
        "registrar-access",
    ]
    assert set(document.raw) == {
        "adapters",
        "purposes",
        "upstreams",
        "routes",
        "products",
        "permissions",
        "plans",
        "consumers",
        "governance",
    }


def test_demo_contract_lists_its_operations() -> None:
    # The demo contract passes the same checks as any product's (load_directory above), and
    # names the operations its routes serve.
    folder = PROJECT_ROOT / "contracts" / "products" / "echo" / "v1"
    text = (folder / "api.yaml").read_text()
    assert "path: /api/echo/v1/items/{id}" in text
    for name in ("item.schema.json", "echo-response.schema.json"):
        assert json.loads((folder / name).read_text())["$schema"].endswith("/2020-12/schema")


# --- the typed model -------------------------------------------------------------------------


def test_json_maps_to_the_model(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        upstreams_yaml="""\
upstreams:
  - id: registry
    balancing: least_outstanding
    targets:
      - {url: "https://registry.example.gov/base", weight: 3}
    health_check: {interval: 2}
    breaker: {open_seconds: 4}
    keepalive_seconds: 15
""",
        routes_yaml="""\
routes:
  - id: lookup
    path: /api/people/{id}
    hosts: [API.Example.gov, "*.example.gov", api.example.gov]
    methods: [get, Post, GET]
    headers: {X-Channel: portal, Accept-Language: en}
    upstream: registry
    timeouts: {connect: 1}
    retries: {on_status: [503]}
    rate_limit: {rate: 10, burst: 5, key: route}
    max_body_bytes: 1024
""",
    )
    document = load_directory(policies)

    assert document.upstreams == (
        UpstreamSpec(
            id="registry",
            balancing="least_outstanding",
            targets=(TargetSpec(url="https://registry.example.gov/base", weight=3),),
            health_check=HealthCheckSpec(interval=2.0),
            breaker=BreakerSpec(open_seconds=4.0),
            keepalive_seconds=15.0,
        ),
    )
    assert document.routes == (
        RouteSpec(
            id="lookup",
            path="/api/people/{id}",
            hosts=("api.example.gov", "*.example.gov"),
            methods=("GET", "POST"),
            headers=(("accept-language", "en"), ("x-channel", "portal")),
            upstream="registry",
            timeouts=TimeoutSpec(connect=1.0),
            retries=RetrySpec(on_status=(503,)),
            rate_limit=RateLimitSpec(rate=10, burst=5, key="route"),
            max_body_bytes=1024,
            source="policies/routes.yaml",
        ),
    )
    assert isinstance(document.upstreams[0].keepalive_seconds, float)
    assert document.products == ()
    assert document.permissions == ()
    assert document.plans == ()
    assert document.extensions == {"consumers": []}


def test_rate_limit_fallback_maps_to_the_model_and_unknown_modes_are_refused() -> None:
    def raw(fallback: str) -> dict[str, Any]:
        limit = {"rate": 1, "fallback": fallback}
        return {
            "upstreams": [{"id": "u", "targets": [{"url": "http://127.0.0.1:9101"}]}],
            "routes": [{"id": "r", "prefix": "/r/", "upstream": "u", "rate_limit": limit}],
        }

    route = document_from_raw(raw("closed")).routes[0]
    assert route.rate_limit == RateLimitSpec(rate=1, fallback="closed")
    with pytest.raises(ConfigError) as caught:
        document_from_raw(raw("sometimes"))
    assert any("fallback" in issue for issue in caught.value.issues), caught.value.issues


def test_the_reserved_consumers_section_becomes_an_extension() -> None:
    document = document_from_raw({"consumers": [{"id": "acme", "note": "kept as JSON"}]})
    assert document.extensions == {"consumers": [{"id": "acme", "note": "kept as JSON"}]}


def _schema_defaults(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        name: prop["default"]
        for name, prop in definition["properties"].items()
        if "default" in prop
    }


@pytest.mark.parametrize(
    ("definition", "spec"),
    [
        ("upstream", UpstreamSpec),
        ("healthCheck", HealthCheckSpec),
        ("breaker", BreakerSpec),
        ("target", TargetSpec),
        ("route", RouteSpec),
        ("timeouts", TimeoutSpec),
        ("retries", RetrySpec),
        ("rateLimit", RateLimitSpec),
        ("product", ProductSpec),
        ("plan", PlanSpec),
        ("planRate", PlanRateSpec),
        ("subscription", SubscriptionSpec),
    ],
)
def test_schema_defaults_match_the_model(definition: str, spec: type[Any]) -> None:
    schema = json.loads(default_schema_path().read_text())
    model = {
        f.name: f.default
        for f in dataclasses.fields(spec)
        if f.default is not dataclasses.MISSING and f.default is not None
    }
    documented = _schema_defaults(schema["$defs"][definition])
    # The schema speaks JSON: a tuple default is a list there.
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in model.items()}
    if "headers" in as_json:  # pairs in the model, a mapping in JSON
        as_json["headers"] = dict(as_json["headers"])
    as_json.pop("order", None)
    as_json.pop("source", None)
    as_json.pop("operations", None)  # read from the product's contract, not from the document
    if "overrides" in as_json:  # pairs in the model, a mapping in JSON
        as_json["overrides"] = dict(as_json["overrides"])
    assert documented == as_json


# --- files and YAML --------------------------------------------------------------------------


def test_sections_merge_across_files_and_extensions_are_read(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        a_yaml=UPSTREAMS,
        b_yml="routes:\n  - {id: r, upstream: echo, prefix: /r/}\n",
        empty_yaml="# nothing here yet\n",
        notes_txt="routes: not yaml, ignored\n",
    )
    (policies / ".#b.yaml").write_text("editor lock file: [")
    document = load_directory(policies)
    assert [u.id for u in document.upstreams] == ["echo"]
    assert [r.id for r in document.routes] == ["r"]
    assert set(document.raw) == {"upstreams", "routes"}


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        routes_yaml="routes:\n  - id: a\n    path: /x\n  upstream: [\n",
    )
    assert load_issues(policies) == [
        "policies/routes.yaml: line 4, column 3: invalid YAML: while parsing a block"
        " collection, expected <block end>, but found '?'"
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    policies = write(tmp_path / "policies", routes_yaml="- id: a\n- id: b\n")
    assert load_issues(policies) == [
        "policies/routes.yaml: $: the top level must be a mapping of sections, not a list"
    ]


def test_a_section_lives_in_one_file(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        a_yaml=UPSTREAMS,
        b_yaml="upstreams: []\nroutes: []\n",
    )
    assert load_issues(policies) == [
        "policies/b.yaml: $.upstreams: section 'upstreams' is already defined in policies/a.yaml"
    ]


def test_unknown_section_names_its_file(tmp_path: Path) -> None:
    policies = write(tmp_path / "policies", a_yaml=UPSTREAMS, extra_yaml="gateway: {}\n")
    assert load_issues(policies) == [
        "policies/extra.yaml: $.gateway: unknown section 'gateway' (expected one of: adapters,"
        " consumers, governance, issuers, permissions, plans, products, purposes, routes,"
        " upstreams)"
    ]


def test_repeated_key_is_refused_instead_of_silently_winning(tmp_path: Path) -> None:
    policies = write(tmp_path / "policies", routes_yaml="routes: []\nplans: []\nroutes: []\n")
    assert load_issues(policies) == [
        "policies/routes.yaml: line 3: key 'routes' appears twice in the same mapping"
    ]


def test_yaml_only_values_are_refused(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        plans_yaml="plans:\n  - id: gold\n    blob: !!binary aGVsbG8=\n    ratio: .nan\n",
    )
    assert load_issues(policies) == [
        "policies/plans.yaml: $.plans[0].blob: binary data (!!binary) is not JSON data",
        "policies/plans.yaml: $.plans[0].ratio: nan is not a finite number",
    ]


def test_only_true_and_false_are_booleans(tmp_path: Path) -> None:
    # YAML 1.1 would read `yes` as true; here it stays text, so the schema catches it.
    policies = write(
        tmp_path / "policies",
        a_yaml=UPSTREAMS,
        routes_yaml="routes:\n  - {id: r, upstream: echo, prefix: /r/, strip_prefix: yes}\n",
    )
    assert load_issues(policies) == [
        "policies/routes.yaml: $.routes[0].strip_prefix: expected boolean, got string 'yes'"
    ]


def test_dates_stay_text(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies", consumers_yaml="consumers:\n  - {id: gold, since: 2024-01-31}\n"
    )
    document = load_directory(policies)
    assert document.extensions["consumers"] == [{"id": "gold", "since": "2024-01-31"}]


def test_every_broken_file_is_reported(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        a_yaml="upstreams: [\n",
        b_yaml="just text\n",
        c_yaml=UPSTREAMS,
    )
    assert load_issues(policies) == [
        "policies/a.yaml: line 2, column 1: invalid YAML: while parsing a flow node, expected"
        " the node content, but found '<stream end>'",
        "policies/b.yaml: $: the top level must be a mapping of sections, not text",
    ]


def test_missing_directory(tmp_path: Path) -> None:
    assert load_issues(tmp_path / "nowhere") == [
        f"nowhere: {tmp_path / 'nowhere'} is not a directory"
    ]


def test_directory_without_yaml(tmp_path: Path) -> None:
    policies = write(tmp_path / "policies", readme_txt="hello\n")
    assert load_issues(policies) == [f"policies: no *.yaml or *.yml files in {policies}"]


def test_issues_from_several_files_are_grouped_by_file(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        upstreams_yaml=UPSTREAMS + "    balancing: fastest\n",
        routes_yaml="routes:\n  - {id: r, upstream: visa, prefix: /r/}\n",
    )
    assert load_issues(policies) == [
        "policies/routes.yaml: $.routes[0].upstream: 'visa' is not a defined upstream",
        "policies/upstreams.yaml: $.upstreams[0].balancing: 'fastest' is not one of"
        " ['round_robin', 'least_outstanding']",
    ]


# --- document_from_raw and the checksum ------------------------------------------------------


def test_document_from_raw_has_no_file_prefix() -> None:
    raw = {"upstreams": [], "routes": [{"id": "r", "upstream": "visa", "prefix": "/r/"}]}
    with pytest.raises(ConfigError) as info:
        document_from_raw(raw)
    assert info.value.issues == ["$.routes[0].upstream: 'visa' is not a defined upstream"]
    assert info.value.code == "invalid_configuration"


def test_document_from_raw_refuses_keys_json_cannot_hold() -> None:
    with pytest.raises(ConfigError) as info:
        document_from_raw({"consumers": [{"id": "gold", None: 1}]})
    assert info.value.issues == ["$.consumers[0]: key null is not text (quote it)"]


def test_checksum_is_sha256_of_canonical_json() -> None:
    document = load_directory(PROJECT_ROOT / "policies")
    canonical = json.dumps(document.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert document.checksum == hashlib.sha256(canonical.encode()).hexdigest()
    assert document.checksum == config_checksum(document.raw)


def test_checksum_ignores_key_order_and_survives_a_round_trip() -> None:
    document = load_directory(PROJECT_ROOT / "policies")
    reordered = json.loads(json.dumps(document.raw))
    reordered = {k: reordered[k] for k in reversed(list(reordered))}
    reordered["upstreams"][0] = dict(reversed(list(reordered["upstreams"][0].items())))
    again = document_from_raw(reordered)
    assert again.checksum == document.checksum
    # Read back without files, routes carry no source label; otherwise nothing changes.
    assert again.routes == tuple(dataclasses.replace(r, source="") for r in document.routes)
    assert (again.upstreams, again.products) == (document.upstreams, document.products)


def test_checksum_changes_with_content() -> None:
    assert config_checksum({"plans": [{"id": "a"}]}) != config_checksum({"plans": [{"id": "b"}]})


# --- product contracts -----------------------------------------------------------------------


def contract_issues(name: str) -> list[str]:
    raw = {"products": [{"id": "p", "version": 1, "title": "P", "contract": name}]}
    with pytest.raises(ConfigError) as info:
        document_from_raw(raw, contracts_dir=FIXTURE_CONTRACTS)
    return info.value.issues


def test_a_valid_contract_with_unquoted_status_codes() -> None:
    raw = {"products": [{"id": "p", "version": 1, "title": "P", "contract": "products/good/v1"}]}
    document = document_from_raw(raw, contracts_dir=FIXTURE_CONTRACTS)
    assert document.products[0].contract == "products/good/v1"


def test_contract_folder_must_exist() -> None:
    assert contract_issues("products/missing/v1") == [
        "$.products[0].contract: contract folder 'contracts/products/missing/v1' does not exist"
    ]


def test_contract_folder_needs_api_yaml() -> None:
    assert contract_issues("products/noapi/v1") == [
        "$.products[0].contract: 'contracts/products/noapi/v1/api.yaml' does not exist"
    ]


def test_contract_folder_cannot_leave_contracts() -> None:
    assert contract_issues("../policies") == [
        "$.products[0].contract: '../policies' does not match '^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$'"
    ]
    assert contract_issues("products/../..") == [
        "$.products[0].contract: 'products/../..' must name a folder inside contracts/ without"
        " '.' or '..' segments"
    ]


def test_contract_yaml_syntax_error() -> None:
    assert contract_issues("products/badyaml/v1") == [
        "$.products[0].contract: contracts/products/badyaml/v1/api.yaml: line 3, column 1:"
        " invalid YAML: while parsing a flow node, expected the node content, but found"
        " '<stream end>'"
    ]


def test_contract_schema_and_operation_violations() -> None:
    prefix = "$.products[0].contract: contracts/products/broken/v1"
    assert contract_issues("products/broken/v1") == [
        f"{prefix}/api.yaml: $.colour: unknown field 'colour'",
        f"{prefix}/api.yaml: $.operations[0].method: 'FETCH' is not one of"
        " ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']",
        f"{prefix}/api.yaml: $.operations[0].path: parameter 'id' appears more than once",
        f"{prefix}/api.yaml: $.operations[0].responses: {{}} should be non-empty",
        f"{prefix}/api.yaml: $.operations[1].operation_id: duplicate operation_id 'getThing'"
        " (first defined at $.operations[0])",
        f"{prefix}/api.yaml: $.operations[1].responses: key '2xx' does not match"
        " '^[1-5][0-9][0-9]$'",
        f"{prefix}/api.yaml: $.operations[2]: GET /api/broken/v1/things is already defined at"
        " $.operations[1]",
        f"{prefix}/api.yaml: $.operations[2].responses['200']: '../secret.json' does not match"
        " '^[A-Za-z0-9_-][A-Za-z0-9_.-]*\\\\.json$'",
        f"{prefix}/thing.schema.json: does not exist (named at $.operations[1].responses['2xx'])",
    ]


def test_contract_schema_files_must_be_json_schemas() -> None:
    prefix = "$.products[0].contract: contracts/products/badfiles/v1"
    assert contract_issues("products/badfiles/v1") == [
        f"{prefix}/missing.schema.json: does not exist (named at $.operations[0].request)",
        f"{prefix}/not-json.schema.json: is not readable JSON: Expecting value: line 2 column 1"
        " (char 10) (named at $.operations[0].responses['200'])",
        f"{prefix}/invalid.schema.json: is not a valid JSON Schema: 'colour' is not valid under"
        " any of the given schemas (named at $.operations[0].responses['422'])",
    ]


def test_contract_issue_in_a_policy_file_names_the_products_file(tmp_path: Path) -> None:
    policies = write(
        tmp_path / "policies",
        products_yaml="products:\n  - {id: p, version: 1, title: P, contract: products/none}\n",
    )
    assert load_issues(policies, contracts_dir=FIXTURE_CONTRACTS) == [
        "policies/products.yaml: $.products[0].contract: contract folder"
        " 'contracts/products/none' does not exist"
    ]


# --- the schema file itself ------------------------------------------------------------------


def test_schema_file_is_a_draft_2020_12_schema() -> None:
    schema = json.loads(default_schema_path().read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert default_schema_path() == PROJECT_ROOT / "contracts/config/hub-config.schema.json"


def test_unreadable_schema_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "hub-config.schema.json"
    bad.write_text('{"type": "colour"}')
    with pytest.raises(ConfigError) as info:
        document_from_raw({}, schema_path=bad)
    assert info.value.issues == [
        f"{bad.resolve()}: not a valid JSON Schema: 'colour' is not valid under any of the given"
        " schemas"
    ]
    with pytest.raises(ConfigError) as info:
        document_from_raw({}, schema_path=tmp_path / "absent.json")
    assert info.value.issues == [
        f"{tmp_path / 'absent.json'}: cannot read the schema: No such file or directory"
    ]
