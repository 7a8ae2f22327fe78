"""Micro-benchmark of permission policy evaluation: ns per request, and obligations per body.

Run: ``python bench/bench_policy.py`` (a few seconds). The policy is shaped like a real one: a
deny rule, an allow rule with an attribute comparison (principal.establishment == path
parameter) and a CIDR condition, and a vendor allow rule with a mask obligation. A second
policy is shaped like an establishment's: a delegated vendor by operation, owners by
``member_of``, delegated HR officers by ``delegated_by``, on a prefix route resolving the
request's contract operation. Each decision includes building the request's context, as the
gateway does. Each figure is the best of several timed rounds; the baseline line (a decision
with no condition at all) is measured in the same run, and the others are also shown as its
multiple.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.auth.principal import Principal
from hub.config.loader import document_from_raw
from hub.policy.compile import compile_operations, compile_policies
from hub.policy.context import RequestContext
from hub.policy.obligations import NONE

PERMISSION = {
    "id": "est.records.read",
    "routes": ["records"],
    "rules": [
        {
            "id": "no-writes-by-keys",
            "effect": "deny",
            "subjects": {"kinds": ["api_key"]},
            "resources": {"methods": ["POST", "PUT", "PATCH", "DELETE"]},
        },
        {
            "id": "own-establishment",
            "effect": "allow",
            "subjects": {"kinds": ["person"], "scopes": ["est.read"]},
            "conditions": [
                {"attr": "principal.establishment", "op": "eq", "ref": "path.establishment_id"},
                {"attr": "request.client_ip", "op": "cidr", "value": ["10.0.0.0/8"]},
            ],
        },
        {
            "id": "vendors-masked",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["est.read"]},
            "obligations": {
                "mask": [{"field": "$.people[*].national_id", "keep_last": 4}],
                "drop": ["$.people[*].phone"],
            },
        },
    ],
}
DOCUMENT = document_from_raw(
    {
        "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
        "routes": [
            {"id": "records", "path": "/api/est/{establishment_id}/records", "upstream": "svc"}
        ],
        "permissions": [PERMISSION],
    }
)
POLICY = compile_policies(DOCUMENT.permissions, DOCUMENT.routes)["records"]
PARAMS = {"establishment_id": "e-7"}

EST = "est_0000000000000007"
ESTABLISHMENT_PERMISSION = {
    "id": "est.visas",
    "routes": ["visas"],
    "rules": [
        {
            "id": "delegated-vendors",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["visas.apply"]},
            "resources": {"operations": ["applyForVisa"]},
            "conditions": [
                {"attr": "principal.establishment", "op": "eq", "ref": "path.establishment_id"}
            ],
        },
        {
            "id": "owners",
            "effect": "allow",
            "subjects": {"kinds": ["person"]},
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
            "id": "delegated-officers",
            "effect": "allow",
            "subjects": {"kinds": ["person"]},
            "conditions": [
                {
                    "attr": "principal.delegated_scopes",
                    "op": "delegated_by",
                    "ref": "path.establishment_id",
                    "value": ["visas.apply"],
                }
            ],
        },
    ],
}
# The decisions run on a template route (two operations); the lookups also on a prefix route
# serving eight, the case where the request's path picks the operation.
OPERATIONS = [
    ("applyForVisa", "POST", "/api/est/{establishment_id}/visas"),
    ("listVisas", "GET", "/api/est/{establishment_id}/visas"),
    ("getVisa", "GET", "/api/visas/v1/{id}"),
    ("cancelVisa", "DELETE", "/api/visas/v1/{id}"),
    ("payFee", "POST", "/api/visas/v1/{id}/fee"),
    ("getFee", "GET", "/api/visas/v1/{id}/fee"),
    ("listMine", "GET", "/api/visas/v1/mine"),
    ("stats", "GET", "/api/visas/v1/stats"),
]


def _visa_document(contracts: Path) -> Any:
    folder = contracts / "products" / "visas" / "v1"
    folder.mkdir(parents=True)
    (folder / "any.schema.json").write_text(
        '{"$schema": "https://json-schema.org/draft/2020-12/schema"}'
    )
    operations = [
        {"operation_id": i, "method": m, "path": p, "responses": {"200": "any.schema.json"}}
        for i, m, p in OPERATIONS
    ]
    (folder / "api.yaml").write_text(json.dumps({"title": "Visas", "operations": operations}))
    return document_from_raw(
        {
            "upstreams": [{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
            "routes": [
                {
                    "id": "visas",
                    "product": "visas",
                    "version": 1,
                    "path": "/api/est/{establishment_id}/visas",
                    "methods": ["GET", "POST"],
                    "upstream": "svc",
                },
                {
                    "id": "visa-api",
                    "product": "visas",
                    "version": 1,
                    "prefix": "/api/visas/v1/",
                    "upstream": "svc",
                },
            ],
            "products": [
                {"id": "visas", "version": 1, "title": "Visas", "contract": "products/visas/v1"}
            ],
            "permissions": [ESTABLISHMENT_PERMISSION],
        },
        contracts_dir=contracts,
    )


with tempfile.TemporaryDirectory() as _contracts:
    VISA_DOCUMENT = _visa_document(Path(_contracts))
VISA_INDEXES = compile_operations(VISA_DOCUMENT.routes, VISA_DOCUMENT.products)
VISA_POLICY = compile_policies(VISA_DOCUMENT.permissions, VISA_DOCUMENT.routes, VISA_INDEXES)[
    "visas"
]
VISA_PARAMS = {"establishment_id": EST}
HEADERS = [(b"host", b"api.example.gov"), (b"accept", b"application/json")]


def principal(
    kind: str,
    establishment: str | None = None,
    *,
    scopes: Sequence[str] = ("est.read",),
    memberships: Sequence[str] = (),
    delegated_scopes: Sequence[str] = (),
) -> Principal:
    return Principal(
        subject="s",
        kind=kind,  # type: ignore[arg-type]
        issuer="http://hub",
        client_id="acme",
        scopes=frozenset(scopes),
        establishment=establishment,
        memberships=frozenset(memberships),
        delegated_scopes=frozenset(delegated_scopes),
    )


def visa_case(
    who: Principal, method: str, path: str, expect: tuple[bool, str | None]
) -> Callable[[], object]:
    indexes = VISA_INDEXES["visas"]

    def run() -> object:
        return VISA_POLICY.decide(
            RequestContext(
                principal=who,
                method=method,
                path=path,
                params=VISA_PARAMS,
                headers=HEADERS,
                client_ip="10.1.2.3",
                operations=indexes,
            )
        )

    got = run()
    assert (got.allowed, got.rule) == expect, got  # type: ignore[attr-defined]
    return run


def decision_case(
    who: Principal, method: str, expect: tuple[bool, str | None]
) -> Callable[[], object]:
    def run() -> object:
        return POLICY.decide(
            RequestContext(
                principal=who,
                method=method,
                path="/api/est/e-7/records",
                params=PARAMS,
                query_string=b"",
                headers=HEADERS,
                client_ip="10.1.2.3",
            )
        )

    got = run()
    assert (got.allowed, got.rule) == expect, got  # type: ignore[attr-defined]
    return run


def best_ns(fn: Callable[[], object], calls: int, rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return best


def main() -> None:
    visas = f"/api/est/{EST}/visas"
    officer = principal(
        "person",
        scopes=(),
        memberships=[f"{EST}:hr_officer", "est_1:employee", "est_2:owner"],
        delegated_scopes=[f"{EST}:visas.apply", f"{EST}:visas.read", "est_2:visas.apply"],
    )
    cases = {
        "baseline: allow rule, subjects only": decision_case(
            principal("client"), "GET", (True, "vendors-masked")
        ),
        "allow, person, attr == path param + CIDR": decision_case(
            principal("person", "e-7"), "GET", (True, "own-establishment")
        ),
        "allow, vendor, with mask obligation": decision_case(
            principal("client"), "GET", (True, "vendors-masked")
        ),
        "deny rule (deny overrides)": decision_case(
            principal("api_key"), "POST", (False, "no-writes-by-keys")
        ),
        "default deny (no rule matches)": decision_case(
            principal("person", "e-8"), "GET", (False, None)
        ),
        "vendor by operation (lookup) + establishment ==": visa_case(
            principal("client", EST, scopes=["visas.apply"]),
            "POST",
            visas,
            (True, "delegated-vendors"),
        ),
        "owner: member_of, role owner": visa_case(
            principal("person", memberships=[f"{EST}:owner"]), "GET", visas, (True, "owners")
        ),
        "HR officer: member_of fails, delegated_by holds": visa_case(
            officer, "GET", visas, (True, "delegated-officers")
        ),
        "vendor for another establishment (deny)": visa_case(
            principal("client", "est_9", scopes=["visas.apply"]), "POST", visas, (False, None)
        ),
    }
    print("policy decision, context included (ns per request; x: of the baseline)")
    baseline = 0.0
    for name, fn in cases.items():
        ns = best_ns(fn, 100_000)
        baseline = baseline or ns
        print(f"  {name:<50} {ns:8.0f}  x{ns / baseline:4.1f}")
    lookups = [(VISA_INDEXES["visas"], "POST", visas)] + [
        (VISA_INDEXES["visa-api"], method, path)
        for method, path in (("GET", "/api/visas/v1/123/fee"), ("GET", "/api/visas/v1/mine"))
    ]
    for index, method, path in lookups:
        ns = best_ns(lambda i=index, m=method, p=path: i.lookup(m, p), 200_000)
        print(f"  {'operation lookup, ' + method + ' ' + path:<50} {ns:8.0f}")

    vendor = POLICY.decide(
        RequestContext(principal=principal("client"), method="GET", path="/", params=PARAMS)
    )
    obligations = vendor.obligations
    assert obligations is not NONE
    for people in (1, 10, 100):
        body = json.dumps(
            {
                "establishment": "e-7",
                "people": [
                    {"name": f"Person {n}", "national_id": f"10{n:08d}", "phone": "+966500000000"}
                    for n in range(people)
                ],
            }
        ).encode()
        ns = best_ns(lambda body=body: obligations.transform(body), 2_000 if people < 100 else 200)
        label = f"obligations, {len(body)}-byte JSON body ({people} people)"
        print(f"  {label:<50} {ns:8.0f}")


if __name__ == "__main__":
    main()
