"""load_vae on everything but a good model file: each refused with a ValueError and nothing run."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from playground.config import Settings
from playground.model_files import atomic_write, load_vae, save_vae, write_text
from playground.models import VariationalAutoEncoder, build_vae


@pytest.fixture
def good_file(tmp_path):
    return save_vae(build_vae(Settings(latent_dim=3, intermediate_dim=16)), tmp_path / "good.keras")


def rewrite_config(source, target, change) -> None:
    """Copy a .keras archive, passing its config.json through ``change``."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            new.writestr(item, data)


def test_a_good_file_loads(good_file):
    model = load_vae(good_file)
    assert isinstance(model, VariationalAutoEncoder) and model.latent_dim == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a .keras model file"),
        (np.random.default_rng(0).bytes(5000), "not a .keras model file"),
        (b"PK\x03\x04" + b"\x00" * 100, "not a .keras model file|damaged"),
    ],
    ids=["empty", "random", "broken-zip"],
)
def test_files_that_are_not_models_are_refused(tmp_path, content, message):
    path = tmp_path / "x.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_vae(path)


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no model file"):
        load_vae(tmp_path / "nothing.keras")


def test_a_truncated_model_file_is_refused(good_file, tmp_path):
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good_file.read_bytes()[:-300])
    with pytest.raises(ValueError):
        load_vae(cut)


def test_a_zip_without_a_model_is_refused(tmp_path):
    path = tmp_path / "notes.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="no config.json"):
        load_vae(path)


def test_a_lambda_layer_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    inputs = keras.Input((784,))
    # A function that leaves a file behind when it runs; no closure, so Keras can save its bytecode.
    touch = eval(f"lambda x: x * 1.0 + float(open({str(marker)!r}, 'w').write('ran') * 0)")  # noqa: S307
    outputs = keras.layers.Lambda(touch)(inputs)
    model = keras.Model(inputs, outputs)
    marker.unlink()  # calling it once while building wrote the marker
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="Lambda layer"):
        load_vae(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_another_keras_model_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(4)])
    model.save(tmp_path / "dense.keras")
    with pytest.raises(ValueError, match="not a VariationalAutoEncoder"):
        load_vae(tmp_path / "dense.keras")


def test_a_vae_over_other_inputs_is_refused(tmp_path):
    vae = VariationalAutoEncoder(100, 16, 2)
    vae.build((None, 100))
    vae.save(tmp_path / "small.keras")
    with pytest.raises(ValueError, match="over 100 inputs; this app needs 784"):
        load_vae(tmp_path / "small.keras")


def test_sizes_beyond_the_apps_bounds_are_refused_before_keras_allocates_them(good_file, tmp_path):
    huge = tmp_path / "huge.keras"
    rewrite_config(good_file, huge, lambda config: config["config"].update(intermediate_dim=10**9))
    with pytest.raises(ValueError, match="intermediate size 1000000000"):
        load_vae(huge)


def test_a_config_that_does_not_match_its_weights_is_refused(good_file, tmp_path):
    other = tmp_path / "other.keras"
    rewrite_config(good_file, other, lambda config: config["config"].update(latent_dim=5))
    with pytest.raises(ValueError, match="could not be loaded as a VAE"):
        load_vae(other)


def test_a_zip_bomb_is_refused_without_unpacking(tmp_path, good_file):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(good_file) as old, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            new.writestr(item, old.read(item.filename))
        new.writestr("padding.bin", b"\x00" * (300 * 2**20))  # compresses to ~300 KB
    assert bomb.stat().st_size < 2 * 2**20
    with pytest.raises(ValueError, match="unpacks to more than"):
        load_vae(bomb)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = write_text(tmp_path / "config.json", "old")

    def fail_halfway(temp_name):
        with open(temp_name, "w") as stream:
            stream.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail_halfway)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"], "no temporary file is left behind"
    write_text(path, "new")
    assert path.read_text() == "new"


def test_runs_are_written_with_the_one_atomic_helper():
    import inspect

    from playground import runs

    assert runs.write_text is write_text
    assert "mkstemp" not in inspect.getsource(runs), "no second copy of the atomic write"
