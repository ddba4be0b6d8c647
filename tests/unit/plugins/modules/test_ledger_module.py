# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""baremetal.lb.ledger: moving between SQLite and PostgreSQL loses nothing; dumps; passwords stay hidden."""

from __future__ import annotations

import json

import yaml
from ansible_collections.baremetal.lb.plugins.module_utils import ledger_postgresql
from ansible_collections.baremetal.lb.plugins.modules import allocate, ledger, pool_info
from ansible_collections.baremetal.lb.tests.unit.plugins.modules.module_runner import run_module

POOLS = [
    {"name": "lan", "addresses": ["198.51.100.100-198.51.100.120", "2001:db8:1::100/126"]},
    {"name": "bgp", "addresses": ["203.0.113.0/28"]},
]
SERVICES = [
    {"namespace": "shop", "name": "web", "ports": [{"port": 443}], "ip_family_policy": "RequireDualStack"},
    {"namespace": "shop", "name": "api", "load_balancer_ips": ["203.0.113.7"]},
    {"namespace": "infra", "name": "dns-tcp", "ports": [{"port": 53}], "sharing_key": "dns"},
    {"namespace": "infra", "name": "dns-udp", "ports": [{"port": 53, "protocol": "UDP"}], "sharing_key": "dns"},
]


def dump(path, capsys):
    code, result = run_module(ledger.main, {"ledger": path, "state": "dump"}, capsys)
    assert code == 0, result
    return result["ledger_content"]


def test_sqlite_to_postgresql_and_back_loses_nothing(tmp_path, postgresql_url, capsys):
    sqlite_path = str(tmp_path / "ledger.sqlite3")
    code, result = run_module(allocate.main, {"ledger": sqlite_path, "pools": POOLS, "services": SERVICES}, capsys)
    assert code == 0, result
    original = dump(sqlite_path, capsys)
    assert len(original["allocations"]) == 4

    copy = {"ledger": postgresql_url, "state": "copy", "source": sqlite_path}
    code, check = run_module(ledger.main, copy, capsys)
    assert code == 0 and check["changed"] and check["counts"] == {"pools": 2, "allocations": 4}
    code, again = run_module(ledger.main, copy, capsys)
    assert code == 0 and not again["changed"]
    assert dump(postgresql_url, capsys) == original

    # the copy allocates as the original would: the next service gets the same address on both
    more = [*SERVICES, {"namespace": "shop", "name": "new"}]
    results = [run_module(allocate.main, {"ledger": where, "services": more}, capsys)[1] for where in (sqlite_path, postgresql_url)]
    assert results[0]["allocations"] == results[1]["allocations"]

    back = str(tmp_path / "back" / "ledger.sqlite3")
    code, result = run_module(ledger.main, {"ledger": back, "state": "copy", "source": postgresql_url}, capsys)
    assert code == 0 and result["changed"]
    assert dump(back, capsys) == dump(postgresql_url, capsys)


def test_copy_into_a_ledger_that_differs_needs_force(tmp_path, capsys):
    one, two = str(tmp_path / "one.sqlite3"), str(tmp_path / "two.sqlite3")
    run_module(allocate.main, {"ledger": one, "pools": POOLS, "services": SERVICES[:1]}, capsys)
    run_module(allocate.main, {"ledger": two, "pools": POOLS[1:], "services": SERVICES[1:2]}, capsys)
    before = dump(two, capsys)
    code, result = run_module(ledger.main, {"ledger": two, "state": "copy", "source": one}, capsys)
    assert code == 1 and result["field"] == "force" and "1 pool(s) and 1 allocation(s)" in result["msg"]
    assert dump(two, capsys) == before
    code, result = run_module(ledger.main, {"ledger": two, "state": "copy", "source": one, "force": True, "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] and dump(two, capsys) == before
    code, result = run_module(ledger.main, {"ledger": two, "state": "copy", "source": one, "force": True}, capsys)
    assert code == 0 and dump(two, capsys) == dump(one, capsys)


def test_dump_to_yaml_and_json(tmp_path, capsys):
    path = str(tmp_path / "ledger.sqlite3")
    run_module(allocate.main, {"ledger": path, "pools": POOLS, "services": SERVICES}, capsys)
    for name, load in (("backup.yaml", yaml.safe_load), ("backup.json", json.loads)):
        dest = tmp_path / name
        code, result = run_module(ledger.main, {"ledger": path, "state": "dump", "dest": str(dest)}, capsys)
        assert code == 0 and result["changed"]
        assert load(dest.read_text()) == result["ledger_content"]
        assert oct(dest.stat().st_mode & 0o777) == "0o600"
        code, result = run_module(ledger.main, {"ledger": path, "state": "dump", "dest": str(dest)}, capsys)
        assert not result["changed"]


def test_present_creates_the_schema_once(postgresql_url, capsys):
    args = {"ledger": postgresql_url}
    assert run_module(ledger.main, {**args, "_ansible_check_mode": True}, capsys)[1]["changed"]
    assert run_module(ledger.main, args, capsys)[1]["changed"]
    assert not run_module(ledger.main, args, capsys)[1]["changed"]


def test_missing_psycopg_fails_with_ansibles_message(monkeypatch, capsys):
    for module in (allocate, ledger, pool_info):
        # allocate reads them from ledger_postgresql when a PostgreSQL ledger is named (allocate_task)
        where = ledger_postgresql if module is allocate else module
        monkeypatch.setattr(where, "HAS_PSYCOPG", False)
        monkeypatch.setattr(where, "PSYCOPG_IMPORT_ERROR", "ModuleNotFoundError: No module named 'psycopg'")
        args = {"ledger": "postgresql://lb:hunter2@127.0.0.1:1/lb"}
        if module is allocate:
            args["services"] = []
        code, result = run_module(module.main, args, capsys)
        assert code == 1
        assert "Failed to import the required Python library (psycopg)" in result["msg"]
        assert "hunter2" not in json.dumps(result)


def test_password_never_printed(postgresql, capsys):
    url = postgresql.url().replace(postgresql.password, "wrong-hunter2")
    code, result = run_module(pool_info.main, {"ledger": url}, capsys)
    assert code == 1 and "password authentication failed" in result["msg"]
    text = json.dumps(result)
    assert "wrong-hunter2" not in text and "postgresql://lbtest:********@127.0.0.1" in text
    code, result = run_module(allocate.main, {"ledger": "host=x password=hunter2", "services": []}, capsys)
    assert code == 1 and result["field"] == "ledger" and "hunter2" not in json.dumps(result)
