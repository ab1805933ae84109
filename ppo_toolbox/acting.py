"""Acting in numpy: `NumpyNet`, an exact numpy copy of an Actor or a Critic, whose
`log_probs` the script's `sample_actions` draws actions from. Paddle's eager mode costs
10-20 microseconds per operation whatever the tensor size, so a forward pass for 16 states
costs several times more in Paddle than in numpy, and the rollout makes one per step;
evaluation, replay and the figures use the same copy. Imports numpy and paddle only."""
from __future__ import annotations

from typing import Any

import numpy as np


class NumpyNet:
    """A numpy copy of a network of the script (`obs_norm`, then the MLP `net`): from a live
    layer (`NumpyNet(actor)`, `refresh()` copies its weights and statistics again) or from
    a .param file's arrays (`NumpyNet.from_state`)."""

    def __init__(self, layer: Any = None):
        self.layer = layer
        if layer is not None:
            self.refresh()

    def refresh(self) -> None:
        """Copy the live layer's weights and observation statistics again."""
        import paddle.nn as nn
        net, norm = self.layer.net, self.layer.obs_norm
        self.layers = [(layer.weight.numpy(), layer.bias.numpy()) for layer in net if isinstance(layer, nn.Linear)]
        self.activation = np.tanh if isinstance(net[1], nn.Tanh) else _relu
        self.mean, self.std = (norm.mean.numpy(), np.sqrt(norm.var.numpy() + 1e-8)) if norm.enabled else (0.0, 1.0)
        self.clip = 10.0 if norm.enabled else np.inf

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], meta: dict[str, Any]) -> NumpyNet:
        """The network a checked .param file holds (`network_files.read_network`)."""
        net = cls()
        n = len(meta["hidden_sizes"]) + 1
        net.layers = [(state[f"net.{2 * i}.weight"], state[f"net.{2 * i}.bias"]) for i in range(n)]
        net.activation = np.tanh if meta["activation"] == "tanh" else _relu
        norm = meta["norm_obs"]
        net.mean, net.std = (state["obs_norm.mean"], np.sqrt(state["obs_norm.var"] + 1e-8)) if norm else (0.0, 1.0)
        net.clip = 10.0 if norm else np.inf
        return net

    def outputs(self, state: np.ndarray) -> np.ndarray:
        """The network's raw outputs for a batch of raw states: an actor's logits, a critic's V."""
        x = np.clip((np.asarray(state, np.float32) - self.mean) / self.std, -self.clip, self.clip)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x

    def log_probs(self, state: np.ndarray) -> np.ndarray:
        """An actor's log pi(.|s) for a batch of raw states, [N, n_actions] (log_softmax of the logits)."""
        return log_softmax(self.outputs(state))

    def values(self, state: np.ndarray) -> np.ndarray:
        """A critic's V(s) for a batch of raw states, [N]."""
        return self.outputs(state)[:, 0]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log pi(.|s) from the logits, row by row (shifted by the row's maximum: no overflow)."""
    x = logits - logits.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)

