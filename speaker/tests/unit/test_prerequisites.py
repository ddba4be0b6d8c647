"""The privileged suites fail, never skip, when root or a tool is missing, and say which."""

import os
import re
import subprocess
import sys
from pathlib import Path

import lbspeaker
import pytest
from prerequisites import missing, require

SPEAKER = Path(__file__).resolve().parents[2]


def fake_tools(directory, *names):
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    return str(directory)


def test_nothing_missing_as_root_with_the_tools(tmp_path):
    path = fake_tools(tmp_path / "bin", "ip", "bird", "birdc")
    assert missing(("ip", "bird", "birdc"), "install-bgp-deps.sh", euid=0, path=path) == []


def test_unprivileged_user_is_named_with_its_uid(tmp_path):
    path = fake_tools(tmp_path / "bin", "ip", "nft", "sysctl")
    assert missing(("ip", "nft", "sysctl"), "install-l2-deps.sh", euid=1000, path=path) == [
        "needs root (running as uid 1000)"
    ]


def test_each_missing_tool_is_named_with_its_package_and_installer(tmp_path):
    path = fake_tools(tmp_path / "bin", "ip")
    assert missing(("ip", "bird", "birdc"), "install-bgp-deps.sh", euid=0, path=path) == [
        "needs bird from Debian package bird2: run speaker/scripts/install-bgp-deps.sh",
        "needs birdc from Debian package bird2: run speaker/scripts/install-bgp-deps.sh",
    ]


def test_a_tool_that_is_not_executable_is_missing(tmp_path):
    path = fake_tools(tmp_path / "bin", "nft")
    (tmp_path / "bin" / "nft").chmod(0o644)
    assert missing(("nft",), "install-forwarding-deps.sh", euid=0, path=path) == [
        "needs nft from Debian package nftables: run speaker/scripts/install-forwarding-deps.sh"
    ]


def test_require_fails_the_test_instead_of_skipping_it(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin"))
    with pytest.raises(pytest.fail.Exception) as failure:
        require("ip", "nft", install="install-l2-deps.sh")
    assert not isinstance(failure.value, pytest.skip.Exception)
    assert str(failure.value) == (
        "needs root (running as uid 1000); "
        "needs ip from Debian package iproute2: run speaker/scripts/install-l2-deps.sh; "
        "needs nft from Debian package nftables: run speaker/scripts/install-l2-deps.sh"
    )


def test_privileged_suites_fail_for_an_unprivileged_user(tmp_path):
    # The real suites, run by pytest as uid 1000 (os.geteuid patched by a plugin)
    # with a PATH holding no tool: every test is reported failed or in error,
    # none passes or skips, and the report names root and the missing tools.
    # The empty PATH also keeps a broken check from building namespaces here.
    (tmp_path / "fake_uid.py").write_text("import os\n\nos.geteuid = lambda: 1000\n")
    pythonpath = os.pathsep.join([str(tmp_path), str(Path(lbspeaker.__file__).parents[1])])
    env = {**os.environ, "PATH": fake_tools(tmp_path / "bin"), "PYTHONPATH": pythonpath, "COLUMNS": "1000"}
    # tests/l2 last: its tests import its conftest as ``conftest``, the one loaded last.
    suites = ["tests/forwarding/test_forwarding_netns.py", "tests/forwarding/test_forwarding_daemon.py",
              "tests/bgp/test_interop_bird.py", "tests/bgp/test_interop_frr.py", "tests/bgp/test_interop_gobgp.py",
              "tests/bgp/test_daemon_bgp.py", "tests/l2"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "fake_uid", "-p", "no:cacheprovider", "-q", "-rfE",
                          *suites], check=False, cwd=SPEAKER, env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    summary = out.strip().splitlines()[-1]
    assert not re.search(r"passed|skipped|deselected", summary), summary
    assert re.search(r"\d+ (failed|errors?)", summary), summary
    reports = [line for line in out.splitlines() if line.startswith(("ERROR ", "FAILED "))]
    assert len(reports) == int(re.search(r"(\d+) (failed|errors?)", summary)[1])
    for report in reports:  # each test stopped by the check, before any lab was built
        assert "needs root (running as uid 1000); needs ip from Debian package iproute2" in report, report
    for expected in ("needs ip from Debian package iproute2: run speaker/scripts/install-l2-deps.sh",
                     "needs nft from Debian package nftables: run speaker/scripts/install-forwarding-deps.sh",
                     "needs bird from Debian package bird2: run speaker/scripts/install-bgp-deps.sh",
                     "needs vtysh from Debian package frr: run speaker/scripts/install-bgp-deps.sh",
                     "needs gobgpd from Debian package gobgpd"):
        assert expected in out, expected
