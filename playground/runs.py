"""Training runs on disk: one folder each with settings, loss history and the trained model.

Several app servers (replicas behind a load balancer) may share one runs root
(``PLAYGROUND_RUNS_DIR`` on shared storage). A workspace's folder is written by
one replica at a time: the one holding its ``WorkspaceLease`` (``.lease.json``:
owner and heartbeat).

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
import socket
import threading
import time
import uuid
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
LEASE_FILE = ".lease.json"
LEASE_HEARTBEAT_SECONDS = 5.0
# A lease whose heartbeat is older than this was left by a replica that died (or lost the shared disk).
LEASE_STALE_SECONDS = 30.0
# How long a replica waits for another to let go of a workspace (a page load waits this long at most).
LEASE_WAIT_SECONDS = 3.0
_PROCESS = uuid.uuid4().hex  # tells this process from an earlier one that had the same pid
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


class WorkspaceBusy(ValueError):
    """Another app server holds the workspace's folder."""

    def __init__(self, message: str, host: str):
        super().__init__(message)
        self.host = host


class WorkspaceLease:
    """The right to write one workspace's folder, held by one workspace object on one replica at a time.

    ``.lease.json`` names the holder (host, pid, process, workspace) and its
    heartbeat, rewritten every ``LEASE_HEARTBEAT_SECONDS`` by a daemon thread.
    Another replica takes the folder over only once the holder lets go
    (``release``) or its heartbeat is ``LEASE_STALE_SECONDS`` old; a holder on
    this host whose process is gone is stale at once (a restarted server).
    Replicas' clocks are assumed to agree within a few seconds (NTP).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LEASE_FILE
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "process": _PROCESS, "id": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False  # another replica took the folder over (our heartbeat stopped for too long)

    def acquire(self, wait: float | None = None) -> WorkspaceLease:
        """Take the lease, waiting up to ``wait`` s (``LEASE_WAIT_SECONDS``) for its holder; WorkspaceBusy if it
        is still held then."""
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (LEASE_WAIT_SECONDS if wait is None else wait)
        while not self._try_take():
            if time.monotonic() >= deadline:
                holder = self.holder() or {}
                host = str(holder.get("host", "?"))
                raise WorkspaceBusy(
                    f"This workspace is open on another app server ({host}). Close its tabs there, or wait "
                    f"{LEASE_STALE_SECONDS:.0f} s if that server stopped, then reload this page.", host
                )
            time.sleep(0.2)
        self._thread = threading.Thread(target=self._beat, name="playground-lease", daemon=True)
        self._thread.start()
        return self

    def holder(self) -> dict[str, Any] | None:
        """What the lease file says (None if there is none or it cannot be read)."""
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    @property
    def held(self) -> bool:
        holder = self.holder()
        return holder is not None and holder.get("id") == self.owner["id"]

    def release(self) -> None:
        """Stop the heartbeat and let go (the file goes, if it is still ours)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.held:
            self.path.unlink(missing_ok=True)

    def _try_take(self) -> bool:
        holder = self.holder()
        if holder is not None and holder.get("id") != self.owner["id"] and not self._stale(holder):
            return False
        if holder is None and not self.path.exists():
            try:  # first come: only one replica creates the file
                handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(handle, "w") as file:
                file.write(json.dumps({**self.owner, "heartbeat": time.time()}))
            return True
        self._write()  # a stale or unreadable lease: take it over, then check that no other replica did too
        time.sleep(0.1)
        return self.held

    def _stale(self, holder: dict[str, Any]) -> bool:
        same_host_earlier = holder.get("host") == self.owner["host"] and holder.get("process") != _PROCESS
        if same_host_earlier and (holder.get("pid") == os.getpid() or not _pid_alive(int(holder.get("pid", 0)))):
            return True  # a server on this host that stopped (or this process's predecessor with its pid)
        return time.time() - float(holder.get("heartbeat", 0)) > LEASE_STALE_SECONDS

    def _write(self) -> None:
        write_text(self.path, json.dumps({**self.owner, "heartbeat": time.time()}))

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_HEARTBEAT_SECONDS):
            if not self.held:
                self.lost = True
                return
            self._write()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
