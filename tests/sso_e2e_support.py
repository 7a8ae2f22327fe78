"""Shared pieces of the SSO end-to-end tests: people on the hub's database, OAuth, helper processes.

Everything here talks to real processes: the hub's database through its own stores (as the
``hub`` command does), the hub's HTTP endpoints, and authlib's OAuth client as the relying party.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import jwt
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

with warnings.catch_warnings():
    # authlib names its httpx integration deprecated in favour of one for a future httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from hub.auth.internal import InternalTokenVerifier
from hub.auth.jwks import load_jwks
from hub.auth.principal import Principal
from hub.db.engine import create_engine
from hub.db.people_store import PeopleStores
from hub.identity.passwords import PasswordHasher
from hub.settings import Settings
from tests.browser import Browser
from tests.helpers import LoopThread
from tests.hubproc import ROOT, HubProcess, hub_command, hub_env, wait_http
from tests.upstreams import sent

__all__ = [
    "APP_CB",
    "PASSWORD",
    "TIMEOUT",
    "AuthorizeRequest",
    "OAuth2Client",
    "Process",
    "add_person",
    "first_party_app",
    "id_token_claims",
    "national_idp_link",
    "principal_of",
    "public_client",
    "query_of",
    "set_totp",
    "sign_in",
    "start_process",
]

TIMEOUT = 10.0
PASSWORD = "Sand-Dune-Lantern-2026"
#: Where the first-party app's codes go: a loopback port nobody serves, so the browser stops.
APP_CB = "http://127.0.0.1:1/app/cb"
_HREF = re.compile(r'id="national-idp" href="([^"]+)"')


def _database_url(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> str:
    return Settings.from_env(hub_env(tmp, tmp / "policies", hub.port, extra=backends)).database_url


async def _with_people(url: str, identifier: str, **change: Any) -> str:
    engine = create_engine(url)
    try:
        persons = PeopleStores.on(engine).persons
        person = await persons.by_identifier(identifier)
        if person is None:
            person = await persons.create(
                kind=change.pop("kind", "citizen"),
                identifier=identifier,
                given_name=change.pop("given_name"),
                family_name=change.pop("family_name"),
                email=f"{identifier}@example.org",
            )
        if "password" in change:
            hashed = await PasswordHasher().ahash(change["password"])
            await persons.set_password_hash(person.id, hashed)
        if "totp" in change:
            await persons.set_totp(person.id, change["totp"], [])
        return person.id
    finally:
        await engine.dispose()


def add_person(
    tmp: Path,
    hub: HubProcess,
    backends: dict[str, str],
    identifier: str,
    given_name: str,
    *,
    kind: str = "citizen",
) -> str:
    """A citizen (or a resident) with :data:`PASSWORD`, in the hub's database; the person's id."""
    url = _database_url(tmp, hub, backends)
    loop = LoopThread()
    try:
        coro = _with_people(
            url,
            identifier,
            given_name=given_name,
            family_name="Tester",
            password=PASSWORD,
            kind=kind,
        )
        return loop.run(coro)
    finally:
        loop.close()


def set_totp(
    tmp: Path, hub: HubProcess, backends: dict[str, str], identifier: str, secret: str
) -> None:
    """Enrol the person in TOTP with ``secret`` (as the MFA page would once the code checks)."""
    loop = LoopThread()
    try:
        loop.run(_with_people(_database_url(tmp, hub, backends), identifier, totp=secret))
    finally:
        loop.close()


def first_party_app(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    """A first-party public client (a browser app): PKCE without a secret, no consent."""
    return hub_command(
        tmp, hub, backends, "clients", "create", "--name", "Portal", "--owner", "platform",
        "--scopes", "svc.read", "--client-type", "public", "--auth-method", "none",
        "--redirect-uri", APP_CB, "--first-party",
    )  # fmt: skip


def public_client(app: dict[str, str], scope: str = "openid profile") -> OAuth2Client:
    """authlib's client for :func:`first_party_app`: no secret, PKCE with S256."""
    return OAuth2Client(
        app["client_id"],
        token_endpoint_auth_method="none",
        redirect_uri=APP_CB,
        scope=scope,
        code_challenge_method="S256",
        timeout=TIMEOUT,
    )


class AuthorizeRequest:
    """An authorization request made by authlib's client: its URL, state, nonce, verifier."""

    def __init__(self, oauth: OAuth2Client, hub: HubProcess, **extra: str) -> None:
        self.verifier = secrets.token_urlsafe(48)
        self.nonce = secrets.token_urlsafe(12)
        self.url, self.state = oauth.create_authorization_url(
            f"{hub.url}/oauth2/authorize", code_verifier=self.verifier, nonce=self.nonce, **extra
        )


def sign_in(browser: Browser, page: httpx.Response, identifier: str) -> httpx.Response:
    """Fill in the hub's sign-in form on ``page``; the answer (a redirect when right)."""
    assert page.status_code == 200, page.text
    form = browser.form_with(page, "identifier")
    return browser.submit(form, identifier=identifier, password=PASSWORD)


def national_idp_link(page: httpx.Response) -> str:
    """The sign-in page's link to the national identity provider."""
    found = _HREF.search(page.text)
    assert found, page.text[:2000]
    return str(page.url.join(unescape(found.group(1))))


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a URL, one value each."""
    return dict(httpx.URL(location).params)


def id_token_claims(hub: HubProcess, token: str, client_id: str) -> dict[str, Any]:
    """An ID token verified as a relying party does: JWKS by kid, RS256, iss, aud, exp."""
    keys = jwt.PyJWKSet.from_dict(httpx.get(f"{hub.url}/.well-known/jwks.json").json())
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=client_id,
        issuer=hub.url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
    )
    return claims


def principal_of(hub: HubProcess, echo: dict[str, Any], audience: str = "svc") -> Principal:
    """Who the hub told the upstream called, verified against the hub's published keys."""
    (internal,) = sent(echo, "x-hub-principal-token")
    keys = load_jwks(httpx.get(f"{hub.url}/.well-known/jwks.json", timeout=TIMEOUT).json())
    return InternalTokenVerifier(keys.get, issuer=hub.url, audience=audience).verify(internal)


class Process:
    """A helper process of a test (the portal, the sandbox IdP), stopped at the end."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def start_process(args: list[str], url: str, ready: str, log: Path) -> Iterator[Process]:
    """Run ``python ARGS`` until the block ends; fail with its log unless ``ready`` answers."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        process = Process(popen, url, log)
        try:
            if not wait_http(url + ready, 20, process=popen):
                raise RuntimeError(f"{args} did not start:\n{log.read_text(errors='replace')}")
            yield process
        finally:
            process.stop()
