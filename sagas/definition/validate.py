"""Validation of a saga definition, run when it is built.

Every problem found is collected; `validate` raises one `DefinitionError` listing them
all, each naming the saga, the step (when there is one) and the problem. The step list
is linear and a parallel group holds plain steps only, so a definition cannot express a
cycle; a step listed twice is reported as such.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sagas.contracts.record import Record
from sagas.definition.policy import StepKind
from sagas.definition.steps import (
    Await,
    Command,
    Compensation,
    Emit,
    On,
    Parallel,
    Step,
    template_fields,
)
from sagas.errors import DefinitionError

if TYPE_CHECKING:
    from sagas.definition.saga import Saga

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RANK = {StepKind.COMPENSATABLE: 0, StepKind.PIVOT: 1, StepKind.RETRIABLE: 2}
_SOME_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""The decision time end events are built with at definition time (``example``)."""

Problems = list[tuple[str | None, str]]


def validate(saga: Saga[Any]) -> None:
    """Raise `DefinitionError` naming every problem of ``saga``; return when valid."""
    problems: Problems = []
    _check_saga(saga, problems)
    _check_starts(saga, problems)
    if _check_structure(saga, problems):
        for leaf in saga.leaves:
            problems.extend((leaf.name, p) for p in _leaf_problems(leaf))
        _check_kinds(saga, problems)
        _check_incoming(saga, problems)
        if saga.example is not None and not problems:
            _check_example(saga, saga.example, problems)
    if problems:
        lines = [
            f"saga {saga.name!r}" + (f", step {s!r}" if s else "") + f": {p}" for s, p in problems
        ]
        raise DefinitionError("invalid saga definition:\n  " + "\n  ".join(lines))


def is_record_type(value: object) -> bool:
    """Whether ``value`` is a message class: a dataclass `Record` subclass with a SCHEMA."""
    return (
        isinstance(value, type)
        and issubclass(value, Record)
        and dataclasses.is_dataclass(value)
        and isinstance(getattr(value, "SCHEMA", None), str)
    )


def _type_problem(value: object, what: str) -> list[str]:
    if is_record_type(value):
        return []
    return [f"{what} {value!r} is not a message type (a Record subclass with a SCHEMA)"]


def _field_problems(record_type: type[Record], names: tuple[str, ...], what: str) -> list[str]:
    if not is_record_type(record_type):
        return []
    known = {f.name for f in dataclasses.fields(record_type)}
    return [
        f"{what} reads field {n!r}, which {record_type.SCHEMA} does not have"
        for n in names
        if n not in known
    ]


def _arity_problem(fn: object, n: int, what: str) -> list[str]:
    if not callable(fn):
        return [f"{what} is not callable"]
    try:
        inspect.signature(fn).bind(*([None] * n))
    except TypeError:
        return [f"{what} must accept {n} positional argument(s)"]
    except ValueError:  # no signature available (some builtins): cannot tell
        return []
    return []


def _timeout_problem(timeout: timedelta | None) -> list[str]:
    if timeout is not None and timeout <= timedelta(0):
        return [f"timeout must be positive, got {timeout}"]
    return []


def _check_saga(saga: Saga[Any], problems: Problems) -> None:
    if not _NAME.match(saga.name):
        problems.append((None, "name must be lowercase letters, digits and '_'"))
    if not isinstance(saga.version, int) or saga.version < 1:
        problems.append((None, f"version must be a positive int, got {saga.version!r}"))
    if not (isinstance(saga.data, type) and dataclasses.is_dataclass(saga.data)):
        problems.append((None, f"data {saga.data!r} must be a dataclass"))
    if saga.deadline is not None and saga.deadline <= timedelta(0):
        problems.append((None, "deadline must be positive"))
    if saga.example is not None and not isinstance(saga.example, saga.data):
        problems.append((None, f"example is not a {saga.data.__name__}"))
    for label, emit in (
        ("on_completed", saga.on_completed),
        ("on_compensated", saga.on_compensated),
    ):
        if emit is not None:
            problems.extend((None, f"{label}: {p}") for p in _emit_problems(emit))


def _emit_problems(emit: Emit[Any, Any]) -> list[str]:
    found = _type_problem(emit.type, "event")
    if not callable(emit.build):
        found.append("build is not callable")
    elif _arity_problem(emit.build, 1, "build") and _arity_problem(emit.build, 2, "build"):
        found.append("build must accept 1 or 2 positional argument(s): (data) or (data, now)")
    if emit.key is not None:
        found += _arity_problem(emit.key, 1, "key")
    if not emit.topic:
        found.append("topic is empty")
    return found


def _check_starts(saga: Saga[Any], problems: Problems) -> None:
    if not saga.starts:
        problems.append((None, "no start event"))
    for start in saga.starts:
        found = _type_problem(start.event, "start event")
        fields = (*template_fields(start.saga_id), *start.reads)
        found += _field_problems(start.event, fields, "start")
        found += _arity_problem(start.init, 1, "start init")
        if not template_fields(start.saga_id):
            found.append(f"saga id template {start.saga_id!r} reads no field")
        problems.extend((None, p) for p in found)


def _check_structure(saga: Saga[Any], problems: Problems) -> bool:
    """Check the shape of ``steps``; False when it is too broken to check further."""
    shape: Problems = []
    if not saga.steps:
        shape.append((None, "no steps"))
    for item in saga.steps:
        if isinstance(item, Parallel):
            if len(item.branches) < 2:
                shape.append((item.name, "a parallel group needs at least two branches"))
            shape.extend(
                (item.name, f"branch {b!r} is not a Step or Await")
                for b in item.branches
                if not isinstance(b, Step | Await)
            )
        elif not isinstance(item, Step | Await):
            shape.append((None, f"{item!r} is not a Step, Await or Parallel"))
    problems.extend(shape)
    if shape:
        return False
    names: set[str] = set()
    for item in saga.steps:
        for node in (item, *item.branches) if isinstance(item, Parallel) else (item,):
            if not _NAME.match(node.name):
                problems.append((node.name, "name must be lowercase letters, digits and '_'"))
            if node.name in names:
                problems.append((node.name, "duplicate step name (a step listed twice)"))
            names.add(node.name)
    return True


def _command_problems(command: Command[Any, Any], what: str) -> list[str]:
    found = _type_problem(command.type, what)
    found += _arity_problem(command.build, 1, f"{what} build")
    if not _NAME.match(command.service):
        found.append(f"{what} service {command.service!r} must be lowercase letters, digits, '_'")
    return found


def _ons_problems(ons: tuple[On[Any, Any], ...], what: str) -> list[str]:
    found: list[str] = []
    for on in ons:
        found += _type_problem(on.type, what)
        found += _field_problems(on.type, on.reads, what)
        if on.update is not None:
            found += _arity_problem(on.update, 2, f"{what} update")
    return found


def _compensation_problems(comp: Compensation[Any]) -> list[str]:
    found = _command_problems(comp.command, "compensation")
    if not comp.success:
        found.append("compensation has no success reply")
    for t in (*comp.success, *comp.failure):
        found += _type_problem(t, "compensation reply")
    found += comp.retry.problems()
    return found + _timeout_problem(comp.timeout)


def _leaf_problems(leaf: Step[Any] | Await[Any]) -> list[str]:
    found: list[str] = []
    if isinstance(leaf, Step):
        found += _command_problems(leaf.command, "command")
        if not leaf.success:
            found.append("no success reply")
        found += _ons_problems(leaf.success, "success reply")
        found += leaf.effective_retry.problems()
        failure_types = {on.type for on in leaf.failure}
        for t in leaf.effective_retry.retry_on:
            if t not in failure_types:
                found.append(f"retry_on {t!r} is not one of the step's failure replies")
    else:
        template = leaf.saga_id
        found += _ons_problems(leaf.success, "event")
        for on in leaf.success + leaf.failure:
            if template is not None:
                found += _field_problems(on.type, template_fields(template), "saga id")
    found += _ons_problems(leaf.failure, "failure")
    found += _timeout_problem(leaf.timeout)
    if leaf.when is not None:
        found += _arity_problem(leaf.when, 1, "condition")
    if leaf.compensation is not None:
        found += _compensation_problems(leaf.compensation)
        if leaf.kind in (StepKind.PIVOT, StepKind.RETRIABLE):
            found.append(f"a {leaf.kind} step cannot have a compensation")
    elif leaf.effective_kind is None:
        found.append(
            "no compensation: declare kind=StepKind.PIVOT or RETRIABLE, "
            "or COMPENSATABLE if there is nothing to undo"
        )
    return found


def _check_kinds(saga: Saga[Any], problems: Problems) -> None:
    highest: tuple[int, str] | None = None
    for item, stage in zip(saga.steps, saga.stages, strict=True):
        kinds = {leaf.effective_kind for leaf in stage} - {None}
        if isinstance(item, Parallel):
            if StepKind.PIVOT in kinds:
                problems.append((item.name, "a pivot cannot be a parallel branch"))
            elif len(kinds) > 1:
                problems.append((item.name, "branches mix compensatable and retriable steps"))
        for leaf in stage:
            kind = leaf.effective_kind
            if kind is None:
                continue
            if highest is not None and (
                _RANK[kind] < highest[0] or (kind is StepKind.PIVOT and highest[0] >= 1)
            ):
                problems.append((leaf.name, f"kinds out of order: {kind} after {highest[1]}"))
            if highest is None or _RANK[kind] >= highest[0]:
                highest = (_RANK[kind], f"the {kind} step {leaf.name!r}")


def _check_incoming(saga: Saga[Any], problems: Problems) -> None:
    """Incoming types: none is a start event, none is listed twice in one step, and an
    awaited event belongs to its `Await` alone.

    Replies may repeat across steps (two steps may send the same command): a reply names
    the command it answers (``in_reply_to``). A choreography event carries no such
    correlation, so only its type can tell which `Await` it is for.
    """
    starts = {s.event for s in saga.starts}
    owners: dict[type[Record], list[str]] = {}
    for leaf in saga.leaves:
        incoming = [on.type for on in (*leaf.success, *leaf.failure)]
        if leaf.compensation is not None:
            incoming += [*leaf.compensation.success, *leaf.compensation.failure]
        here: set[type[Record]] = set()
        for t in incoming:
            name = getattr(t, "SCHEMA", repr(t))
            if t in starts:
                problems.append((leaf.name, f"{name} is also a start event"))
            elif t in here:
                problems.append((leaf.name, f"{name} is listed twice"))
            else:
                owners.setdefault(t, []).append(leaf.name)
            here.add(t)
    for leaf in saga.leaves:
        if not isinstance(leaf, Await):
            continue
        for on in (*leaf.success, *leaf.failure):
            others = [s for s in owners.get(on.type, []) if s != leaf.name]
            name = getattr(on.type, "SCHEMA", repr(on.type))
            problems.extend(
                (
                    leaf.name,
                    f"{name} is also awaited by step {other!r} (an awaited event carries "
                    "no in_reply_to: its type must belong to one step)",
                )
                for other in others
            )


def _check_example(saga: Saga[Any], example: object, problems: Problems) -> None:
    def attempt(step: str | None, what: str, fn: Callable[[Any], object], want: type) -> None:
        try:
            built = fn(example)
        except Exception as exc:  # any error means it cannot be built from saga data
            problems.append((step, f"{what} cannot be built from saga data: {exc!r}"))
            return
        if not isinstance(built, want):
            problems.append((step, f"{what} built a {type(built).__name__}, not {want.__name__}"))

    for leaf in saga.leaves:
        if isinstance(leaf, Step):
            attempt(
                leaf.name,
                f"command {leaf.command.type.SCHEMA}",
                leaf.command.build,
                leaf.command.type,
            )
        if leaf.compensation is not None:
            cmd = leaf.compensation.command
            attempt(leaf.name, f"compensation {cmd.type.SCHEMA}", cmd.build, cmd.type)
        if leaf.when is not None:
            attempt(leaf.name, "condition", leaf.when, bool)
    for emit in (saga.on_completed, saga.on_compensated):
        if emit is not None:
            build = functools.partial(emit.event, now=_SOME_TIME)
            attempt(None, f"end event {emit.type.SCHEMA}", build, emit.type)
            if emit.key is not None:
                attempt(None, f"key of {emit.type.SCHEMA}", emit.key, str)
