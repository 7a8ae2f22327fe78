"""The sweep that removes test and benchmark queues deletes its namespace's and nothing else."""

from __future__ import annotations

import shutil
import uuid

import aio_pika
import pytest

from tests.amqp_sweep import sweep

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]


async def _exists(connection: aio_pika.abc.AbstractConnection, queue: str) -> bool:
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return False
    await channel.close()
    return True


async def test_the_sweep_deletes_its_namespace_only(amqp_url: str) -> None:
    ours, theirs = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for name in (f"{ours}.visas", f"{ours}.visas.dead", f"{theirs}.visas"):
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.declare_exchange(f"{ours}.events", aio_pika.ExchangeType.TOPIC)

        deleted = await sweep(amqp_url, (f"{ours}.",))

        assert deleted == 3  # two queues and the exchange
        assert not await _exists(connection, f"{ours}.visas")
        assert not await _exists(connection, f"{ours}.visas.dead")
        assert await _exists(connection, f"{theirs}.visas")
        assert await sweep(amqp_url, (f"{ours}.",)) == 0  # nothing left to do
    finally:
        await sweep(amqp_url, (f"{theirs}.",))
        await connection.close()


async def test_no_prefix_sweeps_nothing(amqp_url: str) -> None:
    assert await sweep(amqp_url, ()) == 0
