"""The demo data of the issue-7 services in ``hub dev``: clients, Maria's delegations, variables."""

from __future__ import annotations

from pathlib import Path

from hub.cli.demo import DEMO_CR_NUMBER, ensure_demo_delegations, ensure_demo_sso
from hub.cli.demo_registry import ensure_demo_registry, registry_service_environments
from hub.cli.identity import ensure_demo_credentials
from hub.db.engine import create_engine
from hub.db.identity_store import ClientStore
from hub.db.migrate import migrate
from hub.db.people_store import PeopleStores
from hub.identity.directory import Directory
from hub.settings import Settings
from services.certificates.settings import CertificateSettings
from services.compliance.settings import ComplianceSettings
from services.occupations.settings import OccupationSettings


async def test_the_services_get_clients_maria_her_delegations_and_settings(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path / "data"
    )
    await migrate(settings.database_url)
    vendor = await ensure_demo_credentials(settings)
    await ensure_demo_sso(settings, portal_url="http://127.0.0.1:9200")
    await ensure_demo_delegations(settings, vendor_client_id=vendor["client_id"])
    first = await ensure_demo_registry(settings)
    again = await ensure_demo_registry(settings)
    assert first == again  # made once, kept in the data folder

    engine = create_engine(settings.database_url)
    try:
        clients = ClientStore(engine)
        certificates = await clients.get(first["certificates_client_id"])
        compliance = await clients.get(first["compliance_client_id"])
        assert certificates is not None
        assert compliance is not None
        assert list(certificates.scopes) == ["registry.qualification-verification"]
        assert list(compliance.scopes) == ["registry.compliance-monitoring"]
        people = PeopleStores.on(engine)
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        maria = await people.persons.by_identifier("2000000001")
        assert maria is not None
        scopes = (await Directory(people).person(maria.id)).delegated_scopes
        for scope in ("occupations.manage", "certificates.read", "compliance.read"):
            assert f"{establishment.id}:{scope}" in scopes
    finally:
        await engine.dispose()

    envs = registry_service_environments(
        settings,
        first,
        ports={"occupations": 9540, "certificates": 9550, "compliance": 9560},
        hub_url="http://127.0.0.1:8080",
    )
    # each service's settings accept the variables hub dev gives it
    assert OccupationSettings.from_env(envs["occupations"]).port == 9540
    assert CertificateSettings.from_env(envs["certificates"]).client_id
    made = ComplianceSettings.from_env(envs["compliance"])
    assert made.demo_registrations == ((establishment.id, DEMO_CR_NUMBER),)
