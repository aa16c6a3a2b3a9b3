"""Training runs on disk: one folder each with settings, loss history and the trained model.

<run folder>/
    config.json    settings, dataset line, how the run ended
    history.json   every loss record (``History.to_json``)
    history.csv    the same, for spreadsheets
    model.keras    the trained VAE
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from playground.config import Settings
from playground.history import History
from playground.model_files import load_vae, save_vae, write_text
from playground.models import ORIGINAL_DIM, VariationalAutoEncoder

RUNS_DIR_ENV = "PLAYGROUND_RUNS_DIR"
MAX_RUNS_PER_WORKSPACE = 30  # older runs are deleted first
_WORKSPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class RunInfo:
    """What a runs list shows about one saved run."""

    path: Path
    name: str
    settings: Settings
    created: float  # seconds since the epoch
    summary: dict[str, Any]


def differing_settings(runs: Sequence[RunInfo]) -> list[str]:
    """The settings (field names, in ``Settings``' order) that are not the same in all ``runs``."""
    names = [spec.name for spec in dataclasses.fields(Settings)]
    return [name for name in names if len({getattr(run.settings, name) for run in runs}) > 1]


def reconstruction_mse(model: VariationalAutoEncoder, images: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Mean squared error per pixel between ``images`` [N, 28, 28] and the model's reconstructions from
    their mean codes: one measure for runs of any loss or KL weight, whose own loss values differ in scale.
    A conditional model reads ``labels`` [N] too."""
    flat = np.asarray(images, dtype=np.float32).reshape(-1, ORIGINAL_DIM)  # [N, 784]
    zeros = np.zeros((len(flat), model.latent_dim), np.float32)  # decode the mean codes
    reconstruction = np.asarray(model.forward(flat, epsilon=zeros, labels=labels).reconstruction)  # [N, 784]
    return float(np.mean((reconstruction - flat) ** 2))


def default_runs_root() -> Path:
    """``PLAYGROUND_RUNS_DIR``, else ``~/.cache/vae-playground/runs``."""
    configured = os.environ.get(RUNS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vae-playground" / "runs"


def workspace_dir(root: Path, workspace: str) -> Path:
    """A user's own runs folder under ``root``; the id must be a plain token."""
    if not _WORKSPACE_PATTERN.match(workspace or ""):
        raise ValueError("The workspace id in the address is not valid; remove it to start a new workspace.")
    return root / workspace


def write_run(
    folder: Path, settings: Settings, history: History, model: VariationalAutoEncoder, summary: dict[str, Any]
) -> Path:
    """Write a run into ``folder`` (made if missing), each file replaced atomically, config.json last:
    a run whose config can be read has all its files."""
    folder.mkdir(parents=True, exist_ok=True)
    save_vae(model, folder / "model.keras")
    write_text(folder / "history.json", history.to_json())
    write_text(folder / "history.csv", history.to_csv())
    config = {"settings": settings.to_dict(), "created": time.time(), "summary": summary}
    write_text(folder / "config.json", json.dumps(config, indent=2))
    return folder


def new_run_folder(workspace: Path) -> Path:
    """The next free ``run-NNN`` folder name in ``workspace`` (not created yet)."""
    numbers = [int(p.name[4:]) for p in workspace.glob("run-*") if p.name[4:].isdigit()]
    return workspace / f"run-{max(numbers, default=0) + 1:03d}"


def prune_runs(workspace: Path, keep: int = MAX_RUNS_PER_WORKSPACE) -> None:
    """Delete the oldest runs beyond ``keep``."""
    for stale in list_runs(workspace)[keep:]:
        shutil.rmtree(stale.path, ignore_errors=True)


def read_run_info(folder: Path) -> RunInfo:
    try:
        config = json.loads((folder / "config.json").read_text())
        settings = Settings.from_dict(config["settings"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{folder.name} is not a readable run: {error}") from None
    return RunInfo(folder, folder.name, settings, float(config.get("created", 0)), dict(config.get("summary", {})))


def list_runs(workspace: Path) -> list[RunInfo]:
    """Readable runs in ``workspace``, newest first; unreadable folders are skipped."""
    if not workspace.is_dir():
        return []
    runs = []
    for folder in workspace.glob("run-*"):
        try:
            runs.append(read_run_info(folder))
        except ValueError:
            continue
    return sorted(runs, key=lambda run: (run.created, run.name), reverse=True)


def read_history(run: RunInfo) -> History:
    try:
        return History.from_json((run.path / "history.json").read_text())
    except OSError as error:
        raise ValueError(f"{run.name} has no readable history: {error}") from None


def read_model(run: RunInfo) -> VariationalAutoEncoder:
    return load_vae(run.path / "model.keras")
