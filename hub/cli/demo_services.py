"""What the demo data of every domain service shares in ``hub dev``.

Each service's demo module (``demo_contracts``, ``demo_permits``, ...) keeps its secrets in a
file of its own under ``HUB_DATA_DIR`` (mode 0600), made once. It works inside
:func:`demo_data`, which reads that file, opens the hub's database and writes the file back when
all went well; there its clients are made unless the file names ones that still exist
(:meth:`DemoData.client`) and an owner's delegations granted unless held
(:meth:`DemoData.delegate`). The service is started with its ``<PREFIX>_*`` variables
(:func:`service_environment`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.db.engine import create_engine
from hub.db.identity_store import ClientStore
from hub.db.people_store import MAX_DELEGATION, PeopleStores
from hub.settings import Settings

__all__ = ["DemoData", "demo_data", "service_environment"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoData:
    """A service's demo credentials (kept when the work is done) and the hub's stores."""

    credentials: dict[str, str]
    clients: ClientStore
    people: PeopleStores

    async def client(self, *, name: str, owner: str, scopes: Sequence[str], key: str = "") -> None:
        """Make the client unless the credentials name one that exists; keep its id and secret.

        They are kept as ``<key>client_id`` and ``<key>client_secret``.
        """
        credentials = self.credentials
        if await self.clients.get(credentials.get(key + "client_id", "")) is not None:
            return
        client, secret = await self.clients.create(
            name=name, owner=owner, auth_method="client_secret_basic", scopes=list(scopes)
        )
        credentials[key + "client_id"] = client.client_id
        credentials[key + "client_secret"] = secret or ""

    async def delegate(
        self,
        establishment_id: str,
        *,
        grantor: str,
        scopes: Sequence[str],
        reason: str,
        grantee_person: str | None = None,
        grantee_client: str | None = None,
    ) -> None:
        """Delegate those of ``scopes`` the grantee does not hold yet, for as long as allowed."""
        grantee = grantee_client or grantee_person or ""
        held = await self.people.delegations.active_for(establishment_id, grantee)
        have = {scope for delegation in held for scope in delegation.scopes}
        missing = [scope for scope in scopes if scope not in have]
        if missing:
            await self.people.delegations.grant(
                establishment_id,
                grantor=grantor,
                scopes=missing,
                valid_until=datetime.now(UTC) + MAX_DELEGATION - timedelta(minutes=1),
                grantee_person=grantee_person,
                grantee_client=grantee_client,
                reason=reason,
            )


@asynccontextmanager
async def demo_data(settings: Settings, file: str) -> AsyncIterator[DemoData]:
    """The demo data kept in ``HUB_DATA_DIR/<file>``, written back (mode 0600) unless it fails."""
    path = settings.data_dir / file
    credentials: dict[str, str] = {}
    if path.is_file():
        credentials = json.loads(path.read_text(encoding="utf-8"))
    engine = create_engine(settings.database_url)
    try:
        yield DemoData(
            credentials=credentials, clients=ClientStore(engine), people=PeopleStores.on(engine)
        )
    finally:
        await engine.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(credentials, indent=2), encoding="utf-8")


def service_environment(
    prefix: str,
    settings: Settings,
    *,
    port: int,
    hub_url: str,
    client: tuple[str, str] | None = None,
    demo: bool = False,
) -> dict[str, str]:
    """The ``<prefix>*`` variables of a service next to this hub (its own database).

    ``client`` is the id and secret of the service's own client at the hub; ``demo`` turns on
    the service's demo data. The bus is the hub's: RabbitMQ when it has one, else the embedded
    bus in the hub's database, which every process opens.
    """
    variables = {
        f"{prefix}PORT": str(port),
        f"{prefix}DATA_DIR": str(settings.data_dir),
        f"{prefix}HUB_URL": hub_url,
        f"{prefix}HUB_ISSUER": settings.issuer,
        f"{prefix}EVENTS_NAMESPACE": settings.events_namespace,
    }
    if client is not None:
        variables[f"{prefix}CLIENT_ID"], variables[f"{prefix}CLIENT_SECRET"] = client
    if demo:
        variables[f"{prefix}DEMO"] = "true"
    if settings.amqp_url:
        variables[f"{prefix}AMQP_URL"] = settings.amqp_url
    else:
        variables[f"{prefix}BUS_DATABASE_URL"] = settings.database_url
    return variables
