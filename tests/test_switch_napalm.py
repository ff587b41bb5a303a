"""The napalm transport against the lab EOS's eAPI (provisiond/lab/eapi.py), with napalm's real
``eos`` driver and pyeapi underneath: no mock anywhere. The lab's SSH CLI shares the switch's
state with its eAPI, so what the napalm path did is checked over SSH with netmiko.

The first test is the lab eAPI's independent-client proof: pyeapi and napalm's own API
(load_merge_candidate / compare_config / commit_config / discard_config / rollback) drive it
directly. One lab process for the module; faults are reset before each test, and every test uses
its own ports and VLANs.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.switch.base import (
    ApplyResult,
    ChangeSet,
    Policy,
    PortChange,
    PortMode,
    SwitchError,
    SwitchTarget,
    VlanChange,
)
from drivers.switch.dialects.arista_eos import AristaEosDialect
from drivers.switch.napalm_driver import NapalmDriver
from drivers.switch.netmiko_driver import NetmikoDriver
from drivers.switch.registry import SwitchDrivers, dialect_for, switch_driver_class
from provisiond.errors import ConfigError, ValidationError
from tests.support.daemon import free_port
from tests.support.labswitch import LAB_CMD, ROOT, LabSwitch, lab_switch

EOS = "arista_eos"
DIALECT = AristaEosDialect()
POLICY = Policy.parse("100-399")


@dataclass
class Lab:
    sw: LabSwitch
    eapi_port: int

    def target(self, *, password: str | None = None) -> SwitchTarget:
        return SwitchTarget(
            "lab-eos",
            "napalm_eos",
            "127.0.0.1",
            self.eapi_port,
            self.sw.username,
            self.sw.password if password is None else password,
        )

    def requests(self) -> int:
        """HTTP requests the lab eAPI has received (it logs every one)."""
        marker = f"lab eapi :{self.eapi_port}: request "
        return sum(marker in line for line in self.sw.log.read_text().splitlines())

    def rpc(self, cmds: list[Any], fmt: str = "json", *, auth: bool = True) -> Any:
        """A raw JSON-RPC request, as any eAPI client sends it."""
        body = json.dumps(
            {"jsonrpc": "2.0", "method": "runCmds", "id": "t1",
             "params": {"version": 1, "cmds": cmds, "format": fmt}}
        ).encode()  # fmt: skip
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.eapi_port}/command-api", data=body, method="POST"
        )
        req.add_header("Content-Type", "application/json-rpc")
        if auth:
            token = base64.b64encode(f"{self.sw.username}:{self.sw.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=20) as resp:
            return json.loads(resp.read())

    def sessions(self) -> dict[str, str]:
        """Configure sessions on the switch: name -> state."""
        out = self.rpc(["enable", "show configuration sessions"])["result"][1]
        return {name: s["state"] for name, s in out["sessions"].items()}

    def ssh(self, *commands: str) -> list[str]:
        """Outputs of show commands over SSH (netmiko's arista_eos driver)."""
        conn = self.sw.connect()
        try:
            conn.enable()
            return [str(conn.send_command(c)) for c in commands]
        finally:
            conn.disconnect()

    def configs(self) -> tuple[str, str]:
        """(running, startup) over SSH."""
        running, startup = self.ssh("show running-config", "show startup-config")
        return running, startup


@pytest.fixture(scope="module")
def lab_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("napalm")
    eapi_port = free_port()
    with lab_switch(EOS, tmp, "--eapi-port", str(eapi_port)) as sw:
        yield Lab(sw, eapi_port)


@pytest.fixture
def lab(lab_module: Lab) -> Lab:
    lab_module.sw.set_faults()
    return lab_module


def _driver(**options: Any) -> NapalmDriver:
    return NapalmDriver({"eos_transport": "http", "timeout": 20, **options})


# --------------------------------------------------------------------------- the lab eAPI itself


def test_pyeapi_and_napalm_drive_the_lab_eapi(lab: Lab) -> None:
    import pyeapi
    from napalm import get_network_driver
    from napalm.base.exceptions import MergeConfigException

    node = pyeapi.client.connect(
        transport="http", host="127.0.0.1", port=lab.eapi_port,
        username=lab.sw.username, password=lab.sw.password, return_node=True,
    )  # fmt: skip
    version, hostname = node.run_commands(["show version", "show hostname"])
    assert version["version"] == "4.31.2F" and version["modelName"].startswith("DCS-")
    assert hostname == {"hostname": "lab-eos", "fqdn": "lab-eos"}

    # eAPI's error shape: the first failing command ends the request
    answer = lab.rpc(["enable", "show bogus", "show version"])
    assert answer["error"]["code"] == 1002
    assert answer["error"]["message"] == "CLI command 2 of 3 'show bogus' failed: invalid command"
    assert answer["error"]["data"] == [{}, {"errors": ["Invalid input"]}]
    text = lab.rpc(["enable", "show bogus"], "text")["error"]["data"][1]
    assert text["output"].startswith("% Invalid input") and text["errors"] == ["Invalid input"]
    assert lab.rpc(["enable", "show vlan"])["error"]["code"] == 1003  # no JSON model: unconverted
    with pytest.raises(urllib.error.HTTPError) as http:
        lab.rpc(["show version"], auth=False)
    assert http.value.code == 401

    before = lab.configs()
    device = get_network_driver("eos")(
        "127.0.0.1", lab.sw.username, lab.sw.password, timeout=20,
        optional_args={"transport": "http", "port": lab.eapi_port},
    )  # fmt: skip
    device.open()
    try:
        config = "vlan 310\n   name direct\n!\ninterface Ethernet20\n   description direct-napalm\n"
        device.load_merge_candidate(config=config)
        diff = device.compare_config()
        assert diff.startswith("@@"), diff
        assert "+vlan 310" in diff and "+   name direct" in diff
        assert "+   description direct-napalm" in diff and " interface Ethernet20" in diff
        assert "pending" in lab.sessions().values()  # a candidate, not the running config
        assert lab.configs() == before
        device.discard_config()
        assert "pending" not in lab.sessions().values() and lab.configs() == before

        device.load_merge_candidate(config=config)
        device.commit_config()  # commits the session and writes memory
        running, startup = lab.configs()
        for cfg in (running, startup):
            assert "vlan 310\n   name direct" in cfg
            assert "interface Ethernet20\n   description direct-napalm" in cfg
        device.load_merge_candidate(config=config)
        assert device.compare_config() == ""  # already there
        device.discard_config()

        device.rollback()  # configure replace flash:rollback-0 (the startup config before)
        assert lab.configs() == before

        with pytest.raises(MergeConfigException, match="mtu 9216"):  # EOS tops out at 9214
            device.load_merge_candidate(config="interface Ethernet20\n   mtu 9216\n")
        assert "pending" not in lab.sessions().values() and lab.configs() == before
    finally:
        device.close()


def test_eapi_port_is_for_eos_only(tmp_path: Path) -> None:
    out = subprocess.run(
        [*LAB_CMD, "--dialect", "cumulus_nvue", "--port", str(free_port()),
         "--eapi-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "only arista_eos has an eAPI" in out.stderr


# --------------------------------------------------------------------------- the driver


async def test_apply_returns_the_diff_and_the_change_is_on_ssh_and_saved(lab: Lab) -> None:
    drv = _driver()
    try:
        target = lab.target()
        batch = ChangeSet(
            vlans=(VlanChange(150, "tenant-a"),),
            ports=(
                PortChange("Ethernet5", PortMode.ACCESS, vlan=150),
                PortChange("Ethernet6", PortMode.TRUNK, native_vlan=150, allowed_vlans=(151,)),
            ),
        )
        result = await drv.apply(target, batch, POLICY)
        assert isinstance(result, ApplyResult)
        assert result.commands == tuple(DIALECT.render(batch))
        assert result.diff is not None
        for line in (
            "+vlan 150",
            "+   name tenant-a",
            "+   switchport access vlan 150",
            "+   switchport trunk native vlan 150",
            "+   switchport trunk allowed vlan 150-151",
            "+   switchport mode trunk",
        ):
            assert line in result.diff.splitlines(), result.diff

        shown = "\n".join(lab.ssh(*DIALECT.show_ports_command(["Ethernet5", "Ethernet6"])))
        over_ssh = DIALECT.parse_ports(shown)
        assert over_ssh["Ethernet5"].mode is PortMode.ACCESS and over_ssh["Ethernet5"].vlan == 150
        assert over_ssh["Ethernet6"].mode is PortMode.TRUNK
        assert over_ssh["Ethernet6"].native_vlan == 150
        assert over_ssh["Ethernet6"].allowed_vlans == (150, 151)
        running, startup = lab.configs()
        saved = DIALECT.parse_ports(startup)
        assert saved["Ethernet5"] == over_ssh["Ethernet5"]  # persisted by the commit
        assert saved["Ethernet6"] == over_ssh["Ethernet6"]
        assert await drv.read_ports(target, ["Ethernet5", "Ethernet6"]) == over_ssh
        assert (await drv.read_vlans(target))[150].name == "tenant-a"

        # the same batch again: nothing to change, nothing committed
        sessions = lab.sessions()
        again = await drv.apply(target, batch, POLICY)
        assert again.diff == "" and again.commands == result.commands
        assert lab.configs() == (running, startup)
        assert lab.sessions() == sessions  # no new completed session: no commit happened
    finally:
        await drv.close()


async def test_a_change_made_over_ssh_is_read_over_eapi(lab: Lab) -> None:
    conn = lab.sw.connect()
    try:
        conn.enable()
        conn.send_config_set(["interface Ethernet21", "description from-ssh", "mtu 9000"])
    finally:
        conn.disconnect()
    drv = _driver()
    try:
        got = (await drv.read_ports(lab.target(), ["Ethernet21"]))["Ethernet21"]
        assert got.description == "from-ssh" and got.mtu == 9000
    finally:
        await drv.close()


async def test_refused_command_is_named_and_nothing_is_half_applied(lab: Lab) -> None:
    drv = _driver()
    try:
        before = lab.configs()
        batch = ChangeSet(
            vlans=(VlanChange(160, "half"),),
            ports=(
                PortChange("Ethernet7", PortMode.ACCESS, vlan=160),
                PortChange("Ethernet8", mtu=9216),  # EOS L2 MTU tops out at 9214
            ),
        )
        with pytest.raises(SwitchError) as err:
            await drv.apply(lab.target(), batch, POLICY)
        assert err.value.command == "mtu 9216" and not err.value.transient
        assert "Invalid input" in err.value.message
        assert lab.configs() == before  # neither VLAN 160 nor Ethernet7's move went in
        assert "pending" not in lab.sessions().values()  # the session was aborted
    finally:
        await drv.close()


async def test_failed_save_after_the_commit_is_rolled_back(lab: Lab) -> None:
    drv = _driver()
    try:
        # napalm's EOS rollback restores the startup configuration copied just before the
        # commit: running changes never saved (an earlier test's SSH edit) would go with it, so
        # the switch starts saved, as every apply leaves it
        lab.ssh("write memory")
        before = lab.configs()
        assert before[0].splitlines()[1:] == before[1].splitlines()[1:]  # saved
        completed = lab.sessions()
        batch = ChangeSet(
            vlans=(VlanChange(170),), ports=(PortChange("Ethernet9", PortMode.ACCESS, vlan=170),)
        )
        lab.sw.set_faults(config_locked=True)  # the commit goes in, its `write memory` fails
        with pytest.raises(SwitchError) as err:
            await drv.apply(lab.target(), batch, POLICY)
        assert err.value.command == "write memory" and err.value.transient
        assert "locked" in err.value.message and "rolled back" in err.value.message
        assert lab.sessions() != completed  # a new completed session: the commit did happen
        assert "pending" not in lab.sessions().values()
        assert lab.configs() == before  # ... and was undone; nothing was saved

        lab.sw.set_faults()
        result = await drv.apply(lab.target(), batch, POLICY)
        assert result.diff is not None and "+   switchport access vlan 170" in result.diff
        startup = lab.configs()[1]
        assert DIALECT.parse_ports(startup)["Ethernet9"].vlan == 170
    finally:
        await drv.close()


async def test_refused_login_is_not_transient(lab: Lab) -> None:
    drv = _driver()
    batch = ChangeSet(ports=(PortChange("Ethernet10", description="x"),))
    try:
        with pytest.raises(SwitchError, match="login refused") as err:
            await drv.apply(lab.target(password="wrong"), batch, POLICY)
        assert not err.value.transient
        lab.sw.set_faults(auth_fail=True)
        with pytest.raises(SwitchError, match="login refused") as err:
            await drv.read_vlans(lab.target())
        assert not err.value.transient
    finally:
        await drv.close()


async def test_slow_switch_is_a_transient_error(lab: Lab) -> None:
    drv = _driver(timeout=1)
    try:
        lab.sw.set_faults(slow=3)
        with pytest.raises(SwitchError) as err:
            await drv.read_vlans(lab.target())
        assert err.value.transient
    finally:
        await drv.close()


async def test_injection_is_refused_before_any_request(lab: Lab) -> None:
    drv = _driver()
    try:
        sent = lab.requests()
        for change in (
            PortChange("Ethernet1; reload", PortMode.ACCESS, vlan=100),
            PortChange("Ethernet1\nreload", PortMode.ACCESS, vlan=100),
            PortChange("Ethernet1", PortMode.ACCESS, vlan=1000),  # outside the allow-list
            PortChange("Ethernet1", description="x'; reload"),
        ):
            with pytest.raises(ValidationError):
                await drv.apply(lab.target(), ChangeSet(ports=(change,)), POLICY)
        assert lab.requests() == sent
        await drv.read_vlans(lab.target())  # the count does move when something is sent
        assert lab.requests() > sent
    finally:
        await drv.close()


# --------------------------------------------------------------------------- the registry


async def test_registry_resolves_every_driver_name() -> None:
    for name in ("arista_eos", "cumulus_nvue", "sonic", "cisco_nxos", "dell_os10", "junos",
                 "comware"):  # fmt: skip
        assert switch_driver_class(name) is NetmikoDriver
        assert dialect_for(name).name == name
    for name, dialect in (
        ("napalm_eos", "arista_eos"),
        ("napalm_junos", "junos"),
        ("napalm_nxos_ssh", "cisco_nxos"),
    ):
        assert switch_driver_class(name) is NapalmDriver
        assert dialect_for(name).name == dialect
    with pytest.raises(ConfigError, match="napalm_eos"):
        switch_driver_class("napalm_ios")
    drivers = SwitchDrivers({"napalm": {"timeout": 5}})
    try:
        assert drivers.get("napalm_eos") is drivers.get("napalm_junos")
        assert isinstance(drivers.get("napalm_eos"), NapalmDriver)
        assert isinstance(drivers.get("arista_eos"), NetmikoDriver)
    finally:
        await drivers.close()
