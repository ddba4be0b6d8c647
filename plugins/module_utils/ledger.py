# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: where pools and allocations are kept between runs.

The interface is small on purpose (``read`` and ``transaction``), so that a
shared backend (:class:`~.ledger_postgresql.PostgreSQLLedger`, for teams
running playbooks from several machines) stands beside :class:`SQLiteLedger`;
:func:`open_ledger` picks one from the ``ledger`` option.

SQLite is used in rollback-journal mode with ``synchronous=FULL``: a process
killed mid-write leaves a hot journal that the next opener rolls back, so the
file is never half-written. Every write runs in one ``BEGIN IMMEDIATE``
transaction, which takes the database's write lock before reading: two
playbook runs (or forks) serialise on it, each seeing what the other
committed, so no address is handed out twice and nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .allocator import Allocation
from .batching import cyclic_gc_paused
from .errors import InputError, LedgerError
from .pools import FAMILIES_BY_NAME, Pool, parse_pool, parse_stored_address
from .service import Service, ServicePort

DEFAULT_LEDGER = "~/.local/state/baremetal-lb/ledger.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 120.0

_SCHEMA = """
CREATE TABLE pools (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,          -- definition order (allocation order)
    spec TEXT NOT NULL                     -- JSON, as Pool.to_dict() without name
);
CREATE TABLE allocations (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    pool TEXT NOT NULL REFERENCES pools(name),
    addresses TEXT NOT NULL,               -- JSON list of addresses, primary family first
    service TEXT NOT NULL,                 -- JSON, as Service.to_dict()
    PRIMARY KEY (namespace, name)
);
CREATE INDEX allocations_pool ON allocations(pool);
"""


@dataclass
class LedgerState:
    pools: list[Pool] = field(default_factory=list)  # in definition order
    allocations: list[Allocation] = field(default_factory=list)


class Transaction(Protocol):
    """What a module may do inside one ledger transaction.

    ``state`` is what the ledger held when the transaction began; writes do
    not update it, so each transaction carries one operation.
    """

    state: LedgerState
    created: bool  # the ledger's schema is created by this transaction (on first use)

    def put_pool(self, pool: Pool) -> None: ...
    def delete_pool(self, name: str) -> None: ...
    def put_allocation(self, allocation: Allocation) -> None: ...
    def put_allocations(self, allocations: list[Allocation]) -> None: ...
    def delete_allocation(self, key: str) -> None: ...
    def abort(self) -> None: ...


class Ledger(Protocol):
    def read(self) -> LedgerState: ...
    def transaction(self, dry_run: bool = False) -> contextlib.AbstractContextManager[Transaction]: ...


def _stored_service(data: dict[str, object]) -> Service:
    """A service as stored; it was validated when it was first saved."""
    ports = tuple(ServicePort(str(p["protocol"]), int(p["port"])) for p in data["ports"])  # type: ignore[attr-defined]
    ips = tuple(parse_stored_address(ip, "load_balancer_ips") for ip in data["load_balancer_ips"])  # type: ignore[attr-defined]
    return Service(
        namespace=str(data["namespace"]),
        name=str(data["name"]),
        ports=ports,
        external_traffic_policy=str(data["external_traffic_policy"]),
        selector=dict(data["selector"]),  # type: ignore[call-overload]
        labels=dict(data["labels"]),  # type: ignore[call-overload]
        load_balancer_ips=ips,
        address_pool=data["address_pool"],  # type: ignore[arg-type]
        sharing_key=str(data["sharing_key"]),
        ip_families=tuple(FAMILIES_BY_NAME[f] for f in data["ip_families"]),  # type: ignore[attr-defined]
        ip_family_policy=str(data["ip_family_policy"]),
    )


# A pool row: (name, seq, spec JSON); an allocation row: (namespace, name, pool, addresses JSON, service JSON).
# Both backends store these columns, so a ledger copies between them row for row.
PoolRow = tuple[str, int, str]
AllocationRow = tuple[str, str, str, str, str]


def state_from_rows(pool_rows: Iterable[PoolRow], allocation_rows: Iterable[AllocationRow], where: str) -> LedgerState:
    """The ledger's state from its rows; pools in ``seq`` order (the caller sorts)."""
    with cyclic_gc_paused():
        pools = []
        for name, _seq, spec in pool_rows:
            data = json.loads(spec)
            data["name"] = name
            try:
                pools.append(parse_pool(data, f"ledger pool {name!r}", check_names=False))
            except InputError as exc:
                raise LedgerError(f"the ledger {where} holds an invalid pool: {exc}") from None
        allocations = [
            Allocation(
                _stored_service(json.loads(service)),
                pool,
                tuple(parse_stored_address(a, "address") for a in json.loads(addresses)),
            )
            for _namespace, _name, pool, addresses, service in allocation_rows
        ]
        return LedgerState(pools, allocations)


# json.dumps(..., sort_keys=True) builds a new encoder on every call: one, kept, writes the same text
_SORTED_JSON = json.JSONEncoder(sort_keys=True).encode


def allocation_row(allocation: Allocation) -> AllocationRow:
    return (
        allocation.service.namespace,
        allocation.service.name,
        allocation.pool,
        json.dumps(allocation.address_strings),
        _SORTED_JSON(allocation.service.to_dict()),
    )


def pool_spec(pool: Pool) -> str:
    """A pool's ``spec`` column: its definition without the name (the row's key)."""
    spec = pool.to_dict()
    del spec["name"]
    return json.dumps(spec, sort_keys=True)


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection, state: LedgerState, created: bool) -> None:
        self._conn = conn
        self.state = state
        self.aborted = False
        self.created = created  # the ledger's schema is created by this transaction
        self._next_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM pools").fetchone()[0]

    def put_pool(self, pool: Pool) -> None:
        spec = pool_spec(pool)
        updated = self._conn.execute("UPDATE pools SET spec = ? WHERE name = ?", (spec, pool.name)).rowcount
        if not updated:
            self._conn.execute(
                "INSERT INTO pools (name, seq, spec) VALUES (?, ?, ?)", (pool.name, self._next_seq, spec)
            )
            self._next_seq += 1

    def delete_pool(self, name: str) -> None:
        self._conn.execute("DELETE FROM pools WHERE name = ?", (name,))

    def put_allocation(self, allocation: Allocation) -> None:
        self.put_allocations([allocation])

    def put_allocations(self, allocations: list[Allocation]) -> None:
        self._conn.executemany(
            "INSERT OR REPLACE INTO allocations (namespace, name, pool, addresses, service) VALUES (?, ?, ?, ?, ?)",
            (allocation_row(a) for a in allocations),
        )

    def delete_allocation(self, key: str) -> None:
        namespace, _sep, name = key.partition("/")
        self._conn.execute("DELETE FROM allocations WHERE namespace = ? AND name = ?", (namespace, name))

    def abort(self) -> None:
        self.aborted = True


class SQLiteLedger:
    """A ledger in one SQLite file, readable and writable by its owner only."""

    def __init__(self, path: str, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.busy_timeout = busy_timeout

    def _create_file(self) -> None:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise LedgerError(f"cannot create the ledger's directory {directory}: {exc.strerror}") from None
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger {self.path}: {exc.strerror}") from None

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from None
        return conn

    def _check_schema(self, conn: sqlite3.Connection, writable: bool) -> bool:
        """Refuse a file that is not a ledger or is newer; create the schema in an empty one (then True)."""
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise LedgerError(
                f"{self.path} is an SQLite file but not a baremetal.lb ledger (it holds other tables "
                "and no ledger schema version); point the ledger option at another file"
            )
        if version == 0 and writable:
            _create_schema(conn)
        elif version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.path} has schema version {version}, newer than this collection's "
                f"{SCHEMA_VERSION}: upgrade the collection"
            )
        return version == 0

    def read(self) -> LedgerState:
        """A consistent snapshot; a missing ledger reads as empty and is not created."""
        if not os.path.exists(self.path):
            return LedgerState()
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            self._check_schema(conn, writable=False)
            return _load_sqlite(conn, self.path)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from None
        finally:
            conn.close()

    def _snapshot(self) -> sqlite3.Connection:
        """A private in-memory copy of the ledger, for check mode.

        The file is opened read-only and copied in one backup step, under one
        read lock, so the copy is a consistent snapshot (a writer in the middle
        of a transaction is waited for, never copied half-done). A missing file
        gives an empty database; nothing is created on disk.
        """
        memory = sqlite3.connect(":memory:", isolation_level=None)
        if not os.path.exists(self.path):
            return memory
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
        try:
            source = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
            try:
                source.backup(memory)
            finally:
                source.close()
        except sqlite3.Error as exc:
            memory.close()
            raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from None
        return memory

    def transaction(self, dry_run: bool = False) -> contextlib.AbstractContextManager[_SQLiteTransaction]:
        """Exclusive read-modify-write; commits on normal exit unless aborted.

        ``dry_run`` (check mode) runs the same operation on a private
        in-memory snapshot and throws it away: the file, its directory and
        its journal are never created or written, and the result is what
        the real run would do on the ledger as it is now.
        """
        if dry_run:
            conn = self._snapshot()
        else:
            self._create_file()
            conn = self._connect()
        return _sqlite_transaction(conn, self.path, dry_run, lambda: self._check_schema(conn, writable=True))


def _create_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _load_sqlite(conn: sqlite3.Connection, where: str) -> LedgerState:
    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
        return LedgerState()
    return state_from_rows(
        conn.execute("SELECT name, seq, spec FROM pools ORDER BY seq"),
        conn.execute("SELECT namespace, name, pool, addresses, service FROM allocations ORDER BY namespace, name"),
        where,
    )


@contextlib.contextmanager
def _sqlite_transaction(
    conn: sqlite3.Connection, where: str, dry_run: bool, check_schema: Callable[[], bool]
) -> Iterator[_SQLiteTransaction]:
    """One transaction on ``conn`` (closed at the end); rolled back when ``dry_run``."""
    try:
        try:
            conn.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")
            created = check_schema()
            txn = _SQLiteTransaction(conn, _load_sqlite(conn, where), created)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot use the ledger {where}: {exc}") from None
        try:
            yield txn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if txn.aborted or dry_run:
            conn.execute("ROLLBACK")
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"cannot save to the ledger {where}: {exc}") from None
    finally:
        conn.close()


def scratch_transaction(
    pool_rows: Iterable[PoolRow], allocation_rows: Iterable[AllocationRow], where: str, created: bool
) -> contextlib.AbstractContextManager[_SQLiteTransaction]:
    """Check mode on another backend: the operation runs on a private in-memory SQLite copy of its rows."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _create_schema(conn)
    conn.executemany("INSERT INTO pools (name, seq, spec) VALUES (?, ?, ?)", pool_rows)
    conn.execute("PRAGMA foreign_keys = OFF")  # rows of a consistent snapshot, in any order
    conn.executemany(
        "INSERT INTO allocations (namespace, name, pool, addresses, service) VALUES (?, ?, ?, ?, ?)", allocation_rows
    )
    conn.execute("PRAGMA foreign_keys = ON")
    return _sqlite_transaction(conn, where, True, lambda: created)


POSTGRESQL_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
# a libpq key=value string starts with a keyword and "=" (a path that does can be written ./NAME)
POSTGRESQL_KEYWORDS = re.compile(r"^\s*[a-z_]+\s*=")


def is_postgresql(ledger: str) -> bool:
    """Whether the ``ledger`` option names a PostgreSQL database rather than an SQLite file."""
    return bool(POSTGRESQL_URL.match(ledger) or POSTGRESQL_KEYWORDS.match(ledger))


MASK = "********"
# Where a password can stand in a connection string: the URL's user:password@, a password= keyword
# (key=value or URL query), quoted or not.
URL_USERINFO_PASSWORD = re.compile(r"(://[^:/@?#]*:)([^@/?#]*)(@)")
_KEYWORD_PASSWORD = re.compile(r"((?:^|[\s?&])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE)


def mask(conninfo: str) -> str:
    """``conninfo`` with every password it holds replaced by ``********``."""
    masked = URL_USERINFO_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), conninfo)
    return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + MASK, masked)


def passwords(ledger: str) -> set[str]:
    """Every password written in a PostgreSQL ``ledger`` option, as written and decoded (even if it does not parse).

    A module adds them to its ``no_log_values`` first thing, so that Ansible masks them in whatever it prints
    (the task's invocation included), even when the module fails before it reads the option.
    """
    if not is_postgresql(ledger):
        return set()
    conninfo = ledger
    found = {m.group(2) for m in URL_USERINFO_PASSWORD.finditer(conninfo)}
    found |= {m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(conninfo)}
    found |= {urllib.parse.unquote(p) for p in found}
    return {p for p in found if p}


# What every module with a ledger takes (the text is the doc fragment baremetal.lb.ledger).
LEDGER_OPTIONS: dict[str, dict[str, object]] = {
    "ledger": {"type": "str", "default": DEFAULT_LEDGER},
    "ledger_password": {"type": "str", "no_log": True},
}


def open_ledger(ledger: str, password: str | None = None) -> Ledger:
    """The ledger the ``ledger`` option names: an SQLite file, or a PostgreSQL URL or key=value string."""
    if not is_postgresql(ledger):
        return SQLiteLedger(os.path.expandvars(ledger))
    from .ledger_postgresql import PostgreSQLLedger  # noqa: PLC0415 - circular: it builds on this file

    return PostgreSQLLedger(ledger, password)
