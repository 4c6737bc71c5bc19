"""SVG drawn by hand: the definition diagram, an instance's Gantt timeline, line charts.

Every text that comes from a definition or a message is escaped. The SVGs use classes
(``mark-done``, ...) styled by the dashboard's stylesheet, plus inline fallbacks in
attributes so a file written by ``sagas diagram --svg`` looks right on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from sagas.ops.readmodel.stats import parse_time
from sagas.ops.views.diagram import Diagram

FILL = {
    "plain": ("#f4f4f4", "#888888"),
    "done": ("#d4f4d4", "#2a7a2a"),
    "current": ("#fff2c0", "#b08000"),
    "failed": ("#f8d0d0", "#a02020"),
    "remaining": ("#ffffff", "#888888"),
    "would": ("#e8e0ff", "#6040c0"),
    "compensating": ("#fff2c0", "#b08000"),
    "compensated": ("#d0e0ff", "#2040a0"),
}
BOX_W, BOX_H, COMP_H, GAP_X, GAP_Y, MARGIN = 230, 58, 26, 30, 44, 20


def _t(text: str | None, limit: int = 34) -> str:
    value = text or ""
    return escape(value if len(value) <= limit else value[: limit - 1] + "…")


def _rect(x: float, y: float, w: float, h: float, mark: str, dashed: bool = False) -> str:
    fill, stroke = FILL.get(mark, FILL["plain"])
    dash = ' stroke-dasharray="5 3"' if dashed or mark in ("remaining", "would") else ""
    width = 3 if mark in ("current", "compensating") else 1.5
    return (
        f'<rect class="mark-{escape(mark)}" x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" '
        f'height="{h:.0f}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
    )


def _text(x: float, y: float, text: str, size: int = 12, weight: str = "normal") -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" '
        f'text-anchor="middle" font-family="sans-serif">{text}</text>'
    )


def _arrow(x1: float, y1: float, x2: float, y2: float, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#555" '
        f'stroke-width="1.4" marker-end="url(#arrow)"{dash}/>'
    )


def diagram_svg(d: Diagram) -> str:
    """The saga as boxes top to bottom; parallel branches side by side, undo under each."""
    widest = max((len(s.boxes) for s in d.stages), default=1)
    inner = widest * BOX_W + (widest - 1) * GAP_X
    width = inner + 2 * MARGIN + 40
    center = MARGIN + 20 + inner / 2
    parts: list[str] = []
    y = MARGIN
    parts.append(_rect(center - 130, y, 260, 40, "plain"))
    parts.append(_text(center, y + 17, "start", 12, "bold"))
    parts.append(_text(center, y + 32, _t(" | ".join(d.starts), 40), 11))
    prev_bottoms = [(center, y + 40)]
    y += 40 + GAP_Y
    for stage in d.stages:
        has_comp = any(b.compensation for b in stage.boxes)
        slot_h = BOX_H + (COMP_H + 6 if has_comp else 0)
        span = len(stage.boxes) * BOX_W + (len(stage.boxes) - 1) * GAP_X
        left = center - span / 2
        if stage.group:
            parts.append(_rect(left - 10, y - 22, span + 20, slot_h + 32, "plain", dashed=True))
            parts.append(_text(left + 60, y - 8, "parallel: " + _t(stage.group, 24), 11, "bold"))
        tops = []
        for i, box in enumerate(stage.boxes):
            x = left + i * (BOX_W + GAP_X)
            tops.append((x + BOX_W / 2, y))
            parts.append(_rect(x, y, BOX_W, BOX_H, box.mark))
            parts.append(_text(x + BOX_W / 2, y + 18, _t(box.name), 13, "bold"))
            parts.append(_text(x + BOX_W / 2, y + 34, _t(box.title, 36), 11))
            extra = ", ".join(v for v in (box.kind, box.condition) if v)
            parts.append(_text(x + BOX_W / 2, y + 50, _t(extra, 36), 10))
            if box.compensation:
                cy = y + BOX_H + 6
                parts.append(_rect(x + 10, cy, BOX_W - 20, COMP_H, box.comp_mark, dashed=True))
                parts.append(_text(x + BOX_W / 2, cy + 17, "undo: " + _t(box.compensation), 11))
        parts.extend(_arrow(px, py, tx, ty - 2) for px, py in prev_bottoms for tx, ty in tops)
        prev_bottoms = [(tx, y + slot_h) for tx, _ in tops]
        y += slot_h + GAP_Y
    parts.append(_rect(center - 130, y, 260, 40, "done" if d.state == "COMPLETED" else "plain"))
    parts.append(_text(center, y + 17, "completed", 12, "bold"))
    parts.append(_text(center, y + 32, _t(d.completed_event or "", 40), 11))
    parts.extend(_arrow(px, py, center, y - 2) for px, py in prev_bottoms)
    height = y + 40 + MARGIN
    return _svg(width, height, "".join(parts), f"saga {d.saga} v{d.version}")


def _svg(width: float, height: float, body: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img"><title>{escape(title)}</title>'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        f'fill="#555"/></marker></defs>{body}</svg>'
    )


BAR = {
    "SUCCEEDED": "done",
    "SKIPPED": "remaining",
    "RUNNING": "current",
    "RETRYING": "current",
    "FAILED": "failed",
    "CANCELLED": "failed",
    "COMPENSATED": "done",
    "COMPENSATING": "done",
    "COMPENSATION_RETRYING": "done",
    "COMPENSATION_FAILED": "done",
}


def gantt_svg(view: dict[str, Any], now: datetime | None = None) -> str:
    """An instance's steps (and compensations, below each) on one time axis."""
    start = parse_time(view.get("created"))
    if start is None:
        return _svg(300, 30, _text(150, 20, "no timeline"), "timeline")
    end = parse_time(view.get("ended")) or now or datetime.now(UTC)
    total = max((end - start).total_seconds(), 0.001)
    label_w, plot_w, row_h = 180, 620, 30
    steps = view.get("steps") or []
    height = 40 + row_h * len(steps) + 20
    parts = [
        _text(
            label_w + plot_w / 2,
            16,
            f"{total:.2f} s from start to {'end' if view.get('ended') else 'now'}",
            11,
        )
    ]

    def x_of(text: str | None) -> float | None:
        moment = parse_time(text)
        if moment is None:
            return None
        return label_w + plot_w * min(max((moment - start).total_seconds() / total, 0), 1)

    for i, step in enumerate(steps):
        y = 28 + i * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end" '
            f'font-family="sans-serif">{_t(step.get("name"), 24)}</text>'
        )
        x0, x1 = x_of(step.get("started")), x_of(step.get("ended"))
        if x0 is not None:
            mark = BAR.get(str(step.get("status")), "plain")
            parts.append(_rect(x0, y + 2, max((x1 or label_w + plot_w) - x0, 3), 11, mark))
        c0, c1 = x_of(step.get("compensation_started")), x_of(step.get("compensation_ended"))
        if c0 is not None:
            comp_mark = "compensated" if c1 is not None else "compensating"
            parts.append(_rect(c0, y + 15, max((c1 or label_w + plot_w) - c0, 3), 9, comp_mark))
    axis_y = 28 + row_h * len(steps)
    parts.append(
        f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" stroke="#999"/>'
    )
    return _svg(label_w + plot_w + 20, height, "".join(parts), "timeline")


COLORS = ("#2060c0", "#c04020", "#208040", "#8040a0")


def line_chart(
    title: str, series: dict[str, list[float | None]], unit: str = "", width: int = 420
) -> str:
    """A small line chart of equally spaced values (None: no data in that bucket)."""
    height, left, top, bottom = 170, 46, 24, 26
    values = [v for vs in series.values() for v in vs if v is not None]
    peak = max(values, default=0.0) or 1.0
    count = max((len(v) for v in series.values()), default=1)
    plot_w, plot_h = width - left - 10, height - top - bottom
    parts = [
        f'<text x="8" y="15" font-size="12" font-weight="bold" font-family="sans-serif">'
        f"{escape(title)}</text>",
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end" '
        f'font-family="sans-serif">{peak:.3g}{escape(unit)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#999"/>',
    ]
    for n, (name, vs) in enumerate(series.items()):
        color = COLORS[n % len(COLORS)]
        points = [
            f"{left + plot_w * i / max(count - 1, 1):.1f},{top + plot_h * (1 - v / peak):.1f}"
            for i, v in enumerate(vs)
            if v is not None
        ]
        if points:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.8" '
                f'points="{" ".join(points)}"/>'
            )
        for point in points:  # a lone value (one busy bucket) shows as a dot
            x, y = point.split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>')
        parts.append(
            f'<text x="{left + 8 + n * 90}" y="{height - 6}" font-size="10" fill="{color}" '
            f'font-family="sans-serif">{escape(name)}</text>'
        )
    return _svg(width, height, "".join(parts), title)
