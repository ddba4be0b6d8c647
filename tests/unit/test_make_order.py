"""The Makefile installs what a stage calls before the stage calls it.

Molecule's first step is ``destroy``, which runs ``podman rm``; on a machine
that never ran the lab, podman must be installed before Molecule starts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> list[str]:
    make = shutil.which("make")
    if make is None:
        pytest.fail("make is not installed; the test stage needs it")
    out = subprocess.run(
        [make, "-n", "-C", str(ROOT), "--no-print-directory", target],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return out.splitlines()


def first(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in make -n output:\n" + "\n".join(lines))


@pytest.mark.parametrize("target,installer,user", [
    ("molecule", "install-lab-deps.sh", "molecule test"),
    ("demo", "install-lab-deps.sh", "playbooks/lab.yml"),
    # the ledger's tests start a PostgreSQL server of their own
    ("units", "install-postgresql-deps.sh", "pytest -q tests/unit"),
    ("integration", "install-postgresql-deps.sh", "tests/postgresql_server.py"),
    # the alert rules' tests need promtool
    ("rules-test", "install-prometheus-deps.sh", "promtool test rules"),
])
def test_dependencies_installed_before_their_first_user(target: str, installer: str, user: str) -> None:
    lines = dry_run(target)
    assert first(lines, installer) < first(lines, user)


@pytest.mark.parametrize("script,packages", [
    ("install-lab-deps.sh", "podman runc debootstrap"),
    ("install-postgresql-deps.sh", "postgresql-15 postgresql-client-15"),
    ("install-prometheus-deps.sh", "prometheus"),
])
def test_install_script_names_missing_packages_when_not_root(tmp_path: Path, script: str, packages: str) -> None:
    # a dpkg-query that reports nothing installed, and a non-root id
    (tmp_path / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "id").write_text("#!/bin/sh\necho 1000\n")
    for f in tmp_path.iterdir():
        f.chmod(0o755)
    proc = subprocess.run(
        ["sh", str(ROOT / "scripts" / script)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert packages in proc.stderr


def test_kubernetes_tests_run_in_make_test_before_molecule() -> None:
    stages = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("test:")).split()
    assert stages.index("kubernetes-test") < stages.index("molecule")


def test_alert_rule_tests_run_in_make_test() -> None:
    stages = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("test:")).split()
    assert "rules-test" in stages
    assert any("promtool test rules tests/prometheus/alerts_test.yml" in line for line in dry_run("rules-test"))
