"""The demo policies' work permits block: upstream, routes, personal-data tags, product."""

from __future__ import annotations

from hub.config.loader import load_directory
from hub.settings import PROJECT_ROOT


def test_the_work_permits_block_loads() -> None:
    document = load_directory(PROJECT_ROOT / "policies")
    (upstream,) = [u for u in document.upstreams if u.id == "permits"]
    assert [t.url for t in upstream.targets] == ["http://127.0.0.1:9530"]
    routes = {r.id: r for r in document.routes if r.id.startswith("permits-")}
    assert set(routes) == {
        "permits-public-reasons",
        "permits-establishments",
        "permits-permits",
        "permits-transfers",
        "permits-me",
    }
    assert {r.upstream for r in routes.values()} == {"permits"}
    assert {r.product for r in routes.values()} == {"work_permits"}
    tagged = {r.id for r in routes.values() if "personal_data" in r.tags}
    assert tagged == set(routes) - {"permits-public-reasons"}
    assert (
        routes["permits-public-reasons"].auth is None
        or not routes["permits-public-reasons"].auth.methods
    )
    covered = {p.id: p for p in document.permissions if p.id.startswith("permits.")}
    assert set(covered) == {"permits.establishments", "permits.transfers", "permits.me"}
    (product,) = [p for p in document.products if p.id == "work_permits"]
    assert product.contract == "products/work_permits/v1"
    operations = {o.id for o in product.operations}
    assert {"issuePermit", "renewPermit", "consentToPermitTransfer", "cancelPermit"} <= operations
    assert all(o.path.startswith("/api/permits/v1/") for o in product.operations)
