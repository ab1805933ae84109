"""The environments: `make_env` (one Gymnasium env, refusing ids that would import a module
nobody trusted), `make_vec_env` (several in one process) and `MountainCarVecEnv`
(MountainCar-v0 for all cars in one numpy step). Imports gymnasium, numpy and `errors`."""
from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import UsageError


def make_env(env_id: str, max_episode_steps: int | None = None, trusted_env: str | None = None,
             **kwargs: Any) -> gym.Env:
    """One Gymnasium env; `max_episode_steps=0` removes the time limit. Gymnasium imports the
    module named before a ':' in an id ("mymod:MyEnv-v0"): only the id passed as
    `trusted_env` may do that (the command line passes the --env-id typed with
    --allow-env-module), never one read from a file or typed by mistake."""
    if not isinstance(env_id, str) or not 0 < len(env_id) <= 200 or not env_id.isprintable():
        raise UsageError("an env id must be a name of one line, e.g. MountainCar-v0")
    if ":" in env_id and env_id != trusted_env:
        raise UsageError(f"env id '{env_id[:80]}' would import the module '{env_id.split(':')[0][:40]}'; "
                         "if you trust it, pass it as --env-id with --allow-env-module")
    try:
        with warnings.catch_warnings():  # "X-v0 is out of date" (2 lines), even when making it fails
            warnings.simplefilter("ignore", DeprecationWarning)
            if max_episode_steps == 0:
                return gym.make(env_id, **kwargs).unwrapped
            return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    except Exception as e:  # noqa: BLE001 - unknown ids, missing modules, an env's own errors
        raise UsageError(f"cannot make env '{env_id[:80]}' ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                         "try MountainCar-v0, CartPole-v1 or Acrobot-v1") from None


def make_vec_env(env_id: str, num_envs: int, max_episode_steps: int | None = None,
                 fast: bool = True, trusted_env: str | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies in one process. SAME_STEP autoreset hands back the final
    observation of a finished episode in `info["final_obs"]`, for bootstrapping.
    MountainCar-v0 runs as `MountainCarVecEnv` (same physics, all cars in one numpy step)
    unless `fast=False`."""
    if fast and env_id == "MountainCar-v0":
        return MountainCarVecEnv(num_envs, 200 if max_episode_steps is None else max_episode_steps)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, max_episode_steps, trusted_env) for _ in range(num_envs)],
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

    def state(self) -> dict[str, Any]:
        """Every car's position, velocity, elapsed steps and RNG: what a checkpoint needs to
        continue these episodes exactly."""
        return dict(pos=self.pos.copy(), vel=self.vel.copy(), elapsed=self.elapsed.copy(),
                    rngs=[rng.bit_generator.state for rng in self.rngs])

    def load_state(self, state: dict[str, Any]) -> np.ndarray:
        """Put the cars back as `state` saw them (its types checked by ppo_toolbox.checkpoint);
        returns their observations."""
        try:
            pos, vel, elapsed = (np.array(state[k], dtype) for k, dtype in
                                 (("pos", np.float64), ("vel", np.float64), ("elapsed", np.int64)))
            if not (pos.shape == vel.shape == elapsed.shape == (self.num_envs,)) or len(state["rngs"]) != self.num_envs:
                raise ValueError("sizes")
            # where the physics can put a car (else numpy warns of overflows, and training diverges)
            if not ((self.MIN_POS <= pos) & (pos <= self.MAX_POS) & (np.abs(vel) <= self.MAX_SPEED)
                    & (elapsed >= 0)).all():
                raise ValueError("a car out of range")
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
