"""The compliance service's HTTP API, behind the hub: ``/api/compliance/v1/...`` (contract:
``contracts/products/compliance/v1``).

Every endpoint but ``/healthz`` needs the hub's ``X-Hub-Principal-Token``. Object level: an
establishment's standing and history for its owner, an HR officer or vendor it delegated
``compliance.read``, and agency officers; its CR number is named by its owner or an officer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from litestar import Request, Response, get, put
from litestar.params import FromPath

from hub.servicekit.http import Components, ServiceApp, ServiceState, json_body, no_store
from hub.servicekit.runtime import ServiceRuntime
from services.compliance.hub_client import HubClient
from services.compliance.settings import ComplianceSettings
from services.compliance.store import ComplianceStore
from services.compliance.workflow import Caller, ComplianceWorkflow

__all__ = ["CONTRACTS_QUEUE", "Components", "create_app"]

CONTRACTS_QUEUE: Final = "compliance.contracts"
_MAX_BODY: Final = 4 * 1024
_BASE: Final = "/api/compliance/v1"


_STATE: Final = ServiceState[ComplianceWorkflow, Caller]("compliance", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


@get(f"{_BASE}/establishments/{{establishment_id:str}}/standing")
async def get_standing(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    workflow = _workflow(request)
    row = await workflow.standing_of(_caller(request), establishment_id)
    return no_store(workflow.view(row))


@get(f"{_BASE}/establishments/{{establishment_id:str}}/history")
async def get_history(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    workflow = _workflow(request)
    workflow.require_reader(_caller(request), establishment_id)
    rows = await workflow.store.history(establishment_id)
    items = [
        {
            "band": row["band"],
            "previous": row["previous"],
            "ratio": round(row["ratio"], 4),
            "citizens": row["citizens"],
            "total": row["total"],
            "at": row["at"].isoformat(),
        }
        for row in rows
    ]
    return no_store({"items": items})


@put(f"{_BASE}/establishments/{{establishment_id:str}}/registration", status_code=200)
async def register(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    """The establishment's CR number, so its sector and size are read from the registry."""
    caller = _caller(request)
    body = await json_body(
        request, limit=_MAX_BODY, what="a compliance request body", required=False
    )
    workflow = _workflow(request)
    row = await workflow.register(caller, establishment_id, body)
    return no_store(workflow.view(row))


HANDLERS: Final = [get_standing, get_history, register]


async def _open(
    runtime: ServiceRuntime, settings: ComplianceSettings
) -> Components[ComplianceWorkflow]:
    """The compliance service's components on its runtime."""
    store = await runtime.open_store(ComplianceStore)
    hub = runtime.gateway(HubClient)
    workflow = ComplianceWorkflow(
        store, hub, registry_max_age=timedelta(seconds=settings.registry_max_age_seconds)
    )
    # one subscription (one consumer in order); the workflow keeps activations and ends
    await runtime.start(store, [(CONTRACTS_QUEUE, "contract.#", workflow.on_contract)])
    for establishment_id, cr_number in settings.demo_registrations:
        await workflow.seed(establishment_id, cr_number)
    runtime.every(
        settings.refresh_seconds,
        workflow.refresh,
        failed="compliance.refresh_failed",
        done="compliance.refreshed",
        count="establishments",
        at_once=True,
    )
    return Components(workflow, runtime.verifier)


#: The compliance service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="compliance", state=_STATE, open_components=_open)
