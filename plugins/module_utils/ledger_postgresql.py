# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger in a PostgreSQL database, shared by every machine that runs playbooks on the same pools.

The ledger is the schema ``baremetal_lb`` of the database the connection
string names (one ledger per database): a version table, pools and
allocations, the same rows as the SQLite ledger's (so a ledger copies between
the two row for row).

Writers serialise on a transaction-scoped advisory lock taken before
anything is read, as SQLite writers serialise on ``BEGIN IMMEDIATE``. The
allocator reads the whole ledger and decides from all of it, so under
serialisable isolation any two concurrent calls would conflict and one would
redo its whole batch; under the lock the second simply waits, then reads what
the first committed, and no work is thrown away. The lock is released by the
server at COMMIT or ROLLBACK, and when a client dies its session ends and
takes the lock and the open transaction with it: nothing half-written stays.
Readers (``pool_info``, dumps, check mode) take no lock: they read one
committed snapshot.

Passwords come from the URL (``postgresql://user:password@host/db``), the
``ledger_password`` option, ``PGPASSFILE`` or ``PGPASSWORD``; TLS from the
libpq parameters (``sslmode``, ``sslrootcert``...). No message of this module
holds a password: the connection string is shown with it masked.
"""

from __future__ import annotations

import contextlib
import re
import traceback
from collections.abc import Iterator
from typing import Any

from .allocator import Allocation
from .errors import InputError, LedgerError
from .ledger import (
    BUSY_TIMEOUT_S,
    MASK,
    SCHEMA_VERSION,
    URL_USERINFO_PASSWORD,
    AllocationRow,
    LedgerState,
    PoolRow,
    allocation_row,
    mask,
    passwords,
    pool_spec,
    scratch_transaction,
    state_from_rows,
)
from .pools import Pool

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None

SCHEMA = "baremetal_lb"
# pg_advisory_xact_lock's key: "bmlbledg" in ASCII, one lock per database (one ledger per database)
LOCK_KEY = 0x626D6C626C656467
# A client that stops answering mid-transaction (its machine gone) would hold the lock until TCP
# noticed; the server ends such a transaction after this long idle, and the others go on.
IDLE_IN_TRANSACTION_S = 300
CONNECT_TIMEOUT_S = 10

_DDL = (
    f"CREATE SCHEMA {SCHEMA}",
    f"""CREATE TABLE {SCHEMA}.meta (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        schema_version INTEGER NOT NULL
    )""",
    f"""CREATE TABLE {SCHEMA}.pools (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        spec TEXT NOT NULL
    )""",
    f"""CREATE TABLE {SCHEMA}.allocations (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        pool TEXT NOT NULL REFERENCES {SCHEMA}.pools(name),
        addresses TEXT NOT NULL,
        service TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    )""",
    f"CREATE INDEX allocations_pool ON {SCHEMA}.allocations(pool)",
    f"INSERT INTO {SCHEMA}.meta (schema_version) VALUES ({SCHEMA_VERSION})",
)


class _PostgreSQLTransaction:
    def __init__(self, cur: Any, state: LedgerState, next_seq: int, created: bool) -> None:
        self._cur = cur
        self.state = state
        self.aborted = False
        self.created = created
        self._next_seq = next_seq

    def put_pool(self, pool: Pool) -> None:
        spec = pool_spec(pool)
        self._cur.execute(f"UPDATE {SCHEMA}.pools SET spec = %s WHERE name = %s", (spec, pool.name))
        if not self._cur.rowcount:
            self._cur.execute(
                f"INSERT INTO {SCHEMA}.pools (name, seq, spec) VALUES (%s, %s, %s)", (pool.name, self._next_seq, spec)
            )
            self._next_seq += 1

    def delete_pool(self, name: str) -> None:
        self._cur.execute(f"DELETE FROM {SCHEMA}.pools WHERE name = %s", (name,))

    def put_allocation(self, allocation: Allocation) -> None:
        self.put_allocations([allocation])

    def put_allocations(self, allocations: list[Allocation]) -> None:
        self._cur.executemany(
            f"INSERT INTO {SCHEMA}.allocations (namespace, name, pool, addresses, service) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, name) DO UPDATE "
            "SET pool = EXCLUDED.pool, addresses = EXCLUDED.addresses, service = EXCLUDED.service",
            [allocation_row(a) for a in allocations],
        )

    def delete_allocation(self, key: str) -> None:
        namespace, _sep, name = key.partition("/")
        self._cur.execute(f"DELETE FROM {SCHEMA}.allocations WHERE namespace = %s AND name = %s", (namespace, name))

    def abort(self) -> None:
        self.aborted = True


class PostgreSQLLedger:
    """A ledger in the ``baremetal_lb`` schema of a PostgreSQL database."""

    def __init__(self, conninfo: str, password: str | None = None, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.conninfo = conninfo
        self.password = password or None
        self.busy_timeout = busy_timeout
        self.display = mask(conninfo)
        self.secrets = passwords(conninfo) | ({password} if password else set())
        if not HAS_PSYCOPG:
            raise LedgerError(f"the ledger {self.display} is a PostgreSQL database, which needs the psycopg library")
        try:
            self.params = conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise InputError(
                "ledger", self.display, f"is not a valid PostgreSQL URL or key=value string: {self._scrub(exc)}"
            ) from None
        port = self.params.get("port")
        if port is not None and not re.fullmatch(r"\d{1,5}(,\d{1,5})*", str(port)):
            raise InputError("ledger", self.display, f"has port {port!r}, not a port number (or a list of them)")
        if "password" in self.params and not URL_USERINFO_PASSWORD.search(conninfo):
            # Ansible masks user:password@ of a URL in its own log lines, not a password= keyword
            raise InputError(
                "ledger",
                self.display,
                "holds a password= keyword, which Ansible would log as it is; give the password as the URL's "
                "user:password@, in ledger_password, in PGPASSFILE or in PGPASSWORD",
            )

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip()
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def _connect(self) -> Any:
        extra: dict[str, Any] = {}
        if self.password is not None:
            extra["password"] = self.password
        if "connect_timeout" not in self.params:
            extra["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in self.params:
            extra["application_name"] = "baremetal.lb"
        try:
            return psycopg.connect(self.conninfo, autocommit=False, **extra)
        except psycopg.Error as exc:
            raise LedgerError(f"cannot connect to the ledger {self.display}: {self._scrub(exc)}") from None

    def _version(self, cur: Any) -> int | None:
        """The ledger's schema version; None when the database has no ledger yet."""
        has_schema, has_meta = cur.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL", (SCHEMA, f"{SCHEMA}.meta")
        ).fetchone()
        if not has_schema:
            return None
        if not has_meta:
            raise LedgerError(
                f"the database of {self.display} has a schema {SCHEMA} that is not a baremetal.lb ledger "
                "(it has no version table); point the ledger option at another database"
            )
        version: int = cur.execute(f"SELECT schema_version FROM {SCHEMA}.meta").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {self.display} has schema version {version}, newer than this collection's "
                f"{SCHEMA_VERSION}: upgrade the collection"
            )
        return version

    def _create(self, cur: Any) -> None:
        try:
            for statement in _DDL:
                cur.execute(statement)
        except pg_errors.InsufficientPrivilege as exc:
            raise LedgerError(
                f"the database of {self.display} has no baremetal.lb ledger yet, and its user may not create one "
                f"({self._scrub(exc)}); run baremetal.lb.ledger with state=present once as a user that may "
                "create schemas in that database (or grant CREATE on it), then grant this user "
                f"USAGE on schema {SCHEMA} and SELECT, INSERT, UPDATE, DELETE on its tables"
            ) from None

    def _rows(self, cur: Any) -> tuple[list[PoolRow], list[AllocationRow]]:
        pools = cur.execute(f"SELECT name, seq, spec FROM {SCHEMA}.pools ORDER BY seq").fetchall()
        allocations = cur.execute(
            f"SELECT namespace, name, pool, addresses, service FROM {SCHEMA}.allocations ORDER BY namespace, name"
        ).fetchall()
        return pools, allocations

    def _snapshot(self) -> tuple[list[PoolRow], list[AllocationRow], bool]:
        """The rows of one committed state, read without a lock and without writing; and whether it is empty
        because the database has no ledger yet."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                missing = self._version(cur) is None
                rows = ([], []) if missing else self._rows(cur)
                conn.rollback()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.display}: {self._scrub(exc)}") from None
        finally:
            conn.close()
        return (*rows, missing)

    def read(self) -> LedgerState:
        """A consistent snapshot; a database without the ledger reads as empty and is not changed."""
        pools, allocations, _missing = self._snapshot()
        return state_from_rows(pools, allocations, self.display)

    def transaction(self, dry_run: bool = False) -> contextlib.AbstractContextManager[Any]:
        """Exclusive read-modify-write under the ledger's lock; commits on normal exit unless aborted.

        ``dry_run`` (check mode) reads one committed snapshot, runs the operation on a private
        in-memory copy and throws it away: nothing is written to the server, no lock is taken.
        """
        if dry_run:
            pools, allocations, missing = self._snapshot()
            return scratch_transaction(pools, allocations, self.display, created=missing)
        return self._locked_transaction()

    @contextlib.contextmanager
    def _locked_transaction(self) -> Iterator[_PostgreSQLTransaction]:
        conn = self._connect()
        try:
            try:
                cur = conn.cursor()
                # READ COMMITTED: each statement sees what was committed before it, so what is read after
                # the lock is granted includes the previous holder's commit.
                cur.execute(f"SET LOCAL lock_timeout = '{int(self.busy_timeout * 1000)}ms'")
                cur.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_S}s'")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                created = self._version(cur) is None
                if created:
                    self._create(cur)
                pools, allocations = self._rows(cur)
                next_seq = max((seq for _name, seq, _spec in pools), default=0) + 1
                txn = _PostgreSQLTransaction(cur, state_from_rows(pools, allocations, self.display), next_seq, created)
            except pg_errors.LockNotAvailable:
                raise LedgerError(
                    f"the ledger {self.display} stayed locked by another caller for {self.busy_timeout:g} s"
                ) from None
            except psycopg.Error as exc:
                raise LedgerError(f"cannot use the ledger {self.display}: {self._scrub(exc)}") from None
            try:
                yield txn
            except psycopg.Error as exc:
                raise LedgerError(
                    f"cannot write to the ledger {self.display}: {self._scrub(exc)}; nothing of this call was saved"
                ) from None
            if txn.aborted:
                conn.rollback()
                return
            try:
                conn.commit()
            except psycopg.Error as exc:
                raise LedgerError(
                    f"cannot save to the ledger {self.display}: {self._scrub(exc)}; the ledger holds either all "
                    "of this call's changes or none of them: run it again"
                ) from None
        finally:
            conn.close()  # an open transaction is rolled back with the session
