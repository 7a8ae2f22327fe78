"""The live adapters of one hub process, built from the configuration's ``adapters`` section.

For each configured adapter: its plugin (:mod:`hub.adapters.plugins`), its contract, its secret
from the settings, and its client with the resilience path (:mod:`hub.adapters.transports`).
A publish re-applies the section: adapters whose configuration did not change keep their client,
breaker and quota; a changed or removed one is closed after its last call in flight. An adapter
that cannot be built (plugin missing, secret unset, contract unreadable) is kept as unavailable
with the reason: its calls get ``503 adapter_unavailable`` and ``/readyz`` names it, while every
other adapter works.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import structlog

from adapters.base import Adapter, AdapterConfig, Operation
from hub.adapters.credentials import resolve
from hub.adapters.plugins import load_plugin
from hub.adapters.transports.contract import AdapterContract
from hub.adapters.transports.observe import CallObserver
from hub.adapters.transports.stack import ResilientClient, build_client
from hub.errors import AdapterUnavailable, HubError
from hub.ratelimit.base import RateLimitStore
from hub.upstream.breaker import BreakerState

__all__ = ["AdapterRegistry", "LiveAdapter"]

log = structlog.get_logger("hub.adapters")

_CLOSE_GRACE_SECONDS = 30.0


@dataclass(slots=True, eq=False)
class LiveAdapter:
    """One configured adapter: built (``adapter`` and ``client``), or unavailable (``error``)."""

    config: AdapterConfig
    adapter: Adapter | None = None
    client: ResilientClient | None = None
    error: str = ""

    @property
    def operations(self) -> Mapping[str, Operation[Any, Any]]:
        return self.adapter.operations if self.adapter is not None else {}

    def require(self) -> Adapter:
        """The adapter, or 503 ``adapter_unavailable`` saying why there is none."""
        if self.adapter is None:
            # The reason (a missing secret, say) is for operators: logs and /readyz.
            raise AdapterUnavailable(f"{self.config.id} is unavailable")
        return self.adapter

    @property
    def breaker_state(self) -> BreakerState | None:
        return self.client.breaker.state if self.client is not None else None

    async def aclose(self) -> None:
        if self.adapter is not None:
            with contextlib.suppress(Exception):
                await self.adapter.aclose()
        if self.client is not None:
            await self.client.aclose()


class AdapterRegistry:
    """Builds, keeps and closes the adapters of the active configuration."""

    def __init__(
        self,
        *,
        secrets: Mapping[str, str],
        contracts_dir: Path,
        observer: CallObserver,
        limiter: Callable[[], RateLimitStore | None],
        transport: Callable[[AdapterConfig], httpx.AsyncBaseTransport | None] | None = None,
    ) -> None:
        self._secrets = secrets
        self._contracts_dir = contracts_dir
        self._observer = observer
        self._limiter = limiter
        self._transport = transport
        self._live: dict[str, LiveAdapter] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def adapters(self) -> Mapping[str, LiveAdapter]:
        return self._live

    def get(self, name: str) -> LiveAdapter:
        live = self._live.get(name)
        if live is None:
            raise AdapterUnavailable(f"no adapter {name!r} is configured")
        return live

    async def apply(self, configs: Sequence[AdapterConfig]) -> None:
        """Make the live adapters those of ``configs``, keeping the unchanged ones."""
        fresh: dict[str, LiveAdapter] = {}
        for config in configs:
            current = self._live.get(config.id)
            if current is not None and current.config == config and not current.error:
                fresh[config.id] = current
            else:
                fresh[config.id] = self._build(config)
        old, self._live = self._live, fresh
        for name, live in old.items():
            if fresh.get(name) is not live:
                task = asyncio.create_task(
                    self._close_later(live), name=f"hub-adapter-close-{name}"
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _build(self, config: AdapterConfig) -> LiveAdapter:
        try:
            factory = load_plugin(config.plugin)
            contract = AdapterContract.load(
                self._contracts_dir / config.contract, label=f"contracts/{config.contract}"
            )
            missing = sorted(set(factory.operations) - set(contract.operations))
            if missing:
                raise AdapterUnavailable(
                    f"the contract contracts/{config.contract} lacks {', '.join(missing)}"
                )
            resolved = config
            if config.credentials is not None:
                resolved = replace(
                    config,
                    credentials=resolve(config.credentials, self._secrets, adapter=config.id),
                )
            client = build_client(
                resolved,
                contract=contract,
                observer=self._observer,
                limiter=self._limiter(),
                transport=self._transport(config) if self._transport else None,
            )
            adapter = factory(resolved, client.http)
        except HubError as exc:
            log.error("adapter.unavailable", adapter=config.id, reason=exc.detail)
            return LiveAdapter(config=config, error=exc.detail)
        log.info("adapter.ready", adapter=config.id, plugin=config.plugin, base_url=config.base_url)
        # The stored config keeps the secret's name only; the value lives in the client's auth.
        return LiveAdapter(config=config, adapter=adapter, client=client)

    async def _close_later(self, live: LiveAdapter) -> None:
        if live.client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_GRACE_SECONDS):
                    await live.client.bulkhead.wait_idle()
        await live.aclose()

    async def readiness(self) -> str:
        """``''`` when every adapter is built; else which are not (raises nothing)."""
        broken = [f"{name}: {live.error}" for name, live in self._live.items() if live.error]
        return "; ".join(broken)

    async def aclose(self) -> None:
        for live in self._live.values():
            await live.aclose()
        self._live = {}
        for task in list(self._closing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
