"""``hub policies``: the configuration of a running hub, through its admin API (as decK does).

Every command talks to ``--url`` (``HUB_ADMIN_URL``) with an admin credential ``--token``
(``HUB_ADMIN_TOKEN``), so it works from any machine that can reach the hub, and what it changes
is validated, audited and announced to the replicas by the hub itself:

- ``export DIR``: the active version as one YAML file per section;
- ``validate DIR``: the folder checked locally, then by the hub (safety checks included);
- ``diff DIR``: what publishing the folder would change, per section and item;
- ``apply DIR --comment WHY``: a draft of the folder, its diff, then its publish;
- ``rollback N --comment WHY``: make version N active again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml

from hub.cli._common import settings_or_exit
from hub.config.loader import load_directory
from hub.errors import ConfigError

__all__ = ["AdminApi", "AdminApiError", "policies_app"]

policies_app = typer.Typer(
    help="A running hub's configuration, through its admin API.", no_args_is_help=True
)

_CONFIG = "/admin/api/config"

UrlOption = Annotated[str, typer.Option("--url", envvar="HUB_ADMIN_URL", help="The hub's base URL")]
TokenOption = Annotated[
    str,
    typer.Option("--token", envvar="HUB_ADMIN_TOKEN", help="An admin token", show_default=False),
]


class AdminApiError(Exception):
    """The hub refused a call, or could not be reached; ``lines`` say why."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


class AdminApi:
    """A small client of the admin API's configuration endpoints."""

    def __init__(
        self, url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self._url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of one call; :class:`AdminApiError` for a refusal or no answer."""
        try:
            response = self._client.request(method, _CONFIG + path, json=body)
        except httpx.HTTPError as exc:
            raise AdminApiError([f"cannot reach the hub at {self._url}: {exc}"]) from exc
        if response.is_success:
            return response.json() if response.content else None
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        errors = problem.get("errors")
        code = problem.get("code", "error")
        if isinstance(errors, list) and errors:
            raise AdminApiError([str(e) for e in errors] + [f"{len(errors)} error(s) ({code})"])
        detail = problem.get("detail") or response.reason_phrase
        raise AdminApiError([f"{response.status_code} {code}: {detail}"])


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(1)


def _load(path: Path) -> dict[str, Any]:
    try:
        document = load_directory(path, contracts_dir=settings_or_exit().contracts_dir)
    except ConfigError as exc:
        _fail([*exc.issues, f"{len(exc.issues)} error(s)"])
    return dict(document.raw)


@contextlib.contextmanager
def _admin_api(url: str, token: str) -> Iterator[AdminApi]:
    """A client for one command; a refusal or no answer is its lines on stderr and exit 1."""
    if not token:
        _fail(["error: an admin token is required (--token or HUB_ADMIN_TOKEN)"])
    api = AdminApi(url, token)
    try:
        yield api
    except AdminApiError as exc:
        _fail(exc.lines)
    finally:
        api.close()


def _show_diff(diff: dict[str, Any]) -> None:
    if not diff["changed"]:
        typer.echo(f"no changes against the active version {diff['active_version']}")
        return
    typer.echo(f"changes against the active version {diff['active_version']}:")
    for line in diff["lines"]:
        typer.echo(f"  {line}")


@policies_app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="A folder to write the YAML files into")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Write the active version as one YAML file per section."""
    with _admin_api(url, token) as api:
        active = api.call("GET", "/active")
    path.mkdir(parents=True, exist_ok=True)
    for section, value in active["document"].items():
        text = yaml.safe_dump({section: value}, sort_keys=False, allow_unicode=True)
        (path / f"{section}.yaml").write_text(text, encoding="utf-8")
    typer.echo(f"exported version {active['version']} to {path}")


@policies_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    allow_empty: Annotated[bool, typer.Option(help="Accept removing every route")] = False,
) -> None:
    """Check a folder locally, then against the running hub (safety checks included)."""
    document = _load(path)
    query = "?allow_empty=true" if allow_empty else ""
    with _admin_api(url, token) as api:
        result = api.call("POST", f"/validate{query}", document)
    typer.echo(f"ok: {result['upstreams']} upstream(s), {result['routes']} route(s)")


@policies_app.command("diff")
def diff(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    text: Annotated[bool, typer.Option(help="Show a unified YAML diff as well")] = False,
) -> None:
    """Show what publishing the folder would change in the active version."""
    document = _load(path)
    with _admin_api(url, token) as api:
        result = api.call("POST", "/diff", {"document": document})
    _show_diff(result)
    if text and result["text"]:
        typer.echo(result["text"], nl=False)


@policies_app.command("apply")
def apply(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    comment: Annotated[str, typer.Option(help="Why: recorded with the new version")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    allow_empty: Annotated[bool, typer.Option(help="Publish even if every route goes")] = False,
) -> None:
    """Publish the folder: a draft of it, its diff, then its publish (409 if someone was first)."""
    document = _load(path)
    with _admin_api(url, token) as api:
        draft = api.call("POST", "/drafts", {"document": document, "comment": comment})
        try:
            changes = api.call("GET", f"/drafts/{draft['id']}/diff")
            _show_diff(changes)
            if not changes["changed"]:
                api.call("DELETE", f"/drafts/{draft['id']}")
                return
            body = {"comment": comment, "allow_empty": allow_empty}
            published = api.call("POST", f"/drafts/{draft['id']}/publish", body)
        except AdminApiError:
            # The draft was this command's own; leave nothing behind. It may already be gone.
            with contextlib.suppress(AdminApiError):
                api.call("DELETE", f"/drafts/{draft['id']}")
            raise
    typer.echo(f"published version {published['version']} (based on {published['based_on']})")


@policies_app.command("rollback")
def rollback(
    version: Annotated[int, typer.Argument(help="The stored version to make active")],
    comment: Annotated[str, typer.Option(help="Why: recorded in the audit")] = "",
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Make a stored version active again."""
    with _admin_api(url, token) as api:
        api.call("POST", f"/versions/{version}/activate", {"comment": comment})
    typer.echo(f"version {version} is active")
