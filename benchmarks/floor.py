"""The update's arithmetic floor and its overhead: how far PPO's update is from this machine's
matrix rate, and where a minibatch step's time goes.

1. Work: the floating-point operations of one update for a preset's settings (forward and
   backward of both networks per minibatch sample, and the critic's and actor's whole-batch
   passes), and of a whole run.
2. Rate: Paddle's float32 matmul at the update's own shapes (each layer forward, and its two
   backward products), on 1 and on 2 threads, each in a fresh process.
3. Efficiency: the floor (work / rate) against the measured `PPO.update` on a full buffer.
4. Profile: the script's own `PPO.update` by phase, its calls timed where they are made
   (the functions `PPO._minibatch_step` calls, wrapped): forward, loss, backward, clipping,
   Adam, clearing the gradients and the step's own arithmetic per minibatch step; the shuffle
   and split and the rest of the update (values, advantages, diagnostics) per step.

    python benchmarks/floor.py                       # the default preset
    python benchmarks/floor.py --preset best
    python benchmarks/floor.py --preset best --threads 2
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def layer_sizes(args, obs_dim: int = 2, n_actions: int = 3) -> dict[str, list[tuple[int, int]]]:
    sizes = {"actor": [obs_dim, *args.hidden_sizes, n_actions], "critic": [obs_dim, *args.hidden_sizes, 1]}
    return {net: list(zip(s[:-1], s[1:])) for net, s in sizes.items()}


def work(args) -> dict[str, float]:
    """Floating-point operations (multiply-adds count 2) of one update and of a run."""
    layers = layer_sizes(args)
    forward = {net: sum(2 * i * o for i, o in ls) for net, ls in layers.items()}
    # backward: the weights' gradient (2*i*o) for every layer, the input's (2*i*o) for all
    # but the first (nothing needs d loss / d state)
    backward = {net: sum(2 * i * o * (2 if k else 1) for k, (i, o) in enumerate(ls)) for net, ls in layers.items()}
    per_sample = sum(forward.values()) + sum(backward.values())
    samples = args.num_envs * args.num_steps
    steps = args.update_epochs * math.ceil(samples / args.batch_size)
    whole_batch = 2 * samples * forward["critic"] + 2 * samples * forward["actor"]  # V(s), V(s'); 2 policy_shift
    update = steps * args.batch_size * per_sample + whole_batch
    updates = math.ceil(args.total_timesteps / samples)
    return dict(per_sample=per_sample, gradient_steps=steps, update=update, updates=updates, run=update * updates)


MATMUL_PROBE = r"""
import json, sys, time
import paddle
paddle.base.core.set_num_threads(int(sys.argv[1]))
shapes = json.loads(sys.argv[2])
out = []
for m, k, n in shapes:
    a, b = paddle.randn([m, k]), paddle.randn([k, n])
    for _ in range(20):
        paddle.matmul(a, b)
    reps = max(20, int(2e8 / (2 * m * k * n)))
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            c = paddle.matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - t) / reps)
    out.append(best)
print(json.dumps(out))
"""


def matmul_seconds(args, threads: int) -> tuple[float, float]:
    """Seconds of the matmuls of one minibatch step at the update's shapes (the sum of the
    fastest of five timings each), and the rate on the largest hidden layer's product."""
    b = args.batch_size
    shapes = []
    for ls in layer_sizes(args).values():
        for k, (i, o) in enumerate(ls):
            shapes += [[b, i, o], [i, b, o]] + ([[b, o, i]] if k else [])  # y = xW; dW = x^T dy; dx = dy W^T
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", MATMUL_PROBE, str(threads), json.dumps(shapes)], env=env,
                          capture_output=True, text=True, check=True)
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    h = max(args.hidden_sizes)
    big = [s for s, (m, k, n) in zip(seconds, shapes) if (m, k, n) == (b, h, h)]
    return sum(seconds), 2 * b * h * h / big[0] / 1e9 if big else float("nan")


def filled_agent(args):
    """A PPO agent with a full buffer of plausible MountainCar transitions."""
    import numpy as np
    import paddle
    import ppo_mountaincar as pm
    paddle.seed(0)
    agent = pm.PPO(2, 3, args)
    rng = np.random.default_rng(0)
    low, high = np.array([-1.2, -0.07], np.float32), np.array([0.6, 0.07], np.float32)

    def fill():
        for _ in range(args.num_steps):
            obs = rng.uniform(low, high, (args.num_envs, 2)).astype(np.float32)
            actions, logp = agent.select_action(obs)
            done = rng.random(args.num_envs) < 0.01
            agent.store_transition(obs, actions, logp, -np.ones(args.num_envs, np.float32), obs, done, done)
    return agent, fill


def time_updates(args, repeats: int) -> float:
    agent, fill = filled_agent(args)
    times = []
    for _ in range(repeats + 1):  # the first one warms up
        fill()
        t = time.perf_counter()
        agent.update()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


@contextlib.contextmanager
def timed_calls(places: dict[str, list[tuple[Any, str]]]) -> Iterator[dict[str, float]]:
    """Wrap each function `getattr(owner, name)` so that the seconds of its calls add up under
    its phase (a call within a call of the same phase counts once); put them back after."""
    spent, depth = dict.fromkeys(places, 0.0), dict.fromkeys(places, 0)

    def timer(fn: Callable, phase: str) -> Callable:
        @functools.wraps(fn)
        def timed(*a: Any, **kw: Any) -> Any:
            depth[phase] += 1
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                depth[phase] -= 1
                if not depth[phase]:
                    spent[phase] += time.perf_counter() - start
        return timed
    wrapped = [(owner, name, vars(owner).get(name)) for owners in places.values() for owner, name in owners]
    for phase, owners in places.items():
        for owner, name in owners:
            setattr(owner, name, timer(getattr(owner, name), phase))
    try:
        yield spent
    finally:
        for owner, name, own in reversed(wrapped):
            if own is None:  # it was the class's: uncover it
                delattr(owner, name)
            else:
                setattr(owner, name, own)


def profile_step(args, steps: int) -> dict[str, float]:
    """Microseconds per minibatch step of each phase of the script's own `PPO.update` (medians
    over the steps; the shuffle and the rest of the update per step, averaged): its calls are
    timed where they are made, by wrapping the functions `PPO._minibatch_step` calls."""
    import paddle
    import paddle.nn.functional as F
    import ppo_mountaincar as pm
    agent, fill = filled_agent(args)
    places = {"forward": [(pm.Actor, "logits_of_normalised"), (pm.Critic, "value_of_normalised")],
              "loss": [(pm, "normalised"), (pm, "log_prob_of"), (pm, "clipped_surrogate"), (pm, "entropy_of"),
                       (F, "log_softmax"), (F, "mse_loss")],
              "backward": [(paddle.Tensor, "backward")], "clip": [(pm, "clip_grad_global_norm")],
              "Adam": [(agent.optimizer, "step")], "clear_grad": [(agent.optimizer, "clear_grad")],
              "shuffle and split": [(pm.Minibatch, "shuffled_into")]}
    per_step: dict[str, list[float]] = {k: [] for k in [*places, "the step's own arithmetic"] if k != "shuffle and split"}
    step, update_seconds, done = agent._minibatch_step, 0.0, 0

    def recorded(minibatch: Any) -> Any:
        before, start = dict(spent), time.perf_counter()
        out = step(minibatch)
        total = time.perf_counter() - start
        inside = {k: spent[k] - before[k] for k in per_step if k in spent}
        for k, v in inside.items():
            per_step[k].append(v)
        per_step["the step's own arithmetic"].append(total - sum(inside.values()))
        return out
    fill()
    agent.update()  # warms up
    agent._minibatch_step = recorded
    with timed_calls(places) as spent:
        while done < steps:
            fill()
            start = time.perf_counter()
            agent.update()
            update_seconds += time.perf_counter() - start
            done = len(per_step["forward"])
    del agent._minibatch_step
    medians = {k: 1e6 * statistics.median(v) for k, v in per_step.items()}
    in_steps = sum(sum(v) for v in per_step.values())
    medians["shuffle and split"] = 1e6 * spent["shuffle and split"] / done
    medians["the rest of the update"] = 1e6 * (update_seconds - in_steps - spent["shuffle and split"]) / done
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=1, help="Paddle's threads for the timed update [1]")
    parser.add_argument("--repeats", type=int, default=5, help="timed updates (median) [5]")
    parser.add_argument("--profile-steps", type=int, default=300, help="minibatch steps profiled [300]")
    a = parser.parse_args()
    import paddle
    import ppo_mountaincar as pm
    paddle.base.core.set_num_threads(a.threads)
    args = pm.preset_args(a.preset)
    w = work(args)
    rates = {t: matmul_seconds(args, t) for t in (1, 2)}
    update = time_updates(args, a.repeats)
    floor_1 = w["gradient_steps"] * rates[1][0]
    print(f"## `{a.preset}`: {w['per_sample'] / 1e3:.1f} kFLOP per minibatch sample, {w['gradient_steps']} "
          f"minibatch steps of {args.batch_size} per update, {w['update'] / 1e9:.2f} GFLOP per update, "
          f"{w['updates']} updates, {w['run'] / 1e9:.0f} GFLOP per run\n")
    print("| threads | matmul GFLOP/s at [B,h]x[h,h] | the step's matmuls (ms) | floor per update (s) | floor per run (s) |")
    print("|---:|---:|---:|---:|---:|")
    for t, (seconds, rate) in rates.items():
        print(f"| {t} | {rate:.1f} | {1e3 * seconds:.3f} | {w['gradient_steps'] * seconds:.2f} | "
              f"{w['updates'] * w['gradient_steps'] * seconds:.1f} |")
    print(f"\nmeasured `PPO.update` ({a.threads} thread{'s' * (a.threads > 1)}, median of {a.repeats}): {update:.2f} s "
          f"per update ({1e3 * update / w['gradient_steps']:.2f} ms per minibatch step), {w['update'] / update / 1e9:.1f} GFLOP/s; "
          f"efficiency against the 1-thread floor: {floor_1 / update:.0%}\n")
    profile = profile_step(args, a.profile_steps)
    total = sum(profile.values())
    print("| phase, per minibatch step | us | share |\n|---|---:|---:|")
    for name, us in profile.items():
        print(f"| {name} | {us:.0f} | {us / total:.0%} |")
    print(f"| total | {total:.0f} | |")


if __name__ == "__main__":
    main()
