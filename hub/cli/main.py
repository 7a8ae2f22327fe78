"""The ``hub`` command: serve, migrate, manage configuration versions, run the demo system."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
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
from hub.cli.audit import audit_app
from hub.cli.demo import (
    DEMO_ADMIN,
    DEMO_CR_NUMBER,
    DEMO_PEOPLE,
    ensure_demo_delegations,
    ensure_demo_payments,
    ensure_demo_sso,
    payment_lines,
    payment_sandbox_args,
)
from hub.cli.demo_contracts import contracts_service_environment, ensure_demo_contracts
from hub.cli.demo_notifications import (
    ensure_demo_notifications,
    notification_lines,
    notification_service_environment,
    notify_sandbox_args,
)
from hub.cli.demo_permits import DEMO_WORKER, ensure_demo_permits, permit_service_environment
from hub.cli.demo_registry import (
    REGISTRY_SERVICES,
    ensure_demo_registry,
    registry_service_environments,
)
from hub.cli.demo_visas import DEMO_OFFICER, ensure_demo_visas, visa_service_environment
from hub.cli.events import events_app, webhooks_app
from hub.cli.identity import apikeys_app, clients_app, ensure_demo_credentials, keys_app
from hub.cli.payments import payments_app
from hub.cli.people import add_people_commands
from hub.cli.policies import policies_app
from hub.cli.subscriptions import ensure_demo_subscription, subscriptions_app
from hub.config.governance import check_approval, protected_changes
from hub.config.loader import load_directory
from hub.db.config_store import ConfigStore, StoredVersion
from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.errors import ConfigError, HubError
from hub.settings import PROJECT_ROOT, Settings, child_environment

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(help="The hub: integration hub and API gateway.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration documents and versions.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(clients_app, name="clients")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(keys_app, name="keys")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(policies_app, name="policies")
app.add_typer(audit_app, name="audit")
app.add_typer(payments_app, name="payments")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")
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


_CLI_APPROVAL_ADVICE = (
    "`hub config publish` writes straight to the database, where nobody can approve it; use"
    " `hub policies apply` against a running hub and have another admin approve the draft"
)


@config_app.command("publish")
def config_publish(
    path: Annotated[Path, typer.Argument(help="A folder of policy documents (YAML)")],
    comment: Annotated[str, typer.Option(help="Why this change")] = "",
    based_on: Annotated[
        int | None, typer.Option(help="Refuse if the active version is not this")
    ] = None,
) -> None:
    """Store a configuration folder as a new version and make it active; running hubs follow.

    Straight to the database, so no second admin can approve: a change of protected
    configuration (four eyes) is refused here; publish it through `hub policies apply`.
    """
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
                    protect=lambda active: check_approval(
                        active.document if active is not None else None,
                        document.raw,
                        approved_by=None,
                        advice=_CLI_APPROVAL_ADVICE,
                    ),
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

    async def rollback(store: ConfigStore) -> StoredVersion:
        target = await store.get(version)
        after = target.document if target is not None else {}
        return await store.activate(
            version,
            author="cli",
            # No approval (a rollback stays one step), but the audit names what it changed.
            protect=lambda active: (
                [
                    item.as_json()
                    for item in protected_changes(active.document if active else None, after)
                ]
                or None
            ),
        )

    try:
        stored, problem = asyncio.run(_change(settings, rollback))
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


def _child(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env
    )


@app.command()
def dev(
    *,
    echo_ports: Annotated[str, typer.Option(help="Ports of the demo echo upstreams")] = "9101,9102",
    portal_port: Annotated[int, typer.Option(help="Port of the demo citizen portal")] = 9200,
    idp_port: Annotated[int, typer.Option(help="Port of the sandbox national IdP")] = 9300,
    registry_ports: Annotated[
        str, typer.Option(help="Ports of the sandbox civil, commercial and education registries")
    ] = "9401,9402,9403",
    receiver_port: Annotated[
        int, typer.Option(help="Port of the sandbox vendor webhook receiver")
    ] = 9500,
    payment_port: Annotated[int, typer.Option(help="Port of the sandbox payment provider")] = 9501,
    visas_port: Annotated[int, typer.Option(help="Port of the visa service")] = 9510,
    permits_port: Annotated[int, typer.Option(help="Port of the work permits service")] = 9530,
    # employment contracts (issue 7)
    contracts_port: Annotated[int, typer.Option(help="Port of the contracts service")] = 9520,
    notifications_port: Annotated[
        int, typer.Option(help="Port of the notification service")
    ] = 9600,
    sms_port: Annotated[int, typer.Option(help="Port of the sandbox SMS provider")] = 9601,
    email_port: Annotated[int, typer.Option(help="Port of the sandbox e-mail provider")] = 9602,
    # issue 7: the occupations, certificates and compliance services
    registry_services_ports: Annotated[
        str, typer.Option(help="Ports of the occupations, certificates and compliance services")
    ] = "9540,9550,9560",
) -> None:
    """Run the whole demo system on embedded defaults: upstreams, IdP sandbox, portal and hub."""
    settings = settings_or_exit()
    asyncio.run(migrate(settings.database_url))
    demo = asyncio.run(ensure_demo_credentials(settings))
    subscription = asyncio.run(ensure_demo_subscription(settings, demo["client_id"]))
    portal_url = f"http://127.0.0.1:{portal_port}"
    idp_url = f"http://127.0.0.1:{idp_port}"
    sso = asyncio.run(ensure_demo_sso(settings, portal_url=portal_url))
    establishment = asyncio.run(
        ensure_demo_delegations(settings, vendor_client_id=demo["client_id"])
    )
    payer = asyncio.run(ensure_demo_payments(settings))
    visas = asyncio.run(ensure_demo_visas(settings))
    permits = asyncio.run(ensure_demo_permits(settings))  # work permits (services/work_permits)
    contracts = asyncio.run(ensure_demo_contracts(settings))  # employment contracts (issue 7)
    notifier = asyncio.run(ensure_demo_notifications(settings))
    registry_demo = asyncio.run(ensure_demo_registry(settings))
    # Federation with the sandbox national IdP, unless the environment names a real one.
    if settings.national_idp_issuer is None:
        settings = settings.with_overrides(
            national_idp_issuer=idp_url,
            national_idp_client_id=sso["idp_client_id"],
            national_idp_client_secret=sso["idp_client_secret"],
        )
    children: list[subprocess.Popen[bytes]] = []
    waits: list[tuple[str, str]] = []
    # The sandbox registrars the demo adapters (policies/adapters.yaml) call, each with a key
    # made for this run; the hub gets them as its adapter secrets unless HUB_* named others.
    registries = [p.strip() for p in registry_ports.split(",") if p.strip()]
    secrets_by_name = dict(settings.adapter_secrets)
    for name, port in zip(("civil", "commercial", "education"), registries, strict=False):
        key = secrets_by_name.setdefault(f"{name}_registry_key", secrets.token_urlsafe(16))
        children.append(
            _child(
                f"adapters.sandbox.{name}_registry",
                *("--port", port, f"--api-key={key}", "--quota", "50" if name == "civil" else "0"),
                *("--quota-burst", "5"),
            )
        )
        waits.append((f"the sandbox {name} registry", f"http://127.0.0.1:{port}/_sandbox/health"))
    # The sandbox payment provider, its webhooks pointed at the hub's webhook route.
    children.append(
        _child(
            "adapters.sandbox.payment_provider",
            *payment_sandbox_args(payment_port, settings.issuer, secrets_by_name),
        )
    )
    waits.append(
        ("the sandbox payment provider", f"http://127.0.0.1:{payment_port}/_sandbox/health")
    )
    # Notifications: the sandbox SMS and e-mail providers, their receipts called back to the hub.
    for kind, sandbox_port in (("sms", sms_port), ("email", email_port)):
        children.append(
            _child(
                f"adapters.sandbox.{kind}_provider",
                *notify_sandbox_args(kind, sandbox_port, settings.issuer, secrets_by_name),
            )
        )
        waits.append(
            (f"the sandbox {kind} provider", f"http://127.0.0.1:{sandbox_port}/_sandbox/health")
        )
    settings = settings.with_overrides(adapter_secrets=secrets_by_name)
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
            # one argument: a secret starting with "-" would read as an option
            f"--client-secret={sso['idp_client_secret']}",
            "--redirect-uri",
            settings.issuer + "/account/federation/national/callback",
        )
    )
    waits.append(("the sandbox national IdP", f"{idp_url}/_sandbox/health"))
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    children.append(_child("adapters.sandbox.vendor_receiver", "--port", str(receiver_port)))
    waits.append(("the sandbox vendor receiver", f"{receiver_url}/healthz"))
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
    # The visa service (services/visas): its own database in the data folder, the hub's
    # gateway as its only way out (with the client made above), events on the hub's bus.
    hub_url = f"http://{settings.host}:{settings.port}"
    children.append(
        _child(
            "services.visas",
            env=child_environment(
                visa_service_environment(settings, visas, port=visas_port, hub_url=hub_url)
            ),
        )
    )
    waits.append(("the visa service", f"http://127.0.0.1:{visas_port}/healthz"))
    # ---- Work permits (services/work_permits): its own database, the hub's bus ----
    children.append(
        _child(
            "services.work_permits",
            env=child_environment(
                permit_service_environment(settings, permits, port=permits_port, hub_url=hub_url)
            ),
        )
    )
    waits.append(("the work permits service", f"http://127.0.0.1:{permits_port}/healthz"))
    # ---- employment contracts (issue 7): the contracts service (services/contracts), its
    # own database in the data folder, the hub as its only way out, events on the hub's bus.
    children.append(
        _child(
            "services.contracts",
            env=child_environment(
                contracts_service_environment(
                    settings, contracts, port=contracts_port, hub_url=hub_url
                )
            ),
        )
    )
    waits.append(("the contracts service", f"http://127.0.0.1:{contracts_port}/healthz"))
    # The notification service (services/notifications): its own database, the hub's SMS and
    # e-mail routes as its only way out, notification.requested and receipts from the bus.
    children.append(
        _child(
            "services.notifications",
            env=child_environment(
                notification_service_environment(
                    settings, notifier, port=notifications_port, hub_url=hub_url
                )
            ),
        )
    )
    waits.append(("the notification service", f"http://127.0.0.1:{notifications_port}/healthz"))
    # Issue 7: the occupations, certificates and compliance services, each with its own
    # database in the data folder, the hub's gateway as the way out, events on the hub's bus.
    service_ports = dict(
        zip(
            REGISTRY_SERVICES,
            (int(p) for p in registry_services_ports.split(",") if p.strip()),
            strict=True,
        )
    )
    service_envs = registry_service_environments(
        settings, registry_demo, ports=service_ports, hub_url=hub_url
    )
    for name, (module, _, _) in REGISTRY_SERVICES.items():
        children.append(_child(module, env=child_environment(service_envs[name])))
        waits.append((f"the {name} service", f"http://127.0.0.1:{service_ports[name]}/healthz"))
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
            f"  acting for     ... -d establishment={DEMO_CR_NUMBER}  (delegated by Demo Trading"
            " Co: the token carries its establishment)",
            f"  establishment  {base}/api/echo/v1/establishments/{establishment}/records"
            "  (that token, or Maria the HR officer signed in)",
            (
                f"  subscription   {subscription.id}: {subscription.product} under plan"
                f" {subscription.plan!r} ({subscription.status})"
                if subscription is not None
                else "  subscription   none (the configuration in use has no plans)"
            ),
            "",
            "Sandbox registrars (adapters; control: POST /_sandbox/faults, GET /_sandbox/stats):",
            *(
                f"  {name:<14} http://127.0.0.1:{port}"
                for name, port in zip(
                    ("civil", "commercial", "education"), registries, strict=False
                )
            ),
            f"  a read         {base}/api/registry/v1/persons/1000000001?purpose=visa-eligibility",
            "                 (a client with scope registry.visa-eligibility: hub clients create"
            " --name demo --owner demo --scopes registry.visa-eligibility)",
            f"  who read me    {base}/api/me/v1/data-access  (signed in as the person)",
            *payment_lines(base, payment_port, payer),
            "",
            "Vendor webhooks (signed per Standard Webhooks; the demo vendor may subscribe):",
            f"  subscribe      POST {base}/api/webhooks/v1/subscriptions"
            f' {{"url": "{receiver_url}/hooks/demo", "event_types": ["webhook.test"]}}',
            f"  receiver       {receiver_url}  (PUT /_sandbox/endpoints/demo {{secret}},"
            " GET /_sandbox/received, POST /_sandbox/faults)",
            f"  test delivery  POST {base}/api/webhooks/v1/subscriptions/{{id}}/test",
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
        lines += [
            "",
            f'Visa service (services/visas, port {visas_port}; README "Visas" walks the flow):',
            f"  occupations    {base}/api/visas/v1/occupations?q=software",
            f"  HR suite       client_id {visas['vendor_client_id']}"
            f"  client_secret {visas['vendor_client_secret']}",
            "  its token      curl -u $ID:$SECRET -d grant_type=client_credentials"
            f" -d establishment=4030000001 -d scope=visas.apply {base}/oauth2/token",
            f"  apply          POST {base}/api/visas/v1/establishments/{establishment}/applications"
            "  (Bearer token, Idempotency-Key)",
            f"  review queue   {base}/api/visas/v1/review/applications?state=in_review"
            f"  (signed in as {DEMO_OFFICER}, agency officer)",
            f"  verify         {base}/api/visas/v1/verify/<visa number>?code=<code>",
            "",
            "Occupations, certificates, compliance (README sections of those names):",
            f"  catalogue      {base}/api/occupations/v1/occupations?q=engineer",
            f"  change         POST {base}/api/occupations/v1/establishments/"
            f"{registry_demo['establishment_id']}/change-requests  (Maria, occupations.manage)",
            f"  certificate    POST {base}/api/certificates/v1/me/certificates  (signed in as"
            " 1000000001: QC-2010-000001, bachelor, King Saud University, 2010)",
            f"  standing       {base}/api/compliance/v1/establishments/"
            f"{registry_demo['establishment_id']}/standing  (Maria, compliance.read)",
        ]
        # ---- Work permits (services/work_permits) ----
        lines += [
            "",
            f'Work permits (services/work_permits, port {permits_port}; README "Work permits"):',
            f"  permits suite  client_id {permits['vendor_client_id']}"
            f"  client_secret {permits['vendor_client_secret']}",
            "  its token      curl -u $ID:$SECRET -d grant_type=client_credentials"
            f" -d establishment=4030000001 -d scope=permits.manage {base}/oauth2/token",
            f"  issue          POST {base}/api/permits/v1/establishments/{establishment}/permits"
            ' {"visa_number": "W900000001", "contract_id": "ct-demo-1"}  (Idempotency-Key)',
            f"  the worker     {base}/api/permits/v1/me/permits  (signed in as {DEMO_WORKER})",
        ]
        # ---- employment contracts (issue 7)
        lines += [
            "",
            f"Contracts service (services/contracts, port {contracts_port}; README "
            '"Employment contracts" walks the flow):',
            f"  draft          POST {base}/api/contracts/v1/establishments/"
            f"{contracts['establishment_id']}/contracts  (signed in as 2000000001, HR officer)",
            f"  employee       person id {contracts.get('employee_id', '?')} (1000000002)"
            f"  sees {base}/api/contracts/v1/me/contracts",
        ]
        lines += notification_lines(
            base, port=notifications_port, sms_port=sms_port, email_port=email_port
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
