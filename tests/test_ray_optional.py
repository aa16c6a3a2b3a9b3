"""Ray is optional: without PLAYGROUND_RAY_ADDRESS the app imports every module and trains without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imports every module of the package but the Ray backend (the page's too), trains one epoch through the
# supervisor the app would make, and prints what it imported.
SCRIPT = """
import importlib, json, pkgutil, sys, time
import playground
found = pkgutil.walk_packages(playground.__path__, "playground.")
names = [m.name for m in found if m.name not in ("playground.ray_backend", "playground.__main__")]
for name in names:
    importlib.import_module(name)
from playground.config import Settings
from playground.data import Dataset, load_dataset
from playground.jobs import supervisor_from_env
from playground.training import TrainingData
from playground.workspace import LoadedData, Workspace
full = load_dataset("mnist", "bundled")
tiny = Dataset(name="mnist", x_train=full.x_train[:300], y_train=full.y_train[:300], x_test=full.x_test[:50],
               y_test=full.y_test[:50], source="tiny", origin="bundled")
loaded = LoadedData(tiny, TrainingData.from_dataset(tiny))
supervisor = supervisor_from_env()
workspace = Workspace(Settings(latent_dim=2, intermediate_dim=16, epochs=1), lambda name: loaded, supervisor)
workspace.start()
deadline = time.monotonic() + 240
while workspace.training and time.monotonic() < deadline:
    time.sleep(0.1)
ray = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
print(json.dumps({"modules": len(names), "state": workspace.status().state, "ray": ray,
                  "supervisor": type(supervisor).__name__}))
"""


@pytest.mark.slow
def test_without_a_ray_address_ray_is_never_imported():
    env = {key: value for key, value in os.environ.items() if key != "PLAYGROUND_RAY_ADDRESS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["modules"] > 20 and found["state"] == "finished", found
    assert found["supervisor"] == "Supervisor"
    assert found["ray"] == [], f"Ray was imported without PLAYGROUND_RAY_ADDRESS: {found['ray'][:5]}"


def test_actor_resources_come_from_the_environment_and_the_cluster(monkeypatch):
    pytest.importorskip("ray")
    from playground.ray_backend import RAY_CPUS_ENV, RAY_GPUS_ENV, actor_resources

    monkeypatch.delenv(RAY_CPUS_ENV, raising=False)
    monkeypatch.delenv(RAY_GPUS_ENV, raising=False)
    assert actor_resources(cluster_gpus=0) == (1.0, 0.0)
    assert actor_resources(cluster_gpus=4) == (1.0, 1.0), "a GPU each when the cluster has GPUs"
    monkeypatch.setenv(RAY_CPUS_ENV, "2")
    monkeypatch.setenv(RAY_GPUS_ENV, "0.25")
    assert actor_resources(cluster_gpus=1) == (2.0, 0.25)
    monkeypatch.setenv(RAY_GPUS_ENV, "0")
    assert actor_resources(cluster_gpus=8) == (2.0, 0.0), "an operator can keep training off the GPUs"
    for name, value, message in [(RAY_CPUS_ENV, "0", "more than 0"), (RAY_CPUS_ENV, "lots", "a number"),
                                 (RAY_GPUS_ENV, "-1", "cannot be negative")]:  # fmt: skip
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=message):
            actor_resources(cluster_gpus=0)
        monkeypatch.setenv(name, "1")
