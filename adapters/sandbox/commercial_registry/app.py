"""The sandbox commercial registry as a Litestar app: ``create_app(config, population=...)``.

- ``GET /v1/establishments/{cr_number}`` (header ``X-Registry-Key``): an establishment by its
  commercial registration number: name, owner's national ID, sector, size, status (``active``,
  ``suspended``, ``struck_off``), registration date and city; ``404`` for an unknown number.
- ``/_sandbox/*``: faults, counts and health (:mod:`adapters.sandbox._registrar.server`).
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State

from adapters.sandbox._registrar.server import (
    STATE_KEY,
    Registrar,
    RegistrarConfig,
    control_handlers,
    registrar_of,
)
from adapters.sandbox.commercial_registry.data import EstablishmentRegister

__all__ = ["create_app"]

_REGISTER = "establishments"


def _breach(record: dict[str, Any]) -> dict[str, Any]:
    record["status"] = "dormant"  # not one of the contract's statuses
    record.pop("owner_national_id", None)
    return record


@get("/v1/establishments/{cr_number:str}")
async def establishment(request: Request[Any, Any, Any], cr_number: str) -> Response[Any]:
    """An establishment by commercial registration number."""
    registrar = registrar_of(request)
    early, action = await registrar.gate(request)
    if early is not None:
        return early
    if len(cr_number) != 10 or not cr_number.isdigit():
        return Response(
            {"error": "bad_request", "detail": "a CR number is 10 digits"}, status_code=400
        )
    register: EstablishmentRegister = request.app.state[_REGISTER]
    record = register.lookup(cr_number)
    if record is None:
        return registrar.answer(
            {"error": "not_found", "detail": "no such establishment"}, action, status=404
        )
    return registrar.answer(record, action, breach=_breach)


def create_app(config: RegistrarConfig, population: int = 100_000) -> Litestar:
    """A sandbox commercial registry with ``population`` synthetic establishments."""
    return Litestar(
        route_handlers=[establishment, *control_handlers()],
        state=State(
            {
                STATE_KEY: Registrar(config),
                _REGISTER: EstablishmentRegister(seed=config.seed, population=population),
            }
        ),
        openapi_config=None,
    )
