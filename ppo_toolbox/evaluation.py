"""Evaluating a policy: a policy from a saved actor (`load_policy`), greedy evaluation on
many episodes at once (`evaluate`), a finished run's held-out score and whether it solves
the env (`held_out_score`, `verdict`), one episode played step by step (`play_episode`),
what success means in an env (`success_rule`, `reward_threshold`), and the env an actor
file fits (`env_for`).
Imports numpy, gymnasium, `errors`, `settings`, `acting`, `envs` and `network_files`, and the
script's `sample_actions` when it makes a policy."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from .acting import NumpyNet
from .envs import make_env, make_vec_env
from .errors import UsageError
from .network_files import KNOWN_ENVS, read_network
from .settings import MAX_EVAL_EPISODES, MAX_SEED

EVAL_SEED = 10_000        # seeds of the periodic evaluation that picks the best policy
HOLDOUT_SEED = 1_000_000  # default seeds of `eval`: episodes no training run selected on
HELD_OUT_EPISODES = 100   # the score a finished run reports, on seeds HOLDOUT_SEED + i

Policy = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class SuccessRule:
    """What counts as a successful episode of an env, and how a replay says it."""
    said: str                                      # e.g. "flag reached"
    test: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (terminated, truncated, return) -> bool


def success_rule(env_id: str) -> SuccessRule | None:
    """MountainCar: the flag (a terminal state); CartPole: balancing until the time limit;
    any other env: a terminal state with a return at or above the env's reward threshold,
    or no success at all (None) when the env has no threshold. Each env's own sense, so
    that a CartPole policy falling at once never counts as a success."""
    name = env_id.split("/")[-1].split(":")[-1]
    if name.startswith("MountainCar"):
        return SuccessRule("flag reached", lambda terminated, truncated, ret: terminated)
    if name.startswith("CartPole"):
        return SuccessRule("balanced to the time limit", lambda terminated, truncated, ret: truncated & ~terminated)
    threshold = reward_threshold(env_id)
    if threshold is None:
        return None
    return SuccessRule(f"goal reached with return >= {threshold:g}",
                       lambda terminated, truncated, ret: terminated & (ret >= threshold))


def reward_threshold(env_id: str) -> float | None:
    """The mean return at which Gymnasium counts the env as solved (-110 for MountainCar-v0),
    or None where it names none."""
    try:
        threshold = gym.spec(env_id).reward_threshold
    except Exception:  # noqa: BLE001 - an env Gymnasium does not list: no threshold known
        return None
    return None if threshold is None else float(threshold)


def held_out_score(actor_path: str | Path, env_id: str, trusted_env: str | None = None,
                   episodes: int = HELD_OUT_EPISODES) -> dict[str, Any]:
    """A finished run's score: its kept actor on `episodes` greedy episodes whose seeds
    (HOLDOUT_SEED + i) no periodic evaluation (EVAL_SEED + i, at most 100,000 of them)
    selected on, and whether the mean reaches the env's threshold (None: it has none)."""
    result = evaluate(load_policy(actor_path), env_id, episodes, HOLDOUT_SEED, trusted_env=trusted_env)
    threshold = reward_threshold(env_id)
    return dict(mean_return=result["mean_return"], std_return=result["std_return"], episodes=episodes,
                success_rate=result["success_rate"], threshold=threshold,
                solved=None if threshold is None else result["mean_return"] >= threshold)


def verdict(mean_return: float, threshold: float) -> tuple[str, str]:
    """Whether a mean return solves an env, in words: ("solved", ">= -110") or
    ("not solved", "< -110")."""
    return ("solved", f">= {threshold:g}") if mean_return >= threshold else ("not solved", f"< {threshold:g}")


def check_episode_seeds(seed: int, episodes: int) -> None:
    """Episodes use seeds seed, seed + 1, ...: all must be valid 32-bit seeds."""
    if episodes > MAX_EVAL_EPISODES:  # else the seed's range below would be negative
        raise UsageError(f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    if not 0 <= seed <= MAX_SEED - max(episodes, 0):
        raise UsageError(f"--seed must be in 0..{MAX_SEED - max(episodes, 0):,} (the episodes use seed, seed + 1, ...)")


def make_policy(actor: NumpyNet, greedy: bool = True, seed: int = 0) -> Policy:
    """A callable mapping a batch of raw observations (N, obs_dim) to actions (N,), by the
    script's sampling rule (`sample_actions`: the rule it teaches, read there)."""
    from ppo_mountaincar import sample_actions  # at call time: the script imports this module
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
    seeds seed, seed+1, ...; `success_rate` by the env's `success_rule` (None where the
    env has none)."""
    if not 0 < episodes <= MAX_EVAL_EPISODES:  # one env each, all at once
        raise UsageError(f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    check_episode_seeds(seed, episodes)
    envs = make_vec_env(env_id, episodes, fast=fast, trusted_env=trusted_env)
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
    finished, ended_terminal = np.zeros(episodes, bool), np.zeros(episodes, bool)
    while not finished.all():
        obs, reward, terminated, truncated, _ = envs.step(policy(obs))
        returns += np.where(finished, 0.0, reward)
        lengths += ~finished
        ended_terminal |= terminated & ~finished
        finished |= terminated | truncated
    envs.close()
    rule = success_rule(env_id)
    success = None if rule is None else float(rule.test(ended_terminal, ~ended_terminal, returns).mean())
    return dict(mean_return=float(returns.mean()), std_return=float(returns.std()),
                success_rate=success, mean_steps=float(lengths.mean()), episodes=episodes)


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
        sizes = f"({meta['obs_dim']} inputs, {meta['n_actions']} actions)"
        if env_id == trained_on:  # the file names an env its own network does not fit
            fits = KNOWN_ENVS.get((meta["obs_dim"], meta["n_actions"]))
            raise UsageError(f"this actor {sizes} does not fit {env_id}, the env its file names; pass --env-id "
                             + (f"{fits}, the env of that size" if fits else "with the env it was trained on"))
        raise UsageError(f"this actor was trained on {trained_on or 'another env'} {sizes} and does not fit {env_id}; "
                         + (f"pass --env-id {trained_on}" if trained_on else "pass the --env-id it was trained on"))
    return env_id


def play_episode(env: gym.Env, policy: Policy, seed: int,
                 on_step: Callable[[int, float, bool, bool], None] | None = None) -> dict[str, Any]:
    """One episode of `env` with `policy` from the start `seed` gives; `on_step(steps, return,
    done, terminated)` after every step (to film it). Returns the visited observations, the
    return, the number of steps, whether the episode reached a terminal state and whether
    it succeeded by the env's `success_rule` (None where the env has none)."""
    obs, _ = env.reset(seed=seed)
    observations, total, steps, done, terminated = [obs], 0.0, 0, False, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(policy(obs[None])[0]))
        observations.append(obs)
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
        if on_step is not None:
            on_step(steps, total, done, terminated)
    rule = success_rule(env.spec.id if env.spec is not None else "")
    success = None if rule is None else bool(rule.test(np.array(terminated), np.array(not terminated), np.array(total)))
    return dict(observations=np.array(observations), episode_return=total, steps=steps,
                terminated=bool(terminated), success=success)
