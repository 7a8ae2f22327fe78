"""Appending to the audit log before data is returned: group commit, fail closed.

Reads of many concurrent requests are chained and committed together by one writer task per
process (one transaction per batch instead of one per read, each waiting only for its own
batch). A caller's :meth:`AuditLog.append` returns only once its entry is committed. If the
store cannot be written (database down, locked, too slow) the caller gets
:class:`~hub.errors.AuditUnavailable` after at most ``timeout`` seconds, and must refuse the
read: nothing is served unlogged. (An entry whose batch was already on its way when its caller
gave up records a read that was refused; the log never misses one that was served.)
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from hub.audit.chain import AuditDraft
from hub.db.audit_store import AuditEntry, AuditStore
from hub.errors import AuditUnavailable, HubError

__all__ = ["AuditLog"]

log = structlog.get_logger("hub.audit")

_BATCH = 256


class AuditLog:
    """The process's appender to the registrar audit log."""

    def __init__(self, store: AuditStore, *, timeout: float = 2.0) -> None:
        self.store = store
        self._timeout = timeout
        self._pending: list[tuple[AuditDraft, asyncio.Future[AuditEntry]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def append(self, draft: AuditDraft) -> AuditEntry:
        """Chain one entry and wait for its commit; AuditUnavailable if it cannot be written."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="hub-audit-writer")
        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        self._pending.append((draft, future))
        self._wake.set()
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            future.cancel()  # not written unless its batch is already on its way
            raise AuditUnavailable(
                f"the audit log could not be written within {self._timeout:g}s"
            ) from None

    async def release(self, draft: AuditDraft) -> AuditEntry:
        """Append a release unless the restriction already has one (rare: no batching)."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self.store.append_release(draft)
        except TimeoutError:
            raise AuditUnavailable("the audit log could not be written in time") from None
        except HubError as exc:
            raise AuditUnavailable(f"the audit log cannot be written: {exc.detail}") from exc

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:_BATCH], self._pending[_BATCH:]
                live = [(draft, future) for draft, future in batch if not future.done()]
                if not live:
                    continue
                try:
                    entries = await self.store.append([draft for draft, _ in live])
                except HubError as exc:
                    log.error("audit.append_failed", entries=len(live), error=exc.detail)
                    failure = AuditUnavailable(f"the audit log cannot be written: {exc.detail}")
                    for _, future in live:
                        if not future.done():
                            future.set_exception(failure)
                    continue
                except Exception as exc:  # a bug: fail every waiter closed, keep the writer alive
                    log.exception("audit.append_crashed")
                    for _, future in live:
                        if not future.done():
                            future.set_exception(AuditUnavailable(f"audit write failed: {exc}"))
                    continue
                # The head's hash in the logs too: a witness outside the database.
                log.info(
                    "audit.appended",
                    first=entries[0].seq,
                    last=entries[-1].seq,
                    hash=entries[-1].hash,
                )
                for (_, future), entry in zip(live, entries, strict=True):
                    if not future.done():
                        future.set_result(entry)

    async def aclose(self) -> None:
        """Stop the writer (entries still pending fail closed)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        for _, future in self._pending:
            if not future.done():
                future.set_exception(AuditUnavailable("the hub is shutting down"))
        self._pending.clear()
