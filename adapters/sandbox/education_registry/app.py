"""The sandbox education registry as a Litestar app: ``create_app(config, population=...)``.

- ``GET /v1/certificates/{number}`` (header ``X-Registry-Key``): a qualification certificate:
  holder (national or resident ID, name), degree, field, institution, year and status
  (``valid``, ``revoked``); ``404`` for an unknown number.
- ``POST /v1/verifications`` ``{"certificate_number": ...}``: records a verification and answers
  its receipt (``201``). Not idempotent by itself: the same ``Idempotency-Key`` header answers
  the first receipt again, without recording a second verification.
- ``/_sandbox/*``: faults, counts and health (:mod:`adapters.sandbox._registrar.server`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from adapters.sandbox._registrar.server import (
    STATE_KEY,
    Registrar,
    RegistrarConfig,
    control_handlers,
    registrar_of,
)
from adapters.sandbox.education_registry.data import NUMBER, CertificateRegister

__all__ = ["create_app"]

_REGISTER = "certificates"
_RECEIPTS = "receipts"


def _breach(record: dict[str, Any]) -> dict[str, Any]:
    record["year"] = str(record.get("year"))  # a number in the contract
    record.pop("holder_national_id", None)
    return record


@get("/v1/certificates/{number:str}")
async def certificate(request: Request[Any, Any, Any], number: str) -> Response[Any]:
    """A qualification certificate by number."""
    registrar = registrar_of(request)
    early, action = await registrar.gate(request)
    if early is not None:
        return early
    if NUMBER.fullmatch(number) is None:
        return Response(
            {"error": "bad_request", "detail": "a number is like QC-2015-000123"}, status_code=400
        )
    register: CertificateRegister = request.app.state[_REGISTER]
    record = register.lookup(number)
    if record is None:
        return registrar.answer(
            {"error": "not_found", "detail": "no such certificate"}, action, status=404
        )
    return registrar.answer(record, action, breach=_breach)


@post("/v1/verifications", status_code=201)
async def verification(request: Request[Any, Any, Any]) -> Response[Any]:
    """Record that a certificate was verified, once per Idempotency-Key."""
    registrar = registrar_of(request)
    early, action = await registrar.gate(request)
    if early is not None:
        return early
    try:
        body = json.loads(await request.body())
        number = body["certificate_number"]
    except (ValueError, KeyError, TypeError):
        return Response(
            {"error": "bad_request", "detail": "certificate_number is required"}, status_code=400
        )
    receipts: dict[str, dict[str, Any]] = request.app.state[_RECEIPTS]
    key = request.headers.get("Idempotency-Key")
    if key is not None and key in receipts:
        return registrar.answer(receipts[key], action, status=201)
    register: CertificateRegister = request.app.state[_REGISTER]
    record = register.lookup(str(number))
    receipt = {
        "verification_id": f"ver_{len(receipts) + registrar.traffic.served:08d}",
        "certificate_number": str(number),
        "valid": record is not None and record["status"] == "valid",
        "checked_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    receipts[key or str(receipt["verification_id"])] = receipt
    return registrar.answer(receipt, action, status=201)


def create_app(config: RegistrarConfig, population: int = 100_000) -> Litestar:
    """A sandbox education registry with ``population`` synthetic certificates per year."""
    return Litestar(
        route_handlers=[certificate, verification, *control_handlers()],
        state=State(
            {
                STATE_KEY: Registrar(config),
                _REGISTER: CertificateRegister(seed=config.seed, population=population),
                _RECEIPTS: {},
            }
        ),
        openapi_config=None,
    )
