"""``hub policies`` against a running hub's admin API: diff, apply, validate, export, rollback.

One real hub process (embedded back-ends) on a loopback port, seeded with version 1 (/svc/ to
the blue upstream); the CLI runs in-process with ``--url`` and ``--token`` as an operator's
machine would use it. The tests run in file order and build on each other's versions.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> Iterator[HubProcess]:
    blue = upstreams[0]
    tmp = tmp_path_factory.mktemp("policies-cli")
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "blue", "targets": [{"url": blue.url}]}],
        routes=[{"id": "svc", "prefix": "/svc/", "upstream": "blue"}],
    )
    with run_hub(tmp / "hub", policies, env={"HUB_ACCESS_LOG": "false"}) as process:
        yield process


def green_folder(tmp: Path, blue: UpstreamServer, green: UpstreamServer) -> Path:
    return write_policies(
        tmp / "green",
        upstreams=[
            {"id": "blue", "targets": [{"url": blue.url}]},
            {"id": "green", "targets": [{"url": green.url}]},
        ],
        routes=[
            {"id": "svc", "prefix": "/svc/", "upstream": "green", "upstream_path": "/green"},
            {"id": "extra", "path": "/extra/{id}", "methods": ["GET"], "upstream": "blue"},
        ],
    )


def hub_cli(hub: HubProcess, *args: str, token: str = ADMIN_TOKEN) -> Any:
    env = {"HUB_ADMIN_URL": hub.url, "HUB_CONTRACTS_DIR": str(PROJECT_ROOT / "contracts")}
    return CliRunner().invoke(app, ["policies", *args, "--token", token], env=env)


def admin(hub: HubProcess, path: str) -> Any:
    response = httpx.get(f"{hub.url}/admin/api/config{path}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def served_by(hub: HubProcess) -> str:
    server: str = httpx.get(f"{hub.url}/svc/probe").json()["server"]
    return server


def test_diff_shows_what_a_folder_would_change_and_changes_nothing(
    hub: HubProcess, tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    folder = green_folder(tmp_path, *upstreams)
    result = hub_cli(hub, "diff", str(folder))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "changes against the active version 1:",
        "  routes: + extra (added)",
        "  routes: ~ svc (changed)",
        '      $.upstream: "blue" -> "green"',
        '      $.upstream_path: (absent) -> "/green"',
        "  upstreams: + green (added)",
    ]
    assert [v["version"] for v in admin(hub, "/versions")] == [1]
    assert admin(hub, "/drafts") == []


def test_apply_publishes_through_a_draft_with_the_reason(
    hub: HubProcess, tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    folder = green_folder(tmp_path, *upstreams)
    result = hub_cli(hub, "apply", str(folder), "--comment", "move svc to green")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "changes against the active version 1:"
    assert result.output.splitlines()[-1] == "published version 2 (based on 1)"
    assert served_by(hub) == "green"
    version = admin(hub, "/versions/2")
    assert (version["created_by"], version["comment"]) == ("admin-token", "move svc to green")
    assert version["changes"][0]["diff_summary"]["routes"] == {
        "added": ["extra"],
        "removed": [],
        "changed": ["svc"],
    }
    assert admin(hub, "/drafts") == []

    # Applying the same folder again publishes nothing.
    again = hub_cli(hub, "apply", str(folder), "--comment", "again")
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == ["no changes against the active version 2"]
    assert [v["version"] for v in admin(hub, "/versions")] == [2, 1]
    assert admin(hub, "/drafts") == []


def test_apply_refuses_emptying_the_hub_and_leaves_no_draft(
    hub: HubProcess, tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    folder = write_policies(
        tmp_path / "empty",
        upstreams=[{"id": "blue", "targets": [{"url": upstreams[0].url}]}],
        routes=[],
    )
    result = hub_cli(hub, "apply", str(folder), "--comment", "oops")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "$.routes: the document has no routes: publishing it would remove all 2 route(s) of"
        " the active version 2; send allow_empty: true to publish it anyway",
        "1 error(s) (empty_configuration)",
    ]
    assert admin(hub, "/drafts") == []
    assert [v["version"] for v in admin(hub, "/versions")] == [2, 1]
    validated = hub_cli(hub, "validate", str(folder))
    assert validated.exit_code == 1
    assert validated.stderr.splitlines()[-1] == "1 error(s) (empty_configuration)"
    assert hub_cli(hub, "validate", str(folder), "--allow-empty").exit_code == 0


def test_a_bad_folder_is_refused_locally_with_file_and_path(
    hub: HubProcess, tmp_path: Path
) -> None:
    folder = write_policies(
        tmp_path / "bad", upstreams=[], routes=[{"id": "x", "prefix": "/x/", "upstream": "nope"}]
    )
    result = hub_cli(hub, "diff", str(folder))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "bad/routes.yaml: $.routes[0].upstream: 'nope' is not a defined upstream",
        "1 error(s)",
    ]


def test_a_wrong_token_or_no_hub_is_one_clear_line(hub: HubProcess, tmp_path: Path) -> None:
    result = hub_cli(hub, "rollback", "1", token="wrong")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["401 unauthorized: the admin token is not valid"]
    nobody = CliRunner().invoke(
        app, ["policies", "export", str(tmp_path), "--url", "http://127.0.0.1:9", "--token", "t"]
    )
    assert nobody.exit_code == 1
    assert nobody.stderr.startswith("cannot reach the hub at http://127.0.0.1:9: ")


def test_export_then_rollback(hub: HubProcess, tmp_path: Path) -> None:
    result = hub_cli(hub, "export", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"exported version 2 to {tmp_path / 'out'}"
    routes = yaml.safe_load((tmp_path / "out" / "routes.yaml").read_text())
    assert [r["id"] for r in routes["routes"]] == ["svc", "extra"]

    back = hub_cli(hub, "rollback", "1", "--comment", "green misbehaves")
    assert back.exit_code == 0, back.output
    assert back.output.strip() == "version 1 is active"
    assert served_by(hub) == "blue"
    change = admin(hub, "/versions/1")["changes"][-1]
    assert (change["action"], change["comment"], change["previous"]) == (
        "activate",
        "green misbehaves",
        2,
    )
