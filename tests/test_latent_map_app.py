"""The Latent map tab in AppTest: PCA at once, t-SNE from the background, the drawn digit, a stale map."""

from __future__ import annotations

import json

import numpy as np
import pytest

from playground.latent import place_by_neighbours, tsne_2d
from tests.test_app import open_tab, plotly_values

pytestmark = pytest.mark.slow  # a page run and a t-SNE of the 500 test digits


def map_figure(at) -> dict:
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    maps = [c for c in charts if any(trace.get("customdata") is not None for trace in c["data"])]
    assert len(maps) == 1, "one latent map"
    return maps[0]


def points(figure: dict) -> np.ndarray:
    """The test digits' positions, in test-set order: [N, 2]."""
    traces = [trace for trace in figure["data"] if trace.get("customdata") is not None]
    index = np.concatenate([plotly_values(trace["customdata"]) for trace in traces]).astype(int)
    xy = np.concatenate([np.stack([plotly_values(tr["x"]), plotly_values(tr["y"])], 1) for tr in traces])
    ordered = np.empty_like(xy)
    ordered[index] = xy
    return ordered


def star(figure: dict) -> np.ndarray | None:
    stars = [trace for trace in figure["data"] if trace.get("marker", {}).get("symbol") == "star"]
    return None if not stars else np.array([plotly_values(stars[0]["x"])[0], plotly_values(stars[0]["y"])[0]])


def texts(at) -> str:
    return " ".join(e.value for kind in ("caption", "info", "warning") for e in at.get(kind))


def test_the_map_switches_from_pca_to_a_tsne_computed_in_the_background(app):
    open_tab(app, "map")
    radio = app.radio(key="map_method")
    assert radio.value == "pca" and radio.options == ["PCA", "t-SNE"]
    assert "principal component 1" in map_figure(app)["layout"]["xaxis"]["title"]["text"]

    radio.set_value("tsne").run()
    assert not app.exception, [e.value for e in app.exception]
    layout = app.session_state["map_layout"]
    assert "Computing the t-SNE map of 500 test digits in the background" in texts(app)
    assert "principal component 1" in map_figure(app)["layout"]["xaxis"]["title"]["text"], "PCA meanwhile"

    open_tab(app, "explore")  # the layout goes on while another tab is open, and the choice is kept
    assert layout["job"].wait(300), "the t-SNE layout never finished"
    open_tab(app, "map")
    assert app.radio(key="map_method").value == "tsne"
    assert not app.exception, [e.value for e in app.exception]
    figure = map_figure(app)
    assert figure["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
    codes = app.session_state["map_cache"]["z_mean"]
    np.testing.assert_allclose(points(figure), tsne_2d(codes, seed=0), rtol=1e-5, atol=1e-4)  # the seed holds
    assert "Nearest neighbours kept" in texts(app) and "Computing" not in texts(app)

    # The drawn digit: a code equal to test digit 42's lands on digit 42's point.
    app.session_state["drawn"] = {"z_mean": codes[42], "z_log_var": np.zeros(8, np.float32)}
    app.run()
    placed = star(map_figure(app))
    np.testing.assert_allclose(placed, points(map_figure(app))[42], rtol=1e-5)
    assert "t-SNE cannot place a new point" in texts(app)
    other = codes[42] + 0.3
    app.session_state["drawn"] = {"z_mean": other, "z_log_var": np.zeros(8, np.float32)}
    app.run()
    expected = place_by_neighbours(other, codes, layout["job"].coords).position
    np.testing.assert_allclose(star(map_figure(app)), expected, rtol=1e-5)

    # Once the weights move on, the map says it is stale and offers to recompute.
    layout["version"] = -1
    app.run()
    assert "computed for earlier weights" in texts(app)
    recompute = next(b for b in app.button if b.label == "Recompute the t-SNE map")
    recompute.click().run()
    assert app.session_state["map_layout"]["job"] is not layout["job"], "a new layout started"
    assert "Computing the t-SNE map" in texts(app)

    app.radio(key="map_method").set_value("pca").run()
    assert "principal component 1" in map_figure(app)["layout"]["xaxis"]["title"]["text"]
    app.session_state["map_layout"]["job"].wait(300)


def test_a_two_dimensional_code_gets_no_switch(app):
    app.session_state["workspace"].stop(wait=True)
    from tests.test_app import number

    number(app, "Latent size").set_value(2).run()
    open_tab(app, "map")
    assert not [r for r in app.radio if r.key == "map_method"], "a 2-D code is its own map"
    assert map_figure(app)["layout"]["xaxis"]["title"]["text"] == "z0"
