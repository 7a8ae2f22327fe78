"""A relay alone in its process, for the crash test: ``python -m tests.relay_process URL ...``.

It publishes the outbox of the database at ``URL`` to RabbitMQ (``--amqp``, with the test's
exchange names) or to the database bus, until it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from hub.backends.events.amqp import AmqpEventBus
from hub.backends.events.base import Event, EventBus
from hub.backends.events.database import DatabaseEventBus
from hub.db.engine import create_engine
from hub.errors import HubError
from hub.events.relay import OutboxRelay, RelayOptions


class _Holding(DatabaseEventBus):
    """The database bus, pausing before each batch: the crash test's window between claim
    and settle (on RabbitMQ a frozen TCP proxy holds the publishes instead)."""

    hold = 0.0

    async def publish_many(self, events: Sequence[Event]) -> list[HubError | None]:
        await asyncio.sleep(self.hold)
        return await super().publish_many(events)


async def _serve(args: argparse.Namespace) -> None:
    bus: EventBus = (
        AmqpEventBus(args.amqp, exchange=args.exchange, dead_letter_exchange=args.dlx)
        if args.amqp
        else _Holding(args.database_url, poll_interval=0.02)
    )
    if isinstance(bus, _Holding):
        bus.hold = args.hold
    await bus.start()
    engine = create_engine(args.database_url)
    relay = OutboxRelay(
        engine,
        bus,
        name=args.name,
        options=RelayOptions(batch_size=args.batch, lease_seconds=args.lease, poll_interval=0.02),
    )
    relay.start()
    await asyncio.Event().wait()  # until killed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("database_url")
    parser.add_argument("--name", required=True)
    parser.add_argument("--amqp")
    parser.add_argument("--exchange")
    parser.add_argument("--dlx")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=0.0, help="database bus: pause per batch")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
