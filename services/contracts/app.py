"""The contracts service's HTTP API, behind the hub: ``/api/contracts/v1/...`` (contract:
``contracts/products/contracts/v1``).

Every endpoint but the public ones (health, reason codes and states) needs the hub's
``X-Hub-Principal-Token``: the service trusts nothing else about the caller. Object-level
rules are in :mod:`services.contracts.workflow`: the employee sees only the contracts naming
them, an establishment's users only its contracts and only with the delegated scopes.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath

from hub.errors import InvalidRequest
from hub.servicekit.caller import Caller
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
from services.contracts.documents import lines_of, render_html, render_pdf
from services.contracts.domain import (
    AMENDMENT_STATES,
    AMENDMENT_TRANSITIONS,
    REASONS,
    STATES,
    TRANSITIONS,
    document_hash,
    parse_reason,
)
from services.contracts.hub_client import HubClient
from services.contracts.settings import ContractSettings
from services.contracts.store import ContractStore
from services.contracts.workflow import ContractWorkflow

__all__ = ["Components", "create_app"]

_MAX_BODY: Final = 64 * 1024
_BASE: Final = "/api/contracts/v1"
_ONE: Final = _BASE + "/contracts/{contract_id:str}"
_AMENDMENT: Final = _ONE + "/amendments/{amendment_id:str}"
_STATE: Final = ServiceState[ContractWorkflow, Caller]("contracts", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


async def _body(request: Request[Any, Any, Any], *, optional: bool = False) -> object:
    return await json_body(
        request,
        limit=_MAX_BODY,
        what="a contracts request body",
        required=not optional,
        blank_is_empty=True,
    )


def _idempotency_key(request: Request[Any, Any, Any]) -> str:
    return idempotency_key(request, what="a creating request")


async def _as(request: Request[Any, Any, Any]) -> str | None:
    """A signing request's optional ``{"as": "employer" | "employee"}``."""
    body = await _body(request, optional=True)
    if body is None:
        return None
    if (
        not isinstance(body, dict)
        or set(body) - {"as"}
        or body.get("as") not in {None, "employer", "employee"}
    ):
        raise InvalidRequest(
            'the body is {"as": "employer" | "employee"} or nothing',
            extra={"errors": ["as: employer or employee"]},
        )
    value = body.get("as")
    return str(value) if isinstance(value, str) else None


# ---- public -------------------------------------------------------------------------------


@get(_BASE + "/reasons", sync_to_thread=False)
def list_reasons() -> dict[str, Any]:
    """Every reason code and both state graphs, so clients can show them."""
    return {
        "reasons": reason_items(REASONS),
        "states": state_items(STATES, TRANSITIONS),
        "amendment_states": state_items(AMENDMENT_STATES, AMENDMENT_TRANSITIONS),
    }


# ---- establishments -----------------------------------------------------------------------


@post(_BASE + "/establishments/{establishment_id:str}/contracts")
async def draft_contract(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = _idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.draft(caller, establishment_id, body, key)
    return created(workflow.view(row), f"{_BASE}/contracts/{row['id']}", replayed)


@get(_BASE + "/establishments/{establishment_id:str}/contracts")
async def list_establishment(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id, write=False)
    filters = listing(request, STATES)
    page = await workflow.store.search(establishment_id=establishment_id, **filters)
    return page.body(workflow.view)


# ---- the signed-in person -----------------------------------------------------------------


@get(_BASE + "/me/contracts")
async def list_mine(request: Request[Any, Any, Any]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    if not workflow.is_hub_person(caller):
        return {"items": [], "next_cursor": None}
    page = await workflow.store.search(employee_id=caller.subject, **listing(request, STATES))
    return page.body(workflow.view)


# ---- one contract -------------------------------------------------------------------------


@get(_ONE)
async def get_contract(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.visible(caller, contract_id)))


@get(_ONE + "/history")
async def get_history(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    await workflow.visible(caller, contract_id)
    rows = await workflow.store.history(contract_id)
    return no_store({"items": history_items(rows)})


@post(_ONE + "/offer", status_code=200)
async def offer(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.offer(caller, contract_id)))


@post(_ONE + "/accept", status_code=200)
async def accept(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.accept(caller, contract_id)))


@post(_ONE + "/decline", status_code=200)
async def decline(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    reason = parse_reason(await _body(request, optional=True), required=False)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.decline(caller, contract_id, reason)))


@post(_ONE + "/withdraw", status_code=200)
async def withdraw(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    reason = parse_reason(await _body(request, optional=True), required=False)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.withdraw(caller, contract_id, reason)))


@post(_ONE + "/terminate", status_code=200)
async def terminate(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    reason = parse_reason(await _body(request, optional=True), required=True)
    assert reason is not None
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.terminate(caller, contract_id, reason)))


@post(_ONE + "/sign", status_code=200)
async def sign(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    wanted = await _as(request)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.sign(caller, contract_id, wanted)))


@get(_ONE + "/signatures")
async def list_signatures(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible(caller, contract_id)
    signatures = await workflow.current_signatures(row)
    return no_store({"items": [workflow.signature_view(s) for s in signatures]})


@get(_ONE + "/signatures/verify")
async def verify_signatures(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible(caller, contract_id)
    return no_store(await workflow.verification(row))


def _format(request: Request[Any, Any, Any]) -> str:
    wanted = request.query_params.get("format")
    if wanted is not None:
        if wanted not in {"html", "pdf"}:
            raise InvalidRequest("format: html or pdf", extra={"errors": ["format: html or pdf"]})
        return str(wanted)
    accept = request.headers.get("accept", "")
    return "pdf" if "application/pdf" in accept and "text/html" not in accept else "html"


@get(_ONE + "/document")
async def get_document(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[bytes]:
    """The contract as a document: HTML (default) or PDF (``?format=pdf`` or ``Accept``)."""
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible(caller, contract_id)
    kind = _format(request)
    signatures = [workflow.signature_view(s) for s in await workflow.current_signatures(row)]
    lines = lines_of(
        row["document"],
        state=row["state"],
        signatures=signatures,
        digest=document_hash(row["document"]),
    )
    headers = {"Cache-Control": "no-store", "Vary": "Accept"}
    if kind == "pdf":
        headers["Content-Disposition"] = f'inline; filename="{contract_id}.pdf"'
        return Response(
            render_pdf(lines, title=f"Employment contract {contract_id}"),
            media_type="application/pdf",
            headers=headers,
        )
    return Response(
        render_html(lines).encode(), media_type="text/html; charset=utf-8", headers=headers
    )


# ---- amendments ---------------------------------------------------------------------------


@post(_ONE + "/amendments")
async def propose_amendment(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = _idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.propose(caller, contract_id, body, key)
    return created(
        workflow.amendment_view(row),
        f"{_BASE}/contracts/{contract_id}/amendments/{row['id']}",
        replayed,
    )


@get(_ONE + "/amendments")
async def list_amendments(
    request: Request[Any, Any, Any], contract_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    rows = await workflow.amendments(caller, contract_id)
    return no_store({"items": [workflow.amendment_view(row) for row in rows]})


async def _amendment_view(workflow: ContractWorkflow, row: dict[str, Any]) -> dict[str, Any]:
    view = workflow.amendment_view(row)
    signatures = await workflow.amendment_signatures(row)
    view["signatures"] = [workflow.signature_view(s) for s in signatures]
    return view


@get(_AMENDMENT)
async def get_amendment(
    request: Request[Any, Any, Any], contract_id: FromPath[str], amendment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.amendment(caller, contract_id, amendment_id)
    return no_store(await _amendment_view(workflow, row))


@post(_AMENDMENT + "/sign", status_code=200)
async def sign_amendment(
    request: Request[Any, Any, Any], contract_id: FromPath[str], amendment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    wanted = await _as(request)
    workflow = _workflow(request)
    row = await workflow.sign_amendment(caller, contract_id, amendment_id, wanted)
    return no_store(await _amendment_view(workflow, row))


@post(_AMENDMENT + "/reject", status_code=200)
async def reject_amendment(
    request: Request[Any, Any, Any], contract_id: FromPath[str], amendment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.close_amendment(caller, contract_id, amendment_id, "rejected")
    return no_store(await _amendment_view(workflow, row))


@post(_AMENDMENT + "/withdraw", status_code=200)
async def withdraw_amendment(
    request: Request[Any, Any, Any], contract_id: FromPath[str], amendment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.close_amendment(caller, contract_id, amendment_id, "withdrawn")
    return no_store(await _amendment_view(workflow, row))


HANDLERS: Final = [
    list_reasons,
    draft_contract,
    list_establishment,
    list_mine,
    get_contract,
    get_history,
    offer,
    accept,
    decline,
    withdraw,
    terminate,
    sign,
    list_signatures,
    verify_signatures,
    get_document,
    propose_amendment,
    list_amendments,
    get_amendment,
    sign_amendment,
    reject_amendment,
    withdraw_amendment,
]


async def _open(
    runtime: ServiceRuntime, settings: ContractSettings
) -> Components[ContractWorkflow]:
    """The contracts service's components on its runtime."""
    store = await runtime.open_store(ContractStore)
    hub = runtime.gateway(HubClient, cache_seconds=settings.registry_cache_seconds)
    workflow = ContractWorkflow(
        store,
        hub,
        hub_key=runtime.keys.key,
        issuer=settings.issuer,
        currency=settings.currency,
    )
    await runtime.start(store)
    runtime.every(
        settings.sweep_seconds,
        workflow.sweep,
        failed="contracts.sweep_failed",
        done="contracts.swept",
        count="moved",
    )
    return Components(workflow, runtime.verifier)


#: The contracts service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="contracts", state=_STATE, open_components=_open)
