"""The ledger on both backends, and what only PostgreSQL has: a server, a network, users, many machines.

Every test here runs against a real PostgreSQL server started for the session
(tests/postgresql_server.py); without one they fail, they never skip.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time

import psycopg
import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, LedgerError
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import (
    SCHEMA_VERSION,
    SQLiteLedger,
    is_postgresql,
    open_ledger,
    passwords,
)
from ansible_collections.baremetal.lb.plugins.module_utils.ledger_postgresql import PostgreSQLLedger, mask
from ansible_collections.baremetal.lb.plugins.module_utils.operations import allocate_services, apply_pool, ensure_pools


def contents(ledger) -> tuple[list[dict[str, object]], list[tuple[str, object, object]]]:
    """What a ledger holds, comparable across backends and calls."""
    state = ledger.read()
    return [p.to_dict() for p in state.pools], sorted((a.key, a.to_dict(), a.service) for a in state.allocations)


def with_pool(ledger, addresses=("198.51.100.0/24",)):
    with ledger.transaction() as txn:
        apply_pool(txn, {"name": "lan", "addresses": list(addresses)})
    return ledger


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


# --- both backends -------------------------------------------------------------------------------


def test_schema_created_on_first_write_with_its_version(new_ledger):
    ledger = new_ledger()
    assert ledger.read().pools == []  # reading an absent ledger creates nothing
    with ledger.transaction() as txn:
        assert txn.created
        apply_pool(txn, {"name": "lan", "addresses": ["198.51.100.0/24"]})
    with ledger.transaction() as txn:
        assert not txn.created
        assert [p.name for p in txn.state.pools] == ["lan"]


def test_abort_and_exceptions_write_nothing(new_ledger):
    ledger = with_pool(new_ledger())
    before = contents(ledger)
    with ledger.transaction() as txn:
        assert allocate_services(txn, [{"name": "a"}]).changed
        txn.abort()
    with pytest.raises(RuntimeError), ledger.transaction() as txn:
        allocate_services(txn, [{"name": "b"}])
        raise RuntimeError("boom")
    assert contents(ledger) == before


def test_dry_run_predicts_and_writes_nothing(new_ledger):
    ledger = with_pool(new_ledger())
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": "a"}])
    before = contents(ledger)
    with ledger.transaction(dry_run=True) as txn:
        assert not txn.created
        predicted = allocate_services(txn, [{"name": "b"}]).allocations
    assert contents(ledger) == before
    with ledger.transaction() as txn:
        assert allocate_services(txn, [{"name": "b"}]).allocations == predicted == [
            {"namespace": "default", "name": "b", "addresses": ["198.51.100.1"], "pool": "lan"}
        ]


def test_pool_order_survives_updates_and_removals(new_ledger):
    """Definition order decides automatic choice: both backends keep it the same way."""
    ledger = new_ledger()
    for name, cidr in (("a", "198.51.100.0/26"), ("b", "198.51.100.64/26"), ("c", "198.51.100.128/26")):
        with ledger.transaction() as txn:
            apply_pool(txn, {"name": name, "addresses": [cidr]})
    with ledger.transaction() as txn:
        apply_pool(txn, {"name": "a", "state": "absent"})
    with ledger.transaction() as txn:
        apply_pool(txn, {"name": "a", "addresses": ["198.51.100.0/27"]})
        apply_pool(txn, {"name": "b", "addresses": ["198.51.100.64/27"]})  # updated in place: keeps its rank
    assert [p.name for p in ledger.read().pools] == ["b", "c", "a"]


# --- PostgreSQL: choosing it, and what it says when it cannot be used ------------------------------


@pytest.mark.parametrize(
    ("option", "postgresql"),
    [
        ("postgresql://lb@db.example/lb", True),
        ("postgres://db.example/lb", True),
        ("host=db.example dbname=lb", True),
        (" dbname=lb", True),
        ("/var/lib/lb/ledger.sqlite3", False),
        ("~/.local/state/baremetal-lb/ledger.sqlite3", False),
        ("./host=x.sqlite3", False),
        ("ledger.sqlite3", False),
    ],
)
def test_the_ledger_option_picks_the_backend(option, postgresql):
    assert is_postgresql(option) is postgresql


def test_open_ledger_expands_paths_and_collects_passwords(monkeypatch, tmp_path):
    monkeypatch.setenv("LB_TEST_DIR", str(tmp_path))
    ledger = open_ledger("$LB_TEST_DIR/ledger.sqlite3")
    assert isinstance(ledger, SQLiteLedger) and ledger.path == str(tmp_path / "ledger.sqlite3")
    pg = open_ledger("postgresql://lb:s%40cret@db.example/lb", "other")
    assert isinstance(pg, PostgreSQLLedger)
    assert pg.secrets == {"s@cret", "s%40cret", "other"}
    assert passwords("host=db password='x y' dbname=lb") == {"x y"}
    assert passwords("/var/lib/a://b:c@d/ledger.sqlite3") == set()  # a path holds no password


@pytest.mark.parametrize(
    ("conninfo", "masked"),
    [
        ("postgresql://lb:hunter2@db:5432/lb", "postgresql://lb:********@db:5432/lb"),
        ("postgresql://lb@db/lb?sslmode=require", "postgresql://lb@db/lb?sslmode=require"),
        ("postgresql://lb@db/lb?password=hunter2&sslmode=require", "postgresql://lb@db/lb?password=********&sslmode=require"),
        ("host=db password='hunter 2' dbname=lb", "host=db password=******** dbname=lb"),
        ("host=db password=hunter2", "host=db password=********"),
    ],
)
def test_mask_hides_every_password(conninfo, masked):
    assert mask(conninfo) == masked


@pytest.mark.parametrize(
    ("conninfo", "message"),
    [
        ("postgresql://lb:hunter2@db/lb?nosuchoption=1", "invalid URI query parameter"),
        ("postgresql://lb:hunter2@db:notaport/lb", "has port 'notaport', not a port number"),
        ("postgresql://lb:hunter2@[db/lb", 'matching "]" in IPv6 host address in URI: "postgresql://lb:********@[db/lb"'),
        ("host=db dbname", 'missing "=" after "dbname"'),
        ("host=db password=hunter2 dbname=lb", "password= keyword, which Ansible would log"),
        ("postgresql://lb@db/lb?password=hunter2", "password= keyword, which Ansible would log"),
    ],
)
def test_malformed_connection_strings_name_the_option_with_the_password_masked(conninfo, message):
    with pytest.raises(InputError) as info:
        PostgreSQLLedger(conninfo)
    assert info.value.field == "ledger"
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "********" in str(info.value) or "hunter2" not in conninfo


def test_wrong_password_is_clear_and_masked(postgresql, postgresql_url):
    url = postgresql_url.replace(postgresql.password, "wrong-secret")
    for call in (lambda: PostgreSQLLedger(url).read(), lambda: PostgreSQLLedger(url).transaction().__enter__()):
        with pytest.raises(LedgerError, match="password authentication failed") as info:
            call()
        assert "wrong-secret" not in str(info.value) and postgresql.password not in str(info.value)
        assert "postgresql://lbtest:********@127.0.0.1" in str(info.value)
    # ledger_password is used, and masked too
    with pytest.raises(LedgerError, match="password authentication failed") as info:
        PostgreSQLLedger(url.replace(":wrong-secret", ""), password="another-wrong").read()
    assert "another-wrong" not in str(info.value)
    assert PostgreSQLLedger(url.replace(":wrong-secret", ""), password=postgresql.password).read().pools == []


def test_password_from_the_environment(postgresql, postgresql_url, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", postgresql.password)
    assert PostgreSQLLedger(postgresql_url.replace(f":{postgresql.password}", "")).read().pools == []


def test_unreachable_server_is_clear(postgresql):
    url = postgresql.url().replace(str(postgresql.port), "1")  # nothing listens on port 1
    started = time.monotonic()
    refused = r"cannot connect to the ledger postgresql://lbtest:\*{8}@127\.0\.0\.1:1/postgres.*refused"
    with pytest.raises(LedgerError, match=refused), PostgreSQLLedger(url).transaction():
        pass
    assert time.monotonic() - started < 15


def test_missing_database_is_clear(postgresql):
    with pytest.raises(LedgerError, match='database "no_such_db" does not exist'):
        PostgreSQLLedger(postgresql.url("no_such_db")).read()


def test_database_without_the_schema_and_no_right_to_create_it(postgresql, postgresql_url):
    """An application user without CREATE on the database: a clear error, nothing changed; an owner sets it up."""
    name = dbname(postgresql_url)
    app = f"app_{name}"
    postgresql.sql(f"CREATE ROLE {app} LOGIN PASSWORD 'app-secret'")
    app_url = postgresql.url(name, user=app, password="app-secret")
    with pytest.raises(LedgerError) as info, PostgreSQLLedger(app_url).transaction() as txn:
        apply_pool(txn, {"name": "lan", "addresses": ["198.51.100.0/24"]})
    message = str(info.value)
    assert "has no baremetal.lb ledger yet, and its user may not create one" in message
    assert "state=present" in message and "app-secret" not in message
    assert postgresql.sql("SELECT to_regnamespace('baremetal_lb')", name) == [(None,)]
    # what the message says to do works
    with PostgreSQLLedger(postgresql_url).transaction():
        pass
    postgresql.sql(
        f"GRANT USAGE ON SCHEMA baremetal_lb TO {app}; "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA baremetal_lb TO {app}",
        name,
    )
    with PostgreSQLLedger(app_url).transaction() as txn:
        ensure_pools(txn, [{"name": "lan", "addresses": ["198.51.100.0/24"]}])
        allocate_services(txn, [{"name": "web"}])
    assert [a.key for a in PostgreSQLLedger(app_url).read().allocations] == ["default/web"]


def test_newer_schema_is_refused_and_left_alone(postgresql, postgresql_url):
    ledger = with_pool(PostgreSQLLedger(postgresql_url))
    postgresql.sql(f"UPDATE baremetal_lb.meta SET schema_version = {SCHEMA_VERSION + 1}", dbname(postgresql_url))
    for dry_run in (False, True):
        with pytest.raises(LedgerError, match="newer than this collection's"), ledger.transaction(dry_run=dry_run):
            pass
    with pytest.raises(LedgerError, match="newer than this collection's"):
        ledger.read()
    assert postgresql.sql("SELECT count(*) FROM baremetal_lb.pools", dbname(postgresql_url)) == [(1,)]


def test_foreign_schema_of_the_same_name_is_refused(postgresql, postgresql_url):
    postgresql.sql("CREATE SCHEMA baremetal_lb; CREATE TABLE baremetal_lb.t (x int)", dbname(postgresql_url))
    with pytest.raises(LedgerError, match=r"not a baremetal\.lb ledger"), PostgreSQLLedger(postgresql_url).transaction():
        pass
    assert postgresql.sql("SELECT to_regclass('baremetal_lb.meta')", dbname(postgresql_url)) == [(None,)]


def test_dry_run_on_a_database_without_the_ledger_creates_nothing(postgresql, postgresql_url):
    ledger = PostgreSQLLedger(postgresql_url)
    with ledger.transaction(dry_run=True) as txn:
        assert txn.created
        ensure_pools(txn, [{"name": "lan", "addresses": ["198.51.100.0/24"]}])
        assert allocate_services(txn, [{"name": "a"}]).allocations[0]["addresses"] == ["198.51.100.0"]
    assert postgresql.sql("SELECT to_regnamespace('baremetal_lb')", dbname(postgresql_url)) == [(None,)]


# --- PostgreSQL: many callers, killed callers, a restarted server ---------------------------------


def _hold_lock(url: str, ready, release) -> None:
    with PostgreSQLLedger(url).transaction() as txn:
        allocate_services(txn, [{"name": f"held{i}"} for i in range(50)])
        ready.set()
        release.wait(60)


def test_dry_run_and_reads_see_committed_state_and_do_not_wait(postgresql_url):
    ledger = with_pool(PostgreSQLLedger(postgresql_url))
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_lock, args=(postgresql_url, ready, release))
    writer.start()
    try:
        assert ready.wait(30)
        started = time.monotonic()
        assert ledger.read().allocations == []
        with ledger.transaction(dry_run=True) as txn:
            assert txn.state.allocations == []
        assert time.monotonic() - started < 5  # no lock taken by readers
        # a writer waits for the lock (here: gives up after its timeout)
        with pytest.raises(LedgerError, match="stayed locked by another caller for 1 s"), PostgreSQLLedger(
            postgresql_url, busy_timeout=1
        ).transaction():
            pass
    finally:
        release.set()
        writer.join(30)
    assert writer.exitcode == 0
    assert len(ledger.read().allocations) == 50


def _killed_in_transaction(url: str, ready) -> None:
    with PostgreSQLLedger(url).transaction() as txn:
        allocate_services(txn, [{"name": f"s{i}"} for i in range(300)])
        ready.set()
        time.sleep(60)  # killed here, before COMMIT


def test_killed_client_leaves_nothing_and_releases_the_lock(postgresql_url):
    ledger = with_pool(PostgreSQLLedger(postgresql_url))
    before = contents(ledger)
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_killed_in_transaction, args=(postgresql_url, ready))
    proc.start()
    assert ready.wait(30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert contents(ledger) == before
    started = time.monotonic()
    with PostgreSQLLedger(postgresql_url, busy_timeout=20).transaction() as txn:
        allocate_services(txn, [{"name": "after"}])
    assert time.monotonic() - started < 10  # the server dropped the dead session's lock
    assert [a.key for a in ledger.read().allocations] == ["default/after"]


WORKERS, BATCHES, PER_BATCH = 8, 10, 5
POOL_SIZE = 380  # fewer than the 400 services asked for: the last callers lose, and must hear it


def _allocating_worker(url: str, worker: int, out) -> None:
    ledger = PostgreSQLLedger(url)
    won, lost = {}, []
    for b in range(BATCHES):
        services = [{"namespace": f"w{worker}", "name": f"s{b}-{i}"} for i in range(PER_BATCH)]
        with ledger.transaction() as txn:
            result = allocate_services(txn, services)
        won.update({f"{a['namespace']}/{a['name']}": a["addresses"] for a in result.allocations})
        lost += [f"{f['namespace']}/{f['name']}" for f in result.failures]
    out.put((won, lost))


def test_eight_processes_allocating_at_once(postgresql_url):
    ledger = with_pool(PostgreSQLLedger(postgresql_url), addresses=(f"198.51.100.0-198.51.101.{POOL_SIZE - 257}",))
    assert ledger.read().pools[0].size(4) == POOL_SIZE
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_allocating_worker, args=(postgresql_url, w, out)) for w in range(WORKERS)]
    started = time.monotonic()
    for p in workers:
        p.start()
    won, lost = {}, []
    for _worker in workers:
        w, lo = out.get(timeout=180)
        won.update(w)
        lost += lo
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    elapsed = time.monotonic() - started
    stored = {a.key: a.address_strings for a in ledger.read().allocations}
    addresses = [ip for ips in stored.values() for ip in ips]
    assert len(addresses) == len(set(addresses)), "an address was handed out twice"
    assert stored == won, "what the callers were told differs from what was saved"
    assert len(stored) == POOL_SIZE and len(lost) == WORKERS * BATCHES * PER_BATCH - POOL_SIZE
    assert not set(lost) & set(stored)
    print(f"8 processes x {BATCHES} calls x {PER_BATCH} services: {elapsed:.2f} s, {len(lost)} reported failures")


def test_server_restarted_mid_batch(postgresql, postgresql_url):
    """The call in flight fails with a clear error, nothing of it is saved, and the next call succeeds."""
    ledger = with_pool(PostgreSQLLedger(postgresql_url), addresses=("100.64.0.0/16",))
    with ledger.transaction() as txn:
        allocate_services(txn, [{"name": "kept"}])
    before = contents(ledger)
    errors: list[BaseException] = []
    inside = threading.Event()

    def batch() -> None:
        try:
            with ledger.transaction() as txn:
                inside.set()
                allocate_services(txn, [{"name": f"b{i}"} for i in range(20000)])
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=batch)
    thread.start()
    assert inside.wait(30)
    postgresql.restart()
    thread.join(120)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], LedgerError), errors
    assert "nothing of this call was saved" in str(errors[0]) or "either all" in str(errors[0])
    assert postgresql.password not in str(errors[0])
    after = contents(ledger)
    assert after == before or len(after[1]) == 20001  # all or nothing
    with ledger.transaction() as txn:
        result = allocate_services(txn, [{"name": "next"}])
    assert not result.failures and result.changed


def test_a_connection_lost_before_commit_saves_nothing(postgresql, postgresql_url):
    """The session is ended by the server (as by a restart) between the writes and COMMIT."""
    ledger = with_pool(PostgreSQLLedger(postgresql_url))
    before = contents(ledger)
    with pytest.raises(LedgerError, match=r"cannot (write to|save to) the ledger"), ledger.transaction() as txn:
        allocate_services(txn, [{"name": "a"}])
        pid = txn._cur.connection.info.backend_pid
        postgresql.sql(f"SELECT pg_terminate_backend({pid})")
        allocate_services(txn, [{"name": "b"}])
    assert contents(ledger) == before


def test_sqlite_rows_and_postgresql_rows_are_the_same_columns(tmp_path, postgresql_url):
    """A ledger copies between backends row for row: the column lists must not drift apart."""
    sqlite_ledger = with_pool(SQLiteLedger(str(tmp_path / "l.sqlite3")))
    conn = sqlite3.connect(sqlite_ledger.path)
    sqlite_columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in ("pools", "allocations")}
    conn.close()
    with_pool(PostgreSQLLedger(postgresql_url))
    with psycopg.connect(postgresql_url) as pg:
        pg_columns = {
            t: [r[0] for r in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'baremetal_lb' "
                "AND table_name = %s ORDER BY ordinal_position", (t,)
            )]
            for t in ("pools", "allocations")
        }
    assert sqlite_columns == pg_columns
