"""Lessons: a question, one button that sets it up, what to watch, and a verdict read from your own run."""

from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from playground import lessons
from playground.config import Settings
from playground.inference import Inference
from playground.lessons import LESSONS, Lesson, Verdict
from playground.link import changed_settings, format_value
from playground.runs import RunInfo, list_runs, read_history, read_model
from playground.ui.feedback import flash
from playground.ui.i18n import t
from playground.ui.link import LESSON_KEY
from playground.ui.same_start import value_text
from playground.ui.sidebar import set_widgets
from playground.workspace import Workspace

SAMPLE = 500  # test digits a verdict is computed on
STYLES = {"shown": "success", "not_shown": "warning", "pending": "info"}


def render(ws: Workspace) -> None:
    st.selectbox(t("lessons.pick"), list(LESSONS), format_func=lambda i: t(f"lesson.{i}.title"), key=LESSON_KEY)
    lesson = _on_dataset(LESSONS[st.session_state[LESSON_KEY]], ws)
    st.subheader(t(f"lesson.{lesson.id}.title"))
    st.markdown(t(f"lesson.{lesson.id}.question"))
    target = lesson.run_settings(lesson.next_value(_trained_values(ws, lesson)))
    label = t("lessons.apply") if lesson.vary is None else t("lessons.apply_next", value=_shown(target, lesson.vary))
    st.button(label, key="lesson_apply", type="primary", on_click=_apply, args=(ws, target), disabled=ws.training)
    st.markdown(f"**{t('lessons.watch')}** {t(f'lesson.{lesson.id}.watch')}")
    st.markdown(f"**{t('lessons.verdict')}**")
    if ws.training:
        st.info(t("lessons.wait"))
        return
    verdict = _verdict(ws, lesson)
    text = (
        t(f"lesson.{lesson.id}.{verdict.state}", **verdict.values) if verdict.state != "pending" else _pending(lesson)
    )
    getattr(st, STYLES[verdict.state])(text)
    if lesson.vary is None and ws.trained and ws.settings != lesson.settings:
        st.caption(t("lessons.differs", changes=_changes(lesson.settings, ws.settings)))


def _on_dataset(lesson: Lesson, ws: Workspace) -> Lesson:
    """The lesson on the dataset the learner has chosen."""
    return dataclasses.replace(lesson, settings=lesson.settings.replace(dataset=ws.dataset.name))


def _shown(settings: Settings, name: str) -> str:
    return f"{t(f'settings.{name}')} = {format_value(getattr(settings, name))}"


def _changes(before: Settings, after: Settings) -> str:
    changed = changed_settings(before, after)
    return "; ".join(
        f"{t(f'settings.{name}')} {value_text(name, a)} → {value_text(name, b)}" for name, (a, b) in changed.items()
    )


def _apply(ws: Workspace, target: Settings) -> None:
    """A fresh model with the lesson's settings (a trained one is already kept in Runs)."""
    before = ws.settings
    try:
        ws.switch(target)
    except ValueError as error:
        flash("error", t("settings.data_error", detail=error))
        return
    set_widgets(target)
    changes = _changes(before, target)
    flash("success", t("lessons.changed", changes=changes) if changes else t("lessons.unchanged"))


def _pending(lesson: Lesson) -> str:
    if lesson.vary is None:
        return t("lessons.pending")
    return t("lessons.pending_runs", count=len(lesson.values), values=", ".join(map(format_value, lesson.values)))


# ---- the numbers a verdict is computed from ----


def _verdict(ws: Workspace, lesson: Lesson) -> Verdict:
    if lesson.vary is not None:
        return _comparison(ws, lesson, _lesson_runs(ws, lesson))
    if not ws.trained:
        return Verdict("pending")
    inference, history = ws.refresh(), ws.trainer.history
    if lesson.id == "collapse":
        kl, reconstructions = _codes(inference, ws.dataset.x_test[:SAMPLE], _labels(ws))
        return lessons.collapse(kl, reconstructions, ws.dataset.x_train.mean(axis=0))
    if lesson.id == "latent_2d":
        z_mean, _ = inference.encode(ws.dataset.x_test[:SAMPLE], _labels(ws))
        return lessons.latent_map(z_mean, ws.dataset.y_test[:SAMPLE])
    if lesson.id == "divergence":
        result = ws.status().result
        weights = inference.model.get_weights()
        finite = all(np.isfinite(w).all() for w in weights)
        losses = [r.loss for r in history.records("train")]
        return lessons.divergence(result.reason if result else None, losses, ws.trainer.step, finite)
    val = [r.loss for r in history.records("val")]
    return lessons.overfitting(val, _epoch_train_losses(history))


def _epoch_train_losses(history) -> list[float]:
    """The last training record of each epoch."""
    last = {r.epoch: r.loss for r in history.records("train")}
    return [last[epoch] for epoch in sorted(last)]


def _labels(ws: Workspace) -> np.ndarray | None:
    """The sample's own labels for a conditional model (else None: the model reads none)."""
    return ws.dataset.y_test[:SAMPLE] if ws.settings.conditional else None


def _codes(inference: Inference, images: np.ndarray, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """(KL per dimension [L], reconstructions [N, 28, 28]) of ``images`` (with their ``labels`` if conditional)."""
    z_mean, z_log_var = inference.encode(images, labels)
    return lessons.kl_per_dimension(z_mean, z_log_var), inference.decode(z_mean, labels)


def _trained_values(ws: Workspace, lesson: Lesson) -> set:
    if lesson.vary is None:
        return set()
    return set(_lesson_runs(ws, lesson))


def _lesson_runs(ws: Workspace, lesson: Lesson) -> dict:
    """The newest finished run for each value of the lesson's varied setting."""
    found: dict = {}
    for run in list_runs(ws.runs_dir) if ws.runs_dir is not None else []:  # newest first
        if run.summary.get("reason") == "finished" and lesson.matches(run.settings):
            found.setdefault(getattr(run.settings, lesson.vary), run)
    return found


def _comparison(ws: Workspace, lesson: Lesson, runs: dict) -> Verdict:
    dims = lesson.settings.latent_dim
    if lesson.id == "capacity":
        small, large = (_losses(runs[v], v) if v in runs else None for v in lesson.values)
        return lessons.capacity(small, large)
    facts = {value: _run_facts(ws, run) for value, run in runs.items()}
    if lesson.id == "kl_sweep":
        return lessons.kl_sweep(facts, dims)
    return lessons.elbo_vs_guide(facts.get("guide"), facts.get("elbo"), dims)


def _losses(run: RunInfo, size: int) -> tuple[int, float, float]:
    history = read_history(run)
    return size, history.records("train")[-1].loss, history.records("val")[-1].loss


def _run_facts(ws: Workspace, run: RunInfo) -> tuple[int, float]:
    """(dimensions in use, pixel error) of a saved run on the test digits, kept until its model file changes."""
    cache = st.session_state.setdefault("lesson_facts", {})
    model_file = run.path / "model.keras"
    key = (str(model_file), model_file.stat().st_mtime_ns)
    if key not in cache:
        images = ws.dataset.x_test[:SAMPLE]
        flat = images.reshape(len(images), -1)
        # Eagerly, once: a compiled function per saved model would stay in TensorFlow's memory.
        output = read_model(run).forward(flat, epsilon=np.zeros((len(flat), run.settings.latent_dim), np.float32))
        kl = lessons.kl_per_dimension(output.z_mean.numpy(), output.z_log_var.numpy())
        cache[key] = (lessons.dims_in_use(kl), lessons.pixel_error(flat, output.reconstruction.numpy()))
    return cache[key]
