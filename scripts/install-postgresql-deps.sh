#!/bin/sh
# PostgreSQL server and client from Debian, for the ledger's tests (make units, make integration):
# they start their own throw-away server (tests/postgresql_server.py) on 127.0.0.1 and a socket
# in a temporary directory, never the system's cluster. Idempotent: installs only what is missing.
# (Debian's postinst may create a "main" cluster on 5432; the tests neither use nor stop it.)
set -eu
sh "$(dirname "$0")/../speaker/scripts/install-debs.sh" install-postgresql-deps postgresql-15 postgresql-client-15
