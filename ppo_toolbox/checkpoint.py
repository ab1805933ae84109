"""A training checkpoint, `param/<run name>/checkpoint.ckpt`: everything needed to continue
a run, written (`write_checkpoint`), checked (`read_checkpoint`) and restored
(`restore_checkpoint`, `restore_envs`) here, side by side, in the same order. It is a
.param-style pickle, read with the same safe reader. Imports numpy, paddle, `errors`,
`param_files`, `network_files` and `settings`."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from .errors import UsageError
from .network_files import check_weights, expected_shapes, load_weights
from .param_files import PARAM_FORMAT, load_state, numpy_state, save_pickle
from .settings import MAX_STEPS, validate

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
    """Read a checkpoint (safely, like every .param file) and check everything in it, as
    strictly as a flag, before anything is built from it. `args_class` is the script's
    `Args`: the config must make one. The run continues where the file is: its folder, run
    name and log folder come from the file's place, never from paths written inside it."""
    if not Path(path).exists():
        raise UsageError(f"no such checkpoint: {path}; pass param/<run name>/{CHECKPOINT}")
    state = load_state(path)
    if state.get("kind") != "checkpoint":
        raise UsageError(f"{path} is not a training checkpoint; pass param/<run name>/{CHECKPOINT}")
    problem = checkpoint_problem(state, args_class)
    if problem is not None:
        raise UsageError(f"{path} is damaged or from another version (its {problem}); start a new run "
                         "or resume another checkpoint")
    net_dir = Path(path).resolve().parent
    param_dir, logdir = run_place(net_dir, state["config"])
    state["config"] = dict(state["config"], param_dir=param_dir, logdir=logdir, run_name=net_dir.name)
    state["run_name"], state["path"] = net_dir.name, str(net_dir / Path(path).name)
    return state


def run_place(net_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """(--param-dir, --logdir) of a resumed run: the folder that holds its run folder, and its
    log folder: where the run was started (the folder its relative --param-dir was taken
    from), under its relative --logdir; an absolute --logdir only if it already holds this
    run's records; else exp/ there. The file's own paths count only where they agree with
    where the file is, so that no checkpoint sends a run anywhere else."""
    def clean(p: PurePath) -> bool:
        return bool(p.parts) and not p.is_absolute() and ".." not in p.parts
    param_dir, saved = net_dir.parent, PurePath(config["param_dir"])
    base = param_dir.parent  # where a run was started, in the usual layout (param/, exp/)
    if clean(saved) and param_dir.parts[-len(saved.parts):] == saved.parts:
        base = Path(*param_dir.parts[:-len(saved.parts)])
    saved_log = Path(config["logdir"])
    if clean(saved_log):
        return str(param_dir), str(base / saved_log)
    own_records = saved_log.is_absolute() and any((saved_log / net_dir.name).glob("vdlrecords.*"))
    return str(param_dir), str(saved_log if own_records else base / "exp")


EVALUATION = ("mean_return", "std_return", "success_rate", "mean_steps", "episodes", "global_step")


def checkpoint_problem(state: dict[str, Any], args_class: type) -> str | None:
    """What is wrong in a checkpoint (None: nothing), entry by entry in `write_checkpoint`'s
    order, so that restoring it cannot fail half-way."""
    kinds = dict(config=dict, run_name=str, actor=dict, critic=dict, optimizer=dict, counters=dict,
                 best=dict, history=list, rng=dict)
    wrong = next((k for k, kind in kinds.items() if not isinstance(state.get(k), kind)), None)
    if wrong is not None:
        return f"{wrong} entry"
    config = state["config"]
    if set(config) != {f.name for f in dataclasses.fields(args_class)}:
        return "config (its settings are not this version's)"
    if not isinstance(config["hidden_sizes"], (list, tuple)):
        return "config (--hidden-sizes is not a list)"
    try:
        args = args_class(**{**config, "hidden_sizes": tuple(config["hidden_sizes"])})
        validate(args)
    except UsageError as e:
        return f"config ({e})"
    first = state["actor"].get("net.0.weight")
    if not isinstance(first, np.ndarray) or first.ndim != 2:
        return "actor weights"
    last = state["actor"].get(f"net.{2 * len(args.hidden_sizes)}.weight")
    meta = dict(obs_dim=first.shape[0], hidden_sizes=list(args.hidden_sizes),
                n_actions=last.shape[-1] if isinstance(last, np.ndarray) and last.ndim == 2 else 0)
    for role in ("actor", "critic"):
        try:
            check_weights(state[role], expected_shapes(meta, role), "the checkpoint")
        except UsageError:
            return f"{role} weights"
    if state["optimizer"] and not _moments_fit(state["optimizer"], state["actor"], state["critic"]):
        return "optimizer state"
    counters = state["counters"]
    if set(counters) != {*COUNTERS, "elapsed"} or not all(type(counters[k]) is int and 0 <= counters[k] <= 10**15
                                                          for k in COUNTERS):
        return "counters"
    if type(counters["elapsed"]) not in (int, float) or not 0 <= counters["elapsed"] < 1e12:
        return "counters"
    best = state["best"]
    if not (best == {"mean_return": -np.inf} or _is_evaluation(best)):
        return "best evaluation"
    if not all(_is_evaluation(h, "seconds") for h in state["history"]):
        return "evaluations"
    if not _is_rng_state(state["rng"]):
        return "RNG state"
    counts, cells = state.get("bonus_counts"), args.explore_bins ** meta["obs_dim"]
    if not (counts is None if args.explore_bonus == 0 else isinstance(counts, np.ndarray) and
            counts.dtype == np.int64 and counts.shape == (cells,) and (counts >= 0).all()
            and (counts <= MAX_STEPS).all()):  # no more than steps; near 2^63 one more wraps around
        return "exploration counts"
    if not _envs_fit(state.get("envs"), args.num_envs):
        return "env state"
    return None


def _is_evaluation(d: Any, *extra: str) -> bool:
    """An evaluation's numbers, all finite; success_rate is None in an env with no success."""
    return (isinstance(d, dict) and set(d) == {*EVALUATION, *extra} and
            all(type(v) in (int, float) and math.isfinite(v) or k == "success_rate" and v is None
                for k, v in d.items()))


def _is_rng_state(state: Any) -> bool:
    try:
        np.random.default_rng().bit_generator.state = state
        return True
    except Exception:  # noqa: BLE001 - numpy says what it does not take in its own ways
        return False


def _moments_fit(saved: dict[str, Any], actor: dict[str, Any], critic: dict[str, Any]) -> bool:
    """Adam's moments of every parameter, of its shape, and the powers of its betas."""
    expected = {}
    for role, weights in (("actor", actor), ("critic", critic)):
        for name, w in weights.items():
            if not name.startswith("obs_norm."):
                for moment, shape in (("moment1", w.shape), ("moment2", w.shape), ("beta1_pow_acc", (1,)),
                                      ("beta2_pow_acc", (1,))):
                    expected[f"{role}.{name}_{moment}_0"] = shape
    return set(saved) == set(expected) and all(
        isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == expected[k] and np.isfinite(v).all()
        for k, v in saved.items())


def _envs_fit(saved: Any, num_envs: int) -> bool:
    """None, or the numpy MountainCar's cars and their open episodes, one per env."""
    if saved is None:
        return True
    try:
        cars = saved["state"]
        arrays = [(cars["pos"], np.float64), (cars["vel"], np.float64), (cars["elapsed"], np.int64),
                  (saved["ep_return"], np.float64), (saved["ep_len"], np.int64)]
        return (set(saved) == {"state", "ep_return", "ep_len"} and set(cars) == {"pos", "vel", "elapsed", "rngs"}
                and all(isinstance(a, np.ndarray) and a.dtype == t and a.shape == (num_envs,) for a, t in arrays)
                and np.isfinite(cars["pos"]).all() and np.isfinite(cars["vel"]).all()
                and (np.abs(saved["ep_return"]) <= MAX_STEPS).all() and (0 <= saved["ep_len"]).all()
                and (saved["ep_len"] <= MAX_STEPS).all()  # MountainCar's: -1 a step
                and isinstance(cars["rngs"], list) and len(cars["rngs"]) == num_envs
                and all(_is_rng_state(r) for r in cars["rngs"]))
    except (KeyError, TypeError):
        return False


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
