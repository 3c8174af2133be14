"""The geometry of the dashboard's SVG charts, computed here and drawn by the templates (no chart library, no
JavaScript): bars of a histogram or a time series, scaled to a fixed view box. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qqueue.api.schemas import DurationHistogram, ThroughputMinute

__all__ = ["Bar", "Chart", "bar_chart", "counts_chart", "counts_of", "duration_chart", "duration_labels",
           "throughput_chart"]

#: The view box every chart is drawn in; the page scales it to its width.
WIDTH = 600
HEIGHT = 200
#: Room under the bars for the axis labels, and above them for the peak's label.
AXIS = 30
TOP = 20
#: Most outcomes a counts histogram draws; the rest are summed into one bar, so a wide register stays readable.
MAX_OUTCOMES = 64


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar (or one segment of a stacked bar), in view-box units."""

    x: float
    y: float
    width: float
    height: float
    #: Tooltip: what the bar stands for and its value.
    title: str
    #: Which series it belongs to (a CSS class: completed, failed, ...).
    series: str = "value"


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars and the labels under them, in a `width` x `height` view box."""

    bars: list[Bar]
    #: (x, text) of each axis label.
    labels: list[tuple[float, str]]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    #: The top of the bar area, where the peak value is written.
    plot_height: int = HEIGHT - AXIS
    empty: bool = field(default=False)


def bar_chart(values: Sequence[Sequence[tuple[str, int]]], labels: Sequence[str], titles: Sequence[str], *,
              label_every: int = 1) -> Chart:
    """Stacked bars: `values[i]` holds the (series, value) segments of bar i, bottom first, `labels[i]` its axis
    label (written, unless empty, for every `label_every`-th bar) and `titles[i]` its tooltip."""
    count = max(len(values), 1)
    plot = HEIGHT - AXIS
    peak = max((sum(v for _, v in segments) for segments in values), default=0)
    slot = WIDTH / count
    gap = min(2.0, slot * 0.2)
    bars: list[Bar] = []
    for i, segments in enumerate(values):
        base = float(plot)
        for series, value in segments:
            if value <= 0:
                continue
            height = (plot - TOP) * value / peak
            base -= height
            bars.append(Bar(x=i * slot + gap / 2, y=base, width=slot - gap, height=height,
                            title=f"{titles[i]}: {value} {series}", series=series))
    axis = [(i * slot + slot / 2, label) for i, label in enumerate(labels) if label and i % label_every == 0]
    return Chart(bars=bars, labels=axis, peak=peak, empty=peak == 0)


def throughput_chart(minutes: Sequence[ThroughputMinute]) -> Chart:
    """Tasks ended per minute, oldest minute first, completed, failed and cancelled stacked."""
    last = len(minutes) - 1
    values = [[("completed", m.completed), ("failed", m.failed), ("cancelled", m.cancelled)] for m in minutes]
    labels = ["now" if i == last else f"-{last - i}m" if (last - i) % 10 == 0 else "" for i in range(len(minutes))]
    titles = [m.minute.strftime("%H:%M UTC") for m in minutes]
    return bar_chart(values, labels, titles)


def duration_labels(edges_s: Sequence[float]) -> tuple[list[str], list[str]]:
    """The axis labels of a duration histogram's buckets, short enough to sit under a bar ("<10ms", ...,
    "≥1000s"), and their full names for tooltips ("10ms–30ms")."""
    names = [_seconds(e) for e in edges_s]
    short = [f"<{n}" for n in names] + [f"≥{names[-1]}"]
    full = [f"<{names[0]}", *(f"{low}–{high}" for low, high in zip(names, names[1:], strict=False)),
            f"≥{names[-1]}"]
    return short, full


def duration_chart(histogram: DurationHistogram) -> Chart:
    """One bar per bucket of a duration histogram."""
    short, full = duration_labels(histogram.edges_s)
    # Every other bucket labelled: a card is narrow; each bar's tooltip names its bucket.
    return bar_chart([[("tasks", n)] for n in histogram.tasks], short, full, label_every=2)


def counts_of(result: Any) -> dict[str, int] | None:
    """The measurement counts in a task's result: `counts` of a simulate result, or of its first parameter set for
    a sweep; None when the result has none (statevectors, transpiled circuits, test kinds)."""
    counts = result.get("counts") if isinstance(result, dict) else None
    if isinstance(counts, list) and counts:
        counts = counts[0]
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        return None
    return {str(k): int(v) for k, v in counts.items()}


def counts_chart(counts: dict[str, int]) -> Chart:
    """One bar per outcome, in outcome order; past `MAX_OUTCOMES`, the most frequent are drawn and the others
    summed into an "other" bar."""
    items = sorted(counts.items())
    if len(items) > MAX_OUTCOMES:
        kept = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_OUTCOMES - 1])
        other = sum(v for k, v in counts.items() if k not in kept)
        items = [*sorted(kept.items()), ("other", other)]
    labels = [k for k, _ in items]
    every = max(1, len(items) // 16)
    return bar_chart([[("shots", v)] for _, v in items], labels, labels, label_every=every)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"
