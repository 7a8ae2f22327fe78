"""The dependency rules of the layout, checked by walking every import of the code base.

Domain services (``services/<name>/`` with a ``store.py``) have rules of their own, below the
general ones: see README "Services".
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "adapters", "services")

# A foreign client library may be imported only by the modules that own it: everything else goes
# through our interfaces, so its exceptions cannot escape (STYLE.md).
OWNERS: dict[str, tuple[str, ...]] = {
    "aiohttp": ("hub/proxy/", "hub/upstream/"),
    "redis": (
        "hub/backends/notifier/redis.py",
        "hub/backends/ephemeral/redis.py",
        "hub/ratelimit/redis.py",
    ),
    "aio_pika": ("hub/backends/events/amqp.py",),
    "aiormq": ("hub/backends/events/amqp.py",),
    "sqlalchemy": (
        "hub/db/",
        "hub/events/",
        "hub/backends/events/database.py",
        "hub/servicekit/paging.py",
        "hub/servicekit/store.py",
    ),
    "alembic": ("hub/db/",),
    "asyncpg": ("hub/db/",),
    "uvicorn": ("hub/cli/", "services/", "adapters/sandbox/"),
}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


MODULES = list(_modules())


def test_the_walk_sees_the_code_base() -> None:
    names = {rel for rel, _ in MODULES}
    assert "hub/gateway.py" in names
    assert "hub/db/config_store.py" in names
    assert "services/echo/app.py" in names


@pytest.mark.parametrize(("rel", "tree"), MODULES, ids=[rel for rel, _ in MODULES])
def test_dependencies_point_inward(rel: str, tree: ast.Module) -> None:
    broken: list[str] = []
    own_service = rel.split("/")[1] if rel.startswith("services/") else None
    for name in _imports(tree):
        top = name.split(".")[0]
        if rel.startswith("hub/") and top == "services":
            broken.append(f"the hub imports a service: {name}")
        if rel.startswith("adapters/") and top == "services":
            broken.append(f"an adapter imports a service: {name}")
        if own_service and top == "services":
            parts = name.split(".")
            if len(parts) > 1 and parts[1] != own_service:
                broken.append(f"service {own_service} imports another service: {name}")
        owners = OWNERS.get(top)
        if owners is not None and own_service in DOMAIN_SERVICES and top in SERVICE_OWNERS:
            continue  # a domain service's own modules are checked by the service rules
        if owners is not None and not rel.startswith(owners):
            broken.append(f"{name} may only be imported by {', '.join(owners)}")
    assert not broken, f"{rel}: " + "; ".join(broken)


@pytest.mark.parametrize(("rel", "tree"), MODULES, ids=[rel for rel, _ in MODULES])
def test_only_settings_read_the_environment(rel: str, tree: ast.Module) -> None:
    if rel in {"hub/settings.py", "hub/servicekit/settings.py"} or _is_service_settings(rel):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
            base = node.value
            assert not (isinstance(base, ast.Name) and base.id == "os"), (
                f"{rel}:{node.lineno} reads os.{node.attr}; use hub.settings.Settings"
            )


# Private modules and Alembic's revision scripts (which Alembic, not we, imports) are exempt.
PUBLIC = [
    (rel, tree)
    for rel, tree in MODULES
    if not Path(rel).name.startswith("_") and "/migrations/" not in rel
]


@pytest.mark.parametrize(("rel", "tree"), PUBLIC, ids=[rel for rel, _ in PUBLIC])
def test_public_modules_declare_all(rel: str, tree: ast.Module) -> None:
    defines = any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
        for node in tree.body
    )
    declares = any(
        isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        for node in tree.body
    )
    assert declares or not defines, f"{rel} defines public names but no __all__"


# ---- domain services ----------------------------------------------------------------------

SERVICES_DIR = ROOT / "services"
#: Services with state of their own (a store.py); echo and portal are demo upstreams.
DOMAIN_SERVICES = sorted(
    path.parent.name for path in SERVICES_DIR.glob("*/store.py") if path.parent.is_dir()
)
#: The files every domain service has, each one concept (README "Services").
SERVICE_FILES = ("app.py", "domain.py", "store.py", "settings.py", "__main__.py")
#: Which of a service's modules may import a foreign library it owns.
SERVICE_OWNERS: dict[str, tuple[str, ...]] = {
    "sqlalchemy": ("store.py",),  # its tables; workflow code gets connections from the store
    "litestar": ("app.py",),  # HTTP stays in app.py
}
#: The hub modules a service may build on: the service kit (the hub's SDK for services), the
#: internal token, errors and problems, the outbox, event bus and consumers, the database
#: engine. Never the hub's own tables or logic.
SERVICE_MAY_USE = (
    "hub.servicekit",
    "hub.errors",
    "hub.problems",
    "hub.auth.internal",
    "hub.auth.hub_keys",
    "hub.auth.principal",
    "hub.auth.verify",
    "hub.events",
    "hub.backends.events",
    "hub.backends.factory",
    "hub.db.engine",
    "hub.db.models",
)
SERVICE_MODULES = [
    (rel, tree)
    for rel, tree in MODULES
    if rel.startswith("services/") and rel.split("/")[1] in DOMAIN_SERVICES
]


def _is_service_settings(rel: str) -> bool:
    parts = rel.split("/")
    return len(parts) == 3 and parts[0] == "services" and parts[2] == "settings.py"


def test_there_is_a_domain_service() -> None:
    assert "visas" in DOMAIN_SERVICES


@pytest.mark.parametrize("service", DOMAIN_SERVICES)
def test_a_service_has_the_layout(service: str) -> None:
    folder = SERVICES_DIR / service
    missing = [name for name in SERVICE_FILES if not (folder / name).is_file()]
    assert not missing, f"services/{service} lacks {missing}"
    contract = ROOT / "contracts" / "products" / service / "v1" / "api.yaml"
    assert contract.is_file(), f"services/{service} has no contract at {contract.relative_to(ROOT)}"


@pytest.mark.parametrize(("rel", "tree"), SERVICE_MODULES, ids=[rel for rel, _ in SERVICE_MODULES])
def test_a_service_goes_out_only_through_the_hub(rel: str, tree: ast.Module) -> None:
    name = Path(rel).name
    broken: list[str] = []
    for imported in _imports(tree):
        top = imported.split(".")[0]
        if top == "adapters":
            broken.append(f"a service calls adapters only through the hub: {imported}")
        if top == "hub" and not imported.startswith(SERVICE_MAY_USE):
            broken.append(f"a service may not use the hub's internals: {imported}")
        allowed = SERVICE_OWNERS.get(top)
        if allowed is not None and name not in allowed:
            broken.append(f"{imported} may only be imported by a service's {', '.join(allowed)}")
        if top == "httpx":  # the hub is its only way out: the kit's gateway client
            broken.append("a service calls the hub only through hub.servicekit.gateway")
        for library in ("aio_pika", "aiormq", "redis", "aiohttp", "asyncpg", "alembic"):
            if top == library:
                broken.append(f"a service reaches {library} only through the hub's back-ends")
    assert not broken, f"{rel}: " + "; ".join(broken)


@pytest.mark.parametrize(("rel", "tree"), SERVICE_MODULES, ids=[rel for rel, _ in SERVICE_MODULES])
def test_a_service_domain_is_pure(rel: str, tree: ast.Module) -> None:
    if Path(rel).name != "domain.py":
        return
    impure = {"asyncio", "httpx", "sqlalchemy", "litestar", "os", "socket", "time"}
    used = {name.split(".")[0] for name in _imports(tree)} & impure
    assert not used, f"{rel} is the pure rules; it imports {sorted(used)}"


# ---- the service kit ----------------------------------------------------------------------

KIT_MODULES = [(rel, tree) for rel, tree in MODULES if rel.startswith("hub/servicekit/")]
#: The kit's modules that may reach httpx: the client of the hub's gateway, and the runtime
#: that makes the client (a service's only way out; no httpx exception or response escapes).
KIT_HTTPX = ("hub/servicekit/gateway.py", "hub/servicekit/runtime.py")


def test_the_walk_sees_the_kit() -> None:
    assert {"hub/servicekit/gateway.py", "hub/servicekit/settings.py"} <= {
        r for r, _ in KIT_MODULES
    }


@pytest.mark.parametrize(("rel", "tree"), KIT_MODULES, ids=[rel for rel, _ in KIT_MODULES])
def test_the_kit_reaches_httpx_only_in_its_gateway(rel: str, tree: ast.Module) -> None:
    tops = {name.split(".")[0] for name in _imports(tree)}
    assert rel in KIT_HTTPX or "httpx" not in tops, f"{rel} imports httpx"


@pytest.mark.parametrize(("rel", "tree"), KIT_MODULES, ids=[rel for rel, _ in KIT_MODULES])
def test_the_kit_builds_only_on_what_services_may_use(rel: str, tree: ast.Module) -> None:
    """The kit is the services' SDK: it may not smuggle them the hub's internals."""
    hub = [name for name in _imports(tree) if name.split(".")[0] == "hub"]
    broken = [name for name in hub if not name.startswith(SERVICE_MAY_USE)]
    assert not broken, f"{rel} builds on the hub's internals: {broken}"
