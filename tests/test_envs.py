"""The environments (ppo_toolbox/envs.py): the numpy-batched MountainCar against Gymnasium's, step for step."""
import numpy as np
from ppo_toolbox import envs
import pytest


@pytest.mark.parametrize("limit", [200, 0, 50])
def test_fast_mountain_car_matches_gymnasium_step_for_step(limit):
    n, seeds = 8, [11 * i + 3 for i in range(8)]
    ours = envs.make_vec_env("MountainCar-v0", n, limit)
    theirs = envs.make_vec_env("MountainCar-v0", n, limit, fast=False)
    assert isinstance(ours, envs.MountainCarVecEnv) and not isinstance(theirs, envs.MountainCarVecEnv)
    o1, _ = ours.reset(seed=seeds)
    o2, _ = theirs.reset(seed=seeds)
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(600):
        # a bang-bang controller with noise reaches the flag, so resets happen too
        a = np.where(o1[:, 1] >= 0, 2, 0)
        a = np.where(rng.random(n) < 0.2, rng.integers(0, 3, n), a)
        s1, s2 = ours.step(a), theirs.step(a)
        for x, y in zip(s1[:4], s2[:4]):
            assert np.array_equal(x, y), t
        if s1[2].any() or s1[3].any():
            done = s1[2] | s1[3]
            assert np.array_equal(s1[4]["final_obs"][done], np.stack(s2[4]["final_obs"][done]))
            ends += done.sum()
        o1 = s1[0]
    assert ends > n
