"""A loopback TCP forwarder that fault tests cut and restore, leaving the real service alone."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

__all__ = ["TcpProxy"]

_CHUNK = 64 * 1024


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut.

    ``cut()`` aborts every open connection and stops listening, so new connections are refused
    (not merely hung); ``stall()`` aborts them too but keeps accepting new ones and answers
    nothing on them (a hung peer: clients wait for their timeouts, and ``connections_total``
    counts their attempts); ``freeze()`` keeps every connection open but stops moving bytes
    on them (a peer hung mid-conversation: nothing fails, nothing is answered) until
    ``thaw()``; ``restore()`` forwards again on the same port.
    """

    def __init__(
        self,
        *,
        target_port: int,
        target_host: str = "127.0.0.1",
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._listen_host = listen_host
        self._port = listen_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stalled = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections_total = 0

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once started)."""
        if not self._port:
            raise RuntimeError("TcpProxy.port is known only after start()")
        return self._port

    @property
    def is_cut(self) -> bool:
        return self._server is None

    @property
    def open_connections(self) -> int:
        """Client connections currently being forwarded."""
        return len(self._tasks)

    async def start(self) -> None:
        """Listen and forward; binds a free port the first time."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self._listen_host, self._port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Abort every forwarded connection and refuse new ones until ``restore()``."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            # abort() rather than close(): a cut is a crash, peers must not get a graceful FIN
            # after buffered data.
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if server is not None:
            await server.wait_closed()

    async def stall(self) -> None:
        """Abort every forwarded connection; accept new ones but forward nothing on them."""
        await self.cut()
        self._stalled = True
        await self.start()

    def freeze(self) -> None:
        """Hold every byte in both directions; connections stay open."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Move the held bytes again."""
        self._flowing.set()

    async def restore(self) -> None:
        """Forward again on the same port after a ``cut()`` or a ``stall()``."""
        if self._stalled:
            await self.cut()  # the stalled connections end as if the peer had restarted
            self._stalled = False
        await self.start()

    async def aclose(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        self.connections_total += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self._server is None:  # cut between accept and this callback
                return
            if self._stalled:
                # read and drop whatever the client sends until it gives up (or a cut aborts it)
                with contextlib.suppress(OSError):
                    while await client_reader.read(_CHUNK):
                        pass
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError:
                return
            self._writers.add(upstream_writer)
            pumps = [
                asyncio.create_task(self._pump(client_reader, upstream_writer)),
                asyncio.create_task(self._pump(upstream_reader, client_writer)),
            ]
            try:
                # Either side closing ends the pair: the protocols proxied here do not half-close.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is None:
                    continue
                self._writers.discard(writer)
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
