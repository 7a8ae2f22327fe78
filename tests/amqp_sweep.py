"""Delete the RabbitMQ queues and exchanges that tests and benchmarks leave behind.

Every end-to-end test and benchmark runs its processes under a namespace of its own
(``test.<hex>``, ``bench-<hex>``), and their buses declare durable quorum queues under it. Nothing
in the hub deletes a queue (an operator's queues outlive any process), so without a sweep they
pile up run after run; a few hundred idle quorum queues were enough to wedge the broker here.

AMQP cannot list queues, so the names come from ``rabbitmqctl`` (on the broker's machine, as in
CI); without it the sweep does nothing and says so. Only names under the given prefixes are
touched: the machine's RabbitMQ is shared.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterable

import aio_pika

__all__ = ["sweep", "sweep_sync"]

_LIST_TIMEOUT_S = 60


def _names(kind: str) -> list[str] | None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "-q", "--no-table-headers", f"list_{kind}", "name"],
            capture_output=True,
            text=True,
            timeout=_LIST_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def _matching(names: Iterable[str], prefixes: tuple[str, ...]) -> list[str]:
    return [n for n in names if n.startswith(prefixes)]


async def sweep(amqp_url: str, prefixes: tuple[str, ...]) -> int | None:
    """Delete every queue and exchange whose name starts with one of ``prefixes``.

    Returns how many were deleted, or ``None`` when the broker's names could not be listed.
    """
    if not prefixes:
        return 0
    queues = _names("queues")
    exchanges = _names("exchanges")
    if queues is None or exchanges is None:
        return None
    doomed_queues = _matching(queues, prefixes)
    doomed_exchanges = _matching(exchanges, prefixes)
    if not doomed_queues and not doomed_exchanges:
        return 0
    deleted = 0
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        for name in doomed_queues:
            channel = await connection.channel()  # a failed delete closes its channel
            try:
                await channel.queue_delete(name, if_unused=False, if_empty=False)
                deleted += 1
            except aio_pika.exceptions.AMQPError:
                pass
            finally:
                if not channel.is_closed:
                    await channel.close()
        channel = await connection.channel()
        for name in doomed_exchanges:
            try:
                await channel.exchange_delete(name, if_unused=False)
                deleted += 1
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()
    finally:
        await connection.close()
    return deleted


def sweep_sync(amqp_url: str, prefixes: tuple[str, ...]) -> int | None:
    """:func:`sweep` from synchronous code (a fixture's teardown, a benchmark's ``main``)."""
    try:
        return asyncio.run(sweep(amqp_url, prefixes))
    except (OSError, aio_pika.exceptions.AMQPError, TimeoutError):
        return None
