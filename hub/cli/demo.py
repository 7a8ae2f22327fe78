"""The demo system's people, sign-in clients and payments client, created once for ``hub dev``.

Three people with passwords (one with TOTP, who is also a platform admin and so may use the
admin API once signed in with the second factor), an establishment they work for, the demo
citizen portal (a public, first-party OIDC client of the hub) and the hub's own client at the
sandbox national identity provider. The owner of the establishment delegates ``echo.read`` to
the demo vendor platform and to the HR officer, so both can act for it. The secrets are demo
values, kept with the other demo credentials in ``HUB_DATA_DIR/demo-credentials.json`` (mode
0600) so ``hub dev`` can print them each start.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from hub.db.engine import create_engine
from hub.db.identity_store import ClientStore
from hub.db.people_store import MAX_DELEGATION, PeopleStores, Person, PersonKind
from hub.identity.passwords import PasswordHasher
from hub.identity.totp import hash_recovery_code, new_recovery_codes, new_secret
from hub.settings import Settings

__all__ = [
    "DEMO_ADMIN",
    "DEMO_CR_NUMBER",
    "DEMO_PEOPLE",
    "PAYMENT_SCOPES",
    "DemoPerson",
    "ensure_demo_delegations",
    "ensure_demo_payments",
    "ensure_demo_sso",
    "payment_lines",
    "payment_sandbox_args",
]

_FILE: Final = "demo-sso.json"
#: The demo person who holds the platform_admin staff role (Omar, who has TOTP).
DEMO_ADMIN: Final = "1000000002"
#: Demo Trading Co's commercial-registration number; Aisha owns it, Maria is its HR officer.
DEMO_CR_NUMBER: Final = "4030000001"
_OWNER, _HR_OFFICER = "1000000001", "2000000001"
_DELEGATED: Final = ("echo.read",)


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
        if not await people.establishments.list(cr_number=DEMO_CR_NUMBER):
            establishment = await people.establishments.create(
                cr_number=DEMO_CR_NUMBER, name="Demo Trading Co", sector="retail", size="small"
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


async def ensure_demo_delegations(settings: Settings, *, vendor_client_id: str) -> str:
    """Demo Trading Co delegates ``echo.read`` to the demo vendor and its HR officer.

    A delegation lasts a year at most: a new one is granted whenever none is active (a demo
    data folder older than that, or a first start). Answers the establishment's id.
    """
    engine = create_engine(settings.database_url)
    try:
        people = PeopleStores.on(engine)
        (establishment,) = await people.establishments.list(cr_number=DEMO_CR_NUMBER)
        owner = await people.persons.by_identifier(_OWNER)
        officer = await people.persons.by_identifier(_HR_OFFICER)
        assert owner is not None
        assert officer is not None
        until = datetime.now(UTC) + MAX_DELEGATION - timedelta(minutes=1)
        for client, person in ((vendor_client_id, None), (None, officer.id)):
            if not await people.delegations.active_for(establishment.id, client or officer.id):
                await people.delegations.grant(
                    establishment.id,
                    grantor=owner.id,
                    scopes=_DELEGATED,
                    valid_until=until,
                    grantee_client=client,
                    grantee_person=person,
                    reason="demo data",
                )
        return establishment.id
    finally:
        await engine.dispose()


_PAYMENTS_FILE: Final = "demo-payments.json"
PAYMENT_SCOPES: Final = ("payments.read", "payments.write", "payments.refund")


async def ensure_demo_payments(settings: Settings) -> dict[str, str]:
    """A demo application allowed to pay and refund, created once; its id and secret."""
    path = settings.data_dir / _PAYMENTS_FILE
    engine = create_engine(settings.database_url)
    try:
        clients = ClientStore(engine)
        if path.is_file():
            saved: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
            if await clients.get(saved.get("client_id", "")) is not None:
                return saved
        client, secret = await clients.create(
            name="Visa services (demo payments)",
            owner="demo",
            auth_method="client_secret_basic",
            scopes=list(PAYMENT_SCOPES),
        )
    finally:
        await engine.dispose()
    saved = {"client_id": client.client_id, "client_secret": secret or ""}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved), encoding="utf-8")
    path.chmod(0o600)
    return saved


def payment_sandbox_args(port: int, hub_url: str, secrets_by_name: dict[str, str]) -> list[str]:
    """The sandbox payment provider's command line, its keys made for this run.

    The keys go into ``secrets_by_name`` (the hub's adapter secrets) unless ``HUB_*`` named
    them; its webhooks go to the hub's webhook route.
    """
    key = secrets_by_name.setdefault("payment_provider_key", secrets.token_urlsafe(16))
    webhook = secrets_by_name.setdefault("payment_webhook_secret", secrets.token_urlsafe(24))
    return [
        *("--port", str(port), f"--api-key={key}", f"--webhook-secret={webhook}"),
        f"--webhook-url={hub_url}/api/payments/v1/webhooks/payment-provider",
    ]


def payment_lines(base: str, port: int, client: dict[str, str]) -> list[str]:
    """What ``hub dev`` prints about payments: the sandbox and how to try one."""
    pay = f"{base}/api/payments/v1/payments"
    return [
        "",
        f"Payments (sandbox provider http://127.0.0.1:{port}; faults: POST /_sandbox/faults):",
        f"  client_id      {client['client_id']}  (scopes {' '.join(PAYMENT_SCOPES)})",
        f"  client_secret  {client['client_secret']}",
        f"  token          TOKEN=$(curl -s -u {client['client_id']}:{client['client_secret']}"
        f" -d grant_type=client_credentials -d 'scope={' '.join(PAYMENT_SCOPES)}'"
        f" {base}/oauth2/token | python3 -c 'import json,sys; print(json.load(sys.stdin)"
        '["access_token"])\')',
        f"  pay            curl -H \"Authorization: Bearer $TOKEN\" -H 'Idempotency-Key: demo-1'"
        f' -d \'{{"amount":25000,"currency":"SAR","reference":"visa-application:42"}}\''
        f" {pay}",
        f'  capture        curl -X POST -H "Authorization: Bearer $TOKEN" -H \'Idempotency-Key:'
        f" demo-2' {pay}/PAYMENT_ID/capture",
        f"  refund         curl -H \"Authorization: Bearer $TOKEN\" -H 'Idempotency-Key: demo-3'"
        f" -d '{{\"amount\":5000}}' {pay}/PAYMENT_ID/refunds",
        "  reconcile      hub payments reconcile   (HUB_ADMIN_TOKEN)",
    ]
