"""The registrar audit log's chain, on SQLite and PostgreSQL.

Appends from several appenders (replicas) form one chain; the database refuses changes to an
entry; and whatever a privileged user does behind the triggers' back (an UPDATE with the
triggers off, a DELETE, two entries swapped) ``hub audit verify`` finds, naming the entry.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from hub.audit.chain import GENESIS, AuditDraft
from hub.audit.log import AuditLog
from hub.audit.verify import verify_chain
from hub.cli.main import app as cli_app
from hub.db.audit_store import AuditStore
from hub.db.engine import create_engine
from hub.errors import HubError

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER registrar_audit_no_update BEFORE UPDATE ON registrar_audit "
    "BEGIN SELECT RAISE(ABORT, 'registrar_audit is append-only'); END",
    "CREATE TRIGGER registrar_audit_no_delete BEFORE DELETE ON registrar_audit "
    "BEGIN SELECT RAISE(ABORT, 'registrar_audit is append-only'); END",
)


def draft(n: int, person: str = "1000000001") -> AuditDraft:
    return AuditDraft(
        kind="read",
        at=datetime(2026, 11, 20, 9, 0, n % 60, n, tzinfo=UTC),
        actor=f"cli_{n}",
        actor_kind="client",
        client_id=f"cli_{n}",
        adapter="civil-registry",
        operation="get_person",
        record_kind="person",
        record_ref=person,
        person_ref=person,
        purpose="visa-eligibility",
        fields=("national_id", "given_name"),
        outcome="found",
        request_id=f"req{n:04d}",
        config_version=3,
    )


async def _tamper(engine: AsyncEngine, statement: str) -> None:
    """Run ``statement`` as a privileged user would: with the append-only triggers off."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE registrar_audit DISABLE TRIGGER USER"))
            for part in statement.split(";"):
                await conn.execute(text(part))
            await conn.execute(text("ALTER TABLE registrar_audit ENABLE TRIGGER USER"))
        else:
            await conn.execute(text("DROP TRIGGER registrar_audit_no_update"))
            await conn.execute(text("DROP TRIGGER registrar_audit_no_delete"))
            for part in statement.split(";"):
                await conn.execute(text(part))
            for trigger in _SQLITE_TRIGGERS:
                await conn.execute(text(trigger))


async def test_entries_chain_and_verify(db_engine: AsyncEngine) -> None:
    store = AuditStore(db_engine)
    first = await store.append([draft(1), draft(2)])
    more = await store.append([draft(3)])
    assert [e.seq for e in (*first, *more)] == [1, 2, 3]
    assert first[0].prev_hash == GENESIS
    assert first[1].prev_hash == first[0].hash
    assert more[0].prev_hash == first[1].hash
    assert (await store.head()).seq == 3
    report = await verify_chain(store)
    assert report.ok, report.findings
    assert report.entries == 3


async def test_the_database_refuses_changes(db_engine: AsyncEngine) -> None:
    store = AuditStore(db_engine)
    await store.append([draft(1)])
    for statement in (
        "UPDATE registrar_audit SET purpose = 'other' WHERE seq = 1",
        "DELETE FROM registrar_audit WHERE seq = 1",
    ):
        with pytest.raises(Exception, match="append-only"):
            async with db_engine.begin() as conn:
                await conn.execute(text(statement))
    assert (await verify_chain(store)).ok


async def test_concurrent_appenders_keep_one_chain(
    database_url: str, db_engine: AsyncEngine
) -> None:
    # Two "replicas": their own engines and appenders, appending at the same time.
    other = create_engine(database_url)
    logs = [AuditLog(AuditStore(db_engine), timeout=30), AuditLog(AuditStore(other), timeout=30)]
    try:
        entries = await asyncio.gather(*(logs[n % 2].append(draft(n)) for n in range(120)))
    finally:
        for log in logs:
            await log.aclose()
        await other.dispose()
    assert sorted(e.seq for e in entries) == list(range(1, 121))
    report = await verify_chain(AuditStore(db_engine))
    assert report.ok, report.findings
    assert report.entries == 120


@pytest.mark.parametrize(
    ("statement", "where", "words"),
    [
        ("UPDATE registrar_audit SET purpose = 'marketing' WHERE seq = 3", 3, "altered"),
        ("UPDATE registrar_audit SET fields = '[]' WHERE seq = 2", 2, "altered"),
        ("DELETE FROM registrar_audit WHERE seq = 3", 4, "missing"),
        ("DELETE FROM registrar_audit WHERE seq = 5", 5, "removed"),
        # Two entries swapped: each now sits where the other was.
        (
            "UPDATE registrar_audit SET seq = 1000 WHERE seq = 2;"
            "UPDATE registrar_audit SET seq = 2 WHERE seq = 3;"
            "UPDATE registrar_audit SET seq = 3 WHERE seq = 1000",
            2,
            "altered",
        ),
    ],
    ids=["purpose", "fields", "deleted", "tail", "reordered"],
)
async def test_tampering_is_found_with_the_entry(
    db_engine: AsyncEngine, statement: str, where: int, words: str
) -> None:
    store = AuditStore(db_engine)
    await store.append([draft(n) for n in range(1, 6)])
    await _tamper(db_engine, statement)
    report = await verify_chain(store)
    assert not report.ok
    assert any(f.seq == where and words in f.problem for f in report.findings), report.findings


async def test_hub_audit_verify_exits_1_naming_the_entry(
    database_url: str, db_engine: AsyncEngine, tmp_path: Path
) -> None:
    store = AuditStore(db_engine)
    await store.append([draft(n) for n in range(1, 4)])
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    ok = await asyncio.to_thread(runner.invoke, cli_app, ["audit", "verify"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "ok: 3 entries" in ok.output
    await _tamper(db_engine, "UPDATE registrar_audit SET actor = 'someone-else' WHERE seq = 2")
    bad = await asyncio.to_thread(runner.invoke, cli_app, ["audit", "verify"], env=env)
    assert bad.exit_code == 1
    assert "entry 2: its content does not match its hash (altered)" in bad.output
    assert "1 finding(s) in 3 entries" in bad.output  # entry 3 still links to 2's stored hash


async def test_an_unwritable_store_fails_closed(db_engine: AsyncEngine) -> None:
    class Broken(AuditStore):
        async def append(self, drafts):  # type: ignore[no-untyped-def]
            raise HubError("database unavailable: connection refused")

    log = AuditLog(Broken(db_engine), timeout=2)
    try:
        with pytest.raises(HubError) as caught:
            await log.append(draft(1))
        assert caught.value.code == "audit_unavailable"
    finally:
        await log.aclose()
