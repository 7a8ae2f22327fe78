"""The fault-injection TCP proxy forwards, cuts (aborting and refusing), restores and closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.fixtures_services import free_port
from tests.tcpproxy import TcpProxy

TIMEOUT = 5


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A loopback echo server."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()


async def _assert_ended(reader: asyncio.StreamReader) -> None:
    """The connection ends: EOF or a reset, never a hang."""
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(10), TIMEOUT) == b""


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()


async def test_forwards_both_ways(echo_port: int) -> None:
    async with TcpProxy(target_port=echo_port) as proxy:
        assert proxy.port != echo_port
        payload = b"x" * 200_000  # several chunks each way
        assert await _roundtrip(proxy.port, payload) == payload
        assert proxy.connections_total == 1


async def test_cut_aborts_open_connections_and_refuses_new(echo_port: int) -> None:
    async with TcpProxy(target_port=echo_port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"ping"

            await proxy.cut()

            assert proxy.is_cut
            assert proxy.open_connections == 0
            await _assert_ended(reader)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection("127.0.0.1", proxy.port)
        finally:
            await _close(writer)


async def test_restore_listens_again_on_the_same_port(echo_port: int) -> None:
    async with TcpProxy(target_port=echo_port) as proxy:
        port = proxy.port
        await proxy.cut()
        await proxy.restore()
        assert not proxy.is_cut
        assert proxy.port == port
        assert await _roundtrip(proxy.port, b"again") == b"again"


async def test_stall_accepts_but_answers_nothing_until_restored(echo_port: int) -> None:
    async with TcpProxy(target_port=echo_port) as proxy:
        port = proxy.port
        await proxy.stall()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"hello?")
            await writer.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(10), 0.2)
            assert proxy.connections_total == 1

            await proxy.restore()

            await _assert_ended(reader)  # the hung connection ends, as after a restart
            assert proxy.port == port
            assert await _roundtrip(port, b"again") == b"again"
        finally:
            await _close(writer)


async def test_unreachable_target_closes_the_client_connection() -> None:
    async with TcpProxy(target_port=free_port()) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            await _assert_ended(reader)
        finally:
            await _close(writer)


async def test_aclose_ends_connections_and_stops_listening(echo_port: int) -> None:
    proxy = TcpProxy(target_port=echo_port)
    with pytest.raises(RuntimeError):
        _ = proxy.port
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"hi")
    assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"hi"

    await proxy.aclose()

    assert proxy.open_connections == 0
    await _assert_ended(reader)
    await _close(writer)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_freeze_holds_bytes_on_open_connections_until_thawed(echo_port: int) -> None:
    async with TcpProxy(target_port=echo_port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(b"before")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(6), TIMEOUT) == b"before"
            proxy.freeze()
            writer.write(b"held")
            await writer.drain()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.readexactly(4), 0.3)
            assert proxy.open_connections == 1  # still open: a hung peer, not a cut
            proxy.thaw()
            assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT) == b"held"
        finally:
            await _close(writer)
