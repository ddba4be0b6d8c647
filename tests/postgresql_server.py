"""A throw-away PostgreSQL server for the ledger's tests: Debian's binaries, a temporary data directory.

It listens on 127.0.0.1 only, on a free port, and on a Unix socket in its own
directory; it never touches the system's clusters. As root it runs as the
``postgres`` user (the server refuses root), otherwise as the caller.

Missing binaries or a missing ``postgres`` user are an error, never a skip:
``scripts/install-postgresql-deps.sh`` (run by ``make units`` and
``make integration``) installs them.

As a command, it runs another command with a server up and stops the server
afterwards, also when the command fails::

    python tests/postgresql_server.py [--vars-file FILE] -- COMMAND...

The command gets ``LB_TEST_POSTGRESQL`` (a ``postgresql://`` URL for a
superuser, password included, database ``postgres``); ``--vars-file`` also
writes it as the variable ``lb_test_postgresql`` (ansible-test's
``tests/integration/integration_config.yml``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

BIN_DIRS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15")]
INSTALL_HINT = "run `sh scripts/install-postgresql-deps.sh` as root (Debian's postgresql-15)"
SUPERUSER = "lbtest"


def pg_bin() -> Path:
    for directory in BIN_DIRS:
        if (directory / "pg_ctl").exists() and (directory / "initdb").exists():
            return directory
    raise RuntimeError(f"PostgreSQL's initdb and pg_ctl are not installed ({', '.join(map(str, BIN_DIRS))}); {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgreSQLServer:
    def __init__(self, fsync: bool = False) -> None:
        self.fsync = fsync  # off for tests (a crash of the machine is not what they test); on for benchmarks
        self.bin = pg_bin()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            try:
                self.owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(f"the user postgres does not exist; {INSTALL_HINT}") from None
        self.dir = Path(tempfile.mkdtemp(prefix="lbtest-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.dir)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> PostgreSQLServer:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_postgres:
            os.chown(self.dir, self.owner.pw_uid, self.owner.pw_gid)
            os.chown(pwfile, self.owner.pw_uid, self.owner.pw_gid)
        self.dir.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}", "-A", "scram-sha-256",
                  "--no-sync")
        pwfile.unlink()
        self.started = True
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1" + ("" if self.fsync else " -c fsync=off")
        self._run("pg_ctl", action, "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w",
                  "-t", "60", *extra)

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
                self.started = False
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        secret = urllib.parse.quote(self.password if password is None else password, safe="")
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement as the superuser (autocommit: CREATE DATABASE works)."""
        import psycopg  # noqa: PLC0415 - only the tests that use a server need it

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgreSQLServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    vars_file = None
    if argv[:1] == ["--vars-file"]:
        vars_file, argv = Path(argv[1]), argv[2:]
    if argv[:1] != ["--"] or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.monotonic()
    with PostgreSQLServer() as server:
        print(f"postgresql_server: PostgreSQL on 127.0.0.1:{server.port} ({server.dir}) "
              f"in {time.monotonic() - started:.1f} s", flush=True)
        if vars_file is not None:
            vars_file.parent.mkdir(parents=True, exist_ok=True)
            vars_file.write_text(f"lb_test_postgresql: {server.url()!r}\n")
        try:
            return subprocess.run(argv[1:], env={**os.environ, "LB_TEST_POSTGRESQL": server.url()}, check=False).returncode
        finally:
            if vars_file is not None:
                vars_file.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
