"""A checkpoint from anyone (ppo_toolbox/checkpoint.py, folders.py): every value is checked by type and range
before it is used, a checkpoint never sends a run outside its folder, one run folder is one process, and links
planted in the folders a run writes to are refused."""
import copy
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import ppo_mountaincar as pm
from helpers import QUICK, ROOT, cli, one_line_error
from ppo_toolbox import checkpoint
from ppo_toolbox import cli as ppo_cli

SETTINGS = dict(total_timesteps=512, num_envs=4, num_steps=64, batch_size=128, update_epochs=2, eval_every=256,
                eval_episodes=5, save_every=1, keep_snapshots=1, quiet=True, plots=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A small finished run in param/<run>/ and exp/<run>/ under a folder of its own, and its checkpoint's state."""
    base = tmp_path_factory.mktemp("original")
    summary = pm.train(pm.Args(**SETTINGS, logdir=str(base / "exp"), param_dir=str(base / "param")))
    return base, summary, checkpoint.load_file(Path(summary["checkpoint"]))


def crafted_copy(finished_run, tmp_path, change):
    """A copy of the run's folders whose checkpoint has `change` applied."""
    base, summary, state = finished_run
    shutil.copytree(base, tmp_path / "copy")
    run_dir = tmp_path / "copy" / "param" / summary["run_name"]
    state = copy.deepcopy(state)
    change(state)
    checkpoint.save_file(run_dir / checkpoint.CHECKPOINT, state)
    return run_dir


def files_of(folder):
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def setter(*keys, value):
    def change(state):
        target = state
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


def delete(*keys):
    def change(state):
        target = state
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return change


def evaluation(**change):
    return {**dict(mean_return=-120.0, std_return=3.0, success_rate=1.0, mean_steps=120.0, episodes=5,
                   global_step=256), **change}


CRAFTED = {  # (change, the entry the one line names)
    "a float where a count belongs": (setter("config", "num_envs", value=4.0), "config (--num-envs must be a int"),
    "an array where a name belongs": (setter("config", "env_id", value=np.zeros(3)), "config (--env-id must be a str"),
    "a list where a number belongs": (setter("config", "gamma", value=[0.99]), "config (--gamma must be a finite"),
    "an unknown activation": (setter("config", "activation", value="sigmoid"), "--activation must be one of"),
    "nine hidden layers": (setter("config", "hidden_sizes", value=[8] * 9), "at most 8 layers"),
    "10^30 steps per episode": (setter("config", "max_episode_steps", value=10**30), "must be in 0..10^10"),
    "a run name that climbs out": (setter("config", "run_name", value="../x"), "--run-name must be a plain folder"),
    "a stored run name that climbs out": (setter("run_name", value="../../x"), "--run-name must be a plain folder"),
    "an env id of two lines": (setter("config", "env_id", value="Mountain\nCar-v0"), "--env-id must be a name"),
    "a missing counter": (delete("counters", "rollouts"), "its counters"),
    "a float counter": (setter("counters", "global_step", value=512.5), "its counters"),
    "a list for a counter": (setter("counters", "global_step", value=[512]), "its counters"),
    "a true for a counter": (setter("counters", "episodes_done", value=True), "its counters"),
    "2^70 gradient steps": (setter("agent", "gradient_steps", value=2**70), "its counters"),
    "10^40 seconds": (setter("elapsed", value=1e40), "its elapsed time"),
    "a bonus table of the wrong shape": (setter("bonus", "counts", value=np.zeros(10, np.int64)), "exploration counts"),
    "a bonus table of floats": (setter("bonus", "counts", value=np.zeros(400, np.float64)), "exploration counts"),
    "a best return of 1e308": (setter("keeper", "best", value=evaluation(mean_return=1e308)), "best evaluation"),
    "a best of strings": (setter("keeper", "best", value=evaluation(mean_return="high")), "best evaluation"),
    "a best without its numbers": (setter("keeper", "best", value={"mean_return": -100.0}), "best evaluation"),
    "a success rate of 2": (setter("keeper", "best", value=evaluation(success_rate=2.0)), "best evaluation"),
    "an evaluation of strings": (setter("keeper", "history", value=[{"mean_return": "high"}]), "evaluations"),
    "a garbage optimizer entry": (setter("agent", "optimizer", "x", value="garbage"), "optimizer state"),
    "a moment of the wrong shape": (setter("agent", "optimizer", "actor.net.0.weight_moment1_0",
                                           value=np.zeros((3, 3), np.float32)), "optimizer state"),
    "a moment of float64": (setter("agent", "optimizer", "actor.net.0.weight_moment1_0",
                                   value=np.zeros((2, 64), np.float64)), "optimizer state"),
    "a broken RNG state": (setter("agent", "rng", "state", value=5), "RNG state"),
    "an RNG state of 2^129": (setter("agent", "rng", "state", "inc", value=2**129), "RNG state"),
    "a count one step from wrapping": (setter("bonus", "counts", value=np.full(400, 2**63 - 1)), "exploration counts"),
    "an episode return of 1e308": (setter("envs", "ep_return", value=np.full(4, 1e308)), "env state"),
    "episodes of three envs for four": (setter("envs", "ep_len", value=np.zeros(3, np.int64)), "env state"),
    "a car of NaN": (setter("envs", "cars", "pos", value=np.full(4, np.nan)), "env state"),
    "an actor of another shape": (setter("agent", "actor", "net.0.weight", value=np.zeros((3, 64), np.float32)),
                                  "actor weights"),
    "an actor weight of float64": (setter("agent", "actor", "net.0.weight", value=np.zeros((2, 64), np.float64)),
                                   "actor weights"),
    "a run name that is a number": (setter("run_name", value=5), "run_name entry"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_checkpoint_is_one_line_and_touches_nothing(finished_run, tmp_path, capsys, case):
    change, words = CRAFTED[case]
    run_dir = crafted_copy(finished_run, tmp_path, change)
    before = files_of(tmp_path)
    assert ppo_cli.main(["train", "--resume", str(run_dir / checkpoint.CHECKPOINT), "--total-timesteps", "1024"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert files_of(tmp_path) == before  # nothing written, nothing lost


@pytest.mark.parametrize("car", [dict(pos=1e300), dict(vel=1e300), dict(pos=5.0), dict(elapsed=-5)])
def test_a_car_out_of_range_is_one_line_not_warnings(finished_run, tmp_path, capsys, car):
    [(key, value)] = car.items()
    run_dir = crafted_copy(finished_run, tmp_path, lambda state: state["envs"]["cars"][key].fill(value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings, before the fix
        assert ppo_cli.main(["train", "--resume", str(run_dir / checkpoint.CHECKPOINT), "--total-timesteps", "1024"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "env state" in err[0], err


def test_a_checkpoint_never_sends_a_run_outside_its_folder(finished_run, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    run_dir = crafted_copy(finished_run, tmp_path, lambda s: (
        s.update(run_name="escaped"),
        s["config"].update(logdir=str(outside / "logs"), param_dir=str(outside / "param"), run_name="escaped")))
    old = {p: p.stat().st_mtime_ns for p in (run_dir / "..").resolve().parent.rglob("vdlrecords.*")}
    monkeypatch.chdir(tmp_path)  # resumed from another working folder
    summary = pm.resume(run_dir / checkpoint.CHECKPOINT, total_timesteps=1024)
    assert summary["global_step"] == 1024 and summary["run_dir"] == str(run_dir)
    assert not outside.exists() and not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob("x"))
    # the records went to the run's own log folder beside its param folder: appended, not a new file
    [records] = (tmp_path / "copy" / "exp" / run_dir.name).glob("vdlrecords.*")
    assert records in old and records.stat().st_mtime_ns > old[records]
    assert (tmp_path / "copy" / "param" / "net_param" / "actor_net.param").is_file()
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {"param", "exp"}


def test_one_run_folder_is_one_process_and_a_dead_one_holds_no_lock(tmp_path):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    first = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "--total-timesteps", "10000000",
                              "--save-every", "1", *QUICK, *dirs], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list((tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")) and time.time() < deadline:
            time.sleep(0.2)
        ckpt, = (tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")
        second = cli("train", "--resume", str(ckpt), "--total-timesteps", "256")
        line = one_line_error(second)
        assert f"in use by process {first.pid}" in line
    finally:
        first.kill()  # SIGKILL: no chance to release anything
        first.wait()
    third = cli("train", "--resume", str(ckpt), "--total-timesteps", "256", "--quiet")
    assert third.returncode == 0, third.stderr


def test_a_planted_link_is_refused_and_a_refused_run_leaves_nothing(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    latest = tmp_path / "param" / "net_param"
    latest.mkdir(parents=True)
    (latest / "actor_net.param").symlink_to(target)
    args = pm.Args(**SETTINGS, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
    with pytest.raises(pm.UsageError, match="is a symbolic link") as e:
        pm.train(args)
    assert "\n" not in str(e.value)
    assert target.read_text() == "keep me"
    assert {p.name for p in (tmp_path / "param").iterdir()} == {"net_param"}  # no run folder left
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())
