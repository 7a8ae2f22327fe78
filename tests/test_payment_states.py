"""The payment state graph: complete, forward-only, and the only way the code moves a payment.

The graph is checked on its own (every state in it, every state can end, no way back), the
store's source is checked to pass every state write through :func:`check`, and a
property-based run drives the real store on SQLite with random sequences of changes, provider
news and refunds, asserting that every move it made is an edge of the graph and that refunds
never exceed the capture.
"""

from __future__ import annotations

import ast
import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.db.payment_store import PaymentDraft, PaymentStore
from hub.errors import InvalidPaymentState, RefundExceedsCapture
from hub.payments.service import state_of
from hub.payments.states import (
    FINAL,
    REFUNDABLE,
    TRANSITIONS,
    PaymentState,
    advances,
    check,
    reachable,
)

ROOT = Path(__file__).resolve().parent.parent


def test_every_state_is_in_the_graph() -> None:
    assert set(TRANSITIONS) == set(PaymentState)
    for targets in TRANSITIONS.values():
        assert targets <= set(PaymentState)
    assert {
        PaymentState.REFUNDED,
        PaymentState.FAILED,
        PaymentState.CANCELLED,
        PaymentState.EXPIRED,
    } == FINAL
    assert set(PaymentState) >= REFUNDABLE


def test_every_state_can_end_and_none_leads_back() -> None:
    for state in PaymentState:
        if state not in FINAL:
            assert reachable(state) & FINAL, state
        # Forward only: no state can come back to itself, except the refund loop.
        if state in reachable(state):
            assert state == PaymentState.PARTIALLY_REFUNDED
    assert PaymentState.CREATED not in set().union(*TRANSITIONS.values())


def test_check_refuses_every_move_not_drawn() -> None:
    for current in PaymentState:
        for target in PaymentState:
            if target in TRANSITIONS[current]:
                check(current, target)
            else:
                with pytest.raises(InvalidPaymentState):
                    check(current, target)
            assert advances(current, target) == (
                target != current and target in TRANSITIONS[current]
            )


def test_every_provider_status_maps_into_the_graph() -> None:
    schema = json.loads(
        (ROOT / "contracts/adapters/payment-provider/intent.schema.json").read_text()
    )
    reasons = schema["properties"]["cancellation_reason"]["enum"]
    for status in schema["properties"]["status"]["enum"]:
        for reason in reasons:
            intent: Any = type("I", (), {"status": status, "cancellation_reason": reason})()
            assert state_of(intent) in TRANSITIONS
    lapsed: Any = type("I", (), {"status": "canceled", "cancellation_reason": "automatic"})()
    chosen: Any = type("I", (), {"status": "canceled", "cancellation_reason": None})()
    assert (state_of(lapsed), state_of(chosen)) == ("expired", "cancelled")


def test_only_the_store_writes_states_and_always_through_check() -> None:
    writers = []
    for path in sorted((ROOT / "hub").rglob("*.py")):
        text = path.read_text()
        if "update(_PAYMENTS)" in text or "PaymentRow.state ==" in text:
            writers.append(path.relative_to(ROOT).as_posix())
    assert writers == ["hub/db/payment_store.py"]
    source = (ROOT / "hub/db/payment_store.py").read_text()
    checked = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            writes = [call for call in ast.walk(node) if _writes_payment_state(call)]
            calls = {
                call.func.id
                for call in ast.walk(node)
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            }
            if writes:
                assert "check" in calls, f"{node.name} writes a payment state without check()"
                checked += 1
    assert checked >= 2  # _advance and _settle_refund


def _updates_payments(node: ast.AST) -> bool:
    """Whether ``node`` is ``update(_PAYMENTS)``, possibly followed by ``.where(...)``."""
    while isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "update":
            return any(isinstance(a, ast.Name) and a.id == "_PAYMENTS" for a in node.args)
        if not isinstance(func, ast.Attribute):
            return False
        node = func.value
    return False


def _writes_payment_state(node: ast.AST) -> bool:
    """``update(_PAYMENTS)...values(state=...)`` or ``.values(**values)`` (values may hold it)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "values"
        and _updates_payments(node.func.value)
    ):
        return False
    return any(keyword.arg in ("state", None) for keyword in node.keywords)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('states') / 'hub.db'}"
    asyncio.run(migrate(url))
    return url


async def _no_events(*_args: Any) -> None:
    return None


_STEP = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from(list(PaymentState))),
    st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=1200)),
    st.tuples(st.just("settle"), st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("fail"), st.integers(min_value=0, max_value=5)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEP, min_size=1, max_size=12))
def test_every_move_the_store_makes_is_in_the_graph(database: str, steps: list[Any]) -> None:
    asyncio.run(_drive(database, steps))


async def _drive(url: str, steps: list[Any]) -> None:
    engine = create_engine(url)
    store = PaymentStore(engine, events=_no_events)
    payment_id = "pay_" + secrets.token_hex(12)
    try:
        await store.create(
            PaymentDraft(
                id=payment_id, owner="t", reference=None, description="", amount=2000,
                currency="SAR", capture_method="manual", payment_method="pm_card_ok",
                adapter="payment-provider",
            ),
            owner="t",
            key=payment_id,
        )  # fmt: skip
        refunds: list[str] = []
        for kind, value in steps:
            before = await store.get(payment_id)
            assert before is not None
            try:
                if kind == "advance":
                    await store.advance(payment_id, value, captured=1000)
                elif kind == "reserve":
                    refund_id = "rf_" + secrets.token_hex(12)
                    await store.reserve_refund(
                        payment_id=payment_id, refund_id=refund_id, amount=value,
                        reason="", owner="t", key=payment_id,
                    )  # fmt: skip
                    refunds.append(refund_id)
                elif refunds:
                    target = refunds[value % len(refunds)]
                    if kind == "settle":
                        await store.settle_refund(target, provider_id="re_" + target)
                    else:
                        await store.fail_refund(target)
            except (InvalidPaymentState, RefundExceedsCapture):
                pass
            after = await store.get(payment_id)
            assert after is not None
            if after.state != before.state:
                assert after.state in TRANSITIONS[before.state], (before.state, after.state)
            assert 0 <= after.amount_refunded + after.amount_refund_pending <= after.amount_captured
            if after.state == PaymentState.REFUNDED:
                assert after.amount_refunded == after.amount_captured
    finally:
        await engine.dispose()
