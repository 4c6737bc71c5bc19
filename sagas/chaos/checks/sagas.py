"""Checks on the sagas themselves, from the engine's committed state (the changelogs).

* every placed saga has a final instance (``saga_lost``), every instance ended
  (``saga_stuck``), and its end was announced on ``sagas.events`` as the same state
  (``outcome_mismatch``);
* every change between two committed states of a saga is a legal transition of the
  state machine (``illegal_transition``), and the history only grows
  (``history_rewritten``);
* a compensated saga compensated exactly the steps that succeeded or may have been
  applied (failed or cancelled with their command unanswered), stage by stage in
  reverse order (the branches of a parallel stage together; a late success when it
  came), and a completed one compensated nothing (``bad_compensation``).

The transition tables below are read off `sagas.machine` (forward.py, backward.py,
timers.py, operate.py). One changelog record holds the state after a whole batch, so
several decisions may lie between two records: the checks use the transitive closure
of the single-decision tables.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sagas.chaos.context import RunContext
from sagas.chaos.faults.base import ChaosContext, Check
from sagas.chaos.final import SagaRecords, Snapshot
from sagas.definition import Saga
from sagas.machine import SagaInstance, SagaState, StepStatus
from services.definitions import all_definitions

T = TypeVar("T")
S = SagaState
P = StepStatus

SAGA_STEPS: dict[SagaState, set[SagaState]] = {
    # advance: completes; step_failed: compensates (compensation may end at once when
    # nothing succeeded) or fails past the point of no return.
    S.RUNNING: {S.COMPLETED, S.COMPENSATING, S.COMPENSATED, S.FAILED},
    # advance_compensation ends; compensation_failed fails; a pivot that succeeds while
    # compensating calls compensation off (succeed -> RUNNING).
    S.COMPENSATING: {S.COMPENSATED, S.FAILED, S.RUNNING},
    S.COMPLETED: set(),
    # a late success is compensated after the end; that compensation failing for good
    # leaves the saga FAILED (for an operator).
    S.COMPENSATED: {S.FAILED},
    S.FAILED: set(),
    S.PAUSED: set(),
}
"""Saga state -> the states one decision without an operator can lead to."""

SAGA_FIRST: set[SagaState] = {S.RUNNING} | SAGA_STEPS[S.RUNNING]
"""States a saga's first committed record may hold (`_start` then `advance`)."""

STEP_STEPS: dict[StepStatus, set[StepStatus]] = {
    # enter: skip, send (RUNNING), await (RUNNING), condition raised (FAILED), an early
    # event applied at once; begin_compensation cancels pending steps.
    P.PENDING: {P.SKIPPED, P.RUNNING, P.FAILED, P.SUCCEEDED, P.CANCELLED},
    # on_message / step_failure / timeout; begin_compensation cancels awaited events.
    P.RUNNING: {P.SUCCEEDED, P.RETRYING, P.FAILED, P.CANCELLED},
    # a retry timer resends (or cannot build: FAILED); a late success is accepted.
    P.RETRYING: {P.RUNNING, P.SUCCEEDED, P.FAILED, P.CANCELLED},
    # send_compensation, or its builder raised (compensation_failed).
    P.SUCCEEDED: {P.COMPENSATING, P.COMPENSATION_RETRYING, P.COMPENSATION_FAILED},
    P.COMPENSATING: {P.COMPENSATED, P.COMPENSATION_RETRYING, P.COMPENSATION_FAILED},
    P.COMPENSATION_RETRYING: {P.COMPENSATING, P.COMPENSATED, P.COMPENSATION_FAILED},
    # a pivot succeeding while compensating puts cancelled, unstarted steps back; a
    # step whose command was unanswered may have been applied and is compensated (or its
    # builder raised); a late success is recorded, then compensated.
    P.CANCELLED: {
        P.PENDING,
        P.SUCCEEDED,
        P.COMPENSATING,
        P.COMPENSATION_RETRYING,
        P.COMPENSATION_FAILED,
    },
    P.SKIPPED: set(),
    P.FAILED: {P.SUCCEEDED, P.COMPENSATING, P.COMPENSATION_RETRYING, P.COMPENSATION_FAILED},
    P.COMPENSATED: set(),
    P.COMPENSATION_FAILED: set(),
}
"""Step status -> the statuses one decision without an operator can lead to."""


def closure(table: Mapping[T, set[T]]) -> dict[T, set[T]]:
    """Every state reachable in one or more steps (each state also reaches itself)."""
    reach = {state: {state, *targets} for state, targets in table.items()}
    changed = True
    while changed:
        changed = False
        for targets in reach.values():
            more = set().union(*(reach.get(t, {t}) for t in targets)) - targets
            if more:
                targets |= more
                changed = True
    return reach


SAGA_LEGAL = closure(SAGA_STEPS)
STEP_LEGAL = closure(STEP_STEPS)
FINAL_STATES = {S.COMPLETED}
"""States nothing leaves, not even an operator's action. (A COMPENSATED saga can still
become FAILED: a late success compensated after the end whose compensation fails.)"""


def transition_problems(saga_id: str, records: SagaRecords) -> dict[str, list[str]]:
    """Illegal moves between consecutive committed states of one saga."""
    found: dict[str, list[str]] = {}
    snaps = records.snapshots
    if snaps and SagaState(snaps[0].state) not in SAGA_FIRST:
        found.setdefault("illegal_transition", []).append(
            f"{saga_id}: first committed state {snaps[0].state}"
        )
    for before, after in itertools.pairwise(snaps):
        for kind, problem in _pair_problems(before, after):
            found.setdefault(kind, []).append(f"{saga_id} @{after.offset}: {problem}")
    return found


def _pair_problems(before: Snapshot, after: Snapshot) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if after.history < before.history:
        problems.append(("history_rewritten", f"history {before.history} -> {after.history}"))
    operator = after.operator > before.operator
    old, new = SagaState(before.state), SagaState(after.state)
    if old in FINAL_STATES and new != old:
        problems.append(("illegal_transition", f"{old} -> {new} (a final state)"))
    elif not operator and new not in SAGA_LEGAL[old]:
        problems.append(("illegal_transition", f"{old} -> {new}"))
    if not operator:
        if after.completed[: len(before.completed)] != before.completed:
            problems.append(
                ("history_rewritten", f"completed {before.completed} -> {after.completed}")
            )
        for (name, was), (_, now) in zip(before.steps, after.steps, strict=True):
            if StepStatus(now) not in STEP_LEGAL[StepStatus(was)]:
                problems.append(("illegal_transition", f"step {name}: {was} -> {now}"))
    return problems


_COMPENSATE = re.compile(r"compensate (\w+) \(attempt \d+\)")
_LATE = re.compile(r"(\w+) succeeded late")
_COMPENSATION_STATUSES = {
    P.COMPENSATING,
    P.COMPENSATION_RETRYING,
    P.COMPENSATED,
    P.COMPENSATION_FAILED,
}


def compensation_problems(definition: Saga[Any], inst: SagaInstance[Any]) -> list[str]:
    """How ``inst`` broke the compensation rules (empty when it did not)."""
    problems: list[str] = []
    status = {s.name: s.status for s in inst.steps}
    unanswered = {s.name for s in inst.steps if s.unanswered}
    completed = list(inst.completed)
    if len(set(completed)) != len(completed):
        problems.append(f"a step completed twice: {completed}")
    sent: list[str] = []
    late: set[str] = set()
    for entry in inst.history:
        late.update(_LATE.findall(entry.note))
        for name in _COMPENSATE.findall(entry.note):
            if name not in sent:
                sent.append(name)
    # Succeeded, or may have been applied: failed or cancelled with its command unanswered.
    undoable = [
        n
        for n in status
        if definition.step(n).compensation is not None and (n in completed or n in unanswered)
    ]
    for name, st in status.items():
        if st in _COMPENSATION_STATUSES and name not in completed and name not in unanswered:
            problems.append(f"{name} is {st} but never succeeded")
    # A success that came after its step had failed is undone when it comes, out of turn.
    expected = _by_stage(definition, [n for n in undoable if n not in late])
    in_turn = [n for n in sent if n not in late]
    done = _by_stage(definition, in_turn)
    if inst.state is S.COMPLETED:
        if sent:
            problems.append(f"completed, yet compensated {sent}")
        left = [n for n, st in status.items() if st not in (P.SUCCEEDED, P.SKIPPED)]
        if left:
            problems.append(f"completed with steps {[(n, status[n]) for n in left]}")
    elif inst.state is S.COMPENSATED:
        if set(sent) != set(undoable):
            problems.append(f"compensated {sent}, expected {undoable}")
        elif done != expected or not _stage_order(definition, in_turn):
            problems.append(f"compensated {sent}, expected {undoable} (stages in reverse)")
        under_way = (P.COMPENSATING, P.COMPENSATION_RETRYING)  # a late one, after the end
        still = [
            n
            for n in undoable
            if status[n] is not P.COMPENSATED and not (n in late and status[n] in under_way)
        ]
        if still:
            problems.append(f"compensated, yet {[(n, status[n]) for n in still]}")
    elif inst.state is S.FAILED and in_turn:
        whole = done[:-1] == expected[: len(done) - 1]
        if not (whole and set(done[-1]) <= set(expected[len(done) - 1])):
            problems.append(f"compensated {sent}, expected the last stages of {undoable}")
        elif not _stage_order(definition, in_turn):
            problems.append(f"compensated {sent}: stages not in reverse")
    return problems


def _by_stage(definition: Saga[Any], steps: Sequence[str]) -> list[list[str]]:
    """``steps`` grouped by stage, last stage first, sorted within a stage."""
    stages = sorted({definition.stage_of(n) for n in steps}, reverse=True)
    return [sorted(n for n in steps if definition.stage_of(n) == i) for i in stages]


def _stage_order(definition: Saga[Any], sent: Sequence[str]) -> bool:
    """Whether ``sent`` (in order of sending) undid stage after stage, in reverse."""
    stages = [definition.stage_of(n) for n in sent]
    return stages == sorted(stages, reverse=True)


async def sagas_ended(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """None lost, none stuck, each end announced as the state the changelog holds."""
    found: dict[str, list[str]] = {}
    by_id = {i.saga_id: i for i in final}
    outcomes = ctx.watcher.sagas if isinstance(ctx, RunContext) and ctx.watcher else {}
    placed = ctx.placed_ids() if isinstance(ctx, RunContext) else {}
    for saga_id in sorted(placed):
        if saga_id not in by_id:
            found.setdefault("saga_lost", []).append(f"{saga_id}: no committed state")
    for inst in final:
        if not inst.state.ended:
            found.setdefault("saga_stuck", []).append(f"{inst.saga_id}: {inst.state}")
            continue
        if inst.saga_id not in placed:
            continue
        announced = outcomes.get(inst.saga_id)
        if announced is None or announced.state != inst.state.value:
            said = announced.state if announced else "nothing"
            found.setdefault("outcome_mismatch", []).append(
                f"{inst.saga_id}: changelog {inst.state}, sagas.events {said}"
            )
    return found


async def legal_transitions(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """Every committed change of every saga is legal, and its history only grows."""
    found: dict[str, list[str]] = {}
    records = ctx.records if isinstance(ctx, RunContext) else {}
    for saga_id, entry in records.items():
        for kind, problems in transition_problems(saga_id, entry).items():
            found.setdefault(kind, []).extend(problems)
    return found


async def compensations(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """Exactly the succeeded (or maybe applied) steps compensated, stages in reverse."""
    definitions = {(d.name, d.version): d for d in all_definitions()}
    found: list[str] = []
    for inst in final:
        definition = definitions.get((inst.saga, inst.version))
        if definition is None:
            continue
        found.extend(f"{inst.saga_id}: {p}" for p in compensation_problems(definition, inst))
    return {"bad_compensation": found} if found else {}


CHECKS: list[Check] = [sagas_ended, legal_transitions, compensations]
