"""``hub payments``: reconciliation of a running hub's payments, through its admin API.

``hub payments reconcile [--date YYYY-MM-DD] [--adapter payment-provider]`` asks the hub at
``--url`` (``HUB_ADMIN_URL``) with ``--token`` (``HUB_ADMIN_TOKEN``) to compare the provider's
settlement ledger of that day (UTC; default today) with its own book, prints every mismatch,
and exits 1 when there is any (0 when clean, 2 when it could not reconcile at all).
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from hub.cli._admin import TokenOption, UrlOption

__all__ = ["payments_app"]

payments_app = typer.Typer(help="Payments of a running hub, through its admin API.")


def _fail(line: str) -> None:
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(2)


@payments_app.command("reconcile")
def reconcile_command(
    date: Annotated[str, typer.Option(help="The day (UTC), YYYY-MM-DD; default today")] = "",
    adapter: Annotated[str, typer.Option(help="The payment adapter")] = "payment-provider",
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Compare the provider's settlement ledger with the hub's book; exit 1 on any mismatch."""
    if not token:
        _fail("an admin token is required (--token or HUB_ADMIN_TOKEN)")
    params = {"adapter": adapter, **({"date": date} if date else {})}
    try:
        response = httpx.get(
            url.rstrip("/") + "/admin/api/payments/reconciliation",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
        )
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the hub at {url}: {exc}")
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not response.is_success or not isinstance(body, dict):
        problem = body if isinstance(body, dict) else {}
        _fail(f"{response.status_code} {problem.get('code', 'error')}: {problem.get('detail', '')}")
        return
    for mismatch in body["mismatches"]:
        refund = f" ({mismatch['refund_id']})" if mismatch.get("refund_id") else ""
        typer.echo(
            f"{mismatch['kind']}: {mismatch['type']} of {mismatch['payment_id']}{refund}:"
            f" provider {mismatch['provider'] or '-'}, hub {mismatch['hub'] or '-'}"
        )
    count = len(body["mismatches"])
    typer.echo(
        f"{body['date']} {body['adapter']}: {body['provider_lines']} provider line(s),"
        f" {body['hub_lines']} hub line(s), {count} mismatch(es)"
    )
    if count:
        raise typer.Exit(1)
