"""A run's state: the contract each part of a run keeps (`HasState`: `state()` says what its
state is, as a dict of arrays and plain values; `load_state(state)` takes it back), the
toolbox's view of the script's agent (`Agent`), the envs with their open episodes as one part
(`OpenEpisodes`), and Adam's state under names that hold in any process. The checkpoint
(checkpoint.py) writes these states to a file; the undo point (undo.py) holds them in memory.
Imports numpy and paddle (for Adam's state)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class HasState(Protocol):
    """A part of a run that says what its state is (a dict of arrays and plain values) and takes it back."""

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> Any: ...


@runtime_checkable
class Agent(HasState, Protocol):
    """The toolbox's view of the script's `PPO`: nothing else of it is reached (a test checks
    that `PPO` has all of this, so that a rename fails there)."""

    actor_net: Any           # the networks, for evaluating, drawing and checking for NaN
    critic_net: Any
    params: list[Any]        # their parameters, checked for NaN after each update
    optimizer: Any           # its learning rate, for the logs
    gradient_steps: int      # minibatch updates so far (the x axis of the loss logs)

    def save_param(self, directory: str | Path, suffix: str = "") -> Path: ...


class OpenEpisodes:
    """The envs and the open episodes' sums (the logbook's) as one part of a run's state;
    only envs that can say their state (the numpy MountainCar) have this part."""

    def __init__(self, envs: Any, log: Any):
        self.envs, self.log = envs, log

    def state(self) -> dict[str, Any]:
        return dict(cars=self.envs.state(), ep_return=self.log.ep_return.copy(), ep_len=self.log.ep_len.copy())

    def load_state(self, state: dict[str, Any]) -> np.ndarray:
        """Put the cars and their episodes back; returns the cars' observations."""
        self.log.ep_return[:], self.log.ep_len[:] = state["ep_return"], state["ep_len"]
        return self.envs.load_state(state["cars"])


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
    the process had created before, so they differ in a new process. Empty before Adam's first step."""
    return {k: v.numpy() for k, v in _rename_moments(opt.state_dict(), _structured_names(actor, critic)).items()}


def restore_optimizer(opt: Any, saved: dict[str, np.ndarray], actor: Any, critic: Any) -> None:
    """Load moments saved by `optimizer_state` into `opt`, under this process's names. None
    saved (before Adam's first step): its moments, if it has any, as Adam makes them (0, and
    the betas for their powers), in place: the optimizer and its names stay."""
    import paddle
    if not saved:
        for key, t in opt.state_dict().items():
            if isinstance(t, paddle.Tensor):
                start = opt._beta1 if "_beta1_pow_acc_" in key else opt._beta2 if "_beta2_pow_acc_" in key else 0.0
                t.set_value(paddle.full_like(t, start))
        return
    names = {v: k for k, v in _structured_names(actor, critic).items()}
    opt.set_state_dict({k: paddle.to_tensor(v) for k, v in _rename_moments(saved, names).items()})
