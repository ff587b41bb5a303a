"""A real daemon killed with SIGKILL in the middle of an operation, then restarted: the node ends
in a defined state and nothing is duplicated. Runs `provisiond serve` as a subprocess."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import rack_yaml
from tests.support import fakebmc
from tests.support.daemon import Daemon, wait_for


def op_end(d: Daemon, op_id: str) -> dict[str, Any]:
    """The operation once it has ended (bounded wait)."""

    def ended() -> dict[str, Any] | None:
        op = d.call("GET", f"/v1/operations/{op_id}")[1]
        return op if op["state"] in ("succeeded", "failed") else None

    result: dict[str, Any] = wait_for(ended, 20, f"operation {op_id} to end after restart")
    return result


def history(d: Daemon, node: str) -> list[dict[str, Any]]:
    status, data = d.call("GET", f"/v1/nodes/{node}/events")
    assert status == 200
    return list(data["items"])


def test_kill9_mid_operation_then_restart_resumes(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url)
    d.start()
    d.make_token()
    status, _ = d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=2).encode(), "application/yaml")
    assert status == 201
    fakebmc.set_behaviour("127.0.0.1:7001", delay=2.0)
    status, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    assert status == 202
    # the step has started talking to the BMC: kill the daemon in the middle of it
    wait_for(lambda: any(" validate" in c for c in fakebmc.calls()), 15, "the BMC call")
    d.kill9()
    fakebmc.set_behaviour("127.0.0.1:7001")  # the BMC answers promptly after the crash
    d.start()
    final = op_end(d, op["id"])
    assert final["state"] == "succeeded", final
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "manageable"
    _, ops = d.call("GET", "/v1/operations", None)
    assert [o["id"] for o in ops["items"]] == [op["id"]]  # nothing duplicated
    events = history(d, "r01n01")
    moves = [e["message"] for e in events if e["kind"] == "state"]
    assert moves == ["enrolled -> verifying (manage)", "verifying -> manageable (done)"]
    assert [e["kind"] for e in events].count("recovery") == 1
    assert sum(1 for e in events if e["message"] == "manage succeeded") == 1


def test_kill9_then_restart_after_deadline_fails_cleanly(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url, deadlines={"verifying": 3})
    d.start()
    d.make_token()
    d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=1).encode(), "application/yaml")
    fakebmc.set_behaviour("127.0.0.1:7001", delay=30)
    _, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    wait_for(lambda: any(" validate" in c for c in fakebmc.calls()), 15, "the BMC call")
    d.kill9()
    time.sleep(3.2)  # the verifying deadline passes while no daemon runs
    d.start()
    final = op_end(d, op["id"])
    assert final["state"] == "failed"
    assert "deadline passed in state verifying" in final["error"]
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "verify-failed"
    assert "deadline" in node["last_error"]
    # the node takes new work at once: nothing is left locked
    fakebmc.set_behaviour("127.0.0.1:7001")
    status, op2 = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    assert status == 202, op2


def test_kill9_while_parked_in_wait_state_keeps_waiting(daemon_factory: Any, db_url: str) -> None:
    d = daemon_factory(db_url)
    d.start()
    d.make_token()
    d.call("POST", "/v1/racks/r01/enroll", rack_yaml(n=1).encode(), "application/yaml")
    _, op = d.call("POST", "/v1/nodes/r01n01/actions/manage", b"{}")
    wait_for(
        lambda: d.call("GET", f"/v1/operations/{op['id']}")[1]["state"] == "succeeded", 20, "manage"
    )
    status, op = d.call("POST", "/v1/nodes/r01n01/actions/inspect", b"{}")
    assert status == 202, op
    wait_for(
        lambda: d.call("GET", "/v1/nodes/r01n01")[1]["state"] == "inspect-wait", 20, "inspect-wait"
    )
    d.kill9()
    d.start()
    time.sleep(1.0)
    _, node = d.call("GET", "/v1/nodes/r01n01")
    assert node["state"] == "inspect-wait"
    _, again = d.call("GET", f"/v1/operations/{op['id']}")
    assert again["state"] == "running"
    # the BMC saw exactly one PXE boot: the restart did not power the node again
    boots = [c for c in fakebmc.calls() if "set_boot_device" in c]
    assert len(boots) == 1
