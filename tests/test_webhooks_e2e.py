"""Vendor webhooks through running processes: the hub and the sandbox vendor receiver.

The receiver checks every delivery with its own reference implementation of the Standard
Webhooks verification (``adapters/sandbox/vendor_receiver/verify.py``), not with the hub's.
Both back-end sets: SQLite with the database event bus, and PostgreSQL, Redis and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.db.engine import create_engine
from hub.events.outbox import enqueue
from tests.fixtures_services import events_namespace, free_port
from tests.hubproc import (
    ADMIN_TOKEN,
    ROOT,
    HubProcess,
    hub_command,
    run_hub,
    wait_http,
    write_policies,
)

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("webhooks-e2e")


@pytest.fixture(scope="module")
def receiver(tmp: Path) -> Iterator[str]:
    port = free_port()
    with (tmp / "receiver.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapters.sandbox.vendor_receiver", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_http(f"{url}/healthz", 20, process=process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def hub(tmp: Path, backends: dict[str, str]) -> Iterator[HubProcess]:
    policies = write_policies(tmp / "policies", upstreams=[], routes=[])
    env = {
        "HUB_ACCESS_LOG": "false",
        "HUB_WEBHOOK_RETRY_SECONDS": "0.1",
        "HUB_WEBHOOK_MAX_ATTEMPTS": "3",
        "HUB_OUTBOX_POLL_SECONDS": "0.1",
        "HUB_EVENTS_NAMESPACE": events_namespace(),
        **backends,
    }
    if backends:
        # Production-like: the key comes from the environment (embedded runs make a key file).
        env["HUB_WEBHOOK_KEY"] = base64.b64encode(os.urandom(32)).decode()
    env = {
        **env,
    }
    with run_hub(tmp, policies, env=env) as process:
        yield process


def _client(tmp: Path, hub: HubProcess, backends: dict[str, str], scopes: str) -> dict[str, str]:
    name = f"vendor-{uuid.uuid4().hex[:6]}"
    return hub_command(
        tmp, hub, backends, "clients", "create", "--name", name, "--owner", name, "--scopes", scopes
    )


def _token(hub: HubProcess, client: dict[str, str]) -> dict[str, str]:
    response = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def vendor(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, Any]:
    client = _client(tmp, hub, backends, "echo.read")
    return {**client, "headers": _token(hub, client)}


def _subscribe(hub: HubProcess, vendor: dict[str, Any], receiver: str, name: str) -> dict[str, Any]:
    response = httpx.post(
        f"{hub.url}/api/webhooks/v1/subscriptions",
        json={
            "url": f"{receiver}/hooks/{name}",
            "event_types": ["echo.item.changed", "webhook.test"],
            "description": "e2e",
        },
        headers=vendor["headers"],
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["secret"].startswith("whsec_")
    # The vendor stores the secret shown once; the receiver verifies with it.
    put = httpx.put(
        f"{receiver}/_sandbox/endpoints/{name}", json={"secret": created["secret"]}, timeout=5
    )
    assert put.status_code == 204
    return created


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    async def poll() -> Any:
        async with asyncio.timeout(timeout):
            while not (found := predicate()):
                await asyncio.sleep(0.1)
            return found

    try:
        return asyncio.run(poll())
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def _received(receiver: str, name: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = httpx.get(
        f"{receiver}/_sandbox/received", params={"name": name}, timeout=5
    ).json()
    return got


def _produce(hub: HubProcess, backends: dict[str, str], tmp: Path, payload: dict[str, Any]) -> str:
    """An event committed to the hub's outbox, as a producer in the hub does it."""
    url = backends.get("HUB_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp / 'data' / 'hub.db'}"

    async def write() -> str:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                event = await enqueue(conn, type="echo.item.changed", payload=payload, key="item")
            return event.id
        finally:
            await engine.dispose()

    return asyncio.run(write())


def test_an_outbox_event_reaches_the_vendor_signed_and_verified(
    tmp: Path, hub: HubProcess, vendor: dict[str, Any], receiver: str, backends: dict[str, str]
) -> None:
    name = f"e-{uuid.uuid4().hex[:6]}"
    _subscribe(hub, vendor, receiver, name)

    event_id = _produce(hub, backends, tmp, {"item": 42, "label": "مرحبا"})

    (got,) = _wait(lambda: [r for r in _received(receiver, name) if r["verified"]], "delivery")
    assert got["webhook_id"] == event_id
    assert got["body"]["type"] == "echo.item.changed"
    assert got["body"]["data"] == {"item": 42, "label": "مرحبا"}
    assert not got["duplicate"]


def test_a_failing_receiver_is_retried_then_delivered(
    hub: HubProcess, vendor: dict[str, Any], receiver: str
) -> None:
    name = f"r-{uuid.uuid4().hex[:6]}"
    sub = _subscribe(hub, vendor, receiver, name)
    httpx.post(f"{receiver}/_sandbox/faults", json={"fail_next": 2, "status": 503}, timeout=5)

    test = httpx.post(
        f"{hub.url}/api/webhooks/v1/subscriptions/{sub['id']}/test",
        headers=vendor["headers"],
        timeout=TIMEOUT,
    )
    assert test.status_code == 202, test.text

    _wait(lambda: [r for r in _received(receiver, name) if r["verified"]], "the third try")
    statuses = [r["status"] for r in _received(receiver, name)]
    assert statuses == [503, 503, 204]
    (delivery,) = httpx.get(
        f"{hub.url}/api/webhooks/v1/subscriptions/{sub['id']}/deliveries",
        headers=vendor["headers"],
        timeout=TIMEOUT,
    ).json()
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert delivery["event_id"] == test.json()["event_id"]


def test_a_delivery_is_parked_after_the_last_try_and_an_admin_replays_it(
    hub: HubProcess, vendor: dict[str, Any], receiver: str
) -> None:
    name = f"p-{uuid.uuid4().hex[:6]}"
    sub = _subscribe(hub, vendor, receiver, name)
    httpx.post(f"{receiver}/_sandbox/faults", json={"fail_next": 3, "status": 500}, timeout=5)
    httpx.post(
        f"{hub.url}/api/webhooks/v1/subscriptions/{sub['id']}/test",
        headers=vendor["headers"],
        timeout=TIMEOUT,
    )

    def parked() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(
            f"{hub.url}/admin/api/webhooks/deliveries",
            params={"subscription_id": sub["id"], "status": "parked"},
            headers=ADMIN,
            timeout=TIMEOUT,
        ).json()
        return found

    (delivery,) = _wait(parked, "parking")
    assert delivery["attempts"] == 3
    assert delivery["last_status"] == 500
    assert len(_received(receiver, name)) == 3

    replay = httpx.post(
        f"{hub.url}/admin/api/webhooks/deliveries/{delivery['id']}/replay",
        headers=ADMIN,
        timeout=TIMEOUT,
    )
    assert replay.status_code == 202, replay.text
    _wait(lambda: [r for r in _received(receiver, name) if r["verified"]], "the replay")

    again = httpx.post(
        f"{hub.url}/admin/api/webhooks/deliveries/{delivery['id']}/replay",
        headers=ADMIN,
        timeout=TIMEOUT,
    )
    assert again.status_code == 409
    assert again.json()["code"] == "not_replayable"


def test_a_wrong_secret_fails_the_reference_verification(
    hub: HubProcess, vendor: dict[str, Any], receiver: str
) -> None:
    name = f"w-{uuid.uuid4().hex[:6]}"
    sub = _subscribe(hub, vendor, receiver, name)
    httpx.put(
        f"{receiver}/_sandbox/endpoints/{name}",
        json={"secret": "whsec_" + "A" * 43 + "="},
        timeout=5,
    )
    httpx.post(
        f"{hub.url}/api/webhooks/v1/subscriptions/{sub['id']}/test",
        headers=vendor["headers"],
        timeout=TIMEOUT,
    )
    first = _wait(lambda: _received(receiver, name), "a refused delivery")[0]
    assert first["status"] == 401
    assert first["error"] == "No matching signature found"


def test_subscription_failure_paths(
    tmp: Path, hub: HubProcess, vendor: dict[str, Any], backends: dict[str, str]
) -> None:
    url = f"{hub.url}/api/webhooks/v1/subscriptions"

    def post(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(url, json=body, headers=headers or vendor["headers"], timeout=TIMEOUT)

    good = {"url": "https://vendor.example/hooks", "event_types": ["echo.item.changed"]}
    assert httpx.post(url, json=good, timeout=TIMEOUT).status_code == 401
    cases = [
        ({**good, "event_types": ["payment.captured"]}, 403, "event_type_not_allowed"),
        ({**good, "event_types": ["no.such.type"]}, 400, "invalid_request"),
        ({**good, "event_types": []}, 400, "invalid_request"),
        ({**good, "url": "http://vendor.example/hooks"}, 400, "invalid_request"),
        ({**good, "url": "ftp://vendor.example/"}, 400, "invalid_request"),
        ({**good, "url": "https://user:pw@vendor.example/"}, 400, "invalid_request"),
        ({"url": 5}, 400, None),
    ]
    for body, status, code in cases:
        response = post(body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        if code:
            assert response.json()["code"] == code, body

    created = post(good)
    assert created.status_code == 201
    sub_id = created.json()["id"]
    # Another vendor cannot see, test or delete it.
    other = _client(tmp, hub, backends, "echo.read")
    other_headers = _token(hub, other)
    for method, path in [
        ("GET", f"/{sub_id}"),
        ("DELETE", f"/{sub_id}"),
        ("POST", f"/{sub_id}/test"),
        ("GET", f"/{sub_id}/deliveries"),
    ]:
        response = httpx.request(method, url + path, headers=other_headers, timeout=TIMEOUT)
        assert response.status_code == 404, (method, path)
    listed = httpx.get(url, headers=other_headers, timeout=TIMEOUT).json()
    assert listed == []
    # The secret is never shown again.
    shown = httpx.get(f"{url}/{sub_id}", headers=vendor["headers"], timeout=TIMEOUT).json()
    assert "secret" not in shown
    assert "secret_ciphertext" not in shown
    types = httpx.get(
        f"{hub.url}/api/webhooks/v1/event-types", headers=vendor["headers"], timeout=TIMEOUT
    ).json()
    assert {t["type"] for t in types} == {"webhook.test", "echo.item.changed"}
    deleted = httpx.delete(f"{url}/{sub_id}", headers=vendor["headers"], timeout=TIMEOUT)
    assert deleted.status_code == 200
    assert (
        httpx.get(f"{url}/{sub_id}", headers=vendor["headers"], timeout=TIMEOUT).status_code == 404
    )


def test_admin_failure_paths(hub: HubProcess) -> None:
    base = f"{hub.url}/admin/api"
    assert httpx.get(f"{base}/webhooks/subscriptions", timeout=TIMEOUT).status_code == 401
    cases = [
        ("POST", "/webhooks/deliveries/999999/replay", None, 404),
        ("GET", "/webhooks/subscriptions/whs_nope", None, 404),
        ("DELETE", "/webhooks/subscriptions/whs_nope", None, 404),
        ("GET", "/webhooks/deliveries?status=lost", None, 400),
        ("GET", "/webhooks/deliveries?limit=0", None, 400),
        (
            "POST",
            "/webhooks/subscriptions",
            {"client_id": "nobody", "url": "https://x.example/", "event_types": ["webhook.test"]},
            404,
        ),
        ("POST", "/webhooks/subscriptions", {"url": "https://x.example/"}, 400),
        ("POST", "/events/dead-letters/replay", {"queue": "no.such.queue"}, 409),
        ("POST", "/events/dead-letters/replay", {"nothing": 1}, 400),
    ]
    for method, path, body, status in cases:
        response = httpx.request(method, base + path, json=body, headers=ADMIN, timeout=TIMEOUT)
        assert response.status_code == status, (method, path, response.text)


def _cli(hub: HubProcess, *args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    """``hub ARGS`` against the running hub's admin API, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", *args, "--url", hub.url, "--token", token],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_lists_and_replays_parked_deliveries_and_dead_letters(
    hub: HubProcess, vendor: dict[str, Any], receiver: str, backends: dict[str, str]
) -> None:
    name = f"c-{uuid.uuid4().hex[:6]}"
    sub = _subscribe(hub, vendor, receiver, name)
    httpx.post(f"{receiver}/_sandbox/faults", json={"fail_next": 3, "status": 500}, timeout=5)
    httpx.post(
        f"{hub.url}/api/webhooks/v1/subscriptions/{sub['id']}/test",
        headers=vendor["headers"],
        timeout=TIMEOUT,
    )

    def parked() -> list[dict[str, Any]]:
        listed = _cli(
            hub, "webhooks", "deliveries", "--status", "parked", "--subscription", sub["id"],
            "--json",
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        found: list[dict[str, Any]] = json.loads(listed.stdout)
        return found

    (delivery,) = _wait(parked, "parking")
    table = _cli(hub, "webhooks", "deliveries", "--status", "parked", "--subscription", sub["id"])
    assert f"{delivery['id']}  parked  webhook.test" in table.stdout
    assert table.stdout.rstrip().endswith("1 deliver(ies)")

    replayed = _cli(hub, "webhooks", "replay", str(delivery["id"]))
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == f"delivery {delivery['id']} is pending again"
    _wait(lambda: [r for r in _received(receiver, name) if r["verified"]], "the replay")
    again = _cli(hub, "webhooks", "replay", str(delivery["id"]))
    assert (again.returncode, again.stdout) == (1, "")
    assert "409 not_replayable" in again.stderr

    bad_status = _cli(hub, "webhooks", "deliveries", "--status", "lost")
    assert bad_status.returncode == 1
    assert "400 invalid_request" in bad_status.stderr
    refused = _cli(hub, "webhooks", "deliveries", token="not-an-admin-token")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "not-an-admin-token" not in refused.stderr + refused.stdout  # no secret echoed
    no_token = _cli(hub, "events", "dead-letters", token="")
    assert (no_token.returncode, no_token.stderr.strip()) == (
        1,
        "error: an admin token is required (--token or HUB_ADMIN_TOKEN)",
    )

    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    letters = _cli(hub, "events", "dead-letters", "--queue", queue, "--json")
    assert (letters.returncode, json.loads(letters.stdout or "null")) == (0, []), letters.stderr
    if backends:  # RabbitMQ lists one queue at a time
        unnamed = _cli(hub, "events", "dead-letters")
        assert unnamed.returncode == 1
        assert "name the queue" in unnamed.stderr
    nothing = _cli(hub, "events", "replay", queue)
    assert nothing.returncode == 1
    assert "409 not_replayable" in nothing.stderr
    down = subprocess.run(
        [sys.executable, "-m", "hub", "events", "dead-letters", "--url",
         f"http://127.0.0.1:{free_port()}", "--token", ADMIN_TOKEN],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert down.returncode == 1
    assert "cannot reach the hub" in down.stderr
