"""The lifecycle transition table, next_state, allowed_actions, failed_twin and check_action."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.errors import Conflict, IllegalTransition
from provisiond.lifecycle import (
    FLAG_ACTIONS,
    INTO_SERVICE,
    LIFECYCLE_ACTIONS,
    POWER_ACTIONS,
    PROTECTED_REFUSES,
    TRANSITIONAL,
    TRANSITIONS,
    WAIT_STATES,
    Action,
    Internal,
    NodeFlags,
    State,
    allowed_actions,
    check_action,
    failed_twin,
    next_state,
)

S, A, I = State, Action, Internal  # noqa: E741 - table shorthand, as in the module

ALL_EVENTS: list[Action | Internal] = [*Action, *Internal]
STABLE = [s for s in State if s not in TRANSITIONAL]
FAILED = [s for s in State if s.value.endswith("-failed")]
POWER_VALUES = sorted(a.value for a in POWER_ACTIONS)
FLAG_VALUES = sorted(a.value for a in FLAG_ACTIONS)

states = st.sampled_from(list(State))
events = st.sampled_from(ALL_EVENTS)
actions = st.sampled_from(list(Action))
node_flags = st.builds(NodeFlags, st.booleans(), st.booleans(), st.booleans())


def reachable(start: State) -> set[State]:
    seen = {start}
    todo = [start]
    while todo:
        here = todo.pop()
        for (src, _ev), dst in TRANSITIONS.items():
            if src == here and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


# ----------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        # the happy path of a node's life, step by step
        (S.ENROLLED, A.MANAGE, S.VERIFYING),
        (S.VERIFYING, I.DONE, S.MANAGEABLE),
        (S.MANAGEABLE, A.INSPECT, S.INSPECTING),
        (S.INSPECTING, I.WAIT, S.INSPECT_WAIT),
        (S.INSPECT_WAIT, I.DONE, S.MANAGEABLE),
        (S.MANAGEABLE, A.PROVIDE, S.CLEANING),
        (S.CLEANING, I.WAIT, S.CLEAN_WAIT),
        (S.CLEAN_WAIT, I.DONE, S.AVAILABLE),
        (S.AVAILABLE, A.DEPLOY, S.DEPLOYING),
        (S.DEPLOYING, I.WAIT, S.DEPLOY_WAIT),
        (S.DEPLOY_WAIT, I.DONE, S.ACTIVE),
        (S.ACTIVE, A.UNDEPLOY, S.RELEASING),
        (S.RELEASING, I.DONE, S.CLEANING),
        (S.ACTIVE, A.REBUILD, S.DEPLOYING),
        # a discovered node is managed like an enrolled one
        (S.DISCOVERED, A.MANAGE, S.VERIFYING),
        # steps that finish without waiting for the node
        (S.INSPECTING, I.DONE, S.MANAGEABLE),
        (S.CLEANING, I.DONE, S.AVAILABLE),
        (S.DEPLOYING, I.DONE, S.ACTIVE),
        # failures
        (S.VERIFYING, I.FAIL, S.VERIFY_FAILED),
        (S.INSPECT_WAIT, I.FAIL, S.INSPECT_FAILED),
        (S.CLEAN_WAIT, I.FAIL, S.CLEAN_FAILED),
        (S.DEPLOY_WAIT, I.FAIL, S.DEPLOY_FAILED),
        (S.RELEASING, I.FAIL, S.RELEASE_FAILED),
        # recovery from each failed state
        (S.VERIFY_FAILED, A.MANAGE, S.VERIFYING),
        (S.INSPECT_FAILED, A.INSPECT, S.INSPECTING),
        (S.INSPECT_FAILED, A.MANAGE, S.VERIFYING),
        (S.CLEAN_FAILED, A.PROVIDE, S.CLEANING),
        (S.CLEAN_FAILED, A.MANAGE, S.VERIFYING),
        (S.DEPLOY_FAILED, A.DEPLOY, S.DEPLOYING),
        (S.DEPLOY_FAILED, A.UNDEPLOY, S.RELEASING),
        (S.RELEASE_FAILED, A.UNDEPLOY, S.RELEASING),
        # "manage" re-verifies the BMC from the stable pre-deploy states
        (S.MANAGEABLE, A.MANAGE, S.VERIFYING),
        (S.AVAILABLE, A.MANAGE, S.VERIFYING),
    ],
)
def test_next_state_follows_the_table(state: State, event: Action | Internal, expected: State):
    assert next_state(state, event) is expected


def test_next_state_accepts_plain_strings():
    assert next_state("available", "deploy") is S.DEPLOYING
    assert next_state("deploy-wait", "done") is S.ACTIVE
    assert next_state("cleaning", "fail") is S.CLEAN_FAILED
    assert isinstance(next_state("enrolled", "manage"), State)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.ENROLLED, A.DEPLOY),  # must be verified, cleaned and available first
        (S.ENROLLED, I.DONE),
        (S.MANAGEABLE, A.DEPLOY),  # must be cleaned first
        (S.AVAILABLE, A.UNDEPLOY),
        (S.ACTIVE, A.DEPLOY),  # already deployed: rebuild or undeploy
        (S.ACTIVE, A.MANAGE),  # would drop a tenant's running node out of service
        (S.ACTIVE, A.PROVIDE),
        (S.DEPLOYING, A.DEPLOY),
        (S.DEPLOY_WAIT, A.UNDEPLOY),
        (S.CLEAN_WAIT, A.MANAGE),
        (S.RELEASING, I.WAIT),  # releasing has no wait state
        (S.VERIFYING, I.WAIT),
        (S.INSPECT_WAIT, I.WAIT),  # already waiting
        (S.RELEASE_FAILED, A.MANAGE),
        (S.DEPLOY_FAILED, A.MANAGE),
        (S.MANAGEABLE, I.FAIL),
    ],
)
def test_illegal_moves_raise(state: State, event: Action | Internal):
    with pytest.raises(IllegalTransition) as info:
        next_state(state, event)
    err = info.value
    assert err.state == state.value
    assert err.event == event.value
    assert err.allowed == allowed_actions(state)
    assert isinstance(err, Conflict)
    assert err.kind == "illegal-transition"


def test_illegal_transition_message_names_state_event_and_allowed_actions():
    with pytest.raises(IllegalTransition) as info:
        next_state(S.ENROLLED, A.DEPLOY)
    msg = str(info.value)
    assert msg == (
        "cannot deploy a node in state 'enrolled'; allowed here: manage, power-off, power-on, "
        "reboot, maintenance-off, maintenance-on"
    )
    assert info.value.extra == {
        "state": "enrolled",
        "action": "deploy",
        "allowed_actions": [
            "manage",
            "power-off",
            "power-on",
            "reboot",
            "maintenance-off",
            "maintenance-on",
        ],
    }


def test_illegal_transition_in_transitional_state_lists_only_flag_actions():
    with pytest.raises(IllegalTransition) as info:
        next_state(S.DEPLOY_WAIT, A.UNDEPLOY)
    assert "'deploy-wait'" in str(info.value)
    assert "allowed here: maintenance-off, maintenance-on" in str(info.value)


def test_unknown_state_or_event_is_not_a_transition_error():
    # Callers convert user input with Action(...) first; garbage is a programming error here.
    with pytest.raises(ValueError):
        next_state("no-such-state", "manage")
    with pytest.raises(ValueError):
        next_state("enrolled", "no-such-event")


def test_table_only_uses_known_states_and_events():
    for (src, ev), dst in TRANSITIONS.items():
        assert isinstance(src, State)
        assert isinstance(dst, State)
        assert isinstance(ev, Action | Internal)
        # only lifecycle actions move a node; power and flag actions never appear in the table
        if isinstance(ev, Action):
            assert ev in LIFECYCLE_ACTIONS


def test_action_groups_partition_the_actions():
    assert set(Action) == LIFECYCLE_ACTIONS | POWER_ACTIONS | FLAG_ACTIONS
    assert not LIFECYCLE_ACTIONS & POWER_ACTIONS
    assert not LIFECYCLE_ACTIONS & FLAG_ACTIONS
    assert not POWER_ACTIONS & FLAG_ACTIONS
    assert PROTECTED_REFUSES <= LIFECYCLE_ACTIONS
    assert INTO_SERVICE <= LIFECYCLE_ACTIONS
    assert set(WAIT_STATES) <= set(TRANSITIONAL)


# ----------------------------------------------------------------------------- graph properties


def test_no_action_leads_out_of_a_transitional_state():
    for (src, ev), _dst in TRANSITIONS.items():
        if src in TRANSITIONAL:
            assert isinstance(ev, Internal), f"{src} accepts user action {ev}"
        else:
            assert isinstance(ev, Action), f"stable state {src} reacts to engine event {ev}"


@pytest.mark.parametrize("state", sorted(TRANSITIONAL))
def test_every_transitional_state_has_a_failed_twin(state: State):
    twin = next_state(state, I.FAIL)
    assert twin is failed_twin(state)
    assert twin.value.endswith("-failed")
    assert twin not in TRANSITIONAL


@pytest.mark.parametrize(
    ("state", "twin"),
    [
        (S.VERIFYING, S.VERIFY_FAILED),
        (S.INSPECTING, S.INSPECT_FAILED),
        (S.INSPECT_WAIT, S.INSPECT_FAILED),
        (S.CLEANING, S.CLEAN_FAILED),
        (S.CLEAN_WAIT, S.CLEAN_FAILED),
        (S.DEPLOYING, S.DEPLOY_FAILED),
        (S.DEPLOY_WAIT, S.DEPLOY_FAILED),
        (S.RELEASING, S.RELEASE_FAILED),
    ],
)
def test_failed_twin_mapping(state: State, twin: State):
    assert failed_twin(state) is twin
    assert failed_twin(state.value) is twin


@pytest.mark.parametrize("state", STABLE)
def test_stable_states_have_no_failed_twin(state: State):
    with pytest.raises(IllegalTransition) as info:
        failed_twin(state)
    assert info.value.event == "fail"
    assert info.value.state == state.value


def test_every_failed_state_is_the_twin_of_some_transitional_state():
    twins = {failed_twin(s) for s in TRANSITIONAL}
    assert twins == set(FAILED)


def test_every_state_is_reachable_from_enrolled_except_the_discovery_entry_state():
    # 'discovered' is where auto-discovered nodes start; like 'enrolled' nothing leads into it.
    assert reachable(S.ENROLLED) == set(State) - {S.DISCOVERED}
    assert all(dst is not S.DISCOVERED for dst in TRANSITIONS.values())
    assert all(dst is not S.ENROLLED for dst in TRANSITIONS.values())
    assert reachable(S.DISCOVERED) == set(State) - {S.ENROLLED}


@pytest.mark.parametrize("state", list(State))
def test_active_is_reachable_from_every_state(state: State):
    # no dead ends: from anywhere, some sequence of moves puts the node into service
    assert S.ACTIVE in reachable(state)


@pytest.mark.parametrize("state", sorted(TRANSITIONAL))
def test_done_from_a_transitional_state_settles_in_a_stable_state(state: State):
    here = state
    for _ in range(len(State)):
        if here not in TRANSITIONAL:
            break
        here = next_state(here, I.DONE)
    assert here not in TRANSITIONAL
    assert not here.value.endswith("-failed")


def test_wait_only_enters_wait_states():
    for (src, ev), dst in TRANSITIONS.items():
        if ev is I.WAIT:
            assert src in TRANSITIONAL and src not in WAIT_STATES
            assert dst in WAIT_STATES
        elif dst in WAIT_STATES:
            pytest.fail(f"{src} -{ev}-> {dst}: only 'wait' enters a wait state")


@pytest.mark.parametrize("state", sorted(WAIT_STATES))
def test_every_wait_state_is_entered_and_left(state: State):
    assert any(dst is state for dst in TRANSITIONS.values())
    assert (state, I.DONE) in TRANSITIONS
    assert (state, I.FAIL) in TRANSITIONS


# ----------------------------------------------------------------------------- allowed_actions


@pytest.mark.parametrize(
    ("state", "moves"),
    [
        (S.ENROLLED, ["manage"]),
        (S.DISCOVERED, ["manage"]),
        (S.MANAGEABLE, ["inspect", "manage", "provide"]),
        (S.AVAILABLE, ["deploy", "manage"]),
        (S.ACTIVE, ["rebuild", "undeploy"]),
        (S.VERIFY_FAILED, ["manage"]),
        (S.INSPECT_FAILED, ["inspect", "manage"]),
        (S.CLEAN_FAILED, ["manage", "provide"]),
        (S.DEPLOY_FAILED, ["deploy", "undeploy"]),
        (S.RELEASE_FAILED, ["undeploy"]),
    ],
)
def test_allowed_actions_in_stable_states(state: State, moves: list[str]):
    assert allowed_actions(state) == (*moves, *POWER_VALUES, *FLAG_VALUES)
    assert allowed_actions(state.value) == allowed_actions(state)


@pytest.mark.parametrize("state", sorted(TRANSITIONAL))
def test_allowed_actions_in_transitional_states_are_only_flags(state: State):
    assert allowed_actions(state) == ("maintenance-off", "maintenance-on")


@pytest.mark.parametrize("state", list(State))
def test_allowed_lifecycle_actions_are_exactly_the_legal_ones(state: State):
    allowed = set(allowed_actions(state))
    for act in LIFECYCLE_ACTIONS:
        legal = (state, act) in TRANSITIONS
        assert (act.value in allowed) == legal, (state, act)


# ----------------------------------------------------------------------------- check_action

NO_FLAGS = NodeFlags()


def test_node_flags_default_to_off_and_are_frozen():
    assert NodeFlags(maintenance=False, protected=False, retired=False) == NO_FLAGS
    with pytest.raises(AttributeError):
        NO_FLAGS.maintenance = True  # type: ignore[misc]


def test_check_action_returns_the_next_state_for_lifecycle_actions():
    assert check_action(S.AVAILABLE, A.DEPLOY, NO_FLAGS) is S.DEPLOYING
    assert check_action("active", "undeploy", NO_FLAGS) is S.RELEASING
    assert check_action("manageable", "provide", NO_FLAGS) is S.CLEANING


def test_check_action_raises_illegal_transition_for_a_lifecycle_action_not_in_the_table():
    with pytest.raises(IllegalTransition) as info:
        check_action(S.ENROLLED, A.DEPLOY, NO_FLAGS)
    assert info.value.allowed == allowed_actions(S.ENROLLED)


@pytest.mark.parametrize("action", sorted(POWER_ACTIONS))
@pytest.mark.parametrize("state", STABLE)
def test_power_actions_allowed_in_stable_states_and_change_no_state(state: State, action: Action):
    assert check_action(state, action, NO_FLAGS) is None
    everything = NodeFlags(maintenance=True, protected=True, retired=True)
    assert check_action(state, action, everything) is None


@pytest.mark.parametrize("action", sorted(POWER_ACTIONS))
@pytest.mark.parametrize("state", sorted(TRANSITIONAL))
def test_power_actions_refused_while_the_engine_works_on_the_node(state: State, action: Action):
    with pytest.raises(IllegalTransition) as info:
        check_action(state, action, NO_FLAGS)
    assert info.value.state == state.value
    assert info.value.event == action.value
    assert f"cannot {action.value} a node in state '{state.value}'" in str(info.value)


@pytest.mark.parametrize("action", sorted(FLAG_ACTIONS))
@pytest.mark.parametrize("state", list(State))
def test_flag_actions_always_allowed(state: State, action: Action):
    # maintenance is what an operator sets when an operation hangs, so even mid-deploy
    everything = NodeFlags(maintenance=True, protected=True, retired=True)
    assert check_action(state, action, NO_FLAGS) is None
    assert check_action(state, action, everything) is None


@pytest.mark.parametrize(
    ("state", "action"),
    [(S.ACTIVE, A.UNDEPLOY), (S.ACTIVE, A.REBUILD), (S.DEPLOY_FAILED, A.UNDEPLOY)],
)
def test_protected_node_refuses_destructive_actions(state: State, action: Action):
    with pytest.raises(Conflict) as info:
        check_action(state, action, NodeFlags(protected=True))
    err = info.value
    assert not isinstance(err, IllegalTransition)
    assert "protected" in err.message
    assert f"'{action.value}'" in err.message
    assert err.extra == {"state": state.value, "action": action.value}


def test_protected_node_still_accepts_non_destructive_actions():
    protected = NodeFlags(protected=True)
    assert check_action(S.AVAILABLE, A.DEPLOY, protected) is S.DEPLOYING
    assert check_action(S.MANAGEABLE, A.PROVIDE, protected) is S.CLEANING
    assert check_action(S.MANAGEABLE, A.INSPECT, protected) is S.INSPECTING
    assert check_action(S.ENROLLED, A.MANAGE, protected) is S.VERIFYING


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (S.MANAGEABLE, A.PROVIDE),
        (S.CLEAN_FAILED, A.PROVIDE),
        (S.AVAILABLE, A.DEPLOY),
        (S.DEPLOY_FAILED, A.DEPLOY),
        (S.ACTIVE, A.REBUILD),
    ],
)
@pytest.mark.parametrize(
    ("flag", "reason"), [("maintenance", "node is in maintenance"), ("retired", "node is retired")]
)
def test_maintenance_and_retired_refuse_putting_a_node_into_service(
    state: State, action: Action, flag: str, reason: str
):
    with pytest.raises(Conflict) as info:
        check_action(state, action, NodeFlags(**{flag: True}))
    err = info.value
    assert not isinstance(err, IllegalTransition)
    assert err.message.startswith(reason)
    assert f"'{action.value}'" in err.message
    assert err.extra["state"] == state.value


def test_maintenance_message_says_how_to_clear_it():
    with pytest.raises(Conflict, match=r"maintenance-off first"):
        check_action(S.AVAILABLE, A.DEPLOY, NodeFlags(maintenance=True))


@pytest.mark.parametrize("flag", ["maintenance", "retired"])
def test_maintenance_and_retired_still_allow_taking_a_node_out_of_service(flag: str):
    flags = NodeFlags(**{flag: True})
    assert check_action(S.ACTIVE, A.UNDEPLOY, flags) is S.RELEASING
    assert check_action(S.MANAGEABLE, A.INSPECT, flags) is S.INSPECTING
    assert check_action(S.AVAILABLE, A.MANAGE, flags) is S.VERIFYING


def test_protected_is_checked_before_maintenance():
    with pytest.raises(Conflict, match="protected"):
        check_action(S.ACTIVE, A.REBUILD, NodeFlags(maintenance=True, protected=True))


def test_flag_refusal_comes_before_the_table_check():
    # The flag is the actionable reason even when the move would be illegal anyway.
    with pytest.raises(Conflict) as info:
        check_action(S.ENROLLED, A.DEPLOY, NodeFlags(maintenance=True))
    assert not isinstance(info.value, IllegalTransition)
    assert "maintenance" in info.value.message


def test_check_action_rejects_unknown_action_names():
    with pytest.raises(ValueError):
        check_action(S.AVAILABLE, "explode", NO_FLAGS)
    with pytest.raises(ValueError):
        check_action(S.AVAILABLE, "done", NO_FLAGS)  # engine events are not user actions


# ----------------------------------------------------------------------------- properties


@given(start=states, seq=st.lists(events, max_size=30))
def test_random_event_sequences_raise_illegal_transition_or_land_in_a_state(
    start: State, seq: list[Action | Internal]
):
    here = start
    for ev in seq:
        try:
            after = next_state(here, ev)
        except IllegalTransition as err:
            assert err.state == here.value
            assert err.event == ev.value
            assert err.allowed == allowed_actions(here)
            assert (here, ev) not in TRANSITIONS
            continue
        assert isinstance(after, State)
        assert TRANSITIONS[(here, ev)] is after
        here = after


@given(state=st.sampled_from(STABLE), event=st.sampled_from(list(Internal)))
def test_engine_events_never_move_a_stable_node(state: State, event: Internal):
    with pytest.raises(IllegalTransition):
        next_state(state, event)


@given(state=st.sampled_from(sorted(TRANSITIONAL)), action=actions)
def test_user_actions_never_move_a_transitional_node(state: State, action: Action):
    with pytest.raises(IllegalTransition):
        next_state(state, action)


@given(state=states, action=st.sampled_from(sorted(LIFECYCLE_ACTIONS)))
def test_allowed_actions_predicts_next_state(state: State, action: Action):
    if action.value in allowed_actions(state):
        assert isinstance(next_state(state, action), State)
    else:
        with pytest.raises(IllegalTransition):
            next_state(state, action)


@given(state=states, event=events)
def test_illegal_transition_message_names_state_and_allowed_actions(
    state: State, event: Action | Internal
):
    if (state, event) in TRANSITIONS:
        return
    with pytest.raises(IllegalTransition) as info:
        next_state(state, event)
    msg = str(info.value)
    assert f"'{state.value}'" in msg
    assert event.value in msg
    allowed = allowed_actions(state)
    assert msg.endswith("allowed here: " + ", ".join(allowed))
    for name in allowed:
        assert name in msg


@given(state=states, action=actions, flags=node_flags)
def test_check_action_agrees_with_next_state(state: State, action: Action, flags: NodeFlags):
    try:
        result = check_action(state, action, flags)
    except IllegalTransition as err:
        assert err.state == state.value
        if action in LIFECYCLE_ACTIONS:
            assert (state, action) not in TRANSITIONS
        else:
            assert action in POWER_ACTIONS and state in TRANSITIONAL
        return
    except Conflict as err:
        refused_by_flag = (flags.protected and action in PROTECTED_REFUSES) or (
            (flags.maintenance or flags.retired) and action in INTO_SERVICE
        )
        assert refused_by_flag, err.message
        return
    if action in LIFECYCLE_ACTIONS:
        assert result is next_state(state, action)
    else:
        assert result is None


@given(state=states, action=st.sampled_from(sorted(LIFECYCLE_ACTIONS)))
def test_check_action_without_flags_is_next_state(state: State, action: Action):
    try:
        expected = next_state(state, action)
    except IllegalTransition:
        with pytest.raises(IllegalTransition):
            check_action(state, action, NO_FLAGS)
    else:
        assert check_action(state, action, NO_FLAGS) is expected
