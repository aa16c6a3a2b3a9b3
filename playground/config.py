"""One typed, validated set of hyperparameters, shared by the CLI, the app and saved runs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("mnist", "fashion_mnist")
LOSSES = ("guide", "elbo")


def _bounded(default, low, high, label: str, *, integer: bool):
    """A dataclass field whose metadata carries its bounds and its user-facing label."""
    return field(default=default, metadata={"low": low, "high": high, "label": label, "integer": integer})


@dataclass(frozen=True)
class Settings:
    """Everything that defines a training run. Defaults are the guide's own run."""

    dataset: str = "mnist"
    # "guide" reproduces the guide (and its collapse to the mean image at KL weight 1);
    # "elbo" is the keras.io VAE example's loss, whose latent space is worth exploring.
    loss: str = "guide"
    # 32 and 64 are the guide's sizes; 64 latent dims is where sliders stop being usable.
    latent_dim: int = _bounded(32, 1, 64, "Latent size", integer=True)
    intermediate_dim: int = _bounded(64, 8, 1024, "Intermediate size", integer=True)
    # Up to 10 so that a user can watch a run diverge and be stopped cleanly.
    learning_rate: float = _bounded(1e-3, 1e-6, 10.0, "Learning rate", integer=False)
    batch_size: int = _bounded(64, 1, 4096, "Batch size", integer=True)
    epochs: int = _bounded(2, 1, 1000, "Epochs", integer=True)
    kl_weight: float = _bounded(1.0, 0.0, 100.0, "KL weight", integer=False)
    # Ramp the KL weight up from 0 over this many steps (0: constant weight).
    kl_warmup_steps: int = _bounded(0, 0, 1_000_000, "KL warm-up steps", integer=True)
    seed: int = _bounded(0, 0, 2**31 - 1, "Seed", integer=True)

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"The dataset must be one of {', '.join(DATASETS)} (got {self.dataset!r}).")
        if self.loss not in LOSSES:
            raise ValueError(f"The loss must be one of {', '.join(LOSSES)} (got {self.loss!r}).")
        for spec in dataclasses.fields(self):
            if "low" in spec.metadata:
                object.__setattr__(self, spec.name, _checked(getattr(self, spec.name), spec.metadata))

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

    def model_key(self) -> tuple[int, int, int]:
        """What a model's shapes and initial weights depend on: (latent_dim, intermediate_dim, seed)."""
        return self.latent_dim, self.intermediate_dim, self.seed


def bounds(name: str) -> dict[str, Any]:
    """The low/high/label of a bounded field, for building inputs."""
    for spec in dataclasses.fields(Settings):
        if spec.name == name:
            return dict(spec.metadata)
    raise KeyError(name)


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


# The app opens here: a run of a few seconds gives reconstructions that look like
# their inputs and sliders that visibly move the digit.
EXPLORE = Settings(loss="elbo", latent_dim=8, intermediate_dim=256, epochs=10)
# Two latent dimensions: every code is a point on a plane, the manifold grid covers it.
LATENT_2D = Settings(loss="elbo", latent_dim=2, intermediate_dim=256, epochs=15)
# The guide's exact run: at KL weight 1 its loss pulls every code onto the prior.
GUIDE = Settings()
PRESETS = {"explore": EXPLORE, "latent_2d": LATENT_2D, "guide": GUIDE}
