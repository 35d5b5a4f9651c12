"""Small inline SVG charts (line, bar, histogram) so reports render offline with no script or CDN."""
from __future__ import annotations

import math
from datetime import date
from html import escape

PALETTE = ("#2f6fb0", "#d9822b", "#3a9a5b", "#b8403a", "#7d5ba6", "#8c6d3f", "#c95d9c", "#5f6b73")
WIDTH, HEIGHT = 640, 260
MARGIN = {"left": 56, "right": 16, "top": 44, "bottom": 40}


def empty(message: str) -> str:
    """Return the placeholder shown instead of a chart without data."""
    return f'<p class="empty">{escape(message)}</p>'


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 2.5, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    start = math.floor(low / step) * step
    ticks, value = [start], start
    while value < high - step * 1e-9:  # the last tick is at or above the highest value
        value += step
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _x_value(x) -> float:
    return float(x.toordinal()) if isinstance(x, date) else float(x)


def _x_label(x: float, dates: bool) -> str:
    return date.fromordinal(int(round(x))).strftime("%m-%d") if dates else _fmt(x)


class _Frame:
    """Scales and axes of one chart."""

    def __init__(self, xs: list[float], ys: list[float], y_floor: float | None = 0.0, y_max: float | None = None):
        lo, hi = min(ys), max(ys)
        if y_floor is not None:
            lo = min(lo, y_floor)
        if y_max is not None:
            hi = max(hi, y_max)
        self.y_ticks = _nice_ticks(lo, hi)
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]
        self.x0, self.x1 = min(xs), max(xs)
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.w = WIDTH - MARGIN["left"] - MARGIN["right"]
        self.h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.w

    def py(self, y: float) -> float:
        return self.top + self.h - (y - self.y0) / ((self.y1 - self.y0) or 1.0) * self.h

    def axes(self, x_ticks: list[tuple[float, str]], x_label: str, y_label: str) -> list[str]:
        out = []
        for t in self.y_ticks:
            y = self.py(t)
            out.append(f'<line x1="{self.left}" x2="{self.left + self.w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        base = self.top + self.h
        for x, label in x_ticks:
            out.append(f'<text x="{self.px(x):.1f}" y="{base + 16}" text-anchor="middle">{escape(label)}</text>')
        out.append(f'<line x1="{self.left}" x2="{self.left + self.w}" y1="{base}" y2="{base}" class="axis"/>')
        if x_label:
            out.append(f'<text x="{self.left + self.w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle" '
                       f'class="label">{escape(x_label)}</text>')
        if y_label:
            out.append(f'<text x="12" y="{self.top + self.h / 2:.0f}" text-anchor="middle" class="label" '
                       f'transform="rotate(-90 12 {self.top + self.h / 2:.0f})">{escape(y_label)}</text>')
        return out


def _svg(title: str, body: list[str], legend: list[tuple[str, str]] = ()) -> str:
    parts = [f'<figure class="chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<text x="{MARGIN["left"]}" y="18" class="title">{escape(title)}</text>', *body]
    x, y = MARGIN["left"], 34  # legend on its own line under the title; names past the width are left out
    for name, color in legend:
        step = 22 + 6.2 * len(name)
        if x + step > WIDTH - MARGIN["right"]:
            break
        parts.append(f'<rect x="{x}" y="{y - 9}" width="9" height="9" fill="{color}"/>'
                     f'<text x="{x + 12}" y="{y}" class="legend">{escape(name)}</text>')
        x += step
    parts.append("</svg></figure>")
    return "".join(parts)


def line_chart(series: dict[str, list[tuple]], title: str, y_label: str = "", x_label: str = "",
               y_floor: float | None = 0.0, y_max: float | None = None, diagonal: bool = False) -> str:
    """Return a line chart of named series of (x, y) points; x may be dates."""
    series = {k: [(x, y) for x, y in v if y is not None and math.isfinite(float(y))] for k, v in series.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return empty(f"{title}: no data yet")
    dates = all(isinstance(x, date) for pts in series.values() for x, _ in pts)
    xs = [_x_value(x) for pts in series.values() for x, _ in pts]
    ys = [float(y) for pts in series.values() for _, y in pts]
    frame = _Frame(xs, ys, y_floor, y_max)
    if dates:
        days = sorted(set(xs))
        every = max(1, math.ceil(len(days) / 8))
        x_ticks = [(d, _x_label(d, True)) for d in days[::every]]
    else:
        x_ticks = [(t, _fmt(t)) for t in _nice_ticks(frame.x0, frame.x1) if frame.x0 <= t <= frame.x1]
    body = frame.axes(x_ticks, x_label, y_label)
    if diagonal:
        body.append(f'<line x1="{frame.px(frame.x0):.1f}" y1="{frame.py(frame.y0):.1f}" x2="{frame.px(frame.x1):.1f}" '
                    f'y2="{frame.py(min(frame.y1, frame.x1)):.1f}" class="reference"/>')
    legend = []
    for i, (name, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        legend.append((name, color))
        coords = " ".join(f"{frame.px(_x_value(x)):.1f},{frame.py(float(y)):.1f}" for x, y in sorted(pts, key=lambda p: _x_value(p[0])))
        body.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        if len(pts) <= 40:
            for x, y in pts:
                body.append(f'<circle cx="{frame.px(_x_value(x)):.1f}" cy="{frame.py(float(y)):.1f}" r="2.5" '
                            f'fill="{color}"><title>{escape(name)} {_x_label(_x_value(x), dates)}: {_fmt(float(y))}'
                            f"</title></circle>")
    return _svg(title, body, legend if len(series) > 1 else [])


def bar_chart(bars: list[tuple[str, float]], title: str, x_label: str = "", color: str = PALETTE[0]) -> str:
    """Return a horizontal bar chart of (label, value) pairs, largest first as given."""
    bars = [(str(label), float(value)) for label, value in bars if value is not None][:20]
    if not bars:
        return empty(f"{title}: nothing to show")
    row, top, left = 20, MARGIN["top"], 190
    height = top + row * len(bars) + 30
    peak = max(v for _, v in bars) or 1.0
    width = WIDTH - left - 70
    body = []
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = max(1.0, value / peak * width) if value > 0 else 0
        body.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(label[:32])}</text>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{color}">'
                    f"<title>{escape(label)}: {_fmt(value)}</title></rect>")
        body.append(f'<text x="{left + w + 5:.1f}" y="{y + 14}">{_fmt(value)}</text>')
    if x_label:
        body.append(f'<text x="{left + width / 2:.0f}" y="{height - 6}" text-anchor="middle" class="label">'
                    f"{escape(x_label)}</text>")
    svg = _svg(title, body)
    return svg.replace(f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"',
                       f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"', 1)


def histogram(groups: dict[str, list[float]], title: str, x_label: str = "", bins: int = 24) -> str:
    """Return overlaid histograms (share of values per bin) of named groups of numbers."""
    groups = {k: [float(v) for v in vs if v is not None and math.isfinite(float(v))] for k, vs in groups.items()}
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return empty(f"{title}: no data yet")
    lo = min(min(v) for v in groups.values())
    hi = max(max(v) for v in groups.values())
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    shares = {}
    for name, values in groups.items():
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int((v - lo) / width))] += 1
        shares[name] = [c / len(values) for c in counts]
    frame = _Frame([lo, hi], [s for v in shares.values() for s in v])
    x_ticks = [(t, _fmt(t)) for t in _nice_ticks(lo, hi) if lo <= t <= hi]
    body = frame.axes(x_ticks, x_label, "share of scores")
    legend = []
    for i, (name, values) in enumerate(shares.items()):
        color = PALETTE[i % len(PALETTE)]
        legend.append((f"{name} ({len(groups[name])})", color))
        for b, share in enumerate(values):
            if share <= 0:
                continue
            x, y = frame.px(lo + b * width), frame.py(share)
            bar_w = frame.px(lo + (b + 1) * width) - x - 1
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w, 1):.1f}" height="{frame.py(0) - y:.1f}" '
                        f'fill="{color}" fill-opacity="0.55"><title>{escape(name)} '
                        f"{_fmt(lo + b * width)}–{_fmt(lo + (b + 1) * width)}: {share:.1%}</title></rect>")
    return _svg(title, body, legend)
