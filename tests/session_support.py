"""A hub sharing its Redis ephemeral store with the test, for the session-cookie gateway tests.

The test signs a person in with its own :class:`~hub.identity.sessions.SessionManager` on that
store (as the login pages would), then calls the gateway with the cookie; an echoing upstream
shows what crossed the hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.backends.factory import ephemeral_prefix
from hub.identity.acr import ACR_PASSWORD
from hub.identity.sessions import INSECURE_COOKIE_NAME, SessionManager
from tests.helpers import LoopThread
from tests.hubproc import TEST_NAMESPACE, HubProcess, hub_command, run_hub, write_policies
from tests.upstreams import UpstreamServer

__all__ = ["NAME", "TIMEOUT", "Browser", "client_token", "route", "session_hub"]

TIMEOUT = 10.0
# A plain-http issuer: the cookie is the one without the __Host- prefix.
NAME = INSECURE_COOKIE_NAME


def route(name: str, **extra: Any) -> dict[str, Any]:
    """A route ``/<name>/`` to the echoing upstream ``svc``."""
    return {"id": name, "prefix": f"/{name}/", "upstream": "svc", "strip_prefix": True, **extra}


@contextmanager
def session_hub(tmp: Path, redis_url: str, routes: list[dict[str, Any]]) -> Iterator[HubProcess]:
    """A hub whose ephemeral store (so its login sessions) is the test's Redis database."""
    upstream = UpstreamServer("svc").start()
    try:
        policies = write_policies(
            tmp / "policies",
            upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
            routes=routes,
        )
        env = {"HUB_ACCESS_LOG": "false", "HUB_REDIS_URL": redis_url}
        with run_hub(tmp, policies, env=env) as process:
            yield process
    finally:
        upstream.close()


def client_token(tmp: Path, hub: HubProcess, redis_url: str, scopes: str = "svc.read") -> str:
    """A client-credentials access token of a new client."""
    client = hub_command(
        tmp, hub, {"HUB_REDIS_URL": redis_url},
        "clients", "create", "--name", "app", "--owner", "o", "--scopes", scopes,
    )  # fmt: skip
    response = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=TIMEOUT,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


class Browser:
    """Signs people in through the hub's shared store, as the login pages would."""

    def __init__(self, redis_url: str) -> None:
        self.loop = LoopThread()
        # The hubs of this test process keep their keys under its events namespace.
        self.store = RedisEphemeralStore.from_url(
            redis_url, prefix=ephemeral_prefix(TEST_NAMESPACE)
        )
        self.sessions = SessionManager(self.store, idle_seconds=1800, max_seconds=43200)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sign_in(self, acr: str = ACR_PASSWORD, *, max_seconds: float | None = None) -> str:
        sessions = self.sessions
        if max_seconds is not None:
            sessions = SessionManager(self.store, idle_seconds=max_seconds, max_seconds=max_seconds)
        raw, _ = self.loop.run(sessions.create(person_id="person-42", acr=acr, amr=["pwd"]))
        return raw

    def sign_out(self, raw: str) -> None:
        self.loop.run(self.sessions.end(raw))

    def close(self) -> None:
        self.loop.run(self.store.aclose())
        self.loop.close()
