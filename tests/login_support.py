"""A hub in-process for the /account page tests: persons, forms, CSRF tokens, cookies."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.db.person_store import Person, PersonStore
from hub.identity.authz_request import AuthorizationRequest
from hub.identity.passwords import Argon2Parameters, PasswordHasher
from hub.identity.sessions import cookie_name
from hub.runtime import Runtime
from hub.settings import Settings
from tests.hubproc import hub_env, write_policies

__all__ = [
    "PASSWORD",
    "Hub",
    "csrf_of",
    "field_of",
    "problem_of",
    "running_hub",
]

PASSWORD = "correct horse battery staple 42"
# Cheap argon2 so a test signs in many times quickly; production uses the defaults.
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=64, parallelism=1)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_PROBLEM = re.compile(r'data-problem="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, f"no csrf field in: {html[:500]}"
    return unescape(found.group(1))


def field_of(html: str, name: str) -> str | None:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    return unescape(found.group(1)) if found else None


def problem_of(response: httpx.Response) -> str | None:
    found = _PROBLEM.search(response.text)
    return found.group(1) if found else None


@dataclass
class Hub:
    """The app, a browser-like client on it, and shortcuts to its stores."""

    app: HubApp
    client: AsyncTestClient[Any]
    origin: str
    secure: bool

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    @property
    def persons(self) -> PersonStore:
        assert self.runtime.identity is not None
        return self.runtime.identity.persons

    @property
    def session_cookie(self) -> str:
        return cookie_name(self.secure)

    async def person(
        self,
        identifier: str,
        *,
        password: str | None = PASSWORD,
        totp_secret: str | None = None,
        recovery_hashes: tuple[str, ...] = (),
    ) -> Person:
        kind = "citizen" if identifier.startswith("1") else "resident"
        person = await self.persons.create(
            kind=kind, identifier=identifier, given_name="Sara", family_name="Alharbi"
        )
        if password is not None:
            hashed = await self.runtime.passwords.ahash(password)
            await self.persons.set_password_hash(person.id, hashed)
        if totp_secret is not None:
            await self.persons.set_totp(person.id, totp_secret, recovery_hashes)
        found = await self.persons.get(person.id)
        assert found is not None
        return found

    async def page(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post_form(
        self,
        path: str,
        data: Mapping[str, str],
        *,
        csrf: str | None = None,
        origin: str | None = "same",
        **kwargs: Any,
    ) -> httpx.Response:
        """POST a form as the page would: the CSRF field (from ``csrf`` or a fresh page)."""
        fields = dict(data)
        if csrf is not None:
            fields["csrf"] = csrf
        headers = dict(kwargs.pop("headers", {}))
        if origin == "same":
            headers["Origin"] = self.origin
        elif origin is not None:
            headers["Origin"] = origin
        return await self.client.post(path, data=fields, headers=headers, **kwargs)

    async def csrf(self, path: str = "/account/logout") -> str:
        """A CSRF token of this browser (the sign-out page always shows a form)."""
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return csrf_of(response.text)

    async def login(
        self, identifier: str, password: str = PASSWORD, **fields: str
    ) -> httpx.Response:
        token = await self.csrf()
        return await self.post_form(
            "/account/login",
            {"identifier": identifier, "password": password, **fields},
            csrf=token,
        )

    async def totp(self, code: str) -> httpx.Response:
        page = await self.client.get("/account/login/totp")
        assert page.status_code == 200, page.text
        return await self.post_form("/account/login/totp", {"code": code}, csrf=csrf_of(page.text))

    def set_cookie(self, name: str, value: str) -> None:
        self.client.cookies.set(name, value, domain=self.client.base_url.host)

    def cookie(self, name: str) -> str | None:
        for cookie in self.client.cookies.jar:
            if cookie.name == name:
                return cookie.value
        return None

    async def signed_in_as(self) -> str | None:
        """The identifier /account shows for this browser, or None when it is not signed in."""
        response = await self.client.get("/account")
        if response.status_code != 200:
            return None
        found = re.search(r'<span id="identifier">([^<]+)</span>', response.text)
        return found.group(1) if found else None

    async def authz_request(self, **fields: Any) -> AuthorizationRequest:
        values: dict[str, Any] = {
            "rid": self.runtime.authz_requests.new_rid(),
            "client_id": "client-1",
            "redirect_uri": "https://rp.example/cb",
            "scopes": ("openid", "profile"),
            "state": "st-1",
            "nonce": "n-1",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
            "acr": None,
            "prompt": (),
            "max_age": None,
            "created_at": time.time(),
            **fields,
        }
        request = AuthorizationRequest(**values)
        await self.runtime.authz_requests.save(request)
        return request


@asynccontextmanager
async def running_hub(
    tmp_path: Path, *, secure: bool = False, env: Mapping[str, str] | None = None
) -> AsyncIterator[Hub]:
    """A hub on SQLite and the in-process ephemeral store, with a cheap password hasher."""
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[{"id": "svc", "prefix": "/svc/", "upstream": "svc"}],
    )
    origin = "https://testserver.local" if secure else "http://testserver.local"
    extra = {
        "HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}",
        "HUB_ISSUER": origin,
        "HUB_SESSION_COOKIE_SECURE": "true" if secure else "false",
        "HUB_ACCESS_LOG": "false",
        **(env or {}),
    }
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=extra))
    app = HubApp(settings)
    app.runtime.passwords = PasswordHasher(CHEAP)
    async with AsyncTestClient(app=app, base_url=origin) as client:  # type: ignore[arg-type]
        client.follow_redirects = False
        yield Hub(app=app, client=client, origin=origin, secure=secure)
