"""How good can a MountainCar-v0 policy be? Value iteration on the exact dynamics.

Solves for T(s), the fewest steps from state s to the flag, on a fine (position, velocity)
grid with bilinear interpolation, then scores its greedy policy like `eval` does (100
episodes of the standard env on the held-out seeds, and on the selection seeds of the
periodic evaluation). With an actor file, it also shows, per band of start positions,
how many steps that policy and the optimum take, and their first moves from a few starts.

    python benchmarks/optimum.py
    python benchmarks/optimum.py param/pretrained/actor_net.param
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ppo_mountaincar as pm  # noqa: E402
from ppo_toolbox import envs, evaluation  # noqa: E402

MC = envs.MountainCarVecEnv


class Optimum:
    """Steps-to-go T(s) by value iteration: T(s) = 1 + min_a T(s'), with T = 0 past the flag."""

    def __init__(self, n: int = 901):
        self.n = n
        pos, vel = np.meshgrid(np.linspace(MC.MIN_POS, MC.MAX_POS, n),
                               np.linspace(-MC.MAX_SPEED, MC.MAX_SPEED, n), indexing="ij")
        successors = [MC.dynamics(pos, vel, a) for a in range(3)]
        self.T = np.zeros((n, n))
        for _ in range(1000):
            new = np.min([1 + np.where(end, 0.0, self.value(p, v)) for p, v, end in successors], axis=0)
            change, self.T = np.abs(new - self.T).max(), new
            if change < 1e-6:
                break

    def value(self, pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
        """T at any states, interpolated bilinearly between grid points."""
        fi = (pos - MC.MIN_POS) / (MC.MAX_POS - MC.MIN_POS) * (self.n - 1)
        fj = (vel + MC.MAX_SPEED) / (2 * MC.MAX_SPEED) * (self.n - 1)
        i, j = (np.clip(np.floor(f).astype(int), 0, self.n - 2) for f in (fi, fj))
        di, dj, T = fi - i, fj - j, self.T
        return (T[i, j] * (1 - di) * (1 - dj) + T[i + 1, j] * di * (1 - dj)
                + T[i, j + 1] * (1 - di) * dj + T[i + 1, j + 1] * di * dj)

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """The action that leads to the state with the fewest steps to go."""
        pos, vel = obs[:, 0].astype(np.float64), obs[:, 1].astype(np.float64)
        to_go = [np.where(end, 0.0, self.value(p, v)) for p, v, end in (MC.dynamics(pos, vel, a) for a in range(3))]
        return np.argmin(to_go, axis=0)


def steps_from(starts: np.ndarray, policy) -> tuple[np.ndarray, list[str]]:
    """Steps to the flag from each start position (at rest), and the first 40 moves."""
    env = MC(len(starts), 0)
    env.reset(seed=0)
    env.pos[:], env.vel[:] = starts, 0.0
    obs, steps, done, moves = env._obs(), np.zeros(len(starts), int), np.zeros(len(starts), bool), []
    for t in range(1000):
        action = policy(obs)
        moves.append(action)
        obs, _, terminated, _, _ = env.step(action)
        steps += ~done
        done |= terminated
        if done.all():
            break
    first = np.array(moves[:40]).T
    return steps, ["".join("LNR"[a] for a in row) for row in first]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("actor", nargs="?", help="an actor .param file to compare with the optimum")
    parser.add_argument("--grid", type=int, default=901, help="grid points per dimension [901]")
    a = parser.parse_args()
    best = Optimum(a.grid)
    for name, seed in (("held-out", evaluation.HOLDOUT_SEED), ("selection", evaluation.EVAL_SEED)):
        result = pm.evaluate(best.policy, "MountainCar-v0", 100, seed)
        print(f"optimum, {name} seeds ({seed}+i), 100 episodes: mean return {result['mean_return']:.1f}")
    if not a.actor:
        return
    policy = pm.load_policy(a.actor)
    starts = np.linspace(-0.6, -0.4, 201)
    theirs, their_moves = steps_from(starts, policy)
    ours, our_moves = steps_from(starts, best.policy)
    print(f"\nfrom 201 start positions at rest: {a.actor} {theirs.mean():.1f} steps, optimum {ours.mean():.1f}")
    print("| start position | policy | optimum | lost |\n|---|---:|---:|---:|")
    for lo in np.arange(-0.6, -0.41, 0.04):
        band = (starts >= lo - 1e-9) & (starts < lo + 0.04 - 1e-9)
        print(f"| {lo:+.2f} .. {lo + 0.04:+.2f} | {theirs[band].mean():.1f} | {ours[band].mean():.1f} "
              f"| {(theirs - ours)[band].mean():.1f} |")
    print("\nfirst 40 moves (L push left, N none, R push right):")
    for k in (10, 50, 80, 130, 170):
        print(f"  start {starts[k]:+.2f}  policy  {their_moves[k]}\n                optimum {our_moves[k]}")


if __name__ == "__main__":
    main()
