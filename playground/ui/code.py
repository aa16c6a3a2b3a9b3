"""The code behind the page: the layers and model in use, and how to rebuild this model elsewhere."""

from __future__ import annotations

import inspect

import streamlit as st

from playground import layers, losses, models, training
from playground.ui.i18n import t
from playground.workspace import Workspace

SOURCES = [
    ("Sampling", layers.Sampling),
    ("Encoder", models.Encoder),
    ("Decoder", models.Decoder),
    ("VariationalAutoEncoder", models.VariationalAutoEncoder),
    ("loss_terms", losses.loss_terms),
    ("Trainer._train_steps", training.Trainer._train_steps),
]


def snippet(ws: Workspace) -> str:
    """Python that rebuilds (and reloads) the current model with the playground package."""
    s = ws.settings
    return f"""from playground.config import Settings
from playground.data import load_dataset
from playground.model_files import load_vae
from playground.models import build_vae

# The same architecture, freshly initialised (seed {s.seed}):
model = build_vae(Settings(latent_dim={s.latent_dim}, intermediate_dim={s.intermediate_dim},
                           kl_weight={s.kl_weight:g}, seed={s.seed}))

# The trained weights, from the file the Model tab downloads:
model = load_vae("vae-playground.keras")
images = load_dataset("{s.dataset}", "auto").x_test[:8].reshape(-1, 784)  # [8, 784] in [0, 1]
z_mean, z_log_var, z = model.encoder(images)                        # each [8, {s.latent_dim}]
digits = model.decoder(z_mean)                                      # [8, 784]
print(digits.shape)
"""


def command(ws: Workspace) -> str:
    s = ws.settings
    return (f"python -m playground train --dataset {s.dataset} --loss {s.loss} --latent-dim {s.latent_dim} "
            f"--intermediate-dim {s.intermediate_dim} --epochs {s.epochs} --batch-size {s.batch_size} "
            f"--learning-rate {s.learning_rate:g} --kl-weight {s.kl_weight:g} --kl-warmup-steps {s.kl_warmup_steps} "
            f"--seed {s.seed} --out my-run")  # fmt: skip


def render(ws: Workspace) -> None:
    st.markdown(t("code.intro"))
    st.code(snippet(ws), language="python")
    st.markdown(t("code.cli"))
    st.code(command(ws), language="bash")
    for name, obj in SOURCES:
        with st.expander(t("code.source", name=name, module=obj.__module__)):
            st.code(inspect.getsource(obj), language="python")
