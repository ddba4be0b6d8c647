"""The PostgreSQL the ledger's tests need: installed by make, and a clear failure (never a skip) without it."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.tests import postgresql_server


def test_missing_binaries_fail_naming_the_install_script(monkeypatch, tmp_path):
    monkeypatch.setattr(postgresql_server, "BIN_DIRS", [tmp_path / "none" / "bin"])
    with pytest.raises(RuntimeError, match=r"install-postgresql-deps\.sh"):
        postgresql_server.PostgreSQLServer()


def test_the_server_listens_on_loopback_only(postgresql):
    rows = postgresql.sql("SHOW listen_addresses")
    assert rows == [("127.0.0.1",)]
    assert postgresql.sql("SHOW port") == [(str(postgresql.port),)]
