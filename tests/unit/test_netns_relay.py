"""tests/kubernetes/netns_relay.py's waits are bounded: a relay (or any helper process) that never says
"ready" is an error naming what was waited for, not a hang. No namespaces needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.baremetal.lb.tests.kubernetes import netns_relay


def child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_line_is_read_and_the_next_one_too() -> None:
    proc = child("import time; print('ready', flush=True); time.sleep(0.2); print('two', flush=True)")
    try:
        assert proc.stdout is not None
        assert netns_relay.read_line(proc.stdout, 10, "the child") == "ready\n"
        assert netns_relay.read_line(proc.stdout, 10, "the child") == "two\n"
        assert netns_relay.read_line(proc.stdout, 10, "the child") == ""  # it exited: end of file
    finally:
        stop(proc)


def test_a_silent_process_is_an_error_naming_it() -> None:
    proc = child("import time; print('no newline yet', end='', flush=True); time.sleep(60)")
    try:
        assert proc.stdout is not None
        with pytest.raises(TimeoutError, match=r"the child: no line within 0\.3 s \(got 'no newline yet'\)"):
            netns_relay.read_line(proc.stdout, 0.3, "the child")
    finally:
        stop(proc)


def test_a_line_too_long_is_an_error() -> None:
    proc = child("import sys, time; sys.stdout.write('x' * 100); sys.stdout.flush(); time.sleep(60)")
    try:
        assert proc.stdout is not None
        with pytest.raises(RuntimeError, match=r"the child: a line longer than 10 bytes"):
            netns_relay.read_line(proc.stdout, 10, "the child", limit=10)
    finally:
        stop(proc)


def test_a_relay_that_never_says_ready_is_stopped_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hang = tmp_path / "hang.py"
    pid = tmp_path / "pid"
    hang.write_text(f"import os, time\nopen({str(pid)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    monkeypatch.setattr(netns_relay, "__file__", str(hang))  # start() runs this file as the relay
    with pytest.raises(RuntimeError, match=r"netns_relay\.py did not start: .*no line within 2 s"):
        netns_relay.start(1, ["nowhere"], 2, tmp_path / "kubeconfig", tmp_path / "out", ready_timeout=2)
    assert pid.exists(), "the relay ran"
    with pytest.raises(ProcessLookupError):  # killed and reaped by start()
        os.kill(int(pid.read_text()), 0)
