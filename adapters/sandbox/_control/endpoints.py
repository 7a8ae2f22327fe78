"""The ``/_sandbox`` control surface every sandbox has, and the answers its API shares.

Control endpoints (not counted, never delayed nor faulted):

- ``GET /_sandbox/health``: ``{"status": "ok", ...}`` with what :meth:`Controlled.describe` says
  (the system's name and the faults in force);
- ``POST /_sandbox/faults``: change the faults (:mod:`.faults`), keys left out keep their value;
  answers the faults in force, or ``400 {"error": "bad_request", "detail"}``;
- ``GET /_sandbox/stats``: what the system received (:meth:`Controlled.stats`);
- ``POST /_sandbox/reset``: :meth:`Controlled.reset`, answers ``{"status": "reset"}``.

A sandbox keeps its state under :data:`CONTROL_KEY` of the app's state as well as its own key
(:func:`sandbox_app` builds such an app).
:func:`callback_handlers` serves a callback sender's log, target URL and redeliveries.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from adapters.sandbox._control.delivery import CallbackSender
from adapters.sandbox._control.faults import FaultError, Faults

__all__ = [
    "CONTROL_KEY",
    "Controlled",
    "bad_request",
    "callback_handlers",
    "control_handlers",
    "cut_short",
    "key_matches",
    "sandbox_app",
]

CONTROL_KEY: Final = "sandbox"


class Controlled(Protocol):
    """What the control endpoints need of a running sandbox."""

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        ...

    def describe(self) -> dict[str, Any]:
        """The fields of ``GET /_sandbox/health`` besides ``status``."""
        ...

    def stats(self) -> dict[str, Any]:
        """The body of ``GET /_sandbox/stats``."""
        ...

    def reset(self) -> None:
        """Clear the faults (but the configured latency), the counts and the system's data."""
        ...


def bad_request(detail: str) -> Response[Any]:
    """A control request refused: ``400 {"error": "bad_request", "detail"}``."""
    return Response({"error": "bad_request", "detail": detail}, status_code=400)


def cut_short(status: int, body: Any) -> Response[Any]:
    """The ``malformed`` fault's answer: the JSON body cut in half (the client cannot read it)."""
    text = json.dumps(body)
    return Response(text[: max(1, len(text) // 2)], status_code=status, media_type=MediaType.JSON)


def key_matches(given: str, expected: str) -> bool:
    """Whether a credential header holds the expected value (compared in constant time)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def callback_handlers(
    path: str,
    sender_of: Callable[[Request[Any, Any, Any]], CallbackSender[Any]],
    *,
    entries: str,
    noun: str,
    id_field: str,
) -> list[HTTPRouteHandler]:
    """``GET|POST <path>`` and ``POST <path>/{id}/redeliver`` of one callback sender.

    ``GET`` answers the log (``{"url", "pending", <entries>: [...]}``); ``POST {"url": ...}``
    points the callbacks there (``null``: keep them, send nothing); a redelivery answers
    ``202 {<id_field>: id}``, or ``404`` for no such ``noun``.
    """

    @get(path, sync_to_thread=False)
    def callback_log(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return sender_of(request).view(entries)

    @post(path, status_code=200)
    async def callback_target(request: Request[Any, Any, Any]) -> Response[Any]:
        sender = sender_of(request)
        try:
            body = json.loads(await request.body() or b"{}")
            url = body["url"]
            if url is not None and not str(url).startswith(("http://", "https://")):
                raise ValueError("url must be http(s)")
        except (ValueError, KeyError, TypeError) as exc:
            return bad_request(str(exc))
        sender.url = url
        return Response({"url": url})

    @post(f"{path}/{{callback_id:str}}/redeliver", status_code=202, sync_to_thread=False)
    def redeliver(request: Request[Any, Any, Any], callback_id: FromPath[str]) -> Response[Any]:
        if not sender_of(request).redeliver(callback_id):
            return Response({"error": "not_found", "detail": f"no such {noun}"}, status_code=404)
        return Response({id_field: callback_id}, status_code=202)

    return [callback_log, callback_target, redeliver]


def _controlled(request: Request[Any, Any, Any]) -> Controlled:
    sandbox: Controlled = request.app.state[CONTROL_KEY]
    return sandbox


@get("/_sandbox/health", sync_to_thread=False)
def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Liveness and the faults in force."""
    return {"status": "ok", **_controlled(request).describe()}


@post("/_sandbox/faults", status_code=200)
async def set_faults(request: Request[Any, Any, Any]) -> Response[Any]:
    """Change the faults; keys left out keep their value."""
    faults = _controlled(request).faults
    try:
        faults.update(json.loads(await request.body() or b"{}"))
    except (ValueError, FaultError) as exc:
        return bad_request(str(exc))
    return Response(faults.as_dict())


@get("/_sandbox/stats", sync_to_thread=False)
def stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What the system received."""
    return _controlled(request).stats()


@post("/_sandbox/reset", status_code=200, sync_to_thread=False)
def reset(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Clear the faults, the counts and the system's data."""
    _controlled(request).reset()
    return {"status": "reset"}


def control_handlers() -> list[HTTPRouteHandler]:
    """The ``/_sandbox`` health, faults, stats and reset endpoints."""
    return [health, set_faults, stats, reset]


def sandbox_app(
    handlers: Sequence[HTTPRouteHandler],
    *,
    state_key: str,
    sandbox: Controlled,
    sender: CallbackSender[Any],
) -> Litestar:
    """A sandbox with callbacks: its ``handlers`` and the control endpoints, ``sandbox`` in the
    state under ``state_key`` (and :data:`CONTROL_KEY`), ``sender`` started and closed with it."""

    async def start() -> None:
        sender.start()

    async def stop() -> None:
        await sender.aclose()

    return Litestar(
        route_handlers=[*handlers, *control_handlers()],
        state=State({state_key: sandbox, CONTROL_KEY: sandbox}),
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=None,
    )
