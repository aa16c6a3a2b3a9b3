"""Plotly figures of losses and latent codes. Text comes in from the caller (it may be translated)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_POINTS = 250  # per training curve: enough for the eye, cheap to redraw twice a second
MAX_MARKERS = 30  # validation markers on a long run: more merge into a band
SKIP_RECORDS = 3  # the y range starts after this many records: the first steps' loss dwarfs the rest
COLLAPSED_KL = 0.05  # nats: a dimension this close to the prior carries almost nothing
DIGIT_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
_SERIES = (("loss", "#1f77b4"), ("reconstruction_loss", "#2ca02c"), ("kl_loss", "#d62728"))


def _layout(height: int, **extra) -> dict:
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        "uirevision": "keep",  # keep zoom and legend choices across refreshes
        **extra,
    }


def _thin(values: np.ndarray) -> np.ndarray:
    """Every k-th point so that a curve has at most MAX_POINTS, always keeping the last."""
    if len(values) <= MAX_POINTS:
        return values
    index = np.unique(np.r_[np.linspace(0, len(values) - 1, MAX_POINTS).astype(int), len(values) - 1])
    return values[index]


def _visible_range(values: list[np.ndarray]) -> list[float] | None:
    """A y range for the records after the first few, so that the first steps' spike does not flatten the rest."""
    kept = [np.asarray(v, dtype=float)[min(SKIP_RECORDS, max(len(v) - 1, 0)) :] for v in values if len(v)]
    if not kept:
        return None
    joined = np.concatenate(kept)
    joined = joined[np.isfinite(joined)]
    if not len(joined):
        return None
    low, high = float(joined.min()), float(joined.max())
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    return [low - pad, high + pad]


def marker_sizes(count: int, size: int = 9) -> list[int]:
    """Sizes for ``count`` validation markers: all up to MAX_MARKERS, beyond that evenly spaced ones and the last."""
    if count <= MAX_MARKERS:
        return [size] * count
    shown = set(np.linspace(0, count - 1, MAX_MARKERS).astype(int).tolist())
    return [size if i in shown else 0 for i in range(count)]


def loss_figure(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], text: Mapping[str, str]) -> go.Figure:
    """Total and reconstruction loss by step (top), and the KL term in its own panel below with its own axis.

    Lines are training records; validation is a dotted line through every epoch's
    value with markers on at most MAX_MARKERS of them. Each panel's y range leaves
    out the first few records (the untrained model's spike); zoom out to see them.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    has_train, has_val = len(train.get("step", [])) > 0, len(val.get("step", [])) > 0
    for name, color in _SERIES:
        row = 2 if name == "kl_loss" else 1
        if has_train:
            line = {"color": color, "width": 2}
            figure.add_trace(go.Scatter(x=_thin(train["step"]), y=_thin(train[name]), name=text[name], mode="lines",
                                        line=line), row=row, col=1)  # fmt: skip
        if has_val:
            marker = {"color": color, "symbol": "diamond", "size": marker_sizes(len(val["step"]))}
            figure.add_trace(go.Scatter(x=val["step"], y=val[name], name=text[f"val_{name}"], mode="lines+markers",
                                        marker=marker, line={"color": color, "width": 1, "dash": "dot"}),
                             row=row, col=1)  # fmt: skip
    for row, names in ((1, ("loss", "reconstruction_loss")), (2, ("kl_loss",))):
        values = [series[name] for series, present in ((train, has_train), (val, has_val)) if present for name in names]
        figure.update_yaxes(range=_visible_range(values), row=row, col=1)
    figure.update_yaxes(title_text=text["loss_axis"], row=1, col=1)
    figure.update_yaxes(title_text=text["kl_axis"], row=2, col=1)
    figure.update_xaxes(title_text=text["step"], row=2, col=1)
    figure.update_layout(**_layout(380, margin={"l": 10, "r": 10, "t": 60, "b": 10}))
    return figure


def kl_bars(kl: np.ndarray, order: list[int], text: Mapping[str, str]) -> go.Figure:
    """Each latent dimension's mean KL; dimensions that collapsed onto the prior are grey."""
    kl = np.asarray(kl, dtype=float)[order]
    colors = ["#bbbbbb" if value < COLLAPSED_KL else "#d62728" for value in kl]
    bars = go.Bar(x=[f"z{i}" for i in order], y=kl, marker={"color": colors}, name=text["kl"])
    return go.Figure(data=[bars], layout=_layout(180, yaxis={"title": text["kl"]}, showlegend=False))


def code_bars(z_mean: np.ndarray, z_std: np.ndarray, text: Mapping[str, str]) -> go.Figure:
    """A code's mean per latent dimension with ±1 standard deviation."""
    names = [f"z{i}" for i in range(len(z_mean))]
    bars = go.Bar(x=names, y=z_mean, error_y={"type": "data", "array": z_std, "visible": True}, name=text["mean"])
    layout = _layout(220, yaxis={"title": text["mean"], "range": [-4, 4]}, showlegend=False)
    return go.Figure(data=[bars], layout=layout)


def latent_map(
    coords: np.ndarray,
    labels: np.ndarray,
    text: Mapping[str, str],
    drawn: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> go.Figure:
    """Test digits' mean codes on two axes, one colour a label; ``drawn`` is (centre [2], std [2] or None)."""
    traces = []
    for digit in range(10):
        where = np.flatnonzero(labels == digit)
        traces.append(
            go.Scatter(
                x=coords[where, 0],
                y=coords[where, 1],
                mode="markers",
                name=str(digit),
                customdata=where,
                marker={"size": 5, "color": DIGIT_COLORS[digit], "opacity": 0.75},
                hovertemplate=f"{text['label']} {digit}<extra></extra>",
            )
        )
    if drawn is not None and drawn[1] is not None:  # no spread on a map whose axes are not the code's
        centre, std = drawn
        angle = np.linspace(0, 2 * np.pi, 60)
        traces.append(
            go.Scatter(
                x=centre[0] + 2 * std[0] * np.cos(angle),
                y=centre[1] + 2 * std[1] * np.sin(angle),
                mode="lines",
                name=text["spread"],
                line={"color": "black", "dash": "dot"},
            )
        )
    if drawn is not None:
        centre = drawn[0]
        traces.append(
            go.Scatter(
                x=[centre[0]],
                y=[centre[1]],
                mode="markers",
                name=text["drawn"],
                marker={"symbol": "star", "size": 18, "color": "black"},
            )
        )
    # The legend goes below: above the plot it runs under the toolbar of selection tools.
    legend = {"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0}
    layout = _layout(560, xaxis={"title": text["x"]}, yaxis={"title": text["y"]}, legend=legend,
                     margin={"l": 10, "r": 10, "t": 30, "b": 10})  # fmt: skip
    return go.Figure(data=traces, layout=layout)


def runs_figure(curves: Mapping[str, Mapping[str, np.ndarray]], text: Mapping[str, str]) -> go.Figure:
    """One validation-loss curve (or training loss, without validation) per run, by epoch."""
    traces = [
        go.Scatter(x=curve["epoch"], y=curve["loss"], mode="lines+markers", name=name) for name, curve in curves.items()
    ]
    layout = _layout(340, xaxis={"title": text["epoch"]}, yaxis={"title": text["loss"], "type": "log"})
    return go.Figure(data=traces, layout=layout)
