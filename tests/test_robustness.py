"""Interruption, resume, atomic files, safe loading, bad input and numerical faults."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppo_mountaincar as pm

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--num-envs", "4", "--num-steps", "64", "--batch-size", "128", "--update-epochs", "2",
         "--no-plots", "--quiet"]


def cli(*argv, **kw):
    return subprocess.run([sys.executable, str(ROOT / "ppo_mountaincar.py"), *argv],
                          capture_output=True, text=True, timeout=300, **kw)


def one_line_error(proc, code=2):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


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
    ckpt_path = tmp_path / "param" / "net_param" / pm.CHECKPOINT
    assert f"--resume {ckpt_path}" in err and "Traceback" not in err
    first = pm.load_checkpoint(ckpt_path)["counters"]
    assert first["updates"] > 0 and first["global_step"] > 0

    budget = first["global_step"] + 4 * 256
    done = cli("train", "--resume", str(ckpt_path), "--total-timesteps", str(budget), "--quiet")
    assert done.returncode == 0, done.stderr
    second = pm.load_checkpoint(ckpt_path)
    c = second["counters"]
    assert c["global_step"] >= budget and c["updates"] >= first["updates"] + 4
    assert c["training_step"] == first["training_step"] + (c["updates"] - first["updates"]) * 2 * 2
    # the VisualDL steps continue in the same run folder: one point per update (at its last
    # minibatch step, 2 epochs x 2 minibatches), none logged twice, none missing
    scalars = pm.read_scalars(tmp_path / "exp" / second["run_name"])
    steps = scalars["loss/action_loss"][0].tolist()
    assert steps == list(range(3, c["training_step"], 4))


def test_resume_restores_the_optimizer_moments_under_other_parameter_names():
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=2, norm_obs=False)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(65, 4, 2)).astype(np.float32) * [0.3, 0.02] + [-0.5, 0]
    batch = [obs[:-1], rng.integers(0, 3, (64, 4)), np.full((64, 4), -1.1), rng.normal(size=(64, 4)),
             obs[1:], np.zeros((64, 4)), np.zeros((64, 4))]

    def update(agent):
        for t in range(64):
            agent.store_transition(*(x[t] for x in batch))
        agent.rng = np.random.default_rng(1)
        agent.update()

    paddle.seed(0)
    original = pm.PPO(2, 3, args)
    update(original)  # now Adam has moments
    weights = {role: pm.numpy_state(net) for role, net in (("actor", original.actor_net),
                                                            ("critic", original.critic_net))}
    moments = pm.optimizer_state(original.optimizer, original.actor_net, original.critic_net)
    pm.Actor(2, 3, (7,))  # shifts the auto-generated parameter names in this process
    resumed, fresh = pm.PPO(2, 3, args), pm.PPO(2, 3, args)
    assert resumed.actor_net.net[0].weight.name != original.actor_net.net[0].weight.name
    for agent in (resumed, fresh):
        pm.load_weights(agent.actor_net, weights["actor"], "test")
        pm.load_weights(agent.critic_net, weights["critic"], "test")
    pm.restore_optimizer(resumed.optimizer, moments, resumed.actor_net, resumed.critic_net)
    after = []
    for agent in (original, resumed, fresh):
        update(agent)
        after.append(agent.actor_net.net[0].weight.numpy())
    assert np.array_equal(after[0], after[1])      # same moments, same step
    assert not np.allclose(after[0], after[2])     # without them the step differs


def test_resume_refuses_to_change_the_network(tmp_path):
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=1, total_timesteps=256,
                   quiet=True, plots=False, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "p"))
    ckpt = pm.train(args)["checkpoint"]
    line = one_line_error(cli("train", "--resume", ckpt, "--hidden-sizes", "32"))
    assert "--hidden-sizes cannot change" in line
    line = one_line_error(cli("train", "--resume", str(Path(ckpt).with_name("actor_net.param"))))
    assert "not a training checkpoint" in line


def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    bad = tmp_path / "actor_net.param"
    bad.write_bytes(pickle.dumps({"net.0.weight": Evil()}))
    for command in ("eval", "replay"):
        line = one_line_error(cli(command, str(bad)))
        assert "not loaded" in line and "system" in line
    assert not marker.exists()
    with pytest.raises(pm.UsageError):
        pm.load_policy(bad)
    assert not marker.exists()


def test_older_plain_paddle_state_dicts_still_load(tmp_path):
    # what paddle.save of a bare state dict writes: no meta entry
    paddle.save(pm.Actor(2, 3).state_dict(), str(tmp_path / "old.param"))
    state = pm.load_state(tmp_path / "old.param")
    assert "net.0.weight" in state and state["net.0.weight"].shape == (2, 128)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Actor and critic files of a tiny MountainCar run, and of a CartPole one."""
    base = tmp_path_factory.mktemp("trained")
    out = {}
    for env_id in ("MountainCar-v0", "CartPole-v1"):
        args = pm.Args(env_id=env_id, num_envs=4, num_steps=64, batch_size=128, update_epochs=1,
                       total_timesteps=256, quiet=True, plots=False, logdir=str(base / "exp"),
                       explore_bonus=5.0 if env_id == "MountainCar-v0" else 0.0,
                       param_dir=str(base / env_id))
        out[env_id] = Path(pm.train(args)["actor_path"])
    return out


def test_bad_files_get_one_line_and_exit_code_2(tmp_path, trained):
    empty = tmp_path / "empty.param"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.param"
    corrupt.write_bytes(os.urandom(300))
    truncated = tmp_path / "truncated.param"
    truncated.write_bytes(trained["MountainCar-v0"].read_bytes()[:200])
    critic = trained["MountainCar-v0"].with_name("critic_net.param")
    cases = [(empty, "empty"), (corrupt, ".param"), (truncated, "truncated"), (critic, "critic file"),
             (tmp_path / "missing.param", "no such file")]
    for path, words in cases:
        assert words in one_line_error(cli("eval", str(path)))
    # an actor trained on CartPole does not fit MountainCar
    line = one_line_error(cli("eval", str(trained["CartPole-v1"]), "--env-id", "MountainCar-v0"))
    assert "does not fit MountainCar-v0" in line
    # and in its own env it evaluates
    assert cli("eval", str(trained["CartPole-v1"]), "--episodes", "3").returncode == 0


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


def test_bad_hyperparameters_write_nothing(tmp_path):
    net = tmp_path / "param" / "net_param"
    net.mkdir(parents=True)
    (net / "actor_net.param").write_bytes(b"precious")
    for flags in (["--clip", "0"], ["--gamma", "1.5"], ["--num-envs", "0"], ["--update-epochs", "-1"]):
        one_line_error(cli(*flags, "--param-dir", str(tmp_path / "param"), "--logdir", str(tmp_path / "exp")))
    assert (net / "actor_net.param").read_bytes() == b"precious"
    assert not (tmp_path / "exp").exists()


def test_a_crash_between_write_and_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "actor_net.param"
    path.write_bytes(b"old and good")

    def crash(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        pm.atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert path.read_bytes() == b"old and good"
    assert [p.name for p in tmp_path.iterdir()] == ["actor_net.param"]  # no temp file left


def test_kill_9_while_checkpointing_never_leaves_a_broken_file(tmp_path):
    # A child rewrites a checkpoint-sized file in a loop; SIGKILL lands at a random moment.
    target = tmp_path / "ckpt.param"
    code = (f"import sys, numpy as np; sys.path.insert(0, {str(ROOT)!r}); import paddle, ppo_mountaincar as pm\n"
            f"from pathlib import Path\ni = 0\n"
            f"while True:\n"
            f"    i += 1\n"
            f"    pm.atomic_write(Path({str(target)!r}), lambda t: paddle.save({{'w': np.full(300_000, i, np.float32)}}, t))\n"
            f"    print(i, flush=True)\n")
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline()  # at least one complete write before the kill
        time.sleep(rng.uniform(0.05, 0.5))
        child.kill()
        child.wait()
        w = pm.load_state(target)["w"]
        assert w.shape == (300_000,) and np.all(w == w[0])


def test_nan_stops_training_and_keeps_the_last_good_files(tmp_path, monkeypatch):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    real_update = pm.PPO.update
    calls = {"n": 0}

    def poisoned(self):
        stats = real_update(self)
        calls["n"] += 1
        if calls["n"] == 3:  # the third update blows up
            w = self.actor_net.net[0].weight
            w.set_value(np.full(w.shape, np.nan, np.float32))
        return stats

    monkeypatch.setattr(pm.PPO, "update", poisoned)
    code = pm.main(["--total-timesteps", "4096", "--save-every", "1", *QUICK, *dirs])
    assert code == 1
    net = tmp_path / "param" / "net_param"
    ckpt = pm.load_checkpoint(net / pm.CHECKPOINT)
    assert ckpt["counters"]["updates"] == 2  # the last good one
    assert np.isfinite(ckpt["actor"]["net.0.weight"]).all()
    assert not (net / "actor_net.param").exists() or np.isfinite(pm.load_state(net / "actor_net.param")["net.0.weight"]).all()
