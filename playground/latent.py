"""Latent-space geometry in numpy: grids, interpolations, a 2-D map by PCA, slider order."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def grid_codes(base: np.ndarray, dims: tuple[int, int], steps: int, span: float) -> np.ndarray:
    """An ``steps`` x ``steps`` grid of codes over two dimensions, the others as in ``base``.

    Rows go from +span (top) to -span, columns from -span to +span, like the
    keras.io example's manifold plot. Returns [steps * steps, L].
    """
    first, second = dims
    values = np.linspace(-span, span, steps)
    codes = np.repeat(np.asarray(base, dtype=np.float32)[None, :], steps * steps, axis=0)
    for row, y in enumerate(values[::-1]):
        for col, x in enumerate(values):
            codes[row * steps + col, first] = x
            codes[row * steps + col, second] = y
    return codes


def interpolate(start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` codes on the straight line from ``start`` to ``end`` (both included): [steps, L]."""
    weights = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - weights) * np.asarray(start)[None, :] + weights * np.asarray(end)[None, :]).astype(np.float32)


class Projection(NamedTuple):
    """A map of codes onto two axes: the first two principal components (or the dims themselves)."""

    mean: np.ndarray  # [L]
    axes: np.ndarray  # [L, 2]
    explained: tuple[float, float]  # share of the variance along each axis

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """[N, L] codes -> [N, 2] map coordinates."""
        return (np.asarray(codes) - self.mean) @ self.axes

    def spread(self, z_log_var: np.ndarray) -> np.ndarray:
        """A code's standard deviation along each map axis: [L] log-variances -> [2]."""
        variance = np.exp(np.asarray(z_log_var, dtype=np.float64))
        return np.sqrt((self.axes**2).T @ variance)


def project_2d(codes: np.ndarray) -> Projection:
    """The identity for 1-D or 2-D codes, else PCA onto the two directions of most variance."""
    codes = np.asarray(codes, dtype=np.float64)
    latent_dim = codes.shape[1]
    if latent_dim <= 2:
        axes = np.eye(latent_dim, 2)
        return Projection(np.zeros(latent_dim), axes, (1.0, 0.0) if latent_dim == 1 else (0.5, 0.5))
    mean = codes.mean(axis=0)
    _, singular, vt = np.linalg.svd(codes - mean, full_matrices=False)
    variance = singular**2
    share = variance / max(variance.sum(), 1e-12)
    return Projection(mean, vt[:2].T, (float(share[0]), float(share[1])))


def order_by_kl(kl: np.ndarray | None, latent_dim: int) -> list[int]:
    """Latent dimensions, the most used (highest KL) first; natural order when KL is unknown."""
    if kl is None or len(kl) != latent_dim:
        return list(range(latent_dim))
    return [int(i) for i in np.argsort(-np.asarray(kl), kind="stable")]
