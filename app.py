"""VAE Playground: `streamlit run app.py`. This file only lays out the page; the playground package works."""

import streamlit as st

from playground.ui import code, draw, explore, feedback, latent_map, model, runs, sidebar, state, train
from playground.ui.i18n import t

st.set_page_config(page_title="VAE Playground", page_icon="🎛️", layout="wide")

workspace = state.workspace()
feedback.guarded(sidebar.render)(workspace)

st.title(t("app.title"))
st.caption(t("app.subtitle"))
feedback.show()
feedback.guarded(train.render)(workspace)

panels = [
    ("tab.draw", draw.render),
    ("tab.explore", explore.render),
    ("tab.map", latent_map.render),
    ("tab.runs", runs.render),
    ("tab.model", model.render),
    ("tab.code", code.render),
]
for tab, (_, render) in zip(st.tabs([t(key) for key, _ in panels]), panels):
    with tab:
        feedback.guarded(render)(workspace)
