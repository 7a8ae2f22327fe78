"""``hub subscriptions``: vendor applications' subscriptions, straight on the database.

The rules are the active configuration's (the version in the database, or the policies folder
before the first start), as in the admin API. The CLI acts as ``cli``; a running hub sees a
change within ``HUB_SUBSCRIPTION_CACHE_SECONDS`` (its admin API applies one at once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from hub.cli._common import run_on_database, settings_or_exit
from hub.config.loader import document_from_raw, load_directory
from hub.config.model import ConfigDocument
from hub.db.config_store import ConfigStore
from hub.db.engine import create_engine
from hub.db.identity_store import AsyncEngine
from hub.db.subscription_store import Subscription, SubscriptionStore
from hub.errors import NotFound
from hub.plans.book import compile_plans
from hub.plans.subscriptions import SubscriptionService
from hub.settings import Settings

__all__ = ["ensure_demo_subscription", "subscriptions_app"]

T = TypeVar("T")
_ACTOR = "cli"

subscriptions_app = typer.Typer(
    help="Subscriptions of vendor applications to API products under a plan.",
    no_args_is_help=True,
)


async def _document(engine: AsyncEngine, settings: Settings) -> ConfigDocument:
    """The active version, or the policies folder before the hub first stored one."""
    active = await ConfigStore(engine).active()
    if active is not None:
        return document_from_raw(active.document, contracts_dir=settings.contracts_dir)
    return load_directory(settings.policies_dir, contracts_dir=settings.contracts_dir)


async def _service(engine: AsyncEngine, settings: Settings) -> SubscriptionService:
    book = compile_plans(await _document(engine, settings))
    return SubscriptionService(SubscriptionStore(engine), lambda: book)


def _show(subscription: Subscription) -> None:
    typer.echo(f"id:        {subscription.id}")
    typer.echo(f"client_id: {subscription.client_id}")
    typer.echo(f"product:   {subscription.product}")
    typer.echo(f"plan:      {subscription.plan}")
    typer.echo(f"status:    {subscription.status}")


def _act(action: Callable[[SubscriptionService], Awaitable[Subscription]]) -> None:
    settings = settings_or_exit()

    async def run(engine: AsyncEngine) -> Subscription:
        return await action(await _service(engine, settings))

    _show(run_on_database(run))


@subscriptions_app.command("create")
def create(
    *,
    client: Annotated[str, typer.Option(help="The application's OAuth client id")],
    product: Annotated[str, typer.Option(help="The product id")],
    plan: Annotated[str, typer.Option(help="A plan the product offers")],
    reason: Annotated[str, typer.Option(help="Recorded with the change")] = "",
) -> None:
    """Subscribe an application (pending when the product needs approval)."""
    _act(
        lambda s: s.create(
            client_id=client, product=product, plan=plan, actor=_ACTOR, reason=reason
        )
    )


@subscriptions_app.command("list")
def list_(
    client: Annotated[str | None, typer.Option(help="Only this client's")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product's")] = None,
    status: Annotated[str | None, typer.Option(help="pending, active, rejected, cancelled")] = None,
) -> None:
    """List subscriptions, oldest first."""

    async def run(engine: AsyncEngine) -> list[Subscription]:
        store = SubscriptionStore(engine)
        return await store.list(client_id=client, product=product, status=status, limit=500)

    for s in run_on_database(run):
        typer.echo(f"{s.id}  {s.client_id}  {s.product:<16} {s.plan:<12} {s.status}")


@subscriptions_app.command("approve")
def approve(
    subscription_id: str, reason: Annotated[str, typer.Option(help="Recorded")] = ""
) -> None:
    """Approve a pending subscription."""
    _act(lambda s: s.approve(subscription_id, actor=_ACTOR, reason=reason))


@subscriptions_app.command("reject")
def reject(subscription_id: str, reason: Annotated[str, typer.Option(help="Why")]) -> None:
    """Reject a pending subscription (a reason is required)."""
    _act(lambda s: s.reject(subscription_id, actor=_ACTOR, reason=reason))


@subscriptions_app.command("cancel")
def cancel(
    subscription_id: str, reason: Annotated[str, typer.Option(help="Recorded")] = ""
) -> None:
    """Cancel a pending or active subscription."""
    _act(lambda s: s.cancel(subscription_id, actor=_ACTOR, reason=reason))


@subscriptions_app.command("change-plan")
def change_plan(
    subscription_id: str,
    plan: str,
    reason: Annotated[str, typer.Option(help="Recorded")] = "",
) -> None:
    """Move a pending or active subscription to another plan its product offers."""
    _act(lambda s: s.change_plan(subscription_id, plan, actor=_ACTOR, reason=reason))


async def ensure_demo_subscription(
    settings: Settings, client_id: str, *, product: str = "echo", plan: str = "standard"
) -> Subscription | None:
    """Subscribe the demo vendor to the demo product once (``hub dev``).

    Nothing happens when the configuration in use has no subscriptions for the product (an
    older demo database), or the vendor already has a live subscription to it.
    """
    engine = create_engine(settings.database_url)
    try:
        service = await _service(engine, settings)
        existing = await service.store.live(client_id, product)
        try:
            rules = service.rules(product)
        except NotFound:  # a configuration without subscriptions to the product
            return existing
        if existing is not None or not rules.offered:
            return existing
        chosen = plan if rules.offers(plan) else rules.offered[0]
        subscription = await service.create(
            client_id=client_id, product=product, plan=chosen, actor="demo", reason="hub dev"
        )
        if subscription.status == "pending":
            subscription = await service.approve(subscription.id, actor="demo", reason="hub dev")
        return subscription
    finally:
        await engine.dispose()
