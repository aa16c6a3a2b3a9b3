"""Latent-space geometry in numpy: grids, interpolations, 2-D maps (PCA, t-SNE), slider order."""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

import numpy as np

log = logging.getLogger("playground")


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


def tsne_2d(codes: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of [N, L] codes onto [N, 2] (scikit-learn, Barnes-Hut, PCA start): same codes and seed, same map.

    t-SNE keeps each code's nearest neighbours near it and lets the clusters drift apart; unlike PCA
    its axes mean nothing and it cannot place a code it was not fitted on (``place_by_neighbours``).
    """
    from sklearn.manifold import TSNE  # imported when a map first asks: the page starts without it
    from threadpoolctl import threadpool_limits  # comes with scikit-learn

    codes = np.asarray(codes, dtype=np.float64)
    if len(codes) < 4:
        raise ValueError(f"t-SNE needs at least 4 codes to lay out (got {len(codes)}).")
    perplexity = min(perplexity, (len(codes) - 1) / 3)  # scikit-learn requires perplexity < N
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    # One OpenMP thread, for the calling thread only: on two shared cores, t-SNE's default of a thread
    # per core spins against training and the other sessions (500 codes: 74 s instead of 9.5 s; README).
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(codes).astype(np.float32)


LAYOUTS = {"tsne": tsne_2d}  # the map's non-linear methods, by id (README: why not UMAP)


class Placement(NamedTuple):
    """Where a new code lands on a fitted map, and the known codes that put it there."""

    position: np.ndarray  # [2]
    neighbours: np.ndarray  # [k] indices into the fitted codes, nearest first


def place_by_neighbours(code: np.ndarray, codes: np.ndarray, coords: np.ndarray, k: int = 10) -> Placement:
    """A new code's map position: the mean of its ``k`` nearest codes' positions, weighted by 1 / distance.

    For a map that cannot place new points (t-SNE). Distances are Euclidean in the latent space;
    a code equal to a fitted one lands exactly on that one's position.
    """
    code, codes = np.asarray(code, dtype=np.float64), np.asarray(codes, dtype=np.float64)
    distances = np.linalg.norm(codes - code[None, :], axis=1)  # [N]
    nearest = np.argsort(distances, kind="stable")[: max(1, min(k, len(codes)))]
    if distances[nearest[0]] == 0.0:
        return Placement(np.asarray(coords[nearest[0]], dtype=np.float64), nearest)
    weights = 1.0 / distances[nearest]  # [k]
    position = weights @ np.asarray(coords, dtype=np.float64)[nearest] / weights.sum()
    return Placement(position, nearest)


def neighbours_kept(codes: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    """How well a map keeps each code's ``k`` nearest neighbours: scikit-learn's trustworthiness, 0.5 to 1."""
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(np.asarray(codes), np.asarray(coords), n_neighbors=min(k, (len(codes) - 1) // 2)))


class LayoutJob:
    """A map laid out in a thread of its own, so the page that asked for it keeps answering."""

    def __init__(self, method: str, codes: np.ndarray, seed: int = 0):
        if method not in LAYOUTS:
            raise ValueError(f"Unknown map method {method!r}: choose one of {', '.join(LAYOUTS)}.")
        self.method, self.seed, self.count = method, seed, len(codes)
        self.coords: np.ndarray | None = None  # [N, 2] once done
        self.codes = np.array(codes)  # [N, L] the codes it lays out, for placing new ones
        self.kept: float | None = None  # neighbours_kept of the result ...
        self.pca_kept: float | None = None  # ... and of PCA's map of the same codes, to compare
        self.error: Exception | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        # Not a daemon: the layout takes seconds, and a process that exits waits for them.
        self._thread = threading.Thread(target=self._run, args=(self.codes,), name=f"map-{method}")
        self._thread.start()

    def _run(self, codes: np.ndarray) -> None:
        try:
            coords = LAYOUTS[self.method](codes, self.seed)
            self.kept = neighbours_kept(codes, coords)
            self.pca_kept = neighbours_kept(codes, project_2d(codes).apply(codes))
            self.coords = coords
        except Exception as error:  # shown on the page; the map falls back to PCA
            log.exception("map layout %s failed", self.method)
            self.error = error
        finally:
            self.finished = time.monotonic()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def seconds(self) -> float:
        """Seconds spent so far, or in all once done."""
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the layout is done (tests, the CLI); True if it is."""
        self._thread.join(timeout)
        return self.done
