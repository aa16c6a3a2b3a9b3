"""The benchmark's matmul count against the model's own kernels."""

from __future__ import annotations

import pytest

from playground.bench import step_gflop, step_matmuls
from playground.config import Settings
from playground.models import build_vae


@pytest.mark.parametrize("sizes", [(64, 32), (256, 8)])
def test_a_steps_matmuls_are_each_kernels_forward_product_and_its_two_gradients(sizes):
    intermediate_dim, latent_dim = sizes
    settings = Settings(intermediate_dim=intermediate_dim, latent_dim=latent_dim, batch_size=50)
    kernels = [w.shape for w in build_vae(settings).get_weights() if len(w.shape) == 2]
    assert len(kernels) == 5
    per_kernel = [2 * 50 * fan_in * fan_out for fan_in, fan_out in kernels]
    first = next(flops for (fan_in, _), flops in zip(kernels, per_kernel) if fan_in == 784)
    # forward and kernel gradient for all five; no input gradient for the first layer (its input is the data)
    assert step_gflop(settings) * 1e9 == pytest.approx(3 * sum(per_kernel) - first)
    shapes = step_matmuls(settings)
    assert len(shapes) == 14 and all(50 in (shape.m, shape.k) for shape in shapes)
