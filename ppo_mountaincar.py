"""PPO on MountainCar-v0 in PaddlePaddle, in one file.

A modern rebuild of a well-known Chinese PPO tutorial: the same `Actor`, `Critic` and
`PPO` (with `select_action`, `get_value`, `store_transition`, `update`, `save_param`),
running on Gymnasium and PaddlePaddle 3, with the tutorial's bugs fixed.

    python ppo_mountaincar.py                      # train the default preset
    python ppo_mountaincar.py --preset tutorial    # the article's algorithm, bugs fixed
    python ppo_mountaincar.py eval param/net_param/actor_net.param
    python ppo_mountaincar.py --help               # every flag

The file reads top to bottom in the order things happen: configuration, environments,
networks, rollout buffer, exploration bonus, the PPO agent, saving and loading, the
training loop, evaluation, and the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

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
    preset: str = _flag("default", "hyperparameter preset: 'default' (learns fast) or "
                        "'tutorial' (the article's algorithm); explicit flags override it",
                        choices=("default", "tutorial"))
    env_id: str = _flag("MountainCar-v0", "any Gymnasium env with a vector observation "
                        "and discrete actions (CartPole-v1, Acrobot-v1, ...)")
    seed: int = _flag(1, "seeds the environments, numpy and paddle")
    total_timesteps: int = _flag(150_000, "training budget in environment steps")
    episodes: int = _flag(0, "stop after this many training episodes as well (0: no limit)")
    max_episode_steps: int | None = _flag(None, "training time limit per episode; 0 removes "
                                          "it (the tutorial's env.unwrapped); unset: the env's own")
    # rollout
    num_envs: int = _flag(16, "parallel environments")
    num_steps: int = _flag(128, "steps per environment per rollout (the buffer capacity)")
    update_on_episode_end: bool = _flag(False, "also update as soon as an episode ends and the "
                                        "buffer holds >= batch-size steps (the tutorial's schedule)")
    # PPO
    gamma: float = _flag(0.99, "discount factor")
    gae_lambda: float = _flag(0.95, "GAE lambda (1.0: Monte-Carlo returns, as in the tutorial)")
    clip: float = _flag(0.2, "PPO ratio clip epsilon")
    update_epochs: int = _flag(10, "passes over each rollout")
    batch_size: int = _flag(256, "minibatch size")
    actor_lr: float = _flag(3e-4, "actor Adam learning rate")
    critic_lr: float = _flag(1e-3, "critic Adam learning rate")
    anneal_lr: bool = _flag(True, "decay both learning rates linearly to 0 over the budget")
    max_grad_norm: float = _flag(0.5, "clip each network's global gradient norm to this")
    ent_coef: float = _flag(0.0, "entropy bonus coefficient")
    norm_adv: bool = _flag(True, "normalise advantages per minibatch")
    target_kl: float | None = _flag(None, "stop an update's epochs once approx KL exceeds this")
    # networks
    hidden_sizes: tuple[int, ...] = _flag((64, 64), "hidden layer sizes, e.g. 128 or 64,64")
    activation: str = _flag("tanh", "hidden activation", choices=("tanh", "relu"))
    norm_obs: bool = _flag(True, "normalise observations with running statistics "
                           "(stored inside the actor .param)")
    # exploration
    explore_bonus: float = _flag(0.0, "count-based bonus beta/sqrt(N) on a grid over the "
                                 "observation box (0: off)")
    explore_bins: int = _flag(20, "grid cells per observation dimension for the bonus")
    explore_decay_steps: int = _flag(100_000, "the bonus decays linearly to 0 by this step")
    # evaluation during training
    eval_every: int = _flag(0, "greedy evaluation every N env steps (0: off)")
    eval_episodes: int = _flag(100, "episodes per periodic evaluation")
    target_return: float | None = _flag(None, "stop once a periodic evaluation reaches this")
    # output
    logdir: str = _flag("exp", "VisualDL log folder; each run writes to a sub-folder")
    param_dir: str = _flag("param", "checkpoint folder (net_param/ and img/ go inside)")
    save_every: int = _flag(50, "write a numbered snapshot every N updates (0: never)")
    keep_snapshots: int = _flag(3, "numbered snapshots to keep")
    quiet: bool = _flag(False, "no progress bar")


# Presets are configurations of the same code: only the values differ.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The article: one env without time limit, Monte-Carlo returns, an update at the end of
    # every episode (or when the 8,000-step buffer fills), 10 epochs of minibatches of 64.
    "tutorial": dict(
        total_timesteps=10**9, episodes=1000, max_episode_steps=0, num_envs=1,
        num_steps=8000, update_on_episode_end=True, gamma=0.99, gae_lambda=1.0,
        update_epochs=10, batch_size=64, actor_lr=1e-3, critic_lr=3e-3, anneal_lr=False,
        max_grad_norm=0.5, ent_coef=0.0, norm_adv=False, hidden_sizes=(128,),
        activation="relu", norm_obs=False, save_every=100,
    ),
}


# ---------------------------------------------------------------------------------------
# 2. Environments
# ---------------------------------------------------------------------------------------
class UsageError(Exception):
    """A mistake in how the program was called: reported as one line, exit code 2."""


def make_env(env_id: str, max_episode_steps: int | None = None) -> gym.Env:
    """One Gymnasium env; `max_episode_steps=0` removes the time limit."""
    try:
        if max_episode_steps == 0:
            return gym.make(env_id).unwrapped
        return gym.make(env_id, max_episode_steps=max_episode_steps)
    except gym.error.Error as e:
        raise UsageError(f"cannot make env '{env_id}' ({e}); try MountainCar-v0, "
                         "CartPole-v1 or Acrobot-v1") from None


def make_vec_env(env_id: str, num_envs: int, max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies in one process. SAME_STEP autoreset hands back the final
    observation of a finished episode in `info["final_obs"]`, for bootstrapping."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, max_episode_steps) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    if not isinstance(envs.single_action_space, gym.spaces.Discrete) or \
            len(envs.single_observation_space.shape) != 1:
        envs.close()
        raise UsageError(f"env '{env_id}' needs a vector observation and discrete actions; "
                         "try MountainCar-v0, CartPole-v1 or Acrobot-v1")
    return envs


# ---------------------------------------------------------------------------------------
# 3. Networks
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
        return self.net(self.obs_norm(state))

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
        return self.net(self.obs_norm(state)).squeeze(-1)


# ---------------------------------------------------------------------------------------
# 4. Rollout buffer
# ---------------------------------------------------------------------------------------
class RolloutBuffer:
    """Fixed-capacity storage of `num_steps` x `num_envs` transitions (the tutorial's
    unbounded list grew past a million entries when the car never found the flag)."""

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int):
        self.obs = np.zeros((num_steps, num_envs, obs_dim), np.float32)
        self.actions = np.zeros((num_steps, num_envs), np.int64)
        self.logprobs = np.zeros((num_steps, num_envs), np.float32)
        self.rewards = np.zeros((num_steps, num_envs), np.float32)
        self.dones = np.zeros((num_steps, num_envs), np.float32)  # episode ended after step t
        self.values = np.zeros((num_steps, num_envs), np.float32)
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size == len(self.obs)

    def add(self, obs, action, logprob, reward, done, value) -> None:
        t = self.size
        self.obs[t], self.actions[t], self.logprobs[t] = obs, action, logprob
        self.rewards[t], self.dones[t], self.values[t] = reward, done, value
        self.size += 1

    def compute_returns(self, last_value: np.ndarray, gamma: float, lam: float):
        """GAE(lambda) advantages and the returns the critic regresses on.

        `last_value` is V of the observation after the last stored step; it bootstraps
        rollouts cut mid-episode. With lam=1 this is the tutorial's Monte-Carlo return
        G_t (bootstrapped at the cut) and advantage G_t - V(s_t). Time-limit truncations
        were already folded into the reward (r + gamma * V(s_final)) when stored."""
        n = self.size
        adv = np.zeros((n, self.obs.shape[1]), np.float32)
        next_adv, next_value = 0.0, last_value
        for t in reversed(range(n)):  # sequential in time, batched over envs
            not_done = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_value * not_done - self.values[t]
            next_adv = adv[t] = delta + gamma * lam * not_done * next_adv
            next_value = self.values[t]
        return adv, adv + self.values[:n]

    def clear(self) -> None:
        self.size = 0


# ---------------------------------------------------------------------------------------
# 5. Exploration bonus
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
        idx = np.clip(((obs - self.low) / self.width * self.bins).astype(np.int64), 0, self.bins - 1)
        return np.ravel_multi_index(idx.T, (self.bins,) * obs.shape[1])

    def __call__(self, obs: np.ndarray, beta: float) -> np.ndarray:
        """Count the visits in `obs` (batch) and return their bonuses."""
        c = self.cells(obs)
        np.add.at(self.counts, c, 1)
        return (beta / np.sqrt(self.counts[c])).astype(np.float32)


# ---------------------------------------------------------------------------------------
# 6. The PPO agent
# ---------------------------------------------------------------------------------------
def gather_logprob(logits: paddle.Tensor, actions: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """log pi(a|s) for each row's action, in one batched gather (the tutorial looped
    over rows in Python), plus the full log-probability table."""
    logp_all = F.log_softmax(logits, axis=-1)
    return paddle.take_along_axis(logp_all, actions.unsqueeze(-1), axis=-1).squeeze(-1), logp_all


def clipped_surrogate(logp: paddle.Tensor, old_logp: paddle.Tensor, adv: paddle.Tensor,
                      clip: float) -> tuple[paddle.Tensor, paddle.Tensor]:
    """PPO-clip loss -E[min(r A, clip(r, 1-eps, 1+eps) A)] and the ratio r.
    The ratio is formed in log space: pi/pi_old of two tiny probabilities is unstable."""
    ratio = paddle.exp(logp - old_logp)
    surr = paddle.minimum(ratio * adv, paddle.clip(ratio, 1.0 - clip, 1.0 + clip) * adv)
    return -surr.mean(), ratio


@paddle.no_grad()
def act(actor: Actor, state: np.ndarray, rng: np.random.Generator | None = None,
        greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Actions for a batch of raw states, and their log-probabilities. Samples from pi
    itself (the tutorial fed probabilities to Categorical, which takes logits, so it
    sampled from softmax(pi) while storing pi as the behaviour probability)."""
    logp = F.log_softmax(actor.logits(paddle.to_tensor(state, dtype="float32")), axis=-1).numpy()
    if greedy:
        actions = logp.argmax(-1)
    else:  # inverse-CDF sampling, one uniform draw per row
        u = rng.random((len(logp), 1))
        actions = np.minimum((u > np.cumsum(np.exp(logp), -1)).sum(-1), logp.shape[1] - 1)
    return actions, np.take_along_axis(logp, actions[:, None], -1)[:, 0]


class PPO:
    """Actor, critic, their optimizers and the rollout buffer, with the clipped update."""

    def __init__(self, obs_dim: int, n_actions: int, args: Args):
        self.args = args
        self.obs_norm = ObsNorm(obs_dim, enabled=args.norm_obs)  # shared by both networks
        self.actor_net = Actor(obs_dim, n_actions, args.hidden_sizes, args.activation, self.obs_norm)
        self.critic_net = Critic(obs_dim, args.hidden_sizes, args.activation, self.obs_norm)
        clip = nn.ClipGradByGlobalNorm(args.max_grad_norm)
        self.actor_optimizer = paddle.optimizer.Adam(
            args.actor_lr, parameters=self.actor_net.parameters(), grad_clip=clip)
        self.critic_optimizer = paddle.optimizer.Adam(
            args.critic_lr, parameters=self.critic_net.parameters(), grad_clip=clip)
        self.buffer = RolloutBuffer(args.num_steps, args.num_envs, obs_dim)
        self.rng = np.random.default_rng(args.seed)
        self.training_step = 0  # minibatch updates so far (the tutorial's counter)

    # -- acting ---------------------------------------------------------------------
    def select_action(self, state: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions for a batch of states; returns (actions, log pi(a|s))."""
        return act(self.actor_net, state, self.rng, greedy)

    @paddle.no_grad()
    def get_value(self, state: np.ndarray) -> np.ndarray:
        """V(s) for a batch of states."""
        return self.critic_net(paddle.to_tensor(state, dtype="float32")).numpy()

    def store_transition(self, state, action, logprob, reward, done, value) -> None:
        """Append one step of every env to the buffer."""
        self.buffer.add(state, action, logprob, reward, done, value)

    # -- learning -------------------------------------------------------------------
    def set_lr_fraction(self, frac: float) -> None:
        self.actor_optimizer.set_lr(self.args.actor_lr * frac)
        self.critic_optimizer.set_lr(self.args.critic_lr * frac)

    def update(self, last_value: np.ndarray) -> dict[str, Any]:
        """Several epochs of clipped-ratio minibatch updates on the buffer, then clear it.

        Returns per-minibatch losses (for the tutorial's VisualDL tags) and diagnostics."""
        a, buf = self.args, self.buffer
        adv, ret = buf.compute_returns(last_value, a.gamma, a.gae_lambda)
        n = buf.size * buf.obs.shape[1]
        flat = [buf.obs[:buf.size].reshape(n, -1), buf.actions[:buf.size].reshape(n),
                buf.logprobs[:buf.size].reshape(n), adv.reshape(n), ret.reshape(n)]
        tensors = [paddle.to_tensor(x) for x in flat]
        logs: list[paddle.Tensor] = []
        for _ in range(a.update_epochs):
            perm = paddle.to_tensor(self.rng.permutation(n))
            obs, act, old_logp, b_adv, b_ret = (paddle.gather(t, perm) for t in tensors)
            epoch_logs = []
            for start in range(0, n, a.batch_size):
                mb = slice(start, start + a.batch_size)
                epoch_logs.append(self._minibatch_step(obs[mb], act[mb], old_logp[mb], b_adv[mb], b_ret[mb]))
            logs += epoch_logs
            if a.target_kl is not None and float(paddle.stack(epoch_logs)[:, 3].mean()) > a.target_kl:
                break
        self.obs_norm.update(flat[0])  # after the update, so pi_old and pi saw the same inputs
        buf.clear()
        table = paddle.stack(logs).numpy()
        values = flat[4] - flat[3]
        return dict(action_loss=table[:, 0], value_loss=table[:, 1], entropy=table[:, 2].mean(),
                    approx_kl=table[:, 3].mean(), clip_fraction=table[:, 4].mean(),
                    explained_variance=float(1 - np.var(flat[4] - values) / (np.var(flat[4]) + 1e-8)))

    def _minibatch_step(self, obs, act, old_logp, adv, ret) -> paddle.Tensor:
        a = self.args
        if a.norm_adv and adv.shape[0] > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp, logp_all = gather_logprob(self.actor_net.logits(obs), act)
        action_loss, ratio = clipped_surrogate(logp, old_logp, adv, a.clip)
        entropy = -(paddle.exp(logp_all) * logp_all).sum(-1).mean()
        value = self.critic_net(obs)
        assert value.shape == ret.shape  # [N] vs [N, 1] would broadcast to [N, N]
        value_loss = F.mse_loss(value, ret)
        # The two networks share no weights, so one backward serves both optimizers.
        (action_loss - a.ent_coef * entropy + value_loss).backward()
        self.actor_optimizer.step()
        self.critic_optimizer.step()
        self.actor_optimizer.clear_grad()
        self.critic_optimizer.clear_grad()
        self.training_step += 1
        with paddle.no_grad():
            log_ratio = logp - old_logp
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_frac = ((ratio - 1).abs() > a.clip).astype("float32").mean()
            return paddle.stack([action_loss, value_loss, entropy, approx_kl, clip_frac])

    def save_param(self, directory: str | Path, suffix: str = "") -> Path:
        """Write actor_net{suffix}.param and critic_net{suffix}.param; returns the actor's."""
        directory = Path(directory)
        meta = network_meta(self.actor_net, self.args)
        save_state(self.critic_net, directory / f"critic_net{suffix}.param", {**meta, "role": "critic"})
        return save_state(self.actor_net, directory / f"actor_net{suffix}.param", {**meta, "role": "actor"})


# ---------------------------------------------------------------------------------------
# 7. Saving and loading .param files
# ---------------------------------------------------------------------------------------
# A .param file is what paddle.save writes for a state dict (a pickle of numpy arrays),
# plus a "meta" entry saying how to rebuild the network, so that an actor file alone is
# enough to replay a policy. `paddle.load(path)` still reads it.
PARAM_FORMAT = 1


def network_meta(actor: Actor, args: Args) -> dict[str, Any]:
    first, last = actor.net[0], actor.net[-1]
    return dict(format=PARAM_FORMAT, env_id=args.env_id, obs_dim=int(first.weight.shape[0]),
                n_actions=int(last.weight.shape[1]), hidden_sizes=list(args.hidden_sizes),
                activation=args.activation, norm_obs=args.norm_obs)


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place:
    a crash at any moment leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_state(layer: nn.Layer, path: Path, meta: dict[str, Any]) -> Path:
    state = {k: v for k, v in layer.state_dict().items()}
    atomic_write(path, lambda tmp: paddle.save({**state, "meta": meta}, tmp))
    return path


class _SafeUnpickler(pickle.Unpickler):
    """Admits numpy arrays and plain containers only: `paddle.load` would unpickle any
    object, so a crafted .param file could run code on the machine that loads it."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a .param file without executing anything from it."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}; pass the path of a saved .param file")
    try:
        with open(path, "rb") as f:
            state = _SafeUnpickler(f).load()
    except pickle.UnpicklingError as e:
        if "refusing" in str(e):
            raise UsageError(f"{path} contains code or objects a .param file never holds "
                             f"({e}); it was not loaded") from None
        raise UsageError(f"{path} is not a readable .param file ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise UsageError(f"{path} is empty, truncated or not a .param file ({type(e).__name__})") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path} is not a .param state dict")
    state.pop("StructuredToParameterName@@", None)
    return state


def load_actor(path: str | Path) -> Actor:
    """Rebuild an Actor (with its observation statistics) from an actor .param file."""
    state = load_state(path)
    meta = state.pop("meta", None)
    if not isinstance(meta, dict) or meta.get("role") != "actor":
        hint = " (it is a critic: pass the actor_net*.param beside it)" if \
            isinstance(meta, dict) and meta.get("role") == "critic" else ""
        raise UsageError(f"{path} is not an actor .param file of this project{hint}")
    obs_norm = ObsNorm(meta["obs_dim"], enabled=meta.get("norm_obs", False))
    actor = Actor(meta["obs_dim"], meta["n_actions"], tuple(meta["hidden_sizes"]),
                  meta["activation"], obs_norm)
    expected = {k: tuple(v.shape) for k, v in actor.state_dict().items()}
    if {k: tuple(np.shape(v)) for k, v in state.items()} != expected:
        raise UsageError(f"{path} is damaged: its weights do not match its network description")
    actor.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    actor.eval()
    actor.meta = meta
    return actor


# ---------------------------------------------------------------------------------------
# 8. Training loop
# ---------------------------------------------------------------------------------------
EVAL_SEED = 10_000        # seeds of the periodic evaluation that picks the best policy
HOLDOUT_SEED = 1_000_000  # default seeds of `eval`: episodes no training run selected on


def validate(args: Args) -> None:
    """Reject settings that cannot work, with a sentence that says how to fix them."""
    checks = [
        (args.total_timesteps > 0, "--total-timesteps must be positive"),
        (args.episodes >= 0, "--episodes must be >= 0 (0: no limit)"),
        (args.num_envs > 0 and args.num_steps > 0, "--num-envs and --num-steps must be positive"),
        (0 < args.gamma <= 1, "--gamma must be in (0, 1]"),
        (0 <= args.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (0 < args.clip < 1, "--clip must be in (0, 1), e.g. 0.2"),
        (args.update_epochs > 0, "--update-epochs must be positive"),
        (0 < args.batch_size <= args.num_envs * args.num_steps,
         "--batch-size must be positive and at most --num-envs x --num-steps"),
        (args.actor_lr > 0 and args.critic_lr > 0, "learning rates must be positive"),
        (args.max_grad_norm > 0, "--max-grad-norm must be positive"),
        (all(h > 0 for h in args.hidden_sizes) and args.hidden_sizes, "--hidden-sizes must be positive, e.g. 64,64"),
        (args.max_episode_steps is None or args.max_episode_steps >= 0, "--max-episode-steps must be >= 0"),
        (args.eval_every >= 0 and args.eval_episodes > 0, "--eval-every must be >= 0, --eval-episodes > 0"),
        (args.save_every >= 0 and args.keep_snapshots >= 0, "--save-every and --keep-snapshots must be >= 0"),
        (args.explore_bonus >= 0 and args.explore_bins > 0, "--explore-bonus must be >= 0, --explore-bins > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def train(args: Args) -> dict[str, Any]:
    """Train PPO as configured; returns a summary (paths, counters, best evaluation)."""
    from tqdm import tqdm
    from visualdl import LogWriter

    validate(args)
    paddle.seed(args.seed)
    envs = make_vec_env(args.env_id, args.num_envs, args.max_episode_steps)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    agent = PPO(obs_dim, n_actions, args)
    bonus = CountBonus(envs.single_observation_space.low, envs.single_observation_space.high,
                       args.explore_bins) if args.explore_bonus > 0 else None

    net_dir = Path(args.param_dir) / "net_param"
    run_name = f"{args.env_id}__{args.preset}__seed{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    writer = LogWriter(logdir=str(Path(args.logdir) / run_name), flush_secs=5)
    writer.add_text("config", json.dumps(dataclasses.asdict(args)), 0)

    obs, _ = envs.reset(seed=[args.seed * 1000 + i for i in range(args.num_envs)])
    ep_return, ep_len = np.zeros(args.num_envs), np.zeros(args.num_envs, np.int64)
    recent: deque[float] = deque(maxlen=20)
    global_step = episode = updates = 0
    best = dict(mean_return=-np.inf)
    next_eval = args.eval_every
    start = time.perf_counter()
    bar = tqdm(total=args.episodes or args.total_timesteps, unit="ep" if args.episodes else "step",
               disable=args.quiet, dynamic_ncols=True, mininterval=0.5)

    def done_training() -> bool:
        return global_step >= args.total_timesteps or 0 < args.episodes <= episode

    while not done_training():
        if args.anneal_lr:
            agent.set_lr_fraction(1.0 - global_step / args.total_timesteps)
        # -- collect a rollout ----------------------------------------------------------
        while not agent.buffer.full:
            action, logprob = agent.select_action(obs)
            value = agent.get_value(obs)
            next_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated
            final_obs = next_obs.copy()  # where each env really arrived, before autoreset
            if done.any():
                final_obs[done] = np.stack(info["final_obs"][done])
            train_reward = reward.astype(np.float32)
            if bonus is not None:
                beta = args.explore_bonus * max(0.0, 1.0 - global_step / args.explore_decay_steps)
                train_reward += bonus(final_obs, beta)
            # A time-limit cut is not an end: bootstrap with gamma * V(s_final).
            cut = truncated & ~terminated
            if cut.any():
                train_reward[cut] += args.gamma * agent.get_value(final_obs[cut])
            agent.store_transition(obs, action, logprob, train_reward, done, value)
            obs = next_obs
            global_step += args.num_envs
            ep_return += reward
            ep_len += 1
            for i in np.flatnonzero(done):
                writer.add_scalar("episode/return", float(ep_return[i]), global_step)
                writer.add_scalar("episode/length", int(ep_len[i]), global_step)
                writer.add_scalar("Steptime/steptime", int(ep_len[i]), episode)
                recent.append(float(ep_return[i]))
                episode += 1
                bar.update(1 if args.episodes else 0)
            ep_return[done], ep_len[done] = 0.0, 0
            if not args.episodes:
                bar.update(min(args.num_envs, bar.total - bar.n))
            if args.update_on_episode_end and done.any() and \
                    agent.buffer.size * args.num_envs >= args.batch_size:
                break
        # -- learn from it ----------------------------------------------------------------
        first_step = agent.training_step
        stats = agent.update(agent.get_value(obs))
        updates += 1
        for i, (a_loss, v_loss) in enumerate(zip(stats["action_loss"], stats["value_loss"])):
            writer.add_scalar("loss/action_loss", float(a_loss), first_step + i)
            writer.add_scalar("loss/value_loss", float(v_loss), first_step + i)
        sps = global_step / (time.perf_counter() - start)
        for tag, val in (("loss/entropy", stats["entropy"]), ("loss/approx_kl", stats["approx_kl"]),
                         ("loss/clip_fraction", stats["clip_fraction"]),
                         ("loss/explained_variance", stats["explained_variance"]),
                         ("train/learning_rate", agent.actor_optimizer.get_lr()),
                         ("train/steps_per_second", sps)):
            writer.add_scalar(tag, float(val), global_step)
        if args.save_every and updates % args.save_every == 0:
            agent.save_param(net_dir, f"_{updates:06d}")
            prune_snapshots(net_dir, args.keep_snapshots)
        # -- evaluate ---------------------------------------------------------------------
        if args.eval_every and (global_step >= next_eval or done_training()):
            next_eval = global_step + args.eval_every
            result = evaluate(make_policy(agent.actor_net), args.env_id, args.eval_episodes, EVAL_SEED)
            writer.add_scalar("eval/mean_return", result["mean_return"], global_step)
            writer.add_scalar("eval/success_rate", result["success_rate"], global_step)
            if result["mean_return"] > best["mean_return"]:
                best = dict(result, global_step=global_step)
                agent.save_param(net_dir, "_best")
            if args.target_return is not None and result["mean_return"] >= args.target_return:
                bar.write(f"eval mean return {result['mean_return']:.1f} >= target "
                          f"{args.target_return} at step {global_step}: stopping")
                break
        bar.set_postfix(ep=episode, ret=f"{np.mean(recent) if recent else float('nan'):.1f}",
                        sps=f"{sps:.0f}", refresh=False)

    bar.close()
    actor_path = agent.save_param(net_dir)
    if best["mean_return"] > -np.inf:  # ship the best evaluated policy, not merely the last
        for name in ("actor_net", "critic_net"):
            best_file = net_dir / f"{name}_best.param"
            atomic_write(net_dir / f"{name}.param", lambda tmp, src=best_file: shutil.copyfile(src, tmp))
    writer.close()
    envs.close()
    return dict(run_name=run_name, actor_path=str(actor_path), global_step=global_step,
                episodes=episode, updates=updates, training_step=agent.training_step,
                seconds=time.perf_counter() - start, best_eval=best)


def prune_snapshots(directory: Path, keep: int) -> None:
    """Keep only the `keep` newest numbered snapshot pairs."""
    for role in ("actor_net", "critic_net"):
        numbered = sorted(p for p in directory.glob(f"{role}_[0-9]*.param"))
        for old in numbered[:max(0, len(numbered) - keep)]:
            old.unlink()


# ---------------------------------------------------------------------------------------
# 9. Evaluation
# ---------------------------------------------------------------------------------------
def make_policy(actor: Actor, greedy: bool = True, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A callable mapping a batch of raw observations (N, obs_dim) to actions (N,)."""
    rng = np.random.default_rng(seed)
    return lambda obs: act(actor, obs, rng, greedy)[0]


def load_policy(path: str | Path, greedy: bool = True, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Load an actor .param file as a policy: raw observations (N, obs_dim) -> actions (N,).
    Any observation normalisation the actor learned is inside the file and applied."""
    return make_policy(load_actor(path), greedy, seed)


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_id: str = "MountainCar-v0",
             episodes: int = 100, seed: int = HOLDOUT_SEED) -> dict[str, float]:
    """Run `episodes` episodes of the standard env (its own time limit), all at once, with
    seeds seed, seed+1, ...; success = the episode reached a terminal state before the time
    limit (for MountainCar: the flag)."""
    envs = make_vec_env(env_id, episodes)
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


# ---------------------------------------------------------------------------------------
# 10. Command line
# ---------------------------------------------------------------------------------------
COMMANDS = ("train", "eval")


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of sizes, e.g. 64,64") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ppo_mountaincar.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    tp = sub.add_parser("train", help="train a policy (the default command)",
                        description="Train PPO. Flags left unset take the preset's value.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(Args):
        kw: dict[str, Any] = dict(default=None, help=f.metadata["help"])
        name = "--" + f.name.replace("_", "-")
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.type == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif f.type == "tuple[int, ...]":
            kw["type"] = _parse_sizes
        else:
            kw["type"] = {"int": int, "float": float, "str": str, "int | None": int,
                          "float | None": float}[f.type]
        kw["help"] += f" [default preset: {f.default if not isinstance(f.default, tuple) else ','.join(map(str, f.default))}]"
        tp.add_argument(name, **kw)
    ep = sub.add_parser("eval", help="evaluate a saved actor .param file",
                        description="Evaluate a saved actor on the standard env (its own time limit).")
    ep.add_argument("path", help="actor .param file, e.g. param/net_param/actor_net.param")
    ep.add_argument("--episodes", type=int, default=100, help="episodes to run")
    ep.add_argument("--seed", type=int, default=HOLDOUT_SEED, help="seed of the first episode; "
                    "the default set is one no training run selects on")
    ep.add_argument("--stochastic", action="store_true", help="sample actions instead of argmax")
    ep.add_argument("--env-id", default=None, help="env to evaluate on (default: the one in the file)")
    ep.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def args_from_cli(ns: argparse.Namespace) -> Args:
    """Preset values first, then every flag the user actually gave."""
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)
             if getattr(ns, f.name, None) is not None}
    preset = given.get("preset", "default")
    return Args(**{**PRESETS[preset], **given, "preset": preset})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS + ("-h", "--help-commands"):
        argv.insert(0, "train")  # bare flags train; --help shows the training flags
    try:
        ns = build_parser().parse_args(argv)
        if ns.command == "train":
            summary = train(args_from_cli(ns))
            print(f"trained {summary['global_step']} steps, {summary['episodes']} episodes in "
                  f"{summary['seconds']:.1f} s; policy: {summary['actor_path']}")
            if summary["best_eval"]["mean_return"] > -np.inf:
                b = summary["best_eval"]
                print(f"best evaluation: mean return {b['mean_return']:.1f} at step {b['global_step']}")
        elif ns.command == "eval":
            actor = load_actor(ns.path)
            env_id = ns.env_id or actor.meta["env_id"]
            result = evaluate(make_policy(actor, greedy=not ns.stochastic, seed=ns.seed),
                              env_id, ns.episodes, ns.seed)
            if ns.json:
                print(json.dumps(result))
            else:
                print(f"{env_id}, {ns.episodes} episodes: mean return {result['mean_return']:.1f} "
                      f"+/- {result['std_return']:.1f}, success {result['success_rate']:.0%}, "
                      f"mean steps {result['mean_steps']:.1f}")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
