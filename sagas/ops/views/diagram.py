"""A saga definition as a diagram: a layout model, and Mermaid text drawn from it.

The model lists the stages (a parallel group is one stage of several boxes), each
step's command, kind and condition, and its compensation. With an instance, each box
gets a mark: done, current, failed, remaining, and for compensations ``would`` (would
run if the saga failed now), ``compensating`` or ``compensated``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sagas.definition import Await, Parallel, Saga, Step

_DONE = {"SUCCEEDED", "SKIPPED"}
_CURRENT = {"RUNNING", "RETRYING"}
_FAILED = {"FAILED", "CANCELLED"}
_COMP_CURRENT = {"COMPENSATING", "COMPENSATION_RETRYING"}


@dataclass(frozen=True)
class Box:
    """One step of the diagram."""

    name: str
    title: str
    """What it does: the command sent, or the event awaited."""
    kind: str | None
    condition: str | None
    compensation: str | None
    """The compensation's command type, when the step has one."""
    mark: str = "plain"
    comp_mark: str = "plain"


@dataclass(frozen=True)
class Stage:
    group: str | None
    """The parallel group's name, for a parallel stage."""
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class Diagram:
    saga: str
    version: int
    starts: tuple[str, ...]
    stages: tuple[Stage, ...]
    completed_event: str | None
    compensated_event: str | None
    state: str | None = None


def _condition(leaf: Step[Any] | Await[Any]) -> str | None:
    if leaf.when is None:
        return None
    name = getattr(leaf.when, "__name__", "")
    return f"when {name}" if name and name != "<lambda>" else "conditional"


def _box(leaf: Step[Any] | Await[Any], steps: dict[str, dict[str, Any]], state: str | None) -> Box:
    title = (
        f"send {leaf.command.type.SCHEMA}"
        if isinstance(leaf, Step)
        else f"await {leaf.event.type.SCHEMA}"
    )
    kind = leaf.effective_kind
    comp = leaf.compensation.command.type.SCHEMA if leaf.compensation is not None else None
    mark = comp_mark = "plain"
    if steps:
        status = str(steps.get(leaf.name, {}).get("status", "PENDING"))
        mark, comp_mark = _marks(status, comp is not None, state)
    return Box(
        leaf.name,
        title,
        kind.value.lower() if kind else None,
        _condition(leaf),
        comp,
        mark,
        comp_mark,
    )


def _marks(status: str, has_comp: bool, state: str | None) -> tuple[str, str]:
    if status in _DONE:
        mark = "done"
    elif status in _CURRENT:
        mark = "current"
    elif status in _FAILED or status == "COMPENSATION_FAILED":
        mark = "failed"
    elif status in _COMP_CURRENT or status == "COMPENSATED":
        mark = "done"
    else:
        mark = "remaining"
    comp = "plain"
    if has_comp:
        if status == "COMPENSATED":
            comp = "compensated"
        elif status in _COMP_CURRENT:
            comp = "compensating"
        elif status == "COMPENSATION_FAILED":
            comp = "failed"
        elif status == "SUCCEEDED" and state in ("RUNNING", "PAUSED", "COMPENSATING"):
            comp = "would"
    return mark, comp


def diagram(definition: Saga[Any], instance: dict[str, Any] | None = None) -> Diagram:
    """The layout model of ``definition``, marked with ``instance``'s progress if given."""
    steps = {str(s.get("name")): s for s in (instance or {}).get("steps") or []}
    state = (instance or {}).get("state")
    stages = []
    for item in definition.steps:
        if isinstance(item, Parallel):
            boxes = tuple(_box(b, steps, state) for b in item.branches)
            stages.append(Stage(item.name, boxes))
        else:
            stages.append(Stage(None, (_box(item, steps, state),)))
    return Diagram(
        saga=definition.name,
        version=definition.version,
        starts=tuple(s.event.SCHEMA for s in definition.starts),
        stages=tuple(stages),
        completed_event=definition.on_completed.type.SCHEMA if definition.on_completed else None,
        compensated_event=(
            definition.on_compensated.type.SCHEMA if definition.on_compensated else None
        ),
        state=state,
    )


def _id(name: str) -> str:
    return "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(*lines: str | None) -> str:
    text = "<br/>".join(line for line in lines if line)
    return '"' + text.replace('"', "#quot;") + '"'


def mermaid(d: Diagram) -> str:
    """Mermaid ``flowchart`` text of the diagram (marks become classes)."""
    out = ["flowchart TD", f"    start(({_label('start', ' | '.join(d.starts))}))"]
    previous = ["start"]
    for stage in d.stages:
        ids = [_id(b.name) for b in stage.boxes]
        if stage.group:
            out.append(f"    subgraph {_id(stage.group)}[{_label('parallel: ' + stage.group)}]")
        for box, node in zip(stage.boxes, ids, strict=True):
            extra = ", ".join(x for x in (box.kind, box.condition) if x)
            out.append(f"    {node}[{_label(box.name, box.title, extra)}]:::{box.mark}")
        if stage.group:
            out.append("    end")
        for box, node in zip(stage.boxes, ids, strict=True):
            if box.compensation:
                comp = f"{node}_undo"
                label = _label("undo " + box.name, box.compensation)
                out.append(f"    {comp}[{label}]:::c_{box.comp_mark}")
                out.append(f"    {node} -. compensate .-> {comp}")
        out.extend(f"    {p} --> {n}" for p in previous for n in ids)
        previous = ids
    done = _label("completed", d.completed_event)
    out.append(f"    done(({done}))")
    out.extend(f"    {p} --> done" for p in previous)
    if any(b.compensation for s in d.stages for b in s.boxes):
        out.append(f"    undone(({_label('compensated', d.compensated_event)}))")
    out.extend(
        [
            "    classDef plain fill:#f4f4f4,stroke:#888",
            "    classDef done fill:#d4f4d4,stroke:#2a7a2a",
            "    classDef current fill:#fff2c0,stroke:#b08000,stroke-width:3px",
            "    classDef failed fill:#f8d0d0,stroke:#a02020",
            "    classDef remaining fill:#ffffff,stroke:#888,stroke-dasharray:4",
            "    classDef c_plain fill:#f4f4ff,stroke:#88a",
            "    classDef c_would fill:#e8e0ff,stroke:#6040c0,stroke-dasharray:4",
            "    classDef c_compensating fill:#fff2c0,stroke:#b08000,stroke-width:3px",
            "    classDef c_compensated fill:#d0e0ff,stroke:#2040a0",
            "    classDef c_failed fill:#f8d0d0,stroke:#a02020",
        ]
    )
    return "\n".join(out) + "\n"
