"""The report's inline SVG charts (harness.report): a vlmteach run's per-step curve and the paired differences
per category. Plain SVG strings, no plotting library: the page stays one file that any browser draws."""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _points(values: Sequence[float], low: float, high: float, width: float, height: float, pad: float) -> str:
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    return " ".join(f"{pad + i * step:.1f},{pad + (height - 2 * pad) * (1 - (v - low) / span):.1f}"
                    for i, v in enumerate(values) if math.isfinite(v))


def step_curve(losses: Sequence[float], p_yes: Sequence[float | None], width: int = 240, height: int = 80) -> str:
    """Loss (own scale, blue) and mean P(Yes) (0 to 1, red) against the loop's step."""
    finite = [v for v in losses if math.isfinite(v)]
    if not finite:
        return ""
    low, high, pad = min(finite), max(finite), 6
    parts = [f'<svg class="curve" width="{width}" height="{height + 14}" viewBox="0 0 {width} {height + 14}" '
             f'role="img" aria-label="loss and P(Yes) per step">',
             f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#fafafa" stroke="#ccc"/>',
             f'<polyline class="loss" fill="none" stroke="{COLOURS[0]}" stroke-width="1.5" '
             f'points="{_points(losses, low, high, width, height, pad)}"/>']
    if any(p is not None for p in p_yes):
        shown = [math.nan if p is None else p for p in p_yes]
        parts.append(f'<polyline class="p-yes" fill="none" stroke="{COLOURS[1]}" stroke-width="1.5" '
                     f'stroke-dasharray="4 2" points="{_points(shown, 0.0, 1.0, width, height, pad)}"/>')
    last_p = next((p for p in reversed(p_yes) if p is not None), None)
    legend = (f'<tspan fill="{COLOURS[0]}">loss {finite[0]:.3g}→{finite[-1]:.3g}</tspan>'
              + (f' <tspan fill="{COLOURS[1]}">mean P(Yes) →{last_p:.2f}</tspan>' if last_p is not None else ""))
    parts.append(f'<text x="2" y="{height + 11}" font-size="10">{legend}</text></svg>')
    return "".join(parts)


def paired_differences(categories: list[str], methods: list[str], dots: dict[tuple[str, str], list[float]],
                       means: dict[tuple[str, str], tuple[float | None, float | None, float | None]],
                       unit: str = "") -> str:
    """One band per category, one line per method in it: each instance's paired difference as a dot, the mean
    as a bar from zero with its 95% CI as a whisker. ``means[(category, method)] = (mean, ci_low, ci_high)``."""
    values = [v for vs in dots.values() for v in vs] + [v for m in means.values() for v in m if v is not None]
    reach = max((abs(v) for v in values if math.isfinite(v)), default=1.0) or 1.0
    label_w, plot_w, line_h = 170, 460, 16
    band_h = line_h * max(len(methods), 1) + 8
    height = 30 + band_h * len(categories) + 22

    def x(v: float) -> float:
        return label_w + plot_w / 2 * (1 + v / reach)

    parts = [f'<svg class="summary" width="{label_w + plot_w + 20}" height="{height}" role="img" '
             f'aria-label="paired differences per category">',
             f'<line x1="{x(0):.1f}" y1="20" x2="{x(0):.1f}" y2="{height - 20}" stroke="#888"/>']
    for tick in (-reach, -reach / 2, reach / 2, reach):
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 6}" font-size="10" text-anchor="middle">'
                     f'{tick:+.3g}{escape(unit)}</text>')
    parts.append(f'<text x="{x(0):.1f}" y="{height - 6}" font-size="10" text-anchor="middle">0</text>')
    for m, method in enumerate(methods):
        parts.append(f'<text x="{label_w + 120 * m}" y="12" font-size="11" fill="{COLOURS[m % len(COLOURS)]}">'
                     f'● {escape(method)}</text>')
    for c, category in enumerate(categories):
        top = 24 + c * band_h
        parts.append(f'<rect x="{label_w}" y="{top}" width="{plot_w}" height="{band_h - 4}" '
                     f'fill="{"#f4f4f4" if c % 2 else "#fbfbfb"}"/>')
        parts.append(f'<text x="{label_w - 6}" y="{top + band_h / 2 + 2:.1f}" font-size="11" text-anchor="end">'
                     f'{escape(category)}</text>')
        for m, method in enumerate(methods):
            colour, y = COLOURS[m % len(COLOURS)], top + 6 + m * line_h + line_h / 2
            mean, low, high = means.get((category, method), (None, None, None))
            if mean is not None:
                parts.append(f'<line class="mean" x1="{x(0):.1f}" y1="{y:.1f}" x2="{x(mean):.1f}" y2="{y:.1f}" '
                             f'stroke="{colour}" stroke-width="6" opacity="0.35"><title>{escape(method)} '
                             f'{escape(category)}: mean {mean:+.3g}</title></line>')
            if low is not None and high is not None:
                parts.append(f'<line class="ci" x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" '
                             f'stroke="{colour}" stroke-width="1.5"/>')
            for i, v in enumerate(dots.get((category, method), [])):
                jitter = ((i * 7) % 5 - 2) * 1.3
                parts.append(f'<circle class="dot" cx="{x(v):.1f}" cy="{y + jitter:.1f}" r="2.2" fill="{colour}" '
                             f'opacity="0.7"/>')
    parts.append("</svg>")
    return "".join(parts)
