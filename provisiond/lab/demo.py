"""`make demo`: the whole story, told against a real daemon on SQLite and lab devices.

Starts `provisiond lab bmc` (eight virtual IPMI BMCs on 127.0.0.1:6230-6237, the ports
examples/rack-r01.yaml names, the last one with a changed password, and the lab hosts behind
them, which boot over HTTP and call back), two lab switches (Cumulus NVUE leaf1 on TCP 2201,
the rack file's; Arista EOS leaf2 on 2202), a lab UFM (2203), the lab Redfish service (8000)
and `provisiond serve` as child processes on a fresh data directory, then drives the daemon
through the CLI, as an operator would: enroll two racks, verify, inspect, firmware check,
switches and InfiniBand partitions, two tenants with a node each, the isolation audit, release.
Stops them all (by their pids) on exit, Ctrl-C included; without --oneshot the daemon keeps
running until then.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CATALOG = ROOT / "firmware_db" / "catalogs" / "example.yaml"

BROKEN_RACK = """\
rack: r01
nodes:
  - name: r01n09
    unit: 43
    bmc: {driver: ipmi, address: 127.0.0.1, port: 6238, username: admin}
    nics:
      - {mac: "52:54:00:00:01:0g", kind: ethernet, pxe: true}
  - name: r01n10
    unit: "ten"
    bmc: {driver: ipmi, address: 127.0.0.1, port: 6239, username: admin, password: secret}
    nics:
      - {mac: "52:54:00:00:01:01", kind: ethernet}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _busy_ports() -> list[str]:
    """The lab's fixed ports (the example files name them) that something already holds."""
    wanted = [(socket.SOCK_DGRAM, p, "udp") for p in range(LAB_BASE_PORT, LAB_BASE_PORT + 8)]
    wanted += [(socket.SOCK_STREAM, p, "tcp") for p in (LEAF1_PORT, LEAF2_PORT, UFM_PORT,
                                                         REDFISH_PORT)]  # fmt: skip
    busy = []
    for kind, port, proto in wanted:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{proto}/{port}")
    return busy


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def _run(
    env: dict[str, str], *args: str, show: bool = True, check: bool = True, timeout: float = 120
) -> str:
    if show:
        print(f"$ provisiond {' '.join(args)}", flush=True)
    res = subprocess.run(
        [sys.executable, "-m", "provisiond.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = res.stdout + res.stderr
    if show and out:
        print(out.rstrip(), flush=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"provisiond {' '.join(args)} exited {res.returncode}")
    return res.stdout


LAB_BASE_PORT = 6230
LAB_COUNT = 8


def _start_lab(data_dir: Path, boot_url: str) -> subprocess.Popen[str]:
    """The lab BMCs of rack r01 and the hosts behind them (lab nodes that PXE-boot over HTTP
    from the daemon); r01n08's BMC had its password changed behind our back."""
    cmd = [
        sys.executable, "-m", "provisiond.cli", "lab", "bmc",
        "--count", str(LAB_COUNT), "--base-port", str(LAB_BASE_PORT),
        "--control", str(data_dir / "lab-faults.json"),
        "--fault", f"{LAB_BASE_PORT + 7}=wrong-password",
        "--rack", str(EXAMPLES / "rack-r01.yaml"), "--boot-url", boot_url,
    ]  # fmt: skip
    print("$ provisiond lab bmc " + " ".join(cmd[5:]), flush=True)
    with open(data_dir / "lab.log", "wb") as lab_log:
        lab = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=lab_log, text=True)
    assert lab.stdout is not None
    line = lab.stdout.readline()  # "... ready", or EOF when it could not bind
    if "ready" not in line:
        lab.wait(timeout=5)
        raise RuntimeError(
            f"lab BMCs did not start: {(data_dir / 'lab.log').read_text().strip() or line}"
        )
    print(line.rstrip(), flush=True)
    return lab


LEAF1_PORT, LEAF2_PORT = 2201, 2202  # leaf1: examples/rack-r01.yaml; leaf2: added by the demo
LEAF2_PASSWORD = "demo-eos"
UFM_PORT, UFM_TOKEN = 2203, "demo-ufm-token"  # the lab UFM (InfiniBand partitions)


def _start_server(data_dir: Path, what: str, *args: str) -> subprocess.Popen[str]:
    """``provisiond lab WHAT ARGS`` in its own session, once it printed its ready line."""
    cmd = [sys.executable, "-m", "provisiond.cli", "lab", what, *args]
    print(f"$ provisiond lab {what} " + " ".join(args), flush=True)
    log_path = data_dir / f"{what}-{'-'.join(a for a in args if a.isdigit())}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        _stop(proc)
        raise RuntimeError(f"lab {what} did not start: {log_path.read_text().strip() or line}")
    print(line.rstrip(), flush=True)
    return proc


def _start_switch(data_dir: Path, dialect: str, port: int, *extra: str) -> subprocess.Popen[str]:
    return _start_server(data_dir, "switch", "--dialect", dialect, "--port", str(port), *extra)


def _leaf1_lldp(data_dir: Path) -> Path:
    """What leaf1 hears: rack r01's hosts on the ports the rack file says (lldpd's defaults:
    the NIC's MAC as chassis and port id), except r01n06, whose cable went to swp12, and a host
    nobody enrolled on swp20."""
    import yaml

    rack = yaml.safe_load((EXAMPLES / "rack-r01.yaml").read_text())
    heard: dict[str, Any] = {}
    for node in rack["nodes"]:
        for nic in node["nics"]:
            if nic.get("switch") == "leaf1":
                port = "swp12" if node["name"] == "r01n06" else nic["port"]
                heard[port] = {"chassis_id": nic["mac"], "port_id": nic["mac"],
                               "system_name": node["name"]}  # fmt: skip
    heard["swp20"] = {"chassis_id": "52:54:00:99:00:01", "port_id": "52:54:00:99:00:01",
                      "system_name": "someone-elses-box"}  # fmt: skip
    path = data_dir / "leaf1-lldp.json"
    path.write_text(json.dumps({"*": heard}, indent=2))
    return path


def _hand_change(port: int, password: str, commands: list[str]) -> None:
    """Someone on the switch's CLI, outside provisiond (netmiko, as a person's SSH would)."""
    from netmiko import ConnectHandler

    conn = ConnectHandler(device_type="arista_eos", host="127.0.0.1", port=port,
                          username="admin", password=password, secret=password)  # fmt: skip
    try:
        conn.enable()
        print("\n".join(f"leaf2(config)# {c}" for c in commands), flush=True)
        conn.send_config_set(commands)
    finally:
        conn.disconnect()


def _wait_in_sync(env: dict[str, str], switch: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        shown = json.loads(_run(env, "switch", "show", switch, "--json", show=False))
        if shown["bindings"] and all(b["in_sync"] for b in shown["bindings"]):
            return
        time.sleep(0.5)
    print(f"({switch}: not all ports in sync after {timeout:.0f} s)")


def _wait_networks(
    env: dict[str, str], ports: dict[str, int], members: dict[str, set[str]], timeout: float = 90
) -> float:
    """Wait until leaf1 reads back each port of ``ports`` as an access port of its VLAN and ufm0
    each partition of ``members`` with exactly those GUIDs, nothing pending (the follower sets
    the desired state as the nodes' states change, the reconcilers apply and read back);
    return the seconds it took."""
    started = time.monotonic()
    while True:
        sw = json.loads(_run(env, "switch", "show", "leaf1", "--json", show=False))
        seen = {b["port"]: b for b in sw["bindings"]}
        ports_ok = all(
            port in seen
            and seen[port]["in_sync"]
            and (seen[port]["observed"] or {}).get("vlan") == vlan
            and (seen[port]["desired"] or {}).get("vlan") == vlan
            for port, vlan in ports.items()
        )
        fab = json.loads(_run(env, "fabric", "show", "ufm0", "--json", show=False))
        observed = {p["name"]: set(p["members"]) for p in fab["view"]["observed"] or []}
        desired = {p["name"]: set(p["members"]) for p in fab["view"]["desired"]}
        keys_ok = not fab["pending"] and all(
            observed.get(name) == guids and desired.get(name) == guids
            for name, guids in members.items()
        )
        if ports_ok and keys_ok:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the tenant networks did not settle within {timeout:.0f} s")
        time.sleep(0.3)


def _alloc_id(out: str) -> str:
    """The id in `alloc create`'s first line: "allocation ID for TENANT: ..."."""
    first = out.splitlines()[0].split()
    if len(first) < 2 or first[0] != "allocation":
        raise RuntimeError(f"unexpected answer from alloc create: {out[:200]!r}")
    return first[1]


REDFISH_PORT = 8000  # examples/rack-r02.csv


def _start_redfish(data_dir: Path) -> subprocess.Popen[bytes] | None:
    """The Redfish service of rack r02 (sushy-tools emulator), or None when it is not installed."""
    cmd = [sys.executable, "-m", "provisiond.cli", "lab", "redfish", "--port", str(REDFISH_PORT),
           "--state", str(data_dir / "redfish")]  # fmt: skip
    print("$ provisiond lab redfish " + " ".join(cmd[5:]), flush=True)
    with open(data_dir / "redfish.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 20
    while time.monotonic() < end and proc.poll() is None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{REDFISH_PORT}/redfish/v1/", timeout=1),
        ):
            print(f"lab redfish: 4 systems at http://127.0.0.1:{REDFISH_PORT}/redfish/v1")
            return proc
        time.sleep(0.2)
    _stop(proc)
    print(f"(no lab Redfish service: {(data_dir / 'redfish.log').read_text()[-400:].strip()})")
    return None


def _api(url: str, token: str, path: str, body: Any = None) -> Any:
    """One API call (POST when there is a body), its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _fabric_applied(url: str, token: str, fabric: str, after: int, timeout: float = 30) -> int:
    """Wait until the reconciler has applied everything pending on ``fabric``, print the
    ``fabric.applied`` events newer than id ``after`` (their diffs), return the newest id."""

    def get(path: str) -> Any:
        return _api(url, token, path)

    deadline = time.monotonic() + timeout
    while get(f"/v1/fabrics/{fabric}")["pending"] and time.monotonic() < deadline:
        time.sleep(0.2)
    newest = after
    for ev in get(f"/v1/events?kind=fabric.applied&after={after}&limit=100")["items"]:
        if ev["id"] > after and ev["data"].get("fabric") == fabric:
            newest = max(newest, ev["id"])
            print(f"event fabric.applied: {ev['message']}")
            for line in ev["data"].get("diff", []):
                print(f"  {line}")
    return newest


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/healthz", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("daemon did not answer /healthz within 60 s")


def _lab_assets(data_dir: Path) -> None:
    """Stand-ins for the inspection ramdisk and an image: lab nodes download them (and check
    their sha256) but do not execute them. Real ones: docs/pxe.md#assets."""
    for rel in ("inspect/vmlinuz", "inspect/initrd.img", "images/lab/vmlinuz",
                "images/lab/initrd.img"):  # fmt: skip
        path = data_dir / "assets" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"provisiond lab stand-in for {rel}\n".encode())


def run_demo(*, oneshot: bool, data_dir: Path, port: int = 0) -> int:
    data_dir = data_dir.resolve()
    marker = data_dir / ".provisiond-demo"
    if data_dir.exists() and any(data_dir.iterdir()) and not marker.exists():
        print(
            f"demo: {data_dir} is not empty and is not a demo directory; refusing to wipe it",
            file=sys.stderr,
        )
        return 2
    busy = _busy_ports()
    if busy:
        # another demo (or anything else) holds them: say so before wiping anything
        print(f"demo: port(s) {', '.join(busy)} on 127.0.0.1 in use (another demo running?); "
              "the lab needs them", file=sys.stderr)  # fmt: skip
        return 1
    if data_dir.exists() and any(data_dir.iterdir()):
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `provisiond lab demo`; wiped by the next demo run\n")
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")} | {
        "PROVISIOND_DATA_DIR": str(data_dir),
        "PROVISIOND_URL": url,
    }
    # an empty config of its own, so a provisiond.toml in the working directory is not read
    (data_dir / "provisiond.toml").write_text("# demo: defaults only\n")
    env["PROVISIOND_CONFIG"] = str(data_dir / "provisiond.toml")
    # the lab answers at once: no need for the production pause between two commands to a BMC
    env["PROVISIOND_DRIVERS__IPMI__MIN_INTERVAL"] = "0.2"
    log = data_dir / "daemon.log"
    _lab_assets(data_dir)
    _say("Lab BMCs: virtual IPMI BMCs on loopback (ipmitool can talk to them too)")
    lab: subprocess.Popen[str] | None = None
    redfish: subprocess.Popen[bytes] | None = None
    proc: subprocess.Popen[bytes] | None = None
    switches: list[subprocess.Popen[str]] = []
    try:
        lab = _start_lab(data_dir, url)
        _say("Lab switches: SSH servers with the vendors' CLIs (netmiko drives them too)")
        switches.append(
            _start_switch(
                data_dir, "cumulus_nvue", LEAF1_PORT, "--lldp", str(_leaf1_lldp(data_dir))
            )
        )
        switches.append(
            _start_switch(data_dir, "arista_eos", LEAF2_PORT, "--password", LEAF2_PASSWORD)
        )
        _say("A lab NVIDIA UFM: the P_Key REST API of an InfiniBand fabric, in memory")
        switches.append(
            _start_server(data_dir, "ufm", "--port", str(UFM_PORT), "--token", UFM_TOKEN)
        )
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        for sw in switches:
            _stop(sw)
        _stop(lab)
        return 1
    redfish = _start_redfish(data_dir)
    _say(f"Starting provisiond on {url} (SQLite in {data_dir})")
    try:
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "provisiond.cli", "serve", "--listen", f"127.0.0.1:{port}"],
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        _stop(lab)
        _stop(redfish)
        for sw in switches:
            _stop(sw)
        raise
    try:
        _wait_healthy(url, proc, log)
        print(f"daemon pid {proc.pid} is serving; log: {log}")
        with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
            print("readyz:", json.loads(r.read())["checks"])

        _say("An admin token (stored hashed; printed once)")
        token = _run(
            env, "token", "create", "--role", "admin", "--name", "demo-admin", show=False
        ).strip()
        print(f"$ provisiond token create --role admin --name demo-admin\n{token[:10]}...")
        env["PROVISIOND_TOKEN"] = token

        rack_file = EXAMPLES / "rack-r01.yaml"
        _say(f"Enroll rack r01 from {rack_file.relative_to(EXAMPLES.parent)}")
        _run(env, "rack", "enroll", str(rack_file))

        _say("Enroll the same file again: nothing changes, and provisiond says so")
        _run(env, "rack", "enroll", str(rack_file))

        _say("A rack file with mistakes: every error with its line, nothing written")
        broken = data_dir / "broken-rack.yaml"
        broken.write_text(BROKEN_RACK)
        print(BROKEN_RACK.rstrip())
        _run(env, "rack", "enroll", str(broken), check=False)

        _say("A second rack, from CSV (one row per NIC)")
        _run(env, "rack", "enroll", str(EXAMPLES / "rack-r02.csv"))

        _say("The inventory")
        _run(env, "rack", "list")
        _run(env, "node", "list")

        _say("One node in detail (BMC passwords are write-only)")
        _run(env, "node", "show", "r01n01")

        _say("Manage rack r01: verify each BMC (reachable, credentials, identity, power)")
        names = [f"r01n{i:02d}" for i in range(1, 9)]
        _run(env, "node", "manage", *names, "--wait", check=False)
        print("(r01n08's BMC refuses the password we have: verify-failed, not retried)")
        _run(env, "node", "list", "--rack", "r01")

        _say("What the BMC told us: identity, firmware and FRU, stored as facts")
        _run(env, "node", "show", "r01n01")

        _say("Power on through IPMI, waiting until the BMC reports it")
        _run(env, "node", "power-on", "r01n02", "--wait")
        _run(env, "node", "list", "--rack", "r01")

        if redfish is not None:
            _say("Manage rack r02: Redfish systems behind one service, picked by system id")
            _run(env, "node", "manage", "r02n01", "r02n02", "r02n03", "r02n04", "--wait")
            print("(the emulator applies power changes 0-11 s after accepting them; we wait)")
            _run(env, "node", "power-on", "r02n01", "--wait")
            _run(env, "node", "list", "--rack", "r02")

        _say("Inspect: PXE via IPMI, the lab nodes fetch their iPXE script and run the agent")
        print("(lab nodes: `provisiond lab bmc --rack ... --boot-url ...`; DHCP/TFTP stay off in")
        print(" the demo, [pxe] mode = off: the scripts, assets and call-backs are real HTTP)")
        _run(env, "node", "inspect", "r01n01", "r01n02", "r01n04", "--wait", "--timeout", "300")
        _run(env, "node", "events", "r01n01", "--limit", "12")
        _say("What the agent found: hardware, firmware, NICs and their switch ports (LLDP)")
        shown = json.loads(_run(env, "node", "show", "r01n01", "--json", show=False))
        found = shown["facts"].get("inspection", {})
        print(json.dumps({k: found.get(k) for k in ("system", "cpu", "memory", "firmware",
                                                    "lldp")}, indent=2))  # fmt: skip

        _say("Firmware: a catalog of known versions, then every node of r01 judged against it")
        _run(env, "catalog", "import", str(CATALOG))
        _run(env, "firmware", "check", "--rack", "r01", check=False)
        _run(env, "firmware", "check", "r01n01", check=False)
        print("(r01n01, r01n02 and r01n04 were inspected: the example catalog knows Dell, HPE")
        print(" and Supermicro X13DEI parts, not the lab's boards, so their readings are unknown")
        print(" components: warn, not blocked, and they may be provided. The others reported no")
        print(" firmware yet. A blocked node is provided only if an admin overrides (with a")
        print(" reason))")

        _say("Deploy an image by hand: stateless netboot, the image calls back when it is up")
        _run(env, "image", "add", "lab-image", "--kernel", "images/lab/vmlinuz",
             "--initrd", "images/lab/initrd.img", "--cmdline", "ro console=ttyS0")  # fmt: skip
        _run(env, "node", "provide", "r01n04", "--wait")
        _run(env, "node", "deploy", "r01n04", "--image", "lab-image", "--wait", "--timeout", "300")
        _run(env, "node", "list", "--rack", "r01")

        _say("Switches: leaf1 came with rack r01's file; leaf2 is added for rack r02")
        env2 = env | {"PROVISIOND_SWITCH_PASSWORD": LEAF2_PASSWORD}
        _run(env2, "switch", "add", "leaf2", "--driver", "arista_eos", "--address", "127.0.0.1",
             "--port", str(LEAF2_PORT), "--username", "admin", "--allowed-vlans", "100-199",
             "--provisioning-vlan", "100", "--quarantine-vlan", "199")  # fmt: skip
        _run(env, "switch", "list")

        _say("Rack r01's nodes onto the provisioning network: each NIC's port, from the rack file")
        for n in ("r01n01", "r01n02", "r01n03"):
            _run(env, "node", "network", n, "--network", "provisioning")
        print("(the reconciler batches the three ports into one NVUE session, applies, saves,")
        print(" reads them back)")
        _wait_in_sync(env, "leaf1")
        _run(env, "switch", "show", "leaf1")

        _say("Cabling check: what leaf1 hears over LLDP against what the rack file says")
        _run(env, "switch", "lldp", "leaf1", check=False)
        print("(r01n06's cable is on swp12, not swp6 as the rack file says: fix one or the other)")

        _say("A tenant VLAN and a trunk on leaf2: desired state, the plan, one pass")
        _run(env, "switch", "port", "leaf2", "Ethernet1", "--access", "150")
        _run(env, "switch", "port", "leaf2", "Ethernet2", "--native", "150", "--allowed", "151-152")
        _run(env, "switch", "plan", "leaf2")
        _run(env, "switch", "apply", "leaf2", check=False)
        _wait_in_sync(env, "leaf2")
        _run(env, "switch", "show", "leaf2")

        _say("Someone changes a port by hand on the switch: the drift check reports it")
        _hand_change(
            LEAF2_PORT, LEAF2_PASSWORD, ["interface Ethernet1", "switchport access vlan 101"]
        )
        _run(env, "switch", "drift", "leaf2", check=False)
        _say("Put it back as desired (switches enrolled with repair_drift do it themselves)")
        _run(env, "switch", "apply", "leaf2", "--retry", check=False)
        _run(env, "switch", "drift", "leaf2", check=False)

        _say("A VLAN outside the switch's allow-list is refused before anything is sent")
        _run(env, "switch", "port", "leaf2", "Ethernet3", "--access", "300", check=False)

        _say("InfiniBand by hand: partitions on the lab UFM (only the difference is sent)")
        token_file = data_dir / "ufm-token"
        token_file.write_text(UFM_TOKEN + "\n")
        _run(env, "fabric", "add", "ufm0", "--driver", "ufm",
             "--set", f"url=http://127.0.0.1:{UFM_PORT}", "--set", "auth=token",
             "--token-file", str(token_file), "--pkey-range", "0x0100-0x01ff")  # fmt: skip
        _run(env, "fabric", "partition", "ufm0", "manual_a", "--ipoib", "--full",
             "0x0002c90300001001", "0x0002c90300001002")  # fmt: skip
        _run(env, "fabric", "partition", "ufm0", "manual_b", "--ipoib", "--full",
             "0x0002c90300001003", "0x0002c90300001004")  # fmt: skip
        seen = _fabric_applied(url, token, "ufm0", 0)
        _say("r01n02 moves from manual_a to manual_b: two member changes, nothing else")
        _run(env, "fabric", "partition", "ufm0", "manual_a", "--pkey", "0x0100", "--ipoib",
             "--full", "0x0002c90300001001")  # fmt: skip
        _run(env, "fabric", "partition", "ufm0", "manual_b", "--pkey", "0x0101", "--ipoib",
             "--full", *(f"0x0002c9030000100{i}" for i in (2, 3, 4)))  # fmt: skip
        seen = _fabric_applied(url, token, "ufm0", seen)
        _run(env, "fabric", "show", "ufm0")
        _say("The default partition's key is never a tenant's: refused before anything is sent")
        _run(env, "fabric", "partition", "ufm0", "manual_c", "--pkey", "0x7fff", check=False)
        _say("Hand-made partitions go: from here on, tenants' partitions are provisiond's")
        _run(env, "fabric", "remove", "ufm0", "0x0100")
        _run(env, "fabric", "remove", "ufm0", "0x0101")
        seen = _fabric_applied(url, token, "ufm0", seen)

        _say("Tenants: one VLAN on every switch and a P_Key on every fabric, in one transaction")
        _run(env, "tenant", "create", "acme")
        _run(env, "tenant", "create", "globex")
        seen = _fabric_applied(url, token, "ufm0", seen)
        _run(env, "tenant", "list")
        tenants = {
            t: json.loads(_run(env, "tenant", "show", t, "--json", show=False))
            for t in ("acme", "globex")
        }

        _say("The pool: the inspected r01n01 and r01n02 are provided (cleaning, then available)")
        _run(env, "node", "provide", "r01n01", "r01n02", "--wait")

        _say("Allocations: each tenant asks for a node; provisiond picks, reserves and deploys it")
        print("(the lab hosts boot the image over HTTP and call back: the deploys complete)")
        allocs = {}
        for tenant in ("acme", "globex"):
            out = _run(env, "alloc", "create", tenant, "--count", "1", "--image", "lab-image",
                       "--wait", "--timeout", "300", timeout=330)  # fmt: skip
            allocs[tenant] = _alloc_id(out)
        _say("Asking for more than is free: refused, with what is free, nothing reserved")
        _run(env, "alloc", "create", "acme", "--count", "4", "--image", "lab-image", check=False)
        _run(env, "alloc", "list")
        _run(env, "tenant", "show", "acme")

        _say("The networks follow: each active node on its tenant's VLAN and in its partition")
        ports: dict[str, int] = {}
        members: dict[str, set[str]] = {}
        for tenant, alloc_id in allocs.items():
            shown = json.loads(_run(env, "alloc", "show", alloc_id, "--json", show=False))
            members[f"tenant_{tenant}"] = set()
            for n in shown["nodes"]:
                node = json.loads(_run(env, "node", "show", n["name"], "--json", show=False))
                for nic in node["nics"]:
                    if nic.get("switch") == "leaf1" and nic.get("port"):
                        ports[nic["port"]] = tenants[tenant]["vlan"]
                    if nic.get("guid"):
                        members[f"tenant_{tenant}"].add(nic["guid"])
        took = _wait_networks(env, ports, members)
        print(f"(the follower set them as the nodes became active; the reconcilers applied and "
              f"read them back: {took:.1f} s after the deploys ended)")  # fmt: skip
        _run(env, "switch", "show", "leaf1")
        _run(env, "fabric", "show", "ufm0")

        _say("The isolation audit: every managed port and partition, read from the devices")
        _run(env, "fabric", "audit")

        _say("Release: undeploy, cleaning; the nodes leave their tenants once back on provisioning")
        for alloc_id in allocs.values():
            _run(env, "alloc", "release", alloc_id, "--wait", "--timeout", "300", timeout=330)
        took = _wait_networks(env, dict.fromkeys(ports, 100),
                              {name: set() for name in members})  # fmt: skip
        print(f"(ports back on the provisioning VLAN, GUIDs out of the tenants' partitions, read "
              f"back from the devices: {took:.1f} s after the releases ended)")  # fmt: skip
        _run(env, "switch", "show", "leaf1")
        _run(env, "fabric", "show", "ufm0")
        _run(env, "fabric", "audit")
        _run(env, "alloc", "list", "--all")
        _run(env, "tenant", "list")

        _say("Maintenance with a reason; filtered listing")
        _run(env, "node", "maintenance-on", "r01n03", "--reason", "PSU swap, ticket 4711", "--wait")
        _run(env, "node", "list", "--maintenance", "true")

        _say("An action the lifecycle does not allow answers 409 with the allowed actions")
        _run(env, "node", "deploy", "r01n05", "--image", "lab-image", check=False)

        _say("Done")
        print(f"API:          {url}   (OpenAPI: {url}/v1/openapi.json)")
        print(f"Admin token:  {token}")
        print(
            f"Try:  PROVISIOND_URL={url} PROVISIOND_TOKEN={token} "
            f"{sys.executable} -m provisiond.cli alloc list --all"
        )
        if oneshot:
            return 0
        print("The daemon keeps running; Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while proc.poll() is None:
                time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop(proc)
        _stop(lab)
        _stop(redfish)
        for sw in switches:
            _stop(sw)
