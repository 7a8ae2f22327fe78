"""The occupations service's HTTP API, behind the hub: ``/api/occupations/v1/...`` (contract:
``contracts/products/occupations/v1``).

Public: the ISCO-08 catalogue. Everything else needs the hub's ``X-Hub-Principal-Token``.
Object level: an establishment's requests only for whoever may manage its occupations (owner,
delegated ``occupations.manage``); a worker sees the requests about them; the review queue and
decisions need the ``agency_officer`` role.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath

from hub.errors import NotFound
from hub.servicekit.http import (
    Components,
    ServiceApp,
    ServiceState,
    created,
    json_body,
    no_store,
    refuse,
    state_of,
    unknown_parameters,
)
from hub.servicekit.lifecycle import reason_items
from hub.servicekit.runtime import ServiceRuntime
from services.occupations.catalogue import entry, occupation, search
from services.occupations.domain import REASONS, STATES
from services.occupations.settings import OccupationSettings
from services.occupations.store import OccupationStore
from services.occupations.workflow import Caller, OccupationWorkflow

__all__ = ["CERTIFICATES_QUEUE", "CONTRACTS_QUEUE", "Components", "create_app"]

CONTRACTS_QUEUE: Final = "occupations.contracts"
CERTIFICATES_QUEUE: Final = "occupations.certificates"
_MAX_BODY: Final = 8 * 1024
_BASE: Final = "/api/occupations/v1"


_STATE: Final = ServiceState[OccupationWorkflow, Caller]("occupations", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


async def _body(request: Request[Any, Any, Any]) -> object:
    return await json_body(request, limit=_MAX_BODY, what="an occupations request body")


def _state_filter(request: Request[Any, Any, Any]) -> str | None:
    query = request.query_params
    errors = unknown_parameters(query, ("state",))
    state = state_of(query, STATES, errors)
    refuse(errors)
    return state


def _page(workflow: OccupationWorkflow, rows: list[dict[str, Any]]) -> Response[dict[str, Any]]:
    return no_store({"items": [workflow.view(row) for row in rows]})


# ---- public -------------------------------------------------------------------------------


@get(f"{_BASE}/occupations", sync_to_thread=False)
def list_occupations(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The catalogue, filtered by ``?q=`` (words), ``?skill_level=`` and ``?major_group=``."""
    query = request.query_params
    errors = unknown_parameters(query, ("q", "skill_level", "major_group"))
    level = query.get("skill_level")
    if level is not None and level not in {"1", "2", "3", "4"}:
        errors.append("skill_level: 1, 2, 3 or 4")
    group = query.get("major_group")
    if group is not None and group not in {str(n) for n in range(10)}:
        errors.append("major_group: one digit, 0 to 9")
    words = query.get("q")
    if words is not None and len(words) > 200:
        errors.append("q: at most 200 characters")
    refuse(errors)
    found = search(words=words, skill_level=int(level) if level else None, major_group=group)
    return {"items": [entry(item) for item in found], "count": len(found)}


@get(f"{_BASE}/occupations/{{code:str}}", sync_to_thread=False)
def get_occupation(code: FromPath[str]) -> dict[str, Any]:
    found = occupation(code)
    if found is None:
        raise NotFound(f"no occupation {code} in the catalogue")
    return entry(found)


@get(f"{_BASE}/reasons", sync_to_thread=False)
def list_reasons() -> dict[str, Any]:
    return {"reasons": reason_items(REASONS)}


# ---- establishments -----------------------------------------------------------------------


@post(f"{_BASE}/establishments/{{establishment_id:str}}/change-requests")
async def request_change(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id)
    row = await workflow.request(caller, establishment_id, await _body(request))
    return created(workflow.view(row), f"{_BASE}/change-requests/{row['id']}", False)


@get(f"{_BASE}/establishments/{{establishment_id:str}}/change-requests")
async def list_establishment(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id)
    state = _state_filter(request)
    return _page(
        workflow, await workflow.store.search(establishment_id=establishment_id, state=state)
    )


# ---- one request, the worker's own --------------------------------------------------------


@get(f"{_BASE}/change-requests/{{request_id:str}}")
async def get_request(
    request: Request[Any, Any, Any], request_id: FromPath[str]
) -> Response[dict[str, Any]]:
    workflow = _workflow(request)
    row = await workflow.visible(_caller(request), request_id)
    return no_store(workflow.view(row))


@get(f"{_BASE}/me/change-requests")
async def list_mine(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    if caller.kind != "person":
        return _page(workflow, [])
    return _page(workflow, await workflow.store.search(person_id=caller.subject))


# ---- officers -----------------------------------------------------------------------------


@get(f"{_BASE}/review/change-requests")
async def review_queue(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_officer(caller)
    state = _state_filter(request) or "in_review"
    return _page(workflow, await workflow.store.search(state=state))


@post(f"{_BASE}/review/change-requests/{{request_id:str}}/decision", status_code=200)
async def decide(
    request: Request[Any, Any, Any], request_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_officer(caller)
    row = await workflow.decide(caller, request_id, await _body(request))
    return no_store(workflow.view(row))


HANDLERS: Final = [
    list_occupations,
    get_occupation,
    list_reasons,
    request_change,
    list_establishment,
    get_request,
    list_mine,
    review_queue,
    decide,
]


async def _open(
    runtime: ServiceRuntime, settings: OccupationSettings
) -> Components[OccupationWorkflow]:
    """The occupations service's components on its runtime."""
    store = await runtime.open_store(OccupationStore)
    workflow = OccupationWorkflow(store)
    await runtime.start(
        store,
        [
            (CONTRACTS_QUEUE, "contract.#", workflow.on_contract),
            (CERTIFICATES_QUEUE, "certificate.verified", workflow.on_certificate),
        ],
    )
    return Components(workflow, runtime.verifier)


#: The occupations service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="occupations", state=_STATE, open_components=_open)
