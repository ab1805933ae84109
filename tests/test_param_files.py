""".param files (ppo_toolbox/param_files.py, network_files.py): round trips, the original tutorial's files, safe loading of crafted,
damaged and mismatched files, atomic writes."""
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import ppo_mountaincar as pm
from ppo_toolbox import network_files, param_files
import pytest

from helpers import ROOT, TutorialActor, TutorialCritic, cli, in_process, one_line_error


def test_param_round_trip_gives_identical_outputs(tmp_path):
    paddle.seed(0)
    agent = pm.PPO(2, 3, pm.Args())
    agent.obs_norm.update(np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.02], (500, 2)))
    path = agent.save_param(tmp_path)
    x = np.random.default_rng(1).normal([-0.5, 0.0], [0.3, 0.02], (64, 2)).astype(np.float32)
    loaded = pm.load_actor(path)
    with paddle.no_grad():
        assert np.array_equal(loaded(paddle.to_tensor(x)).numpy(), agent.actor_net(paddle.to_tensor(x)).numpy())
    # the normalisation statistics travel inside the actor file
    assert np.array_equal(loaded.obs_norm.mean.numpy(), agent.obs_norm.mean.numpy())
    # and paddle.load still reads it, as the tutorial's users expect
    assert "net.0.weight" in paddle.load(str(path))
    policy = pm.load_policy(path)
    assert policy(x).shape == (64,) and policy(x).dtype.kind == "i"


def test_older_plain_paddle_state_dicts_still_load(tmp_path):
    # what the tutorial's save_param wrote, paddle.save of a bare state dict (no description),
    # here for another env and width than the tutorial's: load_actor reads both from the shapes
    paddle.seed(3)
    old = TutorialActor(4, 2, hidden=32)
    paddle.save(old.state_dict(), str(tmp_path / "old.param"))
    actor = pm.load_actor(tmp_path / "old.param")
    assert [list(layer.weight.shape) for layer in actor.net if isinstance(layer, nn.Linear)] == [[4, 32], [32, 2]]
    x = np.random.default_rng(2).normal(size=(256, 4)).astype(np.float32)
    with paddle.no_grad():
        assert np.array_equal(actor(paddle.to_tensor(x)).numpy(), old(paddle.to_tensor(x)).numpy())


@pytest.fixture(scope="module")
def tutorial_files(tmp_path_factory):
    """A tutorial-style pair in param/net_param, named as its save_param names them."""
    folder = tmp_path_factory.mktemp("tutorial") / "param" / "net_param"
    folder.mkdir(parents=True)
    paddle.seed(7)
    actor, critic = TutorialActor(), TutorialCritic()
    # a trained tutorial actor prefers pushing along the velocity: make the argmax non-trivial
    actor.fc1.weight.set_value(np.random.default_rng(0).normal(0, 3, (2, 128)).astype(np.float32))
    paddle.save(actor.state_dict(), str(folder / "actor_net1700000000.param"))
    paddle.save(critic.state_dict(), str(folder / "critic_net1700000000.param"))
    return actor, critic, folder / "actor_net1700000000.param", folder / "critic_net1700000000.param"


def test_tutorial_actor_maps_output_for_output(tutorial_files):
    actor, critic, actor_path, critic_path = tutorial_files
    x = np.random.default_rng(1).uniform([-1.2, -0.07], [0.6, 0.07], (2000, 2)).astype(np.float32)
    ours, meta = pm.load_actor(actor_path), network_files.read_network(actor_path, "actor").meta
    assert meta["tutorial"] and meta["env_id"] == "MountainCar-v0"
    assert meta["hidden_sizes"] == [128] and meta["activation"] == "relu"
    with paddle.no_grad():
        theirs = actor(paddle.to_tensor(x)).numpy()
        assert np.array_equal(ours(paddle.to_tensor(x)).numpy(), theirs)
        assert np.array_equal(pm.load_critic(critic_path)(paddle.to_tensor(x)).numpy(),
                              critic(paddle.to_tensor(x)).numpy()[:, 0])
    # the greedy policy is exactly the tutorial network's argmax (no normalisation added)
    greedy = pm.load_policy(actor_path)(x)
    assert np.array_equal(greedy, theirs.argmax(1)) and len(set(greedy.tolist())) > 1


def test_tutorial_files_work_in_every_command(tutorial_files, tmp_path):
    _, _, actor_path, _ = tutorial_files
    proc = in_process("eval", str(actor_path), "--episodes", "5")
    assert proc.returncode == 0, proc.stderr
    assert "MountainCar-v0, 5 episodes" in proc.stdout and "original tutorial" in proc.stderr
    proc = in_process("replay", str(actor_path), "--episodes", "1", "--out", str(tmp_path / "r.gif"))
    assert proc.returncode == 0 and (tmp_path / "r.gif").stat().st_size > 1000, proc.stderr
    # plot: the figures of a run, the maps from the tutorial's actor and its critic beside it
    run = pm.train(pm.Args(num_envs=2, num_steps=32, batch_size=64, update_epochs=1, total_timesteps=64,
                           eval_every=0, quiet=True, plots=False, logdir=str(tmp_path / "exp"),
                           param_dir=str(tmp_path / "p")))
    written = pm.plot_run(Path(tmp_path / "exp") / run["run_name"], actor_path, tmp_path / "img")
    assert {p.name for p in written} == {"training_curve.png", "losses.png", "policy_value.png"}


def test_a_tutorial_file_for_an_unknown_env_asks_for_env_id(tmp_path):
    path = tmp_path / "actor_net1700000001.param"
    paddle.save(TutorialActor(num_state=5, num_action=4).state_dict(), str(path))
    proc = cli("eval", str(path))
    note, error = proc.stderr.strip().splitlines()  # how the file was read, then what to do
    assert proc.returncode == 2 and "original tutorial" in note
    assert error.startswith("error:") and "pass --env-id" in error


def test_a_refused_tutorial_file_is_one_line_without_the_note(tmp_path, capsys):
    state = {k: v.numpy() for k, v in TutorialActor().state_dict().items()}
    state["fc1.weight"][0, 0] = np.nan
    path = tmp_path / "actor_net.param"
    paddle.save(state, str(path))
    with pytest.raises(pm.UsageError, match="NaN"):
        network_files.read_network(path, "actor")
    assert capsys.readouterr().err == ""  # the note says how a file was read: only of a file that was


def test_the_tutorials_critic_where_an_actor_belongs_gets_the_hint_ours_gets(tutorial_files):
    with pytest.raises(pm.UsageError) as e:
        pm.load_actor(tutorial_files[3])
    assert "(it is a critic file of the original tutorial: pass the actor_net*.param beside it)" in str(e.value)
    with pytest.raises(pm.UsageError) as e:
        pm.load_critic(tutorial_files[2])
    assert "(it is an actor file of the original tutorial: pass the critic_net*.param beside it)" in str(e.value)


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
        assert words in one_line_error(in_process("eval", str(path)))
    # an actor trained on CartPole does not fit MountainCar
    line = one_line_error(in_process("eval", str(trained["CartPole-v1"]), "--env-id", "MountainCar-v0"))
    assert "does not fit MountainCar-v0" in line
    # and in its own env it evaluates
    assert in_process("eval", str(trained["CartPole-v1"]), "--episodes", "3").returncode == 0


def test_a_crash_between_write_and_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "actor_net.param"
    path.write_bytes(b"old and good")

    def crash(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        param_files.atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert path.read_bytes() == b"old and good"
    assert [p.name for p in tmp_path.iterdir()] == ["actor_net.param"]  # no temp file left


def test_kill_9_while_checkpointing_never_leaves_a_broken_file(tmp_path):
    # A child rewrites a checkpoint-sized file in a loop; SIGKILL lands at a random moment.
    target = tmp_path / "ckpt.param"
    code = (f"import sys, numpy as np; sys.path.insert(0, {str(ROOT)!r}); import paddle\nfrom ppo_toolbox import param_files\n"
            f"from pathlib import Path\ni = 0\n"
            f"while True:\n"
            f"    i += 1\n"
            f"    param_files.atomic_write(Path({str(target)!r}), lambda t: paddle.save({{'w': np.full(300_000, i, np.float32)}}, t))\n"
            f"    print(i, flush=True)\n")
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline()  # at least one complete write before the kill
        time.sleep(rng.uniform(0.05, 0.5))
        child.kill()
        child.wait()
        w = param_files.load_state(target)["w"]
        assert w.shape == (300_000,) and np.all(w == w[0])
