"""Fast paths (ppo_toolbox/acting.py, envs.py, kernels.py, cpu.py): the numpy network and the numpy-batched
MountainCar against Paddle and Gymnasium, the addmm Linear against nn.Linear, and the math libraries' settings."""

import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import acting, cpu, envs, kernels
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


def test_the_addmm_linear_computes_what_nn_linear_does(tmp_path):
    paddle.seed(3)
    fast = kernels.Linear(5, 4)
    plain = paddle.nn.Linear(5, 4)
    plain.set_state_dict(fast.state_dict())  # the same keys: a .param file does not tell them apart
    assert list(fast.state_dict()) == list(plain.state_dict()) == ["weight", "bias"]
    x = paddle.to_tensor(np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32))
    outs, grads = [], []
    for layer in (fast, plain):
        y = layer(x)
        (y * paddle.arange(4, dtype="float32")).sum().backward()  # a different weight per output
        outs.append(y.numpy())
        grads.append([layer.weight.grad.numpy(), layer.bias.grad.numpy()])
    assert outs[0] == pytest.approx(outs[1], abs=1e-6)
    for fast_grad, plain_grad in zip(*grads):
        assert fast_grad == pytest.approx(plain_grad, abs=1e-6)
    assert grads[0][1] == pytest.approx(np.arange(4, dtype=np.float32) * 7)  # the bias gets every row's
    # one state (a vector) and the static graph of an export take nn.Linear's path
    assert fast(x[0]).numpy() == pytest.approx(outs[1][0], abs=1e-6)
    static = paddle.jit.to_static(fast, input_spec=[paddle.static.InputSpec([None, 5], "float32")], full_graph=True)
    paddle.jit.save(static, str(tmp_path / "linear"))
    assert (tmp_path / "linear.pdiparams").exists()


def test_math_library_defaults(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert cpu.cpu_vendor(info) == "AuthenticAMD"
    assert cpu.cpu_vendor(tmp_path / "missing") is None
    environ = {}
    assert cpu.set_math_library_defaults(environ, vendor="AuthenticAMD") == environ == {
        "OPENBLAS_NUM_THREADS": "1", "MKL_DEBUG_CPU_TYPE": "5"}
    intel = {}
    cpu.set_math_library_defaults(intel, vendor="GenuineIntel")
    assert intel == {"OPENBLAS_NUM_THREADS": "1"}  # MKL's fast path is already Intel's
    mine = {"MKL_DEBUG_CPU_TYPE": "0", "OPENBLAS_NUM_THREADS": "2"}
    assert cpu.set_math_library_defaults(mine, vendor="AuthenticAMD") == {}
    assert mine == {"MKL_DEBUG_CPU_TYPE": "0", "OPENBLAS_NUM_THREADS": "2"}  # the user's own are kept
