"""Evaluating a policy: a policy from a saved actor (`load_policy`), greedy evaluation on
many episodes at once (`evaluate`), one episode played step by step (`play_episode`), and
the env an actor file fits (`env_for`). Imports numpy, gymnasium, `errors`, `settings`,
`acting`, `envs` and `network_files`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from .acting import NumpyNet, sample_actions
from .envs import make_env, make_vec_env
from .errors import UsageError
from .network_files import read_network
from .settings import MAX_EVAL_EPISODES, MAX_SEED

EVAL_SEED = 10_000        # seeds of the periodic evaluation that picks the best policy
HOLDOUT_SEED = 1_000_000  # default seeds of `eval`: episodes no training run selected on

Policy = Callable[[np.ndarray], np.ndarray]


def check_episode_seeds(seed: int, episodes: int) -> None:
    """Episodes use seeds seed, seed + 1, ...: all must be valid 32-bit seeds."""
    if not 0 <= seed <= MAX_SEED - max(episodes, 0):
        raise UsageError(f"--seed must be in 0..{MAX_SEED - max(episodes, 0):,} (the episodes use seed, seed + 1, ...)")


def make_policy(actor: NumpyNet, greedy: bool = True, seed: int = 0) -> Policy:
    """A callable mapping a batch of raw observations (N, obs_dim) to actions (N,)."""
    rng = np.random.default_rng(seed)
    return lambda obs: sample_actions(actor.log_probs(obs), rng, greedy)[0]


def load_policy(path: str | Path, greedy: bool = True, seed: int = 0) -> Policy:
    """Load an actor .param file as a policy: raw observations (N, obs_dim) -> actions (N,).
    Any observation normalisation the actor learned is inside the file and applied."""
    actor = read_network(path, "actor")
    return make_policy(NumpyNet.from_state(actor.state, actor.meta), greedy, seed)


def evaluate(policy: Policy, env_id: str = "MountainCar-v0", episodes: int = 100, seed: int = HOLDOUT_SEED,
             fast: bool = True, trusted_env: str | None = None) -> dict[str, float]:
    """Run `episodes` episodes of the standard env (its own time limit), all at once, with
    seeds seed, seed+1, ...; success = the episode reached a terminal state before the time
    limit (for MountainCar: the flag)."""
    if not 0 < episodes <= MAX_EVAL_EPISODES:  # one env each, all at once
        raise UsageError(f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    check_episode_seeds(seed, episodes)
    envs = make_vec_env(env_id, episodes, fast=fast, trusted_env=trusted_env)
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


def env_for(meta: dict[str, Any], env_id: str | None = None, trusted_env: str | None = None) -> str:
    """The env to run the actor a file describes (`meta`) in: `env_id`, else the one it was
    trained on. Refuses an env whose observation or action space the actor does not fit."""
    trained_on = meta["env_id"]
    env_id = env_id or trained_on
    if env_id is None:
        raise UsageError(f"this file does not say which env it was trained on ({meta['obs_dim']} "
                         f"inputs, {meta['n_actions']} actions); pass --env-id, e.g. CartPole-v1")
    env = make_env(env_id, trusted_env=trusted_env)
    obs_dim, n_actions = env.observation_space.shape, getattr(env.action_space, "n", None)
    env.close()
    if obs_dim != (meta["obs_dim"],) or n_actions != meta["n_actions"]:
        raise UsageError(f"this actor was trained on {trained_on or 'another env'} ({meta['obs_dim']} "
                         f"inputs, {meta['n_actions']} actions) and does not fit {env_id}; "
                         + (f"pass --env-id {trained_on}" if trained_on else "pass the --env-id it was trained on"))
    return env_id


def play_episode(env: gym.Env, policy: Policy, seed: int,
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
