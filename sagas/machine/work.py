"""The mutable scratch copy of an instance that one `decide` call works on.

`decide` is pure from the outside: it copies the instance into a `Work`, applies the
input to it, and freezes the result into a new instance. Nothing else shares a `Work`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sagas.contracts import topics
from sagas.contracts.record import Envelope, Record
from sagas.definition import Await, Emit, Saga, Step, StepKind
from sagas.machine.instance import (
    HistoryEntry,
    SagaInstance,
    SagaState,
    StepState,
    StepStatus,
    Timer,
    TimerKind,
)
from sagas.machine.outputs import (
    MAX_EARLY,
    Decision,
    Outgoing,
    OutgoingKind,
    SagaEvent,
)

D = TypeVar("D")

Leaf = Step[Any] | Await[Any]


class Work(Generic[D]):
    """A saga instance being changed by one input (see the module docstring)."""

    def __init__(self, saga: Saga[D], instance: SagaInstance[D], now: datetime) -> None:
        self.saga = saga
        self.base = instance
        self.now = now
        self.saga_id = instance.saga_id
        self.seq = instance.history_length
        self.state = instance.state
        self.paused_state = instance.paused_state
        self.data = instance.data
        self.steps = {s.name: s for s in instance.steps}
        self.stage = instance.stage
        self.completed = list(instance.completed)
        self.timers = list(instance.timers)
        self.reason = instance.reason
        self.failed_step = instance.failed_step
        self.early = list(instance.early)
        self.ended = instance.ended
        self.out: list[Outgoing] = []
        self.notes: list[str] = []

    # -- state -------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.state is SagaState.PAUSED

    @property
    def phase(self) -> SagaState:
        """The state the saga is in, or will return to when unpaused."""
        if self.state is SagaState.PAUSED and self.paused_state is not None:
            return self.paused_state
        return self.state

    def set_phase(self, state: SagaState) -> None:
        if self.paused:
            self.paused_state = state
        else:
            self.state = state
        if state.ended:
            self.ended = self.now

    # -- early events --------------------------------------------------------------------

    def keep_early(self, envelope: Envelope, step: str) -> None:
        """Keep a choreography event its step has not reached (the oldest goes out
        beyond `MAX_EARLY`: the instance must not grow without bound)."""
        self.early.append(envelope)
        self.note(f"kept early {envelope.type} for {step}")
        while len(self.early) > MAX_EARLY:
            self.dead_letter(self.early.pop(0), "early-overflow")

    def drop_early(self) -> None:
        """The saga ended: no step will use the events kept, they go to dead letters."""
        if not self.phase.ended:
            return
        for envelope in self.early:
            # An awaited event's type belongs to one step (validation sees to it).
            match = self.saga.matches.get(envelope.payload.SCHEMA, ())
            status = self.st(match[0].step).status if match else None
            reached = status not in (StepStatus.PENDING, StepStatus.CANCELLED)
            self.dead_letter(envelope, "step-already-decided" if reached else "step-not-reached")
        self.early = []

    def st(self, name: str) -> StepState:
        return self.steps[name]

    def put(self, name: str, **changes: Any) -> None:
        self.steps[name] = replace(self.steps[name], **changes)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def forward_only(self) -> bool:
        """Whether the saga has passed its point of no return."""
        return self.stage >= self.saga.forward_only_from

    def is_pivot(self, name: str) -> bool:
        return self.saga.step(name).effective_kind is StepKind.PIVOT

    # -- timers ------------------------------------------------------------------------

    def arm(self, kind: TimerKind, step: str | None, attempt: int, delay: timedelta) -> None:
        self.timers.append(Timer(kind=kind, step=step, attempt=attempt, due=self.now + delay))

    def disarm(self, step: str | None, *kinds: TimerKind) -> None:
        """Cancel the timers of ``step`` (all steps when None) of ``kinds`` (all when none)."""
        self.timers = [
            t
            for t in self.timers
            if not ((step is None or t.step == step) and (not kinds or t.kind in kinds))
        ]

    # -- outgoing ----------------------------------------------------------------------

    def _message(self, kind: OutgoingKind, topic: str, key: str, mid: str, payload: Any) -> None:
        reply_to = (
            self.saga.inbox if kind in (OutgoingKind.COMMAND, OutgoingKind.COMPENSATION) else None
        )
        self.out.append(
            Outgoing(
                kind=kind,
                topic=topic,
                key=key,
                id=mid,
                payload=payload,
                saga_id=self.saga_id,
                source=self.saga.source,
                reply_to=reply_to,
            )
        )

    def command(self, leaf: Step[D], attempt: int, command: Record) -> None:
        mid = f"{self.saga_id}:{leaf.name}:{attempt}"
        self._message(OutgoingKind.COMMAND, leaf.command.topic, self.saga_id, mid, command)
        self.out[-1] = replace(self.out[-1], step=leaf.name, attempt=attempt)

    def compensation(self, leaf: Leaf, attempt: int, command: Record) -> None:
        assert leaf.compensation is not None  # only called for steps that have one
        topic = leaf.compensation.command.topic
        mid = f"{self.saga_id}:{leaf.name}:compensate:{attempt}"
        self._message(OutgoingKind.COMPENSATION, topic, self.saga_id, mid, command)
        sent = range(1, self.st(leaf.name).attempt + 1) if isinstance(leaf, Step) else ()
        undoes = tuple(f"{self.saga_id}:{leaf.name}:{n}" for n in sent)
        self.out[-1] = replace(self.out[-1], step=leaf.name, attempt=attempt, compensates=undoes)

    def dead_letter(self, envelope: Envelope, reason: str) -> None:
        self.out.append(
            Outgoing(
                kind=OutgoingKind.DEAD_LETTER,
                topic=self.saga.dead_letters,
                key=self.saga_id,
                id=envelope.id,
                payload=envelope.payload,
                saga_id=self.saga_id,
                source=self.saga.source,
                envelope=envelope,
                reason=reason,
            )
        )
        self.note(f"dead-lettered {envelope.type} {envelope.id} ({reason})")

    def emit(self, event_type: type[SagaEvent], **fields: Any) -> None:
        event = event_type(
            saga_id=self.saga_id,
            saga_name=self.saga.name,
            saga_version=self.saga.version,
            at=self.now,
            **fields,
        )
        mid = f"{self.saga_id}:{self.seq}.{len(self.out)}:{event_type.TYPE.rsplit('.', 1)[-1]}"
        self._message(OutgoingKind.SAGA_EVENT, topics.OUTCOMES, self.saga_id, mid, event)

    def publish(self, emit: Emit[D, Any] | None, tag: str) -> None:
        """Publish an end event; a builder that raises is noted, not fatal."""
        if emit is None:
            return
        try:
            event = emit.event(self.data, self.now)
            key = emit.key(self.data) if emit.key is not None else self.saga_id
        except Exception as exc:  # an author's function: record, never crash the saga
            self.note(f"end event {emit.type.SCHEMA} not built: {exc!r}")
            return
        mid = f"{self.saga_id}:{tag}"
        self._message(OutgoingKind.DOMAIN_EVENT, emit.topic, key, mid, event)

    # -- result ------------------------------------------------------------------------

    def freeze(self, kind: str, type_: str, input_id: str | None) -> SagaInstance[D]:
        """The new instance, with this decision recorded in its history."""
        entry = HistoryEntry(
            seq=self.seq,
            at=self.now,
            input=kind,
            type=type_,
            id=input_id,
            note="; ".join(self.notes) or "no change",
            sent=tuple(m.id for m in self.out),
        )
        seen = self.base.seen
        if input_id is not None and input_id not in seen:
            seen = (*seen, input_id)
        return replace(
            self.base,
            state=self.state,
            paused_state=self.paused_state if self.paused else None,
            data=self.data,
            steps=tuple(self.steps[s.name] for s in self.base.steps),
            stage=self.stage,
            completed=tuple(self.completed),
            timers=tuple(self.timers),
            reason=self.reason,
            failed_step=self.failed_step,
            early=tuple(self.early),
            seen=seen,
            history=(*self.base.history, entry),
            updated=self.now,
            ended=self.ended,
        )

    def decision(
        self, kind: str, type_: str, input_id: str | None, ignored: str | None = None
    ) -> Decision[D]:
        if ignored is not None:
            self.notes = [f"ignored: {ignored}"]
        else:
            self.drop_early()
        instance = self.freeze(kind, type_, input_id)
        return Decision(
            instance=instance,
            outgoing=tuple(self.out),
            timers=instance.scheduled_timers,
            ignored=ignored,
            note=instance.history[-1].note,
        )
