"""The ``hub`` command: validate, migrate, publish, history, rollback, and refusing a bad start.

Most cases run the Typer app in-process (``CliRunner``), on SQLite and on a PostgreSQL database;
two go through the real entry point (``python -m hub``) in subprocesses: a refused folder and a
refused start-up, both of which must print the exact finding, not only a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from hub.cli.main import app
from hub.config.loader import load_directory
from hub.db.config_store import ConfigStore
from hub.db.engine import create_engine
from hub.db.migrate import current_revision, head_revision
from tests.fixtures_services import free_port
from tests.hubproc import ROOT, write_policies

VISA = "policies/routes.yaml: $.routes[0].upstream: 'visa' is not a defined upstream"
DUPLICATE = (
    "policies/routes.yaml: $.routes[1].id: duplicate route id 'svc' (first defined at $.routes[0])"
)
SHADOWED = (
    "policies/routes.yaml: $.routes[3]: route 'late' is shadowed by route 'catch-all'"
    " ($.routes[2]) and can never match"
)


@pytest.fixture
def hub_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No developer ``HUB_*`` variable leaks in; the data directory is the test's own."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    env = {"HUB_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def hub(*args: str, env: Mapping[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=dict(env or {}), catch_exceptions=False)


def good_policies(folder: Path, *, upstream_path: str = "") -> Path:
    return write_policies(
        folder,
        upstreams=[{"id": "echo", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[
            {"id": "svc", "prefix": "/svc/", "upstream": "echo", "upstream_path": upstream_path}
        ],
    )


def bad_policies(folder: Path) -> Path:
    """A folder named ``policies`` with three semantic errors in routes.yaml."""
    return write_policies(
        folder,
        upstreams=[{"id": "echo", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[
            {"id": "svc", "prefix": "/svc/", "upstream": "visa"},
            {"id": "svc", "prefix": "/other/", "upstream": "echo"},
            {"id": "catch-all", "prefix": "/late/", "upstream": "echo"},
            {"id": "late", "prefix": "/late/", "upstream": "echo"},
        ],
    )


# --- config validate ---------------------------------------------------------------------------


def test_validate_accepts_the_demo_policies(hub_environment: dict[str, str]) -> None:
    result = hub("config", "validate", str(ROOT / "policies"))
    expected = load_directory(ROOT / "policies")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok: {len(expected.upstreams)} upstream(s), {len(expected.routes)} route(s), "
        f"{len(expected.products)} product(s); checksum {expected.checksum[:12]}\n"
    )
    assert result.stderr == ""


def test_validate_refuses_a_bad_folder_with_file_path_and_reason(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    folder = bad_policies(tmp_path / "policies")
    result = hub("config", "validate", str(folder))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [VISA, DUPLICATE, SHADOWED, "3 error(s)"]


def test_validate_reports_yaml_and_layout_problems_per_file(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    folder = good_policies(tmp_path / "policies")
    (folder / "extra.yaml").write_text("routes: []\n")
    (folder / "upstreams.yaml").write_text("upstreams:\n  - id: echo\n    targets: [\n")
    result = hub("config", "validate", str(folder))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{len(lines) - 1} error(s)"
    assert any(
        line.startswith("policies/routes.yaml: $.routes: section 'routes' is already defined in")
        for line in lines
    ), lines
    assert any(line.startswith("policies/upstreams.yaml: ") for line in lines), lines


def test_validate_of_a_missing_folder_says_so(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    result = hub("config", "validate", str(tmp_path / "policies"))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"policies: {tmp_path / 'policies'} is not a directory",
        "1 error(s)",
    ]


def test_bad_settings_are_named_with_exit_code_2(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    result = hub("migrate", env={"HUB_PORT": "eighty", "HUB_REDIS_URL": "http://x"})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: HUB_PORT: 'eighty' is not an integer",
    ]


# --- migrate -----------------------------------------------------------------------------------


def test_migrate_creates_a_fresh_sqlite_database(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'nested' / 'hub.db'}"
    result = hub("migrate", env={"HUB_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"database is up to date ({url})"
    assert (tmp_path / "fresh" / "nested" / "hub.db").is_file()
    assert asyncio.run(current_revision(url)) == head_revision()
    again = hub("migrate", env={"HUB_DATABASE_URL": url})
    assert again.exit_code == 0, again.output


def test_migrate_uses_the_default_sqlite_file_under_the_data_dir(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    result = hub("migrate")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "hub.db").is_file()


@pytest.mark.backends
def test_migrate_brings_a_postgres_database_to_head(
    hub_environment: dict[str, str], postgres_url: str
) -> None:
    assert asyncio.run(current_revision(postgres_url)) is None
    result = hub("migrate", env={"HUB_DATABASE_URL": postgres_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"database is up to date ({postgres_url})"
    assert asyncio.run(current_revision(postgres_url)) == head_revision()


def test_migrate_against_an_unreachable_database_fails_cleanly_without_the_password(
    hub_environment: dict[str, str],
) -> None:
    url = f"postgresql+asyncpg://hub:pa55w0rd-secret@127.0.0.1:{free_port()}/hub"
    result = hub("migrate", env={"HUB_DATABASE_URL": url})
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: database unavailable: ")
    assert "pa55w0rd-secret" not in result.output


# --- publish, history, rollback ------------------------------------------------------------------


def history_lines(env: Mapping[str, str], *args: str) -> list[tuple[str, int, str, str]]:
    result = hub("config", "history", *args, env=env)
    assert result.exit_code == 0, result.output
    rows = []
    for line in result.stdout.splitlines():
        match = re.fullmatch(
            r"([* ]) +(\d+)  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (\S+)(?: +(.*))?", line.rstrip()
        )
        assert match, line
        rows.append((match[1], int(match[2]), match[3], match[4] or ""))
    return rows


def stored(url: str) -> dict[int, dict[str, Any]]:
    async def read() -> dict[int, dict[str, Any]]:
        engine = create_engine(url)
        try:
            return {v.version: v.document for v in await ConfigStore(engine).history()}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_publish_history_and_rollback_against_a_database(
    hub_environment: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": database_url}
    assert hub("migrate", env=env).exit_code == 0
    first = good_policies(tmp_path / "one" / "policies")
    second = good_policies(tmp_path / "two" / "policies", upstream_path="/v2")

    result = hub("config", "publish", str(first), env=env)
    assert result.exit_code == 0, result.output
    checksum = load_directory(first).checksum
    assert result.stdout == f"published version 1 (checksum {checksum[:12]})\n"

    result = hub(
        "config", "publish", str(second), "--comment", "prefix v2", "--based-on", "1", env=env
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("published version 2 (checksum ")
    assert history_lines(env) == [("*", 2, "cli", "prefix v2"), (" ", 1, "cli", "")]

    # An edit started from version 1 cannot overwrite version 2.
    result = hub("config", "publish", str(first), "--based-on", "1", env=env)
    assert result.exit_code == 1
    assert result.stderr == "error: configuration changed: active version is 2, not 1\n"

    # A bad folder is refused with its exact findings and stores nothing.
    result = hub("config", "publish", str(bad_policies(tmp_path / "bad" / "policies")), env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [VISA, DUPLICATE, SHADOWED]

    result = hub("config", "rollback", "1", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "version 1 is active\n"
    assert history_lines(env) == [(" ", 2, "cli", "prefix v2"), ("*", 1, "cli", "")]

    result = hub("config", "rollback", "99", env=env)
    assert result.exit_code == 1
    assert result.stderr == "error: configuration version 99 does not exist\n"
    assert history_lines(env)[1][0] == "*"

    documents = stored(database_url)
    assert documents == {1: load_directory(first).raw, 2: load_directory(second).raw}


def governed_policies(folder: Path, *, upstream_path: str = "", tagged: bool = True) -> Path:
    """``svc`` tagged as personal data, under a four-eyes rule on personal-data routes."""
    folder = good_policies(folder, upstream_path=upstream_path)
    routes = yaml.safe_load((folder / "routes.yaml").read_text())
    if tagged:
        routes["routes"][0]["tags"] = ["personal_data"]
    (folder / "routes.yaml").write_text(yaml.safe_dump(routes))
    rule = {"id": "pd", "sections": ["routes"], "tagged": "personal_data"}
    (folder / "governance.yaml").write_text(yaml.safe_dump({"governance": {"approvals": [rule]}}))
    return folder


def test_publish_refuses_protected_changes_and_rollback_audits_them(
    hub_environment: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": database_url}
    assert hub("migrate", env=env).exit_code == 0
    assert hub("config", "publish", str(governed_policies(tmp_path / "1")), env=env).exit_code == 0

    # Nobody can approve a change written straight to the database: refused, nothing stored.
    changed = governed_policies(tmp_path / "2", upstream_path="/v2")
    result = hub("config", "publish", str(changed), env=env)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: this change touches protected configuration (routes/svc (changed)) and needs a"
        " second admin's approval: `hub config publish` writes straight to the database, where"
        " nobody can approve it; use `hub policies apply` against a running hub and have another"
        " admin approve the draft\n"
    )
    # Dropping the rules in the same change is a protected change too.
    result = hub("config", "publish", str(good_policies(tmp_path / "3")), env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: this change touches protected configuration (governance/* (removed),"
        " routes/svc (changed))"
    )
    # Untagging the only tagged route would leave a rule that protects nothing: a finding.
    untagged = governed_policies(tmp_path / "4", upstream_path="/v2", tagged=False)
    result = hub("config", "publish", str(untagged), env=env)
    assert result.exit_code == 1
    assert result.stderr == (
        "4/governance.yaml: $.governance.approvals[0].tagged: no route or product is tagged"
        " 'personal_data', so this rule protects nothing (a misspelt tag?)\n"
    )
    assert [row[1] for row in history_lines(env)] == [1]

    # What touches nothing protected is published as before (here: the same folder again).
    assert hub("config", "publish", str(governed_policies(tmp_path / "5")), env=env).exit_code == 0

    # A rollback to a version without the rules stays one step; the audit names what it changed.

    async def seed_plain_and_roll_back() -> list[Any]:
        engine = create_engine(database_url)
        try:
            store = ConfigStore(engine)
            plain = load_directory(good_policies(tmp_path / "6", upstream_path="/old")).raw
            old = await store.publish(plain, checksum="c", author="test")
            governed = load_directory(governed_policies(tmp_path / "7")).raw
            await store.publish(governed, checksum="c2", author="test")
            return [old.version]
        finally:
            await engine.dispose()

    [old] = asyncio.run(seed_plain_and_roll_back())
    result = hub("config", "rollback", str(old), env=env)
    assert result.exit_code == 0, result.output

    async def last_change() -> Any:
        engine = create_engine(database_url)
        try:
            return (await ConfigStore(engine).changes(old))[-1]
        finally:
            await engine.dispose()

    change = asyncio.run(last_change())
    assert (change.action, change.actor, change.approved_by) == ("activate", "cli", None)
    assert change.protected == [
        {"section": "governance", "id": "*", "change": "removed", "rules": ["governance"]},
        {"section": "routes", "id": "svc", "change": "changed", "rules": ["pd"]},
    ]


def test_history_limit(hub_environment: dict[str, str], tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"}
    assert hub("migrate", env=env).exit_code == 0
    folder = good_policies(tmp_path / "policies")
    for _ in range(3):
        assert hub("config", "publish", str(folder), env=env).exit_code == 0
    assert [row[1] for row in history_lines(env)] == [3, 2, 1]
    assert [row[1] for row in history_lines(env, "--limit", "2")] == [3, 2]


@pytest.mark.parametrize("command", [["config", "history"], ["config", "rollback", "1"]])
def test_version_commands_on_an_unmigrated_database_fail_with_one_line(
    hub_environment: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    result = hub(*command, env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: database unavailable: no such table: ")


# --- through the real entry point ------------------------------------------------------------


def _start(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.Popen(
        [sys.executable, "-m", "hub", *args],
        env={**base, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def refused_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    """``hub config validate`` and ``hub serve`` on the same bad folder, run side by side."""
    tmp_path = tmp_path_factory.mktemp("refused")
    folder = bad_policies(tmp_path / "policies")
    env = {
        "HUB_POLICIES_DIR": str(folder),
        "HUB_DATA_DIR": str(tmp_path / "data"),
        "HUB_PORT": str(free_port()),
    }
    processes = {
        "validate": _start(["config", "validate", str(folder)], env),
        "serve": _start(["serve"], env),
    }
    results: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=60)
            results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        yield results
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.mark.integration
def test_the_console_command_refuses_a_bad_folder_exactly(
    refused_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = refused_runs["validate"]
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [VISA, DUPLICATE, SHADOWED, "3 error(s)"]


@pytest.mark.integration
def test_serve_with_a_bad_policies_folder_exits_with_the_exact_findings(
    refused_runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = refused_runs["serve"]
    assert result.returncode != 0
    output = result.stdout + result.stderr
    # Each finding is its own structured log line, not only text inside a traceback.
    issues = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "config.invalid":
            assert record["level"] == "error"
            issues.append(record["issue"])
    assert issues == [VISA, DUPLICATE, SHADOWED], output
    assert "Uvicorn running on" not in output


# --- clients: SSO fields -----------------------------------------------------------------------


def _client_lines(output: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            lines.setdefault(key.strip(), []).append(value.strip())
    return lines


def test_clients_create_a_public_sso_client_and_replace_its_redirect_uris(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"}
    assert hub("migrate", env=env).exit_code == 0

    created = hub(
        "clients", "create", "--name", "Portal", "--owner", "hub", "--scopes", "openid,profile",
        "--auth-method", "none", "--client-type", "public", "--first-party",
        "--redirect-uri", "https://app.example/cb", "--redirect-uri", "http://127.0.0.1:8123/cb",
        "--post-logout-redirect-uri", "https://app.example/bye",
        env=env,
    )  # fmt: skip

    assert created.exit_code == 0, created.output
    fields = _client_lines(created.stdout)
    client_id = fields["client_id"][0]
    assert "client_secret" not in fields
    assert fields["redirect_uri"] == ["https://app.example/cb", "http://127.0.0.1:8123/cb"]
    assert fields["post_logout"] == ["https://app.example/bye"]
    listed = hub("clients", "list", env=env)
    assert client_id in listed.stdout
    assert "public" in listed.stdout

    updated = hub(
        "clients", "set-redirect-uris", client_id,
        "--redirect-uri", "https://app.example/new", "--clear-post-logout",
        env=env,
    )  # fmt: skip
    assert updated.exit_code == 0, updated.output
    fields = _client_lines(updated.stdout)
    assert fields["redirect_uri"] == ["https://app.example/new"]
    assert "post_logout" not in fields


def test_clients_create_a_confidential_code_flow_client(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"}
    assert hub("migrate", env=env).exit_code == 0
    created = hub(
        "clients", "create", "--name", "Web", "--owner", "vendor:w", "--scopes", "openid",
        "--grant-types", "authorization_code,refresh_token",
        "--redirect-uri", "https://web.example/cb",
        env=env,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "client_secret" in _client_lines(created.stdout)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--auth-method", "magic"], 2, "--auth-method is"),
        (["--client-type", "hybrid"], 2, "--client-type is"),
        (["--auth-method", "none"], 1, "confidential client must authenticate"),
        (
            ["--auth-method", "none", "--client-type", "public"],
            1,
            "at least one redirect URI",
        ),
        (
            [
                "--auth-method",
                "none",
                "--client-type",
                "public",
                "--redirect-uri",
                "http://a.example/",
            ],
            1,
            "http is allowed only for loopback",
        ),
        (
            ["--redirect-uri", "https://a.example/#f", "--grant-types", "authorization_code"],
            1,
            "fragment",
        ),
        (["--grant-types", "authorization_code"], 1, "needs at least one redirect URI"),
        (["--grant-types", "password"], 1, "unsupported grant types"),
    ],
)
def test_clients_create_refusals_are_one_line_errors(
    hub_environment: dict[str, str], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"}
    assert hub("migrate", env=env).exit_code == 0
    result = hub(
        "clients", "create", "--name", "X", "--owner", "o", "--scopes", "openid", *args, env=env
    )
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert hub("clients", "list", env=env).stdout.strip() == ""


def test_clients_set_redirect_uris_refusals(
    hub_environment: dict[str, str], tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"}
    assert hub("migrate", env=env).exit_code == 0
    created = hub(
        "clients", "create", "--name", "Portal", "--owner", "hub", "--scopes", "openid",
        "--auth-method", "none", "--client-type", "public",
        "--redirect-uri", "https://app.example/cb",
        env=env,
    )  # fmt: skip
    client_id = _client_lines(created.stdout)["client_id"][0]

    bad = hub("clients", "set-redirect-uris", client_id, "--redirect-uri", "https://*.x/", env=env)
    assert bad.exit_code == 1
    assert "wildcards" in bad.stderr
    both = hub(
        "clients", "set-redirect-uris", client_id,
        "--post-logout-redirect-uri", "https://app.example/bye", "--clear-post-logout",
        env=env,
    )  # fmt: skip
    assert both.exit_code == 2
    missing = hub(
        "clients", "set-redirect-uris", "cli_0000000000000000", "--redirect-uri",
        "https://app.example/cb", env=env,
    )  # fmt: skip
    assert missing.exit_code == 1
    assert "does not exist" in missing.stderr
