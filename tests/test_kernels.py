"""The faster layers (ppo_toolbox/kernels.py): the addmm `Linear` computes what `nn.Linear` does, forward and
backward, and exports."""
import numpy as np
import paddle
from ppo_toolbox import kernels
import pytest


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
