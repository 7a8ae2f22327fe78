"""Each registrar adapter against its sandbox over real HTTP, through the one resilience path.

The sandboxes run as real processes on loopback ports; the adapters are built by the hub's
registry from an ``adapters`` section, exactly as at run time, with the in-process rate-limit
store. Every injected fault is exercised: errors (retried only when safe), a hang (timeouts,
the breaker opening and closing again), bodies cut short or out of contract, the registry's own
quota, and the bulkhead; and a failing registry next to a healthy one leaves the healthy one
answering at its usual speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.base import CallContext
from adapters.registrars.civil import Person
from adapters.registrars.commercial import Establishment
from adapters.registrars.education import Certificate, VerificationReceipt
from adapters.sandbox.civil_registry.data import PersonRegister
from hub.adapters.registry import AdapterRegistry, LiveAdapter
from hub.config.loader import document_from_raw
from hub.errors import (
    AdapterRateLimited,
    CircuitOpen,
    UpstreamContractViolation,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from hub.ratelimit.memory import MemoryRateLimitStore
from hub.settings import PROJECT_ROOT
from hub.upstream.breaker import BreakerState
from tests.registrars import KEYS, Sandbox, adapter_document, run_sandboxes

pytestmark = pytest.mark.integration

CONTEXT = CallContext(request_id="req-test-0001")


class Calls:
    """The registry's CallObserver: every call's outcome."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def adapter_call(self, adapter: str, operation: str, outcome: str, seconds: float) -> None:
        self.seen.append((adapter, operation, outcome))


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sandbox]]:
    with run_sandboxes(
        tmp_path_factory.mktemp("sandboxes"), quota={"civil-registry": (50, 10)}
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def _clean(sandboxes: dict[str, Sandbox]) -> None:
    for sandbox in sandboxes.values():
        sandbox.reset()


async def _registry(sandboxes: dict[str, Sandbox], **overrides: Any) -> AdapterRegistry:
    document = document_from_raw({"adapters": adapter_document(sandboxes, **overrides)})
    limiter = MemoryRateLimitStore()
    registry = AdapterRegistry(
        secrets={name.replace("-", "_") + "_key": key for name, key in KEYS.items()},
        contracts_dir=PROJECT_ROOT / "contracts",
        observer=Calls(),
        limiter=lambda: limiter,
    )
    await registry.apply(document.adapters)
    return registry


@pytest.fixture
async def registry(sandboxes: dict[str, Sandbox]) -> AsyncIterator[AdapterRegistry]:
    built = await _registry(sandboxes)
    yield built
    await built.aclose()


async def call(live: LiveAdapter, operation: str, **params: str) -> Any:
    adapter = live.require()
    op = adapter.operations[operation]
    return await op.call(adapter, op.parse(params), CONTEXT)


async def test_each_adapter_reads_its_sandbox(registry: AdapterRegistry) -> None:
    civil = registry.get("civil-registry")
    person = await call(civil, "get_person", id="1000000001")
    assert isinstance(person, Person)
    assert (person.given_name, person.family_name, person.birth_date) == (
        "Aisha",
        "Al-Harbi",
        "1988-04-12",
    )
    assert person.alive
    deceased = await call(civil, "get_person", id="1000000004")
    assert deceased.alive is False
    assert deceased.death_date == "2024-12-30"
    assert await call(civil, "get_person", id="1999999999") is None
    synthetic = await call(civil, "get_person", id="1000004321")
    assert synthetic == await call(civil, "get_person", id="1000004321")  # deterministic

    establishment = await call(
        registry.get("commercial-registry"), "get_establishment", cr_number="4030000001"
    )
    assert isinstance(establishment, Establishment)
    assert (establishment.name, establishment.owner_national_id, establishment.status) == (
        "Demo Trading Co",
        "1000000001",
        "active",
    )
    education = registry.get("education-registry")
    certificate = await call(education, "get_certificate", number="QC-2010-000001")
    assert isinstance(certificate, Certificate)
    assert certificate.holder_national_id == "1000000001"
    receipt = await call(education, "record_verification", number="QC-2010-000001")
    assert isinstance(receipt, VerificationReceipt)
    assert receipt.valid
    assert (await education.require().health()).ok


async def test_a_wrong_key_is_refused_by_the_registry(sandboxes: dict[str, Sandbox]) -> None:
    document = document_from_raw({"adapters": adapter_document(sandboxes)})
    registry = AdapterRegistry(
        secrets={"civil_registry_key": "not-the-key"},
        contracts_dir=PROJECT_ROOT / "contracts",
        observer=Calls(),
        limiter=lambda: None,
    )
    await registry.apply(document.adapters)
    try:
        with pytest.raises(UpstreamError, match="refused the hub's credentials"):
            await call(registry.get("civil-registry"), "get_person", id="1000000001")
        assert sandboxes["civil-registry"].stats()["unauthorized"] == 1
        # An adapter whose secret is not set is unavailable, the others are not.
        assert "not set" in registry.get("commercial-registry").error
    finally:
        await registry.aclose()


async def test_failures_are_retried_only_when_safe(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    civil, education = sandboxes["civil-registry"], sandboxes["education-registry"]
    civil.faults(error_rate=1.0, error_status=503)
    with pytest.raises(UpstreamError):
        await call(registry.get("civil-registry"), "get_person", id="1000000001")
    assert civil.stats()["received"] == 3  # an idempotent read: first try and two retries

    education.faults(error_rate=1.0, error_status=503)
    live = registry.get("education-registry")
    with pytest.raises(UpstreamError):
        await call(live, "record_verification", number="QC-2010-000001")
    assert education.stats()["received"] == 1  # not idempotent, no key: never repeated
    with pytest.raises(UpstreamError):
        await call(
            live, "record_verification", number="QC-2010-000001", idempotency_key="key-00000001"
        )
    assert education.stats()["received"] == 4  # with an Idempotency-Key it may be repeated

    education.faults(error_rate=0.5)  # every other answer fails: the retries get it through
    for index in range(6):
        receipt = await call(
            live, "record_verification", number="QC-2014-000002", idempotency_key=f"key-{index:08d}"
        )
        assert receipt.certificate_number == "QC-2014-000002"


async def test_the_breaker_opens_then_closes(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    civil = sandboxes["civil-registry"]
    live = registry.get("civil-registry")
    assert live.client is not None
    civil.faults(error_rate=1.0, error_status=503)
    with pytest.raises(UpstreamError):
        await call(live, "get_person", id="1000000001")  # three failures (two retries)
    with pytest.raises(UpstreamError):
        await call(live, "get_person", id="1000000001")  # two more: the breaker opens
    assert live.breaker_state is BreakerState.OPEN
    received = civil.stats()["received"]
    with pytest.raises(CircuitOpen):
        await call(live, "get_person", id="1000000001")
    assert civil.stats()["received"] == received  # refused in the hub: the registry saw nothing
    civil.reset()
    await asyncio.sleep(0.6)  # open_seconds: 0.5
    assert live.breaker_state is BreakerState.HALF_OPEN
    person = await call(live, "get_person", id="1000000001")  # the probe succeeds
    assert person.given_name == "Aisha"
    assert live.breaker_state is BreakerState.CLOSED


async def test_a_hung_registry_times_out_and_leaves_the_others_fast(
    sandboxes: dict[str, Sandbox],
) -> None:
    registry = await _registry(
        sandboxes,
        education_registry={
            "timeouts": {"connect": 0.5, "read": 0.5, "total": 1.2},
            "retries": {"max_retries": 1, "backoff_initial": 0.01, "backoff_max": 0.02},
            "breaker": {"failure_threshold": 3, "open_seconds": 30},
        },
    )
    try:
        sandboxes["education-registry"].faults(hang=True, hang_seconds=20)
        hung_one = registry.get("education-registry")
        commercial = registry.get("commercial-registry")
        healthy: list[float] = []

        async def hung() -> BaseException | None:
            try:
                await call(hung_one, "get_certificate", number="QC-2010-000001")
            except (UpstreamTimeout, CircuitOpen) as exc:
                return exc
            return None

        async def fast() -> None:
            for _ in range(10):
                started = time.perf_counter()
                record = await call(commercial, "get_establishment", cr_number="4030000001")
                healthy.append(time.perf_counter() - started)
                assert record.status == "active"

        assert isinstance(await hung(), UpstreamTimeout)  # two attempts of 0.5 s: two failures
        results = await asyncio.gather(*(hung() for _ in range(8)), *(fast() for _ in range(4)))
        failures = results[:8]
        # The third failure opens the breaker: the other callers are refused at once.
        assert all(isinstance(r, UpstreamTimeout | CircuitOpen) for r in failures), failures
        assert any(isinstance(r, CircuitOpen) for r in failures)
        assert len(healthy) == 40
        # Isolation, not speed: no healthy call waited anywhere near the hung one's timeout.
        assert max(healthy) < 0.5
        assert hung_one.breaker_state is BreakerState.OPEN  # the hang opened its breaker...
        assert commercial.breaker_state is BreakerState.CLOSED  # ...and only its own
    finally:
        await registry.aclose()


@pytest.mark.parametrize("fault", ["malformed_rate", "out_of_contract_rate"])
async def test_an_answer_outside_the_contract_is_refused_and_logged(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox], fault: str
) -> None:
    sandboxes["commercial-registry"].faults(**{fault: 1.0})
    with capture_logs() as logs, pytest.raises(UpstreamContractViolation) as caught:
        await call(registry.get("commercial-registry"), "get_establishment", cr_number="4030000001")
    assert caught.value.status == 502
    assert caught.value.code == "upstream_contract_violation"
    assert "Demo Trading" not in caught.value.detail  # the body is never passed on
    violations = [e for e in logs if e["event"] == "adapter.contract_violation"]
    assert violations
    assert violations[0]["request_id"] == "req-test-0001"
    assert violations[0]["operation"] == "get_establishment"
    assert "Demo Trading" not in str(violations[0])  # nor logged


async def test_the_registry_quota_holds(
    sandboxes: dict[str, Sandbox],
) -> None:
    # The civil sandbox allows 50 requests/s with a burst of 10 (it counts arrivals, so that is
    # 200 ms of tolerance for its own scheduling on a loaded machine); the hub is set to 45/s,
    # the headroom an operator leaves under a system's quota, and waits up to 0.3 s.
    registry = await _registry(
        sandboxes,
        civil_registry={
            "rate_limit": {"rate": 45, "period": 1, "burst": 0, "max_wait": 0.3},
            "max_concurrent": 512,
        },
    )
    civil = sandboxes["civil-registry"]
    live = registry.get("civil-registry")
    try:
        outcomes = await asyncio.gather(
            *(call(live, "get_person", id=f"10000{i:05d}") for i in range(100)),
            return_exceptions=True,
        )
        limited = [o for o in outcomes if isinstance(o, AdapterRateLimited)]
        served = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(served) + len(limited) == 100
        assert 10 <= len(served) <= 20  # 1 at once, then one per 22 ms for 0.3 s
        assert limited
        assert limited[0].headers["Retry-After"]
        # Sustained: 80 calls/s offered for 2 s, 45/s allowed.
        await asyncio.sleep(1.0)
        started = time.monotonic()
        tasks = []
        for i in range(160):
            tasks.append(asyncio.create_task(call(live, "get_person", id=f"10001{i:05d}")))
            await asyncio.sleep(max(0.0, started + (i + 1) / 80 - time.monotonic()))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in results) >= 60
        stats = civil.stats()
        assert stats["over_quota"] == 0  # the registry never saw more than its quota
        assert stats["max_in_period"] <= 50 + 10 + 1
        assert stats["received"] == len(served) + sum(
            not isinstance(r, BaseException) for r in results
        )
    finally:
        await registry.aclose()


async def test_the_bulkhead_refuses_beyond_its_share(sandboxes: dict[str, Sandbox]) -> None:
    registry = await _registry(sandboxes, commercial_registry={"max_concurrent": 4})
    sandboxes["commercial-registry"].faults(slow_ms=300)
    live = registry.get("commercial-registry")
    try:
        outcomes = await asyncio.gather(
            *(call(live, "get_establishment", cr_number="4030000001") for _ in range(10)),
            return_exceptions=True,
        )
        assert sum(isinstance(o, UpstreamOverloaded) for o in outcomes) == 6
        assert sum(isinstance(o, Establishment) for o in outcomes) == 4
        assert sandboxes["commercial-registry"].stats()["received"] == 4
    finally:
        await registry.aclose()


async def test_a_changed_configuration_rebuilds_only_that_adapter(
    registry: AdapterRegistry, sandboxes: dict[str, Sandbox]
) -> None:
    before = dict(registry.adapters)
    document = document_from_raw(
        {"adapters": adapter_document(sandboxes, education_registry={"max_concurrent": 3})}
    )
    await registry.apply(document.adapters)
    assert registry.adapters["civil-registry"] is before["civil-registry"]
    assert registry.adapters["education-registry"] is not before["education-registry"]
    record = await call(
        registry.get("education-registry"), "get_certificate", number="QC-2014-000002"
    )
    assert record.holder_name == "Maria Santos"


def test_the_sandbox_data_is_deterministic() -> None:
    one, two = PersonRegister(seed=7, population=100), PersonRegister(seed=7, population=100)
    other = PersonRegister(seed=8, population=100)
    assert one.lookup("1000000050") == two.lookup("1000000050")
    assert one.lookup("1000000050") != other.lookup("1000000050")
    assert one.lookup("1000000100") is None  # beyond the population
    assert one.lookup("1000000001")["given_name"] == "Aisha"  # type: ignore[index]
