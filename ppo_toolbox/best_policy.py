"""The periodic greedy evaluation during training and the best policy so far: `BestPolicy`.
Imports numpy, `acting` and `evaluation` (and `run_state`'s `Agent`, for type checkers only)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .acting import NumpyNet
from .evaluation import EVAL_SEED, evaluate, make_policy

if TYPE_CHECKING:
    from .run_state import Agent


class BestPolicy:
    """Greedy evaluation on the standard env (seeds EVAL_SEED + i) every --eval-every steps
    and at the end; the best policy so far is kept as actor_net_best.param / critic_net_best.param."""

    def __init__(self, args: Any, net_dir: Path, trusted_env: str | None = None):
        self.args, self.net_dir, self.trusted_env = args, net_dir, trusted_env
        self.best: dict[str, Any] = dict(mean_return=-np.inf)
        self.history: list[dict[str, Any]] = []
        self.next_eval = args.eval_every

    def due(self, global_step: int, last: bool) -> bool:
        """Whether to evaluate now: every --eval-every steps, and at the end of training."""
        return bool(self.args.eval_every) and (global_step >= self.next_eval or last)

    def evaluate(self, agent: Agent) -> dict[str, Any]:
        """Evaluate the agent's greedy policy (changing nothing: a stop may interrupt it)."""
        return evaluate(make_policy(NumpyNet(agent.actor_net)), self.args.env_id, self.args.eval_episodes,
                        EVAL_SEED, trusted_env=self.trusted_env)

    def record(self, result: dict[str, Any], agent: Agent, global_step: int, seconds: float) -> None:
        """Record an evaluation; save the policy as the best if it is the best so far."""
        self.next_eval = global_step + self.args.eval_every
        self.history.append(dict(result, global_step=global_step, seconds=seconds))
        if result["mean_return"] > self.best["mean_return"]:
            self.best = dict(result, global_step=global_step)
            agent.save_param(self.net_dir, "_best")

    def reached_target(self, result: dict[str, Any]) -> bool:
        """Whether an evaluation reached --target-return (none set: never)."""
        return self.args.target_return is not None and result["mean_return"] >= self.args.target_return

    @property
    def found(self) -> bool:
        return self.best["mean_return"] > -np.inf

    def state(self) -> dict[str, Any]:
        """The evaluations so far, the best ({}: none yet) and the step the next is due at."""
        return dict(best=dict(self.best) if self.found else {}, history=[dict(h) for h in self.history],
                    next_eval=self.next_eval)

    def load_state(self, state: dict[str, Any]) -> None:
        self.best = dict(state["best"]) if state["best"] else dict(mean_return=-np.inf)
        self.history, self.next_eval = [dict(h) for h in state["history"]], state["next_eval"]
