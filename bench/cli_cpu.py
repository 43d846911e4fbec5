"""CPU a one-off `gateway` command costs (issue 22: under 0.5 s for any command that starts no server).

    python bench/cli_cpu.py [--runs 7] [--database-url URL]

Runs each command below in a fresh interpreter through the installed ``gateway`` entry point, ``--runs``
times, on a migrated database, and prints the median user+system CPU of each beside what the bare
interpreter costs in the same run (``python -c pass``). Exits non-zero when a median reaches the bound.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.migrate import upgrade  # noqa: E402

BOUND = 0.5
COMMANDS = [
    ["--version"], ["keys", "new"], ["attention", "count"], ["attention", "list"], ["ledger", "unresolved"],
    ["notifications", "list"], ["risk", "status"], ["stores", "list"], ["accounts", "list"],
    ["retention", "run", "--dry-run"], ["sandbox", "settle"],
]


def cpu_of(command: list[str], env: dict[str, str]) -> float:
    """User+system seconds of one run of ``command`` (and anything it started)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", help="defaults to a fresh SQLite file")
    args = parser.parse_args()
    entry = shutil.which("gateway", path=str(Path(sys.executable).parent)) or shutil.which("gateway")
    if entry is None:
        sys.exit("the gateway entry point is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database_url or f"sqlite:///{scratch}/gateway.sqlite3"
        upgrade(url)
        env = {**os.environ, "DATABASE_URL": url}
        runs: dict[str, list[float]] = {"python -c pass": [], **{" ".join(c): [] for c in COMMANDS}}
        for _ in range(args.runs):  # interleaved, so a busy moment touches every command alike
            runs["python -c pass"].append(cpu_of([sys.executable, "-c", "pass"], env))
            for command in COMMANDS:
                runs[" ".join(command)].append(cpu_of([entry, *command], env))
    worst = 0.0
    for name, seconds in runs.items():
        median = statistics.median(seconds)
        worst = max(worst, median) if name != "python -c pass" else worst
        print(f"{name:<32} median {median:.3f} s CPU  (min {min(seconds):.3f}, max {max(seconds):.3f})")
    print(f"worst median {worst:.3f} s; bound {BOUND} s")
    return 0 if worst < BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
