"""Model files: write anything atomically, save a VAE, and load one only after checking it is safe.

A ``.keras`` file is a zip archive of a JSON config and the weights. Loading an
untrusted one could allocate huge layers or run code (a ``Lambda`` layer), so
``load_vae`` reads the archive's config itself first and refuses anything but
this package's VAE with sizes the app allows, then lets Keras load it in safe mode.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras

from playground.config import ARCHITECTURES, bounds
from playground.models import CLASSES, ORIGINAL_DIM, PACKAGE, VariationalAutoEncoder

# A .keras file of the largest VAE the settings allow is about 7 MB (3 hidden layers of 1,024: 14 MB;
# the convolutional one with 3 of 1,024: 40 MB).
MAX_MODEL_BYTES = 64 * 1024 * 1024


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Have ``write(temp_name)`` fill a temporary file beside ``path``, then rename it to ``path``.

    A crash (or a full disk) mid-write leaves any old file intact and no
    temporary file behind; readers see the old file or the new one, never half.
    The temporary name keeps ``path``'s suffix, which Keras' ``save`` checks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temp_name)
        os.replace(temp_name, path)
    finally:
        if os.path.exists(temp_name):
            os.remove(temp_name)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace the text file at ``path`` atomically."""
    return atomic_write(path, lambda temp_name: Path(temp_name).write_text(text, encoding="utf-8"))


def save_vae(model: VariationalAutoEncoder, path: str | os.PathLike) -> Path:
    """Save ``model`` as a .keras file atomically: a crash mid-save leaves any old file intact."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"A model file must end in .keras (got {path.name!r}).")
    return atomic_write(path, model.save)


def load_vae(path: str | os.PathLike) -> VariationalAutoEncoder:
    """Load a VAE saved by this package, in Keras safe mode, or raise a ValueError saying why not."""
    path = Path(path)
    _check_vae_file(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many kinds; the user needs one sentence.
        raise ValueError(f"{path.name} could not be loaded as a VAE: {error}") from error
    if not isinstance(model, VariationalAutoEncoder):
        raise ValueError(f"{path.name} holds a {type(model).__name__}, not this app's VAE.")
    return model


def _check_vae_file(path: Path) -> None:
    """Refuse, before Keras reads it, anything that is not a reasonable VAE .keras file."""
    if not path.is_file():
        raise ValueError(f"There is no model file at {path}.")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_MODEL_BYTES // 2**20} MB; no VAE here is that big.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path.name} is not a .keras model file (it is not a zip archive).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
            config = json.loads(archive.read("config.json")) if "config.json" in names else None
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path.name} is a damaged .keras file ({error}).") from None
    if config is None or "model.weights.h5" not in names:
        raise ValueError(f"{path.name} is not a .keras model file (it has no config.json or weights).")
    if unpacked > 4 * MAX_MODEL_BYTES:
        raise ValueError(f"{path.name} unpacks to more than {4 * MAX_MODEL_BYTES // 2**20} MB; refused.")
    _check_vae_config(path.name, config)


def _check_vae_config(name: str, config: dict) -> None:
    """The model config must be this package's VAE over 784 inputs with sizes the app allows."""
    if "Lambda" in _class_names(config):
        raise ValueError(f"{name} contains a Lambda layer, which could run arbitrary code; it was not loaded.")
    if (
        not isinstance(config, dict)
        or config.get("class_name") != "VariationalAutoEncoder"
        or config.get("registered_name") != f"{PACKAGE}>VariationalAutoEncoder"
    ):
        raise ValueError(f"{name} is a Keras model, but not a VariationalAutoEncoder saved by this app.")
    inner = config.get("config") or {}
    if inner.get("original_dim") != ORIGINAL_DIM:
        raise ValueError(f"{name} is a VAE over {inner.get('original_dim')} inputs; this app needs 784 (28 x 28).")
    # Files saved before the variants existed have no hidden_layers, classes or architecture: the guide's.
    sizes = {"hidden_layers": inner.get("hidden_layers", 1)}
    for field_name in ("latent_dim", "intermediate_dim", "hidden_layers"):
        meta = bounds(field_name)
        value = sizes.get(field_name, inner.get(field_name))
        if isinstance(value, bool) or not isinstance(value, int) or not meta["low"] <= value <= meta["high"]:
            raise ValueError(
                f"{name} has {meta['label'].lower()} {value!r}; this app allows {meta['low']} to {meta['high']}."
            )
    classes = inner.get("classes", 0)
    if isinstance(classes, bool) or classes not in (0, CLASSES):
        raise ValueError(f"{name} is conditional on {classes!r} classes; this app's conditional VAE has {CLASSES}.")
    architecture = inner.get("architecture", "dense")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{name} has architecture {architecture!r}; this app knows {', '.join(ARCHITECTURES)}.")


def _class_names(node) -> set[str]:
    """Every ``class_name`` anywhere in a nested Keras config."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str):
                found.add(item["class_name"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
