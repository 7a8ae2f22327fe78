"""Admin endpoints of payments: reconciliation, and a payment as the hub holds it.

- ``GET /admin/api/payments/reconciliation?date=YYYY-MM-DD&adapter=payment-provider``: the
  provider's settlement ledger of that day (UTC; default today) against the hub's book;
  ``clean`` and every mismatch (``hub payments reconcile`` prints it and exits 1 on any);
- ``GET /admin/api/payments/{payment_id}``: any payment, with its refunds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, TypeAlias

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from adapters.base import CallContext
from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.errors import InvalidRequest, PaymentNotFound, ServiceUnavailable
from hub.payments.reconcile import reconcile
from hub.payments.service import Payments, payment_json
from hub.runtime import Runtime

__all__ = ["AdminPaymentsController"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _payments(runtime: Runtime) -> Payments:
    if runtime.payments is None:
        raise ServiceUnavailable("payments are not started")
    return runtime.payments


class AdminPaymentsController(Controller):
    """Admins: reconciliation and payments as stored."""

    path = "/admin/api/payments"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @get("/reconciliation")
    async def reconciliation(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        request: Request[Any, Any, Any],
        adapter: FromQuery[str] = "payment-provider",
    ) -> dict[str, Any]:
        """The day's settlement ledger against the hub's book (``?date=YYYY-MM-DD``)."""
        payments = _payments(runtime)
        text = request.query_params.get("date")
        try:
            day = date.fromisoformat(text) if text else datetime.now(UTC).date()
        except ValueError:
            raise InvalidRequest("date is YYYY-MM-DD") from None
        provider = payments.adapter(adapter)
        report = await reconcile(
            payments.store,
            provider,
            adapter=adapter,
            day=day,
            context=CallContext(request_id=request.headers.get("x-request-id", ""), caller=actor),
        )
        return report.as_json()

    @get("/{payment_id:str}")
    async def payment(self, runtime: RuntimeDep, payment_id: FromPath[str]) -> dict[str, Any]:
        store = _payments(runtime).store
        found = await store.get(payment_id)
        if found is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        return payment_json(found, await store.refunds(payment_id))
