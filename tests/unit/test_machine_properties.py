"""Property-based tests of `decide` over random inputs (hypothesis).

A run starts a saga, then applies random moves: replies of any type (expected, late or
unexpected), generic failure replies, timers fired early, late or twice, duplicates of
earlier messages, and operator actions. Then the clock runs on (timers only, nobody
answers) until nothing is pending. The properties:

- every saga ends (COMPLETED, COMPENSATED or FAILED);
- compensations are sent only for steps that succeeded or may have been applied (they
  failed or were cancelled with their command unanswered), once each, stage by stage in
  reverse order, every branch of a parallel stage at once (a success arriving after its
  step failed is undone when it arrives), each at most ``max_attempts`` times per
  round; a COMPENSATED saga undid them all;
- early choreography events kept are at most ``MAX_EARLY``, none once the saga ended,
  and each is used or dead-lettered once (the oldest first beyond the bound);
- a duplicate changes nothing but the history;
- the same inputs give the same outputs; every instance survives a JSON round trip.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagas import (
    Abort,
    Pause,
    Resume,
    Retry,
    RetryNow,
    Saga,
    SagaState,
    Step,
    TimerFired,
    Unpause,
    decide,
)
from sagas.contracts.record import Envelope, Record
from sagas.machine import (
    MAX_EARLY,
    Decision,
    Input,
    OutgoingKind,
    SagaInstance,
    StepStatus,
    instance_from_dict,
    instance_to_dict,
)
from tests.unit.saga_fixtures import (
    T0,
    CommandFailed,
    OrderData,
    ParcelDelivered,
    envelope,
    order_saga,
    parallel_saga,
    placed,
    twin_saga,
)

SAGAS: dict[str, Saga[OrderData]] = {
    "order": order_saga(),
    "parallel": parallel_saga(),
    "twin": twin_saga(),  # two steps share their command and reply types
}

Move = tuple[int, int, int]
moves = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 1_000), st.integers(0, 600)), max_size=40
)


def build(record_type: type[Record]) -> Record:
    """An instance of ``record_type`` with plausible field values."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(record_type):
        values[field.name] = {"bool": False, "Decimal": Decimal(1)}.get(str(field.type), "o-1")
    return record_type(**values)


def incoming_types(saga: Saga[OrderData]) -> list[type[Record]]:
    return [saga.message_types[schema] for schema in sorted(saga.matches)]


class Run:
    """One randomised run: the inputs given and the decisions taken."""

    def __init__(self, saga: Saga[OrderData]) -> None:
        self.saga = saga
        self.now = T0
        self.delivered: list[Envelope] = []
        self.decisions: list[tuple[Input, Decision[OrderData]]] = []
        self.old_timers: list[TimerFired] = []
        self.resumes = 0
        self.late: set[str] = set()
        first = decide(saga, None, placed(), self.now)
        assert first.instance is not None
        self.instance: SagaInstance[OrderData] = first.instance
        self.decisions.append((placed(), first))

    def give(self, item: Input) -> Decision[OrderData]:
        decision = decide(self.saga, self.instance, item, self.now)
        assert decision.instance is not None
        self.check_step(item, decision)
        self.instance = decision.instance
        self.decisions.append((item, decision))
        if isinstance(item, Envelope):
            self.delivered.append(item)
        return decision

    def check_step(self, item: Input, decision: Decision[OrderData]) -> None:
        after = decision.instance
        assert after is not None
        for message in decision.outgoing:
            if message.kind is OutgoingKind.COMPENSATION:
                assert message.step is not None
                # only steps that succeeded, or may have been applied (no reply)
                assert message.step in after.completed or after.step(message.step).unanswered
        assert len(after.early) <= MAX_EARLY  # bounded...
        if after.state.ended:
            assert after.early == ()  # ...and dropped at the end
        for message in decision.outgoing:
            if message.kind is OutgoingKind.DEAD_LETTER:  # only what was kept is dropped
                assert message.envelope in (*self.instance.early, item)
                assert message.reason in (
                    "early-overflow",
                    "step-not-reached",
                    "step-already-decided",
                )
        for name in after.completed[len(self.instance.completed) :]:
            if self.instance.step(name).status in (StepStatus.FAILED, StepStatus.CANCELLED):
                self.late.add(name)  # a success after the step had failed or was cancelled
        if decision.ignored == "duplicate":
            assert decision.outgoing == ()
            assert (
                replace(after, history=self.instance.history, updated=self.instance.updated)
                == self.instance
            )
        if len(self.decisions) % 7 == 0:  # the round trip is the slow part: sample it
            stored = json.loads(json.dumps(instance_to_dict(after)))
            assert instance_from_dict(self.saga, stored) == after

    def move(self, move: Move) -> None:
        kind, pick, seconds = move
        self.now += timedelta(seconds=seconds)
        if kind == 0:
            self.expected_reply(pick)
        elif kind == 1:
            types = incoming_types(self.saga)
            self.reply(build(types[pick % len(types)]), pick)
        elif kind == 2:
            self.generic_failure(pick)
        elif kind == 3 and self.instance.timers:
            self.fire(self.instance.timers[pick % len(self.instance.timers)])
        elif kind == 4 and self.delivered:
            again = self.delivered[pick % len(self.delivered)]
            assert self.give(again).ignored == "duplicate"
        elif kind == 5:
            self.operator(pick)
        elif kind == 6 and self.old_timers:
            self.give(self.old_timers[pick % len(self.old_timers)])

    def expected_reply(self, pick: int) -> None:
        """A reply some step is waiting for: mostly successes, sometimes failures, and
        now and then the success of a step that failed or was cancelled. Every other
        reply names the command it answers (``in_reply_to``), like real participants'."""
        choices: list[tuple[type[Record], str | None]] = []
        for state in self.instance.steps:
            leaf = self.saga.step(state.name)
            prefix = f"{self.instance.saga_id}:{state.name}"
            command = f"{prefix}:{state.attempt}" if isinstance(leaf, Step) else None
            if state.status in (StepStatus.RUNNING, StepStatus.RETRYING):
                good, bad = [o.type for o in leaf.success], [o.type for o in leaf.failure]
            elif state.status is StepStatus.COMPENSATING and leaf.compensation is not None:
                good, bad = list(leaf.compensation.success), list(leaf.compensation.failure)
                command = f"{prefix}:compensate:{state.comp_attempt}"
            elif state.status in (StepStatus.FAILED, StepStatus.CANCELLED):
                choices += [(o.type, command) for o in leaf.success]  # a success after all
                continue
            else:
                continue
            choices += [(t, command) for t in good * 3 + bad]
        if choices:
            chosen, command = choices[pick % len(choices)]
            self.reply(build(chosen), pick, command if pick % 2 else None)

    def reply(self, record: Record, pick: int, in_reply_to: str | None = None) -> None:
        sent = envelope(record, f"r{len(self.decisions)}-{pick}", at=self.now)
        self.give(replace(sent, in_reply_to=in_reply_to))

    def generic_failure(self, pick: int) -> None:
        sent = [m.id for _, d in self.decisions for m in d.outgoing if m.reply_to]
        if sent:
            failure = CommandFailed(
                command_id=sent[pick % len(sent)], reason="boom", retryable=pick % 2 == 0
            )
            self.reply(failure, pick)

    def fire(self, timer: Any) -> None:
        self.now = max(self.now, timer.due)
        fired = TimerFired(kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due)
        self.old_timers.append(fired)
        self.give(fired)

    def operator(self, pick: int) -> None:
        actions = [Pause, Unpause, Abort, Retry, Resume, RetryNow]
        action = actions[pick % len(actions)](id=f"op{len(self.decisions)}")
        decision = self.give(action)
        if isinstance(action, Resume) and decision.ignored is None:
            self.resumes += 1

    def drain(self) -> None:
        """Let time pass with nobody answering until nothing is pending."""
        for _ in range(500):
            if self.instance.state is SagaState.PAUSED:
                self.give(Unpause(id=f"drain{len(self.decisions)}"))
            elif self.instance.timers:
                self.fire(min(self.instance.timers, key=lambda t: t.due))
            else:
                return
        raise AssertionError("timers kept firing")

    def outputs(self) -> list[tuple[str, str, str | None]]:
        return [(m.id, m.type, d.ignored) for _, d in self.decisions for m in d.outgoing]


def run(name: str, script: list[Move]) -> Run:
    r = Run(SAGAS[name])
    for move in script:
        r.move(move)
    r.drain()
    stored = json.loads(json.dumps(instance_to_dict(r.instance)))
    assert instance_from_dict(r.saga, stored) == r.instance
    return r


def compensation_rounds(r: Run) -> list[list[str]]:
    """Per decision that sent a step's first compensation, the steps it did so for."""
    seen: set[str] = set()
    rounds: list[list[str]] = []
    for _, decision in r.decisions:
        new: list[str] = []
        for m in decision.outgoing:
            if m.kind is OutgoingKind.COMPENSATION and m.step not in seen:
                assert m.step is not None
                seen.add(m.step)
                new.append(m.step)
        if new:
            rounds.append(new)
    return rounds


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.sampled_from(sorted(SAGAS)), moves)
def test_every_saga_ends(name: str, script: list[Move]) -> None:
    r = run(name, script)
    assert r.instance.state.ended
    if r.instance.state is SagaState.FAILED:
        assert r.instance.reason


@PROPERTY
@given(st.sampled_from(sorted(SAGAS)), moves)
def test_compensations_undo_the_completed_steps_stage_by_stage_in_reverse(
    name: str, script: list[Move]
) -> None:
    r = run(name, script)
    saga, instance = r.saga, r.instance
    undoable = {  # succeeded, or may have been applied (its command was never answered)
        s.name
        for s in instance.steps
        if saga.step(s.name).compensation is not None
        and (s.name in instance.completed or s.unanswered)
    }
    rounds = compensation_rounds(r)
    compensated = [step for steps in rounds for step in steps]
    assert set(compensated) <= undoable
    # A success that came after its step had failed is undone when it comes; the other
    # steps are undone in rounds: a round undoes one stage...
    in_order = [[s for s in steps if s not in r.late] for steps in rounds]
    in_order = [steps for steps in in_order if steps]
    stages = [{saga.stage_of(step) for step in steps} for steps in in_order]
    assert all(len(stage) == 1 for stage in stages)
    order = [min(stage) for stage in stages]
    assert order == sorted(set(order), reverse=True)  # ...in reverse, each stage once
    for steps, stage in zip(in_order, order, strict=True):  # every branch of it at once
        assert set(steps) == {s for s in undoable - r.late if saga.stage_of(s) == stage}
    if instance.state is SagaState.COMPENSATED:
        assert set(compensated) == undoable
        assert all(instance.step(s).status is StepStatus.COMPENSATED for s in undoable)
    if instance.state is SagaState.COMPLETED:
        assert compensated == []
    for step in compensated:
        comp = saga.step(step).compensation
        assert comp is not None
        assert comp.retry.max_attempts is not None
        sends = sum(
            1
            for _, d in r.decisions
            for m in d.outgoing
            if m.kind is OutgoingKind.COMPENSATION and m.step == step
        )
        assert sends <= comp.retry.max_attempts * (1 + r.resumes)


@PROPERTY
@given(st.sampled_from(sorted(SAGAS)), moves)
def test_the_same_inputs_give_the_same_outputs(name: str, script: list[Move]) -> None:
    first, second = run(name, script), run(name, script)
    assert first.outputs() == second.outputs()
    assert instance_to_dict(first.instance) == instance_to_dict(second.instance)


@settings(max_examples=100, deadline=None)
@given(moves, st.booleans())
def test_choreography_event_in_any_order(script: list[Move], early: bool) -> None:
    r = Run(SAGAS["parallel"])
    event = envelope(ParcelDelivered(order_id="o-1"), "parcel", at=T0)
    if early:
        r.give(event)
    for move in script:
        r.move(move)
    if not early:
        r.give(event)
    r.drain()
    assert r.instance.state.ended
    if r.instance.state is SagaState.COMPLETED:
        assert r.instance.step("delivered").status is StepStatus.SUCCEEDED


@settings(max_examples=60, deadline=None)
@given(moves, st.integers(0, MAX_EARLY + 8))
def test_early_events_are_bounded_and_each_used_or_dead_lettered(
    script: list[Move], count: int
) -> None:
    r = Run(SAGAS["parallel"])
    for n in range(count):
        r.give(envelope(ParcelDelivered(order_id="o-1"), f"parcel-{n}", at=T0))
    for move in script:
        r.move(move)
    r.drain()
    assert r.instance.state.ended
    dropped = [
        m.envelope.id
        for _, d in r.decisions
        for m in d.outgoing
        if m.kind is OutgoingKind.DEAD_LETTER and m.envelope is not None
    ]
    kept = [h.id for h in r.instance.history if "kept early" in h.note]  # random ones too
    used = [h for h in r.instance.history if "using early" in h.note]
    assert len(kept) >= count
    assert len(used) <= 1
    assert len(set(dropped)) == len(dropped)  # each dropped once...
    assert set(dropped) <= set(kept)
    assert len(dropped) + len(used) == len(kept)  # ...and none lost
    overflow = [m for _, d in r.decisions for m in d.outgoing if m.reason == "early-overflow"]
    # Events are kept only until the step is reached: beyond the bound, the oldest go.
    assert [m.id for m in overflow] == kept[: max(0, len(kept) - MAX_EARLY)]
