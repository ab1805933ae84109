"""Fast paths (ppo_toolbox/acting.py, envs.py): the numpy network and the numpy-batched MountainCar, against Paddle and
Gymnasium."""

import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import acting, envs
import pytest


@pytest.mark.parametrize("activation, norm", [("tanh", True), ("relu", False)])
def test_numpy_actor_matches_the_paddle_actor(activation, norm):
    obs_norm = pm.ObsNorm(2, enabled=norm)
    obs_norm.update(np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.02], (500, 2)))
    actor = pm.Actor(2, 3, (64, 32), activation, obs_norm)
    x = np.random.default_rng(1).normal([-0.5, 0.0], [0.3, 0.03], (256, 2)).astype(np.float32)
    x[0] = [50.0, -50.0]  # far outside the statistics: the normalised input is clipped at 10
    fast = acting.NumpyNet(actor)
    with paddle.no_grad():
        expected = paddle.nn.functional.log_softmax(actor.logits(paddle.to_tensor(x)), -1).numpy()
    assert fast.log_probs(x) == pytest.approx(expected, abs=1e-5)
    # a copy: it follows the actor only when refreshed
    last = actor.net[-1]
    last.bias.set_value(last.bias.numpy() + np.array([5.0, 0.0, 0.0], np.float32))
    assert fast.log_probs(x) == pytest.approx(expected, abs=1e-5)
    fast.refresh()
    assert (fast.log_probs(x).argmax(1) == 0).mean() > (expected.argmax(1) == 0).mean()


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
