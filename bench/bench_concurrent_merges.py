"""Concurrent merges under load, at the size issue 21 names: 16 ansible-playbook merges x 20 rounds, and 5 rounds
with one writer killed (SIGKILL) mid-merge, both cores kept busy and a 20-100 ms jitter proxy in front of the
registry. Runs tests/integration/test_concurrent_merges.py with MERGE_STRESS_ROUNDS / MERGE_STRESS_KILL_ROUNDS
(override with --rounds / --kill-rounds) and prints each round's wall time and the totals; any lost platform or
failed run fails the test and this script (exit status 1). About 25 minutes on 2 cores.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kill-rounds", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, MERGE_STRESS_ROUNDS=str(args.rounds), MERGE_STRESS_KILL_ROUNDS=str(args.kill_rounds))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/integration/test_concurrent_merges.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    rounds = [float(m) for m in re.findall(r"^round \d+: 16 writers, ([0-9.]+) s$", proc.stdout, re.M)]
    kills = re.findall(r"killed round .*$", proc.stdout, re.M)
    print("concurrent merges: %d rounds x 16 writers, %d rounds with a writer killed: %s (%.0f s)"
          % (args.rounds, args.kill_rounds, "no platform lost, no run failed" if proc.returncode == 0 else "FAILED",
             time.monotonic() - started))
    if rounds:
        print("  round wall time: min %.1f s, median %.1f s, max %.1f s"
              % (min(rounds), sorted(rounds)[len(rounds) // 2], max(rounds)))
    for line in kills:
        print("  " + line)
    if proc.returncode != 0:
        print(proc.stdout[-5000:])
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
