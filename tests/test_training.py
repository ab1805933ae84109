"""Short real training runs: logs, checkpoints, determinism, the Python API, the command line."""
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

import ppo_mountaincar as pm

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(total_timesteps=2048, num_envs=4, num_steps=64, batch_size=64, update_epochs=2,
             save_every=2, keep_snapshots=2, quiet=True)


def scalars_of(logdir: str, run_name: str) -> dict[str, list[tuple[int, float]]]:
    """A run's VisualDL scalars as (step, value) lists, read back with the module's reader."""
    return {tag: list(zip(steps.tolist(), values.tolist()))
            for tag, (steps, values) in pm.read_scalars(Path(logdir) / run_name).items()}


def test_short_run_writes_visualdl_records_and_param_files(outdirs):
    summary = pm.train(pm.Args(**SMALL, **outdirs))
    assert summary["global_step"] == 2048 and summary["updates"] == 8
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    for tag in ("loss/action_loss", "loss/value_loss", "Steptime/steptime", "episode/return",
                "episode/length", "loss/entropy", "loss/approx_kl", "loss/clip_fraction",
                "loss/explained_variance", "train/learning_rate", "train/steps_per_second"):
        assert scalars.get(tag), f"no records for {tag}"
    # one action-loss record per update, at its last minibatch step (2 epochs x 4 minibatches)
    assert [step for step, _ in scalars["loss/action_loss"]] == list(range(7, 64, 8))
    # 2048 steps of 200-step episodes in 4 envs: 8 episodes of length 200
    assert [v for _, v in scalars["Steptime/steptime"]] == [200] * 8
    lrs = [v for _, v in scalars["train/learning_rate"]]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0]  # annealed
    net = Path(outdirs["param_dir"]) / "net_param"
    assert (net / "actor_net.param").is_file() and (net / "critic_net.param").is_file()
    # snapshots every 2 updates (4 written), only the newest 2 kept
    assert sorted(p.name for p in net.glob("actor_net_0*.param")) == \
        ["actor_net_000006.param", "actor_net_000008.param"]


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


def test_same_seed_same_results(outdirs, tmp_path):
    runs = []
    for i in range(2):
        dirs = dict(logdir=str(tmp_path / f"exp{i}"), param_dir=str(tmp_path / f"param{i}"))
        summary = pm.train(pm.Args(**{**SMALL, "save_every": 0}, **dirs))
        scalars = scalars_of(dirs["logdir"], summary["run_name"])
        weights = pm.load_state(summary["actor_path"])
        runs.append((scalars["loss/action_loss"], scalars["episode/return"], weights))
    (loss_a, ret_a, w_a), (loss_b, ret_b, w_b) = runs
    assert loss_a == loss_b and ret_a == ret_b
    assert all(np.array_equal(w_a[k], w_b[k]) for k in w_a if k != "meta")


def test_tutorial_preset_updates_at_episode_end_with_a_bounded_buffer(outdirs):
    # CartPole episodes are short: each update must come at an episode end with >= 64 steps
    args = pm.args_from_cli(pm.build_parser().parse_args(
        ["train", "--preset", "tutorial", "--env-id", "CartPole-v1", "--episodes", "12",
         "--quiet", "--logdir", outdirs["logdir"], "--param-dir", outdirs["param_dir"]]))
    assert (args.num_envs, args.num_steps, args.batch_size, args.gae_lambda) == (1, 8000, 64, 1.0)
    assert args.max_episode_steps == 0 and args.update_on_episode_end
    summary = pm.train(args)
    assert summary["episodes"] == 12
    # no periodic evaluation in this preset: the files hold the final policy
    assert pm.load_actor(summary["actor_path"]).meta["env_id"] == "CartPole-v1"
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    lengths = [int(v) for _, v in scalars["Steptime/steptime"]]
    # minibatch steps per update = 10 epochs x ceil(steps since last update / 64)
    expected, pending = 0, 0
    for n in lengths:
        pending += n
        if pending >= 64:
            expected += 10 * -(-pending // 64)
            pending = 0
    assert summary["training_step"] == expected


def test_buffer_capacity_forces_an_update_mid_episode(outdirs):
    # No time limit and a 100-step buffer: MountainCar's first episode is far longer,
    # so updates must happen before any episode ends.
    args = pm.Args(max_episode_steps=0, num_envs=1, num_steps=100, batch_size=50,
                   update_on_episode_end=True, total_timesteps=300, quiet=True, **outdirs)
    summary = pm.train(args)
    assert summary["episodes"] == 0 and summary["updates"] == 3


def run_cli(*argv, cwd=ROOT):
    return subprocess.run([sys.executable, "ppo_mountaincar.py", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, words", [
    (["--clip", "1.5"], "--clip"),
    (["--batch-size", "5000", "--num-envs", "2", "--num-steps", "8"], "--batch-size"),
    (["--gamma", "0"], "--gamma"),
    (["--hidden-sizes", "64,x"], "sizes"),
    (["--env-id", "Pendulum-v1"], "discrete actions"),
    (["--env-id", "NoSuchEnv-v0"], "cannot make env"),
    (["--env-id", "CartPole-v1"], "--explore-bonus 0"),  # unbounded observations: no grid
    (["--no-such-flag"], "unrecognized"),
    (["eval", "does/not/exist.param"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, words, tmp_path):
    proc = run_cli(*argv, "--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")) \
        if argv[0] != "eval" else run_cli(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_documents_every_training_flag():
    out = run_cli("--help").stdout
    for f in pm.dataclasses.fields(pm.Args):
        assert "--" + f.name.replace("_", "-") in out


def test_default_preset_learns_within_a_small_budget(outdirs):
    # An untrained policy never reaches the flag in 200 steps (-200); 40,960 steps of the
    # default preset must bring the greedy 100-episode mean far above that.
    args = pm.Args(total_timesteps=40_960, quiet=True, plots=False, **outdirs)
    before = pm.evaluate(pm.make_policy(pm.PPO(2, 3, args).actor_net), "MountainCar-v0", 100, pm.EVAL_SEED)
    summary = pm.train(args)
    after = pm.evaluate(pm.load_policy(summary["actor_path"]), "MountainCar-v0", 100, pm.HOLDOUT_SEED)
    assert before["mean_return"] == -200.0
    assert after["mean_return"] > -150 and after["success_rate"] == 1.0


def test_target_return_stops_training_early(outdirs):
    args = pm.Args(total_timesteps=100_000, eval_every=4096, target_return=-200.0, quiet=True,
                   plots=False, **outdirs)
    summary = pm.train(args)
    assert summary["global_step"] == 4096 and len(summary["eval_history"]) == 1


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


def test_ctrl_c_in_a_notebook_stops_train_cleanly(outdirs, capsys):
    # Jupyter's "interrupt kernel" sends SIGINT to the kernel process, whose main thread runs train()
    args = pm.Args(**{**SMALL, "total_timesteps": 10**7, "plots": False}, **outdirs)
    handler = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    summary = pm.train(args)
    timer.join()
    assert summary["interrupted"] == signal.SIGINT and 0 < summary["global_step"] < 10**7
    assert pm.load_checkpoint(summary["checkpoint"])["counters"]["global_step"] == summary["global_step"]
    assert "resume with: python ppo_mountaincar.py train --resume" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler


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
    assert values["seed"] == 1 and values["actor_lr"] == args.actor_lr
    assert values["hidden_sizes"] == str(args.hidden_sizes) and values["preset"] == "default"
    assert "logdir" not in values
    metrics = [m.name for m in hparams.hparam.metricInfos]
    assert "final/best_eval_return" in metrics
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    for metric in metrics:  # every metric the HParams panel shows is a logged scalar
        assert scalars[metric]
    assert scalars["final/best_eval_return"][-1][1] == pytest.approx(summary["best_eval"]["mean_return"])
