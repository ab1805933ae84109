"""Hyperparameter search (`tune`): Optuna, several seeds per trial, on one machine or many
sharing a database (`studies`), each trial a few runs of the script's `train`; the workers,
one process each, and the report. Top layer: it imports `ppo_mountaincar`, optuna (when
called), numpy and the toolbox."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import TrainingDiverged, UsageError
from .logbook import progress_bar_class
from .param_files import atomic_write
from .search_space import SEARCH_SPACE, check_space, read_space, suggest
from .settings import validate
from .studies import STORAGE_ENV, as_flags, masked, newest_study, open_study

import ppo_mountaincar as pm  # noqa: E402 - the top layer drives the script


STOP = threading.Event()  # a worker's stop, asked while no training run was under way
MIN_TRIALS_FOR_IMPORTANCES = 10  # fANOVA's importances from fewer completed trials change with every new one


def worker_command(argv: list[str]) -> list[str]:
    """A worker's command line: the user's `tune ...` with --worker and without its --storage
    flag (a worker reads the URL from STORAGE_ENV; no flag has an abbreviation that would
    slip past this filter)."""
    out, skip = [], False
    for a in argv[1:] if argv[:1] == ["tune"] else argv:
        if skip:
            skip = False
        elif a == "--storage":
            skip = True
        elif not a.startswith("--storage=") and a != "--worker":
            out.append(a)
    return [sys.executable, str(Path(pm.__file__).resolve()), "tune", *out, "--worker"]


class SurplusTrial(Exception):
    """A trial beyond --trials, which ends at once as failed (so no worker counts it)."""


def objective_of(text: str) -> Callable[[list[float]], float]:
    """--objective: how a trial's per-seed scores make its score. `mean` rewards the typical
    seed, `median` ignores an outlier, `worst` and `quantile:Q` (e.g. quantile:0.1) search
    for settings that solve on every seed, not on most."""
    if text == "mean":
        return lambda scores: float(np.mean(scores))
    if text == "median":
        return lambda scores: float(np.median(scores))
    if text == "worst":
        return lambda scores: float(np.min(scores))
    try:
        q = float(text.split(":", 1)[1]) if text.startswith("quantile:") else None
    except ValueError:
        q = None
    if q is None or not 0 <= q <= 1:
        raise UsageError("--objective must be mean, median, worst or quantile:Q with Q in 0..1, e.g. quantile:0.25")
    return lambda scores: float(np.quantile(scores, q))


def run_trial(trial: Any, base: pm.Args, space: dict[str, Any], seeds: list[int], trials: int,
              objective: str = "mean") -> float:
    """Train one run per seed with the trial's settings; each seed scores the mean greedy
    return of all its periodic evaluations (rewarding a good policy soon and kept), and the
    trial scores the `objective` of those (mean, median, worst, quantile:Q). Reports after
    every evaluation, so the pruner can stop a hopeless trial.

    Workers check the budget before they start a trial, so two of them can start the last
    one together; trial numbers are unique in any storage, so the lower number runs and the
    other ends as a surplus trial without training. An interrupted trial is run again, with
    the same settings, as a new trial; its runs' folders are removed."""
    import optuna
    score_of = objective_of(objective)
    if _counted(trial.study, below=trial.number) >= trials:
        trial.set_user_attr("surplus", "another worker started the study's last trial at the same moment")
        raise SurplusTrial()
    params = {name: suggest(trial, name, spec) for name, spec in space.items()}
    study_name = trial.study.study_name
    try:
        return _train_seeds(trial, base, params, seeds, score_of)
    except KeyboardInterrupt:
        for seed in seeds:  # its runs, half done or done: the trial run again makes them anew
            name = trial_run_name(study_name, trial.number, seed)
            for folder in (Path(base.logdir) / name, Path(base.logdir) / "tune" / study_name / name):
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder, ignore_errors=True)
        trial.study.enqueue_trial(trial.params, user_attrs={"run_again": trial.number})
        trial.set_user_attr("interrupted", "run again as a new trial, its runs removed")
        raise


def _train_seeds(trial: Any, base: pm.Args, params: dict[str, Any], seeds: list[int],
                 score_of: Callable[[list[float]], float]) -> float:
    """The runs of one trial, one per seed; its score."""
    import optuna
    study_name, scores = trial.study.study_name, []
    for k, seed in enumerate(seeds):
        name = trial_run_name(study_name, trial.number, seed)
        args = dataclasses.replace(base, **params, seed=seed, run_name=name, quiet=True, plots=False,
                                   param_dir=str(Path(base.logdir) / "tune" / study_name))
        evaluations: list[float] = []

        def report(global_step: int, result: dict[str, Any]) -> bool:
            evaluations.append(result["mean_return"])
            trial.report(score_of(scores + [float(np.mean(evaluations))]), k * base.total_timesteps + global_step)
            return trial.should_prune() or STOP.is_set()
        _stop_if_asked()
        try:  # a stopped trial's "resume with" line would not continue the study: tune says how
            with contextlib.redirect_stderr(io.StringIO()):
                summary = pm.train(args, on_evaluation=report)
        except (UsageError, TrainingDiverged) as e:  # settings that cannot work: no score
            trial.set_user_attr("invalid", str(e))
            raise optuna.TrialPruned(str(e)) from None
        if summary["interrupted"]:
            raise KeyboardInterrupt
        _stop_if_asked()
        if trial.should_prune():
            raise optuna.TrialPruned()
        scores.append(float(np.mean(evaluations)))
    trial.set_user_attr("seed_scores", scores)
    return score_of(scores)


def trial_run_name(study_name: str, number: int, seed: int) -> str:
    """t<trial>-s<seed>-<4 hex>__<study>: a head VisualDL's run list tells apart (the hex
    digits: a digest of the study's name, so two studies' trials differ too)."""
    digest = hashlib.sha1(study_name.encode()).hexdigest()[:4]
    return f"t{number:04d}-s{seed}-{digest}__{study_name}"


def _counted(study: Any, below: int | None = None) -> int:
    """Trials finished (complete or pruned) or under way, numbered below `below` if given:
    what --trials counts (failed ones, e.g. interrupted, are run again)."""
    import optuna
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING)
    return sum(below is None or t.number < below for t in study.get_trials(deepcopy=False, states=states))


def tune_worker(study: Any, base: pm.Args, space: dict[str, Any], seeds: list[int], trials: int,
                objective: str = "mean") -> None:
    """Run trials until the study holds `trials` of them (other workers' included). Ctrl-C
    or SIGTERM while Optuna keeps its books (training has handlers of its own, a clean stop)
    is noted and acted on at the next safe point: a KeyboardInterrupt inside `study.ask`
    would leave a trial RUNNING for ever."""
    in_main = threading.current_thread() is threading.main_thread()
    noted = {sig: signal.signal(sig, lambda signum, frame: STOP.set()) for sig in (signal.SIGINT, signal.SIGTERM)} \
        if in_main else {}
    try:
        while _counted(study) < trials:
            _stop_if_asked()
            study.optimize(lambda t: run_trial(t, base, space, seeds, trials, objective), n_trials=1,
                           catch=(SurplusTrial,), gc_after_trial=True)
    finally:
        STOP.clear()
        for sig, handler in noted.items():
            signal.signal(sig, handler)


def _stop_if_asked() -> None:
    if STOP.is_set():
        raise KeyboardInterrupt


def trials_bar(total: int, done: int, **kwargs: Any) -> Any:
    """The progress bar of a study's trials. Its ETA: from the trials finished since it
    started, none before the first (tqdm's moving average, smoothing > 0, would divide one
    trial by the half second since the last poll)."""
    return progress_bar_class()(total=total, initial=min(done, total), unit="trial", dynamic_ncols=True,
                                smoothing=0, **kwargs)


def stop_with_parent() -> None:
    """Stop this worker as on SIGTERM (its trial ends cleanly and is run again later) when
    tune's process ends, even by SIGKILL: the worker's stdin is a pipe that process holds
    open, and the system closes it when the process dies, on every OS (prctl's parent-death
    signal is Linux's alone, and fires when the thread that started the worker ends)."""
    import _thread

    def watch() -> None:  # os.read, not sys.stdin's: a daemon thread in a buffered read aborts the exit
        while os.read(stdin, 1024):  # b"" when the other end is closed
            pass
        _thread.interrupt_main(signal.SIGTERM)
    stdin = sys.stdin.fileno()
    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def tune_report(study: Any, fixed_flags: list[str], out: Path) -> str:
    """The best trial as a command line (also written to `out` as JSON), the top trials,
    and Optuna's parameter importances."""
    import optuna
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return "no trial has completed yet"
    best = study.best_trial
    searched = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in best.params.items()}
    command = "python ppo_mountaincar.py " + " ".join([*fixed_flags, *as_flags(searched), "--seed", "1"])
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(dict(
        study=study.study_name, trial=best.number, score=best.value, params=best.params,
        fixed_flags=fixed_flags, command=command), indent=2) + "\n"))
    objective = study.user_attrs.get("described", {}).get("objective", "mean")
    lines = [f"best: trial {best.number}, score {best.value:.1f} (the {objective}, over its seeds, of each seed's "
             "mean greedy return over its evaluations)",
             command, f"(also in {out})", "", "top trials:"]
    names = list(best.params)
    lines.append("| trial | score | " + " | ".join(names) + " | each seed |")
    for t in sorted(done, key=lambda t: -t.value)[:5]:
        lines.append(f"| {t.number} | {t.value:.1f} | " + " | ".join(
            f"{t.params.get(n):.3g}" if isinstance(t.params.get(n), float) else str(t.params.get(n)) for n in names)
            + " | " + " / ".join(f"{x:.1f}" for x in t.user_attrs.get("seed_scores", [])) + " |")
    if len(done) < MIN_TRIALS_FOR_IMPORTANCES:
        lines += ["", f"parameter importances: not shown before {MIN_TRIALS_FOR_IMPORTANCES} trials have completed "
                  f"({len(done)} so far): from fewer they are noise"]
    else:
        try:
            importances = optuna.importance.get_param_importances(study)
            lines += ["", "parameter importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())]
        except (RuntimeError, ValueError) as e:
            lines += ["", f"parameter importances: not yet ({e})"]
    states = {s.name.lower(): n for s in optuna.trial.TrialState
              if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
    lines.insert(0, "trials: " + ", ".join(f"{n} {s}" for s, n in states.items()))
    return "\n".join(lines)


def default_study_name(base: pm.Args, space_file: str | None, objective: str = "mean") -> str:
    """<env>-<preset>, then -<space file's name> for a --space of one's own and -<objective>
    for another --objective, so that the README's lines (the default space, one's own, a
    robust objective) make studies of their own."""
    name = (f"{base.env_id}-{base.preset}" + (f"-{Path(space_file).stem}" if space_file else "")
            + (f"-{objective.replace(':', '')}" if objective != "mean" else ""))
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:80].strip(".") or "study"


def tune_command(ns: Any, argv: list[str], base: pm.Args, given: dict[str, Any]) -> int:
    """`tune`: the study, its workers (one process each) and the report. `base` is the
    training settings of the command line, `given` the flags typed (fixed for every trial)."""
    _check_tune_flags(ns, base)
    storage = ns.storage or (os.environ.get(STORAGE_ENV) if ns.worker else None)
    if ns.show:  # the study's name alone finds it: its own flags are stored with it
        study_name = ns.study or newest_study(storage, base.logdir)
        study = open_study(storage, study_name, base.logdir, create=False)
        print(tune_report(study, study.user_attrs.get("fixed_flags", []),
                          Path(base.logdir) / "tune" / f"{study_name}_best.json"))
        return 0
    space = check_space(read_space(ns.space) if ns.space else SEARCH_SPACE, given, base)
    study_name = ns.study or default_study_name(base, ns.space, ns.objective)
    objective_of(ns.objective)  # refused before anything is made
    study = open_study(storage, study_name, base.logdir, space, given, objective=ns.objective)
    if ns.worker:
        import paddle
        stop_with_parent()
        paddle.base.core.set_num_threads(1)
        try:
            tune_worker(study, base, space, list(range(1, ns.seeds + 1)), ns.trials, ns.objective)
        except KeyboardInterrupt:
            return 130
        return 0
    print(f"study '{study_name}': {ns.trials} trials of {ns.seeds} seed{'s' * (ns.seeds != 1)}, {ns.jobs} at a time; "
          f"storage: {masked(storage, storage) if storage else Path(base.logdir) / 'tune' / (study_name + '.journal')}",
          file=sys.stderr)
    code = run_workers(study, worker_command(argv), storage, ns.jobs, ns.trials)
    if code == 0:
        print(tune_report(study, as_flags(given), Path(base.logdir) / "tune" / f"{study_name}_best.json"))
    return code


def _check_tune_flags(ns: Any, base: pm.Args) -> None:
    """tune's own flags, and the training settings it needs (periodic evaluations to score)."""
    if not (0 < ns.trials <= 100_000 and 0 < ns.jobs <= 64 and 0 < ns.seeds <= 100):
        raise UsageError("--trials must be in 1..100,000, --jobs in 1..64 and --seeds in 1..100, "
                         "e.g. --trials 50 --jobs 2 --seeds 3")
    validate(base)
    if base.eval_every <= 0:
        raise UsageError("tune scores the periodic evaluations: --eval-every must be > 0, e.g. 4096")
    if ns.study is not None and not (0 < len(ns.study) <= 80 and all(c.isalnum() or c in "._-" for c in ns.study)
                                     and ns.study.strip(".")):
        raise UsageError("--study must be a plain name of at most 80 letters, digits and . _ - (not only dots)")


def run_workers(study: Any, command: list[str], storage: str | None, jobs: int, trials: int) -> int:
    """Start `jobs` workers running `command` and show the study's progress until they end;
    a Ctrl-C or SIGTERM stops them cleanly (their trials to be run again). The exit code."""
    import optuna
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **({STORAGE_ENV: storage} if storage else {}))
    # a Ctrl-C or SIGTERM is noted and acted on in the loop below: raised as an exception, it
    # could land in a __del__ (tqdm's), where Python drops it, and the workers would run on
    stopped: list[int] = []
    noted = {sig: signal.signal(sig, lambda signum, frame: stopped.append(signum))
             for sig in (signal.SIGINT, signal.SIGTERM)} if threading.current_thread() is threading.main_thread() else {}
    try:
        # each worker in its own session (POSIX): a Ctrl-C reaches this process only, which passes it
        # on once; its stdin a pipe this process holds, closed when it ends (see stop_with_parent)
        workers = [subprocess.Popen(command, env=env, stdin=subprocess.PIPE, **(
            {"start_new_session": True} if os.name == "posix" else {})) for _ in range(jobs)]
        done = lambda: len(study.get_trials(deepcopy=False, states=finished))  # noqa: E731
        bar = trials_bar(trials, done())
        while not stopped and any(w.poll() is None for w in workers):
            time.sleep(0.5)
            bar.update(min(done(), trials) - bar.n)
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
                bar.set_postfix(best=f"{study.best_value:.1f}", refresh=False)
        if stopped:
            for w in workers:
                if w.poll() is None and os.name == "posix":  # elsewhere the Ctrl-C reached them too
                    w.send_signal(signal.SIGINT)  # the running trials stop cleanly, to be run again
            for w in workers:
                try:
                    w.wait(60)
                except subprocess.TimeoutExpired:
                    w.kill()
            bar.close()
            print(f"interrupted: {done()} of {trials} trials finished; run the same command to continue",
                  file=sys.stderr)
            return 130
    finally:
        for sig, handler in noted.items():
            signal.signal(sig, handler)
    bar.update(min(done(), trials) - bar.n)
    bar.close()
    failed = [w.returncode for w in workers if w.returncode]
    if failed:
        print(f"error: a tune worker failed (exit code {failed[0]}); its message is above", file=sys.stderr)
        return 1
    return 0
