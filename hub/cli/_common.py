"""What every ``hub`` command shares: the settings, and one database action per command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from hub.db.engine import create_engine
from hub.db.identity_store import AsyncEngine
from hub.errors import ConfigError, HubError
from hub.settings import Settings

T = TypeVar("T")


def settings_or_exit() -> Settings:
    """The settings from ``HUB_*``; each bad variable on stderr and exit 2 otherwise."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(f"error: {issue}", err=True)
        raise typer.Exit(2) from None


def run_on_database(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run one action on the hub's database; a hub error is one line on stderr and exit 1."""
    settings = settings_or_exit()

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except HubError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
