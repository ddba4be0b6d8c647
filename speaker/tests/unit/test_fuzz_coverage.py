"""The atheris targets (speaker/tests/fuzz) for a few seconds each: every decoder that reads the
network, and the config parser, raise nothing but their own error from what the fuzzer makes of
the committed seeds. ``make fuzz`` runs them longer."""

import json
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"


def test_every_target_runs_clean_for_a_few_seconds():
    proc = subprocess.run([sys.executable, str(FUZZ / "run.py"), "--seconds", "3"], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and not doc["failed"], proc.stdout + proc.stderr[-3000:]
    assert set(doc["fuzz"]) == {"membership", "arp", "ndp", "bgp", "bfd", "config"}
    for name, result in doc["fuzz"].items():
        assert result["runs"] and result["runs"] > 100, (name, result)  # it really fuzzed
