"""tune (ppo_toolbox/tune.py): a study completes and prints a command that parses; workers in two
processes, or on two machines through PostgreSQL, share one study without running a trial
twice; hopeless trials are pruned; an interrupted study continues; bad input is one line."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import ppo_mountaincar as pm
from ppo_toolbox import search_space, settings
from ppo_toolbox import tune as ppo_tune
from ppo_toolbox import cli as ppo_cli
import pytest

from helpers import ROOT, cli, one_line_error

TINY = ["--total-timesteps", "1024", "--num-envs", "4", "--num-steps", "64", "--batch-size", "64",
        "--eval-every", "512", "--eval-episodes", "5"]


def tune(tmp_path, *argv, timeout=300):
    return cli("tune", *TINY, "--logdir", str(tmp_path / "exp"), *argv, timeout=timeout, cwd=tmp_path)


def study_of(tmp_path, name="MountainCar-v0-default", storage=None):
    storage = storage or optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(tmp_path / "exp" / "tune" / f"{name}.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def finished(study):
    return [t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.PRUNED)]


def test_a_small_study_completes_and_prints_a_command_that_parses(tmp_path):
    proc = tune(tmp_path, "--trials", "2", "--seeds", "2")
    assert proc.returncode == 0, proc.stderr
    command = next(line for line in proc.stdout.splitlines() if line.startswith("python ppo_mountaincar.py "))
    args = ppo_cli.args_from_cli(ppo_cli.parse_command_line(command.split()[2:]))
    settings.validate(args)
    assert args.total_timesteps == 1024 and args.eval_every == 512  # the fixed flags are kept
    best = json.loads((tmp_path / "exp" / "tune" / "MountainCar-v0-default_best.json").read_text())
    assert best["command"] == command and set(best["params"]) == set(search_space.SEARCH_SPACE) - {"batch_size"}  # fixed by TINY
    assert "top trials:" in proc.stdout and "parameter importances:" in proc.stdout
    # each trial's runs are ordinary runs, named for the trial and seed, their logs in exp/ (a
    # head VisualDL's run list tells apart) and their files beside the study
    names = [ppo_tune.trial_run_name("MountainCar-v0-default", t, seed) for t in (0, 1) for seed in (1, 2)]
    assert sorted(p.name for p in (tmp_path / "exp").glob("t0*")) == names
    assert len({f"./exp/{n}"[:26] for n in names}) == 4
    assert all((tmp_path / "exp" / "tune" / "MountainCar-v0-default" / n / "actor_net.param").is_file() for n in names)
    # the same HParams columns for every trial as for any other run in exp/ (no NaN cells)
    columns = {tuple(hparam_names(tmp_path / "exp" / n)) for n in names}
    assert columns == {("preset", "env", "seed", "steps", "bs", "alr", "ent", "h")}, columns
    # plot finds a trial's policy beside its study
    plotted = cli("plot", str(tmp_path / "exp" / names[0]), "--out", str(tmp_path / "img"), cwd=tmp_path)
    assert plotted.returncode == 0 and (tmp_path / "img" / "policy_value.png").is_file(), plotted.stderr
    # --show finds the study by its name alone, and the best command keeps the fixed flags
    for flags in ([], ["--study", "MountainCar-v0-default"]):
        shown = cli("tune", "--show", "--logdir", str(tmp_path / "exp"), *flags, cwd=tmp_path)
        assert shown.returncode == 0 and command in shown.stdout, shown.stderr
    assert "no study 'nope'" in one_line_error(cli("tune", "--show", "--study", "nope", "--logdir",
                                                   str(tmp_path / "exp"), cwd=tmp_path))


def hparam_names(log_dir):
    from visualdl import LogReader
    [records] = log_dir.glob("vdlrecords.*")
    [entry] = LogReader(file_path=str(records)).get_data("hyper_parameters", "hparam")
    return [info.name for info in entry.hparam.hparamInfos]


def test_the_readmes_tune_lines_run_in_the_order_written(tmp_path):
    """The default space, then one's own (--space): two studies, not a refusal."""
    assert tune(tmp_path, "--trials", "1", "--seeds", "1").returncode == 0
    (tmp_path / "space.json").write_text(json.dumps({"actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True)}))
    own = tune(tmp_path, "--trials", "1", "--seeds", "1", "--space", str(tmp_path / "space.json"))
    assert own.returncode == 0, own.stderr
    assert sorted(p.name for p in (tmp_path / "exp" / "tune").glob("*.journal")) == [
        "MountainCar-v0-default-space.journal", "MountainCar-v0-default.journal"]
    shown = cli("tune", "--show", "--logdir", str(tmp_path / "exp"), cwd=tmp_path)  # the newest study
    assert shown.returncode == 0 and "| trial | score | actor_lr |" in shown.stdout, shown.stderr


def shared_study(tmp_path, storage_flags):
    """Two tune processes started together on one storage, 4 trials between them."""
    procs = [subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "tune", *TINY, "--logdir",
                               str(tmp_path / "exp"), "--trials", "4", "--seeds", "1", *storage_flags],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    return outputs


def assert_each_trial_ran_once(tmp_path, study):
    trials = finished(study)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    # a worker that started the last trial together with the other one gave it up untrained
    rest = [t for t in study.get_trials() if t not in trials]
    assert all(t.state == optuna.trial.TrialState.FAIL and "surplus" in t.user_attrs for t in rest), rest
    runs = sorted(p.name for p in (tmp_path / "exp").glob("t0*"))  # one run folder per trial: none ran twice
    assert runs == [ppo_tune.trial_run_name(study.study_name, n, 1) for n in range(4)]


def test_two_processes_share_one_study_without_running_a_trial_twice(tmp_path):
    shared_study(tmp_path, [])
    assert_each_trial_ran_once(tmp_path, study_of(tmp_path))


def _initdb():
    found = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return str(found) if found else None


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on 127.0.0.1, started and stopped here (as the postgres user
    when running as root, which the server refuses)."""
    initdb = _initdb()
    if initdb is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(initdb).parent
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "optuna")
    run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        yield f"postgresql://optuna@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(tmp_path, postgres):
    outputs = shared_study(tmp_path, ["--storage", postgres, "--study", "shared"])
    # the command line took the README's plain postgresql:// URL; here the driver is named
    study = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql://", "postgresql+psycopg://"))
    assert_each_trial_ran_once(tmp_path, study)
    print("".join(out for out, _ in outputs))


def test_a_hopeless_trial_is_pruned_early(tmp_path):
    # CartPole learns within a few thousand steps at lr 3e-3 and not at all at 1e-7: the
    # second trial is worse than the first at its first evaluation and stops there.
    fixed = dict(env_id="CartPole-v1", explore_bonus=0.0, total_timesteps=4096, num_envs=4, num_steps=128,
                 batch_size=128, update_epochs=4, eval_every=512, eval_episodes=5)
    base = pm.preset_args("default", **fixed, logdir=str(tmp_path / "exp"))
    space = search_space.check_space({"actor_lr": dict(type="float", low=1e-7, high=1e-2, log=True)}, fixed, base)
    study = ppo_tune.open_study(None, "prune", str(tmp_path / "exp"), space, fixed)
    study.pruner._n_startup_trials = 1
    study.enqueue_trial({"actor_lr": 3e-3})
    study.enqueue_trial({"actor_lr": 1e-7})
    ppo_tune.tune_worker(study, base, space, [1], trials=2)
    good, bad = study.get_trials()
    assert good.state == optuna.trial.TrialState.COMPLETE and bad.state == optuna.trial.TrialState.PRUNED
    assert len(good.intermediate_values) == 8 and len(bad.intermediate_values) < 8
    assert max(bad.intermediate_values) < 4096  # it stopped before its budget


def test_two_workers_starting_the_last_trial_together_run_it_once(tmp_path):
    # both workers saw one trial left and each started one: trials 0 and 1 are under way
    base = pm.preset_args("default", logdir=str(tmp_path / "exp"), total_timesteps=0)  # refused by train
    space = search_space.check_space({"actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True)}, {},
                                     pm.preset_args("default"))
    study = ppo_tune.open_study(None, "race", str(tmp_path / "exp"), space, {})
    first, second = study.ask(), study.ask()
    with pytest.raises(ppo_tune.SurplusTrial):
        ppo_tune.run_trial(second, base, space, [1], trials=1)
    assert "surplus" in second.user_attrs and "actor_lr" not in second.params  # given up before sampling
    assert not list((tmp_path / "exp").glob("t0*"))
    # the lower number gets past the budget check, to training (which refuses total_timesteps=0)
    with pytest.raises(optuna.TrialPruned):
        ppo_tune.run_trial(first, base, space, [1], trials=1)
    assert "total" in first.user_attrs["invalid"]
    with pytest.raises(optuna.TrialPruned):  # and with room for two, so does the higher one
        ppo_tune.run_trial(second, base, space, [1], trials=2)


def test_an_interrupted_study_resumes(tmp_path):
    argv = [sys.executable, str(ROOT / "ppo_mountaincar.py"), "tune", *TINY, "--total-timesteps", "4096",
            "--logdir", str(tmp_path / "exp"), "--trials", "3", "--seeds", "1"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "exp" / "tune" / "MountainCar-v0-default.journal"
    deadline = time.time() + 120
    while time.time() < deadline and not (journal.exists() and finished(study_of(tmp_path))):
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command to continue" in err, err
    assert "Traceback" not in err and "--resume" not in err  # a trial's resume line would not continue the study
    interrupted = study_of(tmp_path)
    assert 1 <= len(finished(interrupted)) < 3
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in interrupted.get_trials())
    stopped = [t for t in interrupted.get_trials() if t.state == optuna.trial.TrialState.FAIL]  # none: between trials
    assert not [p for t in stopped for p in (tmp_path / "exp").glob(f"t{t.number:04d}-*")]  # half-done runs are gone
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(finished(study_of(tmp_path))) == 3  # continued, not restarted
    for t in stopped:  # run again, with the same settings
        [rerun] = [r for r in study_of(tmp_path).get_trials() if r.user_attrs.get("run_again") == t.number]
        assert rerun.state == optuna.trial.TrialState.COMPLETE and rerun.params == t.params


def test_bad_tune_input_is_one_line_and_leaves_the_study_alone(tmp_path, capsys, monkeypatch):
    assert tune(tmp_path, "--trials", "1", "--seeds", "1").returncode == 0
    journal = tmp_path / "exp" / "tune" / "MountainCar-v0-default.journal"
    before = journal.read_bytes()
    (tmp_path / "unknown.json").write_text(json.dumps({"learning_rate": dict(type="float", low=1e-4, high=1e-2)}))
    (tmp_path / "empty.json").write_text(json.dumps({"actor_lr": dict(type="float", low=1e-2, high=1e-2)}))
    (tmp_path / "other.json").write_text(json.dumps({"actor_lr": dict(type="float", low=1e-4, high=1e-2)}))
    cases = [(["--storage", "postgresql//nohost"], "neither a database URL"),
             (["--storage", "postgresql://nohost:notaport/db"], "cannot open the study storage"),
             (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open the study storage"),
             (["--space", str(tmp_path / "unknown.json")], "unknown parameter 'learning_rate'"),
             (["--space", str(tmp_path / "empty.json")], "needs low < high"),
             (["--trials", "0"], "--trials must be in 1..100,000"),
             (["--space", str(tmp_path / "other.json"), "--study", "MountainCar-v0-default"],
              "created with another search space")]
    monkeypatch.chdir(tmp_path)
    for flags, words in cases:  # in-process: main() ends with the line and the code the command ends with
        assert ppo_cli.main(["tune", *TINY, "--logdir", str(tmp_path / "exp"), "--seeds", "1", *flags]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and words in err[0], (flags, err)
    assert journal.read_bytes() == before


def test_a_storage_password_is_never_printed_nor_on_a_command_line(tmp_path, postgres, capsys):
    secret = "S3 cr\tet%40pw"  # a space, a tab, an @ (percent-encoded): the server trusts the user, any password works
    url = postgres.replace("optuna@", f"optuna:{secret}@")
    proc = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "tune", *TINY, "--logdir",
                             str(tmp_path / "exp"), "--trials", "1", "--seeds", "1", "--storage", url,
                             "--study", "masked"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while proc.poll() is None:  # every process's command line while the study runs
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                seen.add(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert any("--worker" in c for c in seen)  # a worker was seen, and it had no password
    assert not [c for c in seen if "--worker" in c and any(f in c for f in forms(secret))]  # the user typed it
    assert not any(f in out + err for f in forms(secret)) and "optuna:***@" in err
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())  # the run's logs and files
    assert written and not any(f.encode() in written for f in forms(secret))
    assert len(finished(optuna.load_study(study_name="masked", storage=postgres.replace(
        "postgresql://", "postgresql+psycopg://")))) == 1  # the worker had the URL all the same
    for bad in (f"postgresql://u:{secret}@127.0.0.1:1/db", f"postgresql//u:{secret}@host/db"):  # unreachable, malformed
        assert ppo_cli.main(["tune", "--storage", bad, "--trials", "1", "--logdir", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err
        assert not any(f in err for f in forms(secret)) and "***" in err, err


def test_the_objective_scores_a_trial_by_its_seeds_robustly(tmp_path, monkeypatch):
    """--objective mean|median|worst|quantile:Q: a trial's score from its seeds' scores."""
    scores = [-120.0, -100.0, -110.0, -150.0]
    assert ppo_tune.objective_of("mean")(scores) == -120.0
    assert ppo_tune.objective_of("median")(scores) == -115.0
    assert ppo_tune.objective_of("worst")(scores) == -150.0
    assert ppo_tune.objective_of("quantile:0")(scores) == -150.0 and ppo_tune.objective_of("quantile:1")(scores) == -100.0
    for bad in ("best", "quantile:2", "quantile:x", "quantile"):
        with pytest.raises(settings.UsageError, match="--objective must be"):
            ppo_tune.objective_of(bad)
    # a trial of two seeds scores the worst of them (training stood in for: seed s evaluates at
    # -100 - 10 s, then -90 - 10 s), and keeps each seed's score
    def fake_train(args, on_evaluation):
        for step, ret in ((512, -100.0 - 10 * args.seed), (1024, -90.0 - 10 * args.seed)):
            on_evaluation(step, {"mean_return": ret})
        return {"interrupted": 0}
    monkeypatch.setattr(ppo_tune.pm, "train", fake_train)
    base = pm.Args(total_timesteps=1024, eval_every=512, logdir=str(tmp_path / "exp"), quiet=True)
    space = search_space.check_space({"actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True)}, {}, base)
    for objective, value in (("worst", -115.0), ("mean", -110.0), ("quantile:1", -105.0)):
        study = optuna.create_study(direction="maximize")
        study.optimize(lambda t: ppo_tune.run_trial(t, base, space, [1, 2], trials=1, objective=objective), n_trials=1)
        [trial] = study.trials
        assert trial.user_attrs["seed_scores"] == [-105.0, -115.0] and trial.value == value, objective
    assert ppo_tune.default_study_name(base, None, "quantile:0.25") == "MountainCar-v0-default-quantile0.25"


PASSWORDS = ["S3cret pw", "S3cr\tet-pw", "S3cr\net-pw", "S3cr@et4x", "S3cr:et/pw", "S3cr%40et4x", "S3crét-pw", "S3cr?et#pw"]


def forms(password):
    """The password as typed, decoded, and the pieces a parser that splits at @ may print (of
    3 characters or more: two would turn up in any binary file)."""
    from urllib.parse import unquote
    return {f for p in (password, unquote(password)) for f in (p, *p.split("@")) if len(f) >= 3}


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_worker_command_line_holds_a_password(password):
    url = f"postgresql://u:{password}@127.0.0.1:1/db"
    for flags in (["--storage", url], [f"--storage={url}"]):
        argv = ["tune", "--trials", "2", *flags, "--jobs", "2"]
        ppo_cli.parse_command_line(argv)  # the command line tune is given parses
        worker = ppo_tune.worker_command(argv)
        assert worker[2:] == ["tune", "--trials", "2", "--jobs", "2", "--worker"]
        assert not any(f in " ".join(worker) for f in forms(password))
    for flags in (["--stor", url], ["--storag", url], [f"--stora={url}"]):  # an abbreviation is refused, masked
        with pytest.raises(settings.UsageError, match="no flag --stor") as refused:
            ppo_cli.parse_command_line(["tune", *flags])
        assert not any(f in str(refused.value) for f in forms(password))


@pytest.mark.parametrize("password", PASSWORDS)
def test_every_password_a_url_can_carry_is_masked(password, tmp_path, capsys):
    for url in (f"postgresql://u:{password}@127.0.0.1:1/db", f"postgresql//u:{password}@host/db"):
        assert ppo_cli.main(["tune", "--storage", url, "--trials", "1", "--logdir", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "***" in err and not any(f in err for f in forms(password)), err


def test_an_interrupted_trial_runs_again_with_the_same_settings_and_leaves_no_runs(tmp_path, monkeypatch):
    stops = [2]  # the first run is stopped by a signal (SIGINT) after its first evaluation; the rest finish

    def fake_train(args, on_evaluation):
        for folder in (Path(args.logdir) / args.run_name, Path(args.param_dir) / args.run_name):
            folder.mkdir(parents=True)
            (folder / "part").write_text("written before the stop")
        on_evaluation(512, {"mean_return": -150.0 - args.seed})
        return {"interrupted": stops.pop() if stops else 0}
    monkeypatch.setattr(ppo_tune.pm, "train", fake_train)
    base = pm.Args(total_timesteps=1024, eval_every=512, logdir=str(tmp_path / "exp"), quiet=True)
    space = search_space.check_space({"actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True),
                                      "hidden_sizes": dict(type="categorical", choices=["64", "64,64"])}, {}, base)
    study = ppo_tune.open_study(None, "again", base.logdir, space, {})
    with pytest.raises(KeyboardInterrupt):
        ppo_tune.tune_worker(study, base, space, [1, 2], trials=2)
    [stopped, waiting] = study.get_trials()
    assert stopped.state == optuna.trial.TrialState.FAIL and waiting.state == optuna.trial.TrialState.WAITING
    assert waiting.system_attrs["fixed_params"] == stopped.params  # enqueued with its settings
    assert not list((tmp_path / "exp").rglob("part"))  # its runs are gone
    ppo_tune.tune_worker(study, base, space, [1, 2], trials=2)
    rerun = study.trials[1]
    assert rerun.state == optuna.trial.TrialState.COMPLETE and rerun.params == stopped.params
    assert rerun.user_attrs["run_again"] == stopped.number and len(finished(study)) == 2
    assert sorted(p.name for p in (tmp_path / "exp").glob("t0*")) == [
        ppo_tune.trial_run_name("again", n, s) for n in (1, 2) for s in (1, 2)]


def test_no_eta_before_the_first_trial_ends(capsys):
    import io
    out = io.StringIO()
    bar = ppo_tune.trials_bar(10, 3, file=out, mininterval=0)  # a study continued: 3 trials done before
    for _ in range(3):
        time.sleep(0.1)
        bar.update(0)  # tune polls the study twice a second
    assert "<?" in out.getvalue().split("\r")[-1]  # none: no trial has ended since it started
    bar.update(1)
    shown = out.getvalue().split("\r")[-1]
    rate = re.search(r"([\d.]+)(trial/s|s/trial)", shown)
    per_second = float(rate[1]) if rate[2] == "trial/s" else 1 / float(rate[1])
    assert per_second < 4, shown  # 1 trial in the 0.3 s or more since the start, not in the last poll's 0.1 s
    bar.close()


def test_importances_only_from_enough_completed_trials(tmp_path):
    distribution = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    study = optuna.create_study(direction="maximize")
    for k in range(12):
        study.add_trial(optuna.trial.create_trial(params={"actor_lr": 1e-4 * 1.4 ** k}, value=-200.0 + k,
                                                  distributions={"actor_lr": distribution}))
        report = ppo_tune.tune_report(study, [], tmp_path / "best.json")
        shown = "parameter importances: actor_lr 1.00" in report
        assert shown == (k + 1 >= ppo_tune.MIN_TRIALS_FOR_IMPORTANCES), report
        assert shown or f"not shown before 10 trials have completed ({k + 1} so far)" in report


def test_workers_stop_when_tune_is_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "tune", *TINY, "--total-timesteps",
                             "10000000", "--logdir", str(tmp_path / "exp"), "--trials", "2", "--seeds", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120  # a worker trains trial 0
    while time.time() < deadline and not list((tmp_path / "exp").glob("t0000-*/vdlrecords.*")):
        time.sleep(0.2)
    [worker] = [p for p in Path("/proc").glob("[0-9]*") if _parent_of(p) == proc.pid]
    proc.kill()  # SIGKILL: tune cannot pass anything on
    proc.communicate(timeout=60)
    while time.time() < deadline and worker.exists() and _parent_of(worker) is not None:
        time.sleep(0.2)
    assert not worker.exists() or _parent_of(worker) is None  # gone (or a zombie of init's)
    trials = study_of(tmp_path).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert trials[1].system_attrs["fixed_params"] == trials[0].params and not list((tmp_path / "exp").glob("t0*"))


def _parent_of(proc_dir):
    """The parent's process id of a live process (None: gone, or a zombie)."""
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else int(ppid)
