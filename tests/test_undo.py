"""The undo point (ppo_toolbox/undo.py): it puts every part of a run back as it was, byte for byte, so that a
rollout and update done again after an undo are the ones done the first time. (A stop undone inside a
whole run, and resumed: test_run_bookkeeping.py.)"""
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

import ppo_mountaincar as pm
from ppo_toolbox.run import Progress
from ppo_toolbox.run_state import OpenEpisodes
from ppo_toolbox.undo import UndoPoint

ARGS = pm.Args(num_envs=4, num_steps=32, batch_size=64, update_epochs=2)


def same(a, b):
    """Equal to the last bit: arrays by dtype, shape and bytes; containers item by item."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def fresh(moments):
    """Adam's state before its first step: none yet, or (after an undo) moments of 0."""
    return not any(v.any() for k, v in moments.items() if "_moment" in k)


def rollout_and_update(agent, envs, bonus, log, progress, obs):
    """One rollout of the script's loop (acting, the bonus, the open episodes' sums) and its update."""
    while not agent.buffer.full:
        action, logprob = agent.select_action(obs)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        done = terminated | truncated
        arrived = pm.arrival_states(next_obs, done, info)
        agent.store_transition(obs, action, logprob, reward.astype(np.float32) + bonus(arrived, 1.0), arrived,
                               terminated, done)
        log.ep_return += reward
        log.ep_len += 1
        obs = next_obs
        progress.global_step += ARGS.num_envs
    agent.update()
    progress.rollouts += 1
    return obs


@pytest.mark.parametrize("updates_before", [0, 2])  # 0: Adam has no state yet at the undo point
def test_an_undo_puts_every_part_back_and_the_same_rollout_follows(updates_before):
    paddle.seed(1)
    envs = pm.make_vec_env("MountainCar-v0", ARGS.num_envs)
    space = envs.single_observation_space
    agent, bonus = pm.PPO(2, 3, ARGS), pm.CountBonus(space.low, space.high, ARGS.explore_bins)
    log, progress = SimpleNamespace(ep_return=np.zeros(4), ep_len=np.zeros(4, np.int64)), Progress()
    parts = dict(counters=progress, agent=agent, bonus=bonus, envs=OpenEpisodes(envs, log))
    obs = envs.reset(seed=[1, 2, 3, 4])[0]
    for _ in range(updates_before):
        obs = rollout_and_update(agent, envs, bonus, log, progress, obs)
    undo, before = UndoPoint(parts), {name: part.state() for name, part in parts.items()}
    rollout_and_update(agent, envs, bonus, log, progress, obs)
    first = {name: part.state() for name, part in parts.items()}
    agent.store_transition(obs, np.zeros(4, np.int64), *[np.zeros(4)] * 2, obs, *[np.zeros(4)] * 2)  # a next one begun
    undo.restore()
    after = {name: part.state() for name, part in parts.items()}
    assert agent.buffer.size == 0 and fresh(after["agent"]["optimizer"]) == (updates_before == 0)
    if updates_before == 0:  # Adam's moments are there now, as Adam makes them
        after["agent"]["optimizer"] = {}
    assert same(after, before)
    rollout_and_update(agent, envs, bonus, log, progress, obs)
    assert all(same(part.state(), first[name]) for name, part in parts.items())
