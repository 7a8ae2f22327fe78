"""The sandbox civil registry as a Litestar app: ``create_app(config, population=...)``.

- ``GET /v1/persons/{id}`` (header ``X-Registry-Key``): a person by national or resident ID:
  names, birth date, sex, nationality, marital status, alive or deceased (with the date), and
  address; ``404 {"error": "not_found"}`` for an unknown ID, ``400`` for a malformed one.
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
from adapters.sandbox.civil_registry.data import PersonRegister

__all__ = ["create_app"]

_REGISTER = "people"


def _breach(record: dict[str, Any]) -> dict[str, Any]:
    # What a registry answering outside its contract looks like: a field of the wrong type and
    # a required one missing.
    record["alive"] = "yes"
    record.pop("birth_date", None)
    return record


@get("/v1/persons/{national_id:str}")
async def person(request: Request[Any, Any, Any], national_id: str) -> Response[Any]:
    """A person by national or resident ID."""
    registrar = registrar_of(request)
    early, action = await registrar.gate(request)
    if early is not None:
        return early
    if len(national_id) != 10 or not national_id.isdigit():
        return Response({"error": "bad_request", "detail": "an ID is 10 digits"}, status_code=400)
    register: PersonRegister = request.app.state[_REGISTER]
    record = register.lookup(national_id)
    if record is None:
        return registrar.answer(
            {"error": "not_found", "detail": "no such person"}, action, status=404
        )
    return registrar.answer(record, action, breach=_breach)


def create_app(config: RegistrarConfig, population: int = 100_000) -> Litestar:
    """A sandbox civil registry: ``population`` synthetic citizens, half as many residents."""
    return Litestar(
        route_handlers=[person, *control_handlers()],
        state=State(
            {
                STATE_KEY: Registrar(config),
                _REGISTER: PersonRegister(seed=config.seed, population=population),
            }
        ),
        openapi_config=None,
    )
