"""Signed callbacks (webhooks, receipts): each POSTed to the receiver, retried until it is taken.

A delivery is taken when the receiver answers 2xx; anything else (or no answer) is retried with
doubling pauses, up to ``max_attempts``. Every attempt is signed afresh (:mod:`.signing`). With
no receiver configured, a callback stays in the sender's log only. A sandbox's sender subclasses
:class:`CallbackSender` and keeps one :class:`Tally` per callback, which its log shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from adapters.sandbox._control.signing import signature_headers

__all__ = ["CallbackSender", "Tally"]

Entry = TypeVar("Entry", bound="Tally")


@dataclass(slots=True, kw_only=True)
class Tally:
    """What became of one callback's deliveries."""

    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    delivered: int = 0  # times the receiver took it (2 when sent twice on purpose)
    given_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The callback as its log shows it."""
        return self.tally()

    def tally(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "statuses": list(self.statuses),
            "delivered": self.delivered,
            "given_up": self.given_up,
        }


class CallbackSender(Generic[Entry]):
    """Delivery tasks that live with the app, the signed POST each one makes, and their log."""

    def __init__(
        self,
        *,
        secret: str,
        url: str | None,
        max_attempts: int = 8,
        first_pause: float = 0.1,
        max_pause: float = 2.0,
    ) -> None:
        self.secret = secret
        self.url = url
        self.max_attempts = max_attempts
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.log: dict[str, Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), trust_env=False)

    async def aclose(self) -> None:
        await self._cancel(*self._tasks)
        if self._http is not None:
            await self._http.aclose()

    @property
    def pending(self) -> int:
        """Deliveries not yet taken nor given up."""
        return len(self._tasks)

    def view(self, entries: str) -> dict[str, Any]:
        """The receiver URL, callbacks in flight, and each callback's deliveries (``entries``)."""
        return {
            "url": self.url,
            "pending": self.pending,
            entries: [entry.as_dict() for entry in self.log.values()],
        }

    def redeliver(self, callback_id: str) -> bool:
        """Send a logged callback again (a provider's "resend" button); ``False``: no such one."""
        raise NotImplementedError

    @staticmethod
    async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
        for task in list(tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _dispatch(self, entry: Entry, body: bytes, *, delay: float, name: str) -> None:
        """Deliver ``body`` after ``delay`` seconds, in a task of its own."""
        task = asyncio.create_task(self._deliver(entry, body, delay), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, entry: Tally, body: bytes, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self._post(entry, body)

    async def _post(self, entry: Tally, body: bytes) -> None:
        """Deliver ``body`` until the receiver takes it or the attempts run out."""
        pause = self.first_pause
        for _attempt in range(self.max_attempts):
            if self.url is None or self._http is None:
                return  # no receiver configured: the callback stays in the log only
            entry.attempts += 1
            try:
                answer = await self._http.post(
                    self.url,
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        **signature_headers(self.secret, int(time.time()), body),
                    },
                )
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            entry.statuses.append(status)
            if 200 <= status < 300:
                entry.delivered += 1
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.max_pause)
        entry.given_up = True
