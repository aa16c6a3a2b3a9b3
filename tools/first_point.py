"""Start -> first loss record, through the workspace as the page uses it, cold and warm.

    python tools/first_point.py [--dataset mnist --source bundled] [--repeats 5]

"cold": Start at once after the model is made (the warm-up has not finished);
"warm": Start after the background warm-up has finished (a user who reads the page first,
or a recycled trainer). Each figure is the time from ``Workspace.start`` to the first
streamed training record, measured with the default settings. In worker processes (the
default) the server cannot see a worker's warm-up end, so "warm" is a second Start of the
same model after a Reset: the worker holds its trainer compiled.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from playground.config import Settings  # noqa: E402
from playground.data import load_dataset  # noqa: E402
from playground.jobs import Supervisor  # noqa: E402
from playground.training import TrainingData  # noqa: E402
from playground.workspace import LoadedData, Workspace  # noqa: E402


def first_point(workspace: Workspace) -> float:
    """Seconds from Start to the first training record in the trainer's history."""
    started = time.perf_counter()
    workspace.start()
    while not workspace.trainer.history.records("train"):
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    workspace.stop(wait=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--source", default="bundled")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="default: the settings' (1000 makes it XLA)")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, args.source)
    loaded = LoadedData(dataset, TrainingData.from_dataset(dataset))
    supervisor = Supervisor(max_workers=1)

    def load_data(_name: str) -> LoadedData:
        return loaded

    cold, warm = [], []
    for seed in range(args.repeats):  # a new seed each time: a new trainer, nothing compiled yet
        settings = Settings(dataset=args.dataset, seed=1000 + seed)
        if args.epochs is not None:
            settings = settings.replace(epochs=args.epochs)
        workspace = Workspace(settings, load_data, supervisor)
        cold.append(first_point(workspace))
        workspace.close()
        workspace = Workspace(settings.replace(seed=2000 + seed), load_data, supervisor)
        if hasattr(workspace.trainer, "warm"):  # a trainer in this process: its warm-up thread
            while not workspace.trainer.warm:
                time.sleep(0.01)
        else:  # in a worker: a first run compiles, a Reset keeps the worker's trainer
            first_point(workspace)
            workspace.reset()
        warm.append(first_point(workspace))
        workspace.close()
    epochs = "" if args.epochs is None else f", {args.epochs} epochs"
    print(f"{dataset.source}; default settings{epochs}; load average {os.getloadavg()[0]:.1f}")
    for label, values in (("cold (Start at once)", cold), ("warm (after the warm-up)", warm)):
        print(f"{label}: median {statistics.median(values):.2f} s, range {min(values):.2f}-{max(values):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
