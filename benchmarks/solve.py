"""How fast and how reliably does a preset solve MountainCar-v0?

Trains one run per seed (two at a time on two cores), then scores the policy each run
leaves in param/net_param/actor_net.param with 100 greedy episodes of the standard env on
held-out seeds that no run selected on. Prints, per seed, the env steps and seconds until
the periodic evaluation first reached -110, and the final score; then the medians.

    python benchmarks/solve.py --seeds 10
    python benchmarks/solve.py --seeds 3 -- --preset tutorial   # flags after -- go to train
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ppo_mountaincar as pm  # noqa: E402

SOLVED = -110.0


def run_seed(job: tuple[int, list[str], str]) -> dict:
    seed, train_flags, out = job
    ns = pm.build_parser().parse_args(["train", *train_flags, "--seed", str(seed), "--quiet",
                                       "--logdir", f"{out}/exp", "--param-dir", f"{out}/param{seed}"])
    args = pm.args_from_cli(ns)
    summary = pm.train(args)
    first = next((h for h in summary["eval_history"] if h["mean_return"] >= SOLVED), None)
    final = pm.evaluate(pm.load_policy(summary["actor_path"]), args.env_id, 100, pm.HOLDOUT_SEED)
    return dict(seed=seed, steps_to_solve=first and first["global_step"],
                seconds_to_solve=first and first["seconds"], train_steps=summary["global_step"],
                train_seconds=summary["seconds"], best_eval=summary["best_eval"].get("mean_return"),
                final_mean=final["mean_return"], final_success=final["success_rate"],
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
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("train_flags", nargs="*", help="flags for `train`, after --")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        seeds = a.seed_list or range(1, a.seeds + 1)
        jobs = [(s, a.train_flags, out) for s in seeds]
        pool = mp.get_context("spawn").Pool(a.jobs)
        rows = pool.map(run_seed, jobs, chunksize=1)
        pool.close()
        pool.join()
    print(f"train flags: {' '.join(a.train_flags) or '(default preset)'}")
    print("| seed | steps to -110 | seconds to -110 | train steps | train s | best eval | "
          "final mean (held-out) | final success |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {fmt(r['steps_to_solve'], ',')} | {fmt(r['seconds_to_solve'], '.1f')} | "
              f"{r['train_steps']:,} | {r['train_seconds']:.1f} | {fmt(r['best_eval'], '.1f')} | "
              f"{r['final_mean']:.1f} | {r['final_success']:.0%} |")
    solved = sum(r["final_mean"] >= SOLVED for r in rows)
    print(f"| median | {fmt(median([r['steps_to_solve'] for r in rows]), ',.0f')} | "
          f"{fmt(median([r['seconds_to_solve'] for r in rows]), '.1f')} | "
          f"{median([r['train_steps'] for r in rows]):,.0f} | {median([r['train_seconds'] for r in rows]):.1f} | "
          f"{fmt(median([r['best_eval'] for r in rows]), '.1f')} | {median([r['final_mean'] for r in rows]):.1f} | "
          f"{solved}/{len(rows)} >= -110 |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
