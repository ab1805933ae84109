"""A network's .param file: the description written beside its weights (`network_meta`),
checked before anything is built from it, the weights checked against it, and the
tutorial's own files (no description) recognised by their layer names. Reading gives a
`NetworkFile`: plain arrays and a checked description, from which the script builds its
`Actor` or `Critic` and the toolbox a `NumpyNet`. Imports numpy, paddle, `errors`,
`settings` and `param_files`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import UsageError
from .param_files import MAX_NETWORK_BYTES, PARAM_FORMAT, load_state
from .settings import MAX_LAYERS, MAX_WEIGHTS, network_weights

MAX_OBS_DIM, MAX_ACTIONS = 4096, 4096  # what a file may describe
# The tutorial saved `paddle.save(actor.state_dict())` of its own layers: fc1 -> ReLU ->
# action_head (softmax), and fc1 -> ReLU -> state_value; no meta entry, no normalisation.
TUTORIAL_LAYERS = {"actor": ("fc1", "action_head"), "critic": ("fc1", "state_value")}
# Classic-control envs by (observation size, actions), to name the env a tutorial file was for.
KNOWN_ENVS = {(2, 3): "MountainCar-v0", (4, 2): "CartPole-v1", (6, 3): "Acrobot-v1"}


class NetworkFile(NamedTuple):
    """A checked network file: its description and its arrays (under the script's layer names)."""

    meta: dict[str, Any]             # env_id (None: the file does not say), obs_dim, n_actions, ...
    state: dict[str, np.ndarray]


def network_meta(actor: Any, args: Any) -> dict[str, Any]:
    """How to rebuild the networks: env, sizes, activation, normalisation."""
    first, last = actor.net[0], actor.net[-1]
    return dict(format=PARAM_FORMAT, env_id=args.env_id, obs_dim=int(first.weight.shape[0]),
                n_actions=int(last.weight.shape[1]), hidden_sizes=list(args.hidden_sizes),
                activation=args.activation, norm_obs=args.norm_obs)


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


def expected_shapes(meta: dict[str, Any], role: str) -> dict[str, tuple[int, ...]]:
    """The arrays of the script's network that `meta` describes, by name: the observation
    statistics, then each Linear layer of the MLP (index 2i: activations sit between them)."""
    outputs = meta["n_actions"] if role == "actor" else 1
    sizes = [meta["obs_dim"], *meta["hidden_sizes"], outputs]
    shapes = {"obs_norm.mean": (sizes[0],), "obs_norm.var": (sizes[0],), "obs_norm.count": (1,)}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"net.{2 * i}.weight"], shapes[f"net.{2 * i}.bias"] = (n_in, n_out), (n_out,)
    return shapes


def check_weights(state: dict[str, Any], expected: dict[str, tuple[int, ...]], source: str) -> None:
    """Every name, shape and dtype as expected (float32), and every value finite."""
    given = {k: (v.shape, v.dtype.name) if isinstance(v, np.ndarray) else None
             for k, v in state.items() if k != "StructuredToParameterName@@"}
    if given != {k: (shape, "float32") for k, shape in expected.items()}:
        raise UsageError(f"{source} is damaged or for another network: its weights do not "
                         "match the network it describes")
    if not all(np.isfinite(state[k]).all() for k in expected):
        raise UsageError(f"{source} is damaged: it holds NaN or infinite weights")


def load_weights(layer: Any, state: dict[str, Any], source: str) -> None:
    """Copy arrays into a live `layer`, after checking them against its own state dict."""
    import paddle
    check_weights(state, {k: tuple(v.shape) for k, v in layer.state_dict().items()}, source)
    layer.set_state_dict({k: paddle.to_tensor(state[k]) for k in layer.state_dict()})


def read_network(path: str | Path, role: str, note: bool = True) -> NetworkFile:
    """Read and check an actor or critic .param file (the project's or the tutorial's; `note`:
    say so on stderr when it is the tutorial's, once it has passed every check)."""
    state = load_state(path, MAX_NETWORK_BYTES)
    meta = state.pop("meta", None)
    tutorial = meta is None and tutorial_meta(state, role) is not None
    if tutorial:
        meta, state = tutorial_meta(state, role), tutorial_to_ours(state)
    if not isinstance(meta, dict) or meta.get("role") != role:
        raise UsageError(f"{path} is not {'an' if role == 'actor' else 'a'} {role} .param file of this project"
                         f"{other_role_hint(state, meta, role)}")
    problem = check_network_meta(meta, role, Path(path).stat().st_size)
    if problem:
        raise UsageError(f"{path} is damaged: {problem}")
    check_weights(state, expected_shapes(meta, role), str(path))
    if tutorial and note:
        print(f"note: read {path} as a file of the original tutorial ({meta['hidden_sizes'][0]} ReLU "
              "units, no observation normalisation; such files carry no checksum, so damage to them "
              "cannot be detected)", file=sys.stderr)
    return NetworkFile({**meta, "env_id": meta.get("env_id")}, state)


def other_role_hint(state: dict[str, Any], meta: Any, role: str) -> str:
    """What to pass instead, when the file is the other network of a pair (ours or the tutorial's)."""
    other = "critic" if role == "actor" else "actor"
    whose = ("" if isinstance(meta, dict) and meta.get("role") == other else
             " of the original tutorial" if meta is None and tutorial_meta(state, other) is not None else None)
    if whose is None:
        return ""
    return f" (it is {'an' if other == 'actor' else 'a'} {other} file{whose}: pass the {role}_net*.param beside it)"


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
    """The tutorial's layers under this project's names, `net.0` (first) and `net.2`
    (output), with the identity observation statistics of a network that normalises nothing."""
    rename = {"fc1": "net.0", "action_head": "net.2", "state_value": "net.2"}
    ours = {f"{rename[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in state.items()}
    obs_dim = state["fc1.weight"].shape[0]
    return {"obs_norm.mean": np.zeros(obs_dim, np.float32), "obs_norm.var": np.ones(obs_dim, np.float32),
            "obs_norm.count": np.array([1e-4], np.float32), **ours}
