"""The command line, `python ppo_mountaincar.py [train|eval|replay|plot|tune] ...`: the parser
(the training flags generated from the script's `Args`) and `main`, which turns every mistake
into one line and an exit code. Top layer: it imports `ppo_mountaincar` and the toolbox."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import errno
import glob
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

import ppo_mountaincar as pm

from .acting import NumpyNet
from .checkpoint import CHECKPOINT, read_checkpoint, resumed_config
from .errors import TrainingDiverged, UsageError
from .evaluation import HOLDOUT_SEED, check_episode_seeds, env_for, evaluate, make_policy, reward_threshold, verdict
from .figures import latest_run, plot_run
from .network_files import read_network
from .replay import replay
from .settings import field_types, parse_sizes
from .startup import release_signals
from .studies import STORAGE_ENV, masked


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--stor URL` would pass for --storage, and every filter of the
    command line (the worker's, without the URL) would have to know each abbreviation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # one line, exit code 2
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every field of `Args`, typed by the field's type; unset flags stay None,
    so that the preset's value applies."""
    types = field_types(pm.Args)
    for f in dataclasses.fields(pm.Args):
        kw: dict[str, Any] = dict(default=None, help=f.metadata["help"])
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if types[f.name] is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = parse_sizes if types[f.name] is tuple else types[f.name]
        shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        kw["help"] += f" [default preset: {shown}]"
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)


def build_parser() -> argparse.ArgumentParser:
    """The command line: `train` and `tune` (their flags generated from `Args`), `eval`,
    `replay`, `export` and `plot`."""
    parser = _Parser(prog="ppo_mountaincar.py", description=pm.__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    train = _add_train(sub)
    _add_tune(sub)
    _add_policy_command(sub, "eval", "Evaluate a saved actor on the standard env (its own time limit).", 100)
    _add_policy_command(sub, "replay", "Play a saved actor and show it: a GIF, or a window.", 3)
    _add_export(sub)
    _add_plot(sub)
    others = [name for name in sub.choices if name != "train"]  # `--help` is train's: it lists the rest
    train.description += f" Other commands: {', '.join(others)} (python ppo_mountaincar.py {others[0]} --help)."
    return parser


TRUST = dict(action="store_true", help="let --env-id name a module to import, as in mymodule:MyEnv-v0 "
             "(Gymnasium imports it: only for code you trust)")


def _add_train(sub: Any) -> argparse.ArgumentParser:
    tp = sub.add_parser("train", help="train a policy (the default command)",
                        description="Train PPO. Flags left unset take the preset's value.")
    add_training_flags(tp)
    tp.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint "
                    f"(param/<run name>/{CHECKPOINT}); its config is reused")
    tp.add_argument("--allow-env-module", **TRUST)
    return tp


def _add_tune(sub: Any) -> None:
    tn = sub.add_parser("tune", help="search hyperparameters with Optuna, several seeds per trial",
                        description="Search hyperparameters: each trial trains --seeds runs and scores the "
                        "mean greedy return of their periodic evaluations. Training flags given here are "
                        "fixed for every trial; the rest are searched (--space). The same command continues "
                        "an interrupted study; with --storage postgresql://... several machines share one.")
    add_training_flags(tn)
    tn.add_argument("--trials", type=int, default=50, help="trials in the study, all workers together [50]")
    tn.add_argument("--jobs", type=int, default=1, help="trials at a time on this machine, one process each "
                    "(one per core) [1]")
    tn.add_argument("--seeds", type=int, default=3, help="training runs per trial, seeds 1..N [3]")
    tn.add_argument("--objective", default="mean", help="a trial's score from its seeds' scores: mean, median, "
                    "worst, or quantile:Q (e.g. quantile:0.25), to search for settings every seed solves with [mean]")
    tn.add_argument("--storage", help="database URL shared by several machines, e.g. "
                    "postgresql://user:password@host/optuna [a journal file exp/tune/STUDY.journal]")
    tn.add_argument("--study", help="study name [ENV-PRESET, e.g. MountainCar-v0-default; with --space: "
                    "ENV-PRESET-SPACEFILE; with --show: the newest study]")
    tn.add_argument("--space", help="JSON file with the search space (replaces the default; see README)")
    tn.add_argument("--show", action="store_true", help="print a study's best settings, top trials and "
                    "parameter importances, and exit (the study's name alone finds it; no other flags needed)")
    tn.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --jobs processes


def _add_policy_command(sub: Any, name: str, help: str, episodes: int) -> None:
    """`eval` or `replay`: a saved actor run for some episodes."""
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("path", help="actor .param file, e.g. param/net_param/actor_net.param"
                   + (", or a folder written by export, or its policy.onnx" if name == "eval" else ""))
    p.add_argument("--episodes", type=int, default=episodes, help=f"episodes to run [{episodes}]")
    p.add_argument("--seed", type=int, default=HOLDOUT_SEED, help="seed of the first episode "
                   f"(+1 for each next) [{HOLDOUT_SEED}: seeds no training run selects on]")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the argmax")
    p.add_argument("--env-id", default=None, help="env to run (default: the one in the file)")
    p.add_argument("--allow-env-module", **TRUST)
    if name == "eval":
        p.add_argument("--json", action="store_true", help="print one JSON object")
    else:
        p.add_argument("--render", choices=("gif", "human"), default="gif",
                       help="gif: write an animated GIF; human: open a window (needs a display) [gif]")
        p.add_argument("--out", default=None, help="GIF path [param/img/replay.gif]")


def _add_export(sub: Any) -> None:
    xp = sub.add_parser("export", help="export a saved actor for Paddle Inference and ONNX",
                        description="Write a Paddle Inference model (policy.json + policy.pdiparams), an ONNX "
                        "model (policy.onnx, with requirements-export.txt installed) and a README card, each "
                        "checked against the .param on 10,000 states.")
    xp.add_argument("path", help="actor .param file, e.g. param/net_param/actor_net.param")
    xp.add_argument("--out", default=str(Path("param") / "export"), help="folder for the files [param/export]")
    xp.add_argument("--allow-env-module", **TRUST)
    xp.set_defaults(env_id=None)


def _add_plot(sub: Any) -> None:
    pp = sub.add_parser("plot", help="draw a run's figures into param/img",
                        description="Draw the training curve, the losses, and the policy and value maps.")
    pp.add_argument("run", nargs="?", help="run folder under ./exp [the newest]")
    pp.add_argument("--logdir", default="exp", help="where to look for the newest run [exp]")
    pp.add_argument("--param", help="actor .param for the policy/value maps [the run's own: "
                    "param/<run name>/actor_net.param]")
    pp.add_argument("--param-dir", default="param", help="where the runs' folders are [param]")
    pp.add_argument("--out", default=str(Path("param") / "img"), help="folder for the PNGs [param/img]")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands of `build_parser()`'s parser, by name, in the order they were added."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def given_flags(ns: argparse.Namespace) -> dict[str, Any]:
    """The training settings the user actually typed."""
    return {f.name: getattr(ns, f.name) for f in dataclasses.fields(pm.Args) if getattr(ns, f.name, None) is not None}


def args_from_cli(ns: argparse.Namespace, resumed: dict[str, Any] | None = None) -> pm.Args:
    """Preset values first, then every flag the user actually gave. When resuming, the
    checkpoint's config is the base and only its resumable settings may change."""
    given = given_flags(ns)
    if resumed is not None:
        return pm.Args(**resumed_config(resumed, given, pm.Args))
    return pm.preset_args(given.pop("preset", "default"), **given)


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; bare flags mean `train` (so --help shows the training flags). A
    word that is no command, or a flag the command does not have, is refused naming the
    nearest one (never echoing the values after it, which may hold a password)."""
    parser, argv = build_parser(), list(argv)
    commands = subcommands(parser)
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        near = _nearest(argv[0], list(commands))
        raise UsageError(f"no command {argv[0][:40]!r}; " + ("did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
                                                              if near else "the commands are " + ", ".join(commands)))
    if not argv or argv[0] not in commands:
        argv.insert(0, "train")
    ns, extra = parser.parse_known_args(argv)
    if extra:
        command, flags = commands[ns.command], [e.split("=", 1)[0] for e in extra if e.startswith("-")]
        options = [o for o in command._option_string_actions if o.startswith("--") and o not in ("--help", "--worker")]
        near = _nearest(flags[0], options) if flags else [f"the command '{n}'" for n in _nearest(extra[0], list(commands))]
        raise UsageError((f"no flag {flags[0][:40]} for {ns.command}" if flags else
                          f"{ns.command} takes no argument {extra[0][:40]!r}")
                         + (f"; did you mean {' or '.join(near)}?" if near else "") + f" (see {command.prog} --help)")
    return ns


def _nearest(word: str, names: list[str]) -> list[str]:
    """The names `word` begins (an abbreviation), else the ones it nearly spells (a typo)."""
    return [n for n in names if n.startswith(word)][:3] or difflib.get_close_matches(word, names, n=3)


class _Interrupts:
    """Ctrl-C and SIGTERM as KeyboardInterrupt, remembering which came (the exit code says it);
    SIGINT too when it was inherited as ignored (a shell script's background job). Training
    installs its own while it runs. Only the main thread may install handlers."""

    def __enter__(self) -> _Interrupts:
        self.signum, self.handlers = 0, {}
        if threading.current_thread() is threading.main_thread():
            self.handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (2 for a usage error, 128 + N for signal N)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    release_signals()  # Paddle's crash report off, our handlers back, signals held at start-up delivered
    with _Interrupts() as interrupts:
        try:
            return _run(argv)
        except KeyboardInterrupt as e:  # nothing half-written stays: every file is written atomically
            signum = getattr(e, "signum", 0) or interrupts.signum or signal.SIGINT
            print(_interrupted(signal.Signals(signum).name, getattr(e, "run_dir", None), argv), file=sys.stderr)
            return 128 + signum


def _interrupted(name: str, run_dir: str | None, argv: list[str]) -> str:
    """The one line for a stop that could not wait for a clean end."""
    if run_dir is not None:  # a second one during a training run
        checkpoint = Path(run_dir) / CHECKPOINT
        return f"{name} again: stopped at once; " + (
            f"resume the last checkpoint with: python ppo_mountaincar.py train --resume {checkpoint}"
            if checkpoint.is_file() else f"no checkpoint had been saved yet in {run_dir}")
    if not argv or argv[0] == "train" or argv[0].startswith("-"):
        return f"{name}: stopped before training began; nothing was written"
    return "interrupted"


def _run(argv: list[str]) -> int:
    try:
        ns = parse_command_line(argv)
        trusted_env = ns.env_id if getattr(ns, "allow_env_module", False) else None  # typed here, never from a file
        if ns.command == "train":
            return _train_command(ns, trusted_env)
        if ns.command == "tune":
            from .tune import tune_command
            return tune_command(ns, argv, args_from_cli(ns), given_flags(ns))
        if ns.command == "plot":
            return _plot_command(ns)
        if ns.command == "export":
            from .export import export_policy
            r = export_policy(ns.path, ns.out, trusted_env)
            for f in r["files"]:
                print(f"wrote {f} ({Path(f).stat().st_size / 1024:.1f} KB)")
            for key, name in (("paddle_inference", "Paddle Inference"), ("onnx", "onnxruntime")):
                if key in r:
                    print(f"{name}: max logit difference {r[key]['max_logit_difference']:.1e} against the .param, "
                          f"the same greedy action on {r[key]['same_greedy_action']:.0%} of {r['parity_states']:,} states")
            if r["why_no_onnx"]:
                print(f"note: {r['why_no_onnx']}", file=sys.stderr)
            return 0
        if ns.command == "eval":
            check_episode_seeds(ns.seed, ns.episodes)
            policy, env_id = _eval_policy(ns, trusted_env)
            result = evaluate(policy, env_id, ns.episodes, ns.seed, trusted_env=trusted_env)
            success = "" if result["success_rate"] is None else f"success {result['success_rate']:.0%}, "
            threshold = reward_threshold(env_id)  # None: the env names none
            solved = "" if threshold is None else ": {} ({})".format(*verdict(result["mean_return"], threshold))
            print(json.dumps(dict(result, threshold=threshold,
                                  solved=None if threshold is None else result["mean_return"] >= threshold))
                  if ns.json else f"{env_id}, {ns.episodes} episodes: mean return {result['mean_return']:.1f} "
                  f"+/- {result['std_return']:.1f}, {success}mean steps {result['mean_steps']:.1f}{solved}")
        else:
            for r in replay(ns.path, ns.episodes, ns.render, ns.out, ns.seed, not ns.stochastic, ns.env_id,
                            trusted_env):
                print(f"episode {r['episode']}: {r['steps']} steps, return {r['episode_return']:.0f}"
                      + (f" ({r['said']})" if r["success"] else ""))
            if ns.render == "gif":
                print(f"wrote {r['gif']}")
        return 0
    except UsageError as e:
        said = masked(str(e), *argv, os.environ.get(STORAGE_ENV))  # any URL typed, e.g. in a mistyped flag
        print(f"error: {' '.join(said.splitlines())}", file=sys.stderr)
        return 2
    except OSError as e:  # writing a GIF or a figure: a full disk, a read-only folder, a file for a folder
        if isinstance(e, BrokenPipeError):  # `eval | head`: the reader has gone, nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        print(f"error: cannot write {e.filename or 'a file'} ({e.strerror}); choose another path "
              "or free space", file=sys.stderr)
        return 2


def _plot_command(ns: argparse.Namespace) -> int:
    """`plot [RUN] [--param FILE]`: a run's curves and its own policy's maps; with --param
    alone, that file's maps, beside the curves of the run whose folder holds it, if any
    (never an unrelated run's)."""
    if ns.param is not None and not Path(ns.param).is_file():
        raise UsageError(f"no such file: {ns.param}; pass --param an actor .param file, or leave it out "
                         "for the run's own policy")
    if ns.param is not None and ns.run is None:
        run = param_run(Path(ns.param), Path(ns.logdir))
        print(f"note: curves of {run}, maps of {ns.param}" if run is not None else
              f"note: no run under {ns.logdir} holds {ns.param}: drew its maps only "
              "(pass a run folder to draw its curves too)", file=sys.stderr)
    else:
        run = Path(ns.run) if ns.run else latest_run(ns.logdir)
    actor = ns.param or run_policy(run, Path(ns.param_dir))
    written = plot_run(run, actor, ns.out)
    if not written:
        raise UsageError(f"nothing to draw: {ns.param} has no 2-D observations to map, and no run under "
                         f"{ns.logdir} holds it; pass its run folder")
    for path in written:
        print(path)
    if ns.param is None and not Path(actor).is_file():
        print(f"note: no policy of {run.name} in {ns.param_dir}; drew its curves only", file=sys.stderr)
    return 0


def param_run(param: Path, logdir: Path) -> Path | None:
    """The run whose folder holds a policy file (param/<run name>/, or a tune trial's
    exp/tune/<study>/<run name>/), if its records are under `logdir`."""
    run = logdir / param.resolve().parent.name
    return run if any(run.glob("vdlrecords.*")) else None


def run_policy(log_dir: Path, param_dir: Path) -> Path:
    """Where a run's policy is: <param dir>/<run name>/, or for a tune trial (its logs in
    exp/, its files in exp/tune/<study>/<run name>/) beside its study."""
    own = param_dir / log_dir.name / "actor_net.param"
    trial = sorted(log_dir.parent.glob(f"tune/*/{glob.escape(log_dir.name)}/actor_net.param"))
    return own if own.is_file() or not trial else trial[0]


def _contents(run_dir: Path) -> str:
    """What a finished run's folder holds, in words."""
    names = {p.name for p in run_dir.iterdir()}
    parts = ["policy", "best" if "actor_net_best.param" in names else "",
             "numbered snapshots" if any(n[len("actor_net_"):-len(".param")].isdigit() for n in names) else "",
             "checkpoint" if CHECKPOINT in names else "", "figures in img/" if "img" in names else ""]
    return ", ".join(p for p in parts if p)


def _eval_policy(ns: argparse.Namespace, trusted_env: str | None) -> tuple[Any, str]:
    """The policy `eval` runs and its env: an actor .param, an exported folder (Paddle
    Inference) or its policy.onnx (onnxruntime)."""
    path = Path(ns.path)
    if path.is_dir() or path.suffix == ".onnx":
        from .acting import log_softmax
        from .export import ExportedPolicy, read_info
        folder = path if path.is_dir() else path.parent
        info = read_info(folder)
        env_id = env_for(info, ns.env_id, trusted_env)
        exported, rng = ExportedPolicy(folder, "onnx" if path.suffix == ".onnx" else "paddle"), np.random.default_rng(ns.seed)

        def policy(obs: np.ndarray) -> np.ndarray:
            return pm.sample_actions(log_softmax(exported.logits(obs)), rng, not ns.stochastic)[0]
        return policy, env_id
    actor = read_network(ns.path, "actor")
    env_id = env_for(actor.meta, ns.env_id, trusted_env)
    return make_policy(NumpyNet.from_state(actor.state, actor.meta), greedy=not ns.stochastic, seed=ns.seed), env_id


def _train_command(ns: argparse.Namespace, trusted_env: str | None) -> int:
    checkpoint = read_checkpoint(ns.resume, pm.Args) if ns.resume else None
    args = args_from_cli(ns, checkpoint and checkpoint["config"])
    try:
        summary = pm.train(args, checkpoint, trusted_env=trusted_env)
    except TrainingDiverged as e:
        print(f"error: training stopped: {e}; the run's files under {args.param_dir}/ are "
              "from before it; lower --actor-lr / --critic-lr, or --resume the last checkpoint", file=sys.stderr)
        return 1
    except OSError as e:
        checkpoint = Path(e.run_dir) / CHECKPOINT if hasattr(e, "run_dir") else None  # the run's, if it began
        go_on = (f"resume with: python ppo_mountaincar.py train --resume {checkpoint}" if checkpoint and checkpoint.is_file()
                 else f"--resume {ns.resume} again" if ns.resume else "start the run again (no checkpoint had been saved)")
        fix = "" if e.errno == errno.ENOENT else "free space or fix permissions, then "
        print(f"error: could not write {e.filename or 'a file'} ({e.strerror}); files already saved are "
              f"intact; {fix}{go_on}", file=sys.stderr)
        return 1
    for line in end_of_run(summary, args):
        print(line, file=sys.stderr if summary["interrupted"] else sys.stdout)
    return 128 + summary["interrupted"] if summary["interrupted"] else 0


def end_of_run(summary: dict[str, Any], args: pm.Args) -> list[str]:
    """What a finished (or stopped) run tells the user: how it went, where its files are, what next."""
    signame = signal.Signals(summary["interrupted"]).name if summary["interrupted"] else ""
    run_dir, checkpoint = summary["run_dir"], summary["checkpoint"]
    if summary["stopped_in"] == "training":
        return [f"{signame}: stopped at step {summary['global_step']}; checkpoint saved to {checkpoint}",
                f"resume with: python ppo_mountaincar.py train --resume {checkpoint}  (in Python: resume({checkpoint!r}))"]
    if summary["stopped_in"] == "final files":
        skipped = f" (figures skipped: draw them with python ppo_mountaincar.py plot {summary['log_dir']})"
        return [f"{signame}: the run had finished; its policy and checkpoint are saved in {run_dir}"
                + (skipped if args.plots else "")]
    if summary["stopped_in"] == "figures":
        return [f"{signame}: the run had finished; its policy, checkpoint and figures are saved in {run_dir}"]
    lines = [f"trained {summary['global_step']} steps, {summary['episodes_done']} episodes in {summary['seconds']:.1f} s"]
    if summary["best_eval"]["mean_return"] > -np.inf:
        b = summary["best_eval"]
        lines.append(f"best evaluation: mean return {b['mean_return']:.1f} at step {b['global_step']} (kept as the policy)")
    lines += [held_out_line(summary["held_out"], args),
              f"run folder: {run_dir} ({_contents(Path(run_dir))})",
              f"policy: {summary['latest_path']} (a copy: the latest finished run's)",
              f"logs: {summary['log_dir']}; watch them with: "
              f"visualdl --logdir {Path(args.logdir)} --language en --disable-telemetry",
              f"next: python ppo_mountaincar.py replay {summary['latest_path']}  (a GIF of the policy; "
              "also: eval, plot, export)"]
    return lines


def held_out_line(held_out: dict[str, Any], args: pm.Args) -> str:
    """ "solved: held-out -104.8 +/- 12.0 over 100 episodes (>= -110)", or "not solved: ...;
    try: ..." with what to change, or the score alone where the env names no threshold."""
    score = f"held-out {held_out['mean_return']:.1f} +/- {held_out['std_return']:.1f} over {held_out['episodes']} episodes"
    if held_out["solved"] is None:
        return f"{score} ({args.env_id} names no return at which it counts as solved)"
    said, comparison = verdict(held_out["mean_return"], held_out["threshold"])
    if held_out["solved"]:
        return f"{said}: {score} ({comparison})"
    usual = pm.preset_args(args.preset) if args.preset in pm.PRESETS else pm.Args()  # at least the preset's budget
    budget = f"--episodes {max(2 * args.episodes, usual.episodes)}" if args.episodes else \
        f"--total-timesteps {max(2 * args.total_timesteps, usual.total_timesteps)}"
    other = "" if args.preset == "best" else ", --preset best"
    return (f"{said}: {score} ({comparison}); try: a longer run ({budget}){other}, "
            f"or another --seed (this was {args.seed})")
