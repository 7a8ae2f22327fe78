"""What a service's HTTP side shares: its app, JSON bodies, queries, ``Idempotency-Key``, answers.

A service's ``create_app`` is a :class:`ServiceApp`: its handlers and how to open its
components on a :class:`~hub.servicekit.runtime.ServiceRuntime`; its handlers read them, and
who called, through the service's :class:`ServiceState`. Every refusal is a :mod:`hub.errors`
error, which the app's problem-details plugin renders as RFC 9457 problem JSON with a stable
``code``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Generic, TypeVar

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.handlers import HTTPRouteHandler
from litestar.types import ControllerRouterHandler

from hub.auth.internal import InternalTokenVerifier
from hub.backends.events.base import EventBus
from hub.errors import InvalidRequest, PayloadTooLarge
from hub.problems import problem_details_plugin
from hub.servicekit.caller import PRINCIPAL_TOKEN_HEADER, Caller
from hub.servicekit.idempotency import KEY_HEADER, check_key
from hub.servicekit.runtime import ServiceRuntime, Transport
from hub.servicekit.settings import ServiceSettings

__all__ = [
    "LISTING",
    "Components",
    "ServiceApp",
    "ServiceState",
    "created",
    "idempotency_key",
    "json_body",
    "limit_of",
    "listing",
    "no_store",
    "refuse",
    "state_of",
    "unknown_parameters",
]

W = TypeVar("W")
S = TypeVar("S", bound=ServiceSettings)
C = TypeVar("C", bound=Caller)

#: The query parameters of a keyset listing filtered by state.
LISTING: Final = ("state", "limit", "cursor")
_NO_STORE: Final = {"Cache-Control": "no-store"}


class Components(Generic[W]):
    """What the app's handlers use, made in the lifespan: the workflow and the token verifier."""

    def __init__(self, workflow: W, verifier: InternalTokenVerifier) -> None:
        self.workflow = workflow
        self.verifier = verifier


class ServiceState(Generic[W, C]):
    """Where a service's app keeps its :class:`Components`, and who called as its ``C`` says."""

    def __init__(self, key: str, caller: type[C]) -> None:
        """``key`` names the components in the app's state; ``caller`` reads the hub's token."""
        self.key = key
        self._caller = caller

    def components(self, request: Request[Any, Any, Any]) -> Components[W]:
        """The components the lifespan made."""
        components: Components[W] = request.app.state[self.key]
        return components

    def workflow(self, request: Request[Any, Any, Any]) -> W:
        """The service's workflow."""
        return self.components(request).workflow

    def caller(self, request: Request[Any, Any, Any]) -> C:
        """Who called, from the request's ``X-Hub-Principal-Token``."""
        token = request.headers.get(PRINCIPAL_TOKEN_HEADER)
        return self._caller.from_token(token, self.components(request).verifier)


class ServiceApp(Generic[S, W]):
    """A service's app, said once: its handlers, where its components live, how they open.

    Called with the service's settings it is the service's ``create_app``: a Litestar app of
    the handlers and a public ``GET /healthz``, problems as RFC 9457 JSON, whose lifespan
    enters a :class:`ServiceRuntime` named ``name``, keeps what ``open_components`` makes on it
    where ``state`` finds it (and the runtime's relay as ``relay``), and closes the runtime
    when the app stops.
    """

    def __init__(
        self,
        handlers: Sequence[ControllerRouterHandler],
        *,
        name: str,
        state: ServiceState[W, Any],
        open_components: Callable[[ServiceRuntime, S], Awaitable[Components[W]]],
    ) -> None:
        self.handlers = handlers
        self.name = name
        self.state = state
        self._open = open_components

    def __call__(
        self, settings: S, *, transport: Transport | None = None, bus: EventBus | None = None
    ) -> Litestar:
        """The service's app for ``settings``; ``transport`` and ``bus`` are for tests."""

        @asynccontextmanager
        async def lifespan(app: Litestar) -> AsyncIterator[None]:
            async with ServiceRuntime(
                settings, name=self.name, transport=transport, bus=bus
            ) as runtime:
                app.state[self.state.key] = await self._open(runtime, settings)
                app.state["relay"] = runtime.relay
                yield

        return Litestar(
            route_handlers=[_healthz(self.name), *self.handlers],
            lifespan=[lifespan],
            plugins=[problem_details_plugin()],
            openapi_config=None,
            state=State(),
        )


def _healthz(name: str) -> HTTPRouteHandler:
    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "service": name}

    return healthz


async def json_body(
    request: Request[Any, Any, Any],
    *,
    limit: int,
    what: str,
    required: bool = True,
    blank_is_empty: bool = False,
) -> object:
    """The request's JSON body, at most ``limit`` bytes (``what`` names it: "a visa request body").

    An empty body is ``None`` when it is not ``required``; with ``blank_is_empty``, so is one
    of only whitespace.
    """
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"{what} is at most {limit} bytes")
    if not (raw.strip() if blank_is_empty else raw):
        if not required:
            return None
        raise InvalidRequest("the request needs a JSON body", extra={"errors": ["$: required"]})
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"the body is not JSON: {exc}", extra={"errors": ["$: not JSON"]}
        ) from exc


def idempotency_key(request: Request[Any, Any, Any], *, what: str = "this request") -> str:
    """The request's ``Idempotency-Key``; ``what`` names the request when it has none."""
    return check_key(request.headers.get(KEY_HEADER), what=what)


def refuse(errors: list[str]) -> None:
    """Refuse the request as ``invalid_request`` with every error found, if there is one."""
    if errors:
        raise InvalidRequest("; ".join(errors), extra={"errors": errors})


def unknown_parameters(query: Mapping[str, str], known: Collection[str]) -> list[str]:
    """An error for each of the query's parameters not ``known``."""
    return [f"{name}: unknown parameter" for name in query if name not in known]


def state_of(query: Mapping[str, str], states: Sequence[str], errors: list[str]) -> str | None:
    """The query's ``state``, one of ``states``; another adds its error to ``errors``."""
    state = query.get("state")
    if state is not None and state not in states:
        errors.append(f"state: one of {', '.join(states)}")
    return state


def limit_of(query: Mapping[str, str], errors: list[str]) -> int:
    """The query's ``limit`` (20 unless given), 1 to 100; another adds its error to ``errors``."""
    raw = query.get("limit", "20")
    limit = int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= 100:
        errors.append("limit: a whole number from 1 to 100")
    return limit


def listing(request: Request[Any, Any, Any], states: Sequence[str]) -> dict[str, Any]:
    """The ``state``, ``limit`` and ``cursor`` of a listing's query, each error refused."""
    query = request.query_params
    errors = unknown_parameters(query, LISTING)
    state = state_of(query, states, errors)
    limit = limit_of(query, errors)
    refuse(errors)
    return {"state": state, "limit": limit, "cursor": query.get("cursor")}


def no_store(body: dict[str, Any], *, status: int = 200) -> Response[dict[str, Any]]:
    """An answer no cache keeps: it is one caller's."""
    return Response(body, status_code=status, headers=_NO_STORE)


def created(
    body: dict[str, Any], location: str, replayed: bool, *, status: int = 201
) -> Response[dict[str, Any]]:
    """The answer of a request that made something: ``status`` (201), or 200 for a replay."""
    headers = dict(_NO_STORE)
    if location:
        headers["Location"] = location
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body, status_code=200 if replayed else status, headers=headers)
