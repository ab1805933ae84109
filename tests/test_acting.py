"""Acting in numpy (ppo_toolbox/acting.py): `NumpyNet` computes what the Paddle actor computes, and is a copy that
follows the actor only when refreshed."""
import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import acting
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
