"""How fast and how reliably does a preset solve MountainCar-v0, and where does the time go?

Trains one run per seed, each in a fresh process (two at a time on two cores), then scores
the policy each run leaves in param/net_param/actor_net.param with 100 greedy episodes of
the standard env on held-out seeds that no run selected on. Prints, per seed: the env
steps and the wall seconds from process start (imports included) until the periodic
evaluation first reached -110, the final score, and where the seconds went; then medians.

    python benchmarks/solve.py --seeds 10
    python benchmarks/solve.py --seeds 3 -- --preset tutorial   # flags after -- go to train
    python benchmarks/solve.py --code /tmp/old-main             # another checkout, same way
    python benchmarks/solve.py --seeds 10 --markdown docs/results.md docs/zh/results.md

--markdown writes the table, with the commit, date, CPU, Paddle version and command that made
it, between the `<!-- solve.py:begin -->` and `<!-- solve.py:end -->` markers of each page
(a page under a zh/ folder gets Chinese headers).
"""
import time

T0 = time.perf_counter()  # first, so that "from process start" includes every import

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib import metadata  # noqa: E402
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


HEADERS = {
    "en": ("seed", "steps to -110", "seconds to -110", "process seconds", "best eval", "held-out mean", "success",
           "median", "worst held-out mean"),
    "zh": ("种子", "达到 -110 的步数", "达到 -110 的秒数", "进程秒数", "最佳评估", "留出均值", "成功率",
           "中位数", "最差的留出均值"),
}


def table(rows: list[dict], language: str = "en") -> str:
    """The per-seed table in Markdown, its median row and the worst held-out mean."""
    h = HEADERS[language]
    lines = ["| " + " | ".join(h[:7]) + " |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {fmt(r['steps_to_solve'], ',')} | {fmt(r['seconds_to_solve'], '.1f')} | "
                     f"{r['process_seconds']:.1f} | {fmt(r['best_eval'], '.1f')} | {r['final_mean']:.1f} | "
                     f"{r['final_success']:.0%} |")
    solved = sum(r["final_mean"] >= SOLVED for r in rows)
    lines.append(f"| {h[7]} | {fmt(median([r['steps_to_solve'] for r in rows]), ',.0f')} | "
                 f"{fmt(median([r['seconds_to_solve'] for r in rows]), '.1f')} | "
                 f"{median([r['process_seconds'] for r in rows]):.1f} | {fmt(median([r['best_eval'] for r in rows]), '.1f')} | "
                 f"{median([r['final_mean'] for r in rows]):.1f} | {solved}/{len(rows)} >= -110 |")
    return "\n".join(lines) + f"\n\n{h[8]}: {min(r['final_mean'] for r in rows):.1f}"


def _git(code: Path, *argv: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(code), *argv], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(command: str, code: Path = ROOT) -> dict[str, str]:
    """What a measured table must say: the commit (with -dirty when the code that made the
    numbers has uncommitted changes), the date, the CPU, the Paddle version and the command."""
    commit = _git(code, "rev-parse", "--short=7", "HEAD") or "unknown"
    if _git(code, "status", "--porcelain", "--", "ppo_mountaincar.py", "ppo_toolbox", "benchmarks", "docs/make_figures.py",
            "param/pretrained"):
        commit += "-dirty"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    paddle = next((v for v in (_version(n) for n in ("paddlepaddle", "paddlepaddle-gpu")) if v), "unknown")
    return dict(commit=commit, date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                cpu=cpu, cores=str(os.cpu_count()), paddle=paddle, command=command)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_between_markers(page: Path, name: str, text: str) -> None:
    """Replace what lies between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a page."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = page.read_text(encoding="utf-8")
    if old.count(begin) != 1 or old.count(end) != 1:
        raise SystemExit(f"error: {page} needs one {begin} and one {end}")
    head, rest = old.split(begin)
    page.write_text(f"{head}{begin}\n{text}\n{end}{rest.split(end)[1]}", encoding="utf-8")


def markdown(rows: list[dict], page: Path, command: str, code: Path = ROOT) -> None:
    f = provenance(command, code)
    if "zh" in page.parts:
        said = (f"由 `{f['command']}` 生成：提交 {f['commit']}，{f['date']}，{f['cpu']}，{f['cores']} 核，Paddle {f['paddle']}。")
    else:
        said = (f"Made by `{f['command']}` at commit {f['commit']} on {f['date']} ({f['cpu']}, {f['cores']} cores, "
                f"Paddle {f['paddle']}).")
    write_between_markers(page, "solve.py", said + "\n\n" + table(rows, "zh" if "zh" in page.parts else "en"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 1..N")
    parser.add_argument("--seed-list", type=int, nargs="+", help="these seeds instead of 1..N")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--code", type=Path, default=ROOT, help="folder of the ppo_mountaincar.py to "
                        "measure, e.g. a checkout of the previous main [this repo]")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--markdown", type=Path, nargs="+", default=[], metavar="PAGE",
                        help="write the table between the solve.py markers of these pages")
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
    print(table(rows))
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
    argv = sys.argv[1:]  # the command as shown in the pages: without the pages and a --json file
    shown = [x for i, x in enumerate(argv) if x not in ("--markdown", "--json") and Path(x) not in a.markdown
             and not (i and argv[i - 1] == "--json")]
    for page in a.markdown:
        markdown(rows, page, "python benchmarks/solve.py " + shlex.join(shown), a.code)


if __name__ == "__main__":
    main()
