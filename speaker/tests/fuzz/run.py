#!/usr/bin/env python
"""Run the atheris fuzz targets (targets.py) for a bounded time each.

    run.py [--seconds S] [--target NAME ...] [--corpus-out DIR]

Each target runs in its own process (atheris/libFuzzer own the process) with
``-max_total_time=S`` and a per-input timeout, starting from the committed
seeds in ``corpus/<target>/``; what it finds new goes to ``--corpus-out``
(default: a temporary directory), never into the committed corpus. A crash,
an exception other than the decoder's own or a timeout makes the run fail,
with the reproducer's path. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = r"""
import sys
import atheris
with atheris.instrument_imports(include=['lbspeaker']):
    import targets
target = targets.TARGETS[sys.argv[1]]
atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
atheris.Fuzz()
"""


def seed(corpus: Path) -> None:
    """Write the committed seed corpus from targets.seeds() (run once, when a decoder's format changes)."""
    sys.path.insert(0, str(HERE))
    import targets  # noqa: PLC0415

    for name, inputs in targets.seeds().items():
        d = corpus / name
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(inputs):
            (d / f"seed-{i}").write_bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--target", action="append", default=[])
    parser.add_argument("--corpus-out", default="")
    parser.add_argument("--seed", action="store_true", help="(re)write the committed seed corpus and exit")
    args = parser.parse_args()
    if args.seed:
        seed(HERE / "corpus")
        return 0
    sys.path.insert(0, str(HERE))
    import targets  # noqa: PLC0415

    names = args.target or list(targets.TARGETS)
    unknown = sorted(set(names) - set(targets.TARGETS))
    if unknown:
        parser.error(f"--target: unknown {unknown}; known: {sorted(targets.TARGETS)}")
    out_root = Path(args.corpus_out) if args.corpus_out else Path(tempfile.mkdtemp(prefix="lbfuzz-"))
    results = {}
    failed = []
    for name in names:
        seeds = HERE / "corpus" / name
        if not any(seeds.glob("*")):
            print(f"{name}: no seed corpus in {seeds} (run.py --seed)", file=sys.stderr)
            return 2
        work = out_root / name
        work.mkdir(parents=True, exist_ok=True)
        artifacts = out_root / f"{name}-findings"
        artifacts.mkdir(exist_ok=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, name, str(work), str(seeds), f"-max_total_time={args.seconds}",
             "-timeout=5", "-rss_limit_mb=1024", f"-artifact_prefix={artifacts}/", "-print_final_stats=1"],
            cwd=HERE, capture_output=True, text=True, timeout=args.seconds + 120, check=False,
        )
        took = time.monotonic() - started
        stats = {}
        for line in proc.stderr.splitlines():
            if line.startswith("stat::"):
                key, _sep, value = line[len("stat::"):].partition(":")
                stats[key.strip()] = int(value.strip()) if value.strip().isdigit() else value.strip()
        found = sorted(str(p) for p in artifacts.iterdir())
        ok = proc.returncode == 0 and not found
        results[name] = {"ok": ok, "seconds": round(took, 1), "runs": stats.get("number_of_executed_units"),
                         "corpus": len(list(work.iterdir())), "findings": found}
        print(f"{name:11s} {'ok' if ok else 'FAILED'}: {results[name]['runs']} inputs in {took:.0f} s, "
              f"corpus {results[name]['corpus']}" + (f", findings {found}" if found else ""))
        if not ok:
            failed.append(name)
            print(proc.stderr[-3000:], file=sys.stderr)
    if not args.corpus_out:
        shutil.rmtree(out_root, ignore_errors=True)
    print(json.dumps({"fuzz": results, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
