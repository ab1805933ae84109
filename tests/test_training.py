"""The training loop (ppo_mountaincar.py, section 6): short real runs, determinism, the presets' schedules, learning,
and train() from Python as a notebook calls it."""
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import ppo_mountaincar as pm
from ppo_toolbox import acting, evaluation, network_files, param_files
from ppo_toolbox import cli as ppo_cli

from helpers import load_checkpoint, SMALL, scalars_of


def test_short_run_writes_visualdl_records_and_param_files(outdirs):
    summary = pm.train(pm.Args(**SMALL, **outdirs))
    assert summary["global_step"] == 2048 and summary["rollouts"] == 8
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    for tag in ("loss/action_loss", "loss/value_loss", "Steptime/steptime", "episode/return",
                "episode/length", "update/entropy", "update/approx_kl", "update/clip_fraction",
                "update/explained_variance", "train/learning_rate", "train/steps_per_second"):
        assert scalars.get(tag), f"no records for {tag}"
    # one action-loss record per update, at its last minibatch step (2 epochs x 4 minibatches)
    assert [step for step, _ in scalars["loss/action_loss"]] == list(range(7, 64, 8))
    # 2048 steps of 200-step episodes in 4 envs: 8 episodes of length 200
    assert [v for _, v in scalars["Steptime/steptime"]] == [200] * 8
    assert {v for _, v in scalars["train/learning_rate"]} == {np.float32(pm.Args.actor_lr)}  # constant
    net = Path(summary["run_dir"])  # the run's own folder
    assert net == Path(outdirs["param_dir"]) / summary["run_name"]
    assert (net / "actor_net.param").is_file() and (net / "critic_net.param").is_file()
    latest = Path(outdirs["param_dir"]) / "net_param" / "actor_net.param"  # where the tutorial looks
    assert latest.read_bytes() == (net / "actor_net.param").read_bytes()
    # snapshots every 2 updates (4 written), only the newest 2 kept
    assert sorted(p.name for p in net.glob("actor_net_0*.param")) == \
        ["actor_net_000006.param", "actor_net_000008.param"]


def test_same_seed_same_results(outdirs, tmp_path):
    runs = []
    for i in range(2):
        dirs = dict(logdir=str(tmp_path / f"exp{i}"), param_dir=str(tmp_path / f"param{i}"))
        summary = pm.train(pm.Args(**{**SMALL, "save_every": 0}, **dirs))
        scalars = scalars_of(dirs["logdir"], summary["run_name"])
        weights = param_files.load_state(summary["actor_path"])
        runs.append((scalars["loss/action_loss"], scalars["episode/return"], weights))
    (loss_a, ret_a, w_a), (loss_b, ret_b, w_b) = runs
    assert loss_a == loss_b and ret_a == ret_b
    assert all(np.array_equal(w_a[k], w_b[k]) for k in w_a if k != "meta")


def test_tutorial_preset_updates_at_episode_end_with_a_bounded_buffer(outdirs):
    # CartPole episodes are short: each update must come at an episode end with >= 64 steps
    args = ppo_cli.args_from_cli(ppo_cli.build_parser().parse_args(
        ["train", "--preset", "tutorial", "--env-id", "CartPole-v1", "--episodes", "12",
         "--quiet", "--logdir", outdirs["logdir"], "--param-dir", outdirs["param_dir"]]))
    assert (args.num_envs, args.num_steps, args.batch_size, args.gae_lambda) == (1, 8000, 64, 1.0)
    assert args.max_episode_steps == 0 and args.update_on_episode_end
    summary = pm.train(args)
    assert summary["episodes_done"] == 12
    # no periodic evaluation in this preset: the files hold the final policy
    assert network_files.read_network(summary["actor_path"], "actor").meta["env_id"] == "CartPole-v1"
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    lengths = [int(v) for _, v in scalars["Steptime/steptime"]]
    # minibatch steps per update = 10 epochs x ceil(steps since last update / 64)
    expected, pending = 0, 0
    for n in lengths:
        pending += n
        if pending >= 64:
            expected += 10 * -(-pending // 64)
            pending = 0
    assert summary["gradient_steps"] == expected


def test_buffer_capacity_forces_an_update_mid_episode(outdirs):
    # No time limit and a 100-step buffer: MountainCar's first episode is far longer,
    # so updates must happen before any episode ends.
    args = pm.Args(max_episode_steps=0, num_envs=1, num_steps=100, batch_size=50,
                   update_on_episode_end=True, total_timesteps=300, quiet=True, **outdirs)
    summary = pm.train(args)
    assert summary["episodes_done"] == 0 and summary["rollouts"] == 3


def test_default_preset_learns_within_a_small_budget(outdirs):
    # An untrained policy never reaches the flag in 200 steps (-200); 40,960 steps of the
    # default preset must bring the greedy 100-episode mean far above that.
    args = pm.Args(total_timesteps=40_960, quiet=True, plots=False, **outdirs)
    before = pm.evaluate(evaluation.make_policy(acting.NumpyNet(pm.PPO(2, 3, args).actor_net)), "MountainCar-v0", 100, evaluation.EVAL_SEED)
    summary = pm.train(args)
    after = pm.evaluate(pm.load_policy(summary["actor_path"]), "MountainCar-v0", 100, evaluation.HOLDOUT_SEED)
    assert before["mean_return"] == -200.0
    assert after["mean_return"] > -150 and after["success_rate"] == 1.0


def test_target_return_stops_training_early(outdirs):
    # -115 is reached within the budget but not at the first evaluation: the run must go on
    # while the evaluations are below it and stop at the first one that reaches it
    args = pm.Args(total_timesteps=100_000, eval_every=4096, eval_episodes=20, target_return=-115.0,
                   quiet=True, plots=False, **outdirs)
    summary = pm.train(args)
    scores = [h["mean_return"] for h in summary["eval_history"]]
    assert len(scores) >= 2 and max(scores[:-1]) < -115.0 <= scores[-1]
    assert summary["global_step"] == summary["eval_history"][-1]["global_step"] < 100_000


def test_train_from_python_twice_in_one_process_and_from_a_thread(outdirs):
    # what a notebook does: call train() again in the same kernel, or from a helper thread
    args = pm.Args(**{**SMALL, "save_every": 0, "plots": False}, **outdirs)
    handler = signal.getsignal(signal.SIGINT)
    first, second = pm.train(args), pm.train(args)
    assert first["run_name"] != second["run_name"]  # two run folders, not one mixed record
    a, b = (scalars_of(outdirs["logdir"], s["run_name"]) for s in (first, second))
    assert a["loss/action_loss"] == b["loss/action_loss"]  # same seed, same run, even in one process
    assert signal.getsignal(signal.SIGINT) is handler  # our handlers are gone after each run
    result = {}
    worker = threading.Thread(target=lambda: result.update(pm.train(args)))
    worker.start()
    worker.join(timeout=300)
    assert result["global_step"] == 2048 and not result["interrupted"]
    assert scalars_of(outdirs["logdir"], result["run_name"])["loss/action_loss"] == a["loss/action_loss"]


def test_ctrl_c_in_a_notebook_stops_train_cleanly(outdirs):
    # Jupyter's "interrupt kernel" sends SIGINT to the kernel process, whose main thread runs train()
    args = pm.Args(**{**SMALL, "total_timesteps": 10**7, "plots": False}, **outdirs)
    handler = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    summary = pm.train(args)
    timer.join()
    assert summary["interrupted"] == signal.SIGINT and 0 < summary["global_step"] < 10**7
    assert load_checkpoint(summary["checkpoint"])["counters"]["global_step"] == summary["global_step"]
    assert summary["stopped_in"] == "training"  # the command line says how to resume:
    said = "\n".join(ppo_cli.end_of_run(summary, args))
    assert f"resume with: python ppo_mountaincar.py train --resume {summary['checkpoint']} " in said
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_budget_below_one_rollout_is_refused_with_the_smallest_that_makes_one(outdirs):
    with pytest.raises(pm.UsageError, match=r"--total-timesteps 10 is less than one rollout \(--num-envs 16 x "
                                            r"--num-steps 128 = 2,048 steps\); pass at least 2048"):
        pm.train(pm.Args(total_timesteps=10, **outdirs))
    assert not Path(outdirs["param_dir"]).exists()  # refused before anything was written
