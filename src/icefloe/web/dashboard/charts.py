"""Small charts as inline SVG, drawn on the server: no chart library, no script, nothing to
vendor. A bar per bucket, scaled to the largest, each with a <title> the browser shows on hover."""

from __future__ import annotations

import time
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["bars", "timeline"]


def bars(values: Sequence[int], *, start: float, bucket: float, label: str, width: int = 240, height: int = 40,
         colour: str = "#2f6db5") -> Markup:  # fmt: skip
    """`values[i]` counted from `start + i * bucket`; the chart says its total and its peak."""
    peak = max(values, default=0)
    step = width / max(len(values), 1)
    parts = [
        (f'<svg class="chart" role="img" width="{width}" height="{height + 12}" viewBox="0 0 {width} {height + 12}"'
         f' xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}: {sum(values)} in all, peak {peak}</title>'),
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#bbb" stroke-width="1"/>',
    ]
    for i, value in enumerate(values):
        if not value:
            continue
        h = max(value / peak * height, 1.0)
        at = time.strftime("%H:%M", time.gmtime(start + i * bucket))
        parts.append(
            f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" height="{h:.1f}"'
            f' fill="{colour}"><title>{at} UTC: {value}</title></rect>'
        )
    parts.append(f'<text x="0" y="{height + 11}" font-size="9" fill="#666">{time.strftime("%H:%M", time.gmtime(start))}</text>')
    parts.append(f'<text x="{width}" y="{height + 11}" font-size="9" fill="#666" text-anchor="end">now, peak {peak}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(steps: Sequence[tuple[str, float, float]], *, width: int = 520, row: int = 18) -> Markup:
    """One row per step: (name, start ms, duration ms) from the event's landing, to scale."""
    end = max((at + took for _, at, took in steps), default=0.0) or 1.0
    label = 110
    span = width - label - 70
    height = row * len(steps) + 4
    parts = [(f'<svg class="timeline" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
              f' xmlns="http://www.w3.org/2000/svg"><title>the event\'s steps, to scale</title>')]  # fmt: skip
    for i, (name, at, took) in enumerate(steps):
        y = i * row + 2
        x = label + at / end * span
        w = max(took / end * span, 1.5)
        parts.append(f'<text x="0" y="{y + row - 6}" font-size="11" fill="#333">{escape(name)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="#2f6db5">'
                     f"<title>{escape(name)}: at {at:.1f} ms, took {took:.1f} ms</title></rect>")  # fmt: skip
        parts.append(f'<text x="{x + w + 4:.1f}" y="{y + row - 6}" font-size="10" fill="#666">{took:.1f} ms</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
