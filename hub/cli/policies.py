"""``hub policies``: the configuration of a running hub, through its admin API (as decK does).

Every command talks to ``--url`` (``HUB_ADMIN_URL``) with an admin credential ``--token``
(``HUB_ADMIN_TOKEN``), so it works from any machine that can reach the hub, and what it changes
is validated, audited and announced to the replicas by the hub itself:

- ``export DIR``: the active version as one YAML file per section;
- ``validate DIR``: the folder checked locally, then by the hub (safety checks included);
- ``diff DIR``: what publishing the folder would change, per section and item;
- ``apply DIR --comment WHY``: a draft of the folder, its diff, then its publish; when the
  change touches protected configuration (four eyes) the draft is kept for a second admin and
  the command exits with :data:`PENDING_APPROVAL` (3);
- ``approve DRAFT --comment WHY``: as a second admin, approve the draft's current revision;
- ``publish DRAFT --comment WHY``: publish a draft (an approved one, or one needing none);
- ``rollback N --comment WHY``: make version N active again;
- ``dry-run DIR``: a draft of the folder replayed through the hub's request sample, its report
  printed, the draft deleted unless ``--keep``;
- ``shadow start DIR --minutes N --comment WHY`` / ``shadow status`` / ``shadow stop``: run a
  folder beside the active version on live traffic, see what it decided differently, stop it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

from hub.cli._admin import AdminApi, AdminApiError, TokenOption, UrlOption, admin_api, fail
from hub.cli._common import settings_or_exit
from hub.config.loader import load_directory
from hub.errors import ConfigError

__all__ = ["PENDING_APPROVAL", "AdminApi", "AdminApiError", "policies_app"]

policies_app = typer.Typer(
    help="A running hub's configuration, through its admin API.", no_args_is_help=True
)
shadow_app = typer.Typer(
    help="Run a folder beside the active version on live traffic.", no_args_is_help=True
)
policies_app.add_typer(shadow_app, name="shadow")

_CONFIG = "/admin/api/config"
#: Exit status of ``apply`` when the draft waits for a second admin's approval.
PENDING_APPROVAL = 3


def _load(path: Path) -> dict[str, Any]:
    try:
        document = load_directory(path, contracts_dir=settings_or_exit().contracts_dir)
    except ConfigError as exc:
        fail([*exc.issues, f"{len(exc.issues)} error(s)"])
    return dict(document.raw)


def _admin_api(url: str, token: str) -> contextlib.AbstractContextManager[AdminApi]:
    return admin_api(url, token, prefix=_CONFIG)


def _show_diff(diff: dict[str, Any]) -> None:
    if not diff["changed"]:
        typer.echo(f"no changes against the active version {diff['active_version']}")
        return
    typer.echo(f"changes against the active version {diff['active_version']}:")
    for line in diff["lines"]:
        typer.echo(f"  {line}")


def _show_protected(approval: dict[str, Any]) -> None:
    for item in approval["items"]:
        rules = ", ".join(item["rules"])
        typer.echo(f"  {item['section']}/{item['id']} ({item['change']}; rule {rules})")


def _await_approval(draft: dict[str, Any], approval: dict[str, Any]) -> NoReturn:
    ident = draft["id"]
    typer.echo("this change needs a second admin's approval (four eyes):")
    _show_protected(approval)
    typer.echo(f"draft {ident} is kept at revision {draft['revision']}; another admin approves it:")
    typer.echo(f"  hub policies approve {ident} --comment WHY")
    typer.echo("then anyone publishes it:")
    typer.echo(f"  hub policies publish {ident} --comment WHY")
    raise typer.Exit(PENDING_APPROVAL)


def _published(published: dict[str, Any]) -> str:
    line = f"published version {published['version']} (based on {published['based_on']})"
    approver = published.get("approved_by")
    return f"{line}, approved by {approver}" if approver else line


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
    """Publish the folder: a draft of it, its diff, then its publish (409 if someone was first).

    A change of protected configuration is not published: its draft is kept for a second
    admin's approval, and the command exits with status 3.
    """
    document = _load(path)
    with _admin_api(url, token) as api:
        draft = api.call("POST", "/drafts", {"document": document, "comment": comment})
        try:
            changes = api.call("GET", f"/drafts/{draft['id']}/diff")
            _show_diff(changes)
            if not changes["changed"]:
                api.call("DELETE", f"/drafts/{draft['id']}")
                return
            approval = changes.get("approval") or {}
            if approval.get("required") and not approval.get("approved"):
                pending = approval
            else:
                pending = None
                body = {"comment": comment, "allow_empty": allow_empty}
                published = api.call("POST", f"/drafts/{draft['id']}/publish", body)
        except AdminApiError:
            # The draft was this command's own; leave nothing behind. It may already be gone.
            with contextlib.suppress(AdminApiError):
                api.call("DELETE", f"/drafts/{draft['id']}")
            raise
    if pending is not None:
        _await_approval(draft, pending)
    typer.echo(_published(published))


@policies_app.command("approve")
def approve(
    draft_id: Annotated[int, typer.Argument(metavar="DRAFT", help="The draft to approve")],
    comment: Annotated[str, typer.Option(help="What you checked: kept in the audit")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Approve a draft as a second admin (four eyes): the revision shown here, and no other."""
    with _admin_api(url, token) as api:
        draft = api.call("GET", f"/drafts/{draft_id}")
        changes = api.call("GET", f"/drafts/{draft_id}/diff")
        editors = ", ".join(draft["editors"])
        typer.echo(
            f"draft {draft_id} at revision {draft['revision']}, based on version"
            f" {draft['based_on']}, edited by {editors}"
        )
        _show_diff(changes)
        if draft["approval"]["required"]:
            typer.echo("protected (needs this approval):")
            _show_protected(draft["approval"])
        else:
            typer.echo("nothing protected changes: this approval is a voluntary review")
        body = {"revision": draft["revision"], "comment": comment}
        approval = api.call("POST", f"/drafts/{draft_id}/approve", body)
    typer.echo(
        f"approved revision {approval['approved_revision']} of draft {draft_id}"
        f" as {approval['approved_by']}; publish it with:"
        f" hub policies publish {draft_id} --comment WHY"
    )


@policies_app.command("publish")
def publish(
    draft_id: Annotated[int, typer.Argument(metavar="DRAFT", help="The draft to publish")],
    comment: Annotated[str, typer.Option(help="Why: recorded with the new version")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    allow_empty: Annotated[bool, typer.Option(help="Publish even if every route goes")] = False,
) -> None:
    """Publish a draft: refused while it needs an approval it does not have."""
    with _admin_api(url, token) as api:
        body = {"comment": comment, "allow_empty": allow_empty}
        published = api.call("POST", f"/drafts/{draft_id}/publish", body)
    typer.echo(_published(published))


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


def _outcome(side: dict[str, Any]) -> str:
    """One side of a difference, e.g. ``records: allow (vendor-e1)`` or ``404``."""
    if side["route"] in ("404", "405"):
        return str(side["route"])
    what = side["decision"] if side["auth"] in ("none", "pass") else side["auth"]
    why = side["rule"] or (side["permission"] and f"{side['permission']}, default") or ""
    limit = f", limit {side['limit']}" if side.get("limit") else ""
    return f"{side['route']}: {what}" + (f" ({why})" if why else "") + limit


def _flips(counts: dict[str, Any]) -> str:
    return f"allow -> deny {counts['allow_to_deny']}, deny -> allow {counts['deny_to_allow']}"


def _show_dry_run(report: dict[str, Any]) -> None:
    changed = report["changed"]
    typer.echo(
        f"dry-run of {report['draft']} against {report['active']}:"
        f" {report['replayed']} sampled request(s) replayed"
    )
    typer.echo(f"  unchanged: {report['unchanged']}")
    typer.echo(f"  route changed: {changed['route']}")
    typer.echo(f"  auth changed: {changed['auth']}")
    typer.echo(f"  decision changed: {changed['decision']} ({_flips(report['decisions'])})")
    typer.echo(f"  limit changed: {changed['limit']}")
    by_permission = report["decisions"]["by_permission"]
    if by_permission:
        typer.echo("  by permission:")
        for permission, counts in sorted(by_permission.items()):
            typer.echo(f"    {permission}: {_flips(counts)}")
    if any(counts["replayed"] != counts["unchanged"] for counts in report["routes"].values()):
        typer.echo("  by route:")
        for route, counts in sorted(report["routes"].items()):
            kinds = ", ".join(
                f"{counts[k]} {k}" for k in ("route", "auth", "decision", "limit") if counts[k]
            )
            if kinds:
                typer.echo(f"    {route}: {counts['replayed']} replayed, {kinds}")
    if report["examples"]:
        typer.echo("  examples:")
        for example in report["examples"][:5]:
            who = example["principal"]
            caller = who["client_id"] or who["kind"]
            typer.echo(f"    {example['method']} {example['path']} ({caller}):")
            typer.echo(f"      {_outcome(example['active'])} -> {_outcome(example['draft'])}")
    for note in report["notes"]:
        typer.echo(f"  note: {note}")


@policies_app.command("dry-run")
def dry_run(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    keep: Annotated[bool, typer.Option(help="Keep the draft made for the dry-run")] = False,
    allow_empty: Annotated[bool, typer.Option(help="Accept removing every route")] = False,
) -> None:
    """Replay the hub's sample of recent requests through the folder and report what changes."""
    document = _load(path)
    query = "?allow_empty=true" if allow_empty else ""
    with _admin_api(url, token) as api:
        draft = api.call("POST", "/drafts", {"document": document, "comment": "dry-run"})
        try:
            report = api.call("POST", f"/drafts/{draft['id']}/dry-run{query}")
        finally:
            if not keep:
                with contextlib.suppress(AdminApiError):
                    api.call("DELETE", f"/drafts/{draft['id']}")
    _show_dry_run(report)
    if keep:
        typer.echo(f"draft {draft['id']} kept")


def _show_run(run: dict[str, Any]) -> None:
    counts = run["counts"]
    typer.echo(
        f"shadow run {run['id']}: {run['state']}, draft {run['draft_id']} revision"
        f" {run['draft_revision']} beside version {run['base_version']}, until {run['ends_at']}"
    )
    typer.echo(f"  started by {run['started_by']} at {run['started_at']}: {run['comment']}")
    if run["stopped_at"]:
        typer.echo(f"  stopped by {run['stopped_by']} at {run['stopped_at']}")
    kinds = ", ".join(f"{kind} {counts[kind]}" for kind in ("route", "auth", "decision", "limit"))
    typer.echo(
        f"  compared {run['compared']}, differences {run['differences']} ({kinds};"
        f" {_flips(counts)}), dropped {run['dropped']}"
    )


@shadow_app.command("start")
def shadow_start(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    minutes: Annotated[float, typer.Option(help="How long the shadow run lasts")],
    comment: Annotated[str, typer.Option(help="Why: recorded with the run")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Run the folder beside the active version (a draft of it is made and kept)."""
    document = _load(path)
    body = {"duration_seconds": round(minutes * 60), "comment": comment}
    with _admin_api(url, token) as api:
        draft = api.call("POST", "/drafts", {"document": document, "comment": comment})
        try:
            run = api.call("POST", f"/drafts/{draft['id']}/shadow", body)
        except AdminApiError:
            with contextlib.suppress(AdminApiError):
                api.call("DELETE", f"/drafts/{draft['id']}")
            raise
    _show_run(run)


@shadow_app.command("status")
def shadow_status(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    """The shadow run that is on, or else the latest one."""
    with _admin_api(url, token) as api:
        status = api.call("GET", "/shadow")
    if status["run"] is None:
        typer.echo("no shadow run yet")
        return
    _show_run(status["run"])


@shadow_app.command("stop")
def shadow_stop(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    """Stop the shadow run that is on."""
    with _admin_api(url, token) as api:
        run = api.call("DELETE", "/shadow")
    _show_run(run)
