"""Pictures drawn on the server: the monthly flows chart (hand-made SVG, presentation
attributes only, so the Content-Security-Policy needs no inline style) and the QR code of a
poster (segno). Both are inline SVG: the page loads nothing for them."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from html import escape

import segno

from api.pages.data import MonthRow

WIDTH = 640
HEIGHT = 260
LEFT = 68
RIGHT = 12
TOP = 28
BOTTOM = 40
IN_COLOUR = "#1f6f43"  # money in
OUT_COLOUR = "#b3541e"  # money out
GRID_COLOUR = "#c8c8c8"
TEXT_COLOUR = "#222222"


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (at least 1)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def flows_svg(
    months: Sequence[MonthRow],
    *,
    title: str,
    labels: tuple[str, str],
    month_label: Callable[[str], str],
    axis_money: Callable[[int], str],
    chart_id: str = "chart",
) -> str:
    """Two bars a month (in, out) with a y axis in whole currency units."""
    top_minor = _nice_ceiling(
        max([m.received_minor for m in months] + [m.out_minor for m in months])
    )
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'class="chart" role="img" aria-labelledby="{chart_id}-title">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
    ]
    for i in range(5):
        value = top_minor * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="{TEXT_COLOUR}">{escape(axis_money(value))}</text>'
        )
    for i, m in enumerate(months):
        x0 = LEFT + slot * i + slot * 0.14
        for j, (value, colour) in enumerate(
            ((m.received_minor, IN_COLOUR), (m.out_minor, OUT_COLOUR))
        ):
            h = plot_h * value / top_minor
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{LEFT + slot * i + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle" font-size="12" fill="{TEXT_COLOUR}">'
            f"{escape(month_label(m.month))}</text>"
        )
    for k, (label, colour) in enumerate(zip(labels, (IN_COLOUR, OUT_COLOUR), strict=True)):
        x = LEFT + k * 140
        parts.append(f'<rect x="{x}" y="8" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 18}" y="18" font-size="12" fill="{TEXT_COLOUR}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def qr_svg(url: str, *, title: str) -> str:
    """The QR code of ``url`` as inline SVG (no XML declaration, scalable)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", scale=4, border=2, xmldecl=False, svgns=True, title=title, svgclass="qr",
        lineclass=None, omitsize=True,
    )  # fmt: skip
    return out.getvalue().decode("utf-8")
