"""The overview's chart: attempts per minute by outcome, as inline SVG (no JavaScript)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from markupsafe import Markup, escape

from ..vocabulary import AttemptOutcome

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 40, 22, 8
COLOURS = {AttemptOutcome.SUCCEEDED: "#2f9e44", AttemptOutcome.FAILED: "#e03131"}


def per_minute(
    rows: list[tuple[datetime, str, int]], now: datetime, minutes: int
) -> list[tuple[datetime, dict[str, int]]]:
    """Every minute of the window, oldest first, with its count per outcome (0 if none)."""
    end = now.replace(second=0, microsecond=0)
    counts: dict[datetime, dict[str, int]] = defaultdict(lambda: {o: 0 for o in COLOURS})
    for minute, outcome, n in rows:
        if outcome in COLOURS:
            counts[minute][outcome] += n
    return [(m, dict(counts[m]))
            for m in (end - timedelta(minutes=i) for i in range(minutes - 1, -1, -1))]


def attempts_chart(rows: list[tuple[datetime, str, int]], now: datetime,
                   minutes: int = 60) -> Markup:
    series = per_minute(rows, now, minutes)
    peak = max([sum(c.values()) for _, c in series] + [1])
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    bar_w = plot_w / len(series)
    totals = {o: sum(c[o] for _, c in series) for o in COLOURS}
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="attempts per minute, last {minutes} minutes" '
        + " ".join(f'data-{o}="{totals[o]}"' for o in COLOURS) + ">",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 4}" y2="{TOP + plot_h}" '
        'stroke="#adb5bd"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (minute, counts) in enumerate(series):
        x = LEFT + i * bar_w
        y: float = TOP + plot_h
        label = f"{minute:%H:%M}: " + ", ".join(f"{counts[o]} {o}" for o in COLOURS)
        parts.append(f"<g><title>{escape(label)}</title>")
        for outcome, colour in COLOURS.items():
            h = plot_h * counts[outcome] / peak
            if h:
                y -= h
                parts.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                             f'height="{h:.1f}" fill="{colour}"/>')
        parts.append("</g>")
        last = i == len(series) - 1
        if i % 10 == 0 or last:
            anchor, at = ("end", x + bar_w) if last else ("start", x)
            parts.append(f'<text x="{at:.1f}" y="{HEIGHT - 6}" '
                         f'text-anchor="{anchor}">{minute:%H:%M}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
