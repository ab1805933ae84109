"""Training throughput: env steps per second of the whole process, this project against
Stable-Baselines3 PPO with the same settings, measured in the same run.

The settings are RL Zoo's PPO hyperparameters for MountainCar-v0: 16 envs x 16 steps,
GAE lambda 0.98, gamma 0.99, 4 epochs, minibatches of 64, normalised observations, two
hidden layers of 64 tanh units for actor and critic (SB3's default MlpPolicy), learning
rate 3e-4, no entropy or exploration bonus, no periodic evaluation. Each measurement is a fresh process (imports included), repeated
and reported as the median; runs alternate so that machine load hits both alike.

    pip install -r benchmarks/requirements.txt     # torch (CPU) and stable-baselines3
    python benchmarks/throughput.py --steps 200000 --repeats 3
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO_FLAGS = ["--num-envs", "16", "--num-steps", "16", "--gae-lambda", "0.98", "--update-epochs", "4",
             "--batch-size", "64", "--hidden-sizes", "64,64", "--activation", "tanh", "--eval-every", "0",
             # SB3's defaults that RL Zoo keeps: one learning rate of 3e-4, no entropy bonus;
             # and no exploration bonus, which SB3 does not have
             "--actor-lr", "3e-4", "--critic-lr", "3e-4", "--ent-coef", "0", "--explore-bonus", "0"]
SB3_SCRIPT = """
import sys
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
env = VecNormalize(make_vec_env("MountainCar-v0", n_envs=16, seed=1), norm_obs=True, norm_reward=False)
model = PPO("MlpPolicy", env, n_steps=16, gae_lambda=0.98, gamma=0.99, n_epochs=4, batch_size=64,
            ent_coef=0.0, device="cpu", seed=1, verbose=0)
model.learn(total_timesteps=int(sys.argv[1]))
"""


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000, help="env steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per program (median reported)")
    parser.add_argument("--sb3-python", default=sys.executable,
                        help="python that has stable-baselines3 and torch [this one]")
    a = parser.parse_args()
    have_sb3 = a.sb3_python != sys.executable or all(
        importlib.util.find_spec(m) for m in ("stable_baselines3", "torch"))
    times: dict[str, list[float]] = {"this project (Paddle)": [], "Stable-Baselines3 (PyTorch)": []}
    with tempfile.TemporaryDirectory() as out:
        ours = [sys.executable, str(ROOT / "ppo_mountaincar.py"), "train", *ZOO_FLAGS, "--total-timesteps",
                str(a.steps), "--quiet", "--no-plots", "--logdir", f"{out}/exp", "--param-dir", f"{out}/param"]
        for _ in range(a.repeats):
            times["this project (Paddle)"].append(timed(ours))
            if have_sb3:
                times["Stable-Baselines3 (PyTorch)"].append(timed([a.sb3_python, "-c", SB3_SCRIPT, str(a.steps)]))
    print(f"{a.steps:,} env steps per run, median of {a.repeats} runs, whole process (imports included)")
    print("| program | seconds | env steps/s |\n|---|---:|---:|")
    rates = {}
    for name, ts in times.items():
        if ts:
            rates[name] = a.steps / statistics.median(ts)
            print(f"| {name} | {statistics.median(ts):.1f} | {rates[name]:,.0f} |")
    if len(rates) == 2:
        print(f"ratio: {rates['this project (Paddle)'] / rates['Stable-Baselines3 (PyTorch)']:.2f}x")
    else:
        print("(Stable-Baselines3 not installed: pip install -r benchmarks/requirements.txt)")


if __name__ == "__main__":
    main()
