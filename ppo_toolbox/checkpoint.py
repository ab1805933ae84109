"""A training checkpoint, `param/<run name>/checkpoint.ckpt`: a run's state (what its parts
say it is: run_state.py) in one file, written (`write_checkpoint`), checked
(`read_checkpoint`) and placed (`run_place`) here.

The format: one safetensors file. The arrays (weights, Adam's moments, the bonus counts, the
cars) are its tensors, named by their place in the state ("agent/actor/net.0.weight"); the
rest (config, counters, RNG states, evaluations) is one JSON text in its header's metadata,
under "state", beside a SHA-256 of it all. One file, so that a checkpoint is written by one
atomic rename and named by one path; safetensors, so that it holds no code and any
safetensors tool opens it. Read as a grammar, each step bounded before the next: the file's
size and the header's 8-byte length; the header (JSON of at most MAX_HEADER bytes, numbers
of at most 40 digits, no NaN); each tensor (float32, float64 or int64, at most 2 dimensions,
inside the file); the state's JSON; the SHA-256; every value by type and range against the
config. A pickle (older versions' checkpoints) is refused in one line.

A run folder holds the lock file (`.lock`) a run makes when it claims the folder and leaves
there. A checkpoint kept anywhere else (a download) is never written to: its run continues
in a new run folder under --param-dir.

Imports numpy, safetensors, `errors`, `network_files`, `param_files` (writing), `run_state`
and `settings`."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import stat
import sys
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from .errors import UsageError
from .network_files import MAX_ACTIONS, MAX_OBS_DIM, check_weights, expected_shapes
from .run_folder import LOCK, NONBLOCK, is_run_folder
from .run_state import HasState
from .settings import MAX_BONUS_CELLS, MAX_ENVS, MAX_EVAL_EPISODES, MAX_STEPS, MAX_WEIGHTS, validate, with_role

CHECKPOINT = "checkpoint.ckpt"
FORMAT = 3  # 1, 2: a pickle (refused); 3: safetensors with the state's JSON in its metadata
MAX_JSON = 2**24    # the state's JSON: the config, RNG states, and ~80,000 evaluations
MAX_HEADER = 2 * MAX_JSON + 2**20  # that JSON as one escaped string, and the tensors' entries
# two networks of MAX_WEIGHTS float32 weights (a quarter more for a wide first layer), each
# with Adam's two moments, the bonus counts and the cars
MAX_BYTES = 8 + MAX_HEADER + 6 * 5 * MAX_WEIGHTS + 8 * MAX_BONUS_CELLS + 40 * MAX_ENVS + 2**20
DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


# -- writing -----------------------------------------------------------------------------
def write_checkpoint(path: Path, config: dict[str, Any], run_name: str, parts: dict[str, HasState | None],
                     elapsed: float) -> Path:
    """The config, the run's name and time, and the state of each of `parts` (None: none)."""
    return save_file(path, dict(kind="checkpoint", format=FORMAT, config=config, run_name=run_name, elapsed=elapsed,
                                **{name: None if part is None else part.state() for name, part in parts.items()}))


def save_file(path: Path, state: dict[str, Any]) -> Path:
    """Write a state (a tree of dicts, arrays and JSON values) as a checkpoint file, atomically."""
    from safetensors.numpy import save
    from .param_files import atomic_write
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_split(state, "", arrays), allow_nan=False, separators=(",", ":"))
    blob = save(arrays, metadata={"state": text, "sha256": digest(text, arrays)})
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))
    return path


def _split(tree: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """`tree` without its arrays, which go into `arrays` under their path ("agent/actor/net.0.weight")."""
    if isinstance(tree, np.ndarray):
        arrays[prefix.rstrip("/")] = np.ascontiguousarray(tree)
        return None
    if isinstance(tree, dict):
        kept = {k: _split(v, f"{prefix}{k}/", arrays) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if not isinstance(tree[k], np.ndarray)}
    return tree


def digest(text: str, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the state's JSON and of every array (name, dtype, shape, bytes): a damaged copy is told."""
    h = hashlib.sha256(text.encode())
    for name in sorted(arrays):
        h.update(f"\0{name}\0{arrays[name].dtype.str}{arrays[name].shape}\0".encode())
        h.update(np.ascontiguousarray(arrays[name]))
    return h.hexdigest()


# -- reading -----------------------------------------------------------------------------
def read_checkpoint(path: str | Path, args_class: type) -> dict[str, Any]:
    """Read a checkpoint and check everything in it, as strictly as a flag, before anything
    is built from it. `args_class` is the script's `Args`: the config must make one. The run
    continues where the file is when that is a run folder; otherwise in a new run folder
    under --param-dir (`run_place`). Never from paths written inside the file."""
    path = Path(path)
    state = load_file(path)
    config, missing = _config(state, args_class, path)
    problem = checkpoint_problem(state, args_class)
    if problem is not None:
        raise UsageError(f"{path} is damaged or from another version (its {problem}); start a new run "
                         "or resume another checkpoint")
    for name in missing:
        print(f"note: {path} was written before --{name.replace('_', '-')} existed: it takes its default "
              f"{config[name]!r}", file=sys.stderr)
    folder = path.resolve().parent
    if is_run_folder(folder):
        param_dir, logdir = run_place(folder, config)
        state["config"] = dict(config, param_dir=param_dir, logdir=logdir, run_name=folder.name)
        state["run_name"], state["path"] = folder.name, str(folder / path.name)
    else:  # e.g. ~/Downloads: nothing is written there; a new run folder takes the run
        print(f"note: {folder} is not a run folder (it has no {LOCK}); nothing is written there: the run "
              "continues in a new run folder under --param-dir", file=sys.stderr)
        defaults = {f.name: f.default for f in dataclasses.fields(args_class)}
        state["config"] = dict(config, param_dir=defaults["param_dir"], logdir=defaults["logdir"],
                               run_name=state["run_name"])
        state["path"] = None
    return state


def load_file(path: Path) -> dict[str, Any]:
    """A checkpoint file's state with its arrays in place (its values not checked yet); a
    refusal in one line for a file outside the format."""
    from safetensors.numpy import load
    try:
        fd = os.open(path, os.O_RDONLY | NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise UsageError(f"no such checkpoint: {path}; pass param/<run name>/{CHECKPOINT}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO (reading one would wait forever), a device
        os.close(fd)
        raise UsageError(f"{path} is not a regular file; pass param/<run name>/{CHECKPOINT}")
    with os.fdopen(fd, "rb") as f:
        head = f.read(9)  # the header's length, and its JSON's "{"
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") and head[8:] != b"{":
            if path.suffix == ".param":  # a pickle: a network
                raise UsageError(f"{path} is not a training checkpoint but a network; "
                                 f"pass param/<run name>/{CHECKPOINT}")
            raise UsageError(f"{path} is a checkpoint of an older version of this program (a pickle), which this "
                             "version does not read; start a new run (that version's .param files still load)")
        n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
        blob = head + f.read(info.st_size - 9) if info.st_size <= MAX_BYTES and 0 < n <= MAX_HEADER else b""
    try:
        if not 0 < n <= min(MAX_HEADER, len(blob) - 8) or len(blob) != info.st_size:
            raise ValueError(f"its size or header length is not a checkpoint's ({info.st_size:,} bytes)")
        header = _json(blob[8:8 + n], MAX_HEADER)
        _check_tensors(header, len(blob) - 8 - n)
        meta = header.get("__metadata__")
        text = meta.get("state") if isinstance(meta, dict) else None
        if not isinstance(text, str):
            raise ValueError("no state in its header")
        state = _json(text.encode(), MAX_JSON)
        arrays = load(blob)
        if meta.get("sha256") != digest(text, arrays):
            raise ValueError("its checksum does not match its content: use another copy")
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{path} is damaged or not a checkpoint ({str(e)[:100]}); "
                         f"pass param/<run name>/{CHECKPOINT}") from None
    except Exception as e:  # noqa: BLE001 - safetensors' own refusal of a layout
        raise UsageError(f"{path} is damaged (safetensors: {str(e)[:80]}); "
                         f"pass param/<run name>/{CHECKPOINT}") from None
    if not isinstance(state, dict) or state.get("kind") != "checkpoint" or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not a training checkpoint of this version; pass param/<run name>/{CHECKPOINT}")
    for name, array in arrays.items():
        if not _put(state, name.split("/"), array):  # read-only: whoever takes it copies it
            raise UsageError(f"{path} is damaged (its tensor {name[:60]!r} has no place in its state); "
                             "start a new run or resume another checkpoint")
    return state


def _json(data: bytes, cap: int) -> Any:
    """JSON of at most `cap` bytes, its integers of at most 40 digits and no NaN or Infinity:
    a bounded parse (a long integer would take quadratic time)."""
    def integer(s: str) -> int:
        if len(s) > 40:
            raise ValueError("a number of more than 40 digits")
        return int(s)

    def constant(s: str) -> None:
        raise ValueError(f"{s} where a number belongs")
    if len(data) > cap:
        raise ValueError("its JSON is too long")
    return json.loads(data.decode("utf-8"), parse_int=integer, parse_constant=constant)


def _check_tensors(header: Any, data_bytes: int) -> None:
    """A safetensors header's tensor entries: each float32, float64 or int64 of at most 2
    dimensions, its bytes inside the file; at most 4,096 of them."""
    if not isinstance(header, dict) or len(header) > 4096:
        raise ValueError("its header is not a table of tensors")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}
                and entry["dtype"] in DTYPES and isinstance(entry["shape"], list) and len(entry["shape"]) <= 2
                and all(type(d) is int and 0 <= d <= data_bytes for d in entry["shape"])
                and isinstance(entry["data_offsets"], list) and len(entry["data_offsets"]) == 2
                and all(type(o) is int for o in entry["data_offsets"])):
            raise ValueError(f"tensor {name[:60]!r} is not float32, float64 or int64 of at most 2 dimensions")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= data_bytes or \
                end - begin != math.prod(entry["shape"]) * np.dtype(DTYPES[entry["dtype"]]).itemsize:
            raise ValueError(f"tensor {name[:60]!r} lies outside the file")


def _put(tree: dict[str, Any], keys: list[str], array: np.ndarray) -> bool:
    """Put an array at its path in the state; False if the path leads nowhere or is taken."""
    for key in keys[:-1]:
        tree = tree.get(key)
        if not isinstance(tree, dict):
            return False
    if keys[-1] in tree:
        return False
    tree[keys[-1]] = array
    return True


def _config(state: dict[str, Any], args_class: type, path: Path) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's settings, completed: a setting this version added takes its default
    (returned, to be noted); one this version does not know is refused (a newer version's)."""
    config = state.get("config")
    if not isinstance(config, dict):
        raise UsageError(f"{path} is damaged (its config is not a table of settings); start a new run")
    fields = {f.name: f for f in dataclasses.fields(args_class)}
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise UsageError(f"{path} was written by a newer version of this program (its setting "
                         f"{str(unknown[0])[:40]!r} is unknown here); resume it with that version, or start a new run")
    missing = [name for name in fields if name not in config]
    defaults = {name: fields[name].default if fields[name].default is not dataclasses.MISSING
                else fields[name].default_factory() for name in missing}  # type: ignore[misc]
    state["config"] = config = dict(config, **defaults)
    return config, missing


# -- checking ----------------------------------------------------------------------------
EVALUATION = dict(mean_return=(-1e9, 1e9), std_return=(0, 1e9), success_rate=(0, 1), mean_steps=(0, MAX_STEPS),
                  episodes=(1, MAX_EVAL_EPISODES), global_step=(0, 10**15))
COUNTERS = ("global_step", "episodes_done", "rollouts")


def checkpoint_problem(state: dict[str, Any], args_class: type) -> str | None:
    """What is wrong in a checkpoint's state (None: nothing), part by part, so that loading
    it cannot fail half-way. Types first, then ranges, then shapes against the config."""
    kinds = dict(config=dict, run_name=str, counters=dict, agent=dict, keeper=dict)
    wrong = next((k for k, kind in kinds.items() if not isinstance(state.get(k), kind)), None)
    if wrong is not None:
        return f"{wrong} entry"
    config = state["config"]
    if not isinstance(config["hidden_sizes"], (list, tuple)):
        return "config (--hidden-sizes is not a list)"
    try:
        args = args_class(**{**config, "hidden_sizes": tuple(config["hidden_sizes"])})
        validate(args)
        validate(dataclasses.replace(args, run_name=state["run_name"]))
    except UsageError as e:
        return f"config ({e})"
    progress = state["counters"]
    if set(progress) != set(COUNTERS) or not all(_number(progress[k], 0, 10**15, int) for k in COUNTERS):
        return "counters"
    if not _number(state.get("elapsed"), 0, 1e12):
        return "elapsed time"
    problem = _agent_problem(state["agent"], args)
    if problem is not None:
        return problem
    keeper = state["keeper"]
    if not (set(keeper) == {"best", "history", "next_eval"} and _number(keeper["next_eval"], 0, 10**15, int)):
        return "evaluation schedule"
    if not (keeper["best"] == {} or _is_evaluation(keeper["best"])):
        return "best evaluation"
    if not (isinstance(keeper["history"], list) and all(_is_evaluation(h, "seconds") for h in keeper["history"])):
        return "evaluations"
    obs_dim = state["agent"]["actor"]["net.0.weight"].shape[0]
    if not _bonus_fits(state.get("bonus"), args, obs_dim):
        return "exploration counts"
    if not _envs_fit(state.get("envs"), args.num_envs):
        return "env state"
    return None


def _number(x: Any, low: float, high: float, kind: type | tuple[type, ...] = (int, float)) -> bool:
    """`x` a number of `kind` (never a bool), finite, in [low, high]."""
    return type(x) in (kind if isinstance(kind, tuple) else (kind,)) and math.isfinite(x) and low <= x <= high


def _is_evaluation(d: Any, *extra: str) -> bool:
    """An evaluation's numbers, each in its range; success_rate is None in an env with no success."""
    ranges = dict(EVALUATION, **{k: (0, 1e12) for k in extra})
    return (isinstance(d, dict) and set(d) == set(ranges) and
            all(_number(v, *ranges[k]) or k == "success_rate" and v is None for k, v in d.items()))


def _agent_problem(agent: dict[str, Any], args: Any) -> str | None:
    """The script's `PPO.state()`: weights of the configured network, Adam's moments (none
    before its first step), the sampling RNG and the count of gradient steps."""
    if set(agent) != {"actor", "critic", "optimizer", "rng", "gradient_steps"} or \
            not all(isinstance(agent[k], dict) for k in ("actor", "critic", "optimizer")):
        return "agent entry"
    first = agent["actor"].get("net.0.weight")
    last = agent["actor"].get(f"net.{2 * len(args.hidden_sizes)}.weight")
    if not (all(isinstance(w, np.ndarray) and w.ndim == 2 for w in (first, last))
            and 0 < first.shape[0] <= MAX_OBS_DIM and 0 < last.shape[1] <= MAX_ACTIONS):
        return "actor weights"
    meta = dict(obs_dim=first.shape[0], n_actions=last.shape[1], hidden_sizes=list(args.hidden_sizes))
    for role in ("actor", "critic"):
        try:
            check_weights(agent[role], expected_shapes(meta, role), "the checkpoint")
        except UsageError:
            return f"{role} weights"
    if agent["optimizer"] and not _moments_fit(agent["optimizer"], agent["actor"], agent["critic"]):
        return "optimizer state"
    if not _is_rng_state(agent["rng"]):
        return "RNG state"
    if not _number(agent["gradient_steps"], 0, 10**15, int):
        return "counters"
    return None


def _is_rng_state(s: Any) -> bool:
    """numpy's PCG64 state, as `bit_generator.state` says it (no other generator is used)."""
    return (isinstance(s, dict) and set(s) == {"bit_generator", "state", "has_uint32", "uinteger"}
            and s["bit_generator"] == "PCG64" and isinstance(s["state"], dict) and set(s["state"]) == {"state", "inc"}
            and all(_number(v, 0, 2**128 - 1, int) for v in s["state"].values())
            and _number(s["has_uint32"], 0, 1, int) and _number(s["uinteger"], 0, 2**32 - 1, int))


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


def _bonus_fits(saved: Any, args: Any, obs_dim: int) -> bool:
    """None without a bonus, else the count of every cell of the grid."""
    if args.explore_bonus == 0:
        return saved is None
    counts = saved.get("counts") if isinstance(saved, dict) and set(saved) == {"counts"} else None
    return (isinstance(counts, np.ndarray) and counts.dtype == np.int64
            and counts.shape == (args.explore_bins ** obs_dim,) and bool((counts >= 0).all())
            and bool((counts <= MAX_STEPS).all()))  # no more than steps; near 2^63 one more wraps around


def _envs_fit(saved: Any, num_envs: int) -> bool:
    """None (envs that cannot say), or the numpy MountainCar's cars and their open episodes, one per env."""
    if saved is None:
        return True
    if not (isinstance(saved, dict) and set(saved) == {"cars", "ep_return", "ep_len"}
            and isinstance(saved["cars"], dict) and set(saved["cars"]) == {"pos", "vel", "elapsed", "rngs"}):
        return False
    cars = saved["cars"]
    arrays = [(cars["pos"], np.float64), (cars["vel"], np.float64), (cars["elapsed"], np.int64),
              (saved["ep_return"], np.float64), (saved["ep_len"], np.int64)]
    return (all(isinstance(a, np.ndarray) and a.dtype == t and a.shape == (num_envs,) for a, t in arrays)
            and all(np.isfinite(a).all() and (np.abs(a) <= MAX_STEPS).all() for a, _ in arrays)
            and bool((saved["ep_len"] >= 0).all())
            and isinstance(cars["rngs"], list) and len(cars["rngs"]) == num_envs
            and all(_is_rng_state(r) for r in cars["rngs"]))


# -- where a resumed run goes --------------------------------------------------------------
def run_place(net_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """(--param-dir, --logdir) of a run resumed in its run folder: the folder that holds its
    run folder, and its log folder: where the run was started (the folder its relative
    --param-dir was taken from), under its relative --logdir; an absolute --logdir only if it
    already holds this run's records; else exp/ there. The file's own paths count only where
    they agree with where the file is, so that no checkpoint sends a run anywhere else."""
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


def resumed_config(config: dict[str, Any], changes: dict[str, Any], args_class: type) -> dict[str, Any]:
    """A checkpoint's settings with `changes`, which may only touch the resumable settings of
    `args_class` (the script's `Args`)."""
    resumable = with_role(args_class, "resumable")
    fixed = sorted(k for k, v in changes.items() if k not in resumable and v != config.get(k))
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; "
                         "start a new run for other settings")
    return {**config, "hidden_sizes": tuple(config["hidden_sizes"]), **changes}
