"""A training checkpoint, `param/<run name>/checkpoint.ckpt`: everything needed to continue
a run, written (`write_checkpoint`), checked (`read_checkpoint`) and restored
(`restore_checkpoint`, `restore_envs`) here, side by side, in the same order. It is a
.param-style pickle, read with the same safe reader. Imports numpy, paddle, `errors`,
`param_files`, `network_files` and `settings`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .network_files import load_weights
from .param_files import PARAM_FORMAT, load_state, numpy_state, save_pickle
from .settings import validate

CHECKPOINT = "checkpoint.ckpt"
COUNTERS = ("global_step", "episodes_done", "rollouts", "gradient_steps", "next_eval")
# Settings that may change when a run is resumed; the rest come from the checkpoint.
RESUMABLE_FLAGS = {"total_timesteps", "episodes", "quiet", "device", "eval_every", "eval_episodes",
                   "target_return", "save_every", "keep_snapshots", "logdir"}


def write_checkpoint(path: Path, args: Any, run_name: str, agent: Any, bonus: Any, keeper: Any,
                     counters: dict[str, int], elapsed: float, envs: dict[str, Any] | None,
                     fresh_optimizer: bool) -> Path:
    """Weights, optimizer moments (none if Adam has not stepped yet), observation and
    exploration statistics, counters, the sampling RNG, the config, the evaluations and,
    where the envs can say, their state and open episodes."""
    state = dict(
        kind="checkpoint", format=PARAM_FORMAT, config=dataclasses.asdict(args), run_name=run_name,
        actor=numpy_state(agent.actor_net), critic=numpy_state(agent.critic_net),
        optimizer={} if fresh_optimizer else optimizer_state(agent.optimizer, agent.actor_net, agent.critic_net),
        counters=dict(counters, gradient_steps=agent.gradient_steps, next_eval=keeper.next_eval, elapsed=elapsed),
        best=keeper.best, history=keeper.history, rng=agent.rng.bit_generator.state,
        bonus_counts=None if bonus is None else bonus.counts, envs=envs)
    return save_pickle(path, state)


def read_checkpoint(path: str | Path, args_class: type) -> dict[str, Any]:
    """Read a checkpoint (safely, like every .param file) and check that it holds everything
    `restore_checkpoint` restores, of the right kinds, before anything is built from it.
    `args_class` is the script's `Args`: the config must be one of its instances."""
    state = load_state(path)
    if state.get("kind") != "checkpoint":
        raise UsageError(f"{path} is not a training checkpoint; pass param/<run name>/{CHECKPOINT}")
    kinds = dict(config=dict, run_name=str, actor=dict, critic=dict, optimizer=dict, counters=dict,
                 best=dict, history=list, rng=dict)
    wrong = next((k for k, kind in kinds.items() if not isinstance(state.get(k), kind)), None)
    config = state.get("config", {})
    if wrong is None and set(config) != {f.name for f in dataclasses.fields(args_class)}:
        wrong = "config (its settings are not this version's)"
    if wrong is None and not all(type(state["counters"].get(k)) is int and state["counters"][k] >= 0
                                 for k in COUNTERS):
        wrong = "counters"
    if wrong is None:
        try:
            validate(args_class(**{**config, "hidden_sizes": tuple(config["hidden_sizes"])}))
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


def resumed_config(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings with `changes`, which may only touch RESUMABLE_FLAGS."""
    fixed = sorted(k for k, v in changes.items() if k not in RESUMABLE_FLAGS and v != config.get(k))
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; "
                         "start a new run for other settings")
    return {**config, "hidden_sizes": tuple(config["hidden_sizes"]), **changes}


def restore_checkpoint(checkpoint: dict[str, Any], agent: Any, bonus: Any, keeper: Any) -> dict[str, Any]:
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


def envs_state(envs: Any, log: Any) -> dict[str, Any] | None:
    """The envs and their open episodes, for the checkpoint (None: these envs cannot say)."""
    if not hasattr(envs, "get_state"):
        return None
    return dict(state=envs.get_state(), ep_return=log.ep_return.copy(), ep_len=log.ep_len.copy())


def restore_envs(saved: dict[str, Any] | None, envs: Any, log: Any) -> np.ndarray | None:
    """Put the envs and their open episodes back as `envs_state` saw them; returns their
    observations (None: nothing saved, or these envs cannot be put back)."""
    if saved is None or not hasattr(envs, "set_state"):
        return None
    try:
        obs = envs.set_state(saved["state"])  # checks the cars first
        log.ep_return[:], log.ep_len[:] = saved["ep_return"], saved["ep_len"]
    except (KeyError, TypeError, ValueError):
        raise UsageError("the checkpoint's env state is damaged or for other envs; start a new run") from None
    return obs


def _rename_moments(state: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Optimizer state keys "<param name>_moment1_0" with the parameter name mapped by `names`
    (entries of unknown parameters are left out)."""
    out = {}
    for key, value in state.items():
        owner = next((n for n in names if key.startswith(n + "_")), None)
        if owner is not None:
            out[names[owner] + key[len(owner):]] = value
    return out


def _structured_names(actor: Any, critic: Any) -> dict[str, str]:
    """Paddle's auto-generated parameter names ("linear_3.w_0") -> "actor.net.0.weight"."""
    return {p.name: f"{role}.{name}" for role, layer in (("actor", actor), ("critic", critic))
            for name, p in layer.named_parameters()}


def optimizer_state(opt: Any, actor: Any, critic: Any) -> dict[str, np.ndarray]:
    """The optimizer's moments keyed by structured names ("actor.net.0.weight_moment1_0"):
    Paddle keys them by auto-generated parameter names, which depend on how many layers
    the process had created before, so they differ in a new process."""
    return {k: v.numpy() for k, v in _rename_moments(opt.state_dict(), _structured_names(actor, critic)).items()}


def restore_optimizer(opt: Any, saved: dict[str, np.ndarray], actor: Any, critic: Any) -> None:
    """Load moments saved by `optimizer_state` into `opt`, under this process's names."""
    import paddle
    names = {v: k for k, v in _structured_names(actor, critic).items()}
    opt.set_state_dict({k: paddle.to_tensor(v) for k, v in _rename_moments(saved, names).items()})
