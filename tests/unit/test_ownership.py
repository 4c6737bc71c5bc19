"""A unit's ownership state without a broker: the table of transitions, and the refusals."""

from __future__ import annotations

import itertools
import logging
from collections import deque

import pytest

from sagas.errors import SagasError
from sagas.runtime import units
from sagas.runtime.errors import OwnershipError, RuntimeFailure
from sagas.runtime.ownership import TRANSITIONS, Ownership, UnitState

ALLOWED = sorted(TRANSITIONS)
REFUSED = sorted(set(itertools.product(Ownership, repeat=2)) - set(TRANSITIONS))


def reachable(start: Ownership) -> dict[Ownership, Ownership]:
    """Every state reachable from ``start`` along the table, each with the state it is
    first reached from (breadth first)."""
    came_from: dict[Ownership, Ownership] = {}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for before, after in ALLOWED:
            if before is state and after not in came_from:
                came_from[after] = state
                queue.append(after)
    return came_from


def state_at(target: Ownership, k: int = 3) -> UnitState:
    """A unit's state brought to ``target`` by allowed moves only."""
    came_from = reachable(Ownership.TAKING)
    path: list[Ownership] = []
    step = target
    while step is not Ownership.TAKING:
        path.append(step)
        step = came_from[step]
    state = UnitState(k)
    for step in reversed(path):
        state.move_to(step, "on the way")
    assert state.current is target
    return state


def test_a_unit_starts_taking() -> None:
    assert UnitState(0).current is Ownership.TAKING


def test_the_table_is_the_diagram() -> None:
    o = Ownership
    assert set(TRANSITIONS) == {
        (o.TAKING, o.OWNED),
        (o.TAKING, o.FENCED),
        (o.OWNED, o.IN_DOUBT),
        (o.OWNED, o.FENCED),
        (o.OWNED, o.TAKING),
        (o.IN_DOUBT, o.TAKING),
        (o.FENCED, o.TAKING),
        (o.TAKING, o.RELEASED),
        (o.OWNED, o.RELEASED),
        (o.IN_DOUBT, o.RELEASED),
        (o.FENCED, o.RELEASED),
    }
    assert all(why.strip() for why in TRANSITIONS.values())
    with pytest.raises(TypeError):
        TRANSITIONS[(o.RELEASED, o.TAKING)] = "released units come back"  # type: ignore[index]  # read-only on purpose


def test_every_state_is_reachable_from_taking() -> None:
    assert set(reachable(Ownership.TAKING)) == set(Ownership)


@pytest.mark.parametrize("state", [s for s in Ownership if s is not Ownership.RELEASED])
def test_every_state_but_released_can_be_revoked_or_taken_again(state: Ownership) -> None:
    assert (state, Ownership.RELEASED) in TRANSITIONS
    assert Ownership.TAKING in reachable(state)  # no dead end short of a release


def test_released_is_final() -> None:
    assert not [after for before, after in TRANSITIONS if before is Ownership.RELEASED]


@pytest.mark.parametrize(("before", "after"), ALLOWED, ids=[f"{b}->{a}" for b, a in ALLOWED])
def test_an_allowed_transition_is_made(before: Ownership, after: Ownership) -> None:
    state = state_at(before)
    state.move_to(after, "allowed")
    assert state.current is after


@pytest.mark.parametrize(("before", "after"), REFUSED, ids=[f"{b}->{a}" for b, a in REFUSED])
def test_any_other_transition_is_refused_and_changes_nothing(
    before: Ownership, after: Ownership
) -> None:
    state = state_at(before, k=7)
    with pytest.raises(OwnershipError) as raised:
        state.move_to(after, "a bug")
    assert state.current is before
    error = raised.value
    assert (error.unit, error.current, error.new, error.why) == (7, before, after, "a bug")
    assert str(error) == f"unit 7: no transition from {before} to {after} (a bug)"


def test_staying_in_a_state_is_no_transition() -> None:
    for state in Ownership:
        assert (state, state) in REFUSED


def test_the_refusal_is_a_runtime_error_and_not_retryable() -> None:
    assert issubclass(OwnershipError, RuntimeFailure)
    assert issubclass(OwnershipError, SagasError)
    assert OwnershipError(0, Ownership.OWNED, Ownership.OWNED, "x").retryable is False


def test_a_transition_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    state = state_at(Ownership.OWNED, k=4)
    with caplog.at_level(logging.DEBUG, logger="sagas.runtime.ownership"):
        state.move_to(Ownership.FENCED, "a batch was fenced")
    assert caplog.messages == ["unit 4: OWNED -> FENCED (a batch was fenced)"]


def test_units_reexport_the_one_enum() -> None:
    assert units.Ownership is Ownership
