"""``hub events`` and ``hub webhooks``: what consumers and vendor deliveries gave up on.

Both talk to a running hub's admin API (``--url``/``HUB_ADMIN_URL``, ``--token``/
``HUB_ADMIN_TOKEN``):

- ``hub events dead-letters [--queue Q] [--limit N] [--json]``: the events a consumer's handler
  kept failing on (RabbitMQ lists one queue at a time, so name it there);
- ``hub events replay QUEUE [--id EVENT_ID ...]``: put them (all, or those) back on the queue;
- ``hub webhooks deliveries [--status parked] [--subscription SUB] [--json]``;
- ``hub webhooks replay DELIVERY_ID``: a parked delivery tried again.

Exit 0 on success, 1 when the hub refused or could not be reached (one line why).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hub.cli._admin import TokenOption, UrlOption, admin_api

__all__ = ["events_app", "webhooks_app"]

events_app = typer.Typer(help="Dead-lettered events of a running hub.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Vendor webhook deliveries of a running hub.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as JSON")]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="At most this many")]


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


@events_app.command("dead-letters")
def dead_letters(
    queue: Annotated[str, typer.Option(help="Only this queue (required on RabbitMQ)")] = "",
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """The events consumers gave up on, newest last."""
    params: dict[str, Any] = {"limit": limit, **({"queue": queue} if queue else {})}
    with admin_api(url, token, prefix="/admin/api/events") as api:
        letters = api.call("GET", "/dead-letters", params=params)
    if as_json:
        _print_json(letters)
        return
    for letter in letters:
        typer.echo(
            f"{letter['queue']}  {letter['event_id']}  {letter['event_type']}"
            f"  attempts={letter['attempts']}  dead_at={letter['dead_at']}  {letter['error']}"
        )
    typer.echo(f"{len(letters)} dead letter(s)")


@events_app.command("replay")
def replay(
    queue: Annotated[str, typer.Argument(help="The queue whose dead letters go back")],
    event_id: Annotated[
        list[str] | None, typer.Option("--id", help="Only this event (repeatable)")
    ] = None,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Put a queue's dead letters (all, or the ``--id`` ones) back on it."""
    body = {"queue": queue, "event_ids": event_id or None}
    with admin_api(url, token, prefix="/admin/api/events") as api:
        answer = api.call("POST", "/dead-letters/replay", body)
    typer.echo(f"replayed {answer['replayed']} event(s) on {queue}")


@webhooks_app.command("deliveries")
def deliveries(  # noqa: PLR0917 - a command's options, as typer reads them
    status: Annotated[str, typer.Option(help="pending, delivered or parked")] = "",
    subscription: Annotated[str, typer.Option(help="Only this subscription")] = "",
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Vendor webhook deliveries, by status or subscription."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if subscription:
        params["subscription_id"] = subscription
    with admin_api(url, token, prefix="/admin/api/webhooks") as api:
        found = api.call("GET", "/deliveries", params=params)
    if as_json:
        _print_json(found)
        return
    for item in found:
        typer.echo(
            f"{item['id']}  {item['status']}  {item['event_type']}  {item['event_id']}"
            f"  subscription={item['subscription_id']}  attempts={item['attempts']}"
            f"  last={item['last_status'] or '-'} {item['last_error'] or ''}".rstrip()
        )
    typer.echo(f"{len(found)} deliver(ies)")


@webhooks_app.command("replay")
def replay_delivery(
    delivery_id: Annotated[int, typer.Argument(help="A parked delivery's id")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
) -> None:
    """Try a parked delivery again (it goes back to pending)."""
    with admin_api(url, token, prefix="/admin/api/webhooks") as api:
        answer = api.call("POST", f"/deliveries/{delivery_id}/replay")
    typer.echo(f"delivery {answer['id']} is {answer['status']} again")
