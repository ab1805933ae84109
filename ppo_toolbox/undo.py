"""The point a stop goes back to: `UndoPoint`, taken at the start of every rollout, so that
a checkpoint holds an update boundary, never half a rollout. Imports paddle and `checkpoint`."""
from __future__ import annotations

import dataclasses
from typing import Any

from .checkpoint import envs_state


class UndoPoint:
    """What a rollout and its update change, as they were at the rollout's start: the
    counters, the envs and their open episodes (where they can say), the sampling RNG, the
    bonus counts, and the networks, observation statistics and Adam's state (about 0.1 ms)."""

    def __init__(self, progress: Any, agent: Any, bonus: Any, envs: Any, log: Any):
        import paddle
        self.agent, self.bonus, self.envs, self.log = agent, bonus, envs, log
        self.progress, self.counters = progress, dataclasses.asdict(progress)
        self.envs_state = envs_state(envs, log)
        self.rng = agent.rng.bit_generator.state
        self.bonus_counts = None if bonus is None else bonus.counts.copy()
        adam = [v for v in agent.optimizer.state_dict().values() if isinstance(v, paddle.Tensor)]
        live = [*agent.actor_net.state_dict().values(), *agent.critic_net.state_dict().values(), *adam]
        self.tensors = [(t, paddle.clone(t)) for t in live]
        self.fresh_adam = not adam  # before the first step creates it
        self.gradient_steps = agent.gradient_steps

    def restore(self) -> bool:
        """Drop the partial rollout and put everything back. Returns True when Adam had no
        state then (the checkpoint then saves none)."""
        agent = self.agent
        agent.buffer.clear()
        for live, copy in self.tensors:
            live.set_value(copy)
        agent.gradient_steps = self.gradient_steps
        agent.acting_actor.refresh()
        agent.rng.bit_generator.state = self.rng
        if self.bonus is not None:
            self.bonus.counts[:] = self.bonus_counts
        if self.envs_state is not None:
            self.log.ep_return[:], self.log.ep_len[:] = self.envs_state["ep_return"], self.envs_state["ep_len"]
            self.envs.set_state(self.envs_state["state"])
        for name, value in self.counters.items():
            setattr(self.progress, name, value)
        return self.fresh_adam
