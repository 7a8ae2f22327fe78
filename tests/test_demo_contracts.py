"""``hub dev``'s demo data for the contracts service: its client, Maria's delegation, variables."""

from __future__ import annotations

from pathlib import Path

from hub.cli.demo import ensure_demo_delegations, ensure_demo_sso
from hub.cli.demo_contracts import (
    CONTRACTS_SERVICE_SCOPES,
    contracts_service_environment,
    ensure_demo_contracts,
)
from hub.cli.identity import ensure_demo_credentials
from hub.db.engine import create_engine
from hub.db.identity_store import ClientStore
from hub.db.migrate import migrate
from hub.db.people_store import PeopleStores
from hub.settings import Settings
from services.contracts.settings import ContractSettings
from tests.hubproc import hub_env


async def test_the_demo_data_is_made_once_and_starts_the_service(tmp_path: Path) -> None:
    env = hub_env(tmp_path, tmp_path / "policies", 8080)
    env["HUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/hub.db"
    settings = Settings.from_env(env)
    await migrate(settings.database_url)
    await ensure_demo_sso(settings, portal_url="http://127.0.0.1:9200")
    vendor = await ensure_demo_credentials(settings)
    await ensure_demo_delegations(settings, vendor_client_id=vendor["client_id"])

    first = await ensure_demo_contracts(settings)
    second = await ensure_demo_contracts(settings)
    assert first == second  # made once, the same client on the next start
    assert (tmp_path / "data" / "demo-contracts.json").stat().st_mode & 0o077 == 0

    engine = create_engine(settings.database_url)
    try:
        client = await ClientStore(engine).get(first["client_id"])
        assert client is not None
        assert client.owner == "contracts"  # the audience the signing endpoint accepts
        assert set(client.scopes) == set(CONTRACTS_SERVICE_SCOPES)
        people = PeopleStores.on(engine)
        maria = await people.persons.by_identifier("2000000001")
        omar = await people.persons.by_identifier("1000000002")
        assert maria is not None
        assert omar is not None
        assert first["employee_id"] == omar.id
        held = await people.delegations.active_for(first["establishment_id"], maria.id)
        assert sum("contracts.manage" in d.scopes for d in held) == 1
    finally:
        await engine.dispose()

    variables = contracts_service_environment(settings, first, port=9520, hub_url="http://h")
    service = ContractSettings.from_env(variables)
    assert (service.port, service.client_id, service.hub_url) == (
        9520,
        first["client_id"],
        "http://h",
    )
    assert service.bus_database_url == settings.database_url
    assert service.demo is True
