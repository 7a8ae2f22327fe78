"""RabbitMQ event bus (aio-pika): a durable topic exchange, quorum queues, broker dead-lettering.

Topology, for exchange ``hub.events`` and a subscription ``(queue, pattern)``:

    hub.events (topic) --pattern--> queue (quorum, x-delivery-limit = max_retries)
    hub.events.dlx (direct) --queue--> queue.dead (quorum)

A handler that raises gets its message nacked with requeue; the broker counts the redeliveries
and, past ``x-delivery-limit``, moves the message to ``<queue>.dead``. The count lives in the
broker, so it survives consumer crashes and restarts, unlike a counter kept in a header.

Publishing is not retried here: a publish made while RabbitMQ is unreachable raises
``BackendUnavailable`` at once (the transactional outbox, built on top, owns retries and their
duplicates). The connection is aio-pika's robust connection, which reconnects by itself and
re-declares the exchanges, queues, bindings and consumers; if RabbitMQ is down at ``start()``
the bus keeps trying in the background and applies the subscriptions made meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelNotFoundEntity

from hub._aio import wait_set
from hub.backends.events.base import (
    DEFAULT_MAX_RETRIES,
    DeadLetter,
    Event,
    EventBus,
    EventHandler,
)
from hub.errors import BackendUnavailable, HubError

__all__ = ["DEFAULT_DEAD_LETTER_EXCHANGE", "DEFAULT_EXCHANGE", "AmqpEventBus"]

DEFAULT_EXCHANGE = "hub.events"
DEFAULT_DEAD_LETTER_EXCHANGE = "hub.events.dlx"

logger = structlog.get_logger(__name__)

# aio-pika's own list of what a lost or refused connection raises, plus our deadlines.
_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)


class AmqpEventBus(EventBus):
    """Publishes events durably (persistent, confirmed) and consumes them with bounded retries."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        dead_letter_exchange: str = DEFAULT_DEAD_LETTER_EXCHANGE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_delay: float = 0.0,
        prefetch: int = 1,
        start_timeout: float = 5.0,
        operation_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self._url = url
        self.exchange_name = exchange
        self.dead_letter_exchange_name = dead_letter_exchange
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self._prefetch = prefetch
        self._start_timeout = start_timeout
        self._operation_timeout = operation_timeout
        self._reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._connector: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._pending: list[tuple[str, str, EventHandler]] = []
        self._last_error: str = "not connected yet"

    async def start(self) -> None:
        """Connect; waits up to ``start_timeout``, then keeps connecting in the background."""
        if self._connector is not None:
            return
        self._connector = asyncio.create_task(self._connect_forever(), name="AmqpEventBus.connect")
        if not await wait_set(self._ready, self._start_timeout):
            logger.warning(
                "events.start_unconnected", exchange=self.exchange_name, error=self._last_error
            )

    async def publish(self, event: Event) -> None:
        exchange = self._require_exchange()
        message = aio_pika.Message(
            body=event.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            type=event.type,
            timestamp=event.occurred_at,
        )
        try:
            # With publisher confirms this returns once the broker has the message on disk
            # (persistent to durable queues); a nack raises DeliveryError.
            await exchange.publish(
                message,
                routing_key=event.type,
                mandatory=False,
                timeout=self._operation_timeout,
            )
        except _FAILURES as exc:
            raise BackendUnavailable(f"amqp: cannot publish {event.type}: {exc!r}") from exc

    async def publish_many(self, events: Sequence[Event]) -> list[HubError | None]:
        """Send every message, then await their confirms together (one wait, not one each)."""
        if not events:
            return []
        try:
            self._require_exchange()
        except BackendUnavailable as exc:
            return [exc] * len(events)
        results = await asyncio.gather(
            *(self.publish(event) for event in events), return_exceptions=True
        )
        outcomes: list[HubError | None] = []
        for result in results:
            if isinstance(result, HubError):
                outcomes.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                outcomes.append(None)
        return outcomes

    async def subscribe(self, queue: str, pattern: str, handler: EventHandler) -> None:
        if self._connector is None:
            raise BackendUnavailable("event bus is not running")
        if not self._ready.is_set():
            # Applied by the connector once RabbitMQ answers.
            self._pending.append((queue, pattern, handler))
            return
        try:
            await self._declare_consumer(queue, pattern, handler)
        except _FAILURES as exc:
            raise BackendUnavailable(f"amqp: cannot subscribe {queue}: {exc!r}") from exc

    async def check(self) -> None:
        connection = self._connection
        if connection is None or not self._ready.is_set():
            raise BackendUnavailable(f"amqp: not connected: {self._last_error}")
        if connection.is_closed or not connection.connected.is_set():
            raise BackendUnavailable("amqp: connection lost, reconnecting")
        try:
            # A round trip proves the broker answers, not merely that a socket is open.
            async with asyncio.timeout(self._operation_timeout):
                channel = await connection.channel(publisher_confirms=False)
                await channel.close()
        except _FAILURES as exc:
            raise BackendUnavailable(f"amqp: unreachable: {exc!r}") from exc

    async def aclose(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connector
        connection, self._connection = self._connection, None
        self._exchange = None
        self._ready.clear()
        self._pending.clear()
        if connection is not None:
            with contextlib.suppress(*_FAILURES):
                await connection.close()

    async def dead_letters(self, queue: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """Read ``<queue>.dead`` without taking anything: unacked, the messages stay there."""
        if queue is None:
            raise ValueError("name the queue: RabbitMQ lists one queue's dead letters at a time")
        found: list[DeadLetter] = []
        try:
            async with asyncio.timeout(self._operation_timeout):
                channel = await self._require_connection().channel()
                try:
                    dead = await channel.get_queue(f"{queue}.dead", ensure=True)
                    while len(found) < limit:
                        message = await dead.get(fail=False)
                        if message is None:
                            break
                        letter = _dead_letter(queue, message)
                        if letter is not None:
                            found.append(letter)
                finally:
                    # Closing the channel returns every unacked message to the queue.
                    with contextlib.suppress(*_FAILURES):
                        await channel.close()
        except ChannelNotFoundEntity:
            return []  # no such queue: nothing was ever dead-lettered there
        except _FAILURES as exc:
            raise BackendUnavailable(f"amqp: cannot read {queue}.dead: {exc!r}") from exc
        return found

    async def replay(self, queue: str, event_ids: list[str] | None = None) -> int:
        """Move dead letters back to ``queue`` itself (not to every queue of the event type)."""
        moved = 0
        try:
            async with asyncio.timeout(self._operation_timeout * 4):
                channel = await self._require_connection().channel(publisher_confirms=True)
                try:
                    dead = await channel.get_queue(f"{queue}.dead", ensure=True)
                    while (message := await dead.get(fail=False)) is not None:
                        if event_ids is not None and message.message_id not in event_ids:
                            continue  # left unacked: back in the dead queue on close
                        await channel.default_exchange.publish(
                            aio_pika.Message(
                                body=message.body,
                                content_type=message.content_type,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                message_id=message.message_id,
                                type=message.type,
                                timestamp=message.timestamp,
                            ),
                            routing_key=queue,
                        )
                        await message.ack()
                        moved += 1
                finally:
                    with contextlib.suppress(*_FAILURES):
                        await channel.close()
        except ChannelNotFoundEntity:
            return 0
        except _FAILURES as exc:
            raise BackendUnavailable(f"amqp: cannot replay {queue}.dead: {exc!r}") from exc
        return moved

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None or not self._ready.is_set():
            raise BackendUnavailable(f"amqp: not connected: {self._last_error}")
        return self._connection

    def _require_exchange(self) -> AbstractExchange:
        if self._exchange is None or not self._ready.is_set():
            raise BackendUnavailable(f"amqp: not connected: {self._last_error}")
        return self._exchange

    async def _connect_forever(self) -> None:
        """Make the first connection; the robust connection takes care of later ones."""
        delay = self._reconnect_interval
        while self._connection is None:
            try:
                async with asyncio.timeout(self._operation_timeout):
                    await self._connect()
            except _FAILURES as exc:
                await self._give_up_connection()
                delay = await self._backoff("events.connect_failed", exc, delay)
        # Queues first, readiness after: an event published as soon as check() passes must
        # find the queues subscribed during the outage.
        delay = self._reconnect_interval
        while self._pending:
            queue, pattern, handler = self._pending[0]
            try:
                await self._declare_consumer(queue, pattern, handler)
            except _FAILURES as exc:
                # Kept pending: readiness stays red (with the reason) until it succeeds.
                delay = await self._backoff("events.subscribe_failed", exc, delay, queue=queue)
            else:
                self._pending.pop(0)
        self._ready.set()

    async def _backoff(self, what: str, exc: BaseException, delay: float, **log: str) -> float:
        self._last_error = repr(exc)
        logger.warning(what, error=self._last_error, retry_in=round(delay, 3), **log)
        await asyncio.sleep(delay)
        return min(delay * 2, 30.0)

    async def _give_up_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(*_FAILURES):
                await connection.close()

    async def _connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url,
            reconnect_interval=self._reconnect_interval,
            client_properties={"connection_name": "hub"},
        )
        channel = await self._connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await channel.declare_exchange(
            self.dead_letter_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._exchange = exchange

    async def _declare_consumer(self, queue: str, pattern: str, handler: EventHandler) -> None:
        connection = self._connection
        assert connection is not None
        async with asyncio.timeout(self._operation_timeout):
            # A channel per subscription: its prefetch bounds that queue's in-flight handlers.
            channel = await connection.channel()
            try:
                await self._consume_on(channel, queue, pattern, handler)
            except BaseException:
                # The robust connection would otherwise restore a half-made subscription.
                with contextlib.suppress(*_FAILURES):
                    await channel.close()
                raise

    async def _consume_on(
        self, channel: AbstractChannel, queue: str, pattern: str, handler: EventHandler
    ) -> None:
        await channel.set_qos(prefetch_count=self._prefetch)
        dead = await channel.declare_queue(
            f"{queue}.dead", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(self.dead_letter_exchange_name, routing_key=queue)
        target = await channel.declare_queue(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.max_retries,
                "x-dead-letter-exchange": self.dead_letter_exchange_name,
                "x-dead-letter-routing-key": queue,
            },
        )
        await target.bind(self.exchange_name, routing_key=pattern)
        await target.consume(functools.partial(self._deliver, queue, handler))

    async def _deliver(
        self, queue: str, handler: EventHandler, message: AbstractIncomingMessage
    ) -> None:
        try:
            event = Event.decode(message.body)
        except ValueError as exc:
            # Retrying cannot fix a malformed body: straight to the dead-letter queue.
            logger.warning("events.undecodable", queue=queue, error=str(exc))
            with contextlib.suppress(*_FAILURES):
                await message.reject(requeue=False)
            return
        try:
            await handler(event)
        except Exception as exc:
            logger.warning(
                "events.handler_failed",
                queue=queue,
                event_id=event.id,
                event_type=event.type,
                redeliveries=message.headers.get("x-delivery-count", 0),
                error=repr(exc),
            )
            if self.retry_delay:
                # Exponential: the broker's delivery count says how many tries came before.
                count = message.headers.get("x-delivery-count", 0)
                tries = count if isinstance(count, int) else 0
                await asyncio.sleep(self.retry_delay * 2 ** min(tries, 10))
            # Unacked messages come back after a reconnect anyway, so a failed nack is harmless.
            with contextlib.suppress(*_FAILURES):
                await message.nack(requeue=True)
            return
        with contextlib.suppress(*_FAILURES):
            await message.ack()


def _dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter | None:
    try:
        event = Event.decode(message.body)
    except ValueError:
        logger.warning("events.undecodable_dead_letter", queue=queue)
        return None
    deaths = message.headers.get("x-death")
    reason, count = "dead-lettered", 0
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = str(deaths[0].get("reason", reason))
        raw = deaths[0].get("count", 0)
        count = raw if isinstance(raw, int) else 0
    delivered = message.headers.get("x-delivery-count")
    attempts = delivered + 1 if isinstance(delivered, int) else count
    return DeadLetter(queue=queue, event=event, error=reason, attempts=attempts)
