"""Plotly figures of losses and latent codes. Text comes in from the caller (it may be translated)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

MAX_POINTS = 250  # per training curve: enough for the eye, cheap to redraw twice a second
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


def loss_figure(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], text: Mapping[str, str]) -> go.Figure:
    """Total, reconstruction and KL loss by step: lines while training, markers at each epoch's validation.

    The KL term has its own axis on the right: it is often orders of magnitude
    smaller than the reconstruction term.
    """
    traces = []
    for name, color in _SERIES:
        axis = "y2" if name == "kl_loss" else "y"
        if len(train.get("step", [])):
            steps, values = _thin(train["step"]), _thin(train[name])
            traces.append(
                go.Scatter(
                    x=steps, y=values, name=text[name], mode="lines", yaxis=axis, line={"color": color, "width": 2}
                )
            )
        if len(val.get("step", [])):
            traces.append(
                go.Scatter(
                    x=val["step"],
                    y=val[name],
                    name=text[f"val_{name}"],
                    mode="markers",
                    yaxis=axis,
                    marker={"color": color, "symbol": "diamond", "size": 9},
                )
            )
    layout = _layout(
        340,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis={"title": text["step"]},
        yaxis={"title": text["loss_axis"]},
        yaxis2={"title": text["kl_axis"], "overlaying": "y", "side": "right", "showgrid": False},
    )
    return go.Figure(data=traces, layout=layout)


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
    drawn: tuple[np.ndarray, np.ndarray] | None = None,
) -> go.Figure:
    """Test digits' mean codes on two axes, one colour a label; ``drawn`` is (centre [2], std [2])."""
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
    if drawn is not None:
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
