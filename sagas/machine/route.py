"""Which step an incoming reply or event belongs to, and what it means there."""

from __future__ import annotations

from typing import Any

from sagas.contracts.record import Envelope, Record
from sagas.definition import Match, Role, Step
from sagas.machine.backward import compensation_failed, on_compensated
from sagas.machine.forward import answered_late, on_message, step_failure
from sagas.machine.instance import StepStatus
from sagas.machine.work import Work

CommandRef = tuple[str, bool, int]
"""A command of the saga: its step, whether it is the compensation, its attempt."""


def on_envelope(w: Work[Any], envelope: Envelope) -> str | None:
    """Apply a reply or choreography event; returns why it is ignored, if it is.

    A reply whose ``in_reply_to`` names one of this saga's commands
    (``<saga_id>:<step>:<attempt>`` or ``<saga_id>:<step>:compensate:<attempt>``) goes to
    that step. Otherwise (choreography events carry none) it is matched by type: an
    awaited event's type belongs to one step, and so does a reply type unless several
    steps send the same command; such an ambiguous reply without ``in_reply_to`` is
    ignored. A reply of no declared type that carries a ``command_id`` naming one of this
    saga's commands (the participants' generic ``CommandFailed``) fails that command.
    """
    record = envelope.payload
    if envelope.in_reply_to is not None and envelope.in_reply_to.startswith(f"{w.saga_id}:"):
        ref = command_of(w, envelope.in_reply_to)
        if isinstance(ref, str):
            return f"{record.SCHEMA} in reply to {ref}"
        step, compensate, attempt = ref
        match = w.saga.match(record.SCHEMA, step)
        answers = compensate == (match is not None and match.role in _COMPENSATION)
        if match is None or not answers:
            if getattr(record, "command_id", None) is not None:
                return on_generic_failure(w, record)
            return f"{record.SCHEMA} is not a reply to {envelope.in_reply_to}"
        return _apply(w, match, envelope, attempt)
    matches = w.saga.matches.get(record.SCHEMA, ())
    if not matches:
        return on_generic_failure(w, record)
    if len(matches) > 1:
        steps = ", ".join(m.step for m in matches)
        return f"{record.SCHEMA} answers a command of {steps}, but names none (no in_reply_to)"
    return _apply(w, matches[0], envelope, None)


_COMPENSATION = (Role.COMPENSATED, Role.COMPENSATION_FAILED)


def _apply(w: Work[Any], match: Match, envelope: Envelope, attempt: int | None) -> str | None:
    """Apply a message of ``match``'s role to its step; ``attempt``: the attempt it
    answers, when it says (else the last one sent)."""
    leaf, state = w.saga.step(match.step), w.st(match.step)
    if match.role in (Role.SUCCESS, Role.FAILURE):
        # A success of an earlier attempt is one all the same (participants do not store
        # a retryable failure, so a resend of that command may have succeeded after it).
        stale = attempt is not None and (
            attempt > state.attempt or (attempt < state.attempt and match.role is Role.FAILURE)
        )
        if stale:
            return f"{envelope.type} answers attempt {attempt} of {leaf.name}, not the last"
        why = on_message(w, leaf, envelope.payload)
        if why == "early":
            w.keep_early(envelope, leaf.name)
            return None
        return why
    if attempt is not None and attempt > state.comp_attempt:
        return f"{envelope.type} answers compensation attempt {attempt} of {leaf.name}, not sent"
    if match.role is Role.COMPENSATED:
        return on_compensated(w, leaf)
    if state.status is not StepStatus.COMPENSATING or (
        attempt is not None and attempt != state.comp_attempt
    ):
        return f"late compensation failure for {leaf.name} ({state.status})"
    compensation_failed(w, leaf, f"{envelope.type} received")
    return None


def command_of(w: Work[Any], command_id: str) -> CommandRef | str:
    """The step, kind and attempt of one of this saga's command ids, or why it is not."""
    prefix = f"{w.saga_id}:"
    step, _, rest = command_id.removeprefix(prefix).partition(":")
    compensate, _, attempt_text = rest.rpartition(":")
    if (
        not command_id.startswith(prefix)
        or step not in w.steps
        or not attempt_text.isdigit()
        or compensate not in ("", "compensate")
        or (not compensate and not isinstance(w.saga.step(step), Step))  # an Await sends none
    ):
        return f"an unknown command {command_id!r}"
    return step, compensate == "compensate", int(attempt_text)


def on_generic_failure(w: Work[Any], record: Record) -> str | None:
    """Handle a failure reply naming the command it answers by ``command_id``."""
    command_id = getattr(record, "command_id", None)
    if not isinstance(command_id, str) or not command_id.startswith(f"{w.saga_id}:"):
        return f"{record.SCHEMA} is not a message of this saga"
    ref = command_of(w, command_id)
    if isinstance(ref, str):
        return f"{record.SCHEMA} names {ref}"
    step, compensate, attempt = ref
    leaf, state = w.saga.step(step), w.st(step)
    reason = f"{record.SCHEMA}: {getattr(record, 'reason', 'failed')}"
    if compensate:
        if state.status is not StepStatus.COMPENSATING or state.comp_attempt != attempt:
            return f"late {record.SCHEMA} for {command_id}"
        compensation_failed(w, leaf, reason)
        return None
    if not isinstance(leaf, Step) or state.attempt != attempt:
        return f"late {record.SCHEMA} for {command_id}"
    if state.status is not StepStatus.RUNNING:
        return (
            answered_late(w, leaf, record)
            if state.unanswered
            else f"late {record.SCHEMA} for {command_id}"
        )
    retryable = getattr(record, "retryable", False) is True
    w.put(step, unanswered=False)  # the participant answered: it did not apply it
    step_failure(w, leaf, reason, retryable=retryable, bump=True)
    return None
