"""The sandbox SMS and e-mail providers as real processes, and a hub in process with them.

The hub runs in the test's own event loop under uvicorn on a free port, so the sandboxes can
deliver their receipt callbacks to it over real HTTP while the test still reaches the hub's
runtime and database (as tests/payments_support.py does for the payment provider).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from hub.asgi import HubApp
from hub.settings import Settings
from tests.fixtures_services import free_port
from tests.hubproc import ROOT, hub_env, wait_http
from tests.sandbox_support import SandboxControl, serve_hub, start_sandbox, stop_processes

__all__ = [
    "CALLBACK_SECRETS",
    "KEYS",
    "NotifyHub",
    "Sandbox",
    "notify_adapters",
    "notify_secrets_env",
    "open_notify_hub",
    "run_notify_sandboxes",
]

KEYS = {"sms-provider": "sms-sandbox-key", "email-provider": "email-sandbox-key"}
CALLBACK_SECRETS = {"sms-provider": "cbsec_sms_test_0123", "email-provider": "cbsec_em_test_4567"}
_MODULES = {
    "sms-provider": "adapters.sandbox.sms_provider",
    "email-provider": "adapters.sandbox.email_provider",
}


@dataclass(kw_only=True)
class Sandbox(SandboxControl):
    """One running sandbox provider and its control endpoints (async: see the docstring)."""

    name: str

    async def messages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._call("GET", "/_sandbox/messages"))["messages"]
        return result

    async def receipts(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sandbox/receipts")
        return result

    async def point_receipts(self, url: str | None) -> None:
        await self._call("POST", "/_sandbox/receipts", {"url": url})

    async def receipts_settled(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until every receipt was delivered (or given up); the receipt log."""
        deadline = time.monotonic() + timeout
        while True:
            log = await self.receipts()
            if log["pending"] == 0 and all(
                r["delivered"] or r["given_up"] for r in log["receipts"]
            ):
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"receipts still pending: {log}")
            await asyncio.sleep(0.05)


@contextmanager
def run_notify_sandboxes(
    tmp: Path, *, callback_base: str | None = None
) -> Iterator[dict[str, Sandbox]]:
    """Start both sandboxes on free ports (receipts to ``<callback_base>/<id>`` if given)."""
    tmp.mkdir(parents=True, exist_ok=True)
    started: dict[str, Sandbox] = {}
    try:
        for name, module in _MODULES.items():
            port = free_port()
            args = [
                "--port", str(port), f"--api-key={KEYS[name]}",
                f"--callback-secret={CALLBACK_SECRETS[name]}",
            ]  # fmt: skip
            if callback_base:
                args.append(f"--callback-url={callback_base}/{name}")
            process = start_sandbox(module, args, tmp / f"{name}.log")
            started[name] = Sandbox(name=name, url=f"http://127.0.0.1:{port}", process=process)
        for sandbox in started.values():
            if not wait_http(sandbox.url + "/_sandbox/health", 30, process=sandbox.process):
                raise RuntimeError(f"{sandbox.name} did not start")
        yield started
    finally:
        stop_processes(sandbox.process for sandbox in started.values())


def notify_adapters(sandboxes: Mapping[str, Sandbox], **overrides: Any) -> list[dict[str, Any]]:
    """An ``adapters`` section for the sandboxes; ``overrides[name]`` is merged into one."""
    items = []
    for name, sandbox in sandboxes.items():
        prefix = name.split("-")[0]
        item: dict[str, Any] = {
            "id": name,
            "plugin": name.replace("-", "_"),
            "base_url": sandbox.url,
            "contract": f"adapters/{name}",
            "credentials": {"scheme": "bearer", "secret": f"{prefix}_provider_key"},
            "timeouts": {"connect": 1, "read": 1, "total": 3},
            "retries": {"max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.05},
            "breaker": {"failure_threshold": 5, "open_seconds": 0.5, "half_open_max": 1},
            "max_concurrent": 32,
            "options": {
                "callback_secret": f"{prefix}_callback_secret",
                "callback_tolerance_seconds": 300,
            },
        }
        item.update(overrides.get(name.replace("-", "_"), {}))
        items.append(item)
    return items


def notify_secrets() -> dict[str, str]:
    """The adapter secrets by name (what HUB_ADAPTER_SECRET_* hold)."""
    found = {}
    for name, key in KEYS.items():
        prefix = name.split("-")[0]
        found[f"{prefix}_provider_key"] = key
        found[f"{prefix}_callback_secret"] = CALLBACK_SECRETS[name]
    return found


def notify_secrets_env() -> dict[str, str]:
    return {f"HUB_ADAPTER_SECRET_{k.upper()}": v for k, v in notify_secrets().items()}


def write_policies(folder: Path, sandboxes: Mapping[str, Sandbox]) -> Path:
    """The repository's notify routes and permission, with the test's adapters."""
    folder.mkdir(parents=True, exist_ok=True)
    source = ROOT / "policies"
    routes = yaml.safe_load((source / "routes.yaml").read_text())["routes"]
    permissions = yaml.safe_load((source / "permissions.yaml").read_text())["permissions"]
    mine = [r for r in routes if r["id"].startswith("notify-")]
    for route in mine:
        route.pop("rate_limit", None)
    (folder / "routes.yaml").write_text(yaml.safe_dump({"routes": mine}))
    (folder / "permissions.yaml").write_text(
        yaml.safe_dump({"permissions": [p for p in permissions if p["id"] == "notify.providers"]})
    )
    (folder / "adapters.yaml").write_text(yaml.safe_dump({"adapters": notify_adapters(sandboxes)}))
    return folder


@dataclass
class NotifyHub:
    """A hub on a loopback port and a client for it."""

    app: HubApp
    url: str
    client: httpx.AsyncClient

    async def client_token(self, scopes: list[str]) -> str:
        identity = self.app.runtime.identity
        assert identity is not None
        client, secret = await identity.clients.create(
            name="Notification service", owner="tests", auth_method="client_secret_basic",
            scopes=scopes,
        )  # fmt: skip
        answer = await self.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
            auth=(client.client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token


@asynccontextmanager
async def open_notify_hub(
    tmp: Path, env: dict[str, str], sandboxes: Mapping[str, Sandbox]
) -> AsyncIterator[NotifyHub]:
    """Serve a hub on a free port (uvicorn, in this loop), the receipts pointed at it."""
    port = free_port()
    policies = write_policies(tmp / "policies", sandboxes)
    extra = {**env, **notify_secrets_env(), "HUB_ACCESS_LOG": "false"}
    settings = Settings.from_env(hub_env(tmp, policies, port, extra=extra))
    async with serve_hub(settings, port) as app:
        try:
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:
                for name, sandbox in sandboxes.items():
                    await sandbox.point_receipts(f"{url}/api/callbacks/v1/{name}")
                yield NotifyHub(app=app, url=url, client=client)
        finally:
            for sandbox in sandboxes.values():
                with contextlib.suppress(Exception):
                    await sandbox.point_receipts(None)
