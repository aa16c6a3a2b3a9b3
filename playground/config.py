"""One typed, validated set of hyperparameters, shared by the CLI, the app and saved runs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from playground.data import DATASETS as DATASET_TITLES
from playground.data import is_upload_name

DATASETS = tuple(DATASET_TITLES)  # "mnist", "fashion_mnist": the titles live with the loaders
LOSSES = ("elbo", "guide")  # the page offers them in this order
ARCHITECTURES = ("dense", "conv")  # the guide's Dense layers; the keras.io example's convolutions
# The fields a model's shapes and initial weights depend on: changing one needs a new model.
MODEL_FIELDS = ("latent_dim", "intermediate_dim", "hidden_layers", "conditional", "architecture", "seed")


def _choice(default: str, choices: tuple[str, ...], label: str, widget: str):
    """A field that takes one of ``choices``; ``widget`` is how the page offers them ("select" or "radio")."""
    return field(default=default, metadata={"choices": choices, "label": label, "widget": widget})


def _switch(default: bool, label: str):
    """An on/off field: a toggle on the page, ``--name`` / ``--no-name`` on the command line."""
    return field(default=default, metadata={"label": label, "widget": "toggle"})


def _bounded(default, low, high, label: str, *, integer: bool, step=None, widget: str = "number"):
    """A field with bounds and a user-facing label; ``step`` is the page's +/- step ("steps": a slider of values)."""
    meta = {"low": low, "high": high, "label": label, "integer": integer, "widget": widget, "step": step}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything that defines a training run. Defaults are the guide's own run."""

    dataset: str = _choice("mnist", DATASETS, "Dataset", "select")
    # "guide" reproduces the guide (and its collapse to the mean image at KL weight 1);
    # "elbo" is the keras.io VAE example's loss, whose latent space is worth exploring.
    loss: str = _choice("guide", LOSSES, "Loss", "radio")
    # 32 and 64 are the guide's sizes; 64 latent dims is where sliders stop being usable.
    latent_dim: int = _bounded(32, 1, 64, "Latent size", integer=True, step=1)
    intermediate_dim: int = _bounded(64, 8, 1024, "Intermediate size", integer=True, step=8)
    # Hidden layers in the encoder, mirrored in the decoder, each of the intermediate size (the
    # guide has 1). One size repeated keeps every setting one number for the CLI, the address and
    # the sidebar; a taper (512-256-128) gains nothing measurable on 28 x 28 digits.
    hidden_layers: int = _bounded(1, 1, 3, "Hidden layers", integer=True, step=1)
    # The label (one-hot) joins the encoder's and the decoder's input: the code keeps only the style.
    conditional: bool = _switch(False, "Conditional (on the label)")
    # "conv": the keras.io VAE example's two strided convolutions and their mirror, around the dense layers.
    architecture: str = _choice("dense", ARCHITECTURES, "Architecture", "radio")
    # Up to 10 so that a user can watch a run diverge and be stopped cleanly.
    learning_rate: float = _bounded(1e-3, 1e-6, 10.0, "Learning rate", integer=False, widget="steps")
    batch_size: int = _bounded(64, 1, 4096, "Batch size", integer=True, step=16)
    epochs: int = _bounded(2, 1, 1000, "Epochs", integer=True, step=1)
    kl_weight: float = _bounded(1.0, 0.0, 100.0, "KL weight", integer=False, step=0.1)
    # Ramp the KL weight up from 0 over this many steps (0: constant weight).
    kl_warmup_steps: int = _bounded(0, 0, 1_000_000, "KL warm-up steps", integer=True, step=100)
    seed: int = _bounded(0, 0, 2**31 - 1, "Seed", integer=True, step=1)

    def __post_init__(self):
        for spec in dataclasses.fields(self):
            object.__setattr__(self, spec.name, check(spec.name, getattr(self, spec.name)))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Settings:
        """Settings from a dict, ignoring keys this version does not know."""
        known = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def model_key(self) -> tuple:
        """What a model's shapes and initial weights depend on: the values of ``MODEL_FIELDS``."""
        return tuple(getattr(self, name) for name in MODEL_FIELDS)


@dataclass(frozen=True)
class FieldSpec:
    """One setting as the CLI and the page offer it, read from the field's metadata."""

    name: str  # the Settings field, e.g. "latent_dim"
    default: Any
    label: str  # English, for error messages; the page shows t(text_key)
    widget: str  # "select", "radio", "number", "toggle" or "steps" (a slider over preset values)
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False
    step: float | None = None

    @property
    def flag(self) -> str:
        """The CLI flag: ``--latent-dim``."""
        return "--" + self.name.replace("_", "-")

    def show(self, value: float) -> str:
        """A value of this setting as people read it: 1,000,000 for a whole number, 1e-06 or 0.001 otherwise."""
        if self.widget == "toggle":
            return "on" if value else "off"
        return f"{int(value):,}" if self.integer else f"{value:g}"

    @property
    def text_key(self) -> str:
        return f"settings.{self.name}"

    @property
    def help_key(self) -> str:
        return f"help.{self.name}"


def fields() -> tuple[FieldSpec, ...]:
    """Every setting in declaration order, for building CLI flags, widgets and commands from one list."""
    return tuple(
        FieldSpec(name=spec.name, default=spec.default, **spec.metadata) for spec in dataclasses.fields(Settings)
    )


def spec(name: str) -> FieldSpec:
    """One setting's FieldSpec (KeyError for an unknown name)."""
    for found in fields():
        if found.name == name:
            return found
    raise KeyError(name)


def require_same_model(current: Settings, new: Settings, action: str) -> None:
    """A ``ValueError`` unless ``new`` describes the same model as ``current`` (``MODEL_FIELDS``): ``action``
    ("Changing the settings of a trained model") names what needed it, and the message names what differs."""
    def shown(field: FieldSpec, settings: Settings) -> str:
        value = getattr(settings, field.name)
        return value if field.choices else field.show(value)

    changed = [spec(name) for name in MODEL_FIELDS if getattr(current, name) != getattr(new, name)]
    if changed:
        what = ", ".join(f"{field.label} {shown(field, current)} → {shown(field, new)}" for field in changed)
        raise ValueError(f"{action} needs the same model ({what}): that needs a reset.")


def bounds(name: str) -> dict[str, Any]:
    """The low/high/label of a bounded field, for building inputs."""
    for field_spec in dataclasses.fields(Settings):
        if field_spec.name == name:
            return dict(field_spec.metadata)
    raise KeyError(name)


def check(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` takes it, or a ValueError that says what is allowed."""
    meta = bounds(name)
    if "choices" in meta:
        if name == "dataset" and is_upload_name(value):  # your own images (uploads.py), named by their contents
            return value
        if value not in meta["choices"]:
            raise ValueError(f"{meta['label']} must be one of {', '.join(meta['choices'])} (got {value!r}).")
        return value
    if meta["widget"] == "toggle":
        return _switched(value, meta["label"])
    return _checked(value, meta)


def _switched(value: Any, label: str) -> bool:
    """An on/off value: a bool, or 1/0, true/false, yes/no, on/off as text (an address, a saved file)."""
    if isinstance(value, bool):
        return value
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
    if isinstance(value, (int, str)) and str(value).strip().lower() in words:
        return words[str(value).strip().lower()]
    raise ValueError(f"{label} must be on or off (got {value!r}).")


def _checked(value: Any, meta: dict[str, Any]) -> int | float:
    """``value`` as the field's type, or a ValueError that names the bound."""
    label, low, high = meta["label"], meta["low"], meta["high"]
    if isinstance(value, bool):
        raise ValueError(f"{label} must be a number (got {value!r}).")
    if not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be a number (got {value!r}).") from None
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number (got {value}).")
    if meta["integer"]:
        if value != int(value):
            raise ValueError(f"{label} must be a whole number (got {value}).")
        value = int(value)
    else:
        value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{label} must be between {low:g} and {high:g} (got {value:g}).")
    return value


# A newcomer's first run should last long enough to watch the curves move and the validation
# loss turn up on the small sample (overfitting), without wasting their time: about 20 s on a
# 2-core CPU, where the trainer runs about 1,500 steps a second on the explore preset's
# 784-256-8 ELBO model at batch 64 (the README's benchmark; validation each epoch included).
WATCHABLE_STEPS = 30_000


def epochs_for(train_examples: int, batch_size: int, steps: int = WATCHABLE_STEPS) -> int:
    """Epochs of ``train_examples`` at ``batch_size`` that add up to about ``steps`` steps (1 to 1,000)."""
    steps_per_epoch = -(-train_examples // batch_size)  # the last partial batch is a step too
    low, high = bounds("epochs")["low"], bounds("epochs")["high"]
    return int(min(max(round(steps / steps_per_epoch), low), high))


# The app opens here (with epochs from epochs_for): reconstructions that look like their inputs
# and sliders that visibly move the digit.
EXPLORE = Settings(loss="elbo", latent_dim=8, intermediate_dim=256, epochs=10)
# Two latent dimensions: every code is a point on a plane, the manifold grid covers it.
LATENT_2D = Settings(loss="elbo", latent_dim=2, intermediate_dim=256, epochs=15)
# The guide's exact run: at KL weight 1 its loss pulls every code onto the prior.
GUIDE = Settings()
# One good setting per model variant (their loss against the guide's dense VAE: README).
# Two hidden layers of 256: a little sharper than one on the same epochs.
DEEP = EXPLORE.replace(hidden_layers=2)
# The label joins the code: pick a class, the sliders change only its style (2-D: the style plane).
CONDITIONAL = Settings(loss="elbo", latent_dim=2, intermediate_dim=256, conditional=True, epochs=15)
# The keras.io example: 16 units between the convolutions and a 2-D code; here 8-D and 64 units.
CONV = Settings(loss="elbo", latent_dim=8, intermediate_dim=64, architecture="conv", epochs=10)
PRESETS = {"explore": EXPLORE, "latent_2d": LATENT_2D, "guide": GUIDE, "deep": DEEP, "conditional": CONDITIONAL,
           "conv": CONV}  # fmt: skip


def watchable(settings: Settings, train_examples: int) -> Settings:
    """``settings`` with the epochs of a watchable run on a training set of ``train_examples``."""
    return settings.replace(epochs=epochs_for(train_examples, settings.batch_size))


# Presets that keep their own epochs: the guide's 2, and the convolutional model's 10 (it runs about
# 30 times slower a step than the dense ones, so a watchable run's 30,000 steps would take many minutes).
OWN_EPOCHS = ("guide", "conv")


def preset(name: str, dataset: str, train_examples: int | None = None) -> Settings:
    """Preset ``name`` on ``dataset``, watchable given its size (``OWN_EPOCHS`` keep their epochs)."""
    chosen = PRESETS[name].replace(dataset=dataset)
    return chosen if name in OWN_EPOCHS or train_examples is None else watchable(chosen, train_examples)
