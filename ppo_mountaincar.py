"""PPO on MountainCar-v0 in PaddlePaddle: the learner's script.

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

How to read it: from the top down, PPO in the order it happens: 1. configuration, 2. the
networks, 3. the rollout buffer with returns and advantages, 4. the exploration bonus,
5. the PPO agent and its clipped update, 6. the training loop. Everything that serves it
(the numpy MountainCar, .param files, logs, checkpoints, Ctrl-C, evaluation, figures,
`tune`, the command line) is in the package `ppo_toolbox` beside this file, which a reader
of the algorithm does not need to open.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

if __name__ == "__main__":  # the command line: a missing package, or a Ctrl-C while Paddle loads, is one line
    from ppo_toolbox.startup import check_packages, check_python, stop_quietly_while_starting
    check_python()  # first: an older Python parses this file, but fails on what follows
    stop_quietly_while_starting()
    check_packages()

# Before any arithmetic: numpy's BLAS on one thread (the matrices are small), and Paddle's
# MKL on its fast path on AMD CPUs, where it would take a slow one (ppo_toolbox/cpu.py).
from ppo_toolbox.cpu import set_math_library_defaults  # noqa: E402
set_math_library_defaults()
os.environ.setdefault("GLOG_minloglevel", "2")  # keep Paddle's C++ start-up chatter quiet
warnings.filterwarnings("ignore", message="No ccache found")  # Paddle warns at import
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from ppo_toolbox import settings  # noqa: E402
from ppo_toolbox.acting import NumpyNet  # noqa: E402
from ppo_toolbox.checkpoint import read_checkpoint, resumed_config  # noqa: E402
from ppo_toolbox.envs import make_vec_env  # noqa: E402
from ppo_toolbox.errors import UsageError  # noqa: E402
from ppo_toolbox.kernels import Linear  # noqa: E402
from ppo_toolbox.network_files import load_weights, network_meta, read_network  # noqa: E402
from ppo_toolbox.param_files import numpy_state, save_state  # noqa: E402
from ppo_toolbox.run import Run  # noqa: E402
from ppo_toolbox.run_state import optimizer_state, restore_optimizer  # noqa: E402
# The rest of the Python API the READMEs show, from the toolbox:
from ppo_toolbox.evaluation import evaluate, load_policy  # noqa: E402,F401
from ppo_toolbox.figures import plot_run  # noqa: E402,F401
from ppo_toolbox.replay import replay, show  # noqa: E402,F401


# ---------------------------------------------------------------------------------------
# 1. Configuration
# ---------------------------------------------------------------------------------------
def _flag(default: Any, help: str, **roles: Any) -> Any:
    """A dataclass field that also carries its --help text, its choices, and its roles where
    they are not the usual ones (ppo_toolbox/settings.py): `short`, its name in run names and
    VisualDL (at most 7 characters); `output`, it says where a run writes or how it reports,
    not what it learns; `resumable`, it may change on resume; `searchable=False`, `tune`
    leaves it alone; `column`, a column of VisualDL's HParams table."""
    return field(default=default, metadata={"help": help, **roles})


@dataclass
class Args:
    """Every setting of a training run. The defaults are the `default` preset."""

    # run
    preset: str = _flag("default", "hyperparameter preset: 'default' (learns fast), 'best' (the best "
                        "policy, in about 40 seconds), 'thorough' (the previous default's network, twice the "
                        "update compute) or 'tutorial' (the article's algorithm); explicit flags override it",
                        choices=("default", "best", "thorough", "tutorial"), searchable=False, column=True)
    env_id: str = _flag("MountainCar-v0", "any Gymnasium env with a vector observation "
                        "and discrete actions (CartPole-v1, Acrobot-v1, ...)", short="env", searchable=False,
                        column=True)
    seed: int = _flag(1, "seeds the environments, numpy and paddle", searchable=False, column=True)
    total_timesteps: int = _flag(150_000, "training budget in environment steps",
                                 short="steps", resumable=True, searchable=False, column=True)
    episodes: int = _flag(0, "stop after this many training episodes as well (0: no limit)",
                          short="eps", resumable=True, searchable=False)
    max_episode_steps: int | None = _flag(None, "training time limit per episode; 0 removes it (the "
                                          "tutorial's env.unwrapped); unset: the env's own", short="maxlen")
    device: str = _flag("cpu", "where the networks train: cpu (small MLPs are faster there), gpu, or auto "
                        "(gpu if this PaddlePaddle is a GPU build)", choices=("cpu", "gpu", "auto"),
                        output=True, resumable=True)
    fast_env: bool = _flag(True, "run MountainCar-v0 as one numpy-batched env (same physics "
                           "and seeds as Gymnasium's, much faster)", searchable=False)
    # rollout
    num_envs: int = _flag(16, "parallel environments", short="envs")
    num_steps: int = _flag(128, "steps per environment per rollout (the buffer capacity)", short="nsteps")
    update_on_episode_end: bool = _flag(False, "also update as soon as an episode ends and the buffer "
                                        "holds >= batch-size steps (the tutorial's schedule)", short="epupd")
    # PPO
    gamma: float = _flag(0.99, "discount factor")
    gae_lambda: float = _flag(0.98, "GAE lambda (1.0: Monte-Carlo returns, as in the tutorial)", short="lam")
    clip: float = _flag(0.2, "PPO ratio clip epsilon")
    update_epochs: int = _flag(10, "passes over each rollout", short="epochs")
    batch_size: int = _flag(512, "minibatch size", short="bs", column=True)
    actor_lr: float = _flag(3e-3, "Adam learning rate of the actor", short="alr", column=True)
    critic_lr: float = _flag(3e-3, "Adam learning rate of the critic", short="clr")
    anneal_lr: bool = _flag(False, "decay both learning rates linearly to 0 over the budget (off by default: "
                            "at this budget the policy still improves at the last update)", short="annlr")
    max_grad_norm: float = _flag(0.5, "clip the global norm of all gradients to this", short="gclip")
    ent_coef: float = _flag(0.08, "entropy bonus coefficient", short="ent", column=True)
    anneal_ent: bool = _flag(True, "decay the entropy coefficient linearly to 0 over the budget "
                             "(explore early, act precisely late)", short="annent")
    norm_adv: bool = _flag(True, "normalise advantages per minibatch", short="normadv")
    target_kl: float | None = _flag(None, "stop an update's epochs once approx KL exceeds this", short="kl")
    # networks
    hidden_sizes: tuple[int, ...] = _flag((64, 64), "hidden layer sizes, e.g. 128 or 64,64", short="h", column=True)
    activation: str = _flag("tanh", "hidden activation", choices=("tanh", "relu"), short="act")
    norm_obs: bool = _flag(True, "normalise observations with running statistics "
                           "(stored inside the actor .param)", short="normobs")
    # exploration
    explore_bonus: float = _flag(5.0, "count-based bonus beta/sqrt(N) on a grid over the "
                                 "observation box (0: off)", short="bonus")
    explore_bins: int = _flag(20, "grid cells per observation dimension for the bonus", short="bins")
    explore_decay_steps: int = _flag(100_000, "the bonus decays linearly to 0 by this step", short="bdecay")
    # evaluation during training
    eval_every: int = _flag(4096, "greedy evaluation every N env steps (0: off)",
                            short="evalint", resumable=True, searchable=False)
    eval_episodes: int = _flag(100, "episodes per periodic evaluation",
                               short="evaleps", resumable=True, searchable=False)
    target_return: float | None = _flag(None, "stop once a periodic evaluation reaches this",
                                        short="target", resumable=True, searchable=False)
    # output
    logdir: str = _flag("exp", "VisualDL log folder; each run writes to a sub-folder",
                        output=True, resumable=True)
    run_name: str | None = _flag(None, "the run's folder name under --param-dir and --logdir (unset: "
                                 "<preset>-s<seed>-<env tag>-<4 hex>__[<changed settings>__]<env>__<time>)",
                                 output=True)
    param_dir: str = _flag("param", "each run's policy, snapshots, checkpoint and figures go into "
                           "<param-dir>/<run name>/; the latest finished run's policy is copied to "
                           "<param-dir>/net_param/", output=True, resumable=True)
    save_every: int = _flag(50, "write a numbered snapshot every N updates (0: never)",
                            output=True, resumable=True)
    keep_snapshots: int = _flag(3, "numbered snapshots to keep", output=True, resumable=True)
    plots: bool = _flag(True, "draw the run's figures into <param-dir>/<run name>/img at the end",
                        output=True)
    quiet: bool = _flag(False, "no progress bar", output=True, resumable=True)


# Presets are configurations of the same code: only the values differ.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The default scaled up for precision: 5.3x the env steps from 4x the envs, minibatches
    # 8x larger (fewer gradient steps than the default, each on 8x the samples), the bonus
    # decaying over the first two thirds; a longer budget buys little for its time (the docs).
    "best": dict(num_envs=64, batch_size=4096, total_timesteps=800_000, explore_decay_steps=533_333,
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


def preset_args(name: str = "default", **overrides: Any) -> Args:
    """The settings of a preset with some fields changed, e.g. preset_args("tutorial", seed=2)."""
    if name not in PRESETS:
        raise UsageError(f"no preset '{name}'; choose one of {', '.join(PRESETS)}")
    return Args(**{**PRESETS[name], **overrides, "preset": name})


def changed_settings(args: Args) -> dict[str, Any]:
    """The training settings in which `args` differs from its preset (seed and env apart):
    what a run's name and VisualDL's HParams panel show first."""
    return settings.changed_settings(args, preset_args(args.preset) if args.preset in PRESETS else Args())


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
        layers.append(Linear(n_in, n_out))  # nn.Linear, its forward faster on a CPU
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


def load_actor(path: str | Path) -> Actor:
    """Rebuild an Actor (with its observation statistics) from an actor .param file."""
    return _load_net(path, "actor")


def load_critic(path: str | Path) -> Critic:
    """Rebuild a Critic from a critic .param file."""
    return _load_net(path, "critic")


def _load_net(path: str | Path, role: str) -> nn.Layer:
    meta, state = read_network(path, role)  # checked against its description (ppo_toolbox)
    sizes, obs_norm = tuple(meta["hidden_sizes"]), ObsNorm(meta["obs_dim"], enabled=meta["norm_obs"])
    net = Actor(meta["obs_dim"], meta["n_actions"], sizes, meta["activation"], obs_norm) if role == "actor" \
        else Critic(meta["obs_dim"], sizes, meta["activation"], obs_norm)
    load_weights(net, state, str(path))
    net.eval()
    return net


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

    def state(self) -> dict[str, Any]:  # for checkpoints and undoing a stopped rollout
        return dict(counts=self.counts.copy())

    def load_state(self, state: dict[str, Any]) -> None:
        self.counts[:] = state["counts"]


# ---------------------------------------------------------------------------------------
# 5. The PPO agent
# ---------------------------------------------------------------------------------------
def sample_actions(log_probs: np.ndarray, rng: np.random.Generator | None = None,
                   greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An action for each row of log pi(.|s) = log_softmax(logits), and its log pi(a|s).
    Greedy: argmax pi. Otherwise a draw from pi itself, a ~ Categorical(softmax(logits)), by
    inverse CDF: the first action whose cumulative probability reaches a uniform u. (The
    tutorial drew from softmax of the probabilities, a flatter distribution than pi.)"""
    if greedy:
        actions = log_probs.argmax(-1)
    else:
        u = rng.random((len(log_probs), 1))
        # the cumulative sum may end a rounding error below 1: never past the last action
        actions = np.minimum((u > np.cumsum(np.exp(log_probs), -1)).sum(-1), log_probs.shape[1] - 1)
    return actions, np.take_along_axis(log_probs, actions[:, None], -1)[:, 0]


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
        # An exact numpy copy of the actor for acting (ppo_toolbox.acting): a Paddle call per
        # env step would cost more than the arithmetic. Refreshed after each update.
        self.acting_actor = NumpyNet(self.actor_net)
        self.rng = np.random.default_rng(args.seed)
        self.ent_coef = args.ent_coef  # its value now (--anneal-ent decays it)
        self.gradient_steps = 0  # minibatch updates so far (the tutorial's training_step)

    # -- acting ---------------------------------------------------------------------
    def select_action(self, state: np.ndarray, greedy: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Sample actions for a batch of raw states; returns (actions, log pi(a|s))."""
        log_probs = self.acting_actor.log_probs(state)  # = log_softmax(actor_net.logits(state)), in numpy
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

    # -- its state, for checkpoints and undoing a stopped rollout (ppo_toolbox.run_state) ---
    def state(self) -> dict[str, Any]:
        """What learning changes: weights and observation statistics, Adam, the RNG, the steps."""
        return dict(actor=numpy_state(self.actor_net), critic=numpy_state(self.critic_net),
                    optimizer=optimizer_state(self.optimizer, self.actor_net, self.critic_net),
                    rng=self.rng.bit_generator.state, gradient_steps=self.gradient_steps)

    def load_state(self, state: dict[str, Any]) -> None:
        """Take back a `state()` (checked first by ppo_toolbox.checkpoint); drops a rollout under way."""
        load_weights(self.actor_net, state["actor"], "the checkpoint")
        load_weights(self.critic_net, state["critic"], "the checkpoint")
        restore_optimizer(self.optimizer, state["optimizer"], self.actor_net, self.critic_net)
        self.rng.bit_generator.state, self.gradient_steps = state["rng"], state["gradient_steps"]
        self.acting_actor.refresh()
        self.buffer.clear()


# ---------------------------------------------------------------------------------------
# 6. The training loop
# ---------------------------------------------------------------------------------------
def train(args: Args, checkpoint: dict[str, Any] | None = None,
          on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None,
          trusted_env: str | None = None) -> dict[str, Any]:
    """Train PPO as configured (or continue a checkpoint); returns a summary.
    `on_evaluation(global_step, result)` is called after each periodic evaluation and may
    return True to stop the run there (`tune` uses it to prune hopeless trials);
    `trusted_env` is an env id whose module Gymnasium may import (--allow-env-module).

    PPO's loop: collect a rollout with the current policy, update on it for a few epochs,
    log, evaluate now and then (keeping the best policy), save now and then; repeat. `Run`
    (ppo_toolbox.run) keeps the books; Ctrl-C ends the run where the rollout under way began."""
    settings.validate(args)
    settings.validate_for_env(args, trusted_env)
    device = settings.use_device(args.device)
    paddle.seed(args.seed)
    envs = make_vec_env(args.env_id, args.num_envs, args.max_episode_steps, args.fast_env, trusted_env)
    space = envs.single_observation_space
    agent = PPO(space.shape[0], int(envs.single_action_space.n), args)
    bonus = CountBonus(space.low, space.high, args.explore_bins) if args.explore_bonus > 0 else None
    with Run(args, agent, bonus, envs, changed_settings(args), device, checkpoint=checkpoint,
             on_evaluation=on_evaluation, trusted_env=trusted_env) as run:
        obs = run.first_observations(env_seeds(args, run.progress.rollouts))  # or a checkpoint's
        while not run.finished():
            with run.rollout():  # a stop in here undoes this rollout and ends the run
                agent.anneal(max(0.0, 1.0 - run.progress.global_step / args.total_timesteps))
                obs = collect_rollout(args, agent, envs, bonus, obs, run)  # 1. act
                stats = agent.update()                                     # 2. learn
                run.progress.rollouts += 1
                run.check_finite(stats)  # a NaN ends the run; the files on disk are the last good ones
                run.log_update(stats)                                      # 3. log
                if run.evaluation_due():
                    run.evaluate_and_keep_best()                           # 4. evaluate
                if run.save_due():
                    run.save()                                             # 5. save
        summary = run.finish()
    envs.close()
    return summary


def collect_rollout(args: Args, agent: PPO, envs: Any, bonus: CountBonus | None, obs: np.ndarray,
                    run: Run) -> np.ndarray:
    """Step every env with the current policy until the buffer is full (or, in the
    tutorial's schedule, an episode ends); returns the observations to go on from."""
    while not agent.buffer.full:
        action, logprob = agent.select_action(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = terminated | truncated
        arrived = arrival_states(next_obs, done, info)
        train_reward = reward.astype(np.float32)
        beta = args.explore_bonus * max(0.0, 1.0 - run.progress.global_step / args.explore_decay_steps)
        if bonus is not None and beta > 0:  # nothing to count once it has decayed
            train_reward += bonus(arrived, beta)
        agent.store_transition(obs, action, logprob, train_reward, arrived, terminated, done)
        obs = next_obs
        run.progress.global_step += args.num_envs
        run.record_step(reward, done)  # logs and counts the episodes that ended (the env's own reward)
        if args.update_on_episode_end and done.any() and agent.buffer.size * args.num_envs >= args.batch_size:
            break  # the tutorial's schedule: update at an episode's end
    return obs


def env_seeds(args: Args, rollouts: int) -> list[int]:
    """Seeds of the envs' first episodes (a resumed run starts new ones), drawn from the
    training seed and the rollout count into [2^31, 2^32): no evaluation episode starts there."""
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


def resume(path: str | Path, **changes: Any) -> dict[str, Any]:
    """Continue a run from its checkpoint, as `train --resume PATH` does (`changes`: e.g.
    total_timesteps=300_000), in the checkpoint's run folder, or, for a checkpoint kept
    elsewhere (a download), in a new one under --param-dir. Returns the summary, like `train`."""
    checkpoint = read_checkpoint(path, Args)
    return train(Args(**resumed_config(checkpoint["config"], changes, Args)), checkpoint)


if __name__ == "__main__":
    # The command line imports this module as `ppo_mountaincar`: let it find this one,
    # rather than run the file a second time as another module with other classes.
    sys.modules.setdefault("ppo_mountaincar", sys.modules["__main__"])
    from ppo_toolbox.cli import main
    sys.exit(main())
