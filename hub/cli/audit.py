"""``hub audit verify``: check the registrar audit log's hash chain on the hub's database."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.audit.verify import Report, verify_chain
from hub.cli._common import run_on_database
from hub.db.audit_store import AuditStore
from hub.db.identity_store import AsyncEngine

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The registrar audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify(
    max_findings: Annotated[int, typer.Option(help="Stop after this many findings")] = 100,
) -> None:
    """Walk the chain: report every altered, removed or reordered entry (exit 1), or ok."""

    async def walk(engine: AsyncEngine) -> Report:
        return await verify_chain(AuditStore(engine), max_findings=max_findings)

    report = run_on_database(walk)
    if report.ok:
        typer.echo(f"ok: {report.entries} entries, the chain holds up to entry {report.last_seq}")
        return
    for finding in report.findings:
        typer.echo(str(finding), err=True)
    typer.echo(
        f"{len(report.findings)} finding(s) in {report.entries} entries: the audit log was"
        " tampered with",
        err=True,
    )
    raise typer.Exit(1)
