"""Reassemble traces from JSON-lines span files (tests, docs, a quick look without Jaeger)."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagas.telemetry.files import read_lines

SpanLine = dict[str, Any]


def load_spans(paths: Iterable[Path]) -> list[SpanLine]:
    """Every span of the files, once per span id (a saga span exported twice after a
    crash, with the same ids, counts once)."""
    seen: dict[str, SpanLine] = {}
    for line in read_lines(sorted(paths)):
        if line.get("signal") == "span":
            seen.setdefault(f"{line['trace_id']}/{line['span_id']}", line)
    return list(seen.values())


@dataclass(frozen=True)
class Trace:
    """The spans of one trace id."""

    trace_id: str
    spans: tuple[SpanLine, ...]

    @property
    def roots(self) -> list[SpanLine]:
        return [s for s in self.spans if s["parent_id"] is None]

    @property
    def orphans(self) -> list[SpanLine]:
        """Spans whose parent is not in the trace."""
        ids = {s["span_id"] for s in self.spans}
        return [s for s in self.spans if s["parent_id"] is not None and s["parent_id"] not in ids]

    @property
    def services(self) -> set[str]:
        return {str(s["service"]) for s in self.spans}

    def children(self) -> dict[str | None, list[SpanLine]]:
        found: dict[str | None, list[SpanLine]] = defaultdict(list)
        for span in sorted(self.spans, key=lambda s: (s["start_ns"], s["name"])):
            found[span["parent_id"]].append(span)
        return found

    def find(self, name_prefix: str) -> list[SpanLine]:
        return [s for s in self.spans if str(s["name"]).startswith(name_prefix)]


def group(spans: Sequence[SpanLine]) -> dict[str, Trace]:
    by_trace: dict[str, list[SpanLine]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    return {t: Trace(t, tuple(s)) for t, s in by_trace.items()}


def saga_traces(spans: Sequence[SpanLine]) -> dict[str, Trace]:
    """Traces by the ``saga.id`` of the saga span they hold."""
    found: dict[str, Trace] = {}
    for trace in group(spans).values():
        for span in trace.find("saga "):
            found[str(span["attributes"]["saga.id"])] = trace
    return found


def render_text(trace: Trace) -> str:
    """The tree, one span a line: offset from the trace start, duration, service, name."""
    children = trace.children()
    start = min(s["start_ns"] for s in trace.spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            offset = (span["start_ns"] - start) / 1e6
            took = (span["end_ns"] - span["start_ns"]) / 1e6
            mark = " ERROR" if span["status"] == "ERROR" else ""
            lines.append(
                f"{offset:9.1f} ms {took:8.1f} ms  {'  ' * depth}{span['name']}"
                f"  [{span['service']}]{mark}"
            )
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def render_html(trace: Trace, title: str) -> str:
    """A small Gantt view of the tree (a self-contained page, e.g. for a screenshot)."""
    children = trace.children()
    start = min(s["start_ns"] for s in trace.spans)
    total = max(max(s["end_ns"] for s in trace.spans) - start, 1)
    colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948"]
    palette: dict[str, str] = {}
    rows: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            colour = palette.setdefault(span["service"], colours[len(palette) % len(colours)])
            left = (span["start_ns"] - start) / total * 100
            width = max((span["end_ns"] - span["start_ns"]) / total * 100, 0.3)
            error = " error" if span["status"] == "ERROR" else ""
            took = (span["end_ns"] - span["start_ns"]) / 1e6
            rows.append(
                f'<div class="row{error}"><div class="name" style="padding-left:{depth * 14}px">'
                f"{html.escape(str(span['name']))} <small>{html.escape(str(span['service']))}"
                f'</small></div><div class="lane"><div class="bar" style="left:{left:.2f}%;'
                f'width:{width:.2f}%;background:{colour}"></div><span class="ms" '
                f'style="left:{min(left + width, 92):.2f}%">{took:.1f} ms</span></div></div>'
            )
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return (
        "<!doctype html><meta charset=utf-8><title>trace</title><style>"
        "body{font:13px system-ui,sans-serif;margin:16px;color:#222}"
        ".row{display:flex;border-bottom:1px solid #eee;height:22px;align-items:center}"
        ".name{width:430px;white-space:nowrap;overflow:hidden}.name small{color:#888}"
        ".lane{position:relative;flex:1;height:100%}.bar{position:absolute;top:5px;height:12px;"
        "border-radius:2px}.ms{position:absolute;top:3px;font-size:11px;color:#555;"
        "padding-left:4px}.error .name{color:#c00}</style>"
        f"<h3>{html.escape(title)}</h3><p>trace {trace.trace_id}, {len(trace.spans)} spans, "
        f"{total / 1e6:.0f} ms</p>" + "".join(rows)
    )
