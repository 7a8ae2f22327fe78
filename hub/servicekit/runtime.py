"""The long-lived parts a domain service runs on, made and closed in its app's lifespan.

:class:`ServiceRuntime` owns, for one service: its database engine (its own schema through
``schema_translate_map``), the httpx client to the hub, the hub's keys (refreshed in the
background) and the verifier of internal tokens, the event bus (RabbitMQ or the embedded one),
the outbox relay that publishes what the service's writes enqueued, and the service's
background tasks. A lifespan enters it, builds the service's store, hub client and workflow on
its parts, and starts it with the service's consumers (:meth:`ServiceRuntime.start`); leaving
it stops the tasks and closes everything in the reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import structlog

from hub.auth.hub_keys import HubKeys
from hub.auth.internal import InternalTokenVerifier
from hub.backends.events.base import EventBus, EventHandler
from hub.backends.factory import build_event_bus_for
from hub.db.engine import create_engine
from hub.errors import HubError
from hub.events.consumer import Effect, IdempotentConsumer
from hub.events.relay import OutboxRelay, RelayOptions
from hub.servicekit.gateway import Gateway
from hub.servicekit.settings import ServiceSettings
from hub.servicekit.store import ServiceStore

__all__ = ["ServiceRuntime", "Transport"]

log = structlog.get_logger(__name__)

StoreT = TypeVar("StoreT", bound=ServiceStore)
GatewayT = TypeVar("GatewayT", bound=Gateway)

#: The innermost transport of the client to the hub: a test hands in a mock or an ASGI app.
Transport = httpx.AsyncBaseTransport


class ServiceRuntime:
    """One service's engine, hub client, token verifier, bus, relay and background tasks."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        transport: Transport | None = None,
        bus: EventBus | None = None,
    ) -> None:
        """``name`` names the relay and the tasks; ``transport`` and ``bus`` are for tests."""
        self.name = name
        self.settings = settings
        engine = create_engine(settings.database_url)
        if settings.database_schema:
            engine = engine.execution_options(schema_translate_map={None: settings.database_schema})
        self.engine = engine
        self.http = httpx.AsyncClient(
            base_url=settings.hub_url, timeout=settings.hub_timeout_seconds, transport=transport
        )
        self.keys = HubKeys(self.http, f"{settings.hub_url}/.well-known/jwks.json")
        self.verifier = InternalTokenVerifier(
            self.keys.key, issuer=settings.issuer, audience=settings.audience
        )
        self.events = bus or build_event_bus_for(
            amqp_url=settings.amqp_url,
            database_url=settings.bus_database_url,
            namespace=settings.events_namespace,
        )
        self.relay = OutboxRelay(
            engine, self.events, options=RelayOptions(poll_interval=0.05), name=name
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open_store(self, store: type[StoreT]) -> StoreT:
        """The service's store on the runtime's engine, its schema created."""
        opened = store(self.engine, schema=self.settings.database_schema)
        await opened.create_schema()
        return opened

    def gateway(self, client: type[GatewayT], **options: Any) -> GatewayT:
        """The service's client of the hub's gateway, with the service's own credentials."""
        settings = self.settings
        return client(
            self.http, client_id=settings.client_id, client_secret=settings.client_secret, **options
        )

    async def start(
        self,
        store: ServiceStore | None = None,
        subscriptions: Sequence[tuple[str, str, Effect]] = (),
        *,
        handlers: Sequence[tuple[str, str, EventHandler]] = (),
    ) -> None:
        """Connect the bus, consume, relay ``store``'s events, refresh the hub's keys.

        Each ``(queue, pattern, effect)`` applies ``effect`` once per event matching
        ``pattern`` (an :class:`~hub.events.consumer.IdempotentConsumer` named ``queue``); each
        ``(queue, pattern, handler)`` of ``handlers`` is subscribed as it is. A service without
        an outbox passes no ``store``: its relay is never started.
        """
        await self.events.start()
        for queue, pattern, effect in subscriptions:
            await self.subscribe(queue, pattern, self.consumer(queue, effect))
        for queue, pattern, handler in handlers:
            await self.subscribe(queue, pattern, handler)
        if store is not None:
            self.relay.start()
            # publish a step's events at once, not at the relay's next poll
            store.on_commit = self.relay.wake
        self.spawn(self.keys.run(), name="hub-keys")

    def consumer(self, queue: str, effect: Effect) -> IdempotentConsumer:
        """A handler applying ``effect`` at most once per event, for the consumer ``queue``."""
        return IdempotentConsumer(self.engine, queue, effect)

    async def subscribe(self, queue: str, pattern: str, handler: EventHandler) -> None:
        """Hand events matching ``pattern`` to ``handler`` from the bus's queue ``queue``.

        The bus's queue is the system's (namespaced as the hub's are): several systems may
        share one RabbitMQ, and each must get its own events. Call it after :meth:`start`.
        """
        await self.events.subscribe(f"{self.settings.events_namespace}.{queue}", pattern, handler)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``work`` in the background until the runtime closes."""
        self._tasks.append(asyncio.create_task(work, name=f"{self.name}:{name}"))

    def every(
        self,
        seconds: float,
        step: Callable[[], Awaitable[int]],
        *,
        failed: str,
        done: str,
        count: str = "done",
        at_once: bool = False,
    ) -> None:
        """Run ``step`` every ``seconds`` (a sweep); a hub that cannot answer only delays it.

        The first run is after ``seconds`` (at once with ``at_once``). A step that fails logs
        the event ``failed``; one that did something logs ``done`` with how many as ``count``.
        """

        async def loop() -> None:
            wait = not at_once
            while True:
                if wait:
                    await asyncio.sleep(max(seconds, 0.05))
                wait = True
                try:
                    moved = await step()
                except HubError as exc:
                    log.warning(failed, error=str(exc))
                    continue
                if moved:
                    log.info(done, **{count: moved})

        self.spawn(loop(), name=done)

    async def aclose(self) -> None:
        """Stop the tasks, then close the relay, the bus, the hub client and the engine."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.relay.aclose()
        await self.events.aclose()
        await self.http.aclose()
        await self.engine.dispose()
