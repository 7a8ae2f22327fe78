"""Shadow runs in the database, and one replica's runner: batches, overflow, failures, expiry.

The store runs on SQLite and PostgreSQL. The runner decides observed requests with a real
compiled draft and writes through the real store; a database it cannot reach is an SQLite file
in a folder that does not exist.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config.loader import document_from_raw
from hub.config.replay import DecisionSnapshot
from hub.config.shadow import ShadowRunner, ShadowState
from hub.config.snapshot import compile_snapshot
from hub.db.engine import create_engine
from hub.db.shadow_store import ShadowStore
from hub.errors import HubError, NotFound, ShadowRunning
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import Observed
from tests.test_dryrun_replay import ACTIVE, person

DRAFT = copy.deepcopy(ACTIVE)
DRAFT["routes"][0]["rate_limit"] = {"rate": 99, "period": 1}  # every records request differs


async def _run(store: ShadowStore, seconds: int = 60, draft_id: int = 1) -> int:
    run = await store.start(
        draft_id=draft_id,
        draft_revision=2,
        document=DRAFT,
        base_version=1,
        comment="why",
        author="person:p1",
        seconds=seconds,
    )
    return run.id


async def test_one_run_at_a_time_stop_and_states(db_engine: AsyncEngine) -> None:
    store = ShadowStore(db_engine)
    assert await store.running() is None
    assert await store.latest() is None
    run_id = await _run(store)
    run = await store.get(run_id)
    assert (run.state, run.draft_id, run.draft_revision, run.started_by) == (
        "running",
        1,
        2,
        "person:p1",
    )
    with pytest.raises(ShadowRunning) as refused:
        await _run(store, draft_id=7)
    assert refused.value.extra == {"run": run_id, "draft": 1}
    stopped = await store.stop(author="admin-token")
    assert (stopped.state, stopped.stopped_by) == ("stopped", "admin-token")
    with pytest.raises(NotFound):
        await store.stop(author="admin-token")
    short = await _run(store, seconds=1)
    time.sleep(1.1)
    assert (await store.get(short)).state == "expired"
    assert await store.running() is None
    assert (await store.latest()).id == short  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await store.get(9999)


def _seen(path: str, *, at: float | None = None) -> Observed:
    snapshot = compile_snapshot(1, document_from_raw(ACTIVE), {"svc": None})  # type: ignore[dict-item]
    match = snapshot.table.match("GET", "", path, [])
    return Observed(
        at or time.time(), "rid", snapshot, "GET", "", path, [], b"", "10.1.2.3", match,
        person(), None, None, 200,
    )  # fmt: skip


def _runner(
    store: ShadowStore | None, run_id: int, *, queue: int = 100, **hooks: Any
) -> ShadowRunner:
    runner = ShadowRunner(store, pseudonymiser=Pseudonymiser(b"k" * 32), queue_size=queue, **hooks)
    runner.state = ShadowState(
        run_id=run_id,
        draft_id=1,
        draft_revision=2,
        ends_at=time.time() + 60,
        decisions=DecisionSnapshot.compile(document_from_raw(DRAFT), label="draft"),
    )
    return runner


async def test_differences_are_written_in_batches_and_an_overflow_is_counted(
    db_engine: AsyncEngine,
) -> None:
    store = ShadowStore(db_engine)
    run_id = await _run(store)
    dropped: list[int] = []
    flushed: list[tuple[int, dict[str, int]]] = []
    runner = _runner(
        store,
        run_id,
        queue=2,
        on_dropped=dropped.append,
        on_flushed=lambda n, k: flushed.append((n, k)),
    )
    for _ in range(3):
        runner.observe(_seen("/api/est/e-1/records"))  # the limit differs
    runner.observe(_seen("/api/open/x"))  # the same both ways
    assert dropped == [1]
    assert await runner.flush() == 2
    run = await store.get(run_id)
    assert (run.compared, run.differences, run.dropped) == (4, 2, 1)
    assert flushed == [(4, {"route": 0, "auth": 0, "decision": 0, "limit": 2})]
    assert await store.counts(run_id) == {
        "total": 2, "route": 0, "auth": 0, "decision": 0, "limit": 2,
        "allow_to_deny": 0, "deny_to_allow": 0,
    }  # fmt: skip
    rows = await store.decisions(run_id, kind="limit")
    assert [(r.limit_active, r.limit_shadow) for r in rows] == [
        ("10/1s burst 0 per ip", "99/1s burst 0 per ip")
    ] * 2
    assert rows[0].path.startswith("/api/est/~")
    assert rows[0].principal["subject"].startswith("~")
    assert await store.decisions(run_id, kind="route") == []
    assert [r.id for r in await store.decisions(run_id, after=rows[0].id)] == [rows[1].id]
    assert await runner.flush() == 0  # nothing left, nothing written twice


async def test_a_batch_the_database_refuses_stays_queued(
    db_engine: AsyncEngine, tmp_path: Path
) -> None:
    good = ShadowStore(db_engine)
    run_id = await _run(good)
    broken_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'hub.db'}")
    try:
        runner = _runner(ShadowStore(broken_engine), run_id)
        runner.observe(_seen("/api/est/e-1/records"))
        with pytest.raises(HubError):
            await runner.flush()
        runner.attach(good)
        assert await runner.flush() == 1
    finally:
        await broken_engine.dispose()
    run = await good.get(run_id)
    assert (run.compared, run.differences) == (1, 1)


def test_a_run_ends_by_itself_at_its_end() -> None:
    states: list[bool] = []
    runner = _runner(None, 1, on_state=states.append)
    assert runner.on
    runner.observe(_seen("/api/est/e-1/records", at=time.time() + 61))
    assert not runner.on
    assert states == [False]
    runner.observe(_seen("/api/est/e-1/records"))  # off: nothing decided, nothing queued
    assert not runner._queue
