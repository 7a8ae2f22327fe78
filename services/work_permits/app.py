"""The work permits service's HTTP API, behind the hub: ``/api/permits/v1/...`` (contract:
``contracts/products/work_permits/v1``).

Every endpoint but the public reason codes needs the hub's ``X-Hub-Principal-Token``: the
service trusts nothing else about the caller. Object-level rules are here and in
:mod:`services.work_permits.workflow`: an establishment's users see only its permits and only
within the scopes it delegated (``permits.manage``, ``permits.read``), a person only their own,
a transfer only its three parties; anything else does not exist for the caller (404).
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath

from hub.errors import InvalidRequest
from hub.servicekit.http import (
    Components,
    ServiceApp,
    ServiceState,
    created,
    idempotency_key,
    json_body,
    listing,
    no_store,
)
from hub.servicekit.lifecycle import history_items, reason_items, state_items
from hub.servicekit.runtime import ServiceRuntime
from services.work_permits.access import Caller
from services.work_permits.domain import CONSENT_PARTIES, REASONS, STATES, TRANSITIONS, Party
from services.work_permits.hub_client import HubClient
from services.work_permits.projections import Projections
from services.work_permits.settings import PermitSettings
from services.work_permits.store import PermitStore
from services.work_permits.workflow import PermitWorkflow

__all__ = ["SUBSCRIPTIONS", "Components", "create_app"]

#: (queue, pattern) of every event the service learns from; the queue is also the consumer.
SUBSCRIPTIONS: Final = (
    ("permits.payments", "payment.#"),
    ("permits.visas", "visa.application.#"),
    ("permits.contracts", "contract.#"),
    ("permits.compliance", "compliance.band.changed"),
    ("permits.occupations", "occupation.change.approved"),
)
_MAX_BODY: Final = 16 * 1024
_STATE: Final = ServiceState[PermitWorkflow, Caller]("permits", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


async def _body(request: Request[Any, Any, Any], *, required: bool = True) -> object:
    return await json_body(
        request, limit=_MAX_BODY, what="a permit request body", required=required
    )


def _party(body: object, *, reason: bool) -> tuple[Party, str | None]:
    """``{"as": "worker" | "current" | "new"}`` (and an optional ``reason`` when declining)."""
    known = {"as", "reason"} if reason else {"as"}
    if not isinstance(body, dict) or set(body) - known or body.get("as") not in CONSENT_PARTIES:
        shape = '{"as": "worker" | "current" | "new"' + (', "reason": "..."}' if reason else "}")
        raise InvalidRequest(
            f"the body is {shape}", extra={"errors": ["as: worker, current or new"]}
        )
    text = body.get("reason")
    if text is not None and (not isinstance(text, str) or len(text) > 500):
        raise InvalidRequest("reason: at most 500 characters", extra={"errors": ["reason"]})
    party: Party = body["as"]
    return party, (text.strip() or None) if isinstance(text, str) else None


# ---- public -------------------------------------------------------------------------------


@get("/api/permits/v1/reasons", sync_to_thread=False)
def list_reasons() -> dict[str, Any]:
    """Every refusal code and state, so clients can show them."""
    return {
        "reasons": reason_items(REASONS),
        "states": state_items(STATES, TRANSITIONS),
    }


# ---- establishments -------------------------------------------------------------------------


@post("/api/permits/v1/establishments/{establishment_id:str}/permits")
async def issue_permit(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.issue(caller, establishment_id, body, key)
    return created(workflow.view(row), f"/api/permits/v1/permits/{row['id']}", replayed)


@get("/api/permits/v1/establishments/{establishment_id:str}/permits")
async def list_establishment_permits(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id, write=False)
    filters = listing(request, STATES)
    page = await workflow.store.search(establishment_id=establishment_id, **filters)
    return page.body(workflow.view)


@post("/api/permits/v1/establishments/{establishment_id:str}/transfers")
async def request_transfer(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.request_transfer(caller, establishment_id, body, key)
    return created(workflow.transfer_view(row), f"/api/permits/v1/transfers/{row['id']}", replayed)


@get("/api/permits/v1/establishments/{establishment_id:str}/transfers")
async def list_establishment_transfers(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id, write=False)
    rows = await workflow.store.transfers_of(establishment_id)
    return {"items": [workflow.transfer_view(row) for row in rows]}


# ---- people ---------------------------------------------------------------------------------


@get("/api/permits/v1/me/permits")
async def list_my_permits(request: Request[Any, Any, Any]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    if caller.kind != "person":
        return {"items": [], "next_cursor": None}  # only people hold permits
    filters = listing(request, STATES)
    page = await workflow.store.search(person_id=caller.subject, **filters)
    return page.body(workflow.view)


# ---- one permit -----------------------------------------------------------------------------


@get("/api/permits/v1/permits/{permit_id:str}")
async def get_permit(
    request: Request[Any, Any, Any], permit_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible(caller, permit_id)
    return no_store(workflow.view(row))


@get("/api/permits/v1/permits/{permit_id:str}/history")
async def get_history(request: Request[Any, Any, Any], permit_id: FromPath[str]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    await workflow.visible(caller, permit_id)
    rows = await workflow.store.history(permit_id)
    return {"items": history_items(rows)}


@post("/api/permits/v1/permits/{permit_id:str}/renew")
async def renew_permit(
    request: Request[Any, Any, Any], permit_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = idempotency_key(request)
    body = await _body(request, required=False)
    if body not in (None, {}):
        raise InvalidRequest("a renewal has no body (or {})", extra={"errors": ["$: empty"]})
    workflow = _workflow(request)
    row, replayed = await workflow.renew(caller, permit_id, key)
    return created(workflow.view(row), "", replayed, status=202)


@post("/api/permits/v1/permits/{permit_id:str}/cancel", status_code=200)
async def cancel_permit(
    request: Request[Any, Any, Any], permit_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    body = await _body(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or set(body) - {"reason"}
        or not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > 500
    ):
        raise InvalidRequest(
            'the body is {"reason": "..."} (required, at most 500 characters)',
            extra={"errors": ["reason: required"]},
        )
    workflow = _workflow(request)
    return workflow.view(await workflow.cancel(caller, permit_id, reason.strip()))


# ---- transfers ------------------------------------------------------------------------------


@get("/api/permits/v1/transfers/{transfer_id:str}")
async def get_transfer(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible_transfer(caller, transfer_id)
    return no_store(workflow.transfer_view(row))


@post("/api/permits/v1/transfers/{transfer_id:str}/consent", status_code=200)
async def consent_transfer(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    party, _ = _party(await _body(request), reason=False)
    workflow = _workflow(request)
    return workflow.transfer_view(await workflow.consent(caller, transfer_id, party))


@post("/api/permits/v1/transfers/{transfer_id:str}/decline", status_code=200)
async def decline_transfer(
    request: Request[Any, Any, Any], transfer_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    party, reason = _party(await _body(request), reason=True)
    workflow = _workflow(request)
    return workflow.transfer_view(await workflow.decline(caller, transfer_id, party, reason))


HANDLERS: Final = [
    list_reasons,
    issue_permit,
    list_establishment_permits,
    request_transfer,
    list_establishment_transfers,
    list_my_permits,
    get_permit,
    get_history,
    renew_permit,
    cancel_permit,
    get_transfer,
    consent_transfer,
    decline_transfer,
]


async def _open(runtime: ServiceRuntime, settings: PermitSettings) -> Components[PermitWorkflow]:
    """The work permits service's components on its runtime."""
    store = await runtime.open_store(PermitStore)
    if settings.demo and settings.demo_establishment and settings.demo_worker:
        await store.seed_demo(settings.demo_establishment, settings.demo_worker)
    hub = runtime.gateway(HubClient)
    workflow = PermitWorkflow(
        store, hub, currency=settings.currency, reminder_days=settings.reminder_days
    )
    projections = Projections(store)
    await runtime.start(
        store,
        [
            (
                queue,
                pattern,
                workflow.on_payment_event if queue == "permits.payments" else projections.on_event,
            )
            for queue, pattern in SUBSCRIPTIONS
        ],
    )
    runtime.every(
        settings.sweep_seconds,
        workflow.sweep,
        failed="permits.sweep_failed",
        done="permits.swept",
    )
    return Components(workflow, runtime.verifier)


#: The work permits service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="work_permits", state=_STATE, open_components=_open)
