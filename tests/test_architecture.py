"""The dependency rules of the layout, checked by walking every import of the code base."""

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
    "sqlalchemy": ("hub/db/",),
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
        if owners is not None and not rel.startswith(owners):
            broken.append(f"{name} may only be imported by {', '.join(owners)}")
    assert not broken, f"{rel}: " + "; ".join(broken)


@pytest.mark.parametrize(("rel", "tree"), MODULES, ids=[rel for rel, _ in MODULES])
def test_only_settings_read_the_environment(rel: str, tree: ast.Module) -> None:
    if rel == "hub/settings.py":
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
