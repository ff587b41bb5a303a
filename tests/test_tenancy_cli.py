"""`provisiond tenant ...` and `provisiond alloc ...` as an operator runs them: a real daemon
subprocess with fake BMCs, a switch record (tenant VLANs) and an OpenSM fabric whose reload is
a script (tests/test_partitions.py FakeSm), the CLI as a subprocess. The test plays the images'
boot call-back (the script's one-time token, POSTed back) so deploys complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from drivers.fabric import partitions_conf as pc
from tests.conftest import free_port, rack_yaml
from tests.support.daemon import Daemon, wait_for
from tests.test_cli import cli
from tests.test_partitions import FakeSm


@pytest.fixture
def daemon(daemon_factory: Any, tmp_path: Path) -> Daemon:
    d: Daemon = daemon_factory(f"sqlite:///{tmp_path / 'data' / 'provisiond.db'}")
    sm = FakeSm(tmp_path)
    d.config.write_text(
        d.config.read_text()
        + f'[fabrics]\ninterval = 0.3\nopensm_dirs = ["{sm.dir}"]\n'
        + f'reload_commands = [["{sm.script}"]]\n'
    )
    d.start()
    d.make_token()
    return d


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def add_networks(daemon: Daemon, sm: FakeSm) -> None:
    """A switch (never reached: no node is cabled to it) and an OpenSM fabric."""
    ok(cli(daemon, "switch", "add", "leaf1", "--driver", "cumulus_nvue", "--address",
           "127.0.0.1", "--port", str(free_port()), "--allowed-vlans", "100-199",
           "--provisioning-vlan", "100", "--quarantine-vlan", "199"))  # fmt: skip
    ok(cli(daemon, "fabric", "add", "ib0", "--driver", "opensm",
           "--set", f"partitions_file={sm.file}", "--set", f'reload_command=["{sm.script}"]',
           "--set", f"log_file={sm.log}", "--pkey-range", "0x0100-0x01ff"))  # fmt: skip


def test_tenant_create_list_show_delete(daemon: Daemon, tmp_path: Path) -> None:
    add_networks(daemon, FakeSm(tmp_path))
    made = cli(daemon, "tenant", "create", "acme")
    assert ok(made).strip() == "tenant acme created: VLAN 101, P_Keys ib0 0x0100"
    again = cli(daemon, "tenant", "create", "acme")
    assert ok(again).startswith("tenant acme already exists: VLAN 101"), again.stdout
    globex = json.loads(ok(cli(daemon, "tenant", "create", "globex", "--vlan", "150", "--json")))
    assert globex["vlan"] == 150 and globex["pkeys"][0]["pkey"] == "0x0101", globex
    taken = cli(daemon, "tenant", "create", "initech", "--vlan", "150")
    assert taken.returncode == 1 and "error (422)" in taken.stderr, taken
    assert "vlan: held by a tenant or a port (got 150)" in taken.stderr, taken.stderr
    bad = cli(daemon, "tenant", "create", "Not A Name")
    assert bad.returncode == 1 and "name: 1-64 of a-z" in bad.stderr, bad.stderr

    rows = ok(cli(daemon, "tenant", "list")).splitlines()
    assert rows[0].split() == ["TENANT", "STATE", "VLAN", "P_KEYS", "NODES"], rows
    assert rows[1].split() == ["acme", "active", "101", "ib0", "0x0100", "0"], rows
    assert rows[2].split() == ["globex", "active", "150", "ib0", "0x0101", "0"], rows
    assert len(rows) == 3, rows
    shown = ok(cli(daemon, "tenant", "show", "globex"))
    assert re.search(r"^VLAN +150$", shown, re.M) and "ib0 0x0101" in shown, shown
    missing = cli(daemon, "tenant", "show", "nobody")
    assert missing.returncode == 1 and "error (404): no tenant 'nobody'" in missing.stderr

    gone = cli(daemon, "tenant", "delete", "globex", "--wait", "--timeout", "60")
    assert "tenant globex deleted; VLAN 150 free" in ok(gone), gone.stdout
    assert "globex" not in ok(cli(daemon, "tenant", "list"))
    assert cli(daemon, "tenant", "show", "globex").returncode == 1
    assert cli(daemon, "tenant", "delete", "globex").returncode == 1  # already gone: 404


def _boot_images(daemon: Daemon, macs: list[str]) -> None:
    """What a deployed image does once up: fetch its iPXE script (holding a one-time token) and
    call back with the token."""
    for mac in macs:
        with urllib.request.urlopen(f"{daemon.url}/boot/ipxe?mac={mac}", timeout=10) as r:
            script = r.read().decode()
        m = re.search(r"provisiond\.token=(\S+)", script)
        assert m and "provisiond.mode=deploy" in script, script
        status, out = daemon.call(
            "POST", "/v1/agent/deployed", json.dumps({"token": m.group(1)}).encode()
        )
        assert status == 200, out


def _node_states(daemon: Daemon, names: list[str]) -> set[str]:
    return {daemon.call("GET", f"/v1/nodes/{n}")[1]["state"] for n in names}


def test_allocate_wait_list_show_release(daemon: Daemon, tmp_path: Path) -> None:
    sm = FakeSm(tmp_path)
    add_networks(daemon, sm)
    (tmp_path / "r.yaml").write_text(rack_yaml(n=3))
    ok(cli(daemon, "rack", "enroll", str(tmp_path / "r.yaml")))
    names = ["r01n01", "r01n02", "r01n03"]
    ok(cli(daemon, "node", "manage", *names, "--wait", "--timeout", "60"))
    ok(cli(daemon, "node", "provide", *names, "--wait", "--timeout", "60"))
    ok(cli(daemon, "image", "add", "lab", "--kernel", "http://127.0.0.1:9/vmlinuz"))
    for tenant in ("acme", "globex"):
        ok(cli(daemon, "tenant", "create", tenant))

    # refused requests: a clear error on stderr, exit 1, nothing reserved
    many = cli(daemon, "alloc", "create", "acme", "--count", "5", "--image", "lab")
    assert many.returncode == 1 and many.stdout == "", many
    assert "error (409): only 3 available node(s) match, 5 asked for" in many.stderr, many.stderr
    image = cli(daemon, "alloc", "create", "acme", "--count", "1", "--image", "nope")
    assert image.returncode == 1 and "error (422): allocation refused" in image.stderr
    assert "image: no such image (got 'nope')" in image.stderr, image.stderr
    who = cli(daemon, "alloc", "create", "nobody", "--count", "1", "--image", "lab")
    assert who.returncode == 1 and "error (404): no tenant 'nobody'" in who.stderr
    rack = cli(daemon, "alloc", "create", "acme", "--count", "1", "--image", "lab",
               "--rack", "r09")  # fmt: skip
    assert rack.returncode == 1 and "only 0 available node(s) match" in rack.stderr
    ib = cli(daemon, "alloc", "create", "acme", "--count", "1", "--image", "lab",
             "--no-infiniband")  # fmt: skip
    assert ib.returncode == 1 and "only 0 available node(s) match" in ib.stderr
    assert ok(cli(daemon, "alloc", "list")).splitlines()[1:] == []

    # acme: two nodes, waited for while the test plays their images booting
    waiting = subprocess.Popen(
        [sys.executable, "-m", "provisiond.cli", "alloc", "create", "acme", "--count", "2",
         "--image", "lab", "--rack", "r01", "--infiniband", "--no-spread", "--firmware",
         "compliant", "--wait",
         "--timeout", "90"],
        env=daemon.env | {"PROVISIOND_URL": daemon.url, "PROVISIOND_TOKEN": daemon.token},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        acme_nodes = ["r01n01", "r01n02"]
        wait_for(lambda: _node_states(daemon, acme_nodes) == {"deploy-wait"}, 60, "deploy-wait")
        _boot_images(daemon, ["52:54:00:01:00:01", "52:54:00:01:00:02"])
        out, err = waiting.communicate(timeout=90)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0, out + err
    first, *progress, last = out.splitlines()
    acme_id = first.split()[1]
    assert first == f"allocation {acme_id} for acme: 2 node(s) r01n[01-02], image lab", out
    assert progress[0] == "waiting until every node is active:", out
    assert re.fullmatch(r" +0\.\ds  deploy(ing|-wait) r01n\[01-02\]", progress[1]), out
    assert re.fullmatch(r" +\d+\.\ds  active r01n\[01-02\]", progress[-1]), out
    assert last == f"allocation {acme_id}: every node active", out

    # globex: the last node, not waited for
    g = json.loads(ok(cli(daemon, "alloc", "create", "globex", "--count", "1", "--image",
                          "lab", "--json")))  # fmt: skip
    assert g["tenant"] == "globex" and [n["name"] for n in g["nodes"]] == ["r01n03"], g
    assert set(g["operations"]) == {"r01n03"} and g["errors"] == {}, g
    none_left = cli(daemon, "alloc", "create", "globex", "--count", "1", "--image", "lab")
    assert none_left.returncode == 1 and "only 0 available" in none_left.stderr

    rows = ok(cli(daemon, "alloc", "list")).splitlines()
    assert rows[0].split()[:5] == ["ALLOCATION", "TENANT", "STATE", "IMAGE", "NODES"], rows
    assert rows[1].split()[:7] == [acme_id, "acme", "active", "lab", "2/2", "active",
                                   "r01n[01-02]"], rows  # fmt: skip
    assert rows[2].split()[:4] == [g["id"], "globex", "active", "lab"], rows
    assert len(rows) == 3
    only = ok(cli(daemon, "alloc", "list", "--tenant", "globex")).splitlines()
    assert len(only) == 2 and only[1].startswith(g["id"]), only
    shown = ok(cli(daemon, "alloc", "show", acme_id))
    assert re.search(r"^tenant +acme$", shown, re.M), shown
    constraints = re.search(r"^constraints +(.*)$", shown, re.M)
    assert constraints, shown
    assert {"infiniband=true", "racks=r01", "spread=false", "firmware=compliant"} <= set(
        constraints.group(1).split(", ")
    ), shown
    assert re.search(r"^r01n02 +active$", shown, re.M), shown
    # the follower put the active nodes' GUIDs in acme's partition; the reconciler wrote it
    wait_for(lambda: sm.file.exists() and "0x0002c90300000101" in sm.file.read_text(), 30,
             "acme's GUIDs in partitions.conf")  # fmt: skip
    tenant = ok(cli(daemon, "tenant", "show", "acme"))
    assert re.search(r"^r01n01 +r01 +active", tenant, re.M), tenant
    held = cli(daemon, "tenant", "delete", "acme")
    assert held.returncode == 1 and "still holds nodes (r01n01, r01n02)" in held.stderr
    unknown = cli(daemon, "alloc", "show", "no-such-id")
    assert unknown.returncode == 1 and "error (404): no allocation 'no-such-id'" in unknown.stderr

    # release one node, then the rest, waiting each time
    one = cli(daemon, "alloc", "release", acme_id, "--node", "r01n01", "--wait",
              "--timeout", "60")  # fmt: skip
    assert ok(one).splitlines()[-1] == f"allocation {acme_id}: r01n01 released", one.stdout
    assert [n["name"] for n in daemon.call("GET", f"/v1/allocations/{acme_id}")[1]["nodes"]] == [
        "r01n02"
    ]
    assert _node_states(daemon, ["r01n01"]) == {"available"}
    rest = cli(daemon, "alloc", "release", acme_id, "--wait", "--timeout", "60")
    lines = ok(rest).splitlines()
    assert lines[0] == f"allocation {acme_id} (acme): releasing r01n02", lines
    assert lines[-1] == f"allocation {acme_id}: released", lines
    shown = ok(cli(daemon, "alloc", "show", acme_id))
    assert re.search(r"^state +released$", shown, re.M) and "r01n02" not in shown, shown
    assert acme_id not in ok(cli(daemon, "alloc", "list"))
    assert acme_id in ok(cli(daemon, "alloc", "list", "--all"))
    parts = pc.parse(sm.file.read_text()).partitions
    assert all(not p.members for p in parts if p.name == "tenant_acme"), parts
    # empty now: deleting is accepted, and done once its VLAN and key are free (its released
    # allocations go with it)
    deleting = ok(cli(daemon, "tenant", "delete", "acme", "--wait", "--timeout", "60"))
    assert deleting.splitlines()[-1] == "tenant acme deleted; VLAN 101 free", deleting
    assert cli(daemon, "tenant", "show", "acme").returncode == 1

    # globex's node is still deploying: its undeploy cannot start yet; the CLI says so, and the
    # daemon undeploys it once the deploy ends
    early = cli(daemon, "alloc", "release", g["id"])
    assert early.returncode == 0, early
    assert "r01n03: undeploy not started yet: node r01n03 is busy with operation" in early.stderr
    assert "the daemon undeploys those once their operation ends" in early.stderr, early.stderr
    _boot_images(daemon, ["52:54:00:01:00:03"])
    later = cli(daemon, "alloc", "release", g["id"], "--wait", "--timeout", "60", "--json")
    assert later.returncode == 0, later.stdout + later.stderr
    assert json.loads(later.stdout)["state"] == "released", later.stdout
    assert _node_states(daemon, names) == {"available"}
    kinds = [op["kind"] for op in daemon.call("GET", "/v1/operations?node=r01n03")[1]["items"]]
    assert kinds == ["undeploy", "deploy", "provide", "manage"], kinds  # newest first
