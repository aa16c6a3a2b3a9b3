"""The sidebar: language, dataset, presets and hyperparameters, and when to throw a model away.

Every input is built from ``Settings``' field metadata (``config.fields()``): its widget,
bounds, step, label and help text. A change that needs a new model for a trained one is
not applied here: the question waits next to the training buttons (``model_question``),
and Start stays disabled until it is answered.
"""

from __future__ import annotations

import streamlit as st

from playground.config import MODEL_FIELDS, PRESETS, FieldSpec, Settings, check, epochs_for, fields, preset
from playground.ui import link
from playground.ui import uploads as own_data
from playground.ui.i18n import LANGUAGES, localize_widgets, t
from playground.ui.state import settings_changed_elsewhere, settings_seen
from playground.workspace import Workspace

WIDGETS = {setting.name: f"set_{setting.name}" for setting in fields()}  # Settings field -> widget key
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0]
QUESTION = "model_question"  # "discard" while a change of model waits for an answer, "invalid" while a value is


def set_widgets(settings: Settings) -> None:
    """Put ``settings`` into the widgets (call before they are drawn: first run or a callback)."""
    for name, key in WIDGETS.items():
        st.session_state[key] = getattr(settings, name)


def _settings_from_widgets() -> Settings:
    return Settings(**{name: st.session_state[key] for name, key in WIDGETS.items()})


def choice_names(name: str) -> dict[str, str]:
    """The page's names for a choice setting's values (dataset titles, translated loss names)."""
    setting = next(s for s in fields() if s.name == name)
    if name == "dataset":
        return own_data.titles()  # MNIST, Fashion-MNIST and the images uploaded to this workspace
    return {value: t(f"{name}.{value}") for value in setting.choices}


def render(ws: Workspace) -> None:
    if WIDGETS["latent_dim"] not in st.session_state:
        if st.query_params.get("lang") in LANGUAGES:  # a shared link can open the page in Chinese: ?lang=zh
            st.session_state["lang"] = st.query_params["lang"]
        set_widgets(link.from_address(ws.settings))  # a shared link holds the experiment (ui/link.py)
    elif settings_changed_elsewhere(ws):  # another session of this address changed the model
        set_widgets(ws.settings)
    st.session_state[QUESTION] = None
    localize_widgets()  # the file uploaders' own texts, in Chinese
    with st.sidebar:
        st.radio("Language / 语言", list(LANGUAGES), format_func=LANGUAGES.get, key="lang", horizontal=True,
                 on_change=_remember_language)  # fmt: skip
        st.header(t("settings.title"))
        _dataset(ws)
        _presets(ws)
        if _inputs():
            desired = _settings_from_widgets()
            _reconcile(ws, desired)
            link.write(desired)
        else:
            st.session_state[QUESTION] = "invalid"  # Start waits: the sidebar shows a value it would not use
        settings_seen(ws)
        supervisor = ws.supervisor
        st.caption(t("server.load", running=supervisor.running_count, waiting=supervisor.waiting_count,
                     cap=supervisor.max_workers))  # fmt: skip


def _remember_language() -> None:
    st.query_params["lang"] = st.session_state["lang"]


def _dataset(ws: Workspace) -> None:
    _widget(next(s for s in fields() if s.name == "dataset"), on_change=_dataset_changed, args=(ws,))
    data = ws.dataset
    where = (
        t(f"source.{data.origin}", location=data.location)
        if data.origin != "keras"
        else t(f"source.keras_{data.location}")
    )
    st.caption(
        t("source.line", title=data.title, where=where, train=f"{len(data.x_train):,}", test=f"{len(data.x_test):,}")
    )
    if ws.dataset.origin == "bundled":
        with st.expander(t("settings.full_data_title")):
            st.markdown(t("settings.full_data_help"))
    own_data.render(ws)  # upload your own images


def _dataset_changed(ws: Workspace) -> None:
    """Epochs left at the old dataset's watchable default follow the new dataset's size."""
    batch = st.session_state[WIDGETS["batch_size"]]
    try:
        check("batch_size", batch)
    except ValueError:
        return  # the batch size's own message says what to fix
    if st.session_state[WIDGETS["epochs"]] != epochs_for(len(ws.dataset.x_train), batch):
        return
    try:
        data = ws.load_data(st.session_state[WIDGETS["dataset"]]).dataset
    except ValueError:
        return  # the sidebar says why when it applies the dataset
    st.session_state[WIDGETS["epochs"]] = epochs_for(len(data.x_train), batch)


def _presets(ws: Workspace) -> None:
    names = {name: t(f"preset.{name}") for name in PRESETS}
    # One under the other: beside a button the sidebar cut the names to "Worth explorin".
    st.selectbox(t("preset.label"), list(names), format_func=names.get, key="preset")
    st.button(t("preset.apply"), on_click=_apply_preset, args=(ws,), key="preset_apply", width="stretch")
    if st.session_state.get(WIDGETS["loss"]) == "guide" and _is_number(st.session_state.get(WIDGETS["kl_weight"])) \
            and st.session_state[WIDGETS["kl_weight"]] >= 0.5:  # fmt: skip
        st.info(t("preset.guide_note"))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _apply_preset(ws: Workspace) -> None:
    dataset = st.session_state[WIDGETS["dataset"]]
    size = len(ws.dataset.x_train) if dataset == ws.dataset.name else None  # epochs for a watchable run
    set_widgets(preset(st.session_state["preset"], dataset, size))


def _inputs() -> bool:
    """Every setting but the dataset, each with its allowed range; False if one is out of range."""
    valid = True
    for setting in fields():
        if setting.name != "dataset":
            valid = _widget(setting) and valid
    return valid


def _widget(setting: FieldSpec, **callback) -> bool:
    """The input for one setting, built from its metadata; under it, what is allowed if its value is not."""
    key, label = WIDGETS[setting.name], t(setting.text_key)
    help_text = t(setting.help_key)
    if setting.choices is not None:
        names = choice_names(setting.name)
        draw = st.radio if setting.widget == "radio" else st.selectbox
        draw(label, list(names), format_func=names.get, key=key, help=help_text, **callback)
        return True
    if setting.widget == "toggle":
        st.toggle(label, key=key, help=help_text, **callback)
        return True
    allowed = t("settings.range", low=setting.show(setting.low), high=setting.show(setting.high))
    help_text = f"{help_text}\n\n{allowed}"
    if setting.widget == "steps":
        values = sorted({*LEARNING_RATES, st.session_state[key]})
        st.select_slider(label, values, key=key, format_func="{:g}".format, help=help_text, **callback)
        return True
    # No min/max on the input: out of range, the browser would only draw a red box. Here the page says why.
    st.number_input(label, step=setting.step, format=None if setting.integer else "%.4g", key=key, help=help_text,
                    **callback)  # fmt: skip
    try:
        check(setting.name, st.session_state[key])
    except ValueError:
        st.error(t("settings.out_of_range", label=label, low=setting.show(setting.low),
                   high=setting.show(setting.high)))  # fmt: skip
        return False
    return True


def _reconcile(ws: Workspace, desired: Settings) -> None:
    """Apply what can be applied; a change of model for a trained one waits for the question by Start."""
    new_model = desired.dataset != ws.dataset.name or desired.model_key() != ws.settings.model_key()
    if new_model and (ws.trained or ws.training):
        st.session_state[QUESTION] = "discard"
        st.warning(t("settings.question_waits"))
    elif new_model:
        _rebuild(ws, desired)
    elif desired != ws.settings:
        if ws.training:
            st.caption(t("settings.next_start"))
        else:
            ws.update(desired)


def apply_typed(ws: Workspace) -> bool:
    """Apply the settings the widgets hold now, from a button's callback, which runs before the sidebar:
    a value typed and Start clicked at once reaches the server with the click, and Start must use it.
    False if Start must wait for the page: a value out of range, or a change of model for a trained one
    (the rerun then shows why, as it does after any change)."""
    for setting in fields():
        try:
            check(setting.name, st.session_state[WIDGETS[setting.name]])
        except ValueError:
            return False
    desired = _settings_from_widgets()
    if desired.dataset != ws.dataset.name:  # new data is loaded by the rerun its own choice made, and said there
        return False
    new_model = desired.model_key() != ws.settings.model_key()
    if new_model and (ws.trained or ws.training):
        return False
    if new_model:
        _rebuild(ws, desired)
    elif desired != ws.settings and not ws.training:
        ws.update(desired)
    return True


def model_question(ws: Workspace) -> None:
    """Where the training buttons are: whether to throw the trained model away, or why Start waits."""
    waiting = st.session_state.get(QUESTION)
    if waiting == "invalid":
        st.caption(t("settings.fix_first"))
    if waiting != "discard":
        return
    with st.container(border=True):
        st.warning(t("settings.confirm_discard", changes=_model_changes(ws, _settings_from_widgets())))
        discard, keep = st.columns(2)
        discard.button(t("settings.discard"), on_click=_discard_and_apply, args=(ws,), type="primary", key="discard",
                       width="stretch")  # fmt: skip
        keep.button(t("settings.keep"), on_click=set_widgets, args=(ws.settings,), key="keep", width="stretch")


def _model_changes(ws: Workspace, desired: Settings) -> str:
    """What asks for a new model, as "Latent size 8 → 3, Seed 0 → 1"."""
    current = ws.settings.replace(dataset=ws.dataset.name)
    titles = choice_names("dataset")
    changes = []
    for setting in fields():
        before, after = getattr(current, setting.name), getattr(desired, setting.name)
        if setting.name in ("dataset", *MODEL_FIELDS) and before != after:
            before, after = (_shown(setting, value, titles) for value in (before, after))
            changes.append(f"{t(setting.text_key)} {before} → {after}")
    return ", ".join(changes)


def _shown(setting: FieldSpec, value, titles: dict) -> str:
    """A value as the question shows it: a dataset's title, a translated choice, on/off."""
    if setting.widget == "toggle":
        return t("settings.on") if value else t("settings.off")
    if setting.choices is not None and setting.name != "dataset":
        return choice_names(setting.name)[value]
    return titles.get(value, value)


def _discard_and_apply(ws: Workspace) -> None:
    _rebuild(ws, _settings_from_widgets())  # the question shows only for valid settings


def _rebuild(ws: Workspace, settings: Settings) -> None:
    """A new model for new sizes, seed or data; an unavailable dataset leaves the old one in place."""
    try:
        ws.switch(settings)
    except ValueError as error:
        st.error(t("settings.data_error", detail=error))
