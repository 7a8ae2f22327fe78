"""The ``hub`` command: serve, migrate, manage configuration versions, run the demo system."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from hub.backends.factory import build_notifier
from hub.cli._common import settings_or_exit
from hub.cli.demo import DEMO_ADMIN, DEMO_PEOPLE, ensure_demo_sso
from hub.cli.identity import apikeys_app, clients_app, ensure_demo_credentials, keys_app
from hub.cli.people import add_people_commands
from hub.cli.policies import policies_app
from hub.config.loader import load_directory
from hub.db.config_store import ConfigStore, StoredVersion
from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.errors import ConfigError, HubError
from hub.settings import PROJECT_ROOT, Settings

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(help="The hub: integration hub and API gateway.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration documents and versions.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(clients_app, name="clients")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(keys_app, name="keys")
app.add_typer(policies_app, name="policies")
add_people_commands(app)


class _DrainingServer(uvicorn.Server):
    """On the first signal the hub drains: new requests get 503 and readiness fails."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        from hub.asgi import drain_all  # noqa: PLC0415 - the app is loaded only to serve

        drain_all()
        # uvicorn's own handler also records the signal and re-raises it once drained, so the
        # process would die of it (exit -15); a drained stop is a clean one and exits 0.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C stops waiting for in-flight requests
        else:
            self.should_exit = True


def _uvicorn_config(settings: Settings, app_obj: object, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        app_obj,  # type: ignore[arg-type]
        factory=workers > 1,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the hub writes its own structured access log
        server_header=False,
        date_header=True,
        proxy_headers=False,  # X-Forwarded-* are judged by the hub against HUB_TRUSTED_PROXIES
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        timeout_keep_alive=30,
        log_config=None,
        log_level=settings.log_level if settings.log_level != "debug" else "debug",
    )


def _serve(settings: Settings, workers: int) -> None:
    if workers > 1:
        # Each worker process builds its own app from the same HUB_* environment, on one
        # listening socket shared by all; uvicorn's supervisor restarts a worker that dies.
        # Its workers drain the way uvicorn does (stop accepting, finish in-flight requests)
        # without the early 503 of the single-process server below.
        config = _uvicorn_config(settings, "hub.asgi:create_app", workers)
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    # Imported here: the web app (Litestar, the gateway) is loaded only by the commands that
    # serve it, so `hub keys rotate` and friends start fast.
    from hub.asgi import create_app  # noqa: PLC0415

    _DrainingServer(_uvicorn_config(settings, create_app(settings), 1)).run()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides HUB_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides HUB_PORT")] = None,
    workers: Annotated[int | None, typer.Option(help="Overrides HUB_WORKERS")] = None,
) -> None:
    """Serve the hub (gateway, admin API, catalog, health and metrics)."""
    settings = settings_or_exit()
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if overrides:
        settings = settings.with_overrides(**overrides)
    _serve(settings, workers or settings.workers)


@app.command("migrate")
def migrate_command() -> None:
    """Bring the database schema up to date (SQLite or PostgreSQL)."""
    settings = settings_or_exit()
    try:
        asyncio.run(migrate(settings.database_url))
    except HubError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database is up to date ({_safe_url(settings.database_url)})")


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url


@config_app.command("validate")
def config_validate(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
) -> None:
    """Check a configuration folder: schema and semantic errors, each with file and JSON path."""
    try:
        document = load_directory(path, contracts_dir=settings_or_exit().contracts_dir)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(issue, err=True)
        typer.echo(f"{len(exc.issues)} error(s)", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"ok: {len(document.upstreams)} upstream(s), {len(document.routes)} route(s), "
        f"{len(document.products)} product(s); checksum {document.checksum[:12]}"
    )


async def _with_store(settings: Settings, action: Callable[[ConfigStore], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url)
    try:
        return await action(ConfigStore(engine))
    finally:
        await engine.dispose()


async def _change(
    settings: Settings, action: Callable[[ConfigStore], Awaitable[StoredVersion]]
) -> tuple[StoredVersion, str | None]:
    """Store a change, then announce it to running replicas; the error if nobody was told."""
    stored = await _with_store(settings, action)
    if not settings.redis_url:
        return stored, None  # embedded: replicas share no channel and poll the database
    notifier = build_notifier(settings)
    try:
        await notifier.start()
        await notifier.publish(stored.version)
    except HubError as exc:
        return stored, exc.detail
    finally:
        await notifier.aclose()
    return stored, None


def _report_unannounced(problem: str | None) -> None:
    if problem is not None:
        typer.echo(
            f"warning: running hubs were not notified ({problem}); "
            "they pick the change up when they next poll the database",
            err=True,
        )


@config_app.command("publish")
def config_publish(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    comment: Annotated[str, typer.Option(help="Why this change")] = "",
    based_on: Annotated[
        int | None, typer.Option(help="Refuse if the active version is not this")
    ] = None,
) -> None:
    """Store a configuration folder as a new version and make it active; running hubs follow."""
    settings = settings_or_exit()
    try:
        document = load_directory(path, contracts_dir=settings.contracts_dir)
        stored, problem = asyncio.run(
            _change(
                settings,
                lambda store: store.publish(
                    document.raw,
                    checksum=document.checksum,
                    author="cli",
                    comment=comment,
                    expected_active=based_on,
                ),
            )
        )
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(issue, err=True)
        raise typer.Exit(1) from None
    except HubError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"published version {stored.version} (checksum {stored.checksum[:12]})")
    _report_unannounced(problem)


@config_app.command("history")
def config_history(limit: int = 20) -> None:
    """List stored configuration versions, newest first."""
    settings = settings_or_exit()
    try:
        versions = asyncio.run(_with_store(settings, lambda store: store.history(limit=limit)))
    except HubError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    for v in versions:
        mark = "*" if v.active else " "
        typer.echo(
            f"{mark} {v.version:>5}  {v.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{v.created_by:<16} {v.comment}"
        )


@config_app.command("rollback")
def config_rollback(version: int) -> None:
    """Make a stored version active again."""
    settings = settings_or_exit()
    try:
        stored, problem = asyncio.run(
            _change(settings, lambda store: store.activate(version, author="cli"))
        )
    except HubError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"version {stored.version} is active")
    _report_unannounced(problem)


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback URL we built
                if response.status < 500:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def _child(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, *args], cwd=PROJECT_ROOT
    )


@app.command()
def dev(
    echo_ports: Annotated[str, typer.Option(help="Ports of the demo echo upstreams")] = "9101,9102",
    portal_port: Annotated[int, typer.Option(help="Port of the demo citizen portal")] = 9200,
    idp_port: Annotated[int, typer.Option(help="Port of the sandbox national IdP")] = 9300,
) -> None:
    """Run the whole demo system on embedded defaults: upstreams, IdP sandbox, portal and hub."""
    settings = settings_or_exit()
    asyncio.run(migrate(settings.database_url))
    demo = asyncio.run(ensure_demo_credentials(settings))
    portal_url = f"http://127.0.0.1:{portal_port}"
    idp_url = f"http://127.0.0.1:{idp_port}"
    sso = asyncio.run(ensure_demo_sso(settings, portal_url=portal_url))
    # Federation with the sandbox national IdP, unless the environment names a real one.
    if settings.national_idp_issuer is None:
        settings = settings.with_overrides(
            national_idp_issuer=idp_url,
            national_idp_client_id=sso["idp_client_id"],
            national_idp_client_secret=sso["idp_client_secret"],
        )
    children: list[subprocess.Popen[bytes]] = []
    waits: list[tuple[str, str]] = []
    for index, port in enumerate(p.strip() for p in echo_ports.split(",") if p.strip()):
        children.append(_child("services.echo", "--port", port, "--name", f"echo-{index + 1}"))
        waits.append((f"the echo upstream on port {port}", f"http://127.0.0.1:{port}/healthz"))
    children.append(
        _child(
            "adapters.sandbox.national_idp",
            "--port",
            str(idp_port),
            "--client-id",
            sso["idp_client_id"],
            "--client-secret",
            sso["idp_client_secret"],
            "--redirect-uri",
            settings.issuer + "/account/federation/national/callback",
        )
    )
    waits.append(("the sandbox national IdP", f"{idp_url}/_sandbox/health"))
    children.append(
        _child(
            "services.portal",
            "--port",
            str(portal_port),
            "--hub",
            settings.issuer,
            "--client-id",
            sso["portal_client_id"],
        )
    )
    try:
        for name, url in waits:
            if not _wait_http(url, 20):
                typer.echo(f"error: {name} did not start", err=True)
                raise typer.Exit(1)
        base = f"http://{settings.host}:{settings.port}"
        totp = sso.get("totp") or {}
        lines = [
            "",
            "The hub is starting on embedded defaults (SQLite, in-process limiter and bus).",
            f"  gateway      {base}/api/echo/v1/items/42",
            f"  catalog      {base}/api/catalog",
            f"  API docs     {base}/schema",
            f"  health       {base}/healthz   {base}/readyz",
            f"  metrics      {base}/metrics",
            f"  admin API    {base}/admin/api/config/versions"
            + ("  (Authorization: Bearer $HUB_ADMIN_TOKEN)" if settings.admin_token_sha256 else ""),
            "",
            "Demo vendor platform (echo.read scope; kept in "
            f"{settings.data_dir.name}/demo-credentials.json):",
            f"  client_id      {demo['client_id']}",
            f"  client_secret  {demo['client_secret']}",
            f"  api_key        {demo['api_key']}",
            "  token          curl -u $CLIENT_ID:$CLIENT_SECRET"
            f" -d grant_type=client_credentials {base}/oauth2/token",
            f"  protected      {base}/api/echo/v1/secure/x  (Bearer token or X-API-Key)",
            "",
            "Sign in (SSO):",
            f"  citizen portal {portal_url}/   (a demo OIDC client of the hub)",
            f"  the hub        {base}/account/login",
            f"  national IdP   {idp_url}  (sandbox; every password is sandbox-pass)",
        ]
        lines += [
            f"  person         {person.identifier} / {person.password}"
            + ("  (+ TOTP)" if person.totp else "")
            + ("  platform admin" if person.identifier == DEMO_ADMIN else "")
            for person in DEMO_PEOPLE
        ]
        if totp:
            lines.append(
                f"  TOTP secret    {totp['secret']}  (recovery code {totp['recovery']}, once)"
            )
        lines.append(
            f"  admin API      {base}/admin/api/persons  (signed in as {DEMO_ADMIN} with TOTP)"
        )
        lines += ["", "Press Ctrl-C to stop.", ""]
        typer.echo("\n".join(lines))
        _serve(settings, 1)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)


def main() -> None:
    """Console-script entry point."""
    app()
