"""A small, fast JSON upstream: answers every request with the benchmark's 206-byte document.

Plain asyncio protocol (uvloop when installed), HTTP/1.1 keep-alive, no framework, so it is
not the bottleneck of a Python proxy. The harness prefers nginx as the upstream and uses this
one for the ``upstream-python`` scenario and with ``--upstream python``.

    python bench/upstream.py --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import cast

from _util import BODY

__all__ = ["serve"]

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(BODY)
_KEEP = _HEAD + b"\r\n" + BODY
_CLOSE = _HEAD + b"Connection: close\r\n\r\n" + BODY


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class _Http(asyncio.Protocol):
    """One connection: parse request heads (skipping bodies), answer each in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its interface.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buffer[:end])
            try:
                total = end + 4 + _content_length(head)
            except ValueError:
                transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                transport.close()
                return
            if len(buffer) < total:
                break
            del buffer[:total]
            lowered = head.lower()
            is_head = lowered.startswith(b"head ")
            if b"\r\nconnection: close" in lowered:
                out.append(_CLOSE[: len(_CLOSE) - len(BODY)] if is_head else _CLOSE)
                transport.write(b"".join(out))
                transport.close()
                return
            out.append(_KEEP[: len(_KEEP) - len(BODY)] if is_head else _KEEP)
        if out:
            transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
