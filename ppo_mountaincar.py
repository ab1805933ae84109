"""PPO on MountainCar-v0 in PaddlePaddle, in one file.

A modern rebuild of a well-known Chinese PaddlePaddle tutorial, "PPO on MountainCar-v0"
(one Actor, one Critic, Monte-Carlo returns, VisualDL logs in ./exp, .param files in
./param): the same `Actor`, `Critic` and `PPO` (with `select_action`, `get_value`,
`store_transition`, `update`, `save_param`), on Gymnasium and PaddlePaddle 3, with the
tutorial's bugs fixed. The algorithm: Schulman et al., "Proximal Policy Optimization
Algorithms" (https://arxiv.org/abs/1707.06347); the advantages: Schulman et al.,
"High-Dimensional Continuous Control Using Generalized Advantage Estimation"
(https://arxiv.org/abs/1506.02438).

    python ppo_mountaincar.py                      # train the default preset
    python ppo_mountaincar.py --preset tutorial    # the article's algorithm, bugs fixed
    python ppo_mountaincar.py eval param/net_param/actor_net.param
    python ppo_mountaincar.py --help               # every flag

How to read it: from the top down to the line "THE ALGORITHM ENDS HERE" is PPO itself,
in the order it happens: 1. configuration, 2. the networks, 3. the rollout buffer with
returns and advantages, 4. the exploration bonus, 5. the PPO agent and its clipped
update, 6. the training loop. Below that line is what serves it: 7. fast paths (acting in
numpy, a numpy MountainCar), 8. .param files, 9. run bookkeeping (logs, checkpoints,
Ctrl-C, the best policy), 10. evaluation and replay, 11. figures, 12. hyperparameter
search (`tune`), 13. the command line.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

# The matrices here are small: BLAS threads would only contend (and spin) with Paddle's
# thread and with a second run on the other core. Takes effect if numpy is not loaded yet.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ start-up chatter quiet
warnings.filterwarnings("ignore", message="No ccache found")  # Paddle warns at import
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------------------------------
# 1. Configuration
# ---------------------------------------------------------------------------------------
def _flag(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field that also carries its --help text."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Args:
    """Every setting of a training run. The defaults are the `default` preset."""

    # run
    preset: str = _flag("default", "hyperparameter preset: 'default' (learns fast), 'best' (the best "
                        "policy in under a minute), 'thorough' (the previous default's network, twice the "
                        "update compute) or 'tutorial' (the article's algorithm); explicit flags override it",
                        choices=("default", "best", "thorough", "tutorial"))
    env_id: str = _flag("MountainCar-v0", "any Gymnasium env with a vector observation "
                        "and discrete actions (CartPole-v1, Acrobot-v1, ...)")
    seed: int = _flag(1, "seeds the environments, numpy and paddle")
    total_timesteps: int = _flag(150_000, "training budget in environment steps")
    episodes: int = _flag(0, "stop after this many training episodes as well (0: no limit)")
    max_episode_steps: int | None = _flag(None, "training time limit per episode; 0 removes "
                                          "it (the tutorial's env.unwrapped); unset: the env's own")
    device: str = _flag("cpu", "where the networks train: cpu (small MLPs are faster there), gpu, or auto "
                        "(gpu if this PaddlePaddle is a GPU build)", choices=("cpu", "gpu", "auto"))
    fast_env: bool = _flag(True, "run MountainCar-v0 as one numpy-batched env (same physics "
                           "and seeds as Gymnasium's, much faster)")
    # rollout
    num_envs: int = _flag(16, "parallel environments")
    num_steps: int = _flag(128, "steps per environment per rollout (the buffer capacity)")
    update_on_episode_end: bool = _flag(False, "also update as soon as an episode ends and the "
                                        "buffer holds >= batch-size steps (the tutorial's schedule)")
    # PPO
    gamma: float = _flag(0.99, "discount factor")
    gae_lambda: float = _flag(0.98, "GAE lambda (1.0: Monte-Carlo returns, as in the tutorial)")
    clip: float = _flag(0.2, "PPO ratio clip epsilon")
    update_epochs: int = _flag(10, "passes over each rollout")
    batch_size: int = _flag(512, "minibatch size")
    actor_lr: float = _flag(3e-3, "Adam learning rate of the actor")
    critic_lr: float = _flag(3e-3, "Adam learning rate of the critic")
    anneal_lr: bool = _flag(False, "decay both learning rates linearly to 0 over the budget (off by "
                            "default: at this budget the policy still improves at the last update)")
    max_grad_norm: float = _flag(0.5, "clip the global norm of all gradients to this")
    ent_coef: float = _flag(0.08, "entropy bonus coefficient")
    anneal_ent: bool = _flag(True, "decay the entropy coefficient linearly to 0 over the budget "
                             "(explore early, act precisely late)")
    norm_adv: bool = _flag(True, "normalise advantages per minibatch")
    target_kl: float | None = _flag(None, "stop an update's epochs once approx KL exceeds this")
    # networks
    hidden_sizes: tuple[int, ...] = _flag((64, 64), "hidden layer sizes, e.g. 128 or 64,64")
    activation: str = _flag("tanh", "hidden activation", choices=("tanh", "relu"))
    norm_obs: bool = _flag(True, "normalise observations with running statistics "
                           "(stored inside the actor .param)")
    # exploration
    explore_bonus: float = _flag(5.0, "count-based bonus beta/sqrt(N) on a grid over the "
                                 "observation box (0: off)")
    explore_bins: int = _flag(20, "grid cells per observation dimension for the bonus")
    explore_decay_steps: int = _flag(100_000, "the bonus decays linearly to 0 by this step")
    # evaluation during training
    eval_every: int = _flag(4096, "greedy evaluation every N env steps (0: off)")
    eval_episodes: int = _flag(100, "episodes per periodic evaluation")
    target_return: float | None = _flag(None, "stop once a periodic evaluation reaches this")
    # output
    logdir: str = _flag("exp", "VisualDL log folder; each run writes to a sub-folder")
    run_name: str | None = _flag(None, "the run's sub-folder name (unset: env__preset__seed__time)")
    param_dir: str = _flag("param", "each run's policy, snapshots, checkpoint and figures go into "
                           "<param-dir>/<run name>/; the latest finished run's policy is copied to "
                           "<param-dir>/net_param/")
    save_every: int = _flag(50, "write a numbered snapshot every N updates (0: never)")
    keep_snapshots: int = _flag(3, "numbered snapshots to keep")
    plots: bool = _flag(True, "write figures to <param-dir>/img at the end")
    quiet: bool = _flag(False, "no progress bar")


# Presets are configurations of the same code: only the values differ.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The default scaled up for precision: 8x the env steps from 4x the envs, and minibatches
    # 8x larger, so the same 2,920 gradient steps, each on 8x the samples (README, Results).
    "best": dict(num_envs=64, batch_size=4096, total_timesteps=1_200_000, explore_decay_steps=800_000,
                 eval_every=32_768, ent_coef=0.05),
    # An earlier default: a wider network, smaller minibatches, a constant small entropy
    # bonus, the earlier learning rate decaying to 0; about twice the update compute.
    "thorough": dict(hidden_sizes=(128, 128), batch_size=256, ent_coef=0.01, anneal_ent=False,
                     actor_lr=2e-3, critic_lr=2e-3, anneal_lr=True),
    # The article: one env without time limit, Monte-Carlo returns, an update at the end of
    # every episode (or when the 8,000-step buffer fills), 10 epochs of minibatches of 64.
    "tutorial": dict(
        total_timesteps=10**9, episodes=1000, max_episode_steps=0, num_envs=1,
        num_steps=8000, update_on_episode_end=True, gamma=0.99, gae_lambda=1.0,
        update_epochs=10, batch_size=64, actor_lr=1e-3, critic_lr=3e-3, anneal_lr=False,
        max_grad_norm=0.5, ent_coef=0.0, anneal_ent=False, norm_adv=False, hidden_sizes=(128,),
        activation="relu", norm_obs=False, explore_bonus=0.0, eval_every=0, save_every=100,
    ),
}


# Settings that say where a run writes or how it reports, not what it learns.
OUTPUT_SETTINGS = {"logdir", "param_dir", "run_name", "quiet", "plots", "save_every", "keep_snapshots", "device"}
# Names for run names and VisualDL's HParams panel, at most 7 characters: its parallel-
# coordinates view shortens a label wider than its column in a loop that never ends when
# the label is too long (VisualDL 2.5.3), freezing the browser tab.
SHORT_NAMES = {"env_id": "env", "total_timesteps": "steps", "episodes": "eps", "max_episode_steps": "maxlen",
               "fast_env": "fastenv", "num_envs": "envs", "num_steps": "nsteps", "update_on_episode_end": "epupd",
               "gae_lambda": "lam", "update_epochs": "epochs", "batch_size": "bs", "actor_lr": "alr",
               "critic_lr": "clr", "anneal_lr": "annlr", "max_grad_norm": "gclip", "ent_coef": "ent",
               "anneal_ent": "annent", "norm_adv": "normadv", "target_kl": "kl", "hidden_sizes": "h",
               "activation": "act", "norm_obs": "normobs", "explore_bonus": "bonus", "explore_bins": "bins",
               "explore_decay_steps": "bdecay", "eval_every": "evalint", "eval_episodes": "evaleps",
               "target_return": "target"}


def changed_settings(args: Args) -> dict[str, Any]:
    """The training settings in which `args` differs from its preset (seed and env apart)."""
    preset = preset_args(args.preset) if args.preset in PRESETS else Args()
    return {k: v for k, v in dataclasses.asdict(args).items()
            if k not in OUTPUT_SETTINGS | {"seed", "env_id", "preset"} and v != getattr(preset, k)}


def preset_args(name: str = "default", **overrides: Any) -> Args:
    """The settings of a preset with some fields changed, e.g. preset_args("tutorial", seed=2)."""
    if name not in PRESETS:
        raise UsageError(f"no preset '{name}'; choose one of {', '.join(PRESETS)}")
    return Args(**{**PRESETS[name], **overrides, "preset": name})


class UsageError(Exception):
    """A mistake in how the program was called: reported as one line, exit code 2."""


# Sizes past which a setting is a typo, not a plan: they would exhaust memory or hang.
MAX_ENVS = 65_536
MAX_BUFFER = 2**24            # transitions in one rollout (num_envs x num_steps)
MAX_WEIGHTS = 20_000_000      # per network
MAX_EVAL_EPISODES = 100_000   # evaluated at once, one env each
MAX_SEED = 2**32 - 1          # numpy's and Gymnasium's seeds are 32-bit
MAX_EPOCHS = 1_000
MAX_RUN_BYTES = 2 * 2**30     # the rollout and the update's copies of it
MAX_BONUS_CELLS = 2**20       # the count table (8 MB, saved in every checkpoint)


def network_weights(sizes: list[int]) -> int:
    """Weights and biases of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def use_device(name: str) -> str:
    """Put Paddle on the device --device asks for (a GPU build would otherwise pick gpu:0
    unasked); returns its name."""
    gpu_build = paddle.device.is_compiled_with_cuda()
    if name == "gpu" and not gpu_build:
        raise UsageError("--device gpu needs PaddlePaddle's GPU build (paddlepaddle-gpu); this one is the "
                         "CPU build: use --device cpu")
    device = "gpu" if name == "gpu" or (name == "auto" and gpu_build) else "cpu"
    paddle.set_device(device)
    return device


def validate_for_env(args: Args) -> None:
    """The checks that need the env's observation size (read from one env of it): the
    rollout's memory and the count bonus's table, before anything is allocated for them."""
    env = make_env(args.env_id)  # section 7
    space = env.observation_space
    env.close()
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        return  # make_vec_env says what it needs
    obs_dim = space.shape[0]
    # obs and next obs with their update copies, the scalars, and the critic's hidden
    # activations on the value batch (V of both obs and next obs in one call): float32 each
    per_transition = obs_dim * 4 * 6 + 64 + 2 * 4 * sum(args.hidden_sizes)
    need = args.num_envs * args.num_steps * per_transition
    if need > MAX_RUN_BYTES:
        raise UsageError(f"--num-envs {args.num_envs} x --num-steps {args.num_steps} would need about "
                         f"{need / 2**30:.1f} GB for one rollout and its update (limit {MAX_RUN_BYTES / 2**30:.0f} GB); "
                         "e.g. --num-envs 16 --num-steps 128")
    cells = args.explore_bins ** obs_dim
    if args.explore_bonus > 0 and cells > MAX_BONUS_CELLS:
        fit = int(MAX_BONUS_CELLS ** (1 / obs_dim))
        raise UsageError(f"--explore-bins {args.explore_bins} on a {obs_dim}-dimensional observation makes "
                         f"{cells:,} bonus cells (limit {MAX_BONUS_CELLS:,}); use --explore-bins {fit} "
                         "or --explore-bonus 0")


def validate(args: Args) -> None:
    """Reject settings that cannot work, with a sentence that says how to fix them."""
    for f in dataclasses.fields(Args):  # every number read from a flag is finite
        value = getattr(args, f.name)
        if f.type in ("float", "float | None") and value is not None and not math.isfinite(value):
            raise UsageError(f"--{f.name.replace('_', '-')} must be a finite number, not {value}")
    checks = [
        (0 <= args.seed <= MAX_SEED, f"--seed must be in 0..{MAX_SEED:,}"),
        (0 < args.total_timesteps <= 10**10, "--total-timesteps must be positive and at most 10^10"),
        (0 <= args.episodes <= 10**8, "--episodes must be >= 0 (0: no limit) and at most 10^8"),
        (args.num_envs > 0 and args.num_steps > 0, "--num-envs and --num-steps must be positive"),
        (args.num_envs <= MAX_ENVS, f"--num-envs must be at most {MAX_ENVS:,}, e.g. 16"),
        (args.num_envs * args.num_steps <= MAX_BUFFER,
         f"--num-envs x --num-steps must be at most {MAX_BUFFER:,} transitions, e.g. 16 x 128"),
        (0 < args.gamma <= 1, "--gamma must be in (0, 1]"),
        (0 <= args.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (0 < args.clip < 1, "--clip must be in (0, 1), e.g. 0.2"),
        (0 < args.update_epochs <= MAX_EPOCHS, f"--update-epochs must be in 1..{MAX_EPOCHS:,}, e.g. 10"),
        (0 < args.batch_size <= args.num_envs * args.num_steps,
         "--batch-size must be positive and at most --num-envs x --num-steps"),
        (args.actor_lr > 0 and args.critic_lr > 0, "learning rates must be positive"),
        (args.max_grad_norm > 0, "--max-grad-norm must be positive"),
        (args.ent_coef >= 0, "--ent-coef must be >= 0"),
        (args.target_kl is None or args.target_kl > 0, "--target-kl must be positive"),
        (all(h > 0 for h in args.hidden_sizes) and args.hidden_sizes, "--hidden-sizes must be positive, e.g. 64,64"),
        (network_weights([8, *args.hidden_sizes, 8]) <= MAX_WEIGHTS,  # 8: any small obs/action size
         f"--hidden-sizes would make a network of more than {MAX_WEIGHTS:,} weights; try 64,64 or 128,128"),
        (args.max_episode_steps is None or args.max_episode_steps >= 0, "--max-episode-steps must be >= 0"),
        (args.eval_every >= 0 and 0 < args.eval_episodes <= MAX_EVAL_EPISODES,
         f"--eval-every must be >= 0, --eval-episodes in 1..{MAX_EVAL_EPISODES:,}"),
        (args.save_every >= 0 and args.keep_snapshots >= 0, "--save-every and --keep-snapshots must be >= 0"),
        (args.explore_bonus >= 0 and args.explore_bins > 0, "--explore-bonus must be >= 0, --explore-bins > 0"),
        (0 < args.explore_decay_steps <= 10**10, "--explore-decay-steps must be positive, e.g. 100000"),
        (args.run_name is None or (0 < len(args.run_name) <= 200 and not args.run_name.startswith(".")
                                   and all(c.isalnum() or c in "._,=+-" for c in args.run_name)),
         "--run-name must be a plain folder name: letters, digits and . _ , = + -"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


# ---------------------------------------------------------------------------------------
# 2. Networks
# ---------------------------------------------------------------------------------------
class ObsNorm(nn.Layer):
    """Running mean/variance of observations, kept as buffers so that they travel
    inside the .param file. Frozen during a rollout and its update, refreshed after."""

    def __init__(self, obs_dim: int, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", paddle.zeros([obs_dim]))
        self.register_buffer("var", paddle.ones([obs_dim]))
        self.register_buffer("count", paddle.to_tensor([1e-4]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self.enabled:
            return x
        return paddle.clip((x - self.mean) / paddle.sqrt(self.var + 1e-8), -10.0, 10.0)

    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of raw observations into the statistics (Chan et al.)."""
        if not self.enabled:
            return
        mean, var, n = (t.numpy().astype(np.float64) for t in (self.mean, self.var, self.count))
        b_mean, b_var, b_n = batch.mean(0), batch.var(0), batch.shape[0]
        delta, total = b_mean - mean, n + b_n
        new_mean = mean + delta * b_n / total
        new_var = (var * n + b_var * b_n + delta**2 * n * b_n / total) / total
        for t, v in ((self.mean, new_mean), (self.var, new_var), (self.count, total)):
            t.set_value(v.astype(np.float32))


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with `activation` between them (none after the last)."""
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layers: list[nn.Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class Actor(nn.Layer):
    """The policy ("演员"): state -> action probabilities."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes=(128,), activation="relu",
                 obs_norm: ObsNorm | None = None):
        super().__init__()
        self.obs_norm = obs_norm or ObsNorm(obs_dim, enabled=False)
        self.net = mlp([obs_dim, *hidden_sizes, n_actions], activation)

    def logits(self, state: paddle.Tensor) -> paddle.Tensor:
        """Unnormalised log-probabilities of the actions for raw states, [N, n_actions]."""
        return self.logits_of_normalised(self.obs_norm(state))

    def logits_of_normalised(self, obs: paddle.Tensor) -> paddle.Tensor:
        """The same for states already normalised: `PPO.update` normalises a rollout once
        and calls this for every minibatch."""
        return self.net(obs)

    def forward(self, state: paddle.Tensor) -> paddle.Tensor:
        return F.softmax(self.logits(state), axis=-1)


class Critic(nn.Layer):
    """The value function ("评论家"): state -> V(s), shape [N]."""

    def __init__(self, obs_dim: int, hidden_sizes=(128,), activation="relu",
                 obs_norm: ObsNorm | None = None):
        super().__init__()
        self.obs_norm = obs_norm or ObsNorm(obs_dim, enabled=False)
        self.net = mlp([obs_dim, *hidden_sizes, 1], activation)

    def forward(self, state: paddle.Tensor) -> paddle.Tensor:
        return self.value_of_normalised(self.obs_norm(state))

    def value_of_normalised(self, obs: paddle.Tensor) -> paddle.Tensor:
        """V(s) for states already normalised (see `Actor.logits_of_normalised`)."""
        return self.net(obs).squeeze(-1)


# ---------------------------------------------------------------------------------------
# 3. The rollout buffer: returns and advantages
# ---------------------------------------------------------------------------------------
class RolloutBuffer:
    """Fixed-capacity storage of `num_steps` x `num_envs` transitions (the tutorial's
    unbounded list grew past a million entries when the car never found the flag).
    Like the tutorial's Transition it keeps each step's next state: the critic values
    all states in one batch at update time, and V(next state) bootstraps wherever an
    episode is cut rather than ended (a time limit, or the end of the rollout)."""

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int):
        self.obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)
        self.next_obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)  # before autoreset
        self.actions = np.zeros((num_steps, num_envs), np.int64)
        self.logprobs = np.zeros((num_steps, num_envs), np.float32)
        self.rewards = np.zeros((num_steps, num_envs), np.float32)
        self.terminated = np.zeros((num_steps, num_envs), np.float32)  # reached a terminal state
        self.dones = np.zeros((num_steps, num_envs), np.float32)  # episode over: terminated or cut
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size == len(self.obs)

    def add(self, obs, action, logprob, reward, next_obs, terminated, done) -> None:
        t = self.size
        self.obs[t], self.actions[t], self.logprobs[t], self.rewards[t] = obs, action, logprob, reward
        self.next_obs[t], self.terminated[t], self.dones[t] = next_obs, terminated, done
        self.size += 1

    def compute_returns(self, values: np.ndarray, next_values: np.ndarray, gamma: float,
                        gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
        """GAE(lambda): the advantages A_t and the returns A_t + V(s_t) that the critic
        regresses on, given V(s_t) and V(s_t+1) for every stored step ([size, num_envs]).

        delta_t = r_t + gamma * V(s_t+1) * (1 - terminated_t) - V(s_t), summed back with
        weights (gamma * lambda)^k until the episode ends. With lambda = 1 this is the
        tutorial's Monte-Carlo return G_t (bootstrapped where an episode was cut) and its
        advantage G_t - V(s_t)."""
        steps = self.size
        deltas = self.rewards[:steps] + gamma * next_values * (1.0 - self.terminated[:steps]) - values
        advantages = np.zeros_like(deltas)
        gae = np.zeros(deltas.shape[1], np.float32)  # the running sum, from the rollout's end back
        for t in reversed(range(steps)):  # sequential in time, batched over envs
            gae = advantages[t] = deltas[t] + gamma * gae_lambda * (1.0 - self.dones[t]) * gae
        returns = advantages + values
        return advantages, returns

    def flat(self, name: str) -> np.ndarray:
        """The stored steps of one field with time and envs merged: [size * num_envs, ...]."""
        array = getattr(self, name)[:self.size]
        return array.reshape(self.size * array.shape[1], *array.shape[2:])

    def clear(self) -> None:
        self.size = 0


# ---------------------------------------------------------------------------------------
# 4. The exploration bonus
# ---------------------------------------------------------------------------------------
class CountBonus:
    """Count-based exploration: reward beta / sqrt(N(cell)) for visiting a cell of a
    grid laid over the (finite) observation box. Sparse-reward tasks like MountainCar
    need it: a random policy almost never reaches the flag within 200 steps."""

    def __init__(self, low: np.ndarray, high: np.ndarray, bins: int):
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise UsageError("--explore-bonus needs an env with a bounded observation box; "
                             "set --explore-bonus 0")
        self.low, self.width = low.astype(np.float64), (high - low).astype(np.float64)
        self.bins = bins
        self.counts = np.zeros(bins ** len(low), np.int64)

    def cells(self, obs: np.ndarray) -> np.ndarray:
        """Flat grid-cell index of each observation."""
        idx = np.clip(((obs - self.low) / self.width * self.bins).astype(np.int64), 0, self.bins - 1)
        return np.ravel_multi_index(idx.T, (self.bins,) * obs.shape[1])

    def __call__(self, obs: np.ndarray, beta: float) -> np.ndarray:
        """Count the visits in `obs` (batch) and return their bonuses."""
        c = self.cells(obs)
        np.add.at(self.counts, c, 1)
        return (beta / np.sqrt(self.counts[c])).astype(np.float32)


# ---------------------------------------------------------------------------------------
# 5. The PPO agent
# ---------------------------------------------------------------------------------------
def log_prob_of(log_probs: paddle.Tensor, actions: paddle.Tensor) -> paddle.Tensor:
    """log pi(a|s) of each row's action, picked from the table log pi(.|s) in one batched
    gather (the tutorial looped over rows in Python)."""
    return paddle.take_along_axis(log_probs, actions.unsqueeze(-1), axis=-1).squeeze(-1)


def entropy_of(log_probs: paddle.Tensor) -> paddle.Tensor:
    """Mean entropy H of the rows' categorical distributions, from their log-probabilities."""
    return -(paddle.exp(log_probs) * log_probs).sum(-1).mean()


def clipped_surrogate(logp: paddle.Tensor, old_logp: paddle.Tensor, advantages: paddle.Tensor,
                      clip: float) -> paddle.Tensor:
    """PPO's policy loss -L_clip = -E[min(r A, clip(r, 1-eps, 1+eps) A)] with r = pi / pi_old.
    The ratio is formed in log space: pi/pi_old of two tiny probabilities is unstable."""
    ratio = paddle.exp(logp - old_logp)
    return -paddle.minimum(ratio * advantages, paddle.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages).mean()


def normalised(x: paddle.Tensor) -> paddle.Tensor:
    """x scaled to mean 0 and standard deviation 1 (advantages, per minibatch)."""
    centred = x - x.mean()
    return centred / (paddle.sqrt((centred * centred).mean()) + 1e-8)


@paddle.no_grad()
def clip_grad_global_norm(params: list[paddle.Tensor], max_norm: float) -> None:
    """Scale all gradients by one factor so that their global L2 norm is at most `max_norm`
    (what nn.ClipGradByGlobalNorm computes, written out because it is cheaper here)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = paddle.sqrt(paddle.add_n([(g * g).sum() for g in grads]))
    scale = max_norm / paddle.maximum(norm, paddle.full_like(norm, max_norm))
    for g in grads:
        g.multiply_(scale)


def sample_actions(log_probs: np.ndarray, rng: np.random.Generator | None = None,
                   greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An action for each row of log pi(.|s), and its log-probability log pi(a|s).
    Samples from pi itself, by inverse CDF with one uniform draw per row."""
    if greedy:
        actions = log_probs.argmax(-1)
    else:
        u = rng.random((len(log_probs), 1))
        actions = np.minimum((u > np.cumsum(np.exp(log_probs), -1)).sum(-1), log_probs.shape[1] - 1)
    return actions, np.take_along_axis(log_probs, actions[:, None], -1)[:, 0]


class Minibatch(NamedTuple):
    """Samples of a rollout, as the update uses them."""

    obs: paddle.Tensor         # states, normalised once per update
    actions: paddle.Tensor     # a_t
    old_logp: paddle.Tensor    # log pi_old(a_t|s_t), stored while acting
    advantages: paddle.Tensor  # A_t (GAE)
    returns: paddle.Tensor     # A_t + V_old(s_t): the critic's targets

    def shuffled_into(self, sizes: list[int], rng: np.random.Generator) -> Iterator[Minibatch]:
        """This batch in a new random order, cut into minibatches of `sizes` (one gather
        and one split per field, cheaper than indexing every minibatch)."""
        order = paddle.to_tensor(rng.permutation(len(self.actions)))
        fields = [paddle.split(paddle.gather(t, order), sizes) for t in self]
        return (Minibatch(*parts) for parts in zip(*fields))


class PPO:
    """The agent: actor, critic, their optimizer and the rollout buffer, with the clipped update."""

    def __init__(self, obs_dim: int, n_actions: int, args: Args):
        self.args = args
        self.obs_norm = ObsNorm(obs_dim, enabled=args.norm_obs)  # shared by both networks
        self.actor_net = Actor(obs_dim, n_actions, args.hidden_sizes, args.activation, self.obs_norm)
        self.critic_net = Critic(obs_dim, args.hidden_sizes, args.activation, self.obs_norm)
        # One Adam for both networks, a parameter group only when the critic's learning rate
        # differs (a group's rate is a factor on the actor's): one optimizer step per minibatch.
        self.params = self.actor_net.parameters() + self.critic_net.parameters()
        groups = self.params if args.critic_lr == args.actor_lr else [
            {"params": self.actor_net.parameters()},
            {"params": self.critic_net.parameters(), "learning_rate": args.critic_lr / args.actor_lr}]
        self.optimizer = paddle.optimizer.Adam(args.actor_lr, parameters=groups, use_multi_tensor=True)
        self.buffer = RolloutBuffer(args.num_steps, args.num_envs, obs_dim)
        # An exact numpy copy of the actor for acting (section 7): a Paddle call per env step
        # would cost more than the arithmetic. Refreshed after each update.
        self.acting_actor = NumpyActor(self.actor_net)
        self.rng = np.random.default_rng(args.seed)
        self.ent_coef = args.ent_coef  # its value now (--anneal-ent decays it)
        self.gradient_steps = 0  # minibatch updates so far (the tutorial's training_step)

    # -- acting ---------------------------------------------------------------------
    def select_action(self, state: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions for a batch of raw states; returns (actions, log pi(a|s))."""
        log_probs = self.acting_actor.log_probs(state)  # = log_softmax(actor_net.logits(state))
        return sample_actions(log_probs, self.rng, greedy)

    @paddle.no_grad()
    def get_value(self, state: np.ndarray) -> np.ndarray:
        """V(s) for a batch of raw states."""
        return self.critic_net(paddle.to_tensor(state, dtype="float32")).numpy()

    def store_transition(self, state, action, logprob, reward, next_state, terminated, done) -> None:
        """Append one step of every env to the buffer (`next_state` before any autoreset)."""
        self.buffer.add(state, action, logprob, reward, next_state, terminated, done)

    # -- learning -------------------------------------------------------------------
    def anneal(self, frac: float) -> None:
        """Follow the schedules, `frac` going from 1 to 0 over the budget: both learning
        rates (--anneal-lr; the critic's follows through its group's factor) and the
        entropy coefficient (--anneal-ent)."""
        if self.args.anneal_lr:
            self.optimizer.set_lr(self.args.actor_lr * frac)
        if self.args.anneal_ent:
            self.ent_coef = self.args.ent_coef * frac

    def update(self) -> dict[str, Any]:
        """Learn from the rollout in the buffer, then clear it. Returns the losses of every
        minibatch (for the tutorial's VisualDL tags) and diagnostics of the whole update."""
        args, buffer = self.args, self.buffer
        obs, next_obs = buffer.flat("obs"), buffer.flat("next_obs")
        # 1. V(s_t) and V(s_t+1) of every stored step, then advantages and return targets
        values, next_values = self.values_of(obs, next_obs)
        advantages, returns = buffer.compute_returns(values.reshape(buffer.size, -1),
                                                     next_values.reshape(buffer.size, -1),
                                                     args.gamma, args.gae_lambda)
        # 2. The training batch. The observation statistics stay frozen during an update, so
        # the batch is normalised once here and the networks' *_of_normalised methods take it.
        with paddle.no_grad():
            batch = Minibatch(self.obs_norm(paddle.to_tensor(obs)), *(paddle.to_tensor(x) for x in (
                buffer.flat("actions"), buffer.flat("logprobs"), advantages.reshape(-1), returns.reshape(-1))))
        # 3. Epochs of shuffled minibatches, one gradient step each
        samples = len(batch.actions)
        sizes = [min(args.batch_size, samples - start) for start in range(0, samples, args.batch_size)]
        losses, epochs = [], 0
        for epochs in range(1, args.update_epochs + 1):
            for minibatch in batch.shuffled_into(sizes, self.rng):
                losses.append(self._minibatch_step(minibatch))
            if args.target_kl is not None and self.policy_shift(batch)["approx_kl"] > args.target_kl:
                break
        # 4. How far the policy moved, for the logs; then ready the next rollout
        diagnostics = self.policy_shift(batch)
        self.obs_norm.update(obs)  # after the update, so that pi_old and pi saw the same inputs
        self.acting_actor.refresh()
        buffer.clear()
        policy_loss, value_loss = paddle.stack(losses).numpy().T
        return dict(policy_loss=policy_loss, value_loss=value_loss, epochs=epochs, **diagnostics,
                    explained_variance=float(1 - np.var(advantages) / (np.var(returns) + 1e-8)))

    def _minibatch_step(self, minibatch: Minibatch) -> paddle.Tensor:
        """One gradient step on Loss = -L_clip - c * H + L_V; returns [-L_clip, L_V]."""
        args = self.args
        advantages = minibatch.advantages
        if args.norm_adv and len(advantages) > 1:
            advantages = normalised(advantages)
        log_probs = F.log_softmax(self.actor_net.logits_of_normalised(minibatch.obs), axis=-1)
        policy_loss = clipped_surrogate(log_prob_of(log_probs, minibatch.actions), minibatch.old_logp,
                                        advantages, args.clip)
        value = self.critic_net.value_of_normalised(minibatch.obs)
        assert value.shape == minibatch.returns.shape  # [N] vs [N, 1] would broadcast to [N, N]
        value_loss = F.mse_loss(value, minibatch.returns)
        entropy = entropy_of(log_probs) if self.ent_coef else 0.0  # not computed when unweighted
        loss = policy_loss - self.ent_coef * entropy + value_loss
        loss.backward()  # the networks share no weights: each gets its own terms' gradient
        clip_grad_global_norm(self.params, args.max_grad_norm)
        self.optimizer.step()
        self.optimizer.clear_grad()
        self.gradient_steps += 1
        return paddle.stack([policy_loss, value_loss]).detach()

    @paddle.no_grad()
    def values_of(self, obs: np.ndarray, next_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V(s) and V(s') of raw states: one critic call on both halves (half the calls)."""
        both = self.get_value(np.concatenate([obs, next_obs]))
        return both[:len(obs)], both[len(obs):]

    @paddle.no_grad()
    def policy_shift(self, batch: Minibatch) -> dict[str, float]:
        """How far the policy has moved from pi_old over the whole batch: approximate
        KL(pi_old || pi), the fraction of ratios outside the clip range, and the entropy
        (once per update, not per minibatch: they are diagnostics)."""
        log_probs = F.log_softmax(self.actor_net.logits_of_normalised(batch.obs), axis=-1)
        log_ratio = log_prob_of(log_probs, batch.actions) - batch.old_logp
        ratio = paddle.exp(log_ratio)
        kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > self.args.clip).astype("float32").mean()
        values = paddle.stack([kl, clip_fraction, entropy_of(log_probs)]).numpy().tolist()
        return dict(zip(("approx_kl", "clip_fraction", "entropy"), values))

    def save_param(self, directory: str | Path, suffix: str = "") -> Path:
        """Write actor_net{suffix}.param and critic_net{suffix}.param; returns the actor's."""
        directory = Path(directory)
        meta = network_meta(self.actor_net, self.args)
        save_state(self.critic_net, directory / f"critic_net{suffix}.param", {**meta, "role": "critic"})
        return save_state(self.actor_net, directory / f"actor_net{suffix}.param", {**meta, "role": "actor"})


# ---------------------------------------------------------------------------------------
# 6. The training loop
# ---------------------------------------------------------------------------------------
def train(args: Args, checkpoint: dict[str, Any] | None = None,
          on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """Train PPO as configured (or continue a checkpoint); returns a summary.
    `on_evaluation(global_step, result)` is called after each periodic evaluation and may
    return True to stop the run there (`tune` uses it to prune hopeless trials).

    PPO's loop: collect a rollout with the current policy, update on it for a few epochs,
    log, evaluate now and then; repeat. `Run` (section 9) keeps the books: VisualDL, the
    progress bar, checkpoints and the best policy."""
    validate(args)
    validate_for_env(args)
    device = use_device(args.device)
    paddle.seed(args.seed)
    envs = make_vec_env(args.env_id, args.num_envs, args.max_episode_steps, args.fast_env)  # section 7
    space = envs.single_observation_space
    agent = PPO(space.shape[0], int(envs.single_action_space.n), args)
    bonus = CountBonus(space.low, space.high, args.explore_bins) if args.explore_bonus > 0 else None
    run = Run(args, agent, bonus, envs, checkpoint, on_evaluation)
    if not args.quiet:
        print(f"training {args.env_id} on {device} (PaddlePaddle {paddle.__version__}) into {run.net_dir}",
              file=sys.stderr)
    global_step, episodes_done, rollouts = (run.counters[k] for k in ("global_step", "episodes_done", "rollouts"))

    def finished() -> bool:
        return global_step >= args.total_timesteps or 0 < args.episodes <= episodes_done

    obs = run.place.start(env_seeds(args, rollouts))  # new episodes, or a checkpoint's where they were
    with StopSignal() as stop:  # section 9. Ctrl-C or SIGTERM: finish the step, keep a checkpoint
        while not finished():
            agent.anneal(max(0.0, 1.0 - global_step / args.total_timesteps))
            run.place.begin(global_step, episodes_done)  # what a stop during it goes back to

            # 1. Collect a rollout with the current policy.
            while not agent.buffer.full and not stop.requested:
                action, logprob = agent.select_action(obs)
                next_obs, reward, terminated, truncated, info = envs.step(action)
                done = terminated | truncated
                arrived = arrival_states(next_obs, done, info)
                train_reward = reward.astype(np.float32)
                beta = args.explore_bonus * max(0.0, 1.0 - global_step / args.explore_decay_steps)
                if bonus is not None and beta > 0:  # nothing to count once it has decayed
                    train_reward += bonus(arrived, beta)
                agent.store_transition(obs, action, logprob, train_reward, arrived, terminated, done)
                obs = next_obs
                global_step += args.num_envs
                run.log.record_step(reward, done, global_step, episodes_done)  # the env's own reward
                episodes_done += int(done.sum())
                if args.update_on_episode_end and done.any() and \
                        agent.buffer.size * args.num_envs >= args.batch_size:
                    break  # the tutorial's schedule: update at an episode's end
            run.log.lap("collect")
            if stop.requested:  # a partial rollout is dropped: the checkpoint is from before it
                global_step, episodes_done, obs = run.place.undo()
                break

            try:  # a stop in the update or the evaluation goes back to the rollout's start at once
                with stop.undoable():
                    # 2. Learn from it: advantages, then epochs of clipped minibatch updates.
                    stats = agent.update()
                    run.log.lap("update")

                    # 3. Log it; now and then evaluate (keeping the best policy), then save.
                    reached = run.after_update(stats, global_step, episodes_done, rollouts + 1, finished(), stop)
            except StopRequested:
                global_step, episodes_done, obs = run.place.undo()
                break
            rollouts += 1
            if reached:
                break  # --target-return reached
        summary = run.finish(global_step, episodes_done, rollouts, stop)
    envs.close()
    return summary


def env_seeds(args: Args, rollouts: int) -> list[int]:
    """Seeds of the envs' first episodes (a resumed run starts new ones): drawn from the
    training seed and the rollout count into [2^31, 2^32), a range of their own, so that no
    training episode starts where an evaluation episode (seeds below 2^31) starts."""
    drawn = np.random.SeedSequence([args.seed, rollouts]).generate_state(args.num_envs)
    return [2**31 + int(x) % 2**31 for x in drawn]


def arrival_states(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Where each env really arrived. A vector env resets a finished episode at once and
    returns the next episode's first observation; the buffer needs the state the episode
    ended in (to bootstrap a time-limit cut from it), which is in `info["final_obs"]`."""
    if not done.any():
        return next_obs
    arrived = next_obs.copy()
    arrived[done] = np.stack(info["final_obs"][done])
    return arrived


# =======================================================================================
# THE ALGORITHM ENDS HERE.
# Above: PPO (configuration, networks, buffer, bonus, agent, training loop).
# Below: what serves it, none of which a reader needs to follow the algorithm:
#   7. fast paths (`NumpyActor`, an exact numpy copy of the actor for acting; `make_vec_env`
#   and a numpy-batched MountainCar), 8. .param files (safe loading, checksums, atomic
#   writing), 9. run bookkeeping (`Run` and its rooms: `StopSignal`, `Logbook`, `BestPolicy`,
#   `EnvPlace`, `Checkpoints`), 10. evaluation and replay, 11. figures, 12. tune, 13. command line.
# =======================================================================================


# ---------------------------------------------------------------------------------------
# 7. Fast paths: acting in numpy, and the environments (MountainCar in numpy)
# ---------------------------------------------------------------------------------------
class NumpyActor:
    """A numpy copy of an `Actor`, for acting (no gradients needed). Paddle's eager mode
    costs 10-20 microseconds per operation whatever the tensor size, so one forward pass
    for 16 states costs several times more in Paddle than in numpy; the rollout makes one
    per step. `refresh()` copies the weights and observation statistics again."""

    def __init__(self, actor: Actor):
        self.actor = actor
        self.refresh()

    def refresh(self) -> None:
        net, norm = self.actor.net, self.actor.obs_norm
        self.layers = [(layer.weight.numpy(), layer.bias.numpy()) for layer in net if isinstance(layer, nn.Linear)]
        self.activation = np.tanh if isinstance(net[1], nn.Tanh) else (lambda x: np.maximum(x, 0))
        self.mean, self.std = (norm.mean.numpy(), np.sqrt(norm.var.numpy() + 1e-8)) if norm.enabled else (0.0, 1.0)
        self.clip = 10.0 if norm.enabled else np.inf

    def log_probs(self, state: np.ndarray) -> np.ndarray:
        """log pi(.|s) for a batch of raw states, [N, n_actions] (Actor.logits + log_softmax)."""
        x = np.clip((np.asarray(state, np.float32) - self.mean) / self.std, -self.clip, self.clip)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = self.activation(x)
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))



# Gymnasium imports the module named before a ':' in an env id ("mymod:MyEnv-v0"). An id read
# from a file (or typed by mistake) must never run code: only ids the user allowed by name do.
TRUSTED_ENV_MODULES: set[str] = set()


def allow_env_module(env_id: str) -> None:
    """Let `make_env` import the module that `env_id` names ("module:EnvName-v0"); the
    command line's --allow-env-module calls this for its --env-id."""
    TRUSTED_ENV_MODULES.add(env_id)


def make_env(env_id: str, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """One Gymnasium env; `max_episode_steps=0` removes the time limit."""
    if not isinstance(env_id, str) or not env_id:
        raise UsageError("an env id must be a name, e.g. MountainCar-v0")
    if ":" in env_id and env_id not in TRUSTED_ENV_MODULES:
        raise UsageError(f"env id '{env_id[:80]}' would import the module '{env_id.split(':')[0][:40]}'; "
                         "if you trust it, pass it as --env-id with --allow-env-module")
    try:
        if max_episode_steps == 0:
            return gym.make(env_id, **kwargs).unwrapped
        return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    except Exception as e:  # noqa: BLE001 - unknown ids, missing modules, an env's own errors
        raise UsageError(f"cannot make env '{env_id[:80]}' ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                         "try MountainCar-v0, CartPole-v1 or Acrobot-v1") from None


def make_vec_env(env_id: str, num_envs: int, max_episode_steps: int | None = None,
                 fast: bool = True) -> gym.vector.VectorEnv:
    """`num_envs` copies in one process. SAME_STEP autoreset hands back the final
    observation of a finished episode in `info["final_obs"]`, for bootstrapping.
    MountainCar-v0 runs as `MountainCarVecEnv` (same physics, all cars in one numpy step)
    unless `fast=False`."""
    if fast and env_id == "MountainCar-v0":
        return MountainCarVecEnv(num_envs, 200 if max_episode_steps is None else max_episode_steps)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, max_episode_steps) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    if not (isinstance(action_space, gym.spaces.Discrete) and isinstance(obs_space, gym.spaces.Box)
            and len(obs_space.shape) == 1):
        envs.close()
        raise UsageError(f"env '{env_id}' observes {str(obs_space)[:60]} and acts in {str(action_space)[:40]}; "
                         "this PPO needs a flat Box observation and Discrete actions, e.g. CartPole-v1 or Acrobot-v1")
    return envs


class MountainCarVecEnv(gym.vector.VectorEnv):
    """MountainCar-v0 for `num_envs` cars in one numpy step: Gymnasium's physics, reset
    distribution, per-env seeding and time limit, with SAME_STEP autoreset (a test checks it
    against `SyncVectorEnv` step for step). A Python env per car costs more than PPO's
    arithmetic; this removes that cost. `max_episode_steps=0` means no time limit."""

    FORCE, GRAVITY, MAX_SPEED = 0.001, 0.0025, 0.07
    MIN_POS, MAX_POS, GOAL_POS = -1.2, 0.6, 0.5

    def __init__(self, num_envs: int, max_episode_steps: int = 200):
        single = gym.make("MountainCar-v0").unwrapped
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = single.observation_space, single.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.max_episode_steps = max_episode_steps
        self.rngs = [gym.utils.seeding.np_random()[0] for _ in range(num_envs)]
        self.pos, self.vel = np.zeros(num_envs), np.zeros(num_envs)
        self.elapsed = np.zeros(num_envs, np.int64)

    def _reset_cars(self, idx: np.ndarray) -> None:
        self.pos[idx] = [self.rngs[i].uniform(low=-0.6, high=-0.4) for i in idx]
        self.vel[idx], self.elapsed[idx] = 0.0, 0

    def _obs(self) -> np.ndarray:
        return np.stack([self.pos, self.vel], 1).astype(np.float32)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            seeds = seed if isinstance(seed, (list, tuple)) else [seed + i for i in range(self.num_envs)]
            self.rngs = [gym.utils.seeding.np_random(s)[0] for s in seeds]
        self._reset_cars(np.arange(self.num_envs))
        return self._obs(), {}

    @classmethod
    def dynamics(cls, pos: np.ndarray, vel: np.ndarray, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of the physics for arrays of cars: new position, velocity, and whether
        the car reached the flag. Same operations in the same order as MountainCarEnv.step."""
        vel = vel + ((np.asarray(actions) - 1) * cls.FORCE + np.cos(3 * pos) * (-cls.GRAVITY))
        vel = np.clip(vel, -cls.MAX_SPEED, cls.MAX_SPEED)
        pos = np.clip(pos + vel, cls.MIN_POS, cls.MAX_POS)
        vel = np.where((pos == cls.MIN_POS) & (vel < 0), 0.0, vel)
        return pos, vel, (pos >= cls.GOAL_POS) & (vel >= 0)

    def get_state(self) -> dict[str, Any]:
        """Every car's position, velocity, elapsed steps and RNG: what a checkpoint needs to
        continue these episodes exactly."""
        return dict(pos=self.pos.copy(), vel=self.vel.copy(), elapsed=self.elapsed.copy(),
                    rngs=[rng.bit_generator.state for rng in self.rngs])

    def set_state(self, state: dict[str, Any]) -> np.ndarray:
        """Put the cars back as `get_state` saw them; returns their observations."""
        try:
            pos, vel, elapsed = (np.asarray(state[k], dtype) for k, dtype in
                                 (("pos", np.float64), ("vel", np.float64), ("elapsed", np.int64)))
            if not (pos.shape == vel.shape == elapsed.shape == (self.num_envs,)) or len(state["rngs"]) != self.num_envs:
                raise ValueError("sizes")
            rngs = [gym.utils.seeding.np_random()[0] for _ in range(self.num_envs)]
            for rng, saved in zip(rngs, state["rngs"]):
                rng.bit_generator.state = saved
        except (KeyError, TypeError, ValueError):
            raise UsageError("the checkpoint's env state is damaged or for other envs; start a new run") from None
        self.pos, self.vel, self.elapsed, self.rngs = pos, vel, elapsed, rngs
        return self._obs()

    def step(self, actions: np.ndarray):
        self.pos, self.vel, terminated = self.dynamics(self.pos, self.vel, actions)
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps if self.max_episode_steps else \
            np.zeros(self.num_envs, bool)
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            info = {"final_obs": self._obs(), "_final_obs": done}
            self._reset_cars(np.flatnonzero(done))
        return self._obs(), np.full(self.num_envs, -1.0), terminated, truncated, info


# ---------------------------------------------------------------------------------------
# 8. Saving and loading .param files
# ---------------------------------------------------------------------------------------
# A .param file is what paddle.save writes for a state dict (a pickle of numpy arrays),
# plus a "meta" entry saying how to rebuild the network, so that an actor file alone is
# enough to replay a policy, and a checksum of everything else in the file. `paddle.load(path)`
# still reads it; this program reads it with `load_state`, which runs nothing from the file.
PARAM_FORMAT = 2  # 2: with a checksum; files of format 1 (no checksum) still load
MAX_OBS_DIM, MAX_ACTIONS, MAX_LAYERS = 4096, 4096, 8  # what a file may describe


def network_meta(actor: Actor, args: Args) -> dict[str, Any]:
    """How to rebuild the networks: env, sizes, activation, normalisation."""
    first, last = actor.net[0], actor.net[-1]
    return dict(format=PARAM_FORMAT, env_id=args.env_id, obs_dim=int(first.weight.shape[0]),
                n_actions=int(last.weight.shape[1]), hidden_sizes=list(args.hidden_sizes),
                activation=args.activation, norm_obs=args.norm_obs)


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place:
    a crash at any moment leaves either the old file or the new one, never half of one.
    A symlink is written through to its target; a target that is not a regular file (a
    device, a folder) is refused."""
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a regular file; write to a file path instead")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; keep the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(folder: Path, older_than: float = 60.0) -> None:
    """Delete the temporaries of writes that a kill interrupted (a write takes well under
    a minute, so a younger one may belong to a run still writing)."""
    for tmp in folder.glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than:
                tmp.unlink()
        except OSError:
            pass


def numpy_state(layer: nn.Layer) -> dict[str, np.ndarray]:
    """A layer's state dict as numpy arrays (what paddle.save stores for tensors)."""
    return {k: v.numpy() for k, v in layer.state_dict().items()}


def content_digest(obj: Any) -> str:
    """SHA-256 of a file's content in a canonical order: containers, scalars, and arrays
    by dtype, shape and bytes. A flipped byte anywhere changes it."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, dict):
            h.update(b"{%d" % len(x))
            for k in sorted(x, key=repr):
                feed(k)
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[%d" % len(x))
            for v in x:
                feed(v)
        elif isinstance(x, np.ndarray):
            h.update(f"a{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())
    feed(obj)
    return h.hexdigest()


def sealed(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its checksum added: in its meta entry (networks) or at the top (checkpoints)."""
    if "meta" in state:
        return {**state, "meta": {**state["meta"], "checksum": content_digest(state)}}
    return {**state, "checksum": content_digest(state)}


def save_state(layer: nn.Layer, path: Path, meta: dict[str, Any]) -> Path:
    """Write a layer's state dict and its `meta` entry to a .param file, atomically."""
    atomic_write(path, lambda tmp: paddle.save(sealed({**numpy_state(layer), "meta": meta}), tmp))
    return path


class Damaged(Exception):
    """A file that is not what a .param file holds; the message says what is wrong."""


class _Refused(Damaged):
    """A file that asks to run code or build objects a .param file never holds."""


# Unpickling a file from anyone: nothing numpy or Python would construct from the file is
# constructed. The only globals a .param file names are numpy's array and dtype rebuilders;
# they are answered by the stubs below, and the arrays are then made by `_ArrayStub` from
# the raw bytes after checking dtype, shape and byte count against each other.
SAFE_DTYPES = ("f4", "f8", "i4", "i8")  # numpy's names for what this project writes


class _DtypeStub:
    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if name not in SAFE_DTYPES:  # no object, string, bool or complex arrays
            raise _Refused(f"arrays of type {str(name)[:20]!r}")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", "|", "="):
            raise Damaged("an array has an unknown byte order")


class _ArrayStub:
    MAX_DIMS = 4

    def __init__(self, *args: Any):
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub) or not hasattr(dtype, "dtype"):
            raise Damaged("an array has no valid dtype")
        if not (isinstance(shape, tuple) and len(shape) <= self.MAX_DIMS and
                all(type(n) is int and 0 <= n < 2**40 for n in shape)):
            raise Damaged("an array has an invalid shape")
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.dtype.itemsize:
            raise Damaged("an array's data does not match its shape")
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct_stub(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDARRAY:
        raise _Refused("an array of an unknown class")
    return _ArrayStub()


_NDARRAY = object()  # stands for numpy.ndarray, which may only be passed to _reconstruct


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its memo is a dict
    """Admits plain containers, strings, numbers and numpy arrays of `SAFE_DTYPES` only."""

    GLOBALS = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DtypeStub,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct_stub,
               ("numpy.core.multiarray", "_reconstruct"): _reconstruct_stub,
               ("collections", "OrderedDict"): dict}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.GLOBALS:
            raise _Refused(f"{module}.{name}"[:80])
        return self.GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent reference")


def _plain(obj: Any, budget: list[int], depth: int = 0) -> Any:
    """The unpickled object with arrays in place of their stubs, checked to be plain data:
    dicts with str/int keys, lists, tuples, str, int, float, bool, None. Bounded in depth
    and in visits (a crafted file can share one list many times over, or with itself)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 32:
        raise Damaged("it nests or repeats its content more than a .param file does")
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise Damaged("an array has no data")
        return obj.array
    if type(obj) is dict:
        if not all(type(k) in (str, int) for k in obj):
            raise Damaged("a dictionary has keys that are not names")
        return {k: _plain(v, budget, depth + 1) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v, budget, depth + 1) for v in obj)
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    raise _Refused(f"an object of type {type(obj).__name__}")


MAX_PARAM_BYTES = 2**31  # 2 GiB: far above any network or checkpoint this project writes


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a .param file without executing anything from it, and check its checksum."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}; pass the path of a saved .param file")
    damaged = (f"{path} is damaged or not a .param file ({{}}); use another copy, "
               "e.g. actor_net_best.param or a numbered snapshot")
    try:
        if path.stat().st_size > MAX_PARAM_BYTES:
            raise Damaged("larger than any .param file")
        data = path.read_bytes()
        if not data:
            raise Damaged("empty")
        state = _plain(_SafeUnpickler(io.BytesIO(data)).load(), [2_000_000])
    except _Refused as e:
        raise UsageError(f"{path} contains code or objects a .param file never holds ({e}); "
                         "it was not loaded") from None
    except Damaged as e:
        raise UsageError(damaged.format(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror})") from None
    except (Exception, RecursionError) as e:  # whatever else a damaged pickle trips on
        raise UsageError(damaged.format("it is cut short or not a pickle this project writes")) from None
    if not isinstance(state, dict):
        raise UsageError(f"{path} is not a .param state dict; pass a file this project saved")
    state.pop("StructuredToParameterName@@", None)
    meta = state.get("meta")
    holder = meta if isinstance(meta, dict) else state
    saved = holder.pop("checksum", None)
    if saved is None and holder.get("format", 1) != 1:
        raise UsageError(damaged.format("its checksum is missing"))
    if saved is not None and saved != content_digest(state):
        raise UsageError(damaged.format("its checksum does not match its content"))
    return state


def load_actor(path: str | Path) -> Actor:
    """Rebuild an Actor (with its observation statistics) from an actor .param file."""
    return _load_net(path, "actor")


def load_critic(path: str | Path) -> Critic:
    """Rebuild a Critic from a critic .param file."""
    return _load_net(path, "critic")


def _load_net(path: str | Path, role: str) -> nn.Layer:
    state = load_state(path)
    meta = state.pop("meta", None)
    if meta is None and tutorial_meta(state, role) is not None:
        meta, state = tutorial_meta(state, role), tutorial_to_ours(state)
        print(f"note: read {path} as a file of the original tutorial ({meta['hidden_sizes'][0]} ReLU "
              "units, no observation normalisation; such files carry no checksum, so damage to them "
              "cannot be detected)", file=sys.stderr)
    if not isinstance(meta, dict) or meta.get("role") != role:
        other = isinstance(meta, dict) and meta.get("role") in ("actor", "critic")
        hint = f" (it is {'an' if meta['role'] == 'actor' else 'a'} {meta['role']} file: pass the " \
               f"{role}_net*.param beside it)" if other else ""
        raise UsageError(f"{path} is not {'an' if role == 'actor' else 'a'} {role} .param file of this project{hint}")
    problem = check_network_meta(meta, role, Path(path).stat().st_size)
    if problem:
        raise UsageError(f"{path} is damaged: {problem}")
    sizes, outputs = tuple(meta["hidden_sizes"]), meta["n_actions"] if role == "actor" else 1
    obs_norm = ObsNorm(meta["obs_dim"], enabled=meta["norm_obs"])
    net = Actor(meta["obs_dim"], outputs, sizes, meta["activation"], obs_norm) if role == "actor" else \
        Critic(meta["obs_dim"], sizes, meta["activation"], obs_norm)
    load_weights(net, {**numpy_state(net), **state} if meta.get("tutorial") else state, str(path))
    net.eval()
    net.meta = {**meta, "env_id": meta.get("env_id")}  # None: the file does not say
    return net


def check_network_meta(meta: dict[str, Any], role: str, file_size: int) -> str | None:
    """What is wrong with a network description read from a file (None: nothing), checked
    before anything is allocated for it."""
    def count(x: Any, top: int) -> bool:
        return type(x) is int and 0 < x <= top
    sizes = meta.get("hidden_sizes")
    if not (isinstance(sizes, (list, tuple)) and 0 < len(sizes) <= MAX_LAYERS and
            all(count(h, MAX_WEIGHTS) for h in sizes)):
        return "its hidden sizes are not a short list of positive numbers"
    if not count(meta.get("obs_dim"), MAX_OBS_DIM) or \
            (role == "actor" and not count(meta.get("n_actions"), MAX_ACTIONS)):
        return f"its observation or action size is not in 1..{MAX_OBS_DIM}"
    if meta.get("activation") not in ("tanh", "relu") or type(meta.get("norm_obs")) is not bool:
        return "its activation or normalisation setting is unknown"
    env_id = meta.get("env_id")
    if not (env_id is None or (isinstance(env_id, str) and 0 < len(env_id) <= 200)):
        return "its env id is not a name"
    outputs = meta["n_actions"] if role == "actor" else 1
    if network_weights([meta["obs_dim"], *sizes, outputs]) * 4 > file_size:  # float32
        return "it describes a network larger than the file"
    return None


# The tutorial saved `paddle.save(actor.state_dict())` of its own layers: fc1 -> ReLU ->
# action_head (softmax), and fc1 -> ReLU -> state_value; no meta entry, no normalisation.
TUTORIAL_LAYERS = {"actor": ("fc1", "action_head"), "critic": ("fc1", "state_value")}
# Classic-control envs by (observation size, actions), to name the env a tutorial file was for.
KNOWN_ENVS = {(2, 3): "MountainCar-v0", (4, 2): "CartPole-v1", (6, 3): "Acrobot-v1"}


def tutorial_meta(state: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The meta entry a tutorial file would have had, or None if `state` is not one."""
    first, last = TUTORIAL_LAYERS[role]
    if set(state) != {f"{first}.weight", f"{first}.bias", f"{last}.weight", f"{last}.bias"} or \
            not all(isinstance(state[f"{n}.weight"], np.ndarray) and state[f"{n}.weight"].ndim == 2
                    for n in (first, last)):
        return None
    (obs_dim, hidden), outputs = state[f"{first}.weight"].shape, state[f"{last}.weight"].shape[1]
    n_actions = outputs if role == "actor" else None
    env_id = KNOWN_ENVS.get((obs_dim, n_actions)) if role == "actor" else None
    return dict(format=PARAM_FORMAT, env_id=env_id, obs_dim=obs_dim, n_actions=n_actions,
                hidden_sizes=[hidden], activation="relu", norm_obs=False, role=role, tutorial=True)


def tutorial_to_ours(state: dict[str, Any]) -> dict[str, Any]:
    """Rename the tutorial's layers to this project's `net.0` (first) and `net.2` (output)."""
    rename = {"fc1": "net.0", "action_head": "net.2", "state_value": "net.2"}
    return {f"{rename[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in state.items()}


def load_weights(layer: nn.Layer, state: dict[str, Any], source: str) -> None:
    """Copy arrays into `layer`, after checking every name, shape and dtype, and that
    every value is finite."""
    expected = {k: (tuple(v.shape), "float32") for k, v in layer.state_dict().items()}
    given = {k: (v.shape, v.dtype.name) if isinstance(v, np.ndarray) else None
             for k, v in state.items() if k != "StructuredToParameterName@@"}
    if given != expected:
        raise UsageError(f"{source} is damaged or for another network: its weights do not "
                         "match the network it describes")
    if not all(np.isfinite(state[k]).all() for k in expected):
        raise UsageError(f"{source} is damaged: it holds NaN or infinite weights")
    layer.set_state_dict({k: paddle.to_tensor(state[k]) for k in expected})


# ---------------------------------------------------------------------------------------
# 9. Run bookkeeping, in rooms: the stop signal, the logbook (VisualDL, progress bar,
#    clock), the best-policy keeper, the envs' place, the checkpoints; `Run` holds them for `train`.
# ---------------------------------------------------------------------------------------
class TrainingDiverged(Exception):
    """A loss or a weight became NaN or infinite."""


class StopRequested(Exception):
    """Raised by `StopSignal` inside an `undoable` block: the caller goes back to the block's start."""


class StopSignal:
    """Ctrl-C and SIGTERM as a request to stop cleanly after the current step, for as long
    as the `with` block runs (a second one stops at once). Inside `undoable()` (an update
    and its evaluation, which can take long) the stop does not wait: it raises
    StopRequested at once and the caller undoes the block. Python lets only the main
    thread install handlers; a run in another thread stops with its process instead."""

    def __init__(self) -> None:
        self.signum = 0
        self.handlers: dict[int, Any] = {}
        self.raise_now = False

    @property
    def requested(self) -> bool:
        return bool(self.signum)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self.handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def undoable(self) -> Iterator[None]:
        """A block that a stop interrupts at once (StopRequested) rather than after it."""
        if self.signum:
            raise StopRequested
        self.raise_now = True
        try:
            yield
        finally:
            self.raise_now = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block inside an undoable one that a stop lets finish (its files are written;
        the run then stops before its next rollout, keeping what the block did)."""
        raise_now, self.raise_now = self.raise_now, False
        try:
            yield
        finally:
            self.raise_now = raise_now and not self.signum

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        if self.raise_now:
            self.raise_now = False
            raise StopRequested


class Logbook:
    """What a run shows while it trains: VisualDL scalars and images, the progress bar,
    and where the seconds go (`lap` closes a phase of the time split)."""

    PHASES = ("collect", "update", "evaluate", "log_and_save", "final_files")

    def __init__(self, args: Args, run_dir: Path, global_step: int, episodes_done: int, elapsed: float):
        tqdm = progress_bar_class()
        from visualdl import LogWriter
        self.args = args
        # A resumed run appends to its own records file: VisualDL's server reads only the
        # newest file of a run folder, so a second file would hide the run's past.
        existing = sorted(run_dir.glob("vdlrecords.*"))
        if existing:
            trim_torn_record(existing[-1])
        with contextlib.redirect_stdout(io.StringIO()):  # VisualDL prints that it appends
            self.writer = LogWriter(logdir=str(run_dir), flush_secs=5,
                                    file_name=existing[-1].name if existing else "")
        self.records = Path(self.writer.file_name)
        self.records_checked = 0  # the records file is whole up to here
        self.writer.add_text("config", json.dumps(dataclasses.asdict(args)), 0)
        self.bar = tqdm(total=args.episodes or args.total_timesteps,
                        initial=episodes_done if args.episodes else min(global_step, args.total_timesteps),
                        unit="ep" if args.episodes else "step", disable=args.quiet, dynamic_ncols=True,
                        mininterval=0.5)
        self.ep_return, self.ep_len = np.zeros(args.num_envs), np.zeros(args.num_envs, np.int64)
        self.recent: deque[float] = deque(maxlen=20)  # returns of the latest training episodes
        self.clock = dict.fromkeys(self.PHASES, 0.0)
        self.start = time.perf_counter() - elapsed  # a resumed run counts its earlier seconds
        self.lap_start = time.perf_counter()

    def seconds(self) -> float:
        """Training seconds so far, earlier sessions of a resumed run included."""
        return time.perf_counter() - self.start

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.clock[phase] += now - self.lap_start
        self.lap_start = now

    def record_step(self, reward: np.ndarray, done: np.ndarray, global_step: int, episodes_done: int) -> None:
        """One step of every env; logs the episodes that ended (numbered from `episodes_done`)."""
        self.ep_return += reward
        self.ep_len += 1
        for k, i in enumerate(np.flatnonzero(done)):
            self.writer.add_scalar("episode/return", float(self.ep_return[i]), global_step)
            self.writer.add_scalar("episode/length", int(self.ep_len[i]), global_step)
            self.writer.add_scalar("Steptime/steptime", int(self.ep_len[i]), episodes_done + k)
            self.recent.append(float(self.ep_return[i]))
            self.ep_return[i], self.ep_len[i] = 0.0, 0
        self.bar.update(int(done.sum()) if self.args.episodes else min(self.args.num_envs, self.bar.total - self.bar.n))

    def record_update(self, stats: dict[str, Any], agent: PPO, global_step: int, episodes_done: int) -> None:
        """The losses and diagnostics of one update."""
        # The tutorial's loss tags, one point per update (the mean over its minibatches) at
        # its last minibatch step: a point per minibatch costs more than the minibatch.
        self.writer.add_scalar("loss/action_loss", float(stats["policy_loss"].mean()), agent.gradient_steps - 1)
        self.writer.add_scalar("loss/value_loss", float(stats["value_loss"].mean()), agent.gradient_steps - 1)
        for key in ("entropy", "approx_kl", "clip_fraction", "explained_variance"):
            self.writer.add_scalar(f"diagnostics/{key}", float(stats[key]), global_step)
        sps = global_step / self.seconds()
        self.writer.add_scalar("train/learning_rate", float(agent.optimizer.get_lr()), global_step)
        self.writer.add_scalar("train/steps_per_second", sps, global_step)
        self.bar.set_postfix(ep=episodes_done, sps=f"{sps:.0f}", refresh=False,
                             ret=f"{np.mean(self.recent) if self.recent else float('nan'):.1f}")

    def record_evaluation(self, result: dict[str, Any], agent: PPO, global_step: int,
                          map_box: tuple[np.ndarray, np.ndarray] | None) -> None:
        """A periodic evaluation's scores and, for a 2-D observation box, the policy and value
        maps (VisualDL's image tab shows the policy taking shape)."""
        self.writer.add_scalar("eval/mean_return", result["mean_return"], global_step)
        self.writer.add_scalar("eval/success_rate", result["success_rate"], global_step)
        if map_box is not None:
            for tag, image in policy_value_images(agent.actor_net, agent.critic_net, *map_box).items():
                self.writer.add_image(tag, image, global_step)

    def record_hparams(self, finals: dict[str, float], global_step: int) -> None:
        """The run's settings and final metrics for VisualDL's HParams panel, which compares
        runs side by side. A metric is a scalar tag; the panel shows its last value."""
        for tag, value in finals.items():
            self.writer.add_scalar(tag, float(value), global_step)
        # At most 8 columns, each under its short name: the preset, the seed, what this run
        # changed, then the usual suspects. The full config is in the text tab.
        settings = dataclasses.asdict(self.args)
        names = ["preset", "seed", *changed_settings(self.args),
                 "actor_lr", "ent_coef", "hidden_sizes", "total_timesteps", "env_id"]
        chosen = list(dict.fromkeys(names))[:8]
        hparams = {SHORT_NAMES.get(k, k): settings[k] if isinstance(settings[k], (int, float, str))
                   and not isinstance(settings[k], bool) else str(settings[k]) for k in chosen}
        self.writer.add_hparams(hparams, list(finals))

    def check_records(self) -> None:
        """Raise OSError if VisualDL failed to write the records file. Its writer thread only
        prints a warning (on a full disk, say) and drops the rest, leaving a torn record."""
        self.writer.flush()
        end = whole_records_end(self.records, self.records_checked)
        if end < self.records.stat().st_size:
            raise OSError(0, "VisualDL's writer failed: is the disk full?", str(self.records))
        self.records_checked = end

    def close(self) -> None:
        self.writer.close()
        self.bar.close()


def whole_records_end(path: Path, start: int = 0) -> int:
    """Where the last whole record of a VisualDL records file ends (a record: an 8-byte
    length, then that many bytes), reading from `start`, a record boundary."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    end = 0
    while end + 8 <= len(data):
        length = int.from_bytes(data[end:end + 8], "little")
        if end + 8 + length > len(data):
            break
        end += 8 + length
    return start + end


def trim_torn_record(path: Path) -> None:
    """Cut a VisualDL records file after its last whole record: a run killed while writing
    leaves a torn one, which would garble what a resumed run appends."""
    end = whole_records_end(path)
    if end < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(end)


class BestPolicy:
    """The periodic greedy evaluation on the standard env (seeds EVAL_SEED + i, section 10)
    and the best policy so far, kept as actor_net_best.param / critic_net_best.param."""

    def __init__(self, args: Args, net_dir: Path):
        self.args, self.net_dir = args, net_dir
        self.best: dict[str, Any] = dict(mean_return=-np.inf)
        self.history: list[dict[str, Any]] = []
        self.next_eval = args.eval_every

    def due(self, global_step: int, last: bool) -> bool:
        """Whether to evaluate now: every --eval-every steps, and at the end of training."""
        return bool(self.args.eval_every) and (global_step >= self.next_eval or last)

    def evaluate(self, agent: PPO) -> dict[str, Any]:
        """Evaluate the agent's greedy policy (changing nothing: a stop may interrupt it)."""
        return evaluate(make_policy(agent.actor_net), self.args.env_id, self.args.eval_episodes, EVAL_SEED)

    def keep(self, result: dict[str, Any], agent: PPO, global_step: int, seconds: float) -> None:
        """Record an evaluation; keep the policy if it is the best so far."""
        self.next_eval = global_step + self.args.eval_every
        self.history.append(dict(result, global_step=global_step, seconds=seconds))
        if result["mean_return"] > self.best["mean_return"]:
            self.best = dict(result, global_step=global_step)
            agent.save_param(self.net_dir, "_best")

    @property
    def found(self) -> bool:
        return self.best["mean_return"] > -np.inf


class EnvPlace:
    """Where a run stands in its envs: how they start (new episodes, or a checkpoint's where
    they were), their state for the checkpoint, and the rollout start a stop goes back to
    (with the networks and optimizer as they were, for a stop inside an update)."""

    def __init__(self, envs: gym.vector.VectorEnv, agent: PPO, bonus: CountBonus | None, log: Logbook,
                 checkpoint: dict[str, Any] | None):
        self.envs, self.agent, self.bonus, self.log, self.checkpoint = envs, agent, bonus, log, checkpoint
        self.fresh_optimizer = False  # a stop undid the first update: Adam has no state to save

    def start(self, seeds: list[int]) -> np.ndarray:
        """The first observations: the checkpoint's envs where they were, when it holds them
        (the numpy MountainCar), so that a resumed run is the run that was stopped; else new
        episodes from `seeds`."""
        saved = (self.checkpoint or {}).get("envs")
        if saved is not None and hasattr(self.envs, "set_state"):
            try:
                obs = self.envs.set_state(saved["state"])  # checks the cars first
                self.log.ep_return[:], self.log.ep_len[:] = saved["ep_return"], saved["ep_len"]
            except (KeyError, TypeError, ValueError):
                raise UsageError("the checkpoint's env state is damaged or for other envs; start a new run") from None
            return obs
        return self.envs.reset(seed=seeds)[0]

    def state(self) -> dict[str, Any] | None:
        """The envs and their open episodes, for the checkpoint (None: this env cannot say)."""
        if not hasattr(self.envs, "get_state"):
            return None
        return dict(state=self.envs.get_state(), ep_return=self.log.ep_return.copy(), ep_len=self.log.ep_len.copy())

    def begin(self, global_step: int, episodes_done: int) -> None:
        """Remember what a stop during this rollout goes back to: a checkpoint holds the state
        at an update boundary, never half a rollout."""
        self.rollout_start = dict(global_step=global_step, episodes_done=episodes_done, envs=self.state(),
                                  rng=self.agent.rng.bit_generator.state,
                                  bonus=None if self.bonus is None else self.bonus.counts.copy(),
                                  learning=learning_state(self.agent))

    def undo(self) -> tuple[int, int, np.ndarray | None]:
        """Drop the partial rollout and go back to its start: counters, sampling RNG, bonus
        counts and (where they can say) the envs. Returns the counters and observations."""
        start = self.rollout_start
        self.agent.buffer.clear()
        self.fresh_optimizer = restore_learning_state(self.agent, start["learning"])
        self.agent.rng.bit_generator.state = start["rng"]
        if self.bonus is not None:
            self.bonus.counts[:] = start["bonus"]
        obs = None
        if start["envs"] is not None:
            self.log.ep_return[:], self.log.ep_len[:] = start["envs"]["ep_return"], start["envs"]["ep_len"]
            obs = self.envs.set_state(start["envs"]["state"])
        return start["global_step"], start["episodes_done"], obs



def learning_state(agent: PPO) -> dict[str, Any]:
    """Copies of what an update changes: weights, observation statistics, Adam's state
    (empty before the first step creates it) and the step count. About 0.1 ms."""
    adam = [v for v in agent.optimizer.state_dict().values() if isinstance(v, paddle.Tensor)]
    live = [*agent.actor_net.state_dict().values(), *agent.critic_net.state_dict().values(), *adam]
    return dict(pairs=[(t, paddle.clone(t)) for t in live], fresh_adam=not adam, gradient_steps=agent.gradient_steps)


def restore_learning_state(agent: PPO, saved: dict[str, Any]) -> bool:
    """Put back what `learning_state` copied. Returns True when Adam had no state then."""
    for live, copy in saved["pairs"]:
        live.set_value(copy)
    agent.gradient_steps = saved["gradient_steps"]
    agent.acting_actor.refresh()
    return saved["fresh_adam"]


CHECKPOINT = "checkpoint.ckpt"


class Checkpoints:
    """A run's numbered snapshot pairs (actor_net_000050.param, ...) and its checkpoint."""

    def __init__(self, args: Args, net_dir: Path):
        self.args, self.net_dir = args, net_dir
        self.path = net_dir / CHECKPOINT

    def snapshot(self, agent: PPO, rollouts: int) -> None:
        """A numbered pair every --save-every rollouts; only the --keep-snapshots newest stay."""
        agent.save_param(self.net_dir, f"_{rollouts:06d}")
        for role in ("actor_net", "critic_net"):
            numbered = sorted(self.net_dir.glob(f"{role}_[0-9]*.param"))
            for old in numbered[:max(0, len(numbered) - self.args.keep_snapshots)]:
                old.unlink()

    def save(self, run: Run, counters: dict[str, Any]) -> Path:
        """Everything needed to continue: weights, optimizer moments, observation and
        exploration statistics, counters, the sampling RNG, the config and the evaluations."""
        agent = run.agent
        state = dict(
            kind="checkpoint", format=PARAM_FORMAT, config=dataclasses.asdict(self.args),
            run_name=run.run_name, actor=numpy_state(agent.actor_net), critic=numpy_state(agent.critic_net),
            optimizer={} if run.place.fresh_optimizer else optimizer_state(agent.optimizer, agent.actor_net,
                                                                           agent.critic_net),
            counters=dict(counters, gradient_steps=agent.gradient_steps, next_eval=run.keeper.next_eval,
                          elapsed=run.log.seconds()),
            best=run.keeper.best, history=run.keeper.history, rng=agent.rng.bit_generator.state,
            bonus_counts=None if run.bonus is None else run.bonus.counts, envs=run.place.state())
        atomic_write(self.path, lambda tmp: paddle.save(sealed(state), tmp))
        return self.path


def restore(checkpoint: dict[str, Any], agent: PPO, bonus: CountBonus | None, keeper: BestPolicy) -> dict[str, Any]:
    """Load a checkpoint into a new run's agent, bonus and keeper; returns its counters."""
    for layer, key in ((agent.actor_net, "actor"), (agent.critic_net, "critic")):
        load_weights(layer, checkpoint[key], "the checkpoint")
    restore_optimizer(agent.optimizer, checkpoint["optimizer"], agent.actor_net, agent.critic_net)
    counters = checkpoint["counters"]
    agent.gradient_steps, keeper.next_eval = counters["gradient_steps"], counters["next_eval"]
    keeper.best, keeper.history = checkpoint["best"], checkpoint["history"]
    agent.rng.bit_generator.state = checkpoint["rng"]
    agent.acting_actor.refresh()
    if bonus is not None and checkpoint["bonus_counts"] is not None:
        bonus.counts[:] = checkpoint["bonus_counts"]
    return counters


class Run:
    """The books of one training run, for `train`: its name and folders, the logbook, the
    best-policy keeper, the envs' place and the checkpoints; `finish` writes the final files."""

    def __init__(self, args: Args, agent: PPO, bonus: CountBonus | None, envs: gym.vector.VectorEnv,
                 checkpoint: dict[str, Any] | None = None,
                 on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None):
        self.args, self.agent, self.bonus, self.on_evaluation = args, agent, bonus, on_evaluation
        space = envs.single_observation_space
        if checkpoint is None:  # a folder of its own under --param-dir and under --logdir
            self.run_name, self.net_dir = claim_run_folders(args)
        else:  # the folder the checkpoint is in, wherever the run is resumed from
            self.run_name, self.net_dir = checkpoint["run_name"], Path(checkpoint["path"]).parent
        self.latest_dir = Path(args.param_dir) / "net_param"  # the latest finished run's policy
        self.keeper = BestPolicy(args, self.net_dir)
        self.checkpoints = Checkpoints(args, self.net_dir)
        self.counters = dict(global_step=0, episodes_done=0, rollouts=0, elapsed=0.0)
        if checkpoint is not None:
            self.counters = restore(checkpoint, agent, bonus, self.keeper)
        for folder in (self.net_dir, Path(args.logdir) / self.run_name, self.latest_dir):
            ensure_writable(folder)
            remove_stale_temporaries(folder)
        self.log = Logbook(args, Path(args.logdir) / self.run_name, self.counters["global_step"],
                           self.counters["episodes_done"], self.counters["elapsed"])
        self.place = EnvPlace(envs, agent, bonus, self.log, checkpoint)
        # a 2-D bounded observation (MountainCar's position, velocity) can be drawn as maps
        self.map_box = (space.low, space.high) if space.shape == (2,) and space.is_bounded() else None

    def after_update(self, stats: dict[str, Any], global_step: int, episodes_done: int, rollouts: int,
                     last: bool, stop: StopSignal) -> bool:
        """Check an update; evaluate when due; log both; then write the periodic snapshot and
        checkpoint (after the evaluation, so a resumed run does not miss it). A stop may
        interrupt the evaluation, not the writing. Returns True once --target-return is reached."""
        agent = self.agent
        bad = [k for k, v in stats.items() if not np.all(np.isfinite(v))]
        if bad or not all(np.isfinite(p.numpy()).all() for p in agent.params):
            raise TrainingDiverged(f"{bad[0] if bad else 'a weight'} became NaN or infinite at rollout {rollouts}")
        result = self.keeper.evaluate(agent) if self.keeper.due(global_step, last) else None
        with stop.deferred():
            if result is not None:
                self.log.lap("evaluate")
            self.log.record_update(stats, agent, global_step, episodes_done)
            reached = result is not None and self.record_evaluation(result, global_step)
            counters = dict(global_step=global_step, episodes_done=episodes_done, rollouts=rollouts)
            if self.args.save_every and rollouts % self.args.save_every == 0:
                self.checkpoints.snapshot(agent, rollouts)
                self.checkpoints.save(self, counters)
            if result is not None:  # a log that can no longer be written stops the run, resumable
                try:
                    self.log.check_records()
                except OSError:
                    self.checkpoints.save(self, counters)
                    raise
            self.log.lap("log_and_save")
        return reached

    def record_evaluation(self, result: dict[str, Any], global_step: int) -> bool:
        """Keep and log a periodic evaluation. Returns True once --target-return is reached."""
        self.keeper.keep(result, self.agent, global_step, self.log.seconds())
        self.log.record_evaluation(result, self.agent, global_step, self.map_box)
        if self.on_evaluation is not None and self.on_evaluation(global_step, result):
            return True
        target = self.args.target_return
        if target is not None and result["mean_return"] >= target:
            self.log.bar.write(f"eval mean return {result['mean_return']:.1f} >= target {target} "
                               f"at step {global_step}: stopping")
            return True
        return False

    def finish(self, global_step: int, episodes_done: int, rollouts: int, stop: StopSignal) -> dict[str, Any]:
        """Final files: the best evaluated policy (else the latest) and a checkpoint; a summary.
        A stop that comes while they are written skips the figures (a second of work)."""
        stop_signal = stop.signum  # a stop during training, not one during the final files
        self.log.lap("collect")
        counters = dict(global_step=global_step, episodes_done=episodes_done, rollouts=rollouts)
        log_dir = Path(self.args.logdir) / self.run_name
        best_files = [self.net_dir / f"{name}_best.param" for name in ("actor_net", "critic_net")]
        if self.keeper.found and not stop_signal and all(f.is_file() for f in best_files):
            # ship the best evaluated policy, not merely the last (that one is in the checkpoint)
            for name in ("actor_net", "critic_net"):
                best_file = self.net_dir / f"{name}_best.param"
                atomic_write(self.net_dir / f"{name}.param", lambda tmp, src=best_file: shutil.copyfile(src, tmp))
            actor_path = self.net_dir / "actor_net.param"
        else:
            actor_path = self.agent.save_param(self.net_dir)
        checkpoint = self.checkpoints.save(self, counters)
        if not stop_signal:  # param/net_param/actor_net.param, where the tutorial put it: this run's policy
            for name in ("actor_net", "critic_net"):
                atomic_write(self.latest_dir / f"{name}.param",
                             lambda tmp, src=self.net_dir / f"{name}.param": shutil.copyfile(src, tmp))
        seconds = self.log.seconds()
        best = self.keeper.best
        if stop_signal:
            self.log.close()
            print(f"{signal.Signals(stop_signal).name}: stopped at step {global_step}; checkpoint saved "
                  f"to {checkpoint}\nresume with: python ppo_mountaincar.py train --resume {checkpoint}"
                  f"  (in Python: resume({str(checkpoint)!r}))", file=sys.stderr)
        else:
            # VisualDL keeps scalars as float32: a return rounded to 1/8 and a whole percentage
            # display exactly (-109.17 would show as -109.16999816894531); short names, see SHORT_NAMES
            finals = {"return": round(best["mean_return"] * 8) / 8,
                      "success": round(100 * best["success_rate"])} if self.keeper.history else {}
            self.log.record_hparams({**finals, "seconds": round(seconds)}, global_step)
            self.log.close()
            if stop.signum:  # it came while the files above were written: the run is whole
                skipped = f" (figures skipped: draw them with python ppo_mountaincar.py plot {log_dir})"
                print(f"{signal.Signals(stop.signum).name}: the run had finished; its policy and checkpoint "
                      f"are saved in {self.net_dir}" + (skipped if self.args.plots else ""), file=sys.stderr)
            elif self.args.plots:
                plot_run(log_dir, actor_path, self.net_dir / "img")
        self.log.lap("final_files")
        return dict(run_name=self.run_name, run_dir=str(self.net_dir), log_dir=str(log_dir),
                    latest_path=str(self.latest_dir / "actor_net.param"), actor_path=str(actor_path), checkpoint=str(checkpoint),
                    **counters, gradient_steps=self.agent.gradient_steps, seconds=seconds,
                    best_eval=best, eval_history=self.keeper.history, interrupted=stop.signum,
                    started=self.log.start, time_split=self.log.clock)


def _rename_moments(state: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Optimizer state keys "<param name>_moment1_0" with the parameter name mapped by `names`
    (entries of unknown parameters are left out)."""
    out = {}
    for key, value in state.items():
        owner = next((n for n in names if key.startswith(n + "_")), None)
        if owner is not None:
            out[names[owner] + key[len(owner):]] = value
    return out


def _structured_names(actor: Actor, critic: Critic) -> dict[str, str]:
    """Paddle's auto-generated parameter names ("linear_3.w_0") -> "actor.net.0.weight"."""
    return {p.name: f"{role}.{name}" for role, layer in (("actor", actor), ("critic", critic))
            for name, p in layer.named_parameters()}


def optimizer_state(opt: paddle.optimizer.Optimizer, actor: Actor, critic: Critic) -> dict[str, np.ndarray]:
    """The optimizer's moments keyed by structured names ("actor.net.0.weight_moment1_0"):
    Paddle keys them by auto-generated parameter names, which depend on how many layers
    the process had created before, so they differ in a new process."""
    return {k: v.numpy() for k, v in _rename_moments(opt.state_dict(), _structured_names(actor, critic)).items()}


def restore_optimizer(opt: paddle.optimizer.Optimizer, saved: dict[str, np.ndarray], actor: Actor,
                      critic: Critic) -> None:
    """Load moments saved by `optimizer_state` into `opt`, under this process's names."""
    names = {v: k for k, v in _structured_names(actor, critic).items()}
    opt.set_state_dict({k: paddle.to_tensor(v) for k, v in _rename_moments(saved, names).items()})


def resumed_args(config: dict[str, Any], changes: dict[str, Any]) -> Args:
    """A checkpoint's settings with `changes`, which may only touch RESUMABLE_FLAGS."""
    fixed = sorted(k for k, v in changes.items() if k not in RESUMABLE_FLAGS and v != config.get(k))
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; "
                         "start a new run for other settings")
    return Args(**{**config, "hidden_sizes": tuple(config["hidden_sizes"]), **changes})


def resume(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Continue a run from its checkpoint, as `train --resume PATH` does; `changes` may set
    e.g. total_timesteps=300_000. Returns the summary, like `train`."""
    checkpoint = load_checkpoint(path)
    return train(resumed_args(checkpoint["config"], changes), checkpoint)


def claim_run_folders(args: Args) -> tuple[str, Path]:
    """A run name (--run-name, else <preset>[,changed settings]__seed<N>__<env>__<time>) whose
    folders under --param-dir and --logdir this run creates itself, so no other run writes
    into them: a suffix -2, -3, ... when the name is taken (two runs started in the same second)."""
    # what runs differ in comes first: VisualDL's run list shows only a name's beginning.
    # Whole settings only (a cut value would read as another value), "+N" for those left out.
    changes = [f"{SHORT_NAMES.get(k, k)}={'x'.join(map(str, v)) if isinstance(v, tuple) else f'{v:.3g}' if isinstance(v, float) else v}"
               for k, v in changed_settings(args).items()]
    shown = [c for i, c in enumerate(changes) if len(",".join(changes[:i + 1])) <= 60]
    label = ",".join([args.preset, *shown] + ([f"+{len(changes) - len(shown)}"] if len(shown) < len(changes) else []))
    base = args.run_name or "__".join([label, f"seed{args.seed}", args.env_id, time.strftime("%Y%m%d-%H%M%S")])
    for i in range(1, 10_000):
        name = base if i == 1 else f"{base}-{i}"
        run_dir, log_dir = Path(args.param_dir) / name, Path(args.logdir) / name
        try:
            Path(args.param_dir).mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()  # exclusive: fails if another run has it
        except FileExistsError:
            continue
        except OSError as e:
            raise UsageError(f"cannot write to {args.param_dir} ({e.strerror}); choose another folder with "
                             "--param-dir") from None
        if log_dir.exists():  # logs of an older run by this name: pick another name for both
            run_dir.rmdir()
            continue
        return name, run_dir
    raise UsageError(f"too many runs named {base} in {args.param_dir}; pass --run-name")


def ensure_writable(folder: Path) -> None:
    """Create `folder` and check that files can be written in it, before training starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to {folder} ({e.strerror}); choose another folder "
                         "with --param-dir / --logdir") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint (safely, like every .param file) and check that it holds
    everything `train` restores, of the right kinds, before anything is built from it."""
    state = load_state(path)
    if state.get("kind") != "checkpoint":
        raise UsageError(f"{path} is not a training checkpoint; pass param/<run name>/{CHECKPOINT}")
    kinds = dict(config=dict, run_name=str, actor=dict, critic=dict, optimizer=dict, counters=dict,
                 best=dict, history=list, rng=dict)
    wrong = next((k for k, kind in kinds.items() if not isinstance(state.get(k), kind)), None)
    config = state.get("config", {})
    if wrong is None and set(config) != {f.name for f in dataclasses.fields(Args)}:
        wrong = "config (its settings are not this version's)"
    counters = ("global_step", "episodes_done", "rollouts", "gradient_steps", "next_eval")
    if wrong is None and not all(type(state["counters"].get(k)) is int and state["counters"][k] >= 0
                                 for k in counters):
        wrong = "counters"
    if wrong is None:
        try:
            validate(Args(**{**config, "hidden_sizes": tuple(config["hidden_sizes"])}))
            np.random.default_rng().bit_generator.state = state["rng"]
        except UsageError as e:
            wrong = f"config ({e})"
        except Exception:  # noqa: BLE001 - wrong types inside the config or the RNG state
            wrong = "config or RNG state"
    if wrong is not None:
        raise UsageError(f"{path} is damaged or from another version (its {wrong}); start a new run "
                         "or resume another checkpoint")
    state["path"] = str(Path(path).resolve())  # the run's folder is where its checkpoint is
    return state


# ---------------------------------------------------------------------------------------
# 10. Evaluation and replay
# ---------------------------------------------------------------------------------------
EVAL_SEED = 10_000        # seeds of the periodic evaluation that picks the best policy
HOLDOUT_SEED = 1_000_000  # default seeds of `eval`: episodes no training run selected on
MAX_GIF_EPISODES = 20         # frames are kept in memory until the GIF is written


def check_episode_seeds(seed: int, episodes: int) -> None:
    """Episodes use seeds seed, seed + 1, ...: all must be valid 32-bit seeds."""
    if not 0 <= seed <= MAX_SEED - max(episodes, 0):
        raise UsageError(f"--seed must be in 0..{MAX_SEED - max(episodes, 0):,} (the episodes use seed, seed + 1, ...)")


def make_policy(actor: Actor, greedy: bool = True, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A callable mapping a batch of raw observations (N, obs_dim) to actions (N,)."""
    rng, fast = np.random.default_rng(seed), NumpyActor(actor)
    return lambda obs: sample_actions(fast.log_probs(obs), rng, greedy)[0]


def load_policy(path: str | Path, greedy: bool = True, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Load an actor .param file as a policy: raw observations (N, obs_dim) -> actions (N,).
    Any observation normalisation the actor learned is inside the file and applied."""
    return make_policy(load_actor(path), greedy, seed)


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_id: str = "MountainCar-v0",
             episodes: int = 100, seed: int = HOLDOUT_SEED, fast: bool = True) -> dict[str, float]:
    """Run `episodes` episodes of the standard env (its own time limit), all at once, with
    seeds seed, seed+1, ...; success = the episode reached a terminal state before the time
    limit (for MountainCar: the flag)."""
    if not 0 < episodes <= MAX_EVAL_EPISODES:  # one env each, all at once
        raise UsageError(f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    check_episode_seeds(seed, episodes)
    envs = make_vec_env(env_id, episodes, fast=fast)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
    finished, success = np.zeros(episodes, bool), np.zeros(episodes, bool)
    while not finished.all():
        obs, reward, terminated, truncated, _ = envs.step(policy(obs))
        returns += np.where(finished, 0.0, reward)
        lengths += ~finished
        success |= terminated & ~finished
        finished |= terminated | truncated
    envs.close()
    return dict(mean_return=float(returns.mean()), std_return=float(returns.std()),
                success_rate=float(success.mean()), mean_steps=float(lengths.mean()),
                episodes=episodes)


def env_for(actor: Actor, env_id: str | None = None) -> str:
    """The env to run `actor` in: `env_id`, else the one it was trained on. Refuses an
    env whose observation or action space the actor does not fit."""
    trained_on = actor.meta["env_id"]
    env_id = env_id or trained_on
    if env_id is None:
        raise UsageError(f"this file does not say which env it was trained on ({actor.meta['obs_dim']} "
                         f"inputs, {actor.meta['n_actions']} actions); pass --env-id, e.g. CartPole-v1")
    env = make_env(env_id)
    obs_dim, n_actions = env.observation_space.shape, getattr(env.action_space, "n", None)
    env.close()
    if obs_dim != (actor.meta["obs_dim"],) or n_actions != actor.meta["n_actions"]:
        raise UsageError(f"this actor was trained on {trained_on or 'another env'} ({actor.meta['obs_dim']} "
                         f"inputs, {actor.meta['n_actions']} actions) and does not fit {env_id}; "
                         + (f"pass --env-id {trained_on}" if trained_on else "pass the --env-id it was trained on"))
    return env_id


def play_episode(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], seed: int,
                 on_step: Callable[[int, float, bool, bool], None] | None = None) -> dict[str, Any]:
    """One episode of `env` with `policy` from the start `seed` gives; `on_step(steps, return,
    done, terminated)` after every step (to film it). Returns the visited observations, the
    return, the number of steps and whether the episode reached a terminal state."""
    obs, _ = env.reset(seed=seed)
    observations, total, steps, done, terminated = [obs], 0.0, 0, False, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(policy(obs[None])[0]))
        observations.append(obs)
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
        if on_step is not None:
            on_step(steps, total, done, terminated)
    return dict(observations=np.array(observations), episode_return=total, steps=steps, success=bool(terminated))


def replay(path: str | Path, episodes: int = 3, render: str = "gif", out: str | Path | None = None,
           seed: int = HOLDOUT_SEED, greedy: bool = True, env_id: str | None = None) -> list[dict[str, Any]]:
    """Play `episodes` episodes of the standard env with a saved actor: in a window
    (`render="human"`) or into an animated GIF with step and return drawn on each frame."""
    if not 0 < episodes <= (MAX_GIF_EPISODES if render == "gif" else MAX_EVAL_EPISODES):
        raise UsageError(f"--episodes must be in 1..{MAX_GIF_EPISODES} for a GIF (or --render human)"
                         if render == "gif" else f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    check_episode_seeds(seed, episodes)
    actor = load_actor(path)
    env_id = env_for(actor, env_id)
    policy = make_policy(actor, greedy, seed)
    if render == "human" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--render human needs a display; leave it out to write a GIF instead")
    if render == "gif":
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off-screen frames need no display
    env = make_env(env_id, render_mode="human" if render == "human" else "rgb_array")
    frames, results = [], []
    for ep in range(episodes):
        def film(steps: int, total: float, done: bool, terminated: bool, ep: int = ep) -> None:
            if render == "gif" and (steps % 2 == 0 or done):  # every other frame keeps the file small
                frames.append(_caption(env.render(), f"episode {ep + 1}/{episodes}   step {steps}   "
                                       f"return {total:.0f}" + ("   flag reached" if terminated else "")))
        episode = play_episode(env, policy, seed + ep, film)
        results.append(dict(episode=ep + 1, steps=episode["steps"], episode_return=episode["episode_return"],
                            success=episode["success"]))
    env.close()
    if render == "gif":
        out = Path(out or Path("param") / "img" / "replay.gif")
        hold = [frames[-1]] * 15  # pause on the last frame before the loop restarts
        atomic_write(out, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:] + hold,
                                                     duration=40, loop=0))
        results[-1]["gif"] = str(out)
    return results


def progress_bar_class() -> type:
    """tqdm's widget in a notebook that has ipywidgets, its text bar everywhere else (where
    tqdm.auto would warn that ipywidgets is missing); no bar at all when stderr is closed."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    if sys.stderr is None or sys.stderr.closed:
        return functools.partial(tqdm, disable=True)
    return tqdm


def show(*paths: str | Path) -> None:
    """Show images (PNG figures, a replay GIF) inline in a Jupyter notebook; elsewhere print
    their paths."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        inline = getattr(get_ipython(), "kernel", None) is not None
    except ImportError:
        inline = False
    for path in paths:
        if inline:
            display(Image(filename=str(path)))
        else:
            print(path)


def _caption(frame: np.ndarray, text: str) -> Any:
    from PIL import Image, ImageDraw, ImageFont
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.text((10, image.height - 26), text, fill=(0, 0, 0), font=ImageFont.load_default(size=18))  # below the track
    return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)


# ---------------------------------------------------------------------------------------
# 11. Figures
# ---------------------------------------------------------------------------------------
def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of a VisualDL run folder, as (steps, values) arrays."""
    from visualdl import LogReader
    files = sorted(Path(run_dir).glob("vdlrecords.*"))
    if not files:
        raise UsageError(f"no VisualDL records in {run_dir}; pass a run folder under ./exp")
    series: dict[str, list[tuple[int, float]]] = {}
    for f in files:  # runs of older versions added a file per resume
        try:
            if f.stat().st_size and not whole_records_end(f):  # VisualDL would allocate what it claims
                raise ValueError("no whole record")
            reader = LogReader(file_path=str(f))
            for tag in reader.get_tags().get("scalar", []):
                series.setdefault(tag, []).extend((r.id, r.value) for r in reader.get_data("scalar", tag))
        except Exception as e:  # noqa: BLE001 - a damaged file fails deep inside protobuf
            raise UsageError(f"cannot read the VisualDL records {f} ({type(e).__name__}); the file is damaged") from None
    return {tag: tuple(np.array(x) for x in zip(*sorted(pts))) for tag, pts in series.items()}


def latest_run(logdir: str | Path) -> Path:
    """The most recently written run folder under `logdir`."""
    runs = sorted((p for p in Path(logdir).glob("*") if any(p.glob("vdlrecords.*"))),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no training runs under {logdir}; train first or pass a run folder")
    return runs[-1]


def plot_run(run_dir: str | Path, actor_path: str | Path | None, img_dir: str | Path) -> list[Path]:
    """Write the run's figures into `img_dir`: training curve, losses and, for 2-D
    observations, the policy and value maps with a greedy trajectory. Returns their paths.
    Figures are drawn without pyplot, so a notebook's own matplotlib backend is left alone."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    img_dir, scalars, written = Path(img_dir), read_scalars(run_dir), []
    steps_formatter = FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}")

    def save(fig: Any, name: str) -> None:  # fixed margins: tight_layout would draw each figure twice
        atomic_write(img_dir / name, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        written.append(img_dir / name)

    fig = Figure(figsize=(8, 4.5))
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.11, top=0.93)
    ax = fig.subplots()
    if "episode/return" in scalars:
        steps, rets = scalars["episode/return"]
        ax.plot(steps, rets, ".", ms=2, alpha=0.3, color="tab:blue", label="training episode")
        k = min(len(rets), max(10, len(rets) // 40))
        ax.plot(steps[k - 1:], np.convolve(rets, np.ones(k) / k, "valid"), color="tab:blue",
                label=f"training, mean of {k} episodes")
    if "eval/mean_return" in scalars:
        ax.plot(*scalars["eval/mean_return"], "o-", ms=3, color="tab:orange", label="greedy evaluation (100 ep.)")
    ax.axhline(-110, ls="--", color="gray", label="solved (-110)")
    ax.set(xlabel="environment steps", ylabel="episode return", title=f"Training curve: {Path(run_dir).name}")
    ax.xaxis.set_major_formatter(steps_formatter)
    ax.legend(loc="lower right")
    save(fig, "training_curve.png")

    panels = [("loss/action_loss", "action (clipped surrogate) loss"), ("loss/value_loss", "value loss"),
              ("diagnostics/entropy", "policy entropy"), ("diagnostics/approx_kl", "approx. KL"),
              ("diagnostics/clip_fraction", "clip fraction"), ("diagnostics/explained_variance", "explained variance")]
    fig = Figure(figsize=(12, 6))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.08, top=0.95, wspace=0.3, hspace=0.35)
    axes = fig.subplots(2, 3)
    for ax, (tag, title) in zip(axes.flat, panels):
        if tag in scalars:
            x, y = scalars[tag]
            ax.plot(x, y, lw=0.6, alpha=0.4)
            k = max(1, len(y) // 40)
            ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, "valid"), lw=1.5)
        ax.set(title=title, xlabel="minibatch update" if tag.endswith(("action_loss", "value_loss"))
               else "environment steps")
        ax.xaxis.set_major_formatter(steps_formatter)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # a few short labels: they ran together
    save(fig, "losses.png")

    if actor_path is not None and Path(actor_path).is_file():
        actor = load_actor(actor_path)
        name = Path(actor_path).name
        # the critic saved beside an actor_net*.param; another name is drawn without the value map
        critic_path = Path(actor_path).with_name(name.replace("actor_net", "critic_net")) if "actor_net" in name else None
        if actor.meta["obs_dim"] == 2 and actor.meta["env_id"]:
            critic = load_critic(critic_path) if critic_path is not None and critic_path.is_file() else None
            save(policy_value_figure(actor, critic), "policy_value.png")
    return written


@paddle.no_grad()
def policy_value_grid(actor: Actor, critic: Critic | None, low: np.ndarray, high: np.ndarray,
                      shape: tuple[int, int] = (141, 181)) -> tuple[np.ndarray, np.ndarray | None]:
    """Greedy action and V(s) on a grid over a 2-D observation box (rows: 2nd coordinate,
    from low to high; columns: 1st), each in one batched forward pass."""
    xs, ys = np.meshgrid(np.linspace(low[0], high[0], shape[1]), np.linspace(low[1], high[1], shape[0]))
    grid = paddle.to_tensor(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32))
    action = actor.logits(grid).numpy().argmax(1).reshape(shape)
    return action, None if critic is None else critic(grid).numpy().reshape(shape)


ACTION_COLOURS = ["#d95f02", "#dddddd", "#1b9e77"]  # push left, no push, push right


def policy_value_images(actor: Actor, critic: Critic, low: np.ndarray, high: np.ndarray) -> dict[str, np.ndarray]:
    """The policy and value maps as small RGB images for VisualDL's image tab, coloured in
    numpy (a matplotlib figure per evaluation would cost more than the evaluation)."""
    from matplotlib import colormaps, colors
    from PIL import Image, ImageDraw, ImageFont

    action, value = policy_value_grid(actor, critic, low, high, shape=(48, 64))
    span = float(value.max() - value.min()) or 1.0
    pictures = {
        "maps/policy": (np.asarray(colors.to_rgba_array(ACTION_COLOURS))[action],
                        "orange: push left, grey: none, green: right"),
        "maps/value": (colormaps["viridis"]((value - value.min()) / span),
                       f"V(s) from {value.min():.1f} (purple) to {value.max():.1f} (yellow)")}
    images = {}
    for tag, (rgba, text) in pictures.items():
        pixels = np.repeat(np.repeat((rgba[::-1, :, :3] * 255).astype(np.uint8), 5, 0), 5, 1)  # velocity up
        image = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + 40), "white")
        image.paste(Image.fromarray(pixels))
        draw, small = ImageDraw.Draw(image), ImageFont.load_default(size=12)
        draw.text((6, pixels.shape[0] + 3), f"x: position, y: velocity\n{text}", fill="black",
                  font=ImageFont.load_default(size=15))
        h, w = pixels.shape[:2]  # the axis ranges at the picture's edges, as ticks would say
        for xy, label, anchor in (((2, h - 2), f"{low[0]:g}", "ld"), ((w - 2, h - 2), f"{high[0]:g}", "rd"),
                                  ((2, 2), f"v {high[1]:g}", "la"), ((2, h - 16), f"v {low[1]:g}", "ld")):
            draw.text(xy, label, fill="white", font=small, anchor=anchor, stroke_width=2, stroke_fill="black")
        images[tag] = np.asarray(image)
    return images


def policy_value_figure(actor: Actor, critic: Critic | None) -> Any:
    """Greedy action and V(s) over (position, velocity), with a greedy trajectory."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    env = make_env(actor.meta["env_id"])
    low, high = env.observation_space.low, env.observation_space.high
    action, value = policy_value_grid(actor, critic, low, high)
    path = play_episode(env, make_policy(actor), HOLDOUT_SEED)["observations"]
    env.close()
    extent = [low[0], high[0], low[1], high[1]]
    fig = Figure(figsize=(13 if value is not None else 7, 5))
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.11, top=0.93, wspace=0.15)
    axes = fig.subplots(1, 2 if value is not None else 1, squeeze=False)
    cmap = ListedColormap(ACTION_COLOURS)
    im = axes[0, 0].imshow(action, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=-0.5, vmax=2.5)
    bar = fig.colorbar(im, ax=axes[0, 0], ticks=[0, 1, 2])
    bar.ax.set_yticklabels(["push left", "no push", "push right"])
    axes[0, 0].set_title("Greedy policy")
    if value is not None:
        im = axes[0, 1].imshow(value, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=axes[0, 1], label="V(s)")
        axes[0, 1].set_title("Value function (critic)")
    for ax in axes.flat:
        ax.plot(path[:, 0], path[:, 1], "k-", lw=1.5, label=f"greedy episode ({len(path) - 1} steps)")
        ax.plot(*path[0], "wo", mec="k", label="start")
        ax.axvline(0.5, color="red", ls="--", lw=1, label="flag (x = 0.5)")
        ax.set(xlabel="position", ylabel="velocity")
        ax.legend(loc="lower left", fontsize=8)
    return fig


# 12. Hyperparameter search (`tune`): Optuna, several seeds per trial, one machine or many
# ---------------------------------------------------------------------------------------
# The default search space: ranges a PPO practitioner would accept. A JSON file of the same
# form (--space) replaces it; flags given on the command line are fixed for every trial.
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "actor_lr": dict(type="float", low=1e-4, high=1e-2, log=True),
    "critic_lr": dict(type="float", low=1e-4, high=1e-2, log=True),
    "anneal_lr": dict(type="categorical", choices=[True, False]),
    "ent_coef": dict(type="float", low=1e-4, high=0.2, log=True),
    "anneal_ent": dict(type="categorical", choices=[True, False]),
    "update_epochs": dict(type="int", low=2, high=15),
    "batch_size": dict(type="categorical", choices=[128, 256, 512, 1024]),
    "hidden_sizes": dict(type="categorical", choices=["64", "64,64", "128,128", "256,256"]),
    "gae_lambda": dict(type="float", low=0.8, high=1.0),
    "gamma": dict(type="float", low=0.95, high=0.999),
    "clip": dict(type="float", low=0.1, high=0.3),
    "explore_bonus": dict(type="float", low=0.0, high=10.0),
    "explore_decay_steps": dict(type="int", low=20_000, high=300_000, log=True),
}
# Settings that say where a run writes or how it reports, not how it learns: never searched.
NOT_SEARCHABLE = {"preset", "env_id", "seed", "device", "logdir", "param_dir", "run_name", "quiet", "plots",
                  "save_every", "keep_snapshots", "eval_every", "eval_episodes", "target_return",
                  "fast_env", "episodes", "total_timesteps"}


def check_space(space: Any, fixed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A search space checked and without the fixed settings (and without the bonus's decay
    when the bonus is fixed at 0); every problem is a UsageError naming the parameter."""
    if not isinstance(space, dict) or not space:
        raise UsageError("the search space must be a JSON object of parameters, e.g. "
                         '{"actor_lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": true}}')
    fields = {f.name: f for f in dataclasses.fields(Args)}
    for name, spec in space.items():
        if name not in fields or name in NOT_SEARCHABLE:
            raise UsageError(f"unknown parameter '{name}' in the search space; searchable: "
                             + ", ".join(sorted(set(fields) - NOT_SEARCHABLE)))
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise UsageError(f"'{name}' in the search space has no choices")
        elif kind in ("float", "int"):
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                       for x in (low, high)) or not low < high or (spec.get("log") and low <= 0):
                raise UsageError(f"'{name}' in the search space needs low < high (and low > 0 with "
                                 f"\"log\": true), e.g. {json.dumps(SEARCH_SPACE.get(name, dict(low=1, high=10)))}")
        else:
            raise UsageError(f"'{name}' in the search space needs \"type\": \"float\", \"int\" or \"categorical\"")
    dropped = set(fixed) | ({"explore_decay_steps"} if fixed.get("explore_bonus") == 0 else set())
    left = {k: v for k, v in space.items() if k not in dropped}
    if not left:
        raise UsageError("every parameter of the search space is fixed on the command line; leave some out")
    return left


def suggest(trial: Any, name: str, spec: dict[str, Any]) -> Any:
    """The trial's value of one parameter, converted to the Args field's type."""
    if spec["type"] == "categorical":
        value = trial.suggest_categorical(name, spec["choices"])
    elif spec["type"] == "int":
        value = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    else:
        value = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return _parse_sizes(str(value)) if name == "hidden_sizes" else value


def open_study(storage: str | None, study_name: str, logdir: str, space: dict[str, Any],
               fixed: dict[str, Any], create: bool = True) -> Any:
    """The study: in a journal file under `logdir` unless a database URL is given (several
    machines then share it, Optuna's own distributed mode). A study made with another space
    or other fixed flags is refused, untouched."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed (interrupted) trial is said in one line
    if storage and "://" not in storage and not storage.endswith(".journal"):
        raise UsageError(f"--storage {storage[:80]} is neither a database URL (postgresql://user:password@host/db, "
                         "mysql://..., sqlite:///study.db) nor a .journal file")
    try:
        if storage and "://" in storage:
            url, connect = storage, {}
            if storage.startswith(("postgresql://", "postgres://")):
                connect = {"connect_timeout": 10}
                try:  # the README's driver, psycopg 3 (SQLAlchemy 2.0's default would be psycopg2)
                    import psycopg  # noqa: F401
                    url = "postgresql+psycopg://" + storage.split("://", 1)[1]
                except ImportError:
                    pass
            for attempt in range(3):  # workers starting together on an empty database race to make its tables
                try:
                    backend = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect},
                                                         skip_table_creation=not create)
                    break
                except Exception as e:  # noqa: BLE001
                    if attempt == 2 or "duplicate" not in str(e).lower() and "exists" not in str(e).lower():
                        raise
                    time.sleep(1)
        else:
            from optuna.storages.journal import JournalFileBackend, JournalStorage
            path = Path(storage or Path(logdir) / "tune" / f"{study_name}.journal")
            if not create and not path.is_file():
                raise UsageError(f"no study '{study_name}' at {path}; run tune first")
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = JournalStorage(JournalFileBackend(str(path)))
        names = optuna.get_all_study_names(backend)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - bad URLs, unreachable servers, missing drivers
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot open the study storage {storage or 'file'} ({first}); check the URL, "
                         "e.g. postgresql://user:password@host/dbname, and that the server is reachable") from None
    described = dict(space=space, fixed={k: str(v) for k, v in fixed.items()})
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=backend)
        if "described" not in study.user_attrs:  # another process created it a moment ago
            study.set_user_attr("described", described)
        elif study.user_attrs["described"] != json.loads(json.dumps(described)):
            raise UsageError(f"study '{study_name}' was created with another search space or other fixed "
                             "flags; pass --study NAME for a new study, or the same flags to continue it")
        return study
    if not create:
        raise UsageError(f"no study '{study_name}' in {storage or 'exp/tune'}; run tune first")
    study = optuna.create_study(study_name=study_name, storage=backend, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(), pruner=optuna.pruners.MedianPruner(
                                    n_startup_trials=5, n_warmup_steps=0))
    study.set_user_attr("described", described)
    return study


class SurplusTrial(Exception):
    """A trial beyond --trials, which ends at once as failed (so no worker counts it)."""


def run_trial(trial: Any, base: Args, space: dict[str, Any], seeds: list[int], trials: int) -> float:
    """Train one run per seed with the trial's settings; the score is the mean, over seeds, of
    the mean greedy return of all periodic evaluations (rewarding a good policy soon and
    kept). Reports after every evaluation, so the pruner can stop a hopeless trial.

    Workers check the budget before they start a trial, so two of them can start the last
    one together; trial numbers are unique in any storage, so the lower number runs and the
    other ends as a surplus trial without training."""
    import optuna
    if _counted(trial.study, below=trial.number) >= trials:
        trial.set_user_attr("surplus", "another worker started the study's last trial at the same moment")
        raise SurplusTrial()
    params = {name: suggest(trial, name, spec) for name, spec in space.items()}
    study_name = trial.study.study_name
    scores: list[float] = []
    for k, seed in enumerate(seeds):
        name = f"tune-{study_name}-trial{trial.number:04d}-seed{seed}"
        args = dataclasses.replace(base, **params, seed=seed, run_name=name, quiet=True, plots=False,
                                   param_dir=str(Path(base.logdir) / "tune" / study_name / name))
        evaluations: list[float] = []

        def report(global_step: int, result: dict[str, Any]) -> bool:
            evaluations.append(result["mean_return"])
            trial.report(float(np.mean(scores + [np.mean(evaluations)])), k * base.total_timesteps + global_step)
            return trial.should_prune()
        try:
            summary = train(args, on_evaluation=report)
        except (UsageError, TrainingDiverged) as e:  # settings that cannot work: no score
            trial.set_user_attr("invalid", str(e))
            raise optuna.TrialPruned(str(e)) from None
        if summary["interrupted"]:
            raise KeyboardInterrupt
        if trial.should_prune():
            raise optuna.TrialPruned()
        scores.append(float(np.mean(evaluations)))
    return float(np.mean(scores))


def _counted(study: Any, below: int | None = None) -> int:
    """Trials finished (complete or pruned) or under way, numbered below `below` if given:
    what --trials counts (failed ones, e.g. interrupted, are run again)."""
    import optuna
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING)
    return sum(below is None or t.number < below for t in study.get_trials(deepcopy=False, states=states))


def tune_worker(study: Any, base: Args, space: dict[str, Any], seeds: list[int], trials: int) -> None:
    """Run trials until the study holds `trials` of them (other workers' included)."""
    while _counted(study) < trials:
        study.optimize(lambda t: run_trial(t, base, space, seeds, trials), n_trials=1,
                       catch=(SurplusTrial,), gc_after_trial=True)


def tune_report(study: Any, fixed_flags: list[str], out: Path) -> str:
    """The best trial as a command line (also written to `out` as JSON), the top trials,
    and Optuna's parameter importances."""
    import optuna
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return "no trial has completed yet"
    best = study.best_trial
    searched = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in best.params.items()}
    command = "python ppo_mountaincar.py " + " ".join([*fixed_flags, *_as_flags(searched), "--seed", "1"])
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(dict(
        study=study.study_name, trial=best.number, score=best.value, params=best.params,
        fixed_flags=fixed_flags, command=command), indent=2) + "\n"))
    lines = [f"best: trial {best.number}, score {best.value:.1f} (mean greedy return over its evaluations)",
             command, f"(also in {out})", "", "top trials:"]
    names = list(best.params)
    lines.append("| trial | score | " + " | ".join(names) + " |")
    for t in sorted(done, key=lambda t: -t.value)[:5]:
        lines.append(f"| {t.number} | {t.value:.1f} | " + " | ".join(
            f"{t.params.get(n):.3g}" if isinstance(t.params.get(n), float) else str(t.params.get(n)) for n in names) + " |")
    if len(done) >= 2:
        try:
            importances = optuna.importance.get_param_importances(study)
            lines += ["", "parameter importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())]
        except (RuntimeError, ValueError) as e:
            lines += ["", f"parameter importances: not yet ({e})"]
    states = {s.name.lower(): n for s in optuna.trial.TrialState
              if (n := len(study.get_trials(deepcopy=False, states=(s,))))}
    lines.insert(0, "trials: " + ", ".join(f"{n} {s}" for s, n in states.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# 13. Command line
# ---------------------------------------------------------------------------------------
COMMANDS = ("train", "eval", "replay", "plot", "tune")
# Flags that may change when a run is resumed; the rest come from the checkpoint.
RESUMABLE_FLAGS = {"total_timesteps", "episodes", "quiet", "device", "eval_every", "eval_episodes",
                   "target_return", "save_every", "keep_snapshots", "logdir"}


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of sizes, e.g. 64,64") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command line: `train` (flags generated from `Args`), `eval`, `replay`, `plot`."""
    parser = _Parser(prog="ppo_mountaincar.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    tp = sub.add_parser("train", help="train a policy (the default command)",
                        description="Train PPO. Flags left unset take the preset's value. Other "
                        "commands: eval, replay, plot, tune (python ppo_mountaincar.py eval --help).")
    tn = sub.add_parser("tune", help="search hyperparameters with Optuna, several seeds per trial",
                        description="Search hyperparameters: each trial trains --seeds runs and scores the "
                        "mean greedy return of their periodic evaluations. Training flags given here are "
                        "fixed for every trial; the rest are searched (--space). The same command continues "
                        "an interrupted study; with --storage postgresql://... several machines share one.")
    for p in (tp, tn):
        for f in dataclasses.fields(Args):
            kw: dict[str, Any] = dict(default=None, help=f.metadata["help"])
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if f.type == "bool":
                kw["action"] = argparse.BooleanOptionalAction
            elif f.type == "tuple[int, ...]":
                kw["type"] = _parse_sizes
            else:
                kw["type"] = {"int": int, "float": float, "str": str, "int | None": int,
                              "float | None": float, "str | None": str}[f.type]
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            kw["help"] += f" [default preset: {shown}]"
            p.add_argument("--" + f.name.replace("_", "-"), **kw)
    tn.add_argument("--trials", type=int, default=50, help="trials in the study, all workers together [50]")
    tn.add_argument("--jobs", type=int, default=1, help="trials at a time on this machine, one process each "
                    "(one per core) [1]")
    tn.add_argument("--seeds", type=int, default=3, help="training runs per trial, seeds 1..N [3]")
    tn.add_argument("--storage", help="database URL shared by several machines, e.g. "
                    "postgresql://user:password@host/optuna [a journal file exp/tune/STUDY.journal]")
    tn.add_argument("--study", help="study name [ENV-PRESET, e.g. MountainCar-v0-default]")
    tn.add_argument("--space", help="JSON file with the search space (replaces the default; see README)")
    tn.add_argument("--show", action="store_true", help="print the study's best settings, top trials and "
                    "parameter importances, and exit")
    tn.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --jobs processes
    tp.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint "
                    f"(param/<run name>/{CHECKPOINT}); its config is reused")
    trust = dict(action="store_true", help="let --env-id name a module to import, as in "
                 "mymodule:MyEnv-v0 (Gymnasium imports it: only for code you trust)")
    tp.add_argument("--allow-env-module", **trust)

    def policy_command(name: str, help: str, episodes: int) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("path", help="actor .param file, e.g. param/net_param/actor_net.param")
        p.add_argument("--episodes", type=int, default=episodes, help=f"episodes to run [{episodes}]")
        p.add_argument("--seed", type=int, default=HOLDOUT_SEED, help="seed of the first episode "
                       f"(+1 for each next) [{HOLDOUT_SEED}: seeds no training run selects on]")
        p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the argmax")
        p.add_argument("--env-id", default=None, help="env to run (default: the one in the file)")
        p.add_argument("--allow-env-module", **trust)
        return p

    ep = policy_command("eval", "Evaluate a saved actor on the standard env (its own time limit).", 100)
    ep.add_argument("--json", action="store_true", help="print one JSON object")
    rp = policy_command("replay", "Play a saved actor and show it: a GIF, or a window.", 3)
    rp.add_argument("--render", choices=("gif", "human"), default="gif",
                    help="gif: write an animated GIF; human: open a window (needs a display) [gif]")
    rp.add_argument("--out", default=None, help="GIF path [param/img/replay.gif]")
    pp = sub.add_parser("plot", help="draw a run's figures into param/img",
                        description="Draw the training curve, the losses, and the policy and value maps.")
    pp.add_argument("run", nargs="?", help="run folder under ./exp [the newest]")
    pp.add_argument("--logdir", default="exp", help="where to look for the newest run [exp]")
    pp.add_argument("--param", help="actor .param for the policy/value maps [the run's own: "
                    "param/<run name>/actor_net.param]")
    pp.add_argument("--param-dir", default="param", help="where the runs' folders are [param]")
    pp.add_argument("--out", default=str(Path("param") / "img"), help="folder for the PNGs [param/img]")
    return parser


def args_from_cli(ns: argparse.Namespace, resumed: dict[str, Any] | None = None) -> Args:
    """Preset values first, then every flag the user actually gave. When resuming, the
    checkpoint's config is the base and only RESUMABLE_FLAGS may change."""
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)
             if getattr(ns, f.name, None) is not None}
    if resumed is not None:
        return resumed_args(resumed, given)
    return preset_args(given.pop("preset", "default"), **given)


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """Parse a command line; bare flags mean `train` (so --help shows the training flags)."""
    argv = list(argv)
    if not argv or argv[0] not in COMMANDS:
        argv.insert(0, "train")
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (2 for a usage error)."""
    try:
        ns = parse_command_line(sys.argv[1:] if argv is None else argv)
        if ns.command in ("eval", "replay", "plot") and threading.current_thread() is threading.main_thread():
            # SIGTERM ends them like Ctrl-C: one line. SIGINT too when it was inherited as
            # ignored (a shell script's background job), as training's StopSignal does.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.default_int_handler)
        if getattr(ns, "allow_env_module", False) and ns.env_id:
            allow_env_module(ns.env_id)  # only an id typed on this command line, never one from a file
        if ns.command == "train":
            return _train_command(ns)
        if ns.command == "tune":
            return _tune_command(ns, sys.argv[1:] if argv is None else list(argv))
        if ns.command == "plot":
            run = Path(ns.run) if ns.run else latest_run(ns.logdir)
            actor = ns.param or Path(ns.param_dir) / run.name / "actor_net.param"
            for path in plot_run(run, actor, ns.out):
                print(path)
            if ns.param is None and not Path(actor).is_file():
                print(f"note: no policy of {run.name} in {ns.param_dir}; drew its curves only", file=sys.stderr)
            return 0
        if ns.command == "eval":
            check_episode_seeds(ns.seed, ns.episodes)
            actor = load_actor(ns.path)
            env_id = env_for(actor, ns.env_id)
            result = evaluate(make_policy(actor, greedy=not ns.stochastic, seed=ns.seed),
                              env_id, ns.episodes, ns.seed)
            print(json.dumps(result) if ns.json else
                  f"{env_id}, {ns.episodes} episodes: mean return {result['mean_return']:.1f} "
                  f"+/- {result['std_return']:.1f}, success {result['success_rate']:.0%}, "
                  f"mean steps {result['mean_steps']:.1f}")
        else:
            for r in replay(ns.path, ns.episodes, ns.render, ns.out, ns.seed, not ns.stochastic, ns.env_id):
                print(f"episode {r['episode']}: {r['steps']} steps, return {r['episode_return']:.0f}"
                      + (" (flag reached)" if r["success"] else ""))
            if ns.render == "gif":
                print(f"wrote {r['gif']}")
        return 0
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # writing a GIF or a figure: a full disk, a read-only folder, a file for a folder
        if isinstance(e, BrokenPipeError):  # `eval | head`: the reader has gone, nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        print(f"error: cannot write {e.filename or 'a file'} ({e.strerror}); choose another path "
              "or free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in eval, replay or plot: nothing half-written stays
        print("interrupted", file=sys.stderr)
        return 130


def _as_flags(settings: dict[str, Any]) -> list[str]:
    """Training settings as command-line flags, e.g. {"hidden_sizes": (64, 64)} -> --hidden-sizes 64,64."""
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


def _tune_command(ns: argparse.Namespace, argv: list[str]) -> int:
    if not (0 < ns.trials <= 100_000 and 0 < ns.jobs <= 64 and 0 < ns.seeds <= 100):
        raise UsageError("--trials must be in 1..100,000, --jobs in 1..64 and --seeds in 1..100, "
                         "e.g. --trials 50 --jobs 2 --seeds 3")
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args) if getattr(ns, f.name) is not None}
    base = args_from_cli(ns)
    validate(base)
    if base.eval_every <= 0:
        raise UsageError("tune scores the periodic evaluations: --eval-every must be > 0, e.g. 4096")
    space = SEARCH_SPACE
    if ns.space:
        try:
            space = json.loads(Path(ns.space).read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the search space {ns.space} ({e}); pass a JSON file") from None
    space = check_space(space, given)
    study_name = ns.study or f"{base.env_id}-{base.preset}"
    if not all(c.isalnum() or c in "._-" for c in study_name):
        raise UsageError("--study must be a plain name: letters, digits and . _ -")
    study = open_study(ns.storage, study_name, base.logdir, space, given, create=not ns.show)
    report = lambda: tune_report(study, _as_flags(given), Path(base.logdir) / "tune" / f"{study_name}_best.json")  # noqa: E731
    if ns.show:
        print(report())
        return 0
    seeds = list(range(1, ns.seeds + 1))
    if ns.worker:
        paddle.base.core.set_num_threads(1)
        try:
            tune_worker(study, base, space, seeds, ns.trials)
        except KeyboardInterrupt:
            return 130
        return 0
    import optuna
    tqdm = progress_bar_class()
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    command = [sys.executable, str(Path(__file__).resolve()), *[a for a in argv if a != "--worker"], "--worker"]
    if command[2] != "tune":
        command.insert(2, "tune")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    print(f"study '{study_name}': {ns.trials} trials of {ns.seeds} seed{'s' * (ns.seeds != 1)}, {ns.jobs} at a time; "
          f"storage: {ns.storage or Path(base.logdir) / 'tune' / (study_name + '.journal')}", file=sys.stderr)
    # each worker in its own session: a Ctrl-C reaches this process only, which passes it on once
    workers = [subprocess.Popen(command, env=env, start_new_session=True) for _ in range(ns.jobs)]
    done = lambda: len(study.get_trials(deepcopy=False, states=finished))  # noqa: E731
    bar = tqdm(total=ns.trials, initial=min(done(), ns.trials), unit="trial", dynamic_ncols=True)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while any(w.poll() is None for w in workers):
            time.sleep(0.5)
            bar.update(min(done(), ns.trials) - bar.n)
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
                bar.set_postfix(best=f"{study.best_value:.1f}", refresh=False)
    except KeyboardInterrupt:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGINT)  # the running trials stop cleanly and are marked failed
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
        bar.close()
        print(f"interrupted: {done()} of {ns.trials} trials finished; run the same command to continue",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    bar.update(min(done(), ns.trials) - bar.n)
    bar.close()
    failed = [w.returncode for w in workers if w.returncode]
    if failed:
        print(f"error: a tune worker failed (exit code {failed[0]}); its message is above", file=sys.stderr)
        return 1
    print(report())
    return 0


def _train_command(ns: argparse.Namespace) -> int:
    checkpoint = load_checkpoint(ns.resume) if ns.resume else None
    args = args_from_cli(ns, checkpoint and checkpoint["config"])
    try:
        summary = train(args, checkpoint)
    except TrainingDiverged as e:
        print(f"error: training stopped: {e}; the run's files under {args.param_dir}/ are "
              "from before it; lower --actor-lr / --critic-lr, or --resume the last checkpoint", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: could not write {e.filename or 'a file'} ({e.strerror}); files already saved are "
              "intact; free space or fix permissions, then --resume the last checkpoint", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while the first was being handled
        print(f"stopped at once; the run's last checkpoint under {args.param_dir}/ is intact",
              file=sys.stderr)
        return 130
    if summary["interrupted"]:
        return 128 + summary["interrupted"]  # the run said how to resume
    print(f"trained {summary['global_step']} steps, {summary['episodes_done']} episodes in "
          f"{summary['seconds']:.1f} s")
    if summary["best_eval"]["mean_return"] > -np.inf:
        b = summary["best_eval"]
        print(f"best evaluation: mean return {b['mean_return']:.1f} at step {b['global_step']} (kept as the policy)")
    print(f"run folder: {summary['run_dir']} (policy, best and numbered snapshots, checkpoint, figures in img/)\n"
          f"policy: {summary['latest_path']} (a copy: the latest finished run's)\n"
          f"logs: {summary['log_dir']}; watch them with: "
          f"visualdl --logdir {Path(args.logdir)} --language en --disable-telemetry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
