"""``python -m playground train|bench``: the trainer and the benchmark from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from playground.config import DATASETS, Settings, fields

# How ``train`` ends: 1 when the run diverged (the model saved is the state it restored), 130 when
# Ctrl-C stopped it (the shell's code for an interrupt; the model so far is still saved).
EXIT_CODES = {"finished": 0, "diverged": 1, "stopped": 130}


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field (``--latent-dim``), from the field's metadata; Settings checks the values."""
    for setting in fields():
        if setting.choices is not None:
            parser.add_argument(setting.flag, choices=setting.choices, default=setting.default)
        elif setting.widget == "toggle":  # --conditional / --no-conditional
            parser.add_argument(setting.flag, action=argparse.BooleanOptionalAction, default=setting.default,
                                help=f"{setting.label} (default: {setting.show(setting.default)})")  # fmt: skip
        else:  # read as float so that Settings can refuse 2.5 epochs with a sentence, not argparse's usage line
            low, high, default = (setting.show(value) for value in (setting.low, setting.high, setting.default))
            parser.add_argument(setting.flag, type=float, default=setting.default,
                                help=f"{setting.label}, {low} to {high} (default: {default})")  # fmt: skip
        if setting.name == "dataset":
            parser.add_argument("--source", default="auto", help="auto, keras, bundled or idx:DIR (default: auto); "
                                "your own images: npz:FILE, images:ZIP_OR_DIR, quickdraw:FILE[,FILE...] or "
                                "idx:IMAGES,LABELS (then --dataset is not used; see the README)")  # fmt: skip


def _settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; Settings itself checks every bound."""
    return Settings(**{setting.name: getattr(args, setting.name) for setting in fields()})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description="VAE Playground from the terminal.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a VAE with the fast custom loop")
    _settings_arguments(train)
    train.add_argument("--out", type=Path, help="write model.keras, config.json, history.json/.csv here")
    train.add_argument("--logdir", type=Path, help="write TensorBoard scalars here")
    train.add_argument("--json", action="store_true", help="end with one JSON line of results")
    bench = commands.add_parser("bench", help="compare the guide's loops, Keras fit() and this trainer")
    bench.add_argument("--dataset", choices=DATASETS, default="mnist")
    bench.add_argument("--source", default="auto", help="data source (default: auto)")
    bench.add_argument("--epochs", type=int, default=30, help="epochs a run for fit() and the trainer (default: 30)")
    bench.add_argument("--eager-steps", type=int, default=60, help="timed steps of the eager loop (default: 60)")
    bench.add_argument("--repeats", type=int, default=5, help="timed runs of each method (default: 5)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument("--variants", action="store_true",
                       help="instead: each model variant (depth, conditional, conv), Keras fit() against the trainer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _bench(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    from playground.data import load_dataset
    from playground.training import UNWATCHED_SECONDS_PER_CALL, Trainer

    dataset = load_dataset(settings.dataset, args.source)
    settings = settings.replace(dataset=dataset.name)  # your own files are named by their contents
    print(dataset.source, file=sys.stderr)
    trainer = Trainer(settings, dataset, seconds_per_call=UNWATCHED_SECONDS_PER_CALL)
    progress = _Progress(trainer)
    write_scalars = _tensorboard_writer(args.logdir) if args.logdir else None

    def on_update(record) -> None:
        progress.show(record)
        if write_scalars is not None:
            write_scalars(record)

    result = _run_interruptible(trainer, on_update)
    progress.finish(result.message)
    summary = {"steps": trainer.step, **asdict(result), "source": dataset.source}
    if args.out:
        from playground.runs import write_run

        write_run(args.out, settings, trainer.history, trainer.model, summary)
        print(f"Saved the model, its settings and its history in {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    return EXIT_CODES[result.reason]


def _run_interruptible(trainer, on_update):
    """Run in a thread so that Ctrl-C stops training cleanly instead of killing a TF op."""
    outcome = {}

    def work() -> None:
        try:
            outcome["result"] = trainer.run(on_update)
        except BaseException as error:  # handed to the main thread, raised there
            outcome["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        trainer.control.stop()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


class _Progress:
    """A one-line progress bar on stderr with the live losses."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.total = trainer.settings.epochs * trainer.steps_per_epoch
        self.tty = sys.stderr.isatty()

    def show(self, record) -> None:
        done = min(record.step / max(self.total, 1), 1.0)
        bar = "#" * int(done * 24) + "." * (24 - int(done * 24))
        line = (
            f"epoch {record.epoch}/{self.trainer.settings.epochs} [{bar}] step {record.step:,} "
            f"loss {record.loss:.4f} (recon {record.reconstruction_loss:.4f}, KL {record.kl_loss:.4f})"
        )
        if record.split == "val":
            print(f"\repoch {record.epoch} done: validation loss {record.loss:.4f}" + " " * 40, file=sys.stderr)
        elif self.tty:
            speed = f"{record.steps_per_second:,.0f} steps/s" if record.steps_per_second else "compiling"
            print(f"\r{line} {speed}", end="", file=sys.stderr, flush=True)

    def finish(self, message: str) -> None:
        print(("\n" if self.tty else "") + message, file=sys.stderr)


def _tensorboard_writer(logdir: Path):
    """A callback that writes each record as TensorBoard scalars under ``logdir``."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))

    def write(record) -> None:
        with writer.as_default(step=record.step):
            for name in ("loss", "reconstruction_loss", "kl_loss", "kl_weight"):
                tf.summary.scalar(f"{record.split}/{name}", getattr(record, name))
            if record.split == "train":
                tf.summary.scalar("train/steps_per_second", record.steps_per_second)
        writer.flush()

    return write


def _bench(args: argparse.Namespace) -> int:
    from playground.bench import format_table, format_variant_table, run_benchmark, run_variant_benchmark

    if args.variants:
        report = run_variant_benchmark(args.dataset, args.source, args.epochs, args.repeats)
        print(json.dumps(report, indent=2) if args.json else format_variant_table(report))
        return 0

    report = run_benchmark(args.dataset, args.source, args.epochs, args.eager_steps, args.repeats)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
