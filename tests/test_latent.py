"""The latent map's math: t-SNE against PCA, placing a new code by its neighbours, the background job."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from playground import latent
from playground.latent import LayoutJob, neighbours_kept, place_by_neighbours, project_2d, tsne_2d


@pytest.fixture(scope="module")
def clusters():
    """Eight well separated clusters in 8-D, one on each axis: no two directions stand out, so PCA lays
    most of them over each other. [240, 8] codes and [240] labels."""
    rng = np.random.default_rng(3)
    centres = 6.0 * np.eye(8)
    labels = np.repeat(np.arange(8), 30)
    return centres[labels] + rng.normal(size=(240, 8)), labels


def knn_label_agreement(coords: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Share of points whose k nearest neighbours on the map (numpy, brute force) carry their label."""
    distances = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    return float(np.mean(labels[nearest] == labels[:, None]))


@pytest.fixture(scope="module")
def tsne_map(clusters):
    return tsne_2d(clusters[0], seed=0)


@pytest.mark.slow
def test_tsne_keeps_neighbourhoods_that_pca_mixes(clusters, tsne_map):
    codes, labels = clusters
    pca_map = project_2d(codes).apply(codes)
    assert tsne_map.shape == (240, 2) and np.all(np.isfinite(tsne_map))
    # scikit-learn's trustworthiness and a brute-force neighbour count in numpy: both references agree.
    assert trustworthiness(codes, tsne_map, n_neighbors=10) > trustworthiness(codes, pca_map, n_neighbors=10) + 0.05
    assert knn_label_agreement(tsne_map, labels) > 0.95
    assert knn_label_agreement(pca_map, labels) < knn_label_agreement(tsne_map, labels) - 0.1
    assert neighbours_kept(codes, tsne_map) == pytest.approx(trustworthiness(codes, tsne_map, n_neighbors=10))


@pytest.mark.slow
def test_tsne_gives_the_same_map_for_the_same_codes_and_seed(clusters, tsne_map):
    codes, _ = clusters
    np.testing.assert_array_equal(tsne_2d(codes.copy(), seed=0), tsne_map)


def test_tsne_refuses_too_few_codes_and_copes_with_few():
    with pytest.raises(ValueError, match="at least 4 codes"):
        tsne_2d(np.zeros((3, 8)))
    assert tsne_2d(np.random.default_rng(0).normal(size=(12, 8))).shape == (12, 2)  # perplexity scaled down


def test_a_code_equal_to_a_fitted_one_lands_on_its_position(clusters, tsne_map):
    codes, _ = clusters
    for index in (0, 123, 239):
        placed = place_by_neighbours(codes[index], codes, tsne_map)
        np.testing.assert_array_equal(placed.position, tsne_map[index])
        assert placed.neighbours[0] == index and len(placed.neighbours) == 10


def test_a_new_code_lands_at_its_neighbours_weighted_mean(clusters, tsne_map):
    codes, labels = clusters
    code = codes[labels == 4].mean(axis=0) + 0.1  # inside cluster 4, on none of its points
    placed = place_by_neighbours(code, codes, tsne_map, k=7)
    # The reference, written out: the 7 nearest by a Python sort, then weights 1 / distance.
    distances = [(float(np.sqrt(((c - code) ** 2).sum())), i) for i, c in enumerate(codes)]
    nearest = sorted(distances)[:7]
    expected = sum(tsne_map[i] / d for d, i in nearest) / sum(1 / d for d, _ in nearest)
    np.testing.assert_allclose(placed.position, expected, rtol=1e-6)
    assert sorted(placed.neighbours.tolist()) == sorted(i for _, i in nearest)
    assert set(labels[placed.neighbours]) == {4}, "a code inside a cluster is placed by that cluster's digits"


@pytest.mark.slow
def test_the_layout_job_does_not_block_the_caller_and_gives_the_same_map(monkeypatch, clusters, tsne_map):
    codes, _ = clusters
    release = threading.Event()
    calls = []

    def held_tsne(given, seed):
        calls.append(seed)
        assert release.wait(30), "the test never let the layout finish"
        return tsne_2d(given, seed)

    monkeypatch.setitem(latent.LAYOUTS, "tsne", held_tsne)
    job = LayoutJob("tsne", codes, seed=0)
    assert not job.done and job.coords is None, "the constructor returned while the layout was still held"
    release.set()
    assert job.wait(60)
    assert calls == [0] and job.error is None
    np.testing.assert_array_equal(job.coords, tsne_map)
    assert job.kept > job.pca_kept, "the job measures both maps"
    np.testing.assert_array_equal(job.codes, codes)


def test_a_layout_that_fails_says_why_and_an_unknown_method_is_refused():
    job = LayoutJob("tsne", np.zeros((3, 8)))
    assert job.wait(30)
    assert isinstance(job.error, ValueError) and job.coords is None
    with pytest.raises(ValueError, match="Unknown map method 'isomap'"):
        LayoutJob("isomap", np.zeros((10, 8)))
