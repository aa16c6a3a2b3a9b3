"""This trainer against JAX's ``jit`` + ``lax.scan`` loop, interleaved in one session, as one table.

    python tools/peers/compare.py --jax-python ENV/bin/python [--rounds 5] [--epochs 1]

``ENV`` is a scratch environment with ``pip install jax optax numpy`` (JAX is not a
project dependency). Run it from the repository root with the project's Python.
Both models of issue 15 train on full Fashion-MNIST (Adam 1e-3, batch 64): the
guide's 784-64-32 with the guide's loss and the app's 784-256-8 with the ELBO.
The trainer runs as ``python -m playground train`` runs it (0.4 s calls) and as
the page does (0.1 s calls, for a live curve and a quick stop).
Each round runs every contender once, in a rotating order, so that a machine
whose speed drifts treats them alike; compile time is excluded everywhere.
Each row also shows steps per CPU-second (the contender's own process): on a
machine shared with other work it moves less than the wall-clock speed does.
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
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from playground.bench import format_ceiling, machine_info, matmul_ceiling, step_gflop  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.data import load_dataset  # noqa: E402
from playground.training import SECONDS_PER_CALL, UNWATCHED_SECONDS_PER_CALL, Trainer, TrainingData  # noqa: E402

MODELS = {
    "guide": {"intermediate_dim": 64, "latent_dim": 32, "loss": "guide"},
    "app": {"intermediate_dim": 256, "latent_dim": 8, "loss": "elbo"},
}
DEFAULT_SOURCE = "idx:/usr/share/datasets/fashion-mnist"


class JaxPeer:
    """``tools/peers/jax_vae.py --serve`` in its own environment: compiled once, timed on request."""

    def __init__(self, python: str, source: str, model: dict, seed: int):
        command = [python, str(ROOT / "tools/peers/jax_vae.py"), "--serve", "--source", source, "--seed", str(seed)]
        command += ["--loss", model["loss"], "--intermediate-dim", str(model["intermediate_dim"])]
        command += ["--latent-dim", str(model["latent_dim"])]
        # XLA_FLAGS set for this trainer's XLA (an experiment) must not change JAX's own defaults.
        env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
        )
        self.info = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("The JAX peer stopped; run tools/peers/jax_vae.py by hand to see why.")
        return json.loads(line)

    def run(self, epochs: int) -> tuple[int, float, float]:
        self.process.stdin.write(f"run {epochs}\n")
        self.process.stdin.flush()
        answer = self._answer()
        return answer["steps"], answer["seconds"], answer["cpu_seconds"]

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.wait(timeout=30)


def trainer_timer(settings: Settings, data: TrainingData, jit: bool | str, seconds_per_call: float):
    """A trainer compiled by one warm-up run; each call times ``settings.epochs`` more epochs (wall clock
    and this process's CPU time)."""
    trainer = Trainer(settings, data, jit_compile=jit, validate=False, seconds_per_call=seconds_per_call)
    trainer.run()  # compiles

    def run(_epochs: int) -> tuple[int, float, float]:
        cpu_started = time.process_time()
        result = trainer.run()
        return result.steps, result.seconds, time.process_time() - cpu_started

    return run, trainer


def compare_model(name: str, data: TrainingData, args) -> dict:
    settings = Settings(dataset="fashion_mnist", epochs=args.epochs, seed=args.seed, **MODELS[name])
    contenders = {}
    # As `python -m playground train` runs it (issue 15's yardstick), and as the page does (shorter calls).
    calls = {"CLI": UNWATCHED_SECONDS_PER_CALL, "page": SECONDS_PER_CALL}
    for label, jit, who in (("trainer, XLA", True, "CLI"), ("trainer, XLA", True, "page"),
                            ("trainer, graph", False, "CLI")):  # fmt: skip
        if jit or args.graph:
            contender = f"{label}, {calls[who]:g} s calls ({who})"
            contenders[contender], _ = trainer_timer(settings, data, jit, calls[who])
    peer = JaxPeer(args.jax_python, args.source, MODELS[name], args.seed)
    contenders[f"JAX {peer.info['jax']}, jit + lax.scan"] = peer.run
    ceiling = matmul_ceiling(settings)
    speeds = {label: [] for label in contenders}
    cpu_speeds = {label: [] for label in contenders}  # steps per CPU-second: less swayed by other work
    labels = list(contenders)
    for round_number in range(args.rounds):
        shift = round_number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            steps, seconds, cpu_seconds = contenders[label](args.epochs)
            speeds[label].append(steps / seconds)
            cpu_speeds[label].append(steps / cpu_seconds)
        print(f"  {name} round {round_number + 1}: load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    peer.close()
    flop = step_gflop(settings)
    jax_label = labels[-1]
    jax_median = statistics.median(speeds[jax_label])
    jax_cpu = statistics.median(cpu_speeds[jax_label])
    rows = []
    for label in labels:
        median = statistics.median(speeds[label])
        rows.append({
            "method": label,
            "steps_per_second": median,
            "best": max(speeds[label]),
            "samples": speeds[label],
            "gflops": median * flop,
            "ceiling_fraction": median * flop / ceiling["gflops"],
            "vs_jax": median / jax_median,
            "steps_per_cpu_second": statistics.median(cpu_speeds[label]),
            "cpu_vs_jax": statistics.median(cpu_speeds[label]) / jax_cpu,
        })  # fmt: skip
    return {"model": name, "settings": MODELS[name], "step_gflop": flop, "ceiling": ceiling, "rows": rows}


def format_report(report: dict) -> str:
    lines = [
        f"{report['date']}, {report['cpu']}, {report['cores']} cores; load average {report['load_before']:.1f} "
        f"before, {report['load_after']:.1f} after; {report['rounds']} rounds of {report['epochs']} epoch(s) each, "
        f"full {report['data']}, Adam 1e-3, batch 64; medians (steps/s, wall clock, compile excluded).",
    ]
    for model in report["models"]:
        sizes = model["settings"]
        lines += [
            "",
            f"784-{sizes['intermediate_dim']}-{sizes['latent_dim']}, {sizes['loss']} loss. "
            + format_ceiling(model["step_gflop"], model["ceiling"]),
            "",
            "| method | steps/s (median) | best | GFLOP/s | of ceiling | × JAX | steps per CPU-second | × JAX |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in model["rows"]:
            lines.append(
                f"| {row['method']} | {row['steps_per_second']:,.0f} | {row['best']:,.0f} | {row['gflops']:,.1f} "
                f"| {row['ceiling_fraction']:.0%} | {row['vs_jax']:.2f} | {row['steps_per_cpu_second']:,.0f} "
                f"| {row['cpu_vs_jax']:.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jax-python", default=os.environ.get("JAX_PYTHON", "/work/scratch/h5/jax-venv/bin/python"))
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--models", default="guide,app", help="comma-separated: guide, app")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="epochs a timed run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-graph", dest="graph", action="store_false", help="leave out the plain-graph trainer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset = load_dataset("fashion_mnist", args.source)
    data = TrainingData.from_dataset(dataset)
    machine = machine_info()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": machine["cpu"],
        "cores": machine["cores"],
        "data": dataset.source,
        "rounds": args.rounds,
        "epochs": args.epochs,
        "load_before": os.getloadavg()[0],
    }
    report["models"] = [compare_model(name, data, args) for name in args.models.split(",")]
    report["load_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
