"""The sandbox payment provider as a real process, and a hub served over loopback HTTP in process.

The hub runs in the test's own event loop under uvicorn on a free port, so the sandbox can
deliver its webhooks to it over real HTTP while the test still reaches the hub's runtime and
database. Every call to the sandbox's control endpoints is async for the same reason: a blocking
call would stall the hub that serves the webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import text

from hub.asgi import HubApp
from hub.settings import Settings
from tests.fixtures_services import free_port
from tests.hubproc import ADMIN_TOKEN, ROOT, hub_env, wait_http
from tests.sandbox_support import SandboxControl, serve_hub, start_sandbox, stop_processes

__all__ = [
    "API_KEY",
    "WEBHOOK_SECRET",
    "PaymentHub",
    "Provider",
    "open_payment_hub",
    "run_provider",
    "signed",
]

API_KEY = "provider-sandbox-key"
WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
PAYMENTS = "/api/payments/v1/payments"
WEBHOOK = "/api/payments/v1/webhooks/payment-provider"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> dict[str, str]:
    """The headers of a delivery signed as the provider signs it."""
    stamp = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Provider-Timestamp": stamp,
        "X-Provider-Signature": f"v1={mac}",
    }


class Provider(SandboxControl):
    """The running sandbox payment provider and its control endpoints."""

    async def point_webhooks(self, url: str | None) -> None:
        await self._call("POST", "/_sandbox/webhooks", {"url": url})

    async def book(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sandbox/book")
        return result

    async def deliveries(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sandbox/webhooks")
        return result

    async def redeliver(self, event_id: str) -> None:
        await self._call("POST", f"/_sandbox/webhooks/{event_id}/redeliver")

    async def webhooks_settled(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until every event was delivered (or given up); the delivery log."""
        deadline = time.monotonic() + timeout
        while True:
            log = await self.deliveries()
            entries = log["deliveries"]
            if log["pending"] == 0 and all(e["delivered"] or e["given_up"] for e in entries):
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks still pending: {log}")
            await asyncio.sleep(0.05)


@contextmanager
def run_provider(tmp: Path) -> Iterator[Provider]:
    """Start the sandbox payment provider on a free port."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        "--port",
        str(port),
        f"--api-key={API_KEY}",
        f"--webhook-secret={WEBHOOK_SECRET}",
        "--settle-seconds=0.2",
    ]
    process = start_sandbox("adapters.sandbox.payment_provider", args, tmp / "provider.log")
    provider = Provider(url=f"http://127.0.0.1:{port}", process=process)
    try:
        if not wait_http(provider.url + "/_sandbox/health", 30, process=process):
            raise RuntimeError("the sandbox payment provider did not start")
        yield provider
    finally:
        stop_processes([process])


def adapter_item(provider: Provider, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": "payment-provider",
        "plugin": "payment_provider",
        "base_url": provider.url,
        "contract": "adapters/payment-provider",
        "credentials": {"scheme": "bearer", "secret": "payment_provider_key"},
        "timeouts": {"connect": 1, "read": 0.5, "total": 1},
        "retries": {"max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.05},
        "breaker": {"failure_threshold": 100, "open_seconds": 0.2, "half_open_max": 1},
        "max_concurrent": 64,
        "options": {"webhook_secret": "payment_webhook_secret", "webhook_tolerance_seconds": 300},
    }
    item.update(overrides)
    return item


def write_policies(folder: Path, provider: Provider, **adapter: Any) -> Path:
    """The repository's payments routes, product and permission, with a test adapter."""
    folder.mkdir(parents=True, exist_ok=True)
    source = ROOT / "policies"
    routes = yaml.safe_load((source / "routes.yaml").read_text())["routes"]
    products = yaml.safe_load((source / "products.yaml").read_text())["products"]
    permissions = yaml.safe_load((source / "permissions.yaml").read_text())["permissions"]
    for route in routes:
        route.pop("rate_limit", None)  # the storm must not meet the demo's limits
    (folder / "routes.yaml").write_text(
        yaml.safe_dump({"routes": [r for r in routes if r.get("product") == "payments"]})
    )
    (folder / "products.yaml").write_text(
        yaml.safe_dump({"products": [p for p in products if p["id"] == "payments"]})
    )
    (folder / "permissions.yaml").write_text(
        yaml.safe_dump({"permissions": [p for p in permissions if p["id"] == "payments.refund"]})
    )
    (folder / "adapters.yaml").write_text(
        yaml.safe_dump({"adapters": [adapter_item(provider, **adapter)]})
    )
    return folder


@dataclass
class PaymentHub:
    """A hub on a loopback port, a vendor's token, and a client for both."""

    app: HubApp
    url: str
    client: httpx.AsyncClient
    token: str = ""

    def auth(self, key: str | None = None, token: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def vendor_token(self, name: str, scopes: list[str]) -> str:
        identity = self.app.runtime.identity
        assert identity is not None
        vendor, secret = await identity.clients.create(
            name=name, owner="tests", auth_method="client_secret_basic", scopes=scopes
        )
        answer = await self.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": " ".join(scopes)},
            auth=(vendor.client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    async def create(self, key: str, **body: Any) -> httpx.Response:
        payload = {"amount": 10000, "currency": "SAR", **body}
        return await self.client.post(PAYMENTS, json=payload, headers=self.auth(key))

    async def capture(self, payment_id: str, key: str, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"{PAYMENTS}/{payment_id}/capture", json=body, headers=self.auth(key)
        )

    async def refund(self, payment_id: str, key: str, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"{PAYMENTS}/{payment_id}/refunds", json=body, headers=self.auth(key)
        )

    async def get(self, payment_id: str) -> httpx.Response:
        return await self.client.get(f"{PAYMENTS}/{payment_id}", headers=self.auth())

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = self.app.runtime.engine
        async with engine.connect() as conn:
            return list(await conn.execute(text(sql), params))

    async def events(self, event_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.rows("SELECT type, payload FROM outbox_events ORDER BY created_at")
        found = []
        for row in rows:
            payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
            if event_type is None or row.type == event_type:
                found.append((row.type, payload))
        return found

    async def reconcile(self) -> dict[str, Any]:
        answer = await self.client.get("/admin/api/payments/reconciliation", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        report: dict[str, Any] = answer.json()
        return report


async def until_settled(send: Any, attempts: int = 80) -> httpx.Response:
    """A client's retries: the same request again while it is in progress or failed upstream."""
    answer: httpx.Response | None = None
    for _ in range(attempts):
        answer = await send()
        retry = answer.status_code >= 500 or (
            answer.status_code == 409 and answer.json().get("code") == "idempotency_in_progress"
        )
        if not retry:
            return answer
        await asyncio.sleep(0.1)
    assert answer is not None
    return answer


def new_key() -> str:
    return str(uuid.uuid4())


@asynccontextmanager
async def open_payment_hub(
    tmp: Path, env: dict[str, str], provider: Provider, **adapter: Any
) -> AsyncIterator[PaymentHub]:
    """Serve a hub on a free port (uvicorn, in this loop), webhooks pointed at it."""
    port = free_port()
    policies = write_policies(tmp / "policies", provider, **adapter)
    extra = {
        **env,
        "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": API_KEY,
        "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HUB_ACCESS_LOG": "false",
    }
    settings = Settings.from_env(hub_env(tmp, policies, port, extra=extra))
    async with serve_hub(settings, port) as app:
        try:
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
                hub = PaymentHub(app=app, url=url, client=client)
                hub.token = await hub.vendor_token(
                    "Visa Services", ["payments.read", "payments.write", "payments.refund"]
                )
                await provider.point_webhooks(url + WEBHOOK)
                yield hub
        finally:
            with contextlib.suppress(Exception):
                await provider.point_webhooks(None)
