"""What the notify and payment test supports share: sandbox processes, and a hub in this loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from hub.asgi import HubApp
from hub.db.migrate import migrate
from hub.settings import Settings
from tests.hubproc import ROOT

__all__ = ["SandboxControl", "serve_hub", "start_sandbox", "stop_processes"]


@dataclass
class SandboxControl:
    """One running sandbox and the ``/_sandbox`` endpoints every sandbox has."""

    url: str
    process: subprocess.Popen[bytes]

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10, trust_env=False) as client:
            answer = await client.request(method, path, json=body)
            answer.raise_for_status()
            return answer.json()

    async def faults(self, **faults: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/_sandbox/faults", faults)
        return result

    async def reset(self) -> None:
        await self._call("POST", "/_sandbox/reset", {})

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/_sandbox/stats")
        return result


def start_sandbox(module: str, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m module args`` from the repository, its output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def stop_processes(processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate them all, then wait for each (killed after 10 s)."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@asynccontextmanager
async def serve_hub(settings: Settings, port: int) -> AsyncIterator[HubApp]:
    """Serve a hub on ``port`` (uvicorn, in this loop) until the block ends; migrated first."""
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the hub stopped before it started")
            await asyncio.sleep(0.02)
        yield app
    finally:
        server.should_exit = True
        await task
