"""The interactive 3-D view of one system's tokens on S² over time (plotly, offline).

A translucent unit sphere, the tokens as markers coloured by index (so each token can be followed), their
initial positions as faint grey dots, one animation frame per saved time (subsampled to at most 60 frames,
first and last kept), a time slider and play/pause buttons. Tokens of a d = 2 run are drawn on the equator
circle of the same sphere. The figure div is emitted with ``include_plotlyjs=False``; the page inlines
plotly.js once (:func:`plotly_js`), so the report needs no network.

plotly is imported lazily: building a report without a viewer never loads it.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import numpy as np

from ..plot.arrays import frame_indices, token_paths
from .elements import Fragment

__all__ = ["MAX_FRAMES", "MAX_TOKENS", "plotly_js", "viewer_figure", "viewer_fragment"]

MAX_FRAMES = 60  # frames per viewer: enough for a smooth slider, small enough for a light page
MAX_TOKENS = 2000  # tokens drawn per viewer (the first ones); beyond this the page gets heavy
_FRAME_MS = 120  # play speed: milliseconds per frame


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (inlined once per page)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def viewer_figure(
    positions: Any, times: Any, system: int = 0, *, max_frames: int = MAX_FRAMES, title: str | None = None,
) -> Any:
    """A plotly Figure animating one system on the unit sphere.

    positions: (T, B, n, d) or (T, n, d) with d = 2 or 3 (numpy or torch). times: (T,). system: which of
    the B systems. Returns a ``plotly.graph_objects.Figure`` with ≤ max_frames frames. Raises ValueError for
    another d, a system out of range or mismatched times.
    """
    import plotly.graph_objects as go

    x, t = token_paths(positions, times, "the 3-D viewer")
    T, B, n, d = x.shape
    if not 0 <= system < B:
        raise ValueError(f"system must be an integer in [0, {B - 1}], got {system}")
    xs = x[:, system, :MAX_TOKENS]
    if d == 2:  # the circle as the equator of S²
        xs = np.concatenate([xs, np.zeros(xs.shape[:-1] + (1,))], axis=-1)
    xs = xs.astype(np.float32)  # float32 (1e-7) is far below a pixel and halves the page weight
    frames_at = frame_indices(T, 1, max_frames)
    color = np.arange(xs.shape[1])

    u, v = np.mgrid[0 : 2 * np.pi : 48j, 0 : np.pi : 24j]
    sphere = go.Surface(
        x=(np.cos(u) * np.sin(v)).astype(np.float32), y=(np.sin(u) * np.sin(v)).astype(np.float32),
        z=np.cos(v).astype(np.float32), opacity=0.18, showscale=False,
        colorscale=[[0, "#9aa7b4"], [1, "#9aa7b4"]], hoverinfo="skip", name="S²",
        lighting={"ambient": 0.65, "diffuse": 0.5, "specular": 0.05, "fresnel": 0.1},
    )
    traces = [sphere]
    if d == 2:
        a = np.linspace(0, 2 * np.pi, 181)
        traces.append(go.Scatter3d(x=np.cos(a), y=np.sin(a), z=0 * a, mode="lines", hoverinfo="skip",
                                   line={"color": "#57606a", "width": 3}, name="S¹", showlegend=False))
    start = xs[frames_at[0]]
    traces.append(go.Scatter3d(
        x=start[:, 0], y=start[:, 1], z=start[:, 2], mode="markers", name="t = 0", hoverinfo="skip",
        marker={"size": 2.5, "color": "#8c959f", "opacity": 0.6}, showlegend=True,
    ))

    def tokens(k: int) -> Any:
        p = xs[k]
        return go.Scatter3d(
            x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", name="tokens", text=[f"token {i}" for i in color],
            hoverinfo="text", marker={"size": 4.5, "color": color, "colorscale": "Turbo", "cmin": 0,
                                      "cmax": max(len(color) - 1, 1), "line": {"width": 0}},
        )

    traces.append(tokens(frames_at[0]))
    moving = len(traces) - 1
    frames = [go.Frame(name=str(i), data=[tokens(k)], traces=[moving]) for i, k in enumerate(frames_at)]
    still = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    steps = [{"method": "animate", "label": f"{t[k]:.3g}", "args": [[str(i)], still]} for i, k in enumerate(frames_at)]
    play = {"frame": {"duration": _FRAME_MS, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    pause = {"mode": "immediate", "frame": {"duration": 0, "redraw": False}, "transition": {"duration": 0}}
    axis = {"range": [-1.1, 1.1], "showbackground": False, "zeroline": False, "gridcolor": "#e1e4e8"}
    shown = "" if n <= MAX_TOKENS else f" (first {MAX_TOKENS} of {n} tokens)"
    fig = go.Figure(data=traces, frames=frames)
    fig.update_layout(
        title={"text": (title or f"system {system}") + shown, "x": 0.02, "font": {"size": 14}},
        height=640, margin={"l": 0, "r": 0, "t": 40, "b": 0}, template="plotly_white",
        legend={"x": 0.02, "y": 0.92},
        scene={"xaxis": {**axis, "title": {"text": "x₁"}}, "yaxis": {**axis, "title": {"text": "x₂"}},
               "zaxis": {**axis, "title": {"text": "x₃"}}, "aspectmode": "cube",
               "domain": {"x": [0, 1], "y": [0.1, 1]},  # the bottom strip holds the buttons and the slider
               "camera": {"eye": {"x": 1.35, "y": 1.35, "z": 0.9}}},
        updatemenus=[{
            "type": "buttons", "direction": "left", "x": 0.02, "y": 0.02, "xanchor": "left", "yanchor": "bottom",
            "showactive": False, "pad": {"r": 10, "t": 10},
            "buttons": [{"label": "▶ play", "method": "animate", "args": [None, play]},
                        {"label": "❚❚ pause", "method": "animate", "args": [[None], pause]}],
        }],
        sliders=[{
            "active": 0, "x": 0.22, "len": 0.76, "y": 0.02, "yanchor": "bottom", "pad": {"t": 0, "b": 10},
            "currentvalue": {"prefix": "t = ", "visible": True}, "steps": steps,
        }],
    )
    return fig


def viewer_fragment(
    positions: Any, times: Any, system: int = 0, *, max_frames: int = MAX_FRAMES, title: str | None = None,
) -> Fragment:
    """The viewer as an HTML :class:`Fragment` (a div and its script, plotly.js not included).

    Same arguments as :func:`viewer_figure`. The page that shows it inlines plotly.js once in its head.
    """
    import plotly.io as pio

    fig = viewer_figure(positions, times, system, max_frames=max_frames, title=title)
    div = pio.to_html(
        fig, include_plotlyjs=False, full_html=False, auto_play=False, div_id=f"viewer-{uuid.uuid4().hex[:10]}",
        default_height="640px",
        # no link to a plotly server or logo: the page must not point anywhere outside itself
        config={"displaylogo": False, "plotlyServerURL": "", "responsive": True,
                "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud"]},
    )
    return Fragment(div, plotly=True)
