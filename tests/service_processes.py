"""Start the platform's services as real processes beside a test hub, on the hub's back-end set.

The wiring every e2e test of the services uses (through :mod:`tests.fleet_support`), for any
number of them: each ``python -m services.<module>`` gets its ``<PREFIX>_*`` settings (its port,
data folder, the hub's URL and issuer, its client at the hub, the run's events namespace) and,
on the real set, RabbitMQ and its own schema in the hub's PostgreSQL database; on the embedded
set its own SQLite file and the bus in the hub's database. Nothing is inherited from the
developer's ``HUB_*`` or service variables.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hub.settings import Settings
from tests.browser import Browser
from tests.hubproc import ROOT, HubProcess, hub_env, wait_http
from tests.sandbox_support import stop_processes
from tests.sso_e2e_support import (
    APP_CB,
    AuthorizeRequest,
    first_party_app,
    public_client,
    query_of,
    sign_in,
)

__all__ = ["Service", "person_token", "run_services"]


@dataclass
class Service:
    """One service to start: its module, settings prefix, port, client and extra settings."""

    module: str
    prefix: str
    port: int
    credentials: Mapping[str, str] | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    #: a path the hub routes to the service, polled until the hub reaches it
    probe: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _environment(
    tmp: Path, hub: HubProcess, backends: Mapping[str, str], namespace: str, service: Service
) -> dict[str, str]:
    hub_settings = Settings.from_env(hub_env(tmp, tmp / "policies", hub.port, extra=backends))
    prefix = service.prefix
    env = {
        f"{prefix}_PORT": str(service.port),
        f"{prefix}_DATA_DIR": str(tmp / service.module),
        f"{prefix}_HUB_URL": hub.url,
        f"{prefix}_HUB_ISSUER": hub_settings.issuer,
        f"{prefix}_EVENTS_NAMESPACE": namespace,
    }
    if service.credentials is not None:
        env[f"{prefix}_CLIENT_ID"] = service.credentials["client_id"]
        env[f"{prefix}_CLIENT_SECRET"] = service.credentials["client_secret"]
    if hub_settings.amqp_url:  # the real set: RabbitMQ, and its own schema in PostgreSQL
        env[f"{prefix}_AMQP_URL"] = hub_settings.amqp_url
        env[f"{prefix}_DATABASE_URL"] = hub_settings.database_url
        env[f"{prefix}_DATABASE_SCHEMA"] = service.module
    else:  # the embedded set: its own SQLite file, the bus in the hub's database
        env[f"{prefix}_BUS_DATABASE_URL"] = hub_settings.database_url
    env.update(service.extra)
    return env


@contextmanager
def run_services(
    tmp: Path,
    hub: HubProcess,
    backends: Mapping[str, str],
    namespace: str,
    services: list[Service],
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``services``, wait for their health and for the hub to reach them; stop them after."""
    prefixes = tuple(f"{s.prefix}_" for s in services)
    clean = {
        k: v
        for k, v in hub_env(tmp, tmp / "policies", hub.port).items()
        if not k.startswith(prefixes)
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for service in services:
            env = _environment(tmp, hub, backends, namespace, service)
            with (tmp / f"{service.module}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", f"services.{service.module}"],
                        env={**clean, **env},
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for service, process in zip(services, processes, strict=True):
            assert wait_http(f"{service.url}/healthz", 60, process=process), (
                tmp / f"{service.module}.log"
            ).read_text()
        deadline = time.monotonic() + 30  # the hub marks new upstreams healthy at a probe
        for service in services:
            if service.probe is None:
                continue
            while httpx.get(f"{hub.url}{service.probe}", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, f"the hub never reached {service.module}"
                time.sleep(0.2)
        yield processes
    finally:
        stop_processes(processes)


def person_token(tmp: Path, hub: HubProcess, backends: dict[str, str], identifier: str) -> str:
    """The person signs in through the hub's SSO login (a first-party app, PKCE)."""
    app = first_party_app(tmp, hub, backends)
    with public_client(app) as oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, hub)
        answer = browser.follow(
            sign_in(browser, browser.follow(browser.get(request.url)), identifier), stop_at=APP_CB
        )
        location = answer.headers["location"]
        assert query_of(location)["state"] == request.state
        token = oauth.fetch_token(
            f"{hub.url}/oauth2/token",
            authorization_response=location,
            state=request.state,
            code_verifier=request.verifier,
        )
    access: str = token["access_token"]
    return access
