"""An operator's hold on a person's account: password, second factor, unlock, sign-out everywhere.

The admin API is exercised on a whole hub in-process (``HubApp`` through Litestar's
``AsyncTestClient``) on both back-end sets, with a session route to a real upstream: a login
session made before an account change must stop opening it, and the person's refresh tokens
must stop refreshing, while another person's keep working. The CLI runs on the database, and on
Redis when ``HUB_REDIS_URL`` names it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from hub.asgi import HubApp
from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.cli.main import app as cli_app
from hub.db.client_store import ClientStore, OAuthClient
from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.db.person_store import Person, PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.identity.acr import ACR_PASSWORD
from hub.identity.passwords import Argon2Parameters, PasswordHasher
from hub.identity.sessions import SessionManager, cookie_name
from hub.runtime import Runtime
from hub.settings import Settings
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.login_support import Hub as Browser
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

_T = TypeVar("_T")

ISSUER = "http://127.0.0.1:8080"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api"
OLD_PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "violet kettle orbit 7 canyon"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DP"
RECOVERY = ("rc-hash-one", "rc-hash-two")
# Cheap argon2 so the tests hash quickly; production uses the defaults.
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=64, parallelism=1)
SIGN_OUT_FIELDS = {"person_id", "sessions_ended", "refresh_tokens_revoked"}
ACCOUNT_CALLS = [
    ("/password", {"password": NEW_PASSWORD}),
    ("/mfa/reset", None),
    ("/unlock", None),
    ("/sessions/end", None),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """``HUB_*`` overrides of one back-end set: SQLite + in-process, or PostgreSQL/Redis."""
    if request.param == "embedded":
        return {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}"}
    return {
        "HUB_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "HUB_REDIS_URL": request.getfixturevalue("redis_url"),
    }


@dataclass
class Hub:
    """The app, its test client, a vendor client with refresh tokens, and every answer."""

    app: HubApp
    client: AsyncTestClient[Any]
    answers: list[str]
    vendor: OAuthClient | None = None
    vendor_secret: str = ""

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def call(self, fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn`` on the app's event loop (where its connections live)."""
        return self.client.blocking_portal.call(functools.partial(fn, *args, **kwargs))

    @property
    def identity(self) -> Any:
        return self.runtime.identity

    def person(self, identifier: str, *, totp: bool = False) -> Person:
        persons = self.identity.persons
        person: Person = self.call(
            persons.create,
            kind="citizen",
            identifier=identifier,
            given_name="Amal",
            family_name="Haddad",
        )
        hashed = self.call(self.runtime.passwords.ahash, OLD_PASSWORD)
        self.call(persons.set_password_hash, person.id, hashed)
        if totp:
            self.call(persons.set_totp, person.id, TOTP_SECRET, RECOVERY)
        return person

    def stored(self, person: Person) -> Person:
        found: Person | None = self.call(self.identity.persons.get, person.id)
        assert found is not None
        return found

    def sign_in(self, person: Person) -> str:
        """A login session for ``person``, as the sign-in page makes it; its cookie value."""
        raw, _session = self.call(
            self.runtime.sessions.create, person_id=person.id, acr=ACR_PASSWORD, amr=["pwd"]
        )
        return str(raw)

    def refresh_token(self, person: Person) -> str:
        assert self.vendor is not None
        raw, _token = self.call(
            self.identity.refresh_tokens.issue,
            client_id=self.vendor.client_id,
            person_id=person.id,
            scopes=["svc.read"],
            acr=ACR_PASSWORD,
            amr=["pwd"],
            auth_time=int(time.time()),
            sid=None,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        return str(raw)

    async def portal(self, cookie: str) -> int:
        """The status of a session route called with ``cookie``."""
        name = cookie_name(self.runtime.settings.session_cookie_secure)
        response = await self.client.get("/portal/echo", headers={"Cookie": f"{name}={cookie}"})
        return response.status_code

    async def refresh(self, token: str) -> httpx.Response:
        assert self.vendor is not None
        return await self.client.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=(self.vendor.client_id, self.vendor_secret),
        )

    async def admin(
        self, person_id: str, action: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        path = f"{BASE}/persons/{person_id}{action}"
        return await self.client.post(path, json=body, headers=AUTH if headers is None else headers)

    def browser(self) -> Browser:
        return Browser(app=self.app, client=self.client, origin=ISSUER, secure=False)


@pytest.fixture
async def hub(
    tmp_path: Path, backend_env: dict[str, str], upstream: UpstreamServer
) -> AsyncIterator[Hub]:
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "portal",
                "prefix": "/portal/",
                "upstream": "svc",
                "strip_prefix": True,
                "auth": {"methods": ["session"]},
            }
        ],
    )
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=backend_env))
    assert settings.issuer == ISSUER
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    app.runtime.passwords = PasswordHasher(CHEAP)
    answers: list[str] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        answers.append(response.text)

    async with AsyncTestClient(app=app, base_url=ISSUER) as client:  # type: ignore[arg-type]
        client.follow_redirects = False
        client.event_hooks["response"].append(record)
        hub = Hub(app, client, answers)
        hub.vendor, secret = hub.call(
            hub.identity.clients.create,
            name="Vendor HR",
            owner="tests",
            auth_method="client_secret_basic",
            scopes=["svc.read"],
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=["https://vendor.example.com/cb"],
        )
        assert secret is not None
        hub.vendor_secret = secret
        yield hub
    # No answer ever carries a credential, given or stored.
    for text in answers:
        for never in (NEW_PASSWORD, OLD_PASSWORD, "$argon2", TOTP_SECRET, *RECOVERY):
            assert never not in text, f"an answer carries {never!r}: {text}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


async def assert_signed_out(hub: Hub, cookie: str, token: str) -> None:
    """The session no longer opens the session route, and the refresh token no longer refreshes."""
    assert await hub.portal(cookie) == 401
    refused = await hub.refresh(token)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"


async def assert_signed_in(hub: Hub, cookie: str, token: str) -> None:
    assert await hub.portal(cookie) == 200
    assert (await hub.refresh(token)).status_code == 200


# --- the admin API: refusals --------------------------------------------------------------------


async def test_account_endpoints_refuse_a_missing_or_wrong_admin_token(hub: Hub) -> None:
    person = hub.person("1000000001", totp=True)
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        for action, body in ACCOUNT_CALLS:
            response = await hub.admin(person.id, action, body, headers=headers)
            assert_problem(response, 401, "unauthorized")
    # Nothing changed.
    stored = hub.stored(person)
    assert stored.totp_secret == TOTP_SECRET
    assert hub.call(hub.runtime.passwords.averify, stored.password_hash, OLD_PASSWORD)
    # Every endpoint is documented; the password goes in, and no schema sends one out.
    schema = (await hub.client.get("/schema/openapi.json")).json()
    for action, _body in ACCOUNT_CALLS:
        assert "post" in schema["paths"][f"{BASE}/persons/{{person_id}}{action}"]
    assert set(schema["components"]["schemas"]["SignOutView"]["properties"]) == SIGN_OUT_FIELDS


async def test_account_endpoints_answer_404_for_an_unknown_person(hub: Hub) -> None:
    for action, body in ACCOUNT_CALLS:
        problem = assert_problem(await hub.admin("per_missing", action, body), 404, "not_found")
        assert problem["detail"] == "person 'per_missing' does not exist"


async def test_a_weak_password_is_refused_with_the_reasons_and_changes_nothing(hub: Hub) -> None:
    person = hub.person("1000000001")
    cookie, token = hub.sign_in(person), hub.refresh_token(person)

    for weak, reason in [
        ("short", "Use at least 12 characters."),
        ("password1234", "This password is too common; choose one that is harder to guess."),
        ("xx1000000001yy", "Do not include your identifier."),
        ("amal-haddad-forever", "Do not include your name."),
    ]:
        response = await hub.admin(person.id, "/password", {"password": weak})
        body = assert_problem(response, 400, "weak_password")
        assert reason in body["reasons"]
        assert body["detail"].startswith("the password does not meet the policy: ")
        assert weak not in response.text

    bad = await hub.admin(person.id, "/password", {"password": 12})
    assert_problem(bad, 400, "invalid_request")
    assert hub.call(hub.runtime.passwords.averify, hub.stored(person).password_hash, OLD_PASSWORD)
    await assert_signed_in(hub, cookie, token)


# --- the admin API: changes that sign the person out ------------------------------------------


async def test_a_new_password_signs_the_person_out_everywhere(hub: Hub) -> None:
    person, other = hub.person("1000000001"), hub.person("1000000002")
    cookies = [hub.sign_in(person), hub.sign_in(person)]
    token, other_cookie, other_token = (
        hub.refresh_token(person),
        hub.sign_in(other),
        hub.refresh_token(other),
    )
    assert await hub.portal(cookies[0]) == 200

    with capture_logs() as logs:
        response = await hub.admin(person.id, "/password", {"password": NEW_PASSWORD})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "person_id": person.id,
        "sessions_ended": True,
        "refresh_tokens_revoked": 1,
    }
    assert NEW_PASSWORD not in repr(logs)
    assert [entry["event"] for entry in logs if entry["event"].startswith("admin.")] == [
        "admin.person_password_set"
    ]
    stored = hub.stored(person).password_hash
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert hub.call(hub.runtime.passwords.averify, stored, NEW_PASSWORD)
    for cookie in cookies:
        await assert_signed_out(hub, cookie, token)
    await assert_signed_in(hub, other_cookie, other_token)

    # The new password signs in, through the real page, and that session opens the route.
    browser = hub.browser()
    assert (await browser.login(person.identifier, OLD_PASSWORD)).status_code == 403
    signed_in = await browser.login(person.identifier, NEW_PASSWORD)
    assert signed_in.status_code == 303, signed_in.text
    new_cookie = browser.cookie(browser.session_cookie)
    assert new_cookie is not None
    assert await hub.portal(new_cookie) == 200


async def test_a_disabled_persons_password_cannot_be_set(hub: Hub) -> None:
    person = hub.person("1000000001")
    assert (await hub.admin(person.id, "/disable")).status_code == 200

    response = await hub.admin(person.id, "/password", {"password": NEW_PASSWORD})

    assert_problem(response, 409, "conflict")


async def test_resetting_the_second_factor_signs_the_person_out(hub: Hub) -> None:
    person = hub.person("1000000001", totp=True)
    cookie, token = hub.sign_in(person), hub.refresh_token(person)

    response = await hub.admin(person.id, "/mfa/reset")

    assert response.status_code == 200, response.text
    assert response.json()["refresh_tokens_revoked"] == 1
    stored = hub.stored(person)
    assert (stored.totp_secret, stored.recovery_code_hashes) == (None, ())
    await assert_signed_out(hub, cookie, token)
    # Nothing left to reset: a conflict, so an operator sees the person had no second factor.
    again = assert_problem(await hub.admin(person.id, "/mfa/reset"), 409, "conflict")
    assert again["detail"] == "the person has no second factor enrolled"


async def test_disabling_a_person_signs_them_out_everywhere(hub: Hub) -> None:
    person, other = hub.person("1000000001"), hub.person("1000000002")
    cookie, token = hub.sign_in(person), hub.refresh_token(person)
    other_cookie, other_token = hub.sign_in(other), hub.refresh_token(other)

    response = await hub.admin(person.id, "/disable")

    assert response.status_code == 200, response.text
    assert response.json()["disabled_at"] is not None
    await assert_signed_out(hub, cookie, token)
    revoked = hub.call(hub.identity.refresh_tokens.get, token)
    assert revoked.revoked_at is not None
    await assert_signed_in(hub, other_cookie, other_token)


async def test_ending_sessions_signs_out_everywhere_and_a_new_sign_in_works(hub: Hub) -> None:
    person = hub.person("1000000001")
    cookie, token = hub.sign_in(person), hub.refresh_token(person)

    response = await hub.admin(person.id, "/sessions/end")

    assert response.json() == {
        "person_id": person.id,
        "sessions_ended": True,
        "refresh_tokens_revoked": 1,
    }
    await assert_signed_out(hub, cookie, token)
    again = await hub.admin(person.id, "/sessions/end")
    assert again.json()["refresh_tokens_revoked"] == 0
    await asyncio.sleep(0.01)  # a sign-in a moment later is on the far side of the cut-off
    await assert_signed_in(hub, hub.sign_in(person), hub.refresh_token(person))


async def test_unlock_clears_the_database_lock_and_this_replicas_throttle(hub: Hub) -> None:
    person = hub.person("1000000001")
    throttle = hub.runtime.login_throttle
    for _ in range(throttle.policy.account_max_failures):
        throttle.record(person.identifier, "203.0.113.9", False)
    until = datetime.now(UTC) + timedelta(minutes=10)
    hub.call(hub.identity.persons.record_login_failure, person.id, lock_until=until)
    browser = hub.browser()
    assert (await browser.login(person.identifier)).status_code == 429

    response = await hub.admin(person.id, "/unlock")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == person.id
    stored = hub.stored(person)
    assert (stored.failed_logins, stored.locked_until) == (0, None)
    assert throttle.account_state(person.identifier) is None
    assert (await browser.login(person.identifier)).status_code == 303
    # Unlocking an unlocked person is fine.
    assert (await hub.admin(person.id, "/unlock")).status_code == 200


# --- the CLI ------------------------------------------------------------------------------------


@dataclass
class Cli:
    env: dict[str, str]
    database_url: str
    client_id: str | None = None

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli_app, list(args), env=self.env, input=input, catch_exceptions=False
        )

    def run(self, action: Callable[[Any], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``action`` on an engine of the CLI's database."""

        async def go() -> _T:
            engine = create_engine(self.database_url)
            try:
                return await action(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def person(self, identifier: str, *, totp: bool = False) -> Person:
        async def make(engine: Any) -> Person:
            persons = PersonStore(engine)
            person = await persons.create(
                kind="citizen", identifier=identifier, given_name="Amal", family_name="Haddad"
            )
            if totp:
                await persons.set_totp(person.id, TOTP_SECRET, RECOVERY)
            return person

        return self.run(make)

    def refresh_token(self, person: Person) -> str:
        async def issue(engine: Any) -> str:
            if self.client_id is None:
                client, _secret = await ClientStore(engine).create(
                    name="Vendor HR",
                    owner="tests",
                    scopes=["svc.read"],
                    auth_method="client_secret_basic",
                )
                self.client_id = client.client_id
            raw, _token = await RefreshTokenStore(engine).issue(
                client_id=self.client_id,
                person_id=person.id,
                scopes=["svc.read"],
                acr=ACR_PASSWORD,
                amr=["pwd"],
                auth_time=int(time.time()),
                sid=None,
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
            return raw

        return self.run(issue)

    def stored(self, person: Person) -> Person:
        found = self.run(lambda engine: PersonStore(engine).get(person.id))
        assert found is not None
        return found

    def revoked(self, token: str) -> bool:
        found = self.run(lambda engine: RefreshTokenStore(engine).get(token))
        return found is not None and found.revoked_at is not None


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Cli:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    asyncio.run(migrate(database_url))
    return Cli(
        {"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_DATABASE_URL": database_url}, database_url
    )


def test_the_cli_sets_a_password_from_stdin_or_a_hidden_prompt(cli: Cli) -> None:
    person = cli.person("1000000001")
    token = cli.refresh_token(person)

    result = cli("people", "set-password", "1000000001", "--stdin", input=NEW_PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output
    assert result.output.splitlines() == [
        f"password set for {person.id}",
        "refresh tokens revoked: 1",
        "sessions: not ended: they are in the hub process (no HUB_REDIS_URL); use the admin"
        f" API to end them: POST /admin/api/persons/{person.id}/sessions/end",
    ]
    assert cli.revoked(token)
    hasher = PasswordHasher()
    assert hasher.verify(cli.stored(person).password_hash, NEW_PASSWORD)

    # By person id, asked twice without echo.
    other = "plum harbour lantern 93 quietly"
    prompted = cli("people", "set-password", person.id, input=f"{other}\n{other}\n")
    assert prompted.exit_code == 0, prompted.output
    assert other not in prompted.output
    assert prompted.output.startswith("New password: \nRepeat for confirmation: \n")
    assert hasher.verify(cli.stored(person).password_hash, other)


def test_the_cli_refuses_a_weak_password_and_an_unknown_person(cli: Cli) -> None:
    person = cli.person("1000000001")

    weak = cli("people", "set-password", "1000000001", "--stdin", input="password1234\n")

    assert weak.exit_code == 1
    assert weak.output.startswith("error: the password does not meet the policy: ")
    assert "This password is too common" in weak.output
    assert "password1234" not in weak.output
    assert cli.stored(person).password_hash is None
    for command in ("set-password", "reset-mfa", "unlock", "end-sessions", "disable"):
        missing = cli("people", command, "1999999999", input="x\n")
        assert (missing.exit_code, missing.output.splitlines()[-1]) == (
            1,
            "error: no person is '1999999999'",
        ), command


def test_the_cli_resets_mfa_unlocks_ends_sessions_and_disables(cli: Cli) -> None:
    person = cli.person("1000000001", totp=True)
    tokens = [cli.refresh_token(person) for _ in range(3)]

    reset = cli("people", "reset-mfa", "1000000001")
    assert reset.exit_code == 0, reset.output
    assert reset.output.splitlines()[:2] == [
        f"second factor removed for {person.id}; they enrol again at sign-in",
        "refresh tokens revoked: 3",
    ]
    assert cli.stored(person).totp_secret is None
    assert all(cli.revoked(token) for token in tokens)
    again = cli("people", "reset-mfa", person.id)
    assert (again.exit_code, again.output) == (
        1,
        "error: the person has no second factor enrolled\n",
    )

    until = datetime.now(UTC) + timedelta(minutes=5)
    cli.run(lambda engine: PersonStore(engine).record_login_failure(person.id, lock_until=until))
    unlocked = cli("people", "unlock", "1000000001")
    assert unlocked.exit_code == 0, unlocked.output
    assert unlocked.output.splitlines()[0] == f"unlocked {person.id}"
    assert "POST /admin/api/persons/" in unlocked.output
    stored = cli.stored(person)
    assert (stored.failed_logins, stored.locked_until) == (0, None)

    token = cli.refresh_token(person)
    ended = cli("people", "end-sessions", "1000000001")
    assert ended.exit_code == 0, ended.output
    assert ended.output.splitlines()[:2] == [f"signed out {person.id}", "refresh tokens revoked: 1"]
    assert "sessions: not ended: they are in the hub process" in ended.output
    assert cli.revoked(token)

    disabled = cli("people", "disable", person.id)
    assert disabled.exit_code == 0, disabled.output
    assert disabled.output.startswith(f"disabled {person.id} since ")
    assert cli.stored(person).disabled_at is not None


@pytest.mark.backends
def test_the_cli_ends_sessions_kept_in_redis(cli: Cli, redis_url: str) -> None:
    person, other = cli.person("1000000001"), cli.person("1000000002")
    env = {**cli.env, "HUB_REDIS_URL": redis_url}

    async def sign_in(who: Person) -> str:
        store = RedisEphemeralStore.from_url(redis_url)  # the hub's own key prefix
        try:
            manager = SessionManager(store, idle_seconds=1800, max_seconds=3600)
            raw, _session = await manager.create(person_id=who.id, acr=ACR_PASSWORD, amr=["pwd"])
            return raw
        finally:
            await store.aclose()

    async def live(raw: str) -> bool:
        store = RedisEphemeralStore.from_url(redis_url)
        try:
            manager = SessionManager(store, idle_seconds=1800, max_seconds=3600)
            return await manager.get(raw) is not None
        finally:
            await store.aclose()

    cookie, other_cookie = asyncio.run(sign_in(person)), asyncio.run(sign_in(other))
    assert asyncio.run(live(cookie))

    result = CliRunner().invoke(
        cli_app, ["people", "end-sessions", "1000000001"], env=env, catch_exceptions=False
    )

    assert result.exit_code == 0, result.output
    assert "sessions: ended on every replica" in result.output
    assert not asyncio.run(live(cookie))
    assert asyncio.run(live(other_cookie))
    time.sleep(0.01)
    assert asyncio.run(live(asyncio.run(sign_in(person))))
