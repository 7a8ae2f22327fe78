"""The visa service's HTTP API, behind the hub: ``/api/visas/v1/...`` (contract:
``contracts/products/visas/v1``).

Every endpoint but the public ones (the occupation catalogue, the reason codes and visa
verification) needs the hub's ``X-Hub-Principal-Token``: the service trusts nothing else about
the caller. Object-level rules are here and in :mod:`services.visas.workflow`: an
establishment's users see only its applications, a person only their own, officers need the
``agency_officer`` role.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath

from hub.errors import InvalidRequest, NotFound
from hub.servicekit.http import (
    Components,
    ServiceApp,
    ServiceState,
    created,
    idempotency_key,
    json_body,
    limit_of,
    no_store,
    refuse,
    state_of,
    unknown_parameters,
)
from hub.servicekit.lifecycle import history_items, reason_items, state_items
from hub.servicekit.runtime import ServiceRuntime
from services.visas.domain import REASONS, STATES, TRANSITIONS
from services.visas.hub_client import HubClient
from services.visas.occupations import catalogue, occupation
from services.visas.settings import VisaSettings
from services.visas.store import Page, Search, VisaStore
from services.visas.workflow import Caller, VisaWorkflow

__all__ = ["COMPLIANCE_QUEUE", "PAYMENTS_QUEUE", "Components", "create_app"]

PAYMENTS_QUEUE: Final = "visas.payments"
COMPLIANCE_QUEUE: Final = "visas.compliance"
_VISA_NUMBER: Final = re.compile(r"[WV][0-9]{9}")
_MAX_BODY: Final = 32 * 1024
_FILTERS: Final = (
    "state",
    "kind",
    "nationality",
    "occupation",
    "submitted_from",
    "submitted_to",
    "q",
    "limit",
    "cursor",
)


_STATE: Final = ServiceState[VisaWorkflow, Caller]("visas", Caller)
_workflow: Final = _STATE.workflow
_caller: Final = _STATE.caller


async def _body(request: Request[Any, Any, Any]) -> object:
    return await json_body(request, limit=_MAX_BODY, what="a visa request body")


def _idempotency_key(request: Request[Any, Any, Any]) -> str:
    return idempotency_key(request, what="an application")


def _search(request: Request[Any, Any, Any], **fixed: Any) -> Search:
    query = request.query_params
    errors = unknown_parameters(query, _FILTERS)
    state = state_of(query, STATES, errors)
    kind = query.get("kind")
    if kind is not None and kind not in {"work", "visit"}:
        errors.append("kind: work or visit")
    nationality = query.get("nationality")
    if nationality is not None and not re.fullmatch(r"[A-Z]{3}", nationality):
        errors.append("nationality: an ISO 3166 alpha-3 code")
    code = query.get("occupation")
    if code is not None and occupation(code) is None:
        errors.append("occupation: not a code of the catalogue")
    moments: dict[str, datetime | None] = {}
    for name in ("submitted_from", "submitted_to"):
        raw = query.get(name)
        moments[name] = None
        if raw is not None:
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                errors.append(f"{name}: a date or date-time (ISO 8601)")
                continue
            moments[name] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    limit = limit_of(query, errors)
    text = query.get("q")
    if text is not None and not 1 <= len(text.strip()) <= 200:
        errors.append("q: 1 to 200 characters")
    refuse(errors)
    values: dict[str, Any] = {
        "state": state,
        "kind": kind,
        "nationality": nationality,
        "occupation": code,
        "submitted_from": moments["submitted_from"],
        "submitted_to": moments["submitted_to"],
        "text": text.strip() if text else None,
        "limit": limit,
        "cursor": query.get("cursor"),
    }
    return Search(**{**values, **fixed})  # the caller's own scope wins over the query


def _created(
    workflow: VisaWorkflow, row: dict[str, Any], replayed: bool
) -> Response[dict[str, Any]]:
    return created(workflow.view(row), f"/api/visas/v1/applications/{row['id']}", replayed)


def _page(workflow: VisaWorkflow, page: Page, *, officer: bool = False) -> dict[str, Any]:
    return page.body(partial(workflow.view, officer=officer))


# ---- public -------------------------------------------------------------------------------


@get("/api/visas/v1/occupations", sync_to_thread=False)
def list_occupations(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The occupation catalogue (ISCO-08 subset), filtered by ``?q=`` and ``?skill_level=``."""
    items = list(catalogue().values())
    q = request.query_params.get("q")
    if q:
        words = q.lower().split()
        items = [o for o in items if all(w in f"{o.code} {o.title}".lower() for w in words)]
    level = request.query_params.get("skill_level")
    if level is not None:
        if level not in {"1", "2", "3", "4"}:
            raise InvalidRequest("skill_level: 1, 2, 3 or 4")
        items = [o for o in items if o.skill_level == int(level)]
    return {"items": [o.as_dict() for o in items]}


@get("/api/visas/v1/occupations/{code:str}", sync_to_thread=False)
def get_occupation(code: FromPath[str]) -> dict[str, Any]:
    found = occupation(code)
    if found is None:
        raise NotFound(f"no occupation {code} in the catalogue")
    return found.as_dict()


@get("/api/visas/v1/reasons", sync_to_thread=False)
def list_reasons() -> dict[str, Any]:
    """Every reason code and state, so clients can show them."""
    return {
        "reasons": reason_items(REASONS),
        "states": state_items(STATES, TRANSITIONS),
    }


@get("/api/visas/v1/verify/{visa_number:str}")
async def verify_visa(
    request: Request[Any, Any, Any], visa_number: FromPath[str]
) -> Response[dict[str, Any]]:
    """Public verification: validity and minimal data, given the visa's verification code."""
    code = request.query_params.get("code")
    if not code:
        raise InvalidRequest("code: the verification code printed on the visa is required")
    workflow = _workflow(request)
    row = (
        await workflow.store.by_visa_number(visa_number)
        if _VISA_NUMBER.fullmatch(visa_number)
        else None
    )
    return no_store(workflow.verify(row, code))


# ---- establishments (work visas) ----------------------------------------------------------


@post("/api/visas/v1/establishments/{establishment_id:str}/applications")
async def apply_work(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = _idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.apply_work(caller, establishment_id, body, key)
    return _created(workflow, row, replayed)


@get("/api/visas/v1/establishments/{establishment_id:str}/applications")
async def list_establishment(
    request: Request[Any, Any, Any], establishment_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_establishment(caller, establishment_id, write=False)
    page = await workflow.store.search(_search(request, establishment_id=establishment_id))
    return _page(workflow, page)


# ---- people (visit visas) -----------------------------------------------------------------


@post("/api/visas/v1/me/applications")
async def apply_visit(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    caller = _caller(request)
    key = _idempotency_key(request)
    body = await _body(request)
    workflow = _workflow(request)
    row, replayed = await workflow.apply_visit(caller, body, key)
    return _created(workflow, row, replayed)


@get("/api/visas/v1/me/applications")
async def list_mine(request: Request[Any, Any, Any]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    page = await workflow.store.search(_search(request, applicant_id=caller.subject, kind="visit"))
    return _page(workflow, page)


# ---- one application ----------------------------------------------------------------------


@get("/api/visas/v1/applications/{application_id:str}")
async def get_application(
    request: Request[Any, Any, Any], application_id: FromPath[str]
) -> Response[dict[str, Any]]:
    caller = _caller(request)
    workflow = _workflow(request)
    row = await workflow.visible(caller, application_id)
    return no_store(workflow.view(row, officer=caller.officer))


@get("/api/visas/v1/applications/{application_id:str}/history")
async def get_history(
    request: Request[Any, Any, Any], application_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    await workflow.visible(caller, application_id)
    rows = await workflow.store.history(application_id)
    return {"items": history_items(rows)}


@post("/api/visas/v1/applications/{application_id:str}/cancel", status_code=200)
async def cancel_application(
    request: Request[Any, Any, Any], application_id: FromPath[str]
) -> dict[str, Any]:
    caller = _caller(request)
    raw = await request.body()
    reason: str | None = None
    if raw:
        body = await _body(request)
        if (
            not isinstance(body, dict)
            or set(body) - {"reason"}
            or not isinstance(body.get("reason", ""), str)
        ):
            raise InvalidRequest(
                'the body is {"reason": "..."} or nothing', extra={"errors": ["$: {reason}"]}
            )
        reason = body.get("reason")
    workflow = _workflow(request)
    return workflow.view(
        await workflow.cancel(caller, application_id, reason), officer=caller.officer
    )


# ---- officers -----------------------------------------------------------------------------


@get("/api/visas/v1/review/applications")
async def review_queue(request: Request[Any, Any, Any]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_officer(caller)
    search = _search(request)
    return _page(workflow, await workflow.store.search(search), officer=True)


@post("/api/visas/v1/review/applications/{application_id:str}/decision", status_code=200)
async def decide(request: Request[Any, Any, Any], application_id: FromPath[str]) -> dict[str, Any]:
    caller = _caller(request)
    workflow = _workflow(request)
    workflow.require_officer(caller)
    body = await _body(request)
    if (
        not isinstance(body, dict)
        or body.get("decision") not in {"approve", "reject"}
        or set(body) - {"decision", "reason"}
        or not isinstance(body.get("reason", ""), str | None)
    ):
        raise InvalidRequest(
            'the body is {"decision": "approve" | "reject", "reason": "..."}',
            extra={"errors": ["decision: approve or reject"]},
        )
    row = await workflow.decide(
        caller, application_id, approve=body["decision"] == "approve", reason=body.get("reason")
    )
    return workflow.view(row, officer=True)


HANDLERS: Final = [
    list_occupations,
    get_occupation,
    list_reasons,
    verify_visa,
    apply_work,
    list_establishment,
    apply_visit,
    list_mine,
    get_application,
    get_history,
    cancel_application,
    review_queue,
    decide,
]


def _verification_key(settings: VisaSettings) -> bytes:
    if settings.verification_key:
        return settings.verification_key.encode()
    path = Path(settings.data_dir) / "visas-verification.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip().encode()


async def _open(runtime: ServiceRuntime, settings: VisaSettings) -> Components[VisaWorkflow]:
    """The visa service's components on its runtime."""
    store = await runtime.open_store(VisaStore)
    if settings.demo:
        await store.block("IND", "B0000000", "demo: a traveller on the block list")
    hub = runtime.gateway(HubClient, cache_seconds=settings.registry_cache_seconds)
    workflow = VisaWorkflow(
        store,
        hub,
        verification_key=_verification_key(settings),
        currency=settings.currency,
        payment_window=timedelta(seconds=settings.payment_window_seconds),
    )
    await runtime.start(
        store,
        [
            (PAYMENTS_QUEUE, "payment.#", workflow.on_payment_event),
            # the compliance service's bands (services/compliance), preferred when known
            (COMPLIANCE_QUEUE, "compliance.band.changed", workflow.on_band_changed),
        ],
    )
    runtime.every(
        settings.sweep_seconds,
        workflow.sweep,
        failed="visas.sweep_failed",
        done="visas.swept",
        count="moved",
    )
    return Components(workflow, runtime.verifier)


#: The visa service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="visas", state=_STATE, open_components=_open)
