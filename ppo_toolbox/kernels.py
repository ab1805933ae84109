"""Faster stand-ins for Paddle layers at the update's small shapes on a CPU, each computing
what the layer it replaces computes. Imports Paddle only.

At a minibatch of 512 samples a gradient step is about a hundred small kernels, so a kernel
that is slow for its size shows in the whole run (benchmarks/floor.py times them).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn


class Linear(nn.Linear):
    """nn.Linear (the same weight and bias, the same .param keys), forward as one addmm.

    Paddle's CPU linear adds the bias as a broadcast after the product, and that broadcast add
    of [512, 64] costs almost as much as the product itself (about 60 us against 75 us, where
    adding two [512, 64] tensors takes 15). addmm starts the product from the bias instead:
    the same result (equal to the last bit in a check of the forward), forward plus backward
    of a 64x64 layer about 15% faster and the whole update about 20%.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        # addmm is for a matrix and a bias, and in eager mode: Paddle 3.3's static graph
        # (paddle.jit.save, the export) aborts on it. Otherwise as nn.Linear.
        if x.ndim != 2 or self.bias is None or not paddle.in_dynamic_mode():
            return super().forward(x)
        return paddle.addmm(self.bias, x, self.weight)
