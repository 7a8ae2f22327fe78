"""Shadow mode on one replica: decide every request with the draft too, log the differences.

While a run is on, :meth:`ShadowRunner.observe` (called by the gateway once the request is
answered) decides the request with the active configuration and with the run's draft
(:func:`hub.config.replay.decide`: route, auth requirements, permission, limit spec). Only the
active decision was enforced; when the two differ, a decision-log row (pseudonymised path and
principal, both rule ids) goes to a bounded queue. A writer task empties the queue into the
database in batches every half second, one transaction each, together with how many requests
this replica compared: no database write per request.

When the queue is full (the database is slow or down) a new difference is dropped, counted in
``hub_shadow_dropped_total`` and in the run's ``dropped`` column, and the request itself is
served as ever: shadow mode never slows or fails traffic. A batch the database refused stays
queued for the next try.

Replicas learn of a start or stop through the config notifier's ``shadow`` signal within a
second, and from the database poll as a safety net (:meth:`ShadowRunner.refresh` re-reads the
run that is on); a run ends on every replica by itself when its ``ends_at`` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from hub.config.loader import document_from_raw
from hub.config.replay import DecisionSnapshot, Outcome, Replayable, changes, decide, flip
from hub.config.snapshot import Snapshot
from hub.db.shadow_store import ShadowStore, StoredRun
from hub.errors import HubError
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import Observed, observed_credential, pseudonymised_path

__all__ = ["SIGNAL", "ShadowRunner", "ShadowState"]

log = structlog.get_logger("hub.shadow")

#: The notifier signal that makes every replica re-read the run that is on.
SIGNAL = "shadow"
_FLUSH_SECONDS = 0.5
_BATCH = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowState:
    """The run this replica decides with: its draft compiled, and when it ends (epoch)."""

    run_id: int
    draft_id: int
    draft_revision: int
    ends_at: float
    decisions: DecisionSnapshot


def _of_run(run_id: int) -> Callable[[tuple[int, dict[str, Any]]], bool]:
    return lambda item: item[0] == run_id


class ShadowRunner:
    """This replica's part of a shadow run."""

    def __init__(
        self,
        store: ShadowStore | None = None,
        *,
        pseudonymiser: Pseudonymiser,
        queue_size: int,
        contracts_dir: Path | None = None,
        on_state: Callable[[bool], None] | None = None,
        on_flushed: Callable[[int, dict[str, int]], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._store = store
        self._pseudonymise = pseudonymiser
        self._contracts_dir = contracts_dir
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()
        self._queue_size = queue_size
        self._counts: dict[int, list[int]] = {}  # run id -> [compared, dropped], not yet written
        self._on_state = on_state
        self._on_flushed = on_flushed
        self._on_dropped = on_dropped
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._active: tuple[Snapshot, DecisionSnapshot] | None = None
        self.state: ShadowState | None = None

    def attach(self, store: ShadowStore) -> None:
        """The database's runs, once the runtime has an engine."""
        self._store = store

    def _runs(self) -> ShadowStore:
        if self._store is None:
            raise HubError("shadow mode has no database yet")
        return self._store

    @property
    def on(self) -> bool:
        """Whether a run is on here: the gateway's one check per request."""
        return self.state is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write_forever(), name="hub-shadow-writer")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._store is not None:
            with contextlib.suppress(HubError):
                await self.flush()

    async def refresh(self) -> None:
        """Follow the database: take up the run that is on, or drop the one that is not."""
        async with self._lock:
            running = await self._runs().running()
            current = self.state
            if running is None:
                if current is not None:
                    log.info("shadow.off", run=current.run_id)
                self._set(None)
                return
            if current is not None and current.run_id == running.id:
                return
            try:
                state = self._compile(running)
            except HubError as exc:
                log.error("shadow.compile_failed", run=running.id, error=str(exc))
                self._set(None)
                return
            log.info("shadow.on", run=running.id, draft=running.draft_id, ends_at=state.ends_at)
            self._set(state)

    def _set(self, state: ShadowState | None) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(state is not None)

    def _compile(self, run: StoredRun) -> ShadowState:
        document = document_from_raw(run.document, contracts_dir=self._contracts_dir)
        label = f"draft {run.draft_id} revision {run.draft_revision}"
        return ShadowState(
            run_id=run.id,
            draft_id=run.draft_id,
            draft_revision=run.draft_revision,
            ends_at=run.ends_at.timestamp(),
            decisions=DecisionSnapshot.compile(document, label=label),
        )

    def _active_decisions(self, snapshot: Snapshot) -> DecisionSnapshot:
        cached = self._active
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        decisions = DecisionSnapshot.of(
            label=f"version {snapshot.version}",
            table=snapshot.table,
            policies=snapshot.policies,
            raw=snapshot.document.raw,
        )
        self._active = (snapshot, decisions)
        return decisions

    def observe(self, seen: Observed) -> None:
        """Decide ``seen`` both ways and queue the difference, if any (never raises)."""
        state = self.state
        if state is None:
            return
        if seen.at >= state.ends_at:
            log.info("shadow.expired", run=state.run_id)
            self._set(None)
            return
        try:
            self._observe(state, seen)
        except Exception:
            # A bug of ours must not reach the request that was already answered.
            log.exception("shadow.observe_failed", run=state.run_id)

    def _observe(self, state: ShadowState, seen: Observed) -> None:
        credential, who, failure = observed_credential(seen)
        request = Replayable(
            method=seen.method,
            host=seen.host,
            path=seen.path,
            headers=seen.headers,
            query_string=seen.query,
            client_ip=seen.client_ip,
            now=seen.at,
            principal=who,
            credential=credential,
            failure=failure,
        )
        active = decide(self._active_decisions(seen.snapshot), request)
        shadow = decide(state.decisions, request)
        counts = self._counts.get(state.run_id)
        if counts is None:
            counts = self._counts[state.run_id] = [0, 0]
        counts[0] += 1
        found = changes(active, shadow)
        if not found:
            return
        if len(self._queue) >= self._queue_size:
            counts[1] += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        self._queue.append((state.run_id, self._row(state, seen, active, shadow, found)))

    def _row(
        self,
        state: ShadowState,
        seen: Observed,
        active: Outcome,
        shadow: Outcome,
        found: tuple[str, ...],
    ) -> dict[str, Any]:
        p = self._pseudonymise
        who = seen.principal
        principal: dict[str, Any] = {"kind": who.kind if who is not None else "anonymous"}
        if who is not None and who.kind != "anonymous":
            principal.update(
                subject=p(who.subject),
                client_id=who.client_id,
                scopes=sorted(who.scopes),
                acr=who.acr,
            )
        return {
            "request_id": seen.request_id[:64],
            "at": datetime.fromtimestamp(seen.at, UTC),
            "method": seen.method[:16],
            "path": pseudonymised_path(seen.path, seen.match, p),
            "route_active": active.route,
            "route_shadow": shadow.route,
            "auth_active": active.auth,
            "auth_shadow": shadow.auth,
            "decision_active": active.decision,
            "decision_shadow": shadow.decision,
            "permission_active": active.permission,
            "permission_shadow": shadow.permission,
            "rule_active": active.rule,
            "rule_shadow": shadow.rule,
            "limit_active": active.limit,
            "limit_shadow": shadow.limit,
            "route_changed": "route" in found,
            "auth_changed": "auth" in found,
            "decision_changed": "decision" in found,
            "limit_changed": "limit" in found,
            "flip": flip(active, shadow),
            "status": seen.status,
            "config_version": seen.snapshot.version,
            "draft_id": state.draft_id,
            "draft_revision": state.draft_revision,
            "principal": principal,
        }

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            try:
                await self.flush()
            except HubError as exc:
                log.warning("shadow.write_failed", error=str(exc), queued=len(self._queue))
            except Exception:
                log.exception("shadow.write_error")

    async def flush(self) -> int:
        """Write what is queued and counted, one transaction per run; rows written."""
        written = 0
        for _ in range(16):  # bounded: traffic keeps adding while a batch is written
            if not self._queue and not any(c != [0, 0] for c in self._counts.values()):
                break
            batch = list(itertools.islice(self._queue, _BATCH))
            run_id = batch[0][0] if batch else next(iter(self._counts))
            rows = list(itertools.takewhile(_of_run(run_id), batch))
            counts = self._counts.pop(run_id, [0, 0])
            try:
                await self._runs().record(
                    run_id, [row for _, row in rows], compared=counts[0], dropped=counts[1]
                )
            except HubError:
                # Kept for the next try: the counts go back, the rows never left the queue.
                kept = self._counts.setdefault(run_id, [0, 0])
                kept[0] += counts[0]
                kept[1] += counts[1]
                raise
            for _ in rows:
                self._queue.popleft()
            written += len(rows)
            if self._on_flushed is not None:
                kinds = {
                    kind: sum(1 for _, row in rows if row[f"{kind}_changed"])
                    for kind in ("route", "auth", "decision", "limit")
                }
                self._on_flushed(counts[0], kinds)
        return written
