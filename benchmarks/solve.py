"""How fast and how reliably does a preset solve MountainCar-v0, and where does the time go?

Trains one run per seed, each in a fresh process (two at a time on two cores), then scores
the policy each run leaves in param/net_param/actor_net.param with 100 greedy episodes of
the standard env on held-out seeds that no run selected on. Prints, per seed: the env
steps and the wall seconds from process start (imports included) until the periodic
evaluation first reached -110, the final score, and where the seconds went; then medians.

    python benchmarks/solve.py --seeds 10
    python benchmarks/solve.py --seeds 3 -- --preset tutorial   # flags after -- go to train
    python benchmarks/solve.py --code /tmp/old-main             # another checkout, same way
"""
import time

T0 = time.perf_counter()  # first, so that "from process start" includes every import

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLVED = -110.0
PHASES = ("imports", "collect", "update", "evaluate", "log_and_save", "final_files", "other")


def one_seed(seed: int, code: Path, train_flags: list[str], out: str) -> dict:
    """Train and score one seed in this process; `code` holds the ppo_mountaincar.py to run."""
    sys.path.insert(0, str(code))
    import ppo_mountaincar as pm
    try:  # the command line moved to the toolbox; older checkouts keep it in the script
        from ppo_toolbox import cli as ppo_cli
        from ppo_toolbox.evaluation import HOLDOUT_SEED
    except ImportError:
        ppo_cli, HOLDOUT_SEED = pm, pm.HOLDOUT_SEED
    imported = time.perf_counter()
    ns = ppo_cli.build_parser().parse_args(["train", *train_flags, "--seed", str(seed), "--quiet",
                                       "--logdir", f"{out}/exp", "--param-dir", f"{out}/param{seed}"])
    args = ppo_cli.args_from_cli(ns)
    called = time.perf_counter()
    summary = pm.train(args)
    ended = time.perf_counter()
    # a main from before the time split lacks "started": its loop began about when train was called
    started = summary.get("started", called)
    split = dict(summary.get("time_split", {}), imports=imported - T0)
    split["other"] = ended - T0 - sum(split.values())
    first = next((h for h in summary["eval_history"] if h["mean_return"] >= SOLVED), None)
    # the run's own held-out score (the same 100 episodes); older checkouts lack it
    final = summary.get("held_out") or pm.evaluate(pm.load_policy(summary["actor_path"]), args.env_id, 100, HOLDOUT_SEED)
    return dict(seed=seed, steps_to_solve=first and first["global_step"],
                seconds_to_solve=first and started - T0 + first["seconds"], train_steps=summary["global_step"],
                process_seconds=ended - T0,
                best_eval=summary["best_eval"]["mean_return"] if summary["eval_history"] else None,
                final_mean=final["mean_return"], final_success=final["success_rate"], time_split=split,
                eval_history=[(h["global_step"], round(h["mean_return"], 1)) for h in summary["eval_history"]])


def median(values: list) -> float | None:
    """Median over all runs, a run that never got there counting as infinitely late
    (None when more than half never got there)."""
    m = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..N")
    parser.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 1..N")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--code", type=Path, default=ROOT, help="folder of the ppo_mountaincar.py to "
                        "measure, e.g. a checkout of the previous main [this repo]")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: one seed
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("train_flags", nargs="*", help="flags for `train`, after --")
    a = parser.parse_args()
    if a.one is not None:
        print(json.dumps(one_seed(a.one, a.code.resolve(), a.train_flags, a.out)))
        return

    def spawn(seed: int) -> dict:
        proc = subprocess.run([sys.executable, __file__, "--one", str(seed), "--code", str(a.code), "--out", out,
                               "--", *a.train_flags], capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with tempfile.TemporaryDirectory() as out, ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(spawn, a.seed_list or range(1, a.seeds + 1)))
    print(f"code: {a.code.resolve()}; train flags: {' '.join(a.train_flags) or '(default preset)'}")
    print("| seed | steps to -110 | seconds to -110 | process seconds | best eval | final mean (held-out) "
          "| final success |\n|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {fmt(r['steps_to_solve'], ',')} | {fmt(r['seconds_to_solve'], '.1f')} | "
              f"{r['process_seconds']:.1f} | {fmt(r['best_eval'], '.1f')} | {r['final_mean']:.1f} | "
              f"{r['final_success']:.0%} |")
    solved = sum(r["final_mean"] >= SOLVED for r in rows)
    print(f"| median | {fmt(median([r['steps_to_solve'] for r in rows]), ',.0f')} | "
          f"{fmt(median([r['seconds_to_solve'] for r in rows]), '.1f')} | "
          f"{median([r['process_seconds'] for r in rows]):.1f} | {fmt(median([r['best_eval'] for r in rows]), '.1f')} | "
          f"{median([r['final_mean'] for r in rows]):.1f} | {solved}/{len(rows)} >= -110 |")
    print(f"worst final mean: {min(r['final_mean'] for r in rows):.1f}")
    phases = [p for p in PHASES if all(p in r["time_split"] for r in rows)]
    print("\nwhere the seconds of each process go:\n| seed | " + " | ".join(phases) + " | total |\n|---:|"
          + "---:|" * (len(phases) + 1))
    for r in rows:
        print(f"| {r['seed']} | " + " | ".join(f"{r['time_split'][p]:.2f}" for p in phases)
              + f" | {r['process_seconds']:.2f} |")
    print("| median | " + " | ".join(f"{statistics.median(r['time_split'][p] for r in rows):.2f}" for p in phases)
          + f" | {statistics.median(r['process_seconds'] for r in rows):.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
