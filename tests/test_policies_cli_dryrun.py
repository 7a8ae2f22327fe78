"""``hub policies dry-run`` and ``hub policies shadow`` against a running hub's admin API.

One real hub process (embedded back-ends, every request sampled) on a loopback port; the CLI
runs in-process with ``--url`` and ``--token``, as from an operator's machine. The tests run in
file order: traffic first, then dry-runs, then a shadow run started, read and stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from hub.cli.main import app
from hub.settings import PROJECT_ROOT
from tests.hubproc import ADMIN_TOKEN, HubProcess, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ITEMS = {
    "id": "items.read",
    "routes": ["items"],
    "rules": [{"id": "reads", "effect": "allow", "resources": {"methods": ["GET"]}}],
}


def folder(tmp: Path, upstream: UpstreamServer, *, draft: bool) -> Path:
    routes = [
        {"id": "items", "path": "/api/items/{id}", "upstream": "svc"},
        {"id": "open", "prefix": "/api/open/", "upstream": "svc"},
    ]
    permission: dict[str, Any] = {**ITEMS, "rules": list(ITEMS["rules"])}
    if draft:
        routes.insert(1, {"id": "special", "prefix": "/api/open/special/", "upstream": "svc"})
        nine = {"attr": "path.id", "op": "eq", "value": "9"}
        permission["rules"].insert(0, {"id": "no-nine", "effect": "deny", "conditions": [nine]})
    path = write_policies(
        tmp / ("draft" if draft else "active"),
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=routes,
    )
    (path / "permissions.yaml").write_text(yaml.safe_dump({"permissions": [permission]}))
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("policies-cli-dryrun")
    env = {"HUB_ACCESS_LOG": "false", "HUB_SAMPLE_RATE": "1", "HUB_SAMPLE_KEY": "k" * 32}
    with run_hub(tmp / "hub", folder(tmp, upstream, draft=False), env=env) as process:
        yield process


def hub_cli(hub: HubProcess, *args: str, token: str = ADMIN_TOKEN) -> Any:
    env = {"HUB_ADMIN_URL": hub.url, "HUB_CONTRACTS_DIR": str(PROJECT_ROOT / "contracts")}
    return CliRunner().invoke(app, ["policies", *args, "--token", token], env=env)


def drafts(hub: HubProcess) -> list[int]:
    response = httpx.get(f"{hub.url}/admin/api/config/drafts", headers=AUTH)
    return [d["id"] for d in response.json()]


def traffic(hub: HubProcess) -> None:
    with httpx.Client(base_url=hub.url) as client:
        for path in (
            "/api/items/9",
            "/api/items/9",
            "/api/items/1",
            "/api/open/special/a",
            "/api/open/b",
        ):
            assert client.get(path).status_code == 200, path


def test_dry_run_prints_what_the_folder_would_change_and_leaves_no_draft(
    hub: HubProcess, tmp_path: Path, upstream: UpstreamServer
) -> None:
    traffic(hub)
    result = hub_cli(hub, "dry-run", str(folder(tmp_path, upstream, draft=True)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("dry-run of draft ")
    assert lines[0].endswith(" revision 1 against version 1: 5 sampled request(s) replayed")
    assert lines[1:10] == [
        "  unchanged: 2",
        "  route changed: 1",
        "  auth changed: 0",
        "  decision changed: 2 (allow -> deny 2, deny -> allow 0)",
        "  limit changed: 0",
        "  by permission:",
        "    items.read: allow -> deny 2, deny -> allow 0",
        "  by route:",
        "    items: 3 replayed, 2 decision",
    ]
    assert lines[10] == "    open: 2 replayed, 1 route"
    assert lines[11] == "  examples:"
    assert lines[12].startswith("    GET /api/items/~")
    assert lines[12].endswith(" (anonymous):")
    assert lines[13] == "      items: allow (reads) -> items: deny (no-nine)"
    assert "/api/items/9" not in result.output  # the id is a pseudonym
    assert drafts(hub) == []


def test_dry_run_keep_keeps_the_draft_and_a_bad_folder_is_refused_locally(
    hub: HubProcess, tmp_path: Path, upstream: UpstreamServer
) -> None:
    result = hub_cli(hub, "dry-run", str(folder(tmp_path, upstream, draft=True)), "--keep")
    assert result.exit_code == 0, result.output
    kept = drafts(hub)
    assert result.output.splitlines()[-1] == f"draft {kept[0]} kept"
    httpx.delete(f"{hub.url}/admin/api/config/drafts/{kept[0]}", headers=AUTH)

    bad = write_policies(
        tmp_path / "bad", upstreams=[], routes=[{"id": "x", "prefix": "/x/", "upstream": "no"}]
    )
    refused = hub_cli(hub, "dry-run", str(bad))
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "bad/routes.yaml: $.routes[0].upstream: 'no' is not a defined upstream",
        "1 error(s)",
    ]
    wrong = hub_cli(hub, "dry-run", str(folder(tmp_path, upstream, draft=True)), token="wrong")
    assert wrong.exit_code == 1
    assert wrong.stderr.splitlines() == ["401 unauthorized: the admin token is not valid"]


def test_shadow_start_status_stop(
    hub: HubProcess, tmp_path: Path, upstream: UpstreamServer
) -> None:
    assert hub_cli(hub, "shadow", "status").output.splitlines() == ["no shadow run yet"]
    draft_folder = folder(tmp_path, upstream, draft=True)
    started = hub_cli(
        hub, "shadow", "start", str(draft_folder), "--minutes", "5", "--comment", "try no-nine"
    )
    assert started.exit_code == 0, started.output
    lines = started.output.splitlines()
    assert lines[0].startswith("shadow run 1: running, draft ")
    assert " revision 1 beside version 1, until " in lines[0]
    assert lines[1].startswith("  started by admin-token at ")
    assert lines[1].endswith(": try no-nine")

    again = hub_cli(
        hub, "shadow", "start", str(draft_folder), "--minutes", "5", "--comment", "twice"
    )
    assert again.exit_code == 1
    assert again.stderr.startswith("409 shadow_running: shadow run 1 ")
    assert len(drafts(hub)) == 1  # the refused start left no draft behind
    zero = hub_cli(hub, "shadow", "start", str(draft_folder), "--minutes", "0", "--comment", "x")
    assert zero.exit_code == 1
    assert zero.stderr.splitlines() == [
        "400 invalid_request: duration_seconds must be between 1 and 604800"
    ]
    assert len(drafts(hub)) == 1

    traffic(hub)
    deadline = time.monotonic() + 30  # a poll, not a timing: a loaded CI machine is slow
    while True:
        status = hub_cli(hub, "shadow", "status")
        assert status.exit_code == 0, status.output
        if "compared 5," in status.output or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status.output.splitlines()[-1] == (
        "  compared 5, differences 3 (route 1, auth 0, decision 2, limit 0;"
        " allow -> deny 2, deny -> allow 0), dropped 0"
    )

    stopped = hub_cli(hub, "shadow", "stop")
    assert stopped.exit_code == 0, stopped.output
    assert stopped.output.splitlines()[0].startswith("shadow run 1: stopped, ")
    assert stopped.output.splitlines()[2].startswith("  stopped by admin-token at ")
    nothing = hub_cli(hub, "shadow", "stop")
    assert nothing.exit_code == 1
    assert nothing.stderr.splitlines() == ["404 not_found: no shadow run is on"]
