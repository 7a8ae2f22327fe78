"""Sending through the hub's notify routes, and the providers' receipt callbacks, both back-ends.

A hub serves in the test's loop on a loopback port with the SMS and e-mail adapters pointed at
their sandboxes (real processes), which call back to ``/api/callbacks/v1/<adapter>``. Checked:
only a client with ``notifications.send`` may send; a receipt becomes one
``notification.receipt`` event on the hub's outbox however often it is delivered, in whatever
order; and every refused callback (unsigned, forged, stale, out of contract, unknown adapter)
changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hub.callbacks.receipts import receipt_event_id
from hub.ratelimit.base import Limit
from tests.fixtures_services import events_namespace
from tests.notify_support import (
    CALLBACK_SECRETS,
    NotifyHub,
    Sandbox,
    open_notify_hub,
    run_notify_sandboxes,
)
from tests.payments_support import signed

pytestmark = pytest.mark.integration

SMS_ROUTE = "/api/notify/v1/sms"
EMAIL_ROUTE = "/api/notify/v1/email"
CALLBACK = "/api/callbacks/v1/sms-provider"


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sandbox]]:
    with run_notify_sandboxes(tmp_path_factory.mktemp("notify-callbacks")) as started:
        yield started


@pytest.fixture
async def hub(
    tmp_path: Path, backend_env: dict[str, str], sandboxes: dict[str, Sandbox]
) -> AsyncIterator[NotifyHub]:
    for sandbox in sandboxes.values():
        await sandbox.reset()
    env = {**backend_env, "HUB_EVENTS_NAMESPACE": events_namespace()}
    async with open_notify_hub(tmp_path, env, sandboxes) as opened:
        yield opened


async def _rows(hub: NotifyHub, sql: str) -> list[Any]:
    async with hub.app.runtime.engine.connect() as conn:
        return list(await conn.execute(text(sql)))


async def _receipt_events(hub: NotifyHub) -> list[dict[str, Any]]:
    rows = await _rows(
        hub, "SELECT id, payload FROM outbox_events WHERE type = 'notification.receipt'"
    )
    return [r.payload if isinstance(r.payload, dict) else json.loads(r.payload) for r in rows]


async def _until(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never {what}")
        await asyncio.sleep(0.05)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_send_is_called_back_and_each_receipt_is_one_event(
    hub: NotifyHub, sandboxes: dict[str, Sandbox]
) -> None:
    token = await hub.client_token(["notifications.send"])
    body = {"to": "+966500000123", "text": "مرحبا \u2068W000000123\u2069", "reference": "nm_a.sms"}
    answer = await hub.client.post(SMS_ROUTE, json=body, headers=_auth(token))
    assert answer.status_code == 200, answer.text
    sent = answer.json()
    assert sent["status"] == "accepted"
    assert sent["id"].startswith("sms_")
    (message,) = await sandboxes["sms-provider"].messages()
    assert message["body"]["text"] == body["text"]  # Arabic and isolates travel unchanged
    assert message["segments"] == 1

    async def two() -> Any:
        events = await _receipt_events(hub)
        return events if len(events) == 2 else None

    events = await _until(two, "two receipt events")
    assert sorted(e["status"] for e in events) == ["delivered", "sent"]
    assert {e["reference"] for e in events} == {"nm_a.sms"}
    assert {e["message_id"] for e in events} == {sent["id"]}
    looked_up = await hub.client.get(f"{SMS_ROUTE}/{sent['id']}", headers=_auth(token))
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["status"] == "delivered"  # its receipts are out
    assert (await hub.client.get(f"{SMS_ROUTE}/{sent['id']}")).status_code == 401
    missing = await hub.client.get(f"{SMS_ROUTE}/sms_{'0' * 20}", headers=_auth(token))
    assert (missing.status_code, missing.json()["code"]) == (404, "record_not_found")
    rows = await _rows(hub, "SELECT adapter, receipt_id, event_id FROM callback_receipts")
    assert {r.event_id for r in rows} == {receipt_event_id(r.adapter, r.receipt_id) for r in rows}

    mail = {"to": "x@bounce.example", "subject": "Hello", "text": "Hi", "reference": "nm_a.email"}
    answer = await hub.client.post(EMAIL_ROUTE, json=mail, headers=_auth(token))
    assert answer.status_code == 200, answer.text

    async def bounced() -> Any:
        events = await _receipt_events(hub)
        return [e for e in events if e["status"] == "failed"]

    (failure,) = await _until(bounced, "the bounce's receipt")
    assert failure["adapter"] == "email-provider"
    assert "mailbox" in failure["error"]


async def test_duplicate_and_reordered_receipts_are_taken_once(
    hub: NotifyHub, sandboxes: dict[str, Sandbox]
) -> None:
    sandbox = sandboxes["sms-provider"]
    await sandbox.faults(receipt_duplicate_rate=1.0, receipt_reorder=True)
    token = await hub.client_token(["notifications.send"])
    for index in range(3):
        body = {"to": "+966500000123", "text": "Hi", "reference": f"nm_{index}.sms"}
        answer = await hub.client.post(SMS_ROUTE, json=body, headers=_auth(token))
        assert answer.status_code == 200, answer.text
    log = await sandbox.receipts_settled()
    assert sum(r["delivered"] for r in log["receipts"]) == 12  # each of 6 receipts twice
    events = await _receipt_events(hub)
    assert len(events) == 6  # ...and each one event
    assert len({(e["reference"], e["status"]) for e in events}) == 6
    received = await _rows(hub, "SELECT count(*) AS n FROM callback_receipts")
    assert received[0].n == 6


async def test_only_the_notification_service_client_may_send(
    hub: NotifyHub, sandboxes: dict[str, Sandbox]
) -> None:
    body = {"to": "+966500000123", "text": "Hi", "reference": "nm_x.sms"}
    anonymous = await hub.client.post(SMS_ROUTE, json=body)
    assert anonymous.status_code == 401
    other = await hub.client_token(["visas.apply"])
    refused = await hub.client.post(SMS_ROUTE, json=body, headers=_auth(other))
    assert refused.status_code == 403
    forged = await hub.client.post(SMS_ROUTE, json=body, headers=_auth("eyJhbGciOiJub25lIn0.e30."))
    assert forged.status_code == 401
    token = await hub.client_token(["notifications.send"])
    for bad in (
        {**body, "to": "0500"},
        {**body, "colour": "red"},
        {"text": "Hi"},
    ):
        answer = await hub.client.post(SMS_ROUTE, json=bad, headers=_auth(token))
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_request"), bad
    for raw in (b"", b"{nope", b"[1]"):
        answer = await hub.client.post(SMS_ROUTE, content=raw, headers=_auth(token))
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_request"), raw
    huge = await hub.client.post(
        SMS_ROUTE, content=b'{"text": "' + b"x" * 70_000 + b'"}', headers=_auth(token)
    )
    assert huge.status_code == 413
    assert (await sandboxes["sms-provider"].stats())["received"] == 0  # nothing reached it


def _receipt(**changes: Any) -> bytes:
    body = {
        "id": "rc_manual_1",
        "type": "message.delivered",
        "message_id": "sms_" + "0" * 20,
        "reference": "nm_m.sms",
        "status": "delivered",
        "occurred_at": "2026-12-03T08:00:00Z",
        **changes,
    }
    return json.dumps(body).encode()


async def test_refused_callbacks_change_nothing(hub: NotifyHub) -> None:
    secret = CALLBACK_SECRETS["sms-provider"]
    body = _receipt()
    cases = [
        (body, {"Content-Type": "application/json"}, 400, "invalid_webhook_signature"),
        (body, signed(body, secret="not-the-secret"), 400, "invalid_webhook_signature"),
        (body, signed(b"other body", secret=secret), 400, "invalid_webhook_signature"),
        (body, signed(body, secret=secret, at=int(time.time()) - 3600), 400, "stale_webhook"),
        (body, {**signed(body, secret=secret), "X-Provider-Timestamp": "soon"}, 400,
         "invalid_webhook_signature"),
    ]  # fmt: skip
    for raw in (_receipt(status="read"), _receipt(reference="has space"), b"[]", b"{nope"):
        cases.append((raw, signed(raw, secret=secret), 400, "invalid_request"))
    for raw, headers, status, code in cases:
        answer = await hub.client.post(CALLBACK, content=raw, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (raw, headers)
    unknown = await hub.client.post(
        "/api/callbacks/v1/civil-registry", content=body, headers=signed(body, secret=secret)
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert await _receipt_events(hub) == []
    assert (await _rows(hub, "SELECT count(*) AS n FROM callback_receipts"))[0].n == 0

    first = await hub.client.post(CALLBACK, content=body, headers=signed(body, secret=secret))
    assert first.json() == {"receipt_id": "rc_manual_1", "outcome": "accepted"}
    again = await hub.client.post(CALLBACK, content=body, headers=signed(body, secret=secret))
    assert again.json() == {"receipt_id": "rc_manual_1", "outcome": "duplicate"}
    assert len(await _receipt_events(hub)) == 1


def _loopback_address() -> str:
    """A loopback address of its own, so this test's rate-limit key is no one else's."""
    return f"127.{secrets.randbelow(250) + 2}.{secrets.randbelow(256)}.{secrets.randbelow(250) + 2}"


async def test_a_flood_from_one_address_is_refused_before_any_check(
    hub: NotifyHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hub.callbacks.endpoints.CALLBACK_LIMIT", Limit(rate=1, period=60, burst=2))
    secret = CALLBACK_SECRETS["sms-provider"]
    body = _receipt(id="rc_flood_1")
    flooder, other = _loopback_address(), _loopback_address()
    answers = []
    async with httpx.AsyncClient(
        base_url=hub.url, transport=httpx.AsyncHTTPTransport(local_address=flooder)
    ) as client:
        for raw in (body, body, b"{nope", body, b"{nope"):
            answers.append(
                await client.post(CALLBACK, content=raw, headers=signed(raw, secret=secret))
            )
    assert [a.status_code for a in answers] == [200, 200, 400, 429, 429]
    refused = answers[3]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == '"callbacks";q=1;w=60'
    assert len(await _receipt_events(hub)) == 1  # the refused ones changed nothing

    async with httpx.AsyncClient(
        base_url=hub.url, transport=httpx.AsyncHTTPTransport(local_address=other)
    ) as client:
        answer = await client.post(CALLBACK, content=body, headers=signed(body, secret=secret))
    assert answer.json() == {"receipt_id": "rc_flood_1", "outcome": "duplicate"}  # others pass
