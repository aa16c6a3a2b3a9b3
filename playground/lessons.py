"""Guided lessons: the settings each one trains, and verdicts computed from the learner's own runs.

Every verdict is a pure function of numbers a run produced (KL per dimension,
reconstructions, loss histories), so a run that did not show the effect gets a
verdict that says so, with its numbers. The page (``ui/lessons.py``) gathers the
numbers and translates the verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from playground.config import LATENT_2D, Settings

IN_USE_NATS = 0.01  # a latent dimension whose mean KL is below this carries no information
COLLAPSE_TOLERANCE = 0.05  # all reconstructions within 5% of their mean: one picture (the guide run: 2%)
MAP_NEIGHBOURS = 5  # the 2-D map is organised if a digit's 5 nearest codes mostly share its label
MAP_ORGANISED = 0.5  # ... at least half the time (chance: about 10%)
UNDERFIT_GAP = 0.05  # the small network's loss at least 5% above the large one's
OVERFIT_WINDOW = 3  # epochs the validation loss is averaged over before judging
OVERFIT_RISE = 0.01  # the smoothed validation loss 1% above its best by the end (a plateau wobbles by 0.2-0.7%)


@dataclass(frozen=True)
class Lesson:
    """A lesson's settings; a comparison lesson trains one run for each value of ``vary``."""

    id: str
    settings: Settings
    vary: str | None = None
    values: tuple = ()

    def run_settings(self, value: Any = None) -> Settings:
        return self.settings if self.vary is None else self.settings.replace(**{self.vary: value})

    def matches(self, run: Settings) -> bool:
        """Whether a run's settings are this lesson's (any value of ``vary``)."""
        if self.vary is None:
            return run == self.settings
        return getattr(run, self.vary) in self.values and run.replace(**{self.vary: self.values[0]}) == self.settings

    def next_value(self, trained: set) -> Any:
        """The first value of ``vary`` not trained yet (the first again once all are)."""
        return next((value for value in self.values if value not in trained), self.values[0] if self.values else None)


_ELBO_8 = Settings(loss="elbo", latent_dim=8, intermediate_dim=256, epochs=3)
LESSONS = {
    "collapse": Lesson("collapse", Settings()),  # the guide's own run
    "kl_sweep": Lesson("kl_sweep", _ELBO_8.replace(kl_weight=0.0), "kl_weight", (0.0, 0.1, 1.0, 4.0)),
    "latent_2d": Lesson("latent_2d", LATENT_2D.replace(epochs=10)),
    "capacity": Lesson("capacity", _ELBO_8.replace(intermediate_dim=16, epochs=5), "intermediate_dim", (16, 512)),
    "divergence": Lesson("divergence", _ELBO_8.replace(learning_rate=10.0, epochs=1)),
    "elbo_vs_guide": Lesson("elbo_vs_guide", _ELBO_8.replace(loss="guide"), "loss", ("guide", "elbo")),
    # Measured on the 4,500-digit sample: validation (3-epoch mean) lowest near epoch 19, +1.8% by epoch 50.
    "overfitting": Lesson(
        "overfitting",
        Settings(loss="elbo", latent_dim=32, intermediate_dim=1024, learning_rate=3e-3, kl_weight=0.1, epochs=60),
    ),
}


@dataclass(frozen=True)
class Verdict:
    """``state``: "shown" (the run showed the effect), "not_shown" or "pending" (nothing to judge yet)."""

    state: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def shown(self) -> bool:
        return self.state == "shown"


def kl_per_dimension(z_mean: np.ndarray, z_log_var: np.ndarray) -> np.ndarray:
    """Mean closed-form KL(q(z|x) || N(0, I)) per latent dimension over the rows: [N, L] -> [L] nats."""
    return np.mean(0.5 * (np.square(z_mean) + np.exp(z_log_var) - 1.0 - z_log_var), axis=0)


def dims_in_use(kl: np.ndarray) -> int:
    return int(np.sum(np.asarray(kl) >= IN_USE_NATS))


def pixel_error(images: np.ndarray, reconstructions: np.ndarray) -> float:
    """Mean squared error per pixel, the same measure for every loss."""
    return float(
        np.mean(np.square(np.reshape(images, (len(images), -1)) - np.reshape(reconstructions, (len(images), -1))))
    )


def collapse(kl: np.ndarray, reconstructions: np.ndarray, mean_image: np.ndarray) -> Verdict:
    """Posterior collapse: no dimension in use, and every reconstruction (nearly) one and the same picture.

    ``worst`` is the largest distance of a reconstruction from the reconstructions' mean,
    relative to that mean; ``data_gap`` how far that picture is from the training set's mean image.
    """
    flat = np.reshape(reconstructions, (len(reconstructions), -1))  # [N, 784]
    picture = flat.mean(axis=0)  # [784] the one picture a collapsed decoder draws
    worst = float(np.max(np.linalg.norm(flat - picture, axis=1)) / np.linalg.norm(picture))
    mean = np.reshape(mean_image, -1)  # [784]
    data_gap = float(np.linalg.norm(picture - mean) / np.linalg.norm(mean))
    used = dims_in_use(kl)
    state = "shown" if used == 0 and worst <= COLLAPSE_TOLERANCE else "not_shown"
    return Verdict(state, {"used": used, "dims": len(kl), "nats": IN_USE_NATS, "worst": f"{worst:.1%}",
                           "tolerance": f"{COLLAPSE_TOLERANCE:.0%}", "data_gap": f"{data_gap:.0%}"})  # fmt: skip


def kl_sweep(points: dict[float, tuple[int, float]], dims: int) -> Verdict:
    """KL weight -> (dimensions in use, pixel error): a heavier KL term uses fewer dimensions, blurs more."""
    if len(points) < 2:
        return Verdict("pending", {"count": len(points)})
    weights = sorted(points)
    used = [points[w][0] for w in weights]
    errors = [points[w][1] for w in weights]
    fewer = all(a >= b for a, b in zip(used, used[1:])) and used[0] > used[-1]
    blurrier = errors[-1] > errors[0]
    table = "; ".join(f"β={w:g}: {points[w][0]} of {dims}, {points[w][1]:.4f}" for w in weights)
    values = {"table": table, "low": f"{weights[0]:g}", "high": f"{weights[-1]:g}", "used_low": used[0],
              "used_high": used[-1], "error_low": f"{errors[0]:.4f}", "error_high": f"{errors[-1]:.4f}"}  # fmt: skip
    return Verdict("shown" if fewer and blurrier else "not_shown", values)


def latent_map(z_mean: np.ndarray, labels: np.ndarray) -> Verdict:
    """A 2-D map where each digit's nearest codes mostly share its label; which digits sit side by side."""
    if z_mean.ndim != 2 or z_mean.shape[1] != 2:
        return Verdict("pending", {"dims": int(z_mean.shape[-1])})
    distances = np.linalg.norm(z_mean[:, None, :] - z_mean[None, :, :], axis=-1)  # [N, N]
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :MAP_NEIGHBOURS]  # [N, k]
    agreement = float(np.mean(labels[nearest] == labels[:, None]))
    digits = np.unique(labels)
    centres = np.stack([z_mean[labels == d].mean(axis=0) for d in digits])  # [D, 2]
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    pairs = sorted((gaps[i, j], int(digits[i]), int(digits[j])) for i in range(len(digits))
                   for j in range(i + 1, len(digits)))  # fmt: skip
    values = {"agreement": f"{agreement:.0%}", "k": MAP_NEIGHBOURS, "chance": f"{1 / max(len(digits), 1):.0%}",
              "pairs": ", ".join(f"{a}–{b}" for _, a, b in pairs[:3])}  # fmt: skip
    return Verdict("shown" if agreement >= MAP_ORGANISED else "not_shown", values)


def capacity(small: tuple[int, float, float] | None, large: tuple[int, float, float] | None) -> Verdict:
    """(intermediate size, final training loss, final validation loss) of a small and a large network."""
    if small is None or large is None:
        return Verdict("pending", {"missing": (small or large or (None,))[0]})
    gap = small[1] / large[1] - 1.0
    values = {"small": small[0], "large": large[0], "train_small": f"{small[1]:.2f}", "train_large": f"{large[1]:.2f}",
              "val_small": f"{small[2]:.2f}", "val_large": f"{large[2]:.2f}", "gap": f"{gap:+.0%}"}  # fmt: skip
    return Verdict("shown" if gap >= UNDERFIT_GAP else "not_shown", values)


def divergence(reason: str | None, losses: list[float], step: int, weights_finite: bool) -> Verdict:
    """Did the loss stop being finite, and did the guard keep usable weights?"""
    if reason is None or not losses:
        return Verdict("pending")
    values = {"step": f"{step:,}", "first": f"{losses[0]:.4g}", "last": f"{losses[-1]:.4g}"}
    return Verdict("shown" if reason == "diverged" and weights_finite else "not_shown", {**values, "reason": reason})


def elbo_vs_guide(guide: tuple[int, float] | None, elbo: tuple[int, float] | None, dims: int) -> Verdict:
    """(dimensions in use, pixel error) for each loss on the same sizes: the ELBO keeps its codes."""
    if guide is None or elbo is None:
        return Verdict("pending")
    values = {"dims": dims, "used_guide": guide[0], "used_elbo": elbo[0], "error_guide": f"{guide[1]:.4f}",
              "error_elbo": f"{elbo[1]:.4f}"}  # fmt: skip
    return Verdict("shown" if elbo[0] > guide[0] and elbo[1] < guide[1] else "not_shown", values)


def overfitting(val_losses: list[float], train_losses: list[float]) -> Verdict:
    """Validation loss per epoch turning up while training loss keeps falling; the epoch it turned.

    The validation loss of a VAE is noisy (each epoch draws new noise), so it is smoothed over
    ``OVERFIT_WINDOW`` epochs first: one high point is not a trend.
    """
    if len(val_losses) < OVERFIT_WINDOW + 1:
        return Verdict("pending", {"epochs": len(val_losses)})
    kernel = np.ones(OVERFIT_WINDOW) / OVERFIT_WINDOW
    smooth = np.convolve(val_losses, kernel, mode="valid")  # smooth[i]: epochs i+1 .. i+WINDOW
    best = int(np.argmin(smooth))
    rise = float(smooth[-1] / smooth[best] - 1.0)
    best_epoch = best + 1 + OVERFIT_WINDOW // 2  # the window's middle epoch
    values = {"best_epoch": best_epoch, "best": f"{smooth[best]:.2f}", "epochs": len(val_losses),
              "last": f"{smooth[-1]:.2f}", "rise": f"{rise:+.1%}", "window": OVERFIT_WINDOW,
              "train_first": f"{train_losses[0]:.2f}" if train_losses else "–",
              "train_last": f"{train_losses[-1]:.2f}" if train_losses else "–"}  # fmt: skip
    turned = best < len(smooth) - 1 and rise >= OVERFIT_RISE
    return Verdict("shown" if turned else "not_shown", values)
