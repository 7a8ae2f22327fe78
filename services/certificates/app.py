"""The certificates service's HTTP API, behind the hub: ``/api/certificates/v1/...`` (contract:
``contracts/products/certificates/v1``).

Every endpoint but ``/healthz`` needs the hub's ``X-Hub-Principal-Token``. Object level: a
worker sees only their own certificates (anyone else's answers ``certificate_not_found``); an
establishment's owner, or an HR officer or vendor it delegated ``certificates.read``, sees only
the certificates shared with that establishment.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from litestar import Request, Response, delete, get, post
from litestar.params import FromPath

from hub.servicekit.http import (
    Components,
    ServiceApp,
    ServiceState,
    created,
    json_body,
    no_store,
)
from hub.servicekit.runtime import ServiceRuntime
from services.certificates.hub_client import HubClient
from services.certificates.settings import CertificateSettings
from services.certificates.store import CertificateStore
from services.certificates.workflow import Caller, CertificateWorkflow

__all__ = ["Components", "create_app"]

_MAX_BODY: Final = 8 * 1024
_BASE: Final = "/api/certificates/v1"


_STATE: Final = ServiceState[CertificateWorkflow, Caller]("certificates", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


async def _body(request: Request[Any, Any, Any]) -> object:
    return await json_body(request, limit=_MAX_BODY, what="a certificates request body")


@post(f"{_BASE}/me/certificates")
async def submit(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Submit a certificate; it is verified with the registry at once when it answers."""
    caller = _caller(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.submit(caller, body)
    return created(workflow.view(row, owner=True), f"{_BASE}/me/certificates/{row['id']}", replayed)


@get(f"{_BASE}/me/certificates")
async def list_mine(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_person(caller)
    rows = await workflow.store.of_person(caller.subject)
    return no_store({"items": [workflow.view(row, owner=True) for row in rows]})


@get(f"{_BASE}/me/certificates/{{certificate_id:str}}")
async def get_mine(
    request: Request[Any, Any, Any], certificate_id: FromPath[str]
) -> Response[dict[str, Any]]:
    workflow = _workflow(request)
    row = await workflow.own(_caller(request), certificate_id)
    return no_store(workflow.view(row, owner=True))


@post(f"{_BASE}/me/certificates/{{certificate_id:str}}/check", status_code=200)
async def check(
    request: Request[Any, Any, Any], certificate_id: FromPath[str]
) -> Response[dict[str, Any]]:
    """Ask the registry again now about a pending certificate."""
    workflow = _workflow(request)
    row = await workflow.check(_caller(request), certificate_id)
    return no_store(workflow.view(row, owner=True))


@post(f"{_BASE}/me/certificates/{{certificate_id:str}}/shares", status_code=200)
async def share(
    request: Request[Any, Any, Any], certificate_id: FromPath[str]
) -> Response[dict[str, Any]]:
    """Share one's certificate with an establishment (its HR then sees it)."""
    caller = _caller(request)
    body = await _body(request)
    workflow = _workflow(request)
    return no_store(workflow.view(await workflow.share(caller, certificate_id, body), owner=True))


@delete(f"{_BASE}/me/certificates/{{certificate_id:str}}/shares/{{establishment_id:str}}")
async def unshare(
    request: Request[Any, Any, Any], certificate_id: FromPath[str], establishment_id: FromPath[str]
) -> None:
    await _workflow(request).unshare(_caller(request), certificate_id, establishment_id)


@get(f"{_BASE}/establishments/{{establishment_id:str}}/certificates")
async def list_shared(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id)
    rows = await workflow.store.shared_with(establishment_id)
    return no_store({"items": [workflow.view(row, owner=False) for row in rows]})


@get(f"{_BASE}/establishments/{{establishment_id:str}}/certificates/{{certificate_id:str}}")
async def get_shared(
    request: Request[Any, Any, Any], establishment_id: FromPath[str], certificate_id: FromPath[str]
) -> Response[dict[str, Any]]:
    workflow = _workflow(request)
    row = await workflow.shared(_caller(request), establishment_id, certificate_id)
    return no_store(workflow.view(row, owner=False))


HANDLERS: Final = [
    submit,
    list_mine,
    get_mine,
    check,
    share,
    unshare,
    list_shared,
    get_shared,
]


async def _open(
    runtime: ServiceRuntime, settings: CertificateSettings
) -> Components[CertificateWorkflow]:
    """The certificates service's components on its runtime."""
    store = await runtime.open_store(CertificateStore)
    hub = runtime.gateway(HubClient)
    workflow = CertificateWorkflow(
        store, hub, retry_after=timedelta(seconds=settings.retry_seconds)
    )
    await runtime.start(store)
    runtime.every(
        settings.retry_seconds,
        workflow.sweep,
        failed="certificates.recheck_failed",
        done="certificates.rechecked",
        count="decided",
    )
    return Components(workflow, runtime.verifier)


#: The certificates service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="certificates", state=_STATE, open_components=_open)
