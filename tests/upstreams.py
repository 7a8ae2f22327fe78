"""A real upstream HTTP server on a loopback port, with behaviours the proxy tests need.

It runs aiohttp in a thread of its own, so it outlives any one test's event loop and can serve a
hub process started by a module-scoped fixture.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import threading
from collections import Counter, deque
from typing import Any

from aiohttp import web

from tests.fixtures_services import free_port

__all__ = ["UpstreamServer", "sent"]

_CHUNK = 64 * 1024


class UpstreamServer:
    """An upstream with endpoints for echo, status codes, delays, streams, uploads and faults."""

    def __init__(self, name: str = "up", port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hits: Counter[str] = Counter()
        self.fail_remaining = 0  # answer 503 to this many /flaky requests first
        self.healthy = True
        self.in_flight = 0
        self.max_in_flight = 0
        # (method, raw path and query) of the latest requests, oldest first
        self.seen: deque[tuple[str, str]] = deque(maxlen=1000)
        self.bytes_sent = 0  # body bytes written by /bytes, to see when a reader stopped pulling
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> UpstreamServer:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused) but keep the thread for a restart."""
        self._call(self._stop())

    def restart(self) -> None:
        self._call(self._start())

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def release_hanging(self) -> None:
        self._loop.call_soon_threadsafe(self._release.set)

    def reset_hanging(self) -> None:
        """Make /hang hold requests again after :meth:`release_hanging`."""

        async def reset() -> None:
            self._release = asyncio.Event()

        self._call(reset())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=15)

    async def _start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            self._release.set()
            await self._runner.cleanup()
            self._runner = None
            self._release = asyncio.Event()

    # behaviours ------------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        first = request.path.strip("/").split("/", 1)[0]
        self.hits[first] += 1
        self.seen.append((request.method, request.raw_path))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            handler = getattr(self, f"_h_{first.replace('-', '_')}", self._h_echo)
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            self.in_flight -= 1

    async def _h_echo(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        body = {
            "server": self.name,
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query_string,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body_bytes": size,
            "body_sha256": digest.hexdigest(),
        }
        return web.json_response(body)

    async def _h_healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": self.healthy}, status=200 if self.healthy else 503)

    async def _h_status(self, request: web.Request) -> web.Response:
        code = int(request.path.rstrip("/").rsplit("/", 1)[-1])
        if code in (204, 304):
            return web.Response(status=code)
        return web.json_response({"status": code, "server": self.name}, status=code)

    async def _h_flaky(self, request: web.Request) -> web.Response:
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            return web.json_response({"flaky": True}, status=503)
        return web.json_response({"server": self.name, "ok": True})

    async def _h_slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("ms", "100")) / 1000)
        return web.json_response({"server": self.name, "slow": True})

    async def _h_hang(self, request: web.Request) -> web.Response:
        await self._release.wait()
        return web.json_response({"released": True})

    async def _h_bytes(self, request: web.Request) -> web.StreamResponse:
        """``/bytes?n=N``: N bytes streamed, with Content-Length (or chunked when chunked=1)."""
        total = int(request.query.get("n", "1024"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("chunked") != "1":
            response.content_length = total
        await response.prepare(request)
        block = bytes(range(256)) * (_CHUNK // 256)
        sent = 0
        while sent < total:
            piece = block[: min(_CHUNK, total - sent)]
            await response.write(piece)
            sent += len(piece)
            self.bytes_sent += len(piece)
        await response.write_eof()
        return response

    async def _h_die_mid_body(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = 1_000_000
        await response.prepare(request)
        await response.write(b"x" * 1000)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _h_headers(self, request: web.Request) -> web.Response:
        response = web.Response(
            body=json.dumps({"server": self.name}).encode(), content_type="application/json"
        )
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/")
        response.headers.add("X-Multi", "one")
        response.headers.add("X-Multi", "two")
        response.headers.add("Connection", "X-Secret-Hop")
        response.headers.add("X-Secret-Hop", "must-not-pass")
        response.headers.add("Keep-Alive", "timeout=5")
        return response

    async def _h_hop_headers(self, request: web.Request) -> web.Response:
        """Every hop-by-hop header a response can carry, beside an end-to-end one."""
        response = web.Response(body=b"{}", content_type="application/json")
        response.headers.add("Connection", "X-Secret-Hop, X-Other-Hop")
        response.headers.add("X-Secret-Hop", "must-not-pass")
        response.headers.add("X-Other-Hop", "must-not-pass")
        response.headers.add("Keep-Alive", "timeout=5")
        response.headers.add("Proxy-Authenticate", 'Basic realm="upstream"')
        response.headers.add("Proxy-Connection", "keep-alive")
        response.headers.add("Trailer", "X-Checksum")
        response.headers.add("Upgrade", "h2c")
        response.headers.add("X-End-To-End", "kept")
        return response

    async def _h_redirect(self, request: web.Request) -> web.Response:
        """``/redirect``: 301 to /echo/redirected (a proxy passes it on, never follows it)."""
        return web.Response(status=301, headers={"Location": "/echo/redirected"})

    async def _h_gzip(self, request: web.Request) -> web.Response:
        """``/gzip``: a gzip-encoded JSON body (a proxy passes it on still encoded)."""
        body = gzip.compress(json.dumps({"server": self.name, "gzip": True}).encode(), mtime=0)
        return web.Response(
            body=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    async def _h_upstream_id(self, request: web.Request) -> web.Response:
        """``/upstream-id``: headers the hub owns on its answers, set by the upstream."""
        return web.json_response(
            {"server": self.name},
            headers={"X-Request-ID": "chosen-by-upstream", "Server": "upstream/1.0"},
        )


def sent(echo: dict[str, Any], name: str) -> list[str]:
    """The values of header ``name`` an ``/echo`` answer says the upstream received."""
    return [value for key, value in echo["headers"] if key.lower() == name]
