"""``python -m playground train`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from playground.config import Settings
from playground.data import load_dataset
from playground.history import History
from playground.model_files import load_vae
from playground.models import build_vae
from playground.training import Trainer
from tests.reference import vae_forward

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "playground", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_train_json_out_and_tensorboard(tmp_path):
    out, logdir = tmp_path / "run", tmp_path / "logs"
    done = run_cli(
        "train", "--source", "bundled", "--epochs", "2", "--loss", "elbo", "--latent-dim", "4",
        "--kl-weight", "0.5", "--seed", "3", "--out", str(out), "--logdir", str(logdir), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 * 71 and summary["epochs"] == 2
    for key in ("seconds", "steps_per_second", "loss", "reconstruction_loss", "kl_loss", "val_loss"):
        assert isinstance(summary[key], float) and summary[key] > 0, key
    assert summary["loss"] == pytest.approx(summary["reconstruction_loss"] + 0.5 * summary["kl_loss"], rel=1e-4)
    assert "bundled sample" in done.stderr and "epoch 2 done" in done.stderr
    model = load_vae(out / "model.keras")
    assert model.latent_dim == 4
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["kl_weight"] == 0.5 and config["summary"]["reason"] == "finished"
    history = History.from_json((out / "history.json").read_text())
    assert [r.epoch for r in history.records("val")] == [1, 2]
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == len(history) and rows[0]["split"] == "train"
    assert list(logdir.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--latent-dim", "0"], "Latent size must be between 1 and 64 (got 0)"),
        (["--intermediate-dim", "5000"], "Intermediate size must be between 8 and 1024 (got 5000)"),
        (["--learning-rate", "-1"], "Learning rate must be between 1e-06 and 10"),
        (["--batch-size", "2.5"], "Batch size must be a whole number"),
        (["--source", "idx:/no/such/folder"], "does not hold the four IDX files"),
    ],
)
def test_bad_values_end_with_a_clear_error(flags, message):
    done = run_cli("train", "--source", "bundled", *flags)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def reconstruction_error(model, images: np.ndarray) -> float:
    """Mean squared error of the reconstructions decoded from the codes' means, in numpy."""
    images = images.reshape(-1, 784)
    _, _, reconstruction = vae_forward(model, images, np.zeros((len(images), model.latent_dim), np.float32))
    return float(np.mean((images - reconstruction) ** 2))


@pytest.mark.parametrize("learning_rate", ["0.03", "10"])
def test_a_run_that_diverges_says_so_exits_non_zero_and_saves_a_model_no_worse_than_untrained(tmp_path, learning_rate):
    out = tmp_path / "run"
    sizes = ["--latent-dim", "64", "--intermediate-dim", "1024", "--loss", "elbo"]
    done = run_cli("train", "--source", "bundled", *sizes, "--learning-rate", learning_rate, "--epochs", "3",
                   "--out", str(out), "--json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["reason"] == "diverged" and summary["diverged_step"] >= 1
    assert ("exploded" if summary["loss_ratio"] else "stopped being a finite number") in done.stderr
    settings = Settings(loss="elbo", latent_dim=64, intermediate_dim=1024, epochs=summary["restored_epoch"] or 1)
    x_test = load_dataset("mnist", "bundled").x_test
    saved = reconstruction_error(load_vae(out / "model.keras"), x_test)
    untrained = reconstruction_error(build_vae(settings), x_test)
    if summary["restored_epoch"] == 0:
        assert "the initial weights were kept" in done.stderr
        restored = untrained
    else:  # the epoch it names, trained again from the same seed
        assert f"end of epoch {summary['restored_epoch']} were restored" in done.stderr
        twin = Trainer(settings, load_dataset("mnist", "bundled"), jit_compile=False)
        twin.run()
        restored = reconstruction_error(twin.model, x_test)
    assert saved <= untrained * (1 + 1e-6) and saved <= restored * (1 + 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags",
    [["--hidden-layers", "3", "--conditional"], ["--architecture", "conv", "--conditional", "--hidden-layers", "2"]],
    ids=["deep-conditional", "conv-conditional"],
)
def test_train_builds_and_saves_each_model_variant(tmp_path, flags):
    out = tmp_path / "run"
    done = run_cli("train", "--source", "bundled", "--epochs", "1", "--loss", "elbo", "--latent-dim", "2",
                   "--intermediate-dim", "32", *flags, "--out", str(out), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 71 and np.isfinite(summary["val_loss"])
    model = load_vae(out / "model.keras")
    expected = Settings(**{**Settings().to_dict(), "hidden_layers": int(flags[flags.index("--hidden-layers") + 1]),
                           "conditional": True, "architecture": "conv" if "conv" in flags else "dense"})  # fmt: skip
    assert (model.hidden_layers, model.classes, model.architecture) == (expected.hidden_layers, 10,
                                                                        expected.architecture)  # fmt: skip
    saved = json.loads((out / "config.json").read_text())["settings"]
    assert {k: saved[k] for k in ("hidden_layers", "conditional", "architecture")} == \
        {"hidden_layers": expected.hidden_layers, "conditional": True, "architecture": expected.architecture}
