"""The code behind the page: the layers and model in use, and how to rebuild this model elsewhere."""

from __future__ import annotations

import inspect
from pathlib import Path

import streamlit as st

from playground import layers, losses, models, steps
from playground.config import Settings, fields
from playground.ui.i18n import t
from playground.uploads import cli_source
from playground.workspace import Workspace

SOURCES = [
    ("Sampling", layers.Sampling),
    ("Encoder", models.Encoder),
    ("Decoder", models.Decoder),
    ("VariationalAutoEncoder", models.VariationalAutoEncoder),
    ("loss_terms", losses.loss_terms),
    ("train_chunk", steps.train_chunk),
]
CONDITIONAL_SOURCES = [("_with_label", models._with_label)]  # how the one-hot label joins the inputs
CONV_SOURCES = [("ConvEncoder", models.ConvEncoder), ("ConvDecoder", models.ConvDecoder)]


def sources(settings: Settings) -> list[tuple[str, object]]:
    """The code the current model runs: the guide's classes, and the variant's own pieces after the decoder."""
    extra = (CONDITIONAL_SOURCES if settings.conditional else []) + \
        (CONV_SOURCES if settings.architecture == "conv" else [])  # fmt: skip
    return [*SOURCES[:3], *extra, *SOURCES[3:]]


ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the playground package


def settings_call(settings: Settings) -> str:
    """``Settings(...)`` with every field, as Python source: one line from the field metadata."""
    values = ", ".join(f"{spec.name}={getattr(settings, spec.name)!r}" for spec in fields())
    return f"Settings({values})"


def snippet(ws: Workspace) -> str:
    """Python that rebuilds (and reloads) the current model with the playground package, run from any folder."""
    s = ws.settings
    return f"""import sys

sys.path.insert(0, {str(ROOT)!r})  # where the app's playground package is (on another machine: your clone)

from playground.config import Settings
from playground.data import load_dataset
from playground.model_files import load_vae
from playground.models import build_vae

# The same architecture, freshly initialised (seed {s.seed}):
settings = {settings_call(s)}
model = build_vae(settings)

# The trained weights, from the file the Model tab downloads (put it in the folder you run this from):
model = load_vae("vae-playground.keras")
data = load_dataset(settings.dataset, {_source(ws)!r})
images = data.x_test[:8].reshape(-1, 784)  # [8, 784] in [0, 1]
{_encode_lines(s)}print(digits.shape)
"""


def _encode_lines(s: Settings) -> str:
    """The snippet's encode and decode: a conditional model reads the labels too."""
    if not s.conditional:
        return f"""z_mean, z_log_var, z = model.encoder(images)  # each [8, {s.latent_dim}]
digits = model.decoder(z_mean)  # [8, 784]
"""
    return f"""labels = data.y_test[:8]  # [8]: a conditional VAE reads each image's class (one-hot) too
z_mean, z_log_var, z = model.encoder(images, labels=labels)  # each [8, {s.latent_dim}]
digits = model.decoder(z_mean, labels=labels)  # [8, 784]
as_sevens = model.decoder(z_mean, labels=[7] * 8)  # the same styles, drawn as 7s
"""


def command(ws: Workspace) -> str:
    """The terminal command that trains with the current settings: one flag per setting."""
    flags = " ".join(_flag(spec, getattr(ws.settings, spec.name)) for spec in fields())
    if ws.dataset.origin == "upload":  # your own images: the terminal reads the same files
        flags = flags.replace(f"--dataset {ws.settings.dataset}", f"--source {cli_source(ws.dataset)}")
    return f"python -m playground train {flags} --out my-run"


def _flag(spec, value) -> str:
    """One setting as a flag: ``--latent-dim 8``, ``--loss elbo``, ``--conditional`` / ``--no-conditional``."""
    if spec.widget == "toggle":
        return spec.flag if value else f"--no-{spec.flag[2:]}"
    return f"{spec.flag} {value}" if spec.choices is not None else f"{spec.flag} {spec.show(value).replace(',', '')}"


def _source(ws: Workspace) -> str:
    return cli_source(ws.dataset) if ws.dataset.origin == "upload" else "auto"


def render(ws: Workspace) -> None:
    st.markdown(t("code.intro", root=ROOT))
    st.code(snippet(ws), language="python")
    st.markdown(t("code.cli", root=ROOT))
    st.code(command(ws), language="bash")
    for name, obj in sources(ws.settings):
        with st.expander(t("code.source", name=name, module=obj.__module__)):
            st.code(inspect.getsource(obj), language="python")
