"""Make the repository importable as ``ansible_collections.baremetal.lb``.

The repository root is the collection root. When it is not already checked
out under ``ansible_collections/baremetal/lb`` (as ansible-test arranges), a
symlink under ``build/collections`` provides that path.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if ROOT.parent.name == "baremetal" and ROOT.parent.parent.name == "ansible_collections":
    COLLECTIONS = ROOT.parents[2]
else:
    COLLECTIONS = ROOT / "build" / "collections"
    link = COLLECTIONS / "ansible_collections" / "baremetal" / "lb"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

# After the path above: the fixtures below import the collection.
import itertools  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402
from ansible_collections.baremetal.lb.plugins.module_utils.ledger import SQLiteLedger  # noqa: E402
from ansible_collections.baremetal.lb.plugins.module_utils.ledger_postgresql import PostgreSQLLedger  # noqa: E402
from ansible_collections.baremetal.lb.tests.postgresql_server import PostgreSQLServer  # noqa: E402


@pytest.fixture(scope="session")
def postgresql():
    """One throw-away PostgreSQL server for the session; a test that needs one fails (never skips) without it."""
    try:
        server = PostgreSQLServer().start()
    except RuntimeError as exc:
        pytest.fail(f"cannot start PostgreSQL for the ledger tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgresql_url(postgresql):
    """A fresh database of its own for the test (the ledger's schema is created on first use)."""
    return postgresql.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def new_ledger(request, tmp_path):
    """A function that gives an empty ledger of the test's backend at each call."""
    return ledger_factory(request, request.param, tmp_path)


def ledger_factory(request, backend, tmp_path):
    if backend == "sqlite":
        counter = itertools.count()
        return lambda: SQLiteLedger(str(tmp_path / f"ledger-{next(counter)}" / "ledger.sqlite3"))
    server = request.getfixturevalue("postgresql")
    url = request.getfixturevalue("postgresql_url")

    def new():
        server.sql("DROP SCHEMA IF EXISTS baremetal_lb CASCADE", url.rsplit("/", 1)[1])
        return PostgreSQLLedger(url)

    return new
