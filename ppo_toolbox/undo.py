"""The point a stop goes back to: `UndoPoint`, taken at the start of every rollout, so that
a checkpoint holds an update boundary, never half a rollout. It holds, in memory, the state a
checkpoint would write: each part's `state()` (the contract `run_state.HasState`).
Imports `run_state`."""
from __future__ import annotations

from .run_state import HasState


class UndoPoint:
    """What a rollout and its update change, as it was at the rollout's start: the state of
    each of the run's parts (counters, networks, Adam, RNG, bonus counts, envs; about 1 ms)."""

    def __init__(self, parts: dict[str, HasState | None]):
        self.saved = [(part, part.state()) for part in parts.values() if part is not None]

    def restore(self) -> None:
        """Drop the partial rollout: put every part back."""
        for part, state in self.saved:
            part.load_state(state)
