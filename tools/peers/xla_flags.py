"""This trainer under several ``XLA_FLAGS`` settings, interleaved in one session, one process per setting.

    python tools/peers/xla_flags.py [--rounds 3] [--models guide,app] [--flags "NAME=FLAGS" ...]

XLA reads ``XLA_FLAGS`` once per process, so each setting gets its own process
(compiled once, then timed one epoch of full Fashion-MNIST per round, in a rotating
order, like ``compare.py``). The persistent XLA cache is off in them: a program
compiled under other flags must not be reused. Prints steps/s medians against the
default flags, steps per CPU-second, and each round's figures (the spread shows
how much of a difference is the machine's drift).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "idx:/usr/share/datasets/fashion-mnist"
MODELS = {
    "guide": {"intermediate_dim": 64, "latent_dim": 32, "loss": "guide"},
    "app": {"intermediate_dim": 256, "latent_dim": 8, "loss": "elbo"},
}
# Tried on 2026-11-26 (see the README); "onednn-dot" stops the compiler in this TensorFlow.
FLAGS = {
    "default": "",
    "onednn-custom-call": "--xla_cpu_experimental_onednn_custom_call=true",
    "onednn-dot": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot",
    "xnnpack-dot": "--xla_cpu_use_xnnpack=true --xla_cpu_experimental_xnn_fusion_type=dot",
    "vector-512": "--xla_cpu_prefer_vector_width=512",
    "concurrency-scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "no-thunk-runtime": "--xla_cpu_use_thunk_runtime=false",
    "fast-math": "--xla_cpu_enable_fast_math=true",
}


def serve(model: str) -> None:
    """The child: compile, say so, then time one epoch per line read."""
    sys.path.insert(0, str(ROOT))
    from playground.config import Settings
    from playground.data import load_dataset
    from playground.training import Trainer, TrainingData

    data = TrainingData.from_dataset(load_dataset("fashion_mnist", SOURCE))
    settings = Settings(dataset="fashion_mnist", epochs=1, seed=0, **MODELS[model])
    trainer = Trainer(settings, data, jit_compile=True, validate=False)
    trainer.run()  # compiles
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        cpu = time.process_time()
        result = trainer.run()
        print(json.dumps({"speed": result.steps / result.seconds, "cpu": result.steps / (time.process_time() - cpu)}),
              flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="guide,app")
    parser.add_argument("--flags", nargs="*", help='"NAME=FLAGS" settings (default: the list in this file)')
    args = parser.parse_args()
    settings = dict(FLAGS)
    if args.flags:
        settings = {"default": ""} | dict(item.split("=", 1) for item in args.flags)
    for model in args.models.split(","):
        children = {}
        for name, flags in settings.items():
            env = dict(os.environ, XLA_FLAGS=flags, PLAYGROUND_XLA_CACHE="off", TF_CPP_MIN_LOG_LEVEL="3")
            child = subprocess.Popen([sys.executable, __file__, "--serve", model], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
            if child.stdout.readline():
                children[name] = child
            else:
                print(f"{model}: {name} ({flags}) did not start: the compiler stopped", flush=True)
        speeds = {name: [] for name in children}
        cpu = {name: [] for name in children}
        names = list(children)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                children[name].stdin.write("run\n")
                children[name].stdin.flush()
                answer = json.loads(children[name].stdout.readline())
                speeds[name].append(answer["speed"])
                cpu[name].append(answer["cpu"])
            print(f"  {model} round {round_number + 1}: load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        base = statistics.median(speeds["default"])
        for name in names:
            median = statistics.median(speeds[name])
            rounds = ", ".join(f"{v:,.0f}" for v in speeds[name])
            print(f"{model} {name}: {median:,.0f} steps/s ({median / base:.2f}× default), "
                  f"{statistics.median(cpu[name]):,.0f} per CPU-second; rounds {rounds}", flush=True)  # fmt: skip
            children[name].stdin.write("quit\n")
            children[name].stdin.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        sys.exit(main())
