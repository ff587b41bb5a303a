"""Node lifecycle: states, events and the transition table. Pure: no I/O, no clock.

The engine (engine.py) asks ``next_state`` for every move and records it; nothing else changes a
node's state. An illegal move raises IllegalTransition naming the state and the allowed actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from provisiond.errors import Conflict, IllegalTransition


class State(StrEnum):
    DISCOVERED = "discovered"
    ENROLLED = "enrolled"
    VERIFYING = "verifying"
    VERIFY_FAILED = "verify-failed"
    MANAGEABLE = "manageable"
    INSPECTING = "inspecting"
    INSPECT_WAIT = "inspect-wait"
    INSPECT_FAILED = "inspect-failed"
    CLEANING = "cleaning"
    CLEAN_WAIT = "clean-wait"
    CLEAN_FAILED = "clean-failed"
    AVAILABLE = "available"
    DEPLOYING = "deploying"
    DEPLOY_WAIT = "deploy-wait"
    DEPLOY_FAILED = "deploy-failed"
    ACTIVE = "active"
    RELEASING = "releasing"
    RELEASE_FAILED = "release-failed"


class Action(StrEnum):
    """What a user asks for: lifecycle actions plus power and flag actions."""

    MANAGE = "manage"
    INSPECT = "inspect"
    PROVIDE = "provide"
    DEPLOY = "deploy"
    UNDEPLOY = "undeploy"
    REBUILD = "rebuild"
    POWER_ON = "power-on"
    POWER_OFF = "power-off"
    REBOOT = "reboot"
    MAINTENANCE_ON = "maintenance-on"
    MAINTENANCE_OFF = "maintenance-off"


class Internal(StrEnum):
    """Events the engine raises while it works."""

    WAIT = "wait"  # side effects started; now waiting for the node to call back
    DONE = "done"
    FAIL = "fail"


Event = Action | Internal

LIFECYCLE_ACTIONS = frozenset(
    {Action.MANAGE, Action.INSPECT, Action.PROVIDE, Action.DEPLOY, Action.UNDEPLOY, Action.REBUILD}
)
POWER_ACTIONS = frozenset({Action.POWER_ON, Action.POWER_OFF, Action.REBOOT})
FLAG_ACTIONS = frozenset({Action.MAINTENANCE_ON, Action.MAINTENANCE_OFF})

S, A, I = State, Action, Internal  # noqa: E741 - table shorthand

TRANSITIONS: Mapping[tuple[State, Event], State] = {
    # enrollment and BMC verification; "manage" always re-verifies the BMC
    (S.ENROLLED, A.MANAGE): S.VERIFYING,
    (S.DISCOVERED, A.MANAGE): S.VERIFYING,
    (S.VERIFY_FAILED, A.MANAGE): S.VERIFYING,
    (S.MANAGEABLE, A.MANAGE): S.VERIFYING,
    (S.AVAILABLE, A.MANAGE): S.VERIFYING,
    (S.INSPECT_FAILED, A.MANAGE): S.VERIFYING,
    (S.CLEAN_FAILED, A.MANAGE): S.VERIFYING,
    (S.VERIFYING, I.DONE): S.MANAGEABLE,
    (S.VERIFYING, I.FAIL): S.VERIFY_FAILED,
    # inspection
    (S.MANAGEABLE, A.INSPECT): S.INSPECTING,
    (S.INSPECT_FAILED, A.INSPECT): S.INSPECTING,
    (S.INSPECTING, I.WAIT): S.INSPECT_WAIT,
    (S.INSPECTING, I.DONE): S.MANAGEABLE,
    (S.INSPECT_WAIT, I.DONE): S.MANAGEABLE,
    (S.INSPECTING, I.FAIL): S.INSPECT_FAILED,
    (S.INSPECT_WAIT, I.FAIL): S.INSPECT_FAILED,
    # cleaning into the pool
    (S.MANAGEABLE, A.PROVIDE): S.CLEANING,
    (S.CLEAN_FAILED, A.PROVIDE): S.CLEANING,
    (S.CLEANING, I.WAIT): S.CLEAN_WAIT,
    (S.CLEANING, I.DONE): S.AVAILABLE,
    (S.CLEAN_WAIT, I.DONE): S.AVAILABLE,
    (S.CLEANING, I.FAIL): S.CLEAN_FAILED,
    (S.CLEAN_WAIT, I.FAIL): S.CLEAN_FAILED,
    # deployment
    (S.AVAILABLE, A.DEPLOY): S.DEPLOYING,
    (S.DEPLOY_FAILED, A.DEPLOY): S.DEPLOYING,
    (S.ACTIVE, A.REBUILD): S.DEPLOYING,
    (S.DEPLOYING, I.WAIT): S.DEPLOY_WAIT,
    (S.DEPLOYING, I.DONE): S.ACTIVE,
    (S.DEPLOY_WAIT, I.DONE): S.ACTIVE,
    (S.DEPLOYING, I.FAIL): S.DEPLOY_FAILED,
    (S.DEPLOY_WAIT, I.FAIL): S.DEPLOY_FAILED,
    # release: back through cleaning
    (S.ACTIVE, A.UNDEPLOY): S.RELEASING,
    (S.DEPLOY_FAILED, A.UNDEPLOY): S.RELEASING,
    (S.RELEASE_FAILED, A.UNDEPLOY): S.RELEASING,
    (S.RELEASING, I.DONE): S.CLEANING,
    (S.RELEASING, I.FAIL): S.RELEASE_FAILED,
}

TRANSITIONAL = frozenset(
    {
        S.VERIFYING,
        S.INSPECTING,
        S.INSPECT_WAIT,
        S.CLEANING,
        S.CLEAN_WAIT,
        S.DEPLOYING,
        S.DEPLOY_WAIT,
        S.RELEASING,
    }
)
WAIT_STATES = frozenset({S.INSPECT_WAIT, S.CLEAN_WAIT, S.DEPLOY_WAIT})

# Destructive actions a protected node refuses (Ironic's "protected" semantics).
PROTECTED_REFUSES = frozenset({A.UNDEPLOY, A.REBUILD})
# Actions that put a node into service; refused in maintenance and when retired.
INTO_SERVICE = frozenset({A.PROVIDE, A.DEPLOY, A.REBUILD})


def next_state(state: State | str, event: Event | str) -> State:
    """The state after ``event`` in ``state``; raises IllegalTransition if the table has no move."""
    st = State(state)
    ev: Event = Action(event) if event in Action.__members__.values() else Internal(event)
    try:
        return TRANSITIONS[(st, ev)]
    except KeyError:
        raise IllegalTransition(st.value, str(ev), allowed_actions(st)) from None


def allowed_actions(state: State | str, flags: NodeFlags | None = None) -> tuple[str, ...]:
    """User actions that make sense in ``state`` (lifecycle moves, then power, then flags),
    less those the node's flags refuse."""
    st = State(state)
    moves = [ev.value for (s, ev) in TRANSITIONS if s == st and isinstance(ev, Action)]
    if flags is not None:
        refused: frozenset[Action] = frozenset()
        if flags.protected:
            refused |= PROTECTED_REFUSES
        if flags.maintenance or flags.retired:
            refused |= INTO_SERVICE
        moves = [m for m in moves if m not in refused]
    power = [] if st in TRANSITIONAL else sorted(a.value for a in POWER_ACTIONS)
    flag_actions = sorted(a.value for a in FLAG_ACTIONS)
    return tuple(sorted(moves) + power + flag_actions)


def failed_twin(state: State | str) -> State:
    return next_state(state, Internal.FAIL)


@dataclass(frozen=True)
class NodeFlags:
    maintenance: bool = False
    protected: bool = False
    retired: bool = False


def check_action(state: State | str, action: Action | str, flags: NodeFlags) -> State | None:
    """Validate a user action against state and flags.

    Returns the state the action moves the node into (None for power and flag actions, which do
    not change the lifecycle state), or raises Conflict/IllegalTransition with the reason.
    """
    st = State(state)
    act = Action(action)
    if act in FLAG_ACTIONS:
        return None
    if act in POWER_ACTIONS:
        if st in TRANSITIONAL:
            raise IllegalTransition(st.value, act.value, allowed_actions(st))
        return None
    if flags.protected and act in PROTECTED_REFUSES:
        raise Conflict(
            f"node is protected; '{act.value}' is refused (clear 'protected' first)",
            state=st.value,
            action=act.value,
        )
    if flags.maintenance and act in INTO_SERVICE:
        raise Conflict(
            f"node is in maintenance; '{act.value}' is refused (maintenance-off first)",
            state=st.value,
            action=act.value,
        )
    if flags.retired and act in INTO_SERVICE:
        raise Conflict(
            f"node is retired; '{act.value}' is refused", state=st.value, action=act.value
        )
    return next_state(st, act)
