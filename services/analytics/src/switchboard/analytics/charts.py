"""Inline SVG charts for the dashboard: bars (grouped or stacked), lines and horizontal bars.

Written here rather than taken from a charting library: the page must work offline with
no JavaScript and no build step, and the few shapes it needs are a short function each.
Every chart states its data size (``data-points``) and draws a "no data" note when empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
AXIS = "#94a3b8"
TEXT = "#334155"
PAD_L, PAD_R, PAD_T, PAD_B = 68, 12, 12, 44


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(value: float, unit: str = "") -> str:
    if value >= 1_000_000:
        text = f"{value / 1_000_000:.1f}M"
    elif value >= 10_000:
        text = f"{value / 1000:.0f}k"
    elif value >= 1000:
        text = f"{value / 1000:.1f}k"
    elif value == int(value):
        text = str(int(value))
    else:
        text = f"{value:.1f}"
    return f"{text} {unit}" if unit else text


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _frame(kind: str, width: int, height: int, body: list[str], points: int) -> Markup:
    # Every piece of text in ``body`` went through escape() where it was made.
    return Markup(  # noqa: S704
        f'<svg class="chart-svg {kind}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-points="{points}">{"".join(body)}</svg>'
    )


def _empty(width: int, height: int) -> Markup:
    return _frame(
        "empty",
        width,
        height,
        [
            f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" '
            f'fill="{AXIS}" font-size="13">No data in this range</text>'
        ],
        0,
    )


def _axes(width: int, height: int, top: float, unit: str) -> list[str]:
    plot_h = height - PAD_T - PAD_B
    out = []
    for frac in (0.0, 0.5, 1.0):
        y = PAD_T + plot_h * (1 - frac)
        out.append(
            f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{width - PAD_R}" y2="{y:.1f}" '
            f'stroke="{AXIS}" stroke-width="{1 if frac == 0 else 0.5}" '
            f'stroke-dasharray="{"" if frac == 0 else "3 3"}"/>'
        )
        out.append(
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{escape(_num(top * frac, unit))}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], width: int, height: int) -> list[str]:
    plot_w = width - PAD_L - PAD_R
    n = len(labels)
    step = max(1, (n + 7) // 8)  # at most ~8 labels
    out = []
    for i in range(0, n, step):
        x = PAD_L + plot_w * (i + 0.5) / n
        out.append(
            f'<text x="{x:.1f}" y="{height - PAD_B + 16}" text-anchor="middle" font-size="11" '
            f'fill="{TEXT}">{escape(labels[i])}</text>'
        )
    return out


def _legend(names: Sequence[str], width: int, height: int) -> list[str]:
    out, x = [], PAD_L
    for i, name in enumerate(names):
        out.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{color(i)}"/>'
            f'<text x="{x + 14}" y="{height - 5}" font-size="11" fill="{TEXT}">'
            f"{escape(name)}</text>"
        )
        x += 24 + 7 * len(name)
    return out


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    width: int = 640,
    height: int = 240,
    unit: str = "",
) -> Markup:
    """Vertical bars per label: one bar per series side by side, or stacked."""
    values = [[v or 0.0 for v in s.values] for s in series]
    points = sum(1 for col in values for v in col if v)
    if not labels or points == 0:
        return _empty(width, height)
    totals = [sum(col[i] for col in values) for i in range(len(labels))]
    top = max(totals) if stacked else max(max(col) for col in values)
    top = top or 1.0
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / len(labels)
    groups = 1 if stacked else len(series)
    bar_w = max(1.0, min(slot * 0.8 / groups, 40.0))
    offset = (slot - bar_w * groups) / 2  # the group sits in the middle of its slot
    body = _axes(width, height, top, unit)
    for i in range(len(labels)):
        base = 0.0
        for j, col in enumerate(values):
            v = col[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            x = PAD_L + slot * i + offset + (0 if stacked else j * bar_w)
            y = PAD_T + plot_h - base - h
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{color(j)}"><title>{escape(series[j].name)} '
                f"{escape(labels[i])}: {escape(_num(v, unit))}</title></rect>"
            )
            if stacked:
                base += h
    body += _x_labels(labels, width, height) + _legend([s.name for s in series], width, height)
    return _frame("bars", width, height, body, points)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    width: int = 640,
    height: int = 240,
    unit: str = "",
    top: float | None = None,
) -> Markup:
    """One polyline per series over the labels; gaps where a value is missing."""
    known = [v for s in series for v in s.values if v is not None]
    if not labels or not known:
        return _empty(width, height)
    ceiling = top if top is not None else (max(known) or 1.0)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    body = _axes(width, height, ceiling, unit)
    for j, s in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            x = PAD_L + plot_w * (i + 0.5) / len(labels)
            y = PAD_T + plot_h * (1 - min(v, ceiling) / ceiling)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color(j)}"/>')
        for run in runs:
            if len(run) > 1:
                body.append(
                    f'<polyline class="line" fill="none" stroke="{color(j)}" stroke-width="2" '
                    f'points="{" ".join(run)}"/>'
                )
    body += _x_labels(labels, width, height) + _legend([s.name for s in series], width, height)
    return _frame("lines", width, height, body, len(known))


def hbar_chart(
    rows: Sequence[tuple[str, float, str]], *, width: int = 640, unit: str = ""
) -> Markup:
    """Horizontal bars: (label, value, note) per row, e.g. funnel stages with their rates."""
    points = sum(1 for _, v, _ in rows if v)
    row_h, label_w = 26, 190
    height = max(len(rows), 1) * row_h + 8
    if not rows or points == 0:
        return _empty(width, 120)
    top = max(v for _, v, _ in rows) or 1.0
    plot_w = width - label_w - 170
    body = []
    for i, (label, value, note) in enumerate(rows):
        y = 4 + i * row_h
        w = plot_w * value / top
        body.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" '
            f'fill="{TEXT}">{escape(_short(label, 28))}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 0):.1f}" height="18" '
            f'fill="{color(i)}"><title>{escape(label)}: {escape(_num(value, unit))}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12" fill="{TEXT}">'
            f"{escape(_num(value, unit))}{escape(' · ' + note if note else '')}</text>"
        )
    return _frame("hbars", width, height, body, points)
