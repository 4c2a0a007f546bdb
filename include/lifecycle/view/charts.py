"""Small charts drawn on the server as inline SVG (no script, no library, no network)."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, PAD = 520, 140, 24


def bars(points: list[tuple[str, int]], *, title: str, color: str = "#2b6cb0") -> str:
    """A bar chart of ``(label, value)``: each bar's label and value in its tooltip."""
    if not points:
        return f'<p class="muted">{escape(title)}: nothing recorded yet</p>'
    top = max(v for _, v in points) or 1
    step = (WIDTH - 2 * PAD) / len(points)
    width = min(max(step * 0.8, 1.0), 28.0)
    parts = [
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>',
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<text x="{PAD}" y="12" font-size="11" fill="#555">max {top:,}</text>',
    ]
    for i, (label, value) in enumerate(points):
        h = (HEIGHT - 2 * PAD) * value / top
        x = PAD + i * step
        y = HEIGHT - PAD - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(label)}: {value:,}</title></rect>"
        )
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="11" fill="#555">{escape(points[0][0])}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" font-size="11" fill="#555" text-anchor="end">'
        f"{escape(points[-1][0])}</text>"
    )
    parts.append("</svg></figure>")
    return "".join(parts)
