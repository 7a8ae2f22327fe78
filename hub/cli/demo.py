"""The demo system's people and sign-in clients, created once for ``hub dev``.

Three people with passwords (one with TOTP, who is also a platform admin and so may use the
admin API once signed in with the second factor), an establishment they work for, the demo
citizen portal (a public, first-party OIDC client of the hub) and the hub's own client at the
sandbox national identity provider. The secrets are demo values, kept with the other demo
credentials in ``HUB_DATA_DIR/demo-credentials.json`` (mode 0600) so ``hub dev`` can print them
each start.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from hub.db.engine import create_engine
from hub.db.identity_store import ClientStore
from hub.db.people_store import PeopleStores, Person, PersonKind
from hub.identity.passwords import PasswordHasher
from hub.identity.totp import hash_recovery_code, new_recovery_codes, new_secret
from hub.settings import Settings

__all__ = ["DEMO_ADMIN", "DEMO_PEOPLE", "DemoPerson", "ensure_demo_sso"]

_FILE: Final = "demo-sso.json"
#: The demo person who holds the platform_admin staff role (Omar, who has TOTP).
DEMO_ADMIN: Final = "1000000002"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPerson:
    """A person of the demo data; the same national IDs exist at the sandbox national IdP."""

    kind: PersonKind
    identifier: str
    given_name: str
    family_name: str
    email: str
    password: str
    totp: bool = False


DEMO_PEOPLE: Final = (
    DemoPerson(
        kind="citizen",
        identifier="1000000001",
        given_name="Aisha",
        family_name="Al-Harbi",
        email="aisha@example.org",
        password="Desert-Rose-2026",  # noqa: S106 - demo data, printed in the README
    ),
    DemoPerson(
        kind="citizen",
        identifier="1000000002",
        given_name="Omar",
        family_name="Al-Qahtani",
        email="omar@example.org",
        password="Falcon-Harbour-77",  # noqa: S106 - demo data, printed in the README
        totp=True,
    ),
    DemoPerson(
        kind="resident",
        identifier="2000000001",
        given_name="Maria",
        family_name="Santos",
        email="maria@example.org",
        password="Blue-Lagoon-Maria",  # noqa: S106 - demo data, printed in the README
    ),
)


async def _person(people: PeopleStores, hasher: PasswordHasher, demo: DemoPerson) -> Person:
    person = await people.persons.by_identifier(demo.identifier)
    if person is None:
        person = await people.persons.create(
            kind=demo.kind,
            identifier=demo.identifier,
            given_name=demo.given_name,
            family_name=demo.family_name,
            email=demo.email,
        )
        await people.persons.set_password_hash(person.id, await hasher.ahash(demo.password))
    return person


async def _ensure_platform_admin(people: PeopleStores, identifier: str) -> None:
    """Make the person a platform admin unless they already are (demo data made earlier too)."""
    person = await people.persons.by_identifier(identifier)
    if person is None:
        return
    held = await people.staff.list(person_id=person.id, active_only=True)
    if not any(role.role == "platform_admin" for role in held):
        await people.staff.grant(person.id, "platform_admin")


async def ensure_demo_sso(settings: Settings, *, portal_url: str) -> dict[str, Any]:
    """Create the demo people and clients once; what ``hub dev`` prints and passes on."""
    path = settings.data_dir / _FILE
    engine = create_engine(settings.database_url)
    try:
        clients = ClientStore(engine)
        people = PeopleStores.on(engine)
        if path.is_file():
            saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if await clients.get(saved.get("portal_client_id", "")) is not None:
                await _ensure_platform_admin(people, DEMO_ADMIN)  # demo data of older releases
                return saved
        hasher = PasswordHasher()
        persons = {demo.identifier: await _person(people, hasher, demo) for demo in DEMO_PEOPLE}
        await _ensure_platform_admin(people, DEMO_ADMIN)
        totp: dict[str, str] = {}
        for demo in DEMO_PEOPLE:
            person = persons[demo.identifier]
            if demo.totp and person.totp_secret is None:
                secret = new_secret()
                codes = new_recovery_codes()
                await people.persons.set_totp(
                    person.id, secret, [hash_recovery_code(code) for code in codes]
                )
                totp = {"identifier": demo.identifier, "secret": secret, "recovery": codes[0]}
        if not await people.establishments.list(cr_number="4030000001"):
            establishment = await people.establishments.create(
                cr_number="4030000001", name="Demo Trading Co", sector="retail", size="small"
            )
            await people.establishments.add_member(
                establishment.id, persons["1000000001"].id, "owner"
            )
            await people.establishments.add_member(
                establishment.id, persons["2000000001"].id, "hr_officer"
            )
        portal, _ = await clients.create(
            name="Citizen portal (demo)",
            owner="platform",
            auth_method="none",
            scopes=["openid", "profile", "email", "national_id"],
            client_type="public",
            redirect_uris=[portal_url + "/callback"],
            post_logout_redirect_uris=[portal_url + "/"],
            first_party=True,
        )
    finally:
        await engine.dispose()
    demo_data: dict[str, Any] = {
        "portal_client_id": portal.client_id,
        "idp_client_id": "hub-demo",
        "idp_client_secret": secrets.token_urlsafe(24),
        "totp": totp,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(demo_data, indent=2), encoding="utf-8")
    return demo_data
