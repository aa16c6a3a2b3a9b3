"""Export an experiment: one zip with the model, its settings, its loss history and a script that retrains it.

experiment.zip/
    model.keras    the trained model (load it with ``playground.models.load_vae``)
    settings.json  the settings and the data the run used
    history.csv    every loss record
    train.py       a standalone script in the Keras guide's subclassing style: it rebuilds the model
                   from the same seeded initial weights and retrains it with the same settings,
                   batches and noise (Keras and NumPy only)
    data.npz       the run's images when they are a small sample the script cannot download
"""

from __future__ import annotations

import io
import json
import pprint
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from playground.config import Settings
from playground.data import Dataset
from playground.history import History
from playground.model_files import save_vae
from playground.models import VariationalAutoEncoder

SCRIPT_TEMPLATE = Path(__file__).with_name("export_script.py.txt")
MAX_PACKED_IMAGES = 10_000  # larger datasets come from keras.datasets in the script


def first_epoch_loss(history: History) -> float:
    """The mean training loss over the first epoch's steps, from records that each average a few steps."""
    total = steps = 0.0
    previous = 0
    for record in history.records("train"):
        if record.epoch != 1:
            break
        total += record.loss * (record.step - previous)
        steps += record.step - previous
        previous = record.step
    if not steps:
        raise ValueError("The history has no training records in its first epoch.")
    return total / steps


def script(settings: Settings, packed_data: bool) -> str:
    """The standalone training script for ``settings`` (reading data.npz when ``packed_data``)."""
    values = {**settings.to_dict(), "data_file": "data.npz" if packed_data else None}
    return SCRIPT_TEMPLATE.read_text().replace("__SETTINGS__", pprint.pformat(values, sort_dicts=False))


def experiment_zip(settings: Settings, history: History, model: VariationalAutoEncoder, dataset: Dataset) -> bytes:
    """The zip described above, in memory."""
    packed = dataset.origin != "keras" and len(dataset.x_train) <= MAX_PACKED_IMAGES
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with tempfile.TemporaryDirectory() as folder:
            archive.write(save_vae(model, Path(folder) / "model.keras"), "model.keras")
        about = {"settings": settings.to_dict(), "data": dataset.source}
        archive.writestr("settings.json", json.dumps(about, indent=2))
        archive.writestr("history.csv", history.to_csv())
        archive.writestr("train.py", script(settings, packed))
        if packed:
            archive.writestr("data.npz", _images_npz(dataset))
    return buffer.getvalue()


def _images_npz(dataset: Dataset) -> bytes:
    """The images as the 0-255 integers every source stores (the script divides by 255 as the app does), and
    the labels (a conditional model's script reads them)."""
    buffer = io.BytesIO()
    as_bytes = {name: np.rint(getattr(dataset, name) * 255).astype(np.uint8) for name in ("x_train", "x_test")}
    labels = {name: np.asarray(getattr(dataset, name), np.int32) for name in ("y_train", "y_test")}
    np.savez_compressed(buffer, **as_bytes, **labels)
    return buffer.getvalue()
