"""The cost of training in a worker process: the trainer's speed there against in this process
(the same timers as ``python -m playground bench``, interleaved), and the update rate the server sees.

    python tools/worker_figures.py [--source bundled] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playground.bench import _in_worker, _trainer  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.data import load_dataset  # noqa: E402
from playground.training import Control, TrainingData  # noqa: E402
from playground.workers import RemoteTrainer, pool  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="bundled")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to count updates")
    args = parser.parse_args()
    data = load_dataset("mnist", args.source)
    for settings in (Settings(epochs=3), Settings(loss="elbo", latent_dim=8, intermediate_dim=256, epochs=3)):
        here, there = _trainer(data, settings, jit="auto"), _in_worker(data, settings)
        local, worker = [], []
        for _ in range(args.rounds):
            steps, seconds, _ = here()
            local.append(steps / seconds)
            steps, seconds, _ = there()
            worker.append(steps / seconds)
        ratio = statistics.median(worker) / statistics.median(local)
        print(f"784-{settings.intermediate_dim}-{settings.latent_dim} steps/s: in this process "
              f"{statistics.median(local):,.0f} {[round(x) for x in local]}, in a worker "
              f"{statistics.median(worker):,.0f} {[round(x) for x in worker]}: {ratio:.2f}x")  # fmt: skip
    settings = Settings(loss="elbo", latent_dim=8, intermediate_dim=256, epochs=1000)
    trainer = RemoteTrainer(settings, TrainingData.from_dataset(data), pool())
    control, records = Control(), []
    run = threading.Thread(target=trainer.run, args=(records.append, control))
    run.start()
    while trainer.step == 0:
        time.sleep(0.05)
    started, first, versions = time.monotonic(), len(records), set()
    while time.monotonic() - started < args.seconds:
        versions.add(trainer.weights()[0])
        time.sleep(0.02)
    count = len(records) - first
    control.stop()
    run.join()
    print(f"the server received {count / args.seconds:.1f} loss records and {len(versions) / args.seconds:.1f} "
          f"weight versions a second over {args.seconds:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
