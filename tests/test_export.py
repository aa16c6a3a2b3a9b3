"""Export an experiment: the zip's contents, and its script retraining outside the app to the same first epoch."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest

from playground.config import Settings
from playground.export import experiment_zip, first_epoch_loss
from playground.history import History, Record
from playground.model_files import load_vae
from playground.training import Trainer


def _record(split: str, epoch: int, step: int, loss: float) -> Record:
    return Record(split, epoch, step, loss, loss, 0.0, 1.0, 0.0, 0.0)


def test_first_epoch_loss_weighs_each_record_by_its_steps():
    history = History([_record("train", 1, 8, 10.0), _record("train", 1, 71, 4.0), _record("val", 1, 71, 3.0),
                       _record("train", 2, 142, 1.0)])  # fmt: skip
    assert first_epoch_loss(history) == pytest.approx((8 * 10.0 + 63 * 4.0) / 71)
    with pytest.raises(ValueError, match="no training records"):
        first_epoch_loss(History())


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [
        Settings(loss="elbo", latent_dim=4, intermediate_dim=64, epochs=1, kl_weight=0.5, seed=7),
        Settings(loss="guide", latent_dim=8, intermediate_dim=32, epochs=1, kl_warmup_steps=50, batch_size=100),
        Settings(loss="elbo", latent_dim=3, intermediate_dim=32, epochs=1, hidden_layers=3, conditional=True, seed=2),
        Settings(loss="elbo", latent_dim=2, intermediate_dim=16, epochs=1, architecture="conv", conditional=True,
                 hidden_layers=2, batch_size=256),
    ],
    ids=["elbo", "guide-warmup-partial-batch", "deep-conditional", "conv-conditional"],
)
def test_the_exported_script_retrains_to_the_same_first_epoch_outside_the_repo(mnist, tmp_path, settings):
    trainer = Trainer(settings, mnist)
    trainer.run()
    archive = zipfile.ZipFile(BytesIO(experiment_zip(settings, trainer.history, trainer.model, mnist)))
    assert sorted(archive.namelist()) == ["data.npz", "history.csv", "model.keras", "settings.json", "train.py"]
    folder = tmp_path / "experiment"
    archive.extractall(folder)
    assert json.loads((folder / "settings.json").read_text())["settings"] == settings.to_dict()
    assert load_vae(folder / "model.keras").latent_dim == settings.latent_dim
    script = (folder / "train.py").read_text()
    assert "class Encoder(layers.Layer)" in script and "playground" not in script.replace("VAE Playground", "")
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)}  # no PYTHONPATH: no package
    done = subprocess.run([sys.executable, str(folder / "train.py"), "--epochs", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == trainer.steps_per_epoch
    assert result["epoch_losses"][0] == pytest.approx(first_epoch_loss(trainer.history), rel=0.01)
    val = trainer.history.records("val")[0].loss
    assert result["val_losses"][0] == pytest.approx(val, rel=0.01)


def test_the_model_tab_offers_the_experiment_once_trained(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.support import wait_for
    from tests.test_app import APP, button

    monkeypatch.setenv("PLAYGROUND_SOURCE", "bundled")
    monkeypatch.setenv("PLAYGROUND_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("playground.jobs.ABANDON_SECONDS", 3600.0)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"latent": "2", "hidden": "16", "epochs": "1"})
    at.session_state["tab_id"] = "model"
    at.run()

    def offered():
        return next(b for b in at.get("download_button") if b.proto.label == "Download the experiment (zip)")

    assert offered().proto.disabled, "nothing to export before a run"
    button(at, "Start training").click().run()
    workspace = at.session_state["workspace"]
    wait_for(lambda: not workspace.training, 120, "training did not end")
    at.run()
    assert not offered().proto.disabled and not at.exception
