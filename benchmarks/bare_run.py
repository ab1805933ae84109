"""Wall seconds of the bare `python ppo_mountaincar.py`, the first command every user runs,
for this checkout and, side by side, others (e.g. the previous main in a temporary checkout).

Each run is the exact command (no flags unless given) in a fresh empty folder (so its exp/ and param/
land there), timed from process start to exit; checkouts alternate so that machine load
hits them alike; the median is reported.

    python benchmarks/bare_run.py --repeats 5
    git worktree add /tmp/old-main <commit>
    python benchmarks/bare_run.py --code /tmp/old-main --code . --repeats 5
    python benchmarks/bare_run.py --repeats 3 -- --preset best   # flags after -- go to train
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_run(code: Path, flags: list[str]) -> float:
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(code / "ppo_mountaincar.py"), *flags], cwd=cwd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, action="append", help="a folder holding ppo_mountaincar.py "
                        "(repeat to compare) [this repo]")
    parser.add_argument("--repeats", type=int, default=5, help="runs per checkout [5]")
    parser.add_argument("flags", nargs="*", help="flags for the command, after -- (none: the bare command)")
    a = parser.parse_args()
    codes = [c.resolve() for c in (a.code or [ROOT])]
    times: dict[Path, list[float]] = {c: [] for c in codes}
    for _ in range(a.repeats):
        for code in codes:
            times[code].append(bare_run(code, a.flags))
    print(f"`python ppo_mountaincar.py{''.join(' ' + f for f in a.flags)}`, wall seconds, {a.repeats} runs each, "
          "alternating\n"
          "| checkout | median | runs |\n|---|---:|---|")
    for code, ts in times.items():
        print(f"| {code} | {statistics.median(ts):.1f} | {', '.join(f'{t:.1f}' for t in ts)} |")
    if len(codes) == 2:
        first, second = (statistics.median(times[c]) for c in codes)
        print(f"ratio (first / second): {first / second:.2f}x")


if __name__ == "__main__":
    main()
