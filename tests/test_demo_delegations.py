"""The demo data: Demo Trading Co delegates echo.read to the demo vendor and its HR officer."""

from __future__ import annotations

from pathlib import Path

from hub.cli.demo import DEMO_CR_NUMBER, ensure_demo_delegations, ensure_demo_sso
from hub.cli.identity import ensure_demo_credentials
from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.db.people_store import PeopleStores
from hub.identity.directory import Directory
from hub.settings import Settings


async def test_the_demo_vendor_and_hr_officer_act_for_demo_trading_co(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path / "data"
    )
    await migrate(settings.database_url)
    vendor = await ensure_demo_credentials(settings)
    await ensure_demo_sso(settings, portal_url="http://127.0.0.1:9200")
    first = await ensure_demo_delegations(settings, vendor_client_id=vendor["client_id"])
    again = await ensure_demo_delegations(settings, vendor_client_id=vendor["client_id"])
    assert first == again

    engine = create_engine(settings.database_url)
    try:
        people = PeopleStores.on(engine)
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        assert establishment.id == first
        # Run twice, granted once: a second start finds them active.
        delegations = await people.delegations.list(establishment.id)
        assert sorted((d.grantee_client is not None, d.scopes) for d in delegations) == [
            (False, ("echo.read",)),
            (True, ("echo.read",)),
        ]
        directory = Directory(people)
        assert await directory.establishment(DEMO_CR_NUMBER) == establishment
        assert await directory.establishment(establishment.id) == establishment
        assert await directory.establishment("not-a-reference") is None
        (for_vendor,) = await directory.client_delegations(establishment.id, vendor["client_id"])
        assert for_vendor.scopes == ("echo.read",)
        maria = await people.persons.by_identifier("2000000001")
        assert maria is not None
        affiliations = await directory.person(maria.id)
        assert affiliations.memberships == {f"{establishment.id}:hr_officer"}
        assert affiliations.delegated_scopes == {f"{establishment.id}:echo.read"}
    finally:
        await engine.dispose()
