""".param files: the original tutorial's files, crafted files, and sizes no run could use."""
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import pytest

import ppo_mountaincar as pm

ROOT = Path(__file__).resolve().parents[1]


def cli(*argv, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "ppo_mountaincar.py"), *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# The tutorial's own networks, as its program defines them (layer names and shapes).
class TutorialActor(nn.Layer):
    def __init__(self, num_state=2, num_action=3):
        super().__init__()
        self.fc1 = nn.Linear(num_state, 128)
        self.action_head = nn.Linear(128, num_action)

    def forward(self, x):
        return F.softmax(self.action_head(F.relu(self.fc1(x))), axis=1)


class TutorialCritic(nn.Layer):
    def __init__(self, num_state=2):
        super().__init__()
        self.fc1 = nn.Linear(num_state, 128)
        self.state_value = nn.Linear(128, 1)

    def forward(self, x):
        return self.state_value(F.relu(self.fc1(x)))


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
    ours = pm.load_actor(actor_path)
    assert ours.meta["tutorial"] and ours.meta["env_id"] == "MountainCar-v0"
    assert ours.meta["hidden_sizes"] == [128] and ours.meta["activation"] == "relu"
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
    proc = cli("eval", str(actor_path), "--episodes", "5")
    assert proc.returncode == 0, proc.stderr
    assert "MountainCar-v0, 5 episodes" in proc.stdout and "original tutorial" in proc.stderr
    proc = cli("replay", str(actor_path), "--episodes", "1", "--out", str(tmp_path / "r.gif"))
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


def test_a_crafted_huge_array_is_refused_without_allocating_it(tmp_path):
    class Huge:  # an array that claims 10 TB in a 200-byte file
        def __reduce__(self):
            return np._core.multiarray._reconstruct, (np.ndarray, (10**13,), b"b")

    path = tmp_path / "actor_net.param"
    path.write_bytes(pickle.dumps({"net.0.weight": Huge()}, protocol=4))
    before = path.read_bytes()
    start = time.perf_counter()
    line = one_line_error(cli("eval", str(path)))
    assert "claims more bytes than the file holds" in line and time.perf_counter() - start < 60
    with pytest.raises(pm.UsageError):
        pm.load_state(path)
    assert path.read_bytes() == before


def test_a_file_describing_a_huge_network_is_refused(tmp_path):
    state = pm.load_state(ROOT / "param" / "pretrained" / "actor_net.param")
    state["meta"]["hidden_sizes"] = [10**6, 10**6]
    path = tmp_path / "actor_net.param"
    paddle.save(state, str(path))
    assert "larger than the file" in one_line_error(cli("eval", str(path)))


@pytest.mark.parametrize("argv, words", [
    (["--num-envs", "100000000"], "--num-envs"),
    (["--num-steps", "1000000000"], "--num-envs x --num-steps"),
    (["--hidden-sizes", "100000,100000"], "--hidden-sizes"),
    (["--eval-episodes", "1000000000"], "--eval-episodes"),
    (["--episodes", "10000000000"], "--episodes"),
    (["eval", "param/pretrained/actor_net.param", "--episodes", "1000000000"], "--episodes"),
    (["replay", "param/pretrained/actor_net.param", "--episodes", "1000"], "for a GIF"),
])
def test_absurd_sizes_are_refused_at_once_and_touch_nothing(argv, words, tmp_path):
    net = tmp_path / "param" / "net_param"
    net.mkdir(parents=True)
    (net / "actor_net.param").write_bytes(b"precious")
    dirs = ["--param-dir", str(tmp_path / "param"), "--logdir", str(tmp_path / "exp")] if argv[0] not in (
        "eval", "replay") else ([] if argv[0] == "eval" else ["--out", str(tmp_path / "r.gif")])
    start = time.perf_counter()
    assert words in one_line_error(cli(*argv, *dirs, timeout=120))
    assert time.perf_counter() - start < 60
    assert (net / "actor_net.param").read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["param"]
