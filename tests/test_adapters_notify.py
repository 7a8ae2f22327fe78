"""The SMS and e-mail adapters against their sandboxes over real HTTP, with every fault.

The sandboxes run as real processes on loopback ports; the adapters are built by the hub's
registry from an ``adapters`` section, exactly as at run time. Each injected fault is walked:
errors (retried: a send carries its reference as the Idempotency-Key), a hang (timeouts, the
breaker opening, then closing again), a slow answer, a body cut short (a contract violation;
the repeat finds the same message), and a hung SMS provider next to a working e-mail one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from adapters.base import CallContext
from adapters.notify._base import Sent
from adapters.notify.email import Email
from adapters.notify.sms import Sms
from adapters.sandbox._messaging.server import MessagingConfig, Provider
from adapters.sandbox.email_provider import CHANNEL
from hub.adapters.registry import AdapterRegistry, LiveAdapter
from hub.config.loader import document_from_raw
from hub.errors import (
    CircuitOpen,
    InvalidRequest,
    UpstreamContractViolation,
    UpstreamError,
    UpstreamTimeout,
)
from hub.ratelimit.memory import MemoryRateLimitStore
from hub.settings import PROJECT_ROOT
from hub.upstream.breaker import BreakerState
from tests.notify_support import Sandbox, notify_adapters, notify_secrets, run_notify_sandboxes

pytestmark = pytest.mark.integration

CONTEXT = CallContext(request_id="req-notify-0001")


class Calls:
    def adapter_call(self, adapter: str, operation: str, outcome: str, seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sandbox]]:
    with run_notify_sandboxes(tmp_path_factory.mktemp("notify-sandboxes")) as started:
        yield started


async def _registry(sandboxes: dict[str, Sandbox], **overrides: Any) -> AdapterRegistry:
    document = document_from_raw({"adapters": notify_adapters(sandboxes, **overrides)})
    limiter = MemoryRateLimitStore()
    registry = AdapterRegistry(
        secrets=notify_secrets(),
        contracts_dir=PROJECT_ROOT / "contracts",
        observer=Calls(),
        limiter=lambda: limiter,
    )
    await registry.apply(document.adapters)
    return registry


@pytest.fixture
async def registry(sandboxes: dict[str, Sandbox]) -> AsyncIterator[AdapterRegistry]:
    for sandbox in sandboxes.values():
        await sandbox.reset()
    built = await _registry(sandboxes)
    yield built
    await built.aclose()


async def send(live: LiveAdapter, operation: str, **body: Any) -> Any:
    adapter = live.require()
    op = adapter.operations[operation]
    assert op.parse_body is not None
    return await op.call(adapter, op.parse_body({}, body), CONTEXT)


async def lookup(live: LiveAdapter, operation: str, **params: str) -> Any:
    adapter = live.require()
    op = adapter.operations[operation]
    return await op.call(adapter, op.parse(params), CONTEXT)


SMS = {"to": "+966500000123", "text": "Your visa was issued.", "reference": "nm_1.sms"}
EMAIL = {
    "to": "hr@demo-trading.example",
    "subject": "طلب التأشيرة",
    "text": "صدرت التأشيرة",
    "html": '<html lang="ar" dir="rtl"><body>صدرت التأشيرة</body></html>',
    "language": "ar",
    "reference": "nm_1.email",
}


async def test_each_adapter_sends_to_its_sandbox_and_a_repeat_is_the_same_message(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    sms = registry.get("sms-provider")
    sent = await send(sms, "send_sms", **SMS)
    assert isinstance(sent, Sent)
    assert (sent.status, sent.reference) == ("accepted", "nm_1.sms")
    again = await send(sms, "send_sms", **SMS)
    assert again.id == sent.id  # the reference is the key: nothing is sent twice
    found = await lookup(sms, "get_sms", id=sent.id)
    assert isinstance(found, Sms)
    assert found.segments == 1
    assert await lookup(sms, "get_sms", id="sms_" + "0" * 20) is None
    assert len(await sandboxes["sms-provider"].messages()) == 1

    email = registry.get("email-provider")
    mailed = await send(email, "send_email", **EMAIL)
    assert mailed.id.startswith("em_")
    record = await lookup(email, "get_email", id=mailed.id)
    assert isinstance(record, Email)
    (seen,) = await sandboxes["email-provider"].messages()
    assert seen["body"]["html"].startswith('<html lang="ar" dir="rtl">')
    assert (await sms.require().health()).ok
    assert (await email.require().health()).ok


async def test_bad_input_is_refused_before_the_provider_is_called(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    sms = registry.get("sms-provider")
    for body in (
        {**SMS, "to": "0500000123"},
        {**SMS, "text": ""},
        {**SMS, "reference": "has space"},
        {**SMS, "priority": "high"},
    ):
        with pytest.raises(InvalidRequest):
            await send(sms, "send_sms", **body)
    email = registry.get("email-provider")
    for body in ({**EMAIL, "to": "nobody"}, {**EMAIL, "language": "arabic"}):
        with pytest.raises(InvalidRequest):
            await send(email, "send_email", **body)
    with pytest.raises(InvalidRequest):
        await lookup(sms, "get_sms", id="../etc")
    assert (await sandboxes["sms-provider"].stats())["received"] == 0
    assert (await sandboxes["email-provider"].stats())["received"] == 0
    # The same reference with another body is the provider's 409: refused, not retried.
    await send(sms, "send_sms", **SMS)
    with pytest.raises(InvalidRequest):
        await send(sms, "send_sms", **{**SMS, "text": "something else"})


async def test_a_wrong_key_is_refused(sandboxes: dict[str, Sandbox]) -> None:
    registry = await _registry(
        sandboxes,
        sms_provider={"credentials": {"scheme": "bearer", "secret": "email_provider_key"}},
    )
    try:
        with pytest.raises(UpstreamError):
            await send(registry.get("sms-provider"), "send_sms", **SMS)
        assert (await sandboxes["sms-provider"].stats())["unauthorized"] >= 1
    finally:
        await registry.aclose()


async def test_errors_are_retried_then_the_breaker_opens_and_closes(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    sandbox = sandboxes["sms-provider"]
    live = registry.get("sms-provider")
    await sandbox.faults(error_rate=1.0, error_status=503)
    with pytest.raises(UpstreamError):
        await send(live, "send_sms", **SMS)  # three attempts: a send is safe to repeat
    assert (await sandbox.stats())["received"] == 3
    with pytest.raises(UpstreamError):
        await send(live, "send_sms", **SMS)  # two more failures: five, the breaker opens
    assert live.breaker_state is BreakerState.OPEN
    received = (await sandbox.stats())["received"]
    with pytest.raises(CircuitOpen):
        await send(live, "send_sms", **SMS)
    assert (await sandbox.stats())["received"] == received  # the provider saw nothing
    # The e-mail provider has its own breaker: untouched.
    assert (await send(registry.get("email-provider"), "send_email", **EMAIL)).status == "accepted"
    await sandbox.faults(error_rate=0.0)
    await asyncio.sleep(0.6)  # open_seconds: 0.5
    assert live.breaker_state is BreakerState.HALF_OPEN
    sent = await send(live, "send_sms", **SMS)  # the probe succeeds
    assert sent.status == "accepted"
    assert live.breaker_state is BreakerState.CLOSED
    assert len(await sandbox.messages()) == 1  # one message, whatever the failures before


async def test_a_flaky_provider_is_retried_to_success(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    await sandboxes["email-provider"].faults(error_rate=0.5, error_status=502)
    email = registry.get("email-provider")
    results = []
    for index in range(6):
        try:
            results.append(await send(email, "send_email", **{**EMAIL, "reference": f"r.{index}"}))
        except UpstreamError:
            results.append(None)
    accepted = [r for r in results if r is not None]
    assert len(accepted) >= 4  # three tries each at a coin's odds: most get through
    assert len(await sandboxes["email-provider"].messages()) == len(accepted)


async def test_a_body_cut_short_is_a_contract_violation_and_the_repeat_finds_the_message(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    sandbox = sandboxes["sms-provider"]
    await sandbox.faults(malformed_rate=1.0)
    live = registry.get("sms-provider")
    with pytest.raises(UpstreamContractViolation):
        await send(live, "send_sms", **SMS)
    await sandbox.faults(malformed_rate=0.0)
    sent = await send(live, "send_sms", **SMS)
    (message,) = await sandbox.messages()  # accepted once, answered twice
    assert message["id"] == sent.id


async def test_slow_is_served_and_hang_times_out_without_slowing_the_other(
    sandboxes: dict[str, Sandbox],
) -> None:
    for sandbox in sandboxes.values():
        await sandbox.reset()
    registry = await _registry(
        sandboxes,
        sms_provider={
            "timeouts": {"connect": 0.5, "read": 0.5, "total": 1.2},
            "retries": {"max_retries": 1, "backoff_initial": 0.01, "backoff_max": 0.02},
            "breaker": {"failure_threshold": 2, "open_seconds": 30},
        },
    )
    try:
        sms = registry.get("sms-provider")
        await sandboxes["sms-provider"].faults(slow_ms=200)
        assert (await send(sms, "send_sms", **SMS)).status == "accepted"
        await sandboxes["sms-provider"].faults(slow_ms=0, hang=True, hang_seconds=20)

        async def hung() -> BaseException | None:
            try:
                await send(sms, "send_sms", **{**SMS, "reference": "nm_2.sms"})
            except (UpstreamTimeout, CircuitOpen) as exc:
                return exc
            return None

        assert isinstance(await hung(), UpstreamTimeout)
        email = registry.get("email-provider")
        results = await asyncio.gather(
            hung(),
            *(send(email, "send_email", **{**EMAIL, "reference": f"e.{i}"}) for i in range(5)),
        )
        assert isinstance(results[0], CircuitOpen)  # two failures opened the SMS breaker...
        assert all(r.status == "accepted" for r in results[1:])  # ...e-mail kept working
        assert sms.breaker_state is BreakerState.OPEN
        assert email.breaker_state is BreakerState.CLOSED
    finally:
        await sandboxes["sms-provider"].faults(hang=False)
        await registry.aclose()


async def test_the_sandbox_refuses_bad_faults_and_its_ids_are_deterministic(
    sandboxes: dict[str, Sandbox],
) -> None:
    sandbox = sandboxes["email-provider"]
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        for body in ({"error_rate": 2}, {"colour": 1}, {"hang": "yes"}, [1]):
            answer = await client.post("/_sandbox/faults", json=body)
            assert answer.status_code == 400, body
    one, two = Provider(CHANNEL, MessagingConfig()), Provider(CHANNEL, MessagingConfig())
    assert one.message_id("nm_1.email") == two.message_id("nm_1.email")
    assert one.message_id("nm_1.email") != one.message_id("nm_2.email")
