"""VAE Playground: `streamlit run app.py`. This file only lays out the page; the playground package works."""

import streamlit as st

from playground.ui import (
    code,
    draw,
    explore,
    feedback,
    latent_map,
    lessons,
    link,
    model,
    runs,
    sidebar,
    state,
    tabs,
    train,
)
from playground.ui.i18n import t

st.set_page_config(page_title="VAE Playground", page_icon="🎛️", layout="wide")

workspace = state.workspace()
feedback.guarded(sidebar.render)(workspace)

st.title(t("app.title"))
st.caption(t("app.subtitle"))
feedback.show()
feedback.guarded(train.render)(workspace)

panels = [
    ("draw", draw.render),
    ("explore", explore.render),
    ("map", latent_map.render),
    ("runs", runs.render),
    ("model", model.render),
    ("code", code.render),
    ("lessons", lessons.render),
]
panels = link.visible_panels(panels)  # a teacher's link may hide some (hide=...)
tabs.render([(tab_id, lambda render=render: feedback.guarded(render)(workspace)) for tab_id, render in panels])
