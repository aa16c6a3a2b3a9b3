"""Each model variant's loss against the guide's dense VAE: same data, same loss, sizes, epochs and seed.

    python tools/variant_losses.py [--epochs 20] [--source bundled] [--seeds 0 1]

Trains every variant with the app's compiled trainer and prints a Markdown table of the final
training loss and the test split's loss (by default the ELBO, nats per image: lower is better), and the
difference to the guide's one-hidden-layer dense VAE of the same sizes. A conditional model is
given each image's label, so part of what its code would otherwise carry comes for free.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from playground.config import Settings  # noqa: E402
from playground.data import load_dataset  # noqa: E402
from playground.training import Trainer, TrainingData  # noqa: E402

BASE = Settings(loss="elbo", latent_dim=8, intermediate_dim=256)  # the app's explore preset
VARIANTS = {
    "guide's dense VAE (1 hidden layer)": {},
    "2 hidden layers": {"hidden_layers": 2},
    "3 hidden layers": {"hidden_layers": 3},
    "conditional": {"conditional": True},
    "conditional, 2 hidden layers": {"conditional": True, "hidden_layers": 2},
    "convolutional (keras.io example), 256 units": {"architecture": "conv"},
    "convolutional, 64 units (the conv preset)": {"architecture": "conv", "intermediate_dim": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--source", default="bundled")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--latent-dim", type=int, default=BASE.latent_dim)
    parser.add_argument("--loss", choices=("elbo", "guide"), default=BASE.loss)
    parser.add_argument("--kl-weight", type=float, default=BASE.kl_weight)
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.source)
    data = TrainingData.from_dataset(dataset)
    results = {}
    for name, change in VARIANTS.items():
        runs = []
        for seed in args.seeds:
            settings = BASE.replace(epochs=args.epochs, seed=seed, latent_dim=args.latent_dim, loss=args.loss,
                                    kl_weight=args.kl_weight, **change)  # fmt: skip
            result = Trainer(settings, data).run()
            runs.append((result.loss, result.val_loss, result.steps_per_second))
            print(f"{name} seed {seed}: train {result.loss:.2f}, test {result.val_loss:.2f}, "
                  f"{result.steps_per_second:,.0f} steps/s", file=sys.stderr, flush=True)  # fmt: skip
        results[name] = [statistics.mean(column) for column in zip(*runs)]
    guide = results[next(iter(VARIANTS))]
    print(f"\n{dataset.source}; loss {args.loss}, KL weight {args.kl_weight:g}, latent {args.latent_dim}, "
          f"{args.epochs} epochs, batch 64, seeds {args.seeds}\n")  # fmt: skip
    print("| model | train loss | test loss | test vs the guide's | steps/s |")
    print("|---|---:|---:|---:|---:|")
    for name, (train, test, speed) in results.items():
        print(f"| {name} | {train:.4g} | {test:.4g} | {test - guide[1]:+.3g} | {speed:,.0f} |")
    print(json.dumps({name: dict(zip(("train", "test", "steps_per_second"), values))
                      for name, values in results.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
