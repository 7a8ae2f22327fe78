"""The end-to-end tests' fleet: the sandboxes, the hub on them, the services, a listener on the bus.

One wiring for the services' e2e modules (visas, permits, contracts, registry, the journey): the
sandbox civil, commercial and education registries always, the sandbox payment provider and the
SMS and e-mail providers when a test asks for them; the repository's policies pointed at them
and at the services; ``hub serve`` on the test's back-end set, under a new events namespace; a
client at the hub for each service that calls it; the services themselves
(:func:`tests.service_processes.run_services`); and a bus of the same set recording the events
the test listens for.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import Row, text

from hub.backends.events.base import Event, EventBus
from hub.backends.factory import build_event_bus_for
from hub.db.engine import create_engine
from hub.db.people_store import PeopleStores
from hub.settings import Settings
from tests.fixtures_services import events_namespace, free_port
from tests.helpers import LoopThread, until
from tests.hubproc import ROOT, HubProcess, hub_command, hub_env, run_hub
from tests.notify_support import (
    Sandbox,
    notify_adapters,
    notify_secrets_env,
    run_notify_sandboxes,
)
from tests.payments_support import API_KEY, WEBHOOK_SECRET, Provider, adapter_item, run_provider
from tests.registrars import adapter_document, run_sandboxes, secrets_env
from tests.service_processes import Service, person_token, run_services
from tests.sso_e2e_support import TIMEOUT

__all__ = [
    "CERTIFICATES",
    "COMPLIANCE",
    "CONTRACTS",
    "NOTIFICATIONS",
    "OCCUPATIONS",
    "PERMITS",
    "VISAS",
    "Fleet",
    "Planned",
    "delegating_establishment",
    "people_stores",
    "run_fleet",
]


@dataclass(frozen=True, kw_only=True)
class Planned:
    """A service the fleet starts, and what the hub must know of it."""

    module: str
    prefix: str
    #: its id in ``policies/upstreams.yaml``
    upstream: str
    #: its client's scopes at the hub; None: it has no client
    scopes: str | None = None
    probe: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


NOTIFICATIONS = Planned(
    module="notifications", prefix="NOTIFICATIONS", upstream="notifications",
    scopes="notifications.send", extra={"NOTIFICATIONS_DISPATCH_SECONDS": "0.2"},
)  # fmt: skip
VISAS = Planned(
    module="visas", prefix="VISAS", upstream="visas",
    scopes="registry.visa-eligibility payments.write payments.read payments.refund",
    probe="/api/visas/v1/reasons", extra={"VISAS_SWEEP_SECONDS": "3600"},
)  # fmt: skip
CONTRACTS = Planned(
    module="contracts", prefix="CONTRACTS", upstream="contracts",
    scopes="registry.employment-contract signatures.sign",
    probe="/api/contracts/v1/reasons", extra={"CONTRACTS_SWEEP_SECONDS": "3600"},
)  # fmt: skip
PERMITS = Planned(
    module="work_permits", prefix="PERMITS", upstream="permits",
    scopes="payments.write payments.read",
    probe="/api/permits/v1/reasons", extra={"PERMITS_SWEEP_SECONDS": "3600"},
)  # fmt: skip
OCCUPATIONS = Planned(
    module="occupations", prefix="OCCUPATIONS", upstream="occupations",
    probe="/api/occupations/v1/reasons",
)  # fmt: skip
CERTIFICATES = Planned(
    module="certificates", prefix="CERTIFICATES", upstream="certificates",
    scopes="registry.qualification-verification",
)  # fmt: skip
COMPLIANCE = Planned(
    module="compliance", prefix="COMPLIANCE", upstream="compliance",
    scopes="registry.compliance-monitoring", extra={"COMPLIANCE_REFRESH_SECONDS": "0.5"},
)  # fmt: skip


@dataclass
class Fleet:
    """What a test drives: the hub, its back-end set, the sandboxes and the recorded events."""

    hub: HubProcess
    backends: dict[str, str]
    tmp: Path
    loop: LoopThread
    bus: EventBus
    events: list[Event]
    urls: dict[str, str]
    provider: Provider | None
    notify: dict[str, Sandbox]

    def database_url(self) -> str:
        env = hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends)
        return Settings.from_env(env).database_url

    def token(self, identifier: str) -> dict[str, str]:
        """The person signs in through the hub's SSO login: their bearer header."""
        access = person_token(self.tmp, self.hub, self.backends, identifier)
        return {"Authorization": f"Bearer {access}"}

    def client(self, name: str, owner: str, scopes: str) -> dict[str, str]:
        """A new client at the hub (``hub clients create``): its id and secret."""
        return hub_command(
            self.tmp, self.hub, self.backends,
            "clients", "create", "--name", name, "--owner", owner, "--scopes", scopes,
        )  # fmt: skip

    def acting_for(self, client: Mapping[str, str], cr: str, scopes: str) -> dict[str, str]:
        """The client acts for the establishment: a delegated client-credentials bearer header."""
        issued = httpx.post(
            f"{self.hub.url}/oauth2/token",
            data={"grant_type": "client_credentials", "establishment": cr, "scope": scopes},
            auth=(client["client_id"], client["client_secret"]),
            timeout=TIMEOUT,
        )
        assert issued.status_code == 200, issued.text
        return {"Authorization": f"Bearer {issued.json()['access_token']}"}

    def payments(self) -> Provider:
        assert self.provider is not None, "the fleet runs no payment provider"
        return self.provider

    def wait_events(
        self, predicate: Callable[[Event], bool], what: str, seconds: float = 30
    ) -> list[Event]:
        """The recorded events ``predicate`` holds for, once there is one."""
        found: list[Event] = until(
            lambda: [e for e in list(self.events) if predicate(e)],
            lambda: f"no {what}: {[e.type for e in self.events]}",
            seconds=seconds,
        )
        return found

    def audit(self) -> list[Row[Any]]:
        """Every registrar read in the hub's audit chain."""
        return self.loop.run(_audit(self.database_url()))

    def verify_audit(self) -> None:
        """``hub audit verify`` holds: the chain of registrar reads is unbroken."""
        checked = subprocess.run(
            [sys.executable, "-m", "hub", "audit", "verify"],
            check=False,
            env=hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.tmp.glob("*.log"))
        )


@asynccontextmanager
async def people_stores(url: str) -> AsyncIterator[PeopleStores]:
    """The hub's people stores on its database, for arranging a test's establishments."""
    engine = create_engine(url)
    try:
        yield PeopleStores.on(engine)
    finally:
        await engine.dispose()


async def delegating_establishment(
    people: PeopleStores,
    cr: str,
    name: str,
    owner: str,
    scopes: Sequence[str],
    *,
    grantee_client: str,
) -> str:
    """An establishment whose owner delegates ``scopes`` to a client for 30 days: its id."""
    establishment = await people.establishments.create(
        cr_number=cr, name=name, sector="retail", size="small"
    )
    await people.establishments.add_member(establishment.id, owner, "owner")
    await people.delegations.grant(
        establishment.id,
        grantor=owner,
        scopes=list(scopes),
        valid_until=datetime.now(UTC) + timedelta(days=30),
        grantee_client=grantee_client,
    )
    return establishment.id


async def _audit(url: str) -> list[Row[Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT adapter, operation, purpose, client_id, record_ref, person_ref"
                    " FROM registrar_audit"
                )
            )
            return list(rows.all())
    finally:
        await engine.dispose()


def _policies(
    folder: Path,
    sandboxes: Mapping[str, Any],
    provider: Provider | None,
    notify: Mapping[str, Sandbox],
    urls: Mapping[str, str],
) -> Path:
    """The repository's policies, pointed at this fleet's sandboxes and services.

    The payment and notify adapters the fleet does not run stay as the repository has them:
    the hub's routes name them.
    """
    shutil.copytree(ROOT / "policies", folder)
    adapters = yaml.safe_load((folder / "adapters.yaml").read_text())
    kept = {"payment-provider"} if provider is None else set()
    if not notify:
        kept |= {"sms-provider", "email-provider"}
    adapters["adapters"] = [
        *adapter_document(sandboxes),
        *([] if provider is None else [adapter_item(provider)]),
        *notify_adapters(notify),
        *(a for a in adapters["adapters"] if a["id"] in kept),
    ]
    (folder / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    upstreams = yaml.safe_load((folder / "upstreams.yaml").read_text())
    for upstream in upstreams["upstreams"]:
        if upstream["id"] in urls:
            upstream["targets"] = [{"url": urls[upstream["id"]]}]
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return folder


@contextmanager
def run_fleet(
    tmp: Path,
    backends: Mapping[str, str],
    planned: Sequence[Planned],
    *,
    listen: Mapping[str, Sequence[str]],
    payments: bool = True,
    notify: bool = False,
) -> Iterator[Fleet]:
    """Start the fleet on ``backends``; ``listen`` maps the test's queues to their patterns."""
    namespace = events_namespace()
    backends = {**backends, "HUB_EVENTS_NAMESPACE": namespace}
    ports = {plan.module: free_port() for plan in planned}
    urls = {plan.upstream: f"http://127.0.0.1:{ports[plan.module]}" for plan in planned}
    with ExitStack() as stack:
        sandboxes = stack.enter_context(run_sandboxes(tmp / "sandboxes"))
        provider = stack.enter_context(run_provider(tmp / "provider")) if payments else None
        boxes = stack.enter_context(run_notify_sandboxes(tmp / "notify")) if notify else {}
        policies = _policies(tmp / "policies", sandboxes, provider, boxes, urls)
        env = {
            "HUB_ACCESS_LOG": "false",
            "HUB_CONFIG_POLL_SECONDS": "0.5",
            **secrets_env(),
            **(notify_secrets_env() if notify else {}),
            "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": API_KEY,
            "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **backends,
        }
        hub = stack.enter_context(run_hub(tmp, policies, env=env))
        loop = LoopThread()
        stack.callback(loop.close)
        if provider is not None:
            loop.run(
                provider.point_webhooks(f"{hub.url}/api/payments/v1/webhooks/payment-provider")
            )
        for name, box in boxes.items():
            loop.run(box.point_receipts(f"{hub.url}/api/callbacks/v1/{name}"))
        hub_settings = Settings.from_env(hub_env(tmp, policies, hub.port, extra=backends))
        services = []
        for plan in planned:
            credentials = None
            if plan.scopes is not None:
                credentials = hub_command(
                    tmp, hub, backends, "clients", "create", "--name", f"{plan.module} service",
                    "--owner", plan.module, "--scopes", plan.scopes,
                )  # fmt: skip
            services.append(
                Service(
                    plan.module,
                    plan.prefix,
                    ports[plan.module],
                    credentials,
                    plan.extra,
                    plan.probe,
                )
            )
        events: list[Event] = []
        bus = build_event_bus_for(
            amqp_url=hub_settings.amqp_url,
            database_url=hub_settings.database_url,
            namespace=namespace,
        )

        async def start() -> None:
            async def record(event: Event) -> None:
                events.append(event)

            await bus.start()
            for queue, patterns in listen.items():
                for pattern in patterns:
                    await bus.subscribe(f"{namespace}.test.{queue}", pattern, record)

        stack.callback(lambda: loop.run(bus.aclose()))
        loop.run(start())
        stack.enter_context(run_services(tmp, hub, backends, namespace, services))
        yield Fleet(
            hub=hub,
            backends=backends,
            tmp=tmp,
            loop=loop,
            bus=bus,
            events=events,
            urls=urls,
            provider=provider,
            notify=boxes,
        )
