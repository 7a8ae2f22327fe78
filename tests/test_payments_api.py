"""The payments API's failure paths, other payment methods, resuming after an outage, and
reconciliation (the admin endpoint and ``hub payments reconcile``), on both back-end sets."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.hubproc import ADMIN_TOKEN, ROOT
from tests.payments_support import (
    PAYMENTS,
    PaymentHub,
    Provider,
    new_key,
    open_payment_hub,
    run_provider,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with run_provider(tmp_path_factory.mktemp("provider")) as started:
        yield started


@pytest.fixture
async def hub(
    tmp_path: Path, backend_env: dict[str, str], provider: Provider
) -> AsyncIterator[PaymentHub]:
    await provider.reset()
    async with open_payment_hub(tmp_path, backend_env, provider) as opened:
        yield opened


async def test_every_endpoint_refuses_bad_requests_clearly(
    hub: PaymentHub, provider: Provider
) -> None:
    client = hub.client
    anonymous = await client.post(PAYMENTS, json={"amount": 1, "currency": "SAR"})
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    no_key = await client.post(PAYMENTS, json={"amount": 1, "currency": "SAR"}, headers=hub.auth())
    assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_required")
    bad_key = await client.post(
        PAYMENTS, json={"amount": 1, "currency": "SAR"}, headers=hub.auth("with space")
    )
    assert bad_key.json()["code"] == "invalid_header"
    for body in (
        {"amount": -5, "currency": "SAR"},
        {"amount": 100, "currency": "riyal"},
        {"amount": 100},
        {"amount": 100, "currency": "SAR", "tip": 5},
        {"amount": "100", "currency": "SAR"},
        [1, 2],
    ):
        answer = await client.post(PAYMENTS, json=body, headers=hub.auth(new_key()))
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_request"), body
    not_json = await client.post(PAYMENTS, content=b"{nope", headers=hub.auth(new_key()))
    assert not_json.json()["code"] == "invalid_request"
    huge = await client.post(PAYMENTS, content=b" " * 70_000, headers=hub.auth(new_key()))
    assert huge.status_code == 413
    assert (await provider.stats())["received"] == 0  # nothing reached the provider

    unknown = "pay_" + "0" * 24
    for answer in (
        await hub.get(unknown),
        await hub.capture(unknown, new_key()),
        await hub.refund(unknown, new_key(), amount=1),
        await client.get(f"{PAYMENTS}/{unknown}/refunds", headers=hub.auth()),
    ):
        assert (answer.status_code, answer.json()["code"]) == (404, "payment_not_found")
    malformed = await hub.get("pay_xyz")
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_request")
    with_body = await client.request(
        "GET", f"{PAYMENTS}/{unknown}", content=b"{}", headers=hub.auth()
    )
    assert with_body.json()["code"] == "invalid_request"

    made = await hub.create(new_key(), amount=700)
    payment_id = made.json()["id"]
    # Another application does not even see it.
    other = await hub.vendor_token("Other Vendor", ["payments.read", "payments.write"])
    theirs = await client.get(f"{PAYMENTS}/{payment_id}", headers=hub.auth(token=other))
    assert (theirs.status_code, theirs.json()["code"]) == (404, "payment_not_found")
    readonly = await hub.vendor_token("Reader", ["payments.read"])
    denied = await client.post(PAYMENTS, json={}, headers=hub.auth(new_key(), token=readonly))
    assert (denied.status_code, denied.json()["code"]) == (403, "insufficient_scope")
    # Refunds need payments.refund as well (a permission policy).
    no_refund = await client.post(
        f"{PAYMENTS}/{payment_id}/refunds", json={}, headers=hub.auth(new_key(), token=other)
    )
    assert (no_refund.status_code, no_refund.json()["code"]) == (403, "permission_denied")

    # Wrong states.
    early = await hub.refund(payment_id, new_key(), amount=100)
    assert (early.status_code, early.json()["code"]) == (409, "invalid_payment_state")
    too_much = await hub.capture(payment_id, new_key(), amount=701)
    assert (too_much.status_code, too_much.json()["code"]) == (400, "invalid_request")
    bad_capture = await hub.capture(payment_id, new_key(), amount=0)
    assert bad_capture.json()["code"] == "invalid_request"
    assert (await hub.capture(payment_id, new_key())).status_code == 200
    twice = await hub.capture(payment_id, new_key())
    assert (twice.status_code, twice.json()["code"]) == (409, "invalid_payment_state")
    cancel = await client.post(
        f"{PAYMENTS}/{payment_id}/cancel", json={}, headers=hub.auth(new_key())
    )
    assert (cancel.status_code, cancel.json()["code"]) == (409, "invalid_payment_state")
    # A refusal is stored under its key: the same key gets the same problem again.
    key = new_key()
    first = await hub.refund(payment_id, key, amount=5000)
    replay = await hub.refund(payment_id, key, amount=5000)
    assert first.json()["code"] == replay.json()["code"] == "refund_exceeds_capture"
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["request_id"] == replay.headers["x-request-id"]
    assert (await provider.book())["captures"] == 1


async def test_a_declined_card_fails_and_a_bank_transfer_is_captured_by_webhook(
    hub: PaymentHub, provider: Provider
) -> None:
    declined = await hub.create(new_key(), payment_method="pm_card_declined", reference="a:1")
    assert declined.status_code == 201
    assert (declined.json()["state"], declined.json()["failure_code"]) == (
        "failed",
        "card_declined",
    )
    refused = await hub.capture(declined.json()["id"], new_key())
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_payment_state")

    transfer = await hub.create(
        new_key(), payment_method="pm_bank_transfer", capture_method="automatic", reference="b:2"
    )
    assert transfer.json()["state"] == "pending"
    payment_id = transfer.json()["id"]
    for _ in range(100):  # the provider settles it a moment later and says so by webhook
        if (await hub.get(payment_id)).json()["state"] == "captured":
            break
        await asyncio.sleep(0.05)
    assert (await hub.get(payment_id)).json()["amount_captured"] == 10000
    events = await hub.events()
    assert [(t, p["reference"]) for t, p in events] == [
        ("payment.failed", "a:1"),
        ("payment.captured", "b:2"),
    ]

    cancelled = await hub.create(new_key())
    answer = await hub.client.post(
        f"{PAYMENTS}/{cancelled.json()['id']}/cancel", json={}, headers=hub.auth(new_key())
    )
    assert (answer.status_code, answer.json()["state"]) == (200, "cancelled")


async def test_a_payment_resumes_under_its_key_after_the_provider_was_down(
    hub: PaymentHub, provider: Provider
) -> None:
    await provider.faults(error_rate=1.0, error_status=503)
    key = new_key()
    down = await hub.create(key, amount=4200)
    assert down.status_code in (502, 503, 504), down.text
    rows = await hub.rows("SELECT id, state FROM payments")
    assert [r.state for r in rows] == ["created"]  # kept, not yet known to the provider
    await provider.faults(error_rate=0.0)
    again = await hub.create(key, amount=4200)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == rows[0].id  # the same payment, taken up again
    assert again.json()["state"] == "requires_capture"
    assert len((await provider.book())["intents"]) == 1

    await provider.faults(accept_then_timeout_rate=1.0, hang_seconds=1.0)
    captured = await hub.capture(again.json()["id"], new_key())
    # The answer never came, the adapter asked the provider and found the capture done.
    assert (captured.status_code, captured.json()["state"]) == (200, "captured")
    assert (await provider.book())["captures"] == 1


async def test_reconciliation_reports_every_kind_of_mismatch(
    hub: PaymentHub, provider: Provider
) -> None:
    for amount in (1000, 2000, 3000):
        made = await hub.create(new_key(), amount=amount)
        assert (await hub.capture(made.json()["id"], new_key())).status_code == 200
    await provider.webhooks_settled()
    clean = await hub.reconcile()
    assert (clean["clean"], clean["provider_lines"], clean["hub_lines"]) == (True, 3, 3)

    async def cli(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "payments", "reconcile",
            "--url", hub.url, "--token", ADMIN_TOKEN, *args,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    code, out = await cli()
    assert code == 0, out
    assert "0 mismatch(es)" in out

    await provider.faults(ledger_disagree=True)
    report = await hub.reconcile()
    kinds = sorted(m["kind"] for m in report["mismatches"])
    assert kinds == ["amount", "currency", "missing_at_provider", "missing_in_hub"], report
    code, out = await cli()
    assert code == 1
    assert "missing_in_hub: capture of pay_unknown_to_anyone" in out
    await provider.faults(ledger_disagree=False)
    code, out = await cli("--date", "2001-01-01")
    assert (code, out.strip().splitlines()[-1].endswith("0 mismatch(es)")) == (0, True)
    code, out = await cli("--date", "yesterday")
    assert code == 2
    assert "invalid_request" in out
    unauthorised = await hub.client.get("/admin/api/payments/reconciliation")
    assert unauthorised.status_code == 401
