"""Which step an incoming reply or event belongs to, and what it means there."""

from __future__ import annotations

from typing import Any

from sagas.contracts.record import Envelope, Record
from sagas.definition import Role, Step
from sagas.machine.backward import compensation_failed, on_compensated
from sagas.machine.forward import on_message, step_failure
from sagas.machine.instance import StepStatus
from sagas.machine.work import Work


def on_envelope(w: Work[Any], envelope: Envelope) -> str | None:
    """Apply a reply or choreography event; returns why it is ignored, if it is.

    Replies are matched to steps by type (a definition lets each reply type belong to
    one step). A reply of no declared type that carries a ``command_id`` naming one of
    this saga's commands (the participants' generic ``CommandFailed``) is a failure of
    that command.
    """
    match = w.saga.matches.get(envelope.payload.SCHEMA)
    if match is None:
        return on_generic_failure(w, envelope.payload)
    leaf = w.saga.step(match.step)
    if match.role in (Role.SUCCESS, Role.FAILURE):
        why = on_message(w, leaf, envelope.payload)
        if why == "early":
            w.keep_early(envelope, leaf.name)
            return None
        return why
    if match.role is Role.COMPENSATED:
        return on_compensated(w, leaf)
    status = w.st(leaf.name).status
    if status is not StepStatus.COMPENSATING:
        return f"late compensation failure for {leaf.name} ({status})"
    compensation_failed(w, leaf, f"{envelope.type} received")
    return None


def on_generic_failure(w: Work[Any], record: Record) -> str | None:
    """Handle a failure reply naming the command it answers by ``command_id``."""
    command_id = getattr(record, "command_id", None)
    prefix = f"{w.saga_id}:"
    if not isinstance(command_id, str) or not command_id.startswith(prefix):
        return f"{record.SCHEMA} is not a message of this saga"
    step, _, rest = command_id[len(prefix) :].partition(":")
    compensate, _, attempt_text = rest.rpartition(":")
    if step not in w.steps or not attempt_text.isdigit() or compensate not in ("", "compensate"):
        return f"{record.SCHEMA} names an unknown command {command_id!r}"
    leaf, state, attempt = w.saga.step(step), w.st(step), int(attempt_text)
    reason = f"{record.SCHEMA}: {getattr(record, 'reason', 'failed')}"
    if compensate:
        if state.status is not StepStatus.COMPENSATING or state.comp_attempt != attempt:
            return f"late {record.SCHEMA} for {command_id}"
        compensation_failed(w, leaf, reason)
        return None
    if (
        not isinstance(leaf, Step)
        or state.status is not StepStatus.RUNNING
        or state.attempt != attempt
    ):
        return f"late {record.SCHEMA} for {command_id}"
    retryable = getattr(record, "retryable", False) is True
    w.put(step, unanswered=False)  # the participant answered: it did not apply it
    step_failure(w, leaf, reason, retryable=retryable, bump=True)
    return None
