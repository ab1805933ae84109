"""Run bookkeeping (ppo_toolbox/run.py and its rooms): VisualDL records, stop signals and resume, unwritable folders,
NaN."""
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ppo_mountaincar as pm
from ppo_toolbox import best_policy, checkpoint, figures, folders, logbook, param_files, settings
from ppo_toolbox import cli as ppo_cli
from ppo_toolbox import run as ppo_run
import pytest
from PIL import Image

from helpers import load_checkpoint, QUICK, ROOT, SMALL, cli, one_line_error, scalars_of


def test_visualdl_records_hold_the_maps_and_the_hyperparameters(outdirs):
    from visualdl import LogReader
    args = pm.Args(**{**SMALL, "eval_every": 1024, "eval_episodes": 10, "plots": False}, **outdirs)
    summary = pm.train(args)
    [record] = (Path(outdirs["logdir"]) / summary["run_name"]).glob("vdlrecords.*")
    reader = LogReader(file_path=str(record))
    tags = reader.get_tags()
    assert sorted(tags["image"]) == ["maps/policy", "maps/value"]
    for tag in tags["image"]:  # one picture per periodic evaluation, at its env step
        images = reader.get_data("image", tag)
        assert [im.id for im in images] == [1024, 2048]
        picture = np.asarray(Image.open(io.BytesIO(images[-1].image.encoded_image_string)).convert("RGB"))
        assert picture.shape[0] > 200 and picture.shape[1] > 300 and picture[:200].std() > 0
    [hparams] = reader.get_data("hyper_parameters", "hparam")
    values = {h.name: h.WhichOneof("type") and getattr(h, h.WhichOneof("type")) for h in hparams.hparam.hparamInfos}
    assert values["seed"] == 1 and values["preset"] == "default" and values["env"] == "MountainCar-v0"
    assert values["steps"] == args.total_timesteps and values["bs"] == args.batch_size
    # the same 8 columns whatever the run changed (here num_envs and update_epochs, which are
    # in the run's name), so that VisualDL's rows line up
    assert list(values) == ["preset", "env", "seed", "steps", "bs", "alr", "ent", "h"]  # in Args' order
    assert "envs=" in summary["run_name"] and "epochs=" in summary["run_name"]
    [text] = reader.get_data("text", "run_name")  # the whole name, which the run list cuts
    assert text.text.encoded_text_string == summary["run_name"]
    metrics = [m.name for m in hparams.hparam.metricInfos]
    assert metrics == ["heldout"]
    # a label longer than 7 characters can freeze VisualDL's parallel-coordinates view
    assert max(len(name) for name in [*values, *metrics, *settings.short_names(pm.Args).values()]) <= 7
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    for metric in metrics:  # every metric the HParams panel shows is a logged scalar
        assert scalars[metric]
    shown = scalars["heldout"][-1][1]  # exact in float32: no -109.16999816894531
    assert shown == round(summary["held_out"]["mean_return"] * 8) / 8 and float(np.float32(shown)) == shown


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resume_continues_the_counters(tmp_path, sig, code):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    proc = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "--total-timesteps",
                             "10000000", *QUICK, *dirs], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "exp").glob("*/vdlrecords.*")) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # let it train a few updates
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    ckpt_path, = (tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")  # in the run's own folder
    assert f"--resume {ckpt_path}" in err and "Traceback" not in err
    saved = load_checkpoint(ckpt_path)
    first, first_steps = saved["counters"], saved["agent"]["gradient_steps"]
    assert first["rollouts"] > 0 and first["global_step"] > 0

    budget = first["global_step"] + 4 * 256
    done = cli("train", "--resume", str(ckpt_path), "--total-timesteps", str(budget), "--quiet")
    assert done.returncode == 0, done.stderr
    second = load_checkpoint(ckpt_path)
    c = second["counters"]
    assert c["global_step"] >= budget and c["rollouts"] >= first["rollouts"] + 4
    assert second["agent"]["gradient_steps"] == first_steps + (c["rollouts"] - first["rollouts"]) * 2 * 2
    # the VisualDL steps continue in the same run folder: one point per update (at its last
    # minibatch step, 2 epochs x 2 minibatches), none logged twice, none missing
    scalars = figures.read_scalars(tmp_path / "exp" / second["run_name"])
    steps = scalars["loss/action_loss"][0].tolist()
    assert steps == list(range(3, second["agent"]["gradient_steps"], 4))


def test_resume_refuses_to_change_the_network(tmp_path):
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=1, total_timesteps=256,
                   quiet=True, plots=False, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "p"))
    ckpt = pm.train(args)["checkpoint"]
    line = one_line_error(cli("train", "--resume", ckpt, "--hidden-sizes", "32"))
    assert "--hidden-sizes cannot change" in line
    line = one_line_error(cli("train", "--resume", str(Path(ckpt).with_name("actor_net.param"))))
    assert "not a training checkpoint" in line


def test_unwritable_output_folder_is_a_usage_error_and_nothing_is_lost(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "a_file"  # root ignores permissions: use a file where a folder must go
        blocker.write_text("keep me")
        target = blocker / "param"
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    line = one_line_error(cli("--param-dir", str(target), "--logdir", str(tmp_path / "exp"), "--quiet"))
    assert "cannot write" in line and "--param-dir" in line
    if os.geteuid() == 0:
        assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("poison, named", [("weights", "a weight"), ("stats", "value_loss")])
def test_nan_stops_training_and_keeps_the_last_good_files(tmp_path, monkeypatch, capsys, poison, named):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    real_update = pm.PPO.update
    calls = {"n": 0}

    def poisoned(self):
        stats = real_update(self)
        calls["n"] += 1
        if calls["n"] == 3 and poison == "weights":  # the third update blows up
            w = self.actor_net.net[0].weight
            w.set_value(np.full(w.shape, np.nan, np.float32))
        elif calls["n"] == 3:  # or only its statistics
            stats["value_loss"] = stats["value_loss"] * np.inf
        return stats

    monkeypatch.setattr(pm.PPO, "update", poisoned)
    code = ppo_cli.main(["--total-timesteps", "4096", "--save-every", "1", *QUICK, *dirs])
    assert code == 1
    assert f"{named} became NaN or infinite at rollout 3" in capsys.readouterr().err  # counted before the check
    net = next((tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")).parent
    ckpt = load_checkpoint(net / checkpoint.CHECKPOINT)
    assert ckpt["counters"]["rollouts"] == 2  # the last good one
    assert np.isfinite(ckpt["agent"]["actor"]["net.0.weight"]).all()
    # the last good snapshot is there, the checkpoint's weights; no file holds the poisoned ones
    last = param_files.load_state(net / "actor_net_000002.param")
    assert np.array_equal(last["net.0.weight"], ckpt["agent"]["actor"]["net.0.weight"])
    assert all(np.isfinite(param_files.load_state(f)["net.0.weight"]).all() for f in net.glob("*.param"))


def test_two_trainings_in_one_folder_never_share_files(tmp_path):
    # two runs started at once under one name (seeds 1 and 2, so their networks differ):
    # each gets folders of its own, and each folder holds its own run's network
    def start(seed):
        return subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "--total-timesteps", "1024",
                                 *QUICK, "--seed", str(seed), "--run-name", "same", "--logdir", str(tmp_path / "exp"),
                                 "--param-dir", str(tmp_path / "param")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    procs = [start(1), start(2)]
    assert all(p.wait(timeout=180) == 0 for p in procs), [p.stderr.read() for p in procs]
    assert sorted(p.name for p in (tmp_path / "param").iterdir()) == ["net_param", "same", "same-2"]
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["same", "same-2"]
    seeds, weights = [], []
    for name in ("same", "same-2"):
        ckpt = load_checkpoint(tmp_path / "param" / name / checkpoint.CHECKPOINT)
        actor = param_files.load_state(tmp_path / "param" / name / "actor_net.param")
        # one evaluation, at the end: the kept policy is the run's final network, in its checkpoint
        assert ckpt["run_name"] == name and np.array_equal(actor["net.0.weight"], ckpt["agent"]["actor"]["net.0.weight"])
        seeds.append(ckpt["config"]["seed"])
        weights.append(actor["net.0.weight"])
    assert sorted(seeds) == [1, 2] and not np.array_equal(*weights)


def test_a_moved_checkpoint_resumes_into_its_new_folder(tmp_path):
    first = tmp_path / "first"
    assert cli("--total-timesteps", "512", *QUICK, "--run-name", "moved", cwd=tmp_path / "first"
               if first.mkdir() is None else first).returncode == 0
    shutil.move(str(first / "param" / "moved"), str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere" / "actor_net_best.param").unlink(missing_ok=True)
    other = tmp_path / "other"
    other.mkdir()
    done = cli("train", "--resume", str(tmp_path / "elsewhere" / checkpoint.CHECKPOINT), "--total-timesteps", "1024",
               "--quiet", cwd=other)
    assert done.returncode == 0, done.stderr
    ckpt = load_checkpoint(tmp_path / "elsewhere" / checkpoint.CHECKPOINT)
    assert ckpt["counters"]["global_step"] >= 1024  # written where the checkpoint is now
    assert (tmp_path / "elsewhere" / "actor_net.param").is_file()
    assert not (first / "param" / "moved").exists()


COMMON = dict(num_envs=4, num_steps=64, batch_size=128, update_epochs=2, anneal_lr=False, anneal_ent=False,
              eval_every=0, quiet=True, plots=False, save_every=0)


def final_weights(summary):
    return load_checkpoint(summary["checkpoint"])["agent"]["actor"]


def test_stop_and_resume_at_an_update_boundary_gives_the_same_weights(tmp_path):
    # the checkpoint holds the cars mid-episode (200-step episodes, 64-step rollouts) and
    # their RNGs, so the resumed run continues the very episodes the stopped one was in
    whole = pm.train(pm.Args(**COMMON, total_timesteps=1024, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "a")))
    half = pm.train(pm.Args(**COMMON, total_timesteps=512, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "b")))
    resumed = pm.resume(half["checkpoint"], total_timesteps=1024)
    assert resumed["global_step"] == whole["global_step"] == 1024
    # the counters `train` moves go on from the checkpoint's: the unbroken run's at the end
    assert (resumed["rollouts"], resumed["episodes_done"]) == (whole["rollouts"], whole["episodes_done"]) == (4, 4)
    a, b = final_weights(whole), final_weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_stop_mid_rollout_checkpoints_the_state_before_that_rollout(tmp_path, monkeypatch):
    whole = pm.train(pm.Args(**COMMON, total_timesteps=1024, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "a")))
    stop_on_call(monkeypatch, ppo_run.Run, "record_step", 64 * 2 + 30)  # 30 steps into the third rollout
    stopped = pm.train(pm.Args(**COMMON, total_timesteps=1024, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "b")))
    monkeypatch.undo()
    counters = load_checkpoint(stopped["checkpoint"])["counters"]
    assert counters["global_step"] == 512 and counters["rollouts"] == 2  # not 512 + 30 steps
    resumed = pm.resume(stopped["checkpoint"])
    a, b = final_weights(whole), final_weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_checkpoint_whose_env_state_does_not_fit_is_refused_in_one_line(tmp_path):
    run = pm.train(pm.Args(**COMMON, total_timesteps=256, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p")))
    state = checkpoint.load_file(Path(run["checkpoint"]))
    state["envs"]["ep_return"] = np.zeros(3)  # 3 open episodes for 4 envs
    bad = checkpoint.save_file(tmp_path / "bad.ckpt", state)
    with pytest.raises(pm.UsageError, match="damaged or from another version .its env state"):
        pm.resume(bad)


def stop_on_call(monkeypatch, owner, name, n):
    """Send this process SIGINT on the n-th call of owner.name (the call then goes on)."""
    real, calls = getattr(owner, name), {"n": 0}

    def wrapped(*a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **kw)

    monkeypatch.setattr(owner, name, wrapped)


# 4 minibatch steps per update (256 samples, minibatches of 128, 2 epochs): call 2 is inside
# the first update (Adam has no state before it), call 11 inside the third
@pytest.mark.parametrize("call, rollouts_kept", [(2, 0), (11, 2)])
def test_a_stop_inside_an_update_undoes_it_and_resume_gives_the_same_weights(tmp_path, monkeypatch, call,
                                                                            rollouts_kept):
    whole = pm.train(pm.Args(**COMMON, total_timesteps=1024, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "a")))
    stop_on_call(monkeypatch, pm.PPO, "_minibatch_step", call)
    stopped = pm.train(pm.Args(**COMMON, total_timesteps=1024, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "b")))
    monkeypatch.undo()
    assert stopped["interrupted"] == signal.SIGINT
    saved = load_checkpoint(stopped["checkpoint"])
    # the update was cut short (one step of four done after the signal, not the rest) and undone
    assert saved["counters"]["rollouts"] == rollouts_kept
    assert saved["counters"]["global_step"] == 256 * rollouts_kept
    assert saved["agent"]["gradient_steps"] == 4 * rollouts_kept
    moments = [v for k, v in saved["agent"]["optimizer"].items() if "_moment" in k]  # 0: Adam before its first step
    assert (not any(m.any() for m in moments)) == (rollouts_kept == 0)
    resumed = pm.resume(stopped["checkpoint"])
    a, b = final_weights(whole), final_weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_stop_inside_an_evaluation_undoes_that_update_and_resume_evaluates_it(tmp_path, monkeypatch):
    settings = dict(COMMON, eval_every=256, eval_episodes=5, total_timesteps=1024)
    whole = pm.train(pm.Args(**settings, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "a")))
    stop_on_call(monkeypatch, best_policy, "evaluate", 2)  # the evaluation after the second update
    stopped = pm.train(pm.Args(**settings, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "b")))
    monkeypatch.undo()
    saved = load_checkpoint(stopped["checkpoint"])
    assert saved["counters"]["rollouts"] == 1 and [h["global_step"] for h in saved["keeper"]["history"]] == [256]
    resumed = pm.resume(stopped["checkpoint"])
    assert [h["global_step"] for h in resumed["eval_history"]] == [256, 512, 768, 1024]
    assert [h["mean_return"] for h in resumed["eval_history"]] == [h["mean_return"] for h in whole["eval_history"]]
    a, b = final_weights(whole), final_weights(resumed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("phase, flags", [
    # each phase takes far longer than the 2.5 s allowed: 1,000 epochs of 4 minibatches; 200
    # steps of 20,000 episodes at once through 512x512 hidden layers
    ("update", ["--update-epochs", "1000", "--batch-size", "64"]),
    ("evaluation", ["--eval-every", "256", "--eval-episodes", "20000", "--hidden-sizes", "512,512"]),
])
def test_sigterm_inside_a_long_phase_ends_within_seconds_with_the_checkpoint_it_names(tmp_path, phase, flags):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "--total-timesteps", "100000",
                             *QUICK, *flags, *dirs], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "exp").glob("*/vdlrecords.*")) and time.time() < deadline:
        time.sleep(0.1)
    start_up = time.perf_counter() - started  # Python, Paddle and the first steps: this machine's pace
    time.sleep(3)  # the first rollout takes a fraction of a second: now in the first long phase
    signalled = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    took = time.perf_counter() - signalled
    assert proc.returncode == 143 and "Traceback" not in err, err
    # quicker than the program took to start (a long phase runs many times longer), on any machine
    assert took < max(2.5, start_up), f"{took:.1f} s from SIGTERM to exit (start-up {start_up:.1f} s)"
    ckpt_path, = (tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")
    assert f"checkpoint saved to {ckpt_path}" in err
    saved = load_checkpoint(ckpt_path)
    c = saved["counters"]
    # an update boundary: whole updates only, and every evaluation due by then was made
    assert saved["agent"]["gradient_steps"] == c["rollouts"] * (1000 * 4 if phase == "update" else 2 * 2)
    assert c["global_step"] == 256 * c["rollouts"]
    if phase == "evaluation":
        assert [h["global_step"] for h in saved["keeper"]["history"]] == [256 * (i + 1) for i in range(c["rollouts"])]


def test_a_stop_while_the_final_files_are_written_keeps_them_and_skips_the_figures(tmp_path, monkeypatch):
    stop_on_call(monkeypatch, ppo_run.Run, "write_checkpoint", 1)  # save_every=0: the final checkpoint is the first
    summary = pm.train(pm.Args(**dict(COMMON, plots=True, eval_every=256, eval_episodes=5), total_timesteps=512,
                               logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p")))
    assert summary["interrupted"] == signal.SIGINT and summary["stopped_in"] == "final files"
    [said] = ppo_cli.end_of_run(summary, pm.Args(plots=True))
    assert said.startswith(f"SIGINT: the run had finished; its policy and checkpoint are saved in {summary['run_dir']}")
    assert load_checkpoint(summary["checkpoint"])["counters"]["global_step"] == 512
    # the run's policy is the best evaluated one, copied where the tutorial puts it; no figures
    run_dir = Path(summary["run_dir"])
    for name in ("actor_net", "critic_net"):
        assert (run_dir / f"{name}.param").read_bytes() == (run_dir / f"{name}_best.param").read_bytes() \
            == (tmp_path / "p" / "net_param" / f"{name}.param").read_bytes()
    assert not (run_dir / "img").exists()


def after_an_evaluation(monkeypatch, n, action):
    """Call action(logbook) once the n-th rollout that evaluated has written its records."""
    real, commits = logbook.Logbook.commit, {"n": 0}

    def commit(self):
        evaluated = any(tag == "eval/mean_return" for _, tag, _, _ in self.pending)
        real(self)
        commits["n"] += evaluated
        if evaluated and commits["n"] == n:
            self.writer.flush()
            action(self)

    monkeypatch.setattr(logbook.Logbook, "commit", commit)


def test_a_records_file_the_writer_could_not_finish_stops_the_run_with_a_checkpoint(tmp_path, monkeypatch):
    # what VisualDL's writer thread leaves on a full disk: half a record, then nothing (it
    # only prints a warning); simulated after the second evaluation
    def tear(log):
        with open(log.records, "ab") as f:
            f.write((500).to_bytes(8, "little") + b"half")

    after_an_evaluation(monkeypatch, 2, tear)
    args = pm.Args(**dict(COMMON, eval_every=256, eval_episodes=5), total_timesteps=1024,
                   logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p"))
    with pytest.raises(OSError, match="VisualDL's writer failed") as failed:
        pm.train(args)
    monkeypatch.undo()
    records = Path(failed.value.filename)
    ckpt, = (tmp_path / "p").glob(f"*/{checkpoint.CHECKPOINT}")
    assert load_checkpoint(ckpt)["counters"]["global_step"] == 512  # the run stopped there
    resumed = pm.resume(ckpt)  # cuts the torn record and appends
    assert resumed["global_step"] == 1024
    assert logbook.whole_records_end(records) == records.stat().st_size
    steps = figures.read_scalars(records.parent)["eval/mean_return"][0].tolist()
    assert steps == [256, 512, 768, 1024]


def test_a_run_name_opens_with_a_short_unique_head_then_whole_changed_settings(tmp_path, monkeypatch):
    args = pm.Args(total_timesteps=8192, num_envs=8, batch_size=256, update_epochs=4, gae_lambda=0.95,
                   ent_coef=0.02, explore_decay_steps=50000, actor_lr=0.001, logdir=str(tmp_path / "e"),
                   param_dir=str(tmp_path / "p"))
    name, _ = folders.claim_run_folders(args, pm.changed_settings(args))
    head, label = name.split("__")[:2]
    assert re.fullmatch(r"[0-9a-f]{4}-default-s1-MC0", head)
    assert label == "steps=8192,envs=8,lam=0.95,epochs=4,bs=256,alr=0.001,+2"  # ent, bdecay left out
    plain = pm.Args(seed=3, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p"))
    name, _ = folders.claim_run_folders(plain, pm.changed_settings(plain))
    assert re.fullmatch(r"[0-9a-f]{4}-default-s3-MC0__MountainCar-v0__\d{8}-\d{6}", name)
    # VisualDL's HParams table shows 11 characters after "./exp/" in Chinese: runs of one
    # command on other envs, and two runs started in the same second, differ there
    monkeypatch.setattr(folders.time, "strftime", lambda fmt: "20261201-120000")
    heads = []
    for env in ("CartPole-v1", "Acrobot-v1", "CartPole-v1", "MountainCar-v0"):
        a = pm.Args(env_id=env, total_timesteps=20000, logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p"))
        heads.append(folders.claim_run_folders(a, pm.changed_settings(a))[0])
    assert len({h[:11] for h in heads}) == 4
    assert heads[0][4:].startswith("-default-s1-CP1__") and heads[1][4:].startswith("-default-s1-Acr1__")
    assert folders.env_tag("LunarLander-v3") == "LL3" and folders.env_tag("mymodule:MyEnv-v0") == "ME0"


def test_a_log_folder_removed_during_the_run_is_said_as_such(tmp_path, monkeypatch):
    after_an_evaluation(monkeypatch, 1, lambda log: shutil.rmtree(log.records.parent))  # VisualDL makes it anew
    args = pm.Args(**dict(COMMON, eval_every=256, eval_episodes=5), total_timesteps=2048,
                   logdir=str(tmp_path / "e"), param_dir=str(tmp_path / "p"))
    with pytest.raises(OSError, match="log folder was removed during the run"):
        pm.train(args)
    ckpt, = (tmp_path / "p").glob(f"*/{checkpoint.CHECKPOINT}")
    assert load_checkpoint(ckpt)["counters"]["global_step"] == 256  # noticed at once, with a checkpoint
