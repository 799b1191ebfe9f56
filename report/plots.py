"""The report's plots as inline SVG, drawn with matplotlib's own SVG canvas (no display, no
pyplot state shared between calls or threads, no network)."""
from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mqtt.shared import ThermometerPoint

_INK, _CALM, _GRID = "#2f4858", "#5b8fa8", "#d9e2e7"


def _svg(fig: Figure, salt: str, title: str) -> str:
    """The figure as an <svg> element to put inside the page. `salt` keeps each plot's internal
    ids (clip paths) distinct, so two plots on one page never share a definition by accident."""
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]                 # no XML prolog or DOCTYPE inside HTML
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)   # RDF a reader would see
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{title}" class="plot" ', text, count=1)


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=96)
    fig.patch.set_alpha(0)
    return fig


def thermometer_svg(points: Sequence[ThermometerPoint], *, salt: str, title: str,
                    x_label: str, y_label: str, start_label: str) -> str:
    """The tension curve of one time-out: minutes from its start against 0-10."""
    fig = _figure(6.0, 2.0)
    ax = fig.add_axes((0.09, 0.25, 0.88, 0.68))
    xs = [p.minute for p in points]
    ys = [p.value for p in points]
    ax.plot(xs, ys, color=_INK, linewidth=2, marker="o", markersize=4)
    ax.fill_between(xs, ys, color=_CALM, alpha=0.25, linewidth=0)
    ax.axvline(0, color="#8a8a8a", linewidth=1, linestyle="--")
    ax.annotate(start_label, (0, 10), xytext=(3, -10), textcoords="offset points",
                fontsize=8, color="#555555")
    lo, hi = min([*xs, 0.0]), max([*xs, 0.0])
    pad = max(1.0, (hi - lo) * 0.05)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(0, 10)
    ax.set_yticks([0, 5, 10])
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_ylabel(y_label, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, color=_GRID, linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, salt, title)


def weeks_svg(labels: Sequence[str], counts: Sequence[int], *, salt: str, title: str,
              x_label: str) -> str:
    """Time-outs per week as bars (only the weeks whose dates were shared)."""
    fig = _figure(6.0, 1.9)
    ax = fig.add_axes((0.07, 0.27, 0.9, 0.67))
    ax.bar(range(len(counts)), counts, color=_CALM, width=0.6)
    ax.set_xticks(range(len(counts)), labels, fontsize=8)
    ax.set_xlabel(x_label, fontsize=8)
    top = max([*counts, 1])
    ax.set_ylim(0, top + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(True, axis="y", color=_GRID, linewidth=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _svg(fig, salt, title)
