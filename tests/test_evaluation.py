"""Evaluation (ppo_toolbox/evaluation.py): the shipped policy, what counts as solved, and a real
VisualDL server serving a real run."""
import dataclasses
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import ppo_mountaincar as pm
from ppo_toolbox import evaluation, figures
from ppo_toolbox import cli as ppo_cli
import pytest
from PIL import Image

from helpers import PRETRAINED, QUICK, cli


def test_shipped_policy_solves_mountain_car_on_held_out_seeds():
    result = pm.evaluate(pm.load_policy(PRETRAINED), "MountainCar-v0", 100, evaluation.HOLDOUT_SEED)
    assert result["mean_return"] >= -110 and result["success_rate"] == 1.0
    # the same numbers through the command line, as JSON
    proc = cli("eval", str(PRETRAINED), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == dict(result, threshold=-110, solved=True)


def test_load_policy_maps_raw_observation_batches_to_actions():
    policy = pm.load_policy(PRETRAINED)
    obs = np.array([[-0.5, 0.03], [-0.5, -0.03], [0.3, 0.05]], np.float32)
    actions = policy(obs)
    assert actions.shape == (3,) and actions.dtype.kind == "i"
    assert actions[0] == 2 and actions[1] == 0  # push along the velocity


def test_eval_matches_gymnasiums_own_env():
    policy = pm.load_policy(PRETRAINED)
    fast = pm.evaluate(policy, "MountainCar-v0", 20, 123)
    slow = pm.evaluate(policy, "MountainCar-v0", 20, 123, fast=False)
    assert fast == slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url), timeout=10) as r:  # no Accept-Language
        return r.status, r.read()


def test_visualdl_serves_a_real_runs_scalars(tmp_path):
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=1, total_timesteps=1024,
                   quiet=True, plots=False, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
    summary = pm.train(args)
    # a tune trial's run beside it: other settings shown (its search space), a sampled learning rate
    trial = pm.train(dataclasses.replace(args, actor_lr=0.0012345678901234, gamma=0.98765432109))
    ours = figures.read_scalars(tmp_path / "exp" / summary["run_name"])["loss/action_loss"]
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("visualdl")), "--logdir", "./exp",
                               "--host", "127.0.0.1", "--port", str(port), "--language", "en",
                               "--disable-telemetry"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, _ = get(base + "/app/scalar")
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "VisualDL did not start"
                time.sleep(0.5)
        assert status == 200
        runs = json.loads(get(base + "/app/api/runs")[1])["data"]
        [run] = [r for r in runs if r.endswith(summary["run_name"])]
        query = urllib.parse.urlencode({"run": run, "tag": "loss/action_loss"})
        points = json.loads(get(f"{base}/app/api/scalar/list?{query}")[1])["data"]
        served = {int(step): value for _, step, value in points}
        assert served and set(served) <= set(ours[0].tolist())
        for step, value in served.items():
            assert value == pytest.approx(float(ours[1][ours[0].tolist().index(step)]), rel=1e-6)
        # the image tab: the policy map of the evaluation at the end of the run, as a PNG
        query = urllib.parse.urlencode({"run": run, "tag": "maps/policy"})
        [entry] = json.loads(get(f"{base}/app/api/image/list?{query}")[1])["data"]
        assert entry["step"] == summary["global_step"]
        status, png = get(f"{base}/app/api/image/image?{query}&index=0")
        assert status == 200 and Image.open(io.BytesIO(png)).size[0] > 300
        # the HParams panel: each run's settings and its held-out score; the same columns and
        # metrics for every run, a tune trial's too (a column one run lacks: NaN in the others)
        listed = {r["name"].rsplit("/", 1)[-1]: r for r in json.loads(get(base + "/app/api/hparams/list")[1])["data"]}
        ours, theirs = listed[summary["run_name"]], listed[trial["run_name"]]
        assert list(ours["hparams"]) == list(theirs["hparams"]) == ["preset", "env", "seed", "steps", "bs", "alr",
                                                                    "ent", "h"]
        assert list(ours["metrics"]) == list(theirs["metrics"]) == ["heldout"]
        assert ours["hparams"]["seed"] == 1 and ours["hparams"]["env"] == "MountainCar-v0"
        assert theirs["hparams"]["alr"] == 0.001235  # rounded to what a person reads
        assert ours["metrics"]["heldout"] == pytest.approx(summary["held_out"]["mean_return"], abs=1 / 16)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_absurd_episode_counts_are_refused_from_python_too(tmp_path):
    # a notebook calls the functions directly, past the command line's checks
    with pytest.raises(pm.UsageError, match="for a GIF"):
        pm.replay(PRETRAINED, episodes=1000, out=tmp_path / "r.gif")
    with pytest.raises(pm.UsageError, match="--episodes must be in"):
        pm.evaluate(pm.load_policy(PRETRAINED), "MountainCar-v0", episodes=10**9)
    assert not (tmp_path / "r.gif").exists()


def served_points(logdir: Path, run_name: str, tags: list[str]) -> dict[str, int]:
    """How many points of each scalar tag a VisualDL server started now serves for a run."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("visualdl")), "--logdir", str(logdir),
                               "--host", "127.0.0.1", "--port", str(port), "--language", "en",
                               "--disable-telemetry"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                get(base + "/app/scalar")
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "VisualDL did not start"
                time.sleep(0.5)
        [run] = [r for r in json.loads(get(base + "/app/api/runs")[1])["data"] if r.endswith(run_name)]
        return {tag: len(json.loads(get(f"{base}/app/api/scalar/list?" + urllib.parse.urlencode(
            {"run": run, "tag": tag}))[1])["data"]) for tag in tags}
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_resumed_run_shows_its_whole_past_in_a_new_visualdl_server(tmp_path):
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=1, total_timesteps=1024,
                   eval_every=256, eval_episodes=5, quiet=True, plots=False, run_name="whole",
                   logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
    first = pm.train(args)
    records, = (tmp_path / "exp" / "whole").glob("vdlrecords.*")
    with open(records, "ab") as f:  # a write torn by kill -9: a length with half its record
        f.write((500).to_bytes(8, "little") + b"torn")
    second = pm.resume(first["checkpoint"], total_timesteps=2048)
    third = pm.resume(second["checkpoint"], total_timesteps=3072)
    assert len(list((tmp_path / "exp" / "whole").glob("vdlrecords.*"))) == 1  # one series
    counts = served_points(tmp_path / "exp", "whole", ["loss/action_loss", "eval/mean_return"])
    assert counts == {"loss/action_loss": third["rollouts"], "eval/mean_return": len(third["eval_history"])}
    assert third["rollouts"] == 12 and len(third["eval_history"]) == 12


def test_success_is_each_envs_own_sense_of_it():
    """MountainCar: the flag; CartPole: balancing to the time limit (falling early is no
    success, though it ends in a terminal state); an env without a threshold: none."""
    balance = lambda obs: (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)  # noqa: E731 - a classic hand policy
    fall = lambda obs: np.zeros(len(obs), np.int64)  # noqa: E731
    good, weak = (pm.evaluate(p, "CartPole-v1", 20, 7) for p in (balance, fall))
    assert weak["success_rate"] == 0.0 and weak["mean_steps"] < 20
    steps = [evaluation.play_episode(evaluation.make_env("CartPole-v1"), balance, 7 + i)["steps"] for i in range(20)]
    assert good["success_rate"] == np.mean(np.array(steps) == 500) > 0.5
    stuck = pm.evaluate(lambda obs: np.full(len(obs), 2), "MountainCar-v0", 10, 7)  # always right: no flag
    assert stuck["success_rate"] == 0.0
    assert pm.evaluate(pm.load_policy(PRETRAINED), "MountainCar-v0", 10, 7)["success_rate"] == 1.0
    rule = evaluation.success_rule("Acrobot-v1")  # a terminal state with a return at the threshold, -100
    terminated, ret = np.array([True, True, False]), np.array([-80.0, -150.0, -500.0])
    assert rule.test(terminated, ~terminated, ret).tolist() == [True, False, False]
    import gymnasium as gym
    gym.register("NoThresholdCar-v0", entry_point="gymnasium.envs.classic_control:MountainCarEnv",
                 max_episode_steps=50)
    assert evaluation.success_rule("NoThresholdCar-v0") is None
    result = pm.evaluate(fall, "NoThresholdCar-v0", 3, 7)
    assert result["success_rate"] is None
    episode = evaluation.play_episode(evaluation.make_env("CartPole-v1"), balance, 7)
    assert episode["success"] == (episode["steps"] == 500) and episode["terminated"] == (episode["steps"] < 500)


def untrained_actor(folder: Path) -> Path:
    """A fresh actor (and critic), as a run writes them before it has learned anything."""
    agent = pm.PPO(2, 3, pm.Args())
    return agent.save_param(folder)


def test_the_end_of_a_run_says_whether_a_solving_policy_solves(tmp_path):
    held_out = evaluation.held_out_score(PRETRAINED, "MountainCar-v0")
    line = ppo_cli.held_out_line(held_out, pm.Args())
    assert held_out["solved"] and held_out["threshold"] == -110 and held_out["episodes"] == 100
    assert line == f"solved: held-out {held_out['mean_return']:.1f} +/- {held_out['std_return']:.1f} over 100 episodes (>= -110)"
    # on episodes no periodic evaluation selected on: theirs start at EVAL_SEED, at most 100,000 of them
    assert evaluation.HOLDOUT_SEED >= evaluation.EVAL_SEED + pm.settings.MAX_EVAL_EPISODES
    assert held_out["mean_return"] == evaluation.evaluate(evaluation.load_policy(PRETRAINED), "MountainCar-v0", 100,
                                                          evaluation.HOLDOUT_SEED)["mean_return"]


def test_the_end_of_a_run_says_an_untrained_policy_does_not_solve_and_what_to_try(tmp_path):
    held_out = evaluation.held_out_score(untrained_actor(tmp_path), "MountainCar-v0")
    assert held_out["solved"] is False and held_out["mean_return"] < -110
    line = ppo_cli.held_out_line(held_out, pm.Args(total_timesteps=8192, seed=3))
    assert line.startswith(f"not solved: held-out {held_out['mean_return']:.1f} +/- ")
    assert (f"(< -110); try: a longer run (--total-timesteps {pm.Args().total_timesteps}), --preset best, or another "
            "--seed (this was 3)") in line


def test_a_run_returns_its_held_out_score_and_says_it(tmp_path, capsys):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    assert ppo_cli.main(["--total-timesteps", "1024", *QUICK, "--eval-every", "512", *dirs]) == 0
    out = capsys.readouterr().out.splitlines()
    [run] = (tmp_path / "exp").iterdir()
    actor = tmp_path / "param" / run.name / "actor_net.param"
    held_out = evaluation.held_out_score(actor, "MountainCar-v0")
    word = "solved" if held_out["solved"] else "not solved"
    assert f"{word}: held-out {held_out['mean_return']:.1f} +/- {held_out['std_return']:.1f} over 100 episodes" in out[2]
    assert out[-1].startswith("next: python ppo_mountaincar.py replay ")
    summary = pm.train(pm.Args(total_timesteps=512, num_envs=4, num_steps=64, batch_size=128, update_epochs=1,
                               quiet=True, plots=False, logdir=str(tmp_path / "e2"), param_dir=str(tmp_path / "p2")))
    assert summary["held_out"] == evaluation.held_out_score(summary["actor_path"], "MountainCar-v0")
    json.dumps(summary["held_out"])  # as plain numbers, for a JSON report


def test_the_tutorial_preset_ends_with_its_held_out_score(tmp_path, capsys):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    # no periodic evaluation (eval_every=0); a time limit keeps two episodes short
    assert ppo_cli.main(["--preset", "tutorial", "--episodes", "2", "--max-episode-steps", "200", "--quiet",
                         "--no-plots", *dirs]) == 0
    out = capsys.readouterr().out
    assert "best evaluation" not in out
    assert re.search(r"^not solved: held-out -?\d+\.\d \+/- \d+\.\d over 100 episodes \(< -110\); try: a longer run "
                     r"\(--episodes 1000\)", out, re.M), out


def test_eval_says_whether_its_mean_counts_as_solved(tmp_path, capsys):
    assert ppo_cli.main(["eval", str(PRETRAINED)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(": solved (>= -110)")
    untrained = str(untrained_actor(tmp_path))
    assert ppo_cli.main(["eval", untrained, "--episodes", "5"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(": not solved (< -110)")
    assert ppo_cli.main(["eval", untrained, "--episodes", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threshold"] == -110 and result["solved"] is False
