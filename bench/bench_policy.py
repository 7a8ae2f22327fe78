"""Micro-benchmark of permission policy evaluation: ns per request, and obligations per body.

Run: ``python bench/bench_policy.py`` (a few seconds). The policy is shaped like a real one: a
deny rule, an allow rule with an attribute comparison (principal.establishment == path
parameter) and a CIDR condition, and a vendor allow rule with a mask obligation. Each decision
includes building the request's context, as the gateway does. Each figure is the best of
several timed rounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from hub.auth.principal import Principal
from hub.config.loader import document_from_raw
from hub.policy.compile import compile_policies
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
HEADERS = [(b"host", b"api.example.gov"), (b"accept", b"application/json")]


def principal(kind: str, establishment: str | None = None) -> Principal:
    return Principal(
        subject="s",
        kind=kind,  # type: ignore[arg-type]
        issuer="http://hub",
        client_id="acme",
        scopes=frozenset({"est.read"}),
        establishment=establishment,
    )


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
    cases = {
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
    }
    print("policy decision, context included (ns per request)")
    for name, fn in cases.items():
        print(f"  {name:<44} {best_ns(fn, 100_000):8.0f}")

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
        print(f"  {label:<44} {ns:8.0f}")


if __name__ == "__main__":
    main()
