"""Training controls, and two fragments that poll the worker: progress and loss curves; reconstructions and KL bars."""

from __future__ import annotations

import signal
import time

import numpy as np
import streamlit as st

from playground.figures import COLLAPSED_KL, kl_bars, loss_figure
from playground.imaging import tile, to_display
from playground.latent import order_by_kl
from playground.ui.feedback import guarded
from playground.ui.i18n import duration, t
from playground.ui.sidebar import QUESTION, apply_typed, model_question
from playground.workspace import Status, Workspace

# While training, two fragments poll the worker: the progress bar and the loss curves
# at least twice a second, the reconstructions and KL bars every two seconds. Each
# redraw of a chart costs the browser tens of milliseconds; keeping the fast one
# small keeps the sliders and the canvas responsive during training.
POLL_SECONDS = 0.45
SLOW_POLL_SECONDS = 2.0
# Start waits this long at most for the run's first loss record, so that the rerun the click
# causes already draws it (a warm trainer streams it in about 0.1 s) instead of the next poll.
FIRST_POINT_WAIT_SECONDS = 0.5


def render(ws: Workspace) -> None:
    _controls(ws)
    model_question(ws)  # "throw the trained model away?" waits here, next to Start, which it disables
    live = ws.training
    chart, side = st.columns([3, 2])
    with chart:
        st.fragment(run_every=POLL_SECONDS if live else None)(_live)(ws)
    with side:
        st.fragment(run_every=SLOW_POLL_SECONDS if live else None)(_snapshots)(ws)


def _controls(ws: Workspace) -> None:
    status = ws.status()
    waiting = bool(st.session_state.get(QUESTION))
    # One row that wraps, not st.columns: columns stack on a phone, where four full-width buttons filled the screen.
    row = st.container(horizontal=True, wrap=True, gap="small")
    row.button(start_label(ws), on_click=_start, args=(ws,), type="primary", disabled=status.active or waiting,
               key="start", width="stretch", help=t("help.start"))  # fmt: skip
    row.button(t("train.stop"), on_click=ws.stop, disabled=not status.active, key="stop", width="stretch")
    if status.state == "paused":
        row.button(t("train.resume"), on_click=ws.resume, key="resume", width="stretch")
    else:
        row.button(t("train.pause"), on_click=ws.pause, disabled=status.state != "running", key="pause",
                   width="stretch")  # fmt: skip
    row.button(t("train.reset"), on_click=ws.reset, disabled=not ws.trained and not status.active, key="reset",
               width="stretch", help=t("help.reset"))  # fmt: skip


def start_label(ws: Workspace) -> str:
    """Says what Start will do: start, carry a stopped run on to its last epoch, or train more epochs."""
    trainer = ws.trainer
    if not ws.trained:
        return t("train.start")
    if trainer.epoch < trainer.target_epoch:
        return t("train.continue", epoch=trainer.target_epoch)
    return t("train.more_one") if ws.settings.epochs == 1 else t("train.more", epochs=ws.settings.epochs)


def _start(ws: Workspace) -> None:
    if not apply_typed(ws):  # this callback runs before the sidebar: a value typed just now is not applied yet
        return
    step = ws.status().step
    ws.start()
    st.session_state["was_active"] = True
    deadline = time.monotonic() + FIRST_POINT_WAIT_SECONDS
    while time.monotonic() < deadline:
        status = ws.status()
        if status.step != step or status.state not in ("running", "queued"):
            break
        time.sleep(0.01)


def chart_config(ws: Workspace) -> dict:
    """Static charts while training: redrawn twice a second, hover layers would cost the browser
    more than the sliders and the canvas can spare; zoom and hover return when training stops."""
    return {"displayModeBar": False, "staticPlot": ws.training}


@guarded  # a fragment reruns on its own: it needs its own guard
def _live(ws: Workspace) -> None:
    if ws.closed:
        return
    status = ws.status()
    # Training ended: stop polling and refresh the other panels, once the job's thread has also kept the run
    # (a stopped run says "Stopped" while it is still being written; a rerun then would list the runs without it).
    if st.session_state.get("was_active") and not status.active and not ws.training:
        st.session_state["was_active"] = False
        st.rerun(scope="app")
    _progress(status)
    _loss_chart(ws, status)


@guarded  # a fragment reruns on its own: it needs its own guard
def _snapshots(ws: Workspace) -> None:
    """What the model makes of some test digits now, and how much each latent dimension is used."""
    if ws.closed:
        return
    _reconstructions(ws)
    _kl_chart(ws)


def _progress(status: Status) -> None:
    if status.state == "queued" and status.waiting_for_cluster:  # Ray has no CPU for it yet
        st.info(t("train.cluster_wait"))
        text = t("train.cluster_wait_short")
    elif status.state == "queued":
        st.info(t("train.queued", position=status.queue_position or 1))
        text = t("train.queued_short", position=status.queue_position or 1)
    elif status.state == "running" and status.step == 0:  # a warm trainer's first record comes in ~0.3 s
        text = t("train.compiling") if status.compiling else t("train.starting")
    elif status.active:
        left = "—" if status.seconds_left is None else duration(status.seconds_left)
        speed = f"{status.steps_per_second:,.0f}" if status.steps_per_second else "—"  # 0: not measured yet
        text = t("train.progress", epoch=status.epoch, epochs=status.target_epoch, step=status.epoch_step,
                 steps=status.steps_per_epoch, speed=speed, left=left)  # fmt: skip
    elif status.step == 0:  # a new or reset model: whatever the last job did, this one is untrained
        text = t("train.untrained")
    else:
        text = t("train.done", epochs=status.epoch, steps=f"{status.step:,}")
    state = "idle" if status.step == 0 and not status.active else status.state
    st.progress(status.fraction, text=f"{t('state.' + state)} · {text}")
    if status.state == "diverged" and status.result is not None:
        st.error(diverged_text(status.result))
    elif status.crash is not None:
        st.error(crash_text(status.crash))
    elif status.state == "failed":
        st.error(t("train.failed", detail=status.error))
    if status.save_error:
        st.warning(t("train.save_failed", detail=status.save_error))


def _loss_chart(ws: Workspace, status: Status) -> None:
    history = ws.trainer.history
    if len(history) == 0:  # the empty axes are drawn too: the browser loads its charting code before Start
        st.info(t("train.empty_chart_soon") if status.active else t("train.empty_chart"))
    names = ("loss", "reconstruction_loss", "kl_loss")
    text = {name: t(f"chart.{name}") for name in names}
    text.update({f"val_{name}": t(f"chart.val_{name}") for name in names})
    text.update(step=t("chart.step"), loss_axis=t("chart.loss_axis"), kl_axis=t("chart.kl_axis"))
    figure = loss_figure(history.columns("train"), history.columns("val"), text)
    if len(history) == 0:  # axes without numbers: an empty frame, not a loss of -1 to 4
        figure.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False, range=[0, 1])
    st.plotly_chart(figure, key="loss_chart", config=chart_config(ws))


def _reconstructions(ws: Workspace) -> None:
    """One test digit of each class (top) and the model's reconstruction of it (bottom)."""
    labels = ws.dataset.y_test
    picks = [int(np.flatnonzero(labels == digit)[0]) for digit in np.unique(labels)[:10]]
    originals = ws.dataset.x_test[picks]
    reconstructed = ws.refresh().reconstruct(originals)
    sheet = tile(np.concatenate([originals, reconstructed]), columns=len(picks))
    caption = t("train.grid_caption", items=t(f"items.{ws.dataset.kind}"))  # digits, or pictures of clothes
    st.image(to_display(sheet, 3), caption=caption, width="stretch", output_format="PNG")


def _kl_chart(ws: Workspace) -> None:
    kl = ws.trainer.history.kl_per_dim
    if kl is None:
        return
    used = int(np.sum(kl >= COLLAPSED_KL))
    st.markdown(f"**{t('kl.title')}**", help=t("kl.used", used=used, total=len(kl), threshold=COLLAPSED_KL))
    st.caption(t("kl.summary", used=used, total=len(kl)))
    order = order_by_kl(kl, len(kl)) if st.session_state.get("order_by_kl") else list(range(len(kl)))
    st.plotly_chart(kl_bars(kl, order, {"kl": t("kl.axis")}), key="kl_chart", config=chart_config(ws))


def crash_text(crash) -> str:
    """A training process that died, in the page's language: how, and which weights the model kept."""
    code = crash.exitcode
    if code is None:
        how = t("train.crash_lost")
    elif code < 0:
        how = t("train.crash_signal", signal=-code, name=signal_name(-code))
    else:
        how = t("train.crash_exit", code=code)
    if crash.kept_step is None:
        kept = t("train.crash_kept_start")
    else:
        kept = t("train.crash_kept_step", step=f"{crash.kept_step:,}")
    return t("train.crashed", how=how, kept=kept)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "?"


def diverged_text(result) -> str:
    """What a diverged run did and which weights it kept, from the run's facts (see RunResult)."""
    if result.loss_ratio is None:
        why = t("train.diverged_not_finite", step=f"{result.diverged_step:,}")
    else:
        ratio = f"{result.loss_ratio:,.0f}" if result.loss_ratio < 1e6 else f"{result.loss_ratio:.1e}"
        why = t("train.diverged_exploded", step=f"{result.diverged_step:,}", ratio=ratio)
    if result.restored_step == 0:
        restored = t("train.restored_initial")
    elif result.restored_epoch is not None:
        restored = t("train.restored_epoch", epoch=result.restored_epoch)
    else:
        restored = t("train.restored_step", step=f"{result.restored_step:,}")
    return t("train.diverged", why=why, restored=restored)
