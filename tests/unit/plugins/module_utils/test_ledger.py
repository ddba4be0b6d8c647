"""The SQLite ledger: permissions, schema, atomicity under kill, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import LedgerError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SCHEMA_VERSION, SQLiteLedger
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, apply_pool


def dump(path: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def foreign_sqlite(tmp_path):
    """An SQLite file with a table of its own and no ledger schema."""
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    return other


def make_ledger(tmp_path, addresses=("198.51.100.0/24",)) -> SQLiteLedger:
    ledger = SQLiteLedger(str(tmp_path / "state" / "ledger.sqlite3"))
    with ledger.transaction() as txn:
        apply_pool(txn, {"name": "lan", "addresses": list(addresses)})
    return ledger


def test_created_owner_only(tmp_path):
    ledger = make_ledger(tmp_path)
    assert stat.S_IMODE(os.stat(ledger.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(ledger.path)).st_mode) == 0o700


def test_schema_version_recorded_and_newer_refused(tmp_path):
    ledger = make_ledger(tmp_path)
    conn = sqlite3.connect(ledger.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="newer than this collection"):
        ledger.read()
    with pytest.raises(LedgerError, match="newer than this collection"), ledger.transaction():
        pass


def test_foreign_files_are_refused_untouched(tmp_path):
    other = foreign_sqlite(tmp_path)
    before = dump(str(other))
    with pytest.raises(LedgerError, match=r"not a baremetal\.lb ledger"), SQLiteLedger(str(other)).transaction():
        pass
    assert dump(str(other)) == before

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="garbage"), SQLiteLedger(str(garbage)).transaction():
        pass
    assert garbage.read_bytes() == b"this is not a database" * 100


def test_missing_ledger_reads_empty_and_is_not_created(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "none" / "ledger.sqlite3"))
    state = ledger.read()
    assert state.pools == [] and state.allocations == []
    assert not os.path.exists(ledger.path)


def test_abort_writes_nothing(tmp_path):
    ledger = make_ledger(tmp_path)
    before = dump(ledger.path)
    with ledger.transaction() as txn:
        result = allocate_services(txn, [{"name": "a"}])
        assert result.changed
        txn.abort()
    assert dump(ledger.path) == before


def test_exception_rolls_back(tmp_path):
    ledger = make_ledger(tmp_path)
    before = dump(ledger.path)
    with pytest.raises(RuntimeError), ledger.transaction() as txn:
        allocate_services(txn, [{"name": "a"}])
        raise RuntimeError("boom")
    assert dump(ledger.path) == before


def _hold_open_transaction(path: str, ready) -> None:
    ledger = SQLiteLedger(path)
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": f"s{i}"} for i in range(200)])
        ready.set()
        time.sleep(60)  # killed here, before COMMIT


def _big_batch(path: str, ready) -> None:
    ledger = SQLiteLedger(path)
    ready.set()
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": f"b{i}"} for i in range(30000)])


def _kill(target, path):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(path, ready))
    proc.start()
    assert ready.wait(30)
    return proc, ready


def test_killed_before_commit_leaves_previous_state(tmp_path):
    ledger = make_ledger(tmp_path)
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": "kept"}])
    before = dump(ledger.path)
    proc, _ready = _kill(_hold_open_transaction, ledger.path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert dump(ledger.path) == before
    # and the ledger is usable at once: the killed writer's lock died with it
    with ledger.transaction() as txn:
        assert [a.key for a in txn.state.allocations] == ["default/kept"]


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_killed_mid_write_is_all_or_nothing(tmp_path, delay):
    ledger = make_ledger(tmp_path, addresses=("100.64.0.0/16",))
    proc, _ready = _kill(_big_batch, ledger.path)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    conn = sqlite3.connect(ledger.path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT count(*) FROM allocations").fetchone()[0]
    conn.close()
    assert count in (0, 30000)


def _worker(path: str, worker: int, batches: int, per_batch: int, out) -> None:
    ledger = SQLiteLedger(path)
    mine = {}
    for b in range(batches):
        services = [{"namespace": f"w{worker}", "name": f"s{b}-{i}"} for i in range(per_batch)]
        with ledger.transaction() as txn:
            result = allocate_services(txn, services)
        assert not result.failures
        for a in result.allocations:
            mine[f"{a['namespace']}/{a['name']}"] = a["addresses"]
    out.put(mine)


def test_concurrent_processes_never_hand_out_an_address_twice(tmp_path):
    ledger = make_ledger(tmp_path)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(ledger.path, w, 10, 4, out)) for w in range(6)]
    for p in workers:
        p.start()
    reported = {}
    for _worker_process in workers:
        reported.update(out.get(timeout=120))
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    state = ledger.read()
    stored = {a.key: a.address_strings for a in state.allocations}
    assert len(stored) == 6 * 10 * 4  # nothing lost
    assert stored == reported  # every process saw what was saved
    addresses = [ip for ips in stored.values() for ip in ips]
    assert len(addresses) == len(set(addresses))  # nothing handed out twice


def test_read_refuses_foreign_sqlite_and_garbage(tmp_path):
    """pool_info reads; it refuses what address_pool and allocate refuse."""
    other = foreign_sqlite(tmp_path)
    before = other.read_bytes()
    with pytest.raises(LedgerError, match=r"other\.sqlite3 is an SQLite file but not a baremetal\.lb ledger"):
        SQLiteLedger(str(other)).read()
    assert other.read_bytes() == before

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match=r"cannot (open|read) the ledger .*garbage: file is not a database"):
        SQLiteLedger(str(garbage)).read()


def test_dry_run_on_a_missing_ledger_creates_nothing(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "state" / "ledger.sqlite3"))
    with ledger.transaction(dry_run=True) as txn:
        apply_pool(txn, {"name": "lan", "addresses": ["198.51.100.0/24"]})
        # what the operation wrote is visible inside the transaction, as in a real run
        assert txn._conn.execute("SELECT count(*) FROM pools").fetchone()[0] == 1
    assert list(tmp_path.iterdir()) == []


def test_dry_run_sees_the_ledger_and_changes_no_byte(tmp_path):
    ledger = make_ledger(tmp_path)
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": "a"}])
    files = sorted(os.listdir(os.path.dirname(ledger.path)))
    before = Path(ledger.path).read_bytes()
    mtime = os.stat(ledger.path).st_mtime_ns
    with ledger.transaction(dry_run=True) as txn:
        assert [a.key for a in txn.state.allocations] == ["default/a"]
        result = allocate_services(txn, [{"name": "b"}])
        assert result.allocations == [{"namespace": "default", "name": "b", "addresses": ["198.51.100.1"], "pool": "lan"}]
    assert Path(ledger.path).read_bytes() == before
    assert os.stat(ledger.path).st_mtime_ns == mtime
    assert sorted(os.listdir(os.path.dirname(ledger.path))) == files  # no journal


def test_dry_run_refuses_foreign_files(tmp_path):
    other = foreign_sqlite(tmp_path)
    before = other.read_bytes()
    with pytest.raises(LedgerError, match=r"not a baremetal\.lb ledger"), SQLiteLedger(str(other)).transaction(
        dry_run=True
    ):
        pass
    assert other.read_bytes() == before


def _commit_after(path: str, ready, go) -> None:
    with SQLiteLedger(path).transaction() as txn:
        allocate_services(txn, [{"name": f"w{i}"} for i in range(50)])
        ready.set()
        go.wait(30)


def test_dry_run_sees_committed_state_only(tmp_path):
    """The snapshot is a committed state: never part of another caller's open transaction."""
    ledger = make_ledger(tmp_path)
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_commit_after, args=(ledger.path, ready, go))
    writer.start()
    try:
        assert ready.wait(30)
        with ledger.transaction(dry_run=True) as txn:
            during = len(txn.state.allocations)
    finally:
        go.set()
        writer.join(30)
    assert writer.exitcode == 0
    with ledger.transaction(dry_run=True) as txn:
        after = len(txn.state.allocations)
    assert (during, after) == (0, 50)
