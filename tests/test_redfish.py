"""The Redfish driver against a real Redfish service (sushy-tools' emulator, fake driver), a
scripted quirky BMC for what the emulator cannot show (ETag, late-applying PATCH, 503), and its
pure helpers.

The emulator applies a power change 0-11 s after accepting it, so every power test passes a
``wait`` and the independent ones run concurrently. No test asserts wall-clock times.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from drivers.bmc.base import (
    AuthError,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
    Unsupported,
)
from drivers.bmc.redfish import (
    RedfishDriver,
    base_url,
    boot_mismatch,
    boot_patch,
    parse_boot,
    parse_inventory,
    parse_power,
    reset_plan,
)
from drivers.registry import BmcRegistry
from provisiond.bmc import BmcGateway
from provisiond.errors import BmcError, DeadlineExceeded
from tests.support.daemon import free_port
from tests.support.sushy import (
    DEFAULT_SYSTEMS,
    PASSWORD,
    USERNAME,
    Emulator,
    FakeSystem,
    sushy_emulator,
)

NODE_A, NODE_B, NODE_C = DEFAULT_SYSTEMS  # Off, On, On
POWER_WAIT = 30.0  # two emulator delays (<= 11 s each) plus polling, for a cycle
# what the emulator's Reset action advertises (templates/system.json)
EMULATOR_RESET_TYPES = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
]


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with sushy_emulator(tmp_path / "sushy") as e:
        yield e


@pytest.fixture
async def driver() -> AsyncIterator[RedfishDriver]:
    drv = RedfishDriver({"power_poll": 0.2, "request_timeout": 5})
    yield drv
    await drv.close()


def target(
    emu: Emulator,
    system_id: str | None,
    *,
    username: str | None = USERNAME,
    password: str | None = PASSWORD,
) -> BmcTarget:
    return BmcTarget("redfish", emu.url, None, username, password, system_id=system_id)


def resets_sent(emu: Emulator, system: FakeSystem) -> int:
    """POSTs to the system's Reset action, from the emulator's own access log."""
    action = f"POST /redfish/v1/Systems/{system.uuid}/Actions/ComputerSystem.Reset"
    return sum(action in line for line in emu.log.read_text(errors="replace").splitlines())


# --- against the emulator ------------------------------------------------------------------------


async def test_validate_returns_identity(emu: Emulator, driver: RedfishDriver) -> None:
    # by name: the emulator answers 307 to the uuid URL, the driver follows it
    ident = await driver.validate(target(emu, NODE_A.name))
    assert ident.manufacturer == "Sushy Emulator"
    assert ident.product == ""  # the fake driver has no Model
    assert ident.firmware == "1.00"  # the Manager's FirmwareVersion


async def test_get_inventory(emu: Emulator, driver: RedfishDriver) -> None:
    inv = await driver.get_inventory(target(emu, NODE_B.uuid))
    assert inv.manufacturer == "Sushy Emulator"
    # the fake driver has no Model, SerialNumber, PartNumber, BIOS, CPU or memory facts
    assert (inv.product, inv.serial, inv.part_number) == ("", "", "")
    assert dict(inv.extra) == {"uuid": NODE_B.uuid}


async def test_power_actions_converge_and_map_to_reset_types(
    tmp_path: Path, driver: RedfishDriver
) -> None:
    node_d = FakeSystem("6b1c4c3e-0a51-4c0e-9f43-1a2b3c4d5e04", "node-d", "On", "52:54:00:aa:00:04")
    with sushy_emulator(tmp_path / "sushy", systems=(*DEFAULT_SYSTEMS, node_d)) as emu:

        async def retried(call: Any, *args: Any, **kwargs: Any) -> Any:
            """As the engine does: retry transient errors. The emulator keeps its state in
            SQLite and answers 500 "database is locked" now and then under concurrent requests."""
            for attempt in range(5):
                try:
                    return await call(*args, **kwargs)
                except BmcError as exc:
                    if not exc.transient or attempt == 4:
                        raise
                    await asyncio.sleep(0.3)
            return None

        async def on_off_on() -> None:  # node-b starts On
            t = target(emu, NODE_B.uuid)
            assert await retried(driver.get_power, t) == PowerState.ON
            await retried(driver.set_power, t, action=PowerAction.OFF, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.OFF
            await retried(driver.set_power, t, action=PowerAction.ON, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.ON
            assert resets_sent(emu, NODE_B) == 2

        async def on_then_soft_off() -> None:  # node-a starts Off
            t = target(emu, NODE_A.uuid)
            await retried(driver.set_power, t, action=PowerAction.ON, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.ON
            # already on: nothing is sent (several BMCs refuse "On" when on)
            await retried(driver.set_power, t, action=PowerAction.ON, wait=POWER_WAIT)
            assert resets_sent(emu, NODE_A) == 1
            await retried(driver.set_power, t, action=PowerAction.SOFT_OFF, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.OFF

        async def cycle_without_power_cycle() -> None:  # node-c starts On
            # the emulator offers no PowerCycle: ForceOff, wait for Off, then On
            t = target(emu, NODE_C.uuid)
            await retried(driver.set_power, t, action=PowerAction.CYCLE, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.ON
            assert resets_sent(emu, NODE_C) == 2

        async def reset() -> None:  # node-d starts On
            t = target(emu, node_d.uuid)
            await retried(driver.set_power, t, action=PowerAction.RESET, wait=POWER_WAIT)
            assert await retried(driver.get_power, t) == PowerState.ON
            # one POST: ForceRestart (an "On" for a node that is on is never sent)
            assert resets_sent(emu, node_d) == 1

        await asyncio.gather(on_off_on(), on_then_soft_off(), cycle_without_power_cycle(), reset())


async def test_boot_device_set_and_read_back(emu: Emulator, driver: RedfishDriver) -> None:
    t = target(emu, NODE_A.uuid)
    assert await driver.get_boot_device(t) == BootSetting(BootDevice.DISK, True, True)

    await driver.set_boot_device(t, device=BootDevice.PXE, persistent=False, uefi=True)
    got = await driver.get_boot_device(t)
    # persistence is not asserted: the emulator ignores BootSourceOverrideEnabled and always
    # reads Continuous
    assert (got.device, got.uefi) == (BootDevice.PXE, True)

    await driver.set_boot_device(t, device=BootDevice.DISK, persistent=True, uefi=False)
    assert await driver.get_boot_device(t) == BootSetting(BootDevice.DISK, True, False)

    await driver.set_boot_device(t, device=BootDevice.NONE)
    assert (await driver.get_boot_device(t)).device == BootDevice.NONE

    # the emulator's BootSourceOverrideTarget@Redfish.AllowableValues has no BiosSetup
    with pytest.raises(Unsupported, match=r"'BiosSetup' is not offered .*Pxe, Cd, Hdd") as ei:
        await driver.set_boot_device(t, device=BootDevice.BIOS, uefi=False)
    assert emu.url in ei.value.message


async def test_system_id_selects_the_system(
    emu: Emulator, driver: RedfishDriver, tmp_path: Path
) -> None:
    assert await driver.get_power(target(emu, NODE_A.uuid)) == PowerState.OFF
    assert await driver.get_power(target(emu, NODE_B.name)) == PowerState.ON

    with pytest.raises(BmcError) as ei:
        await driver.get_power(target(emu, "no-such-system"))
    err = ei.value
    assert not err.transient
    assert f"{emu.url}/redfish/v1/Systems/no-such-system" in err.message
    assert "'no-such-system'" in err.message
    for s in DEFAULT_SYSTEMS:
        assert f"{s.uuid} ({s.name})" in err.message

    with pytest.raises(BmcError, match=r"3 systems on this BMC .*system_id") as ei:
        await driver.get_power(target(emu, None))
    assert not ei.value.transient
    assert f"{emu.url}/redfish/v1/Systems" in ei.value.message
    assert all(s.uuid in ei.value.message for s in DEFAULT_SYSTEMS)

    # one system behind the service: no system_id needed
    with sushy_emulator(tmp_path / "single", systems=(NODE_B,)) as single:
        inv = await driver.get_inventory(target(single, None))
        assert inv.extra["uuid"] == NODE_B.uuid


async def test_auth(tmp_path: Path, driver: RedfishDriver) -> None:
    with sushy_emulator(tmp_path / "sushy", auth=True) as emu:
        assert (await driver.validate(target(emu, NODE_A.uuid))).firmware == "1.00"

        with pytest.raises(AuthError) as ei:
            await driver.get_power(target(emu, NODE_A.uuid, password="wrong-password"))
        err = ei.value
        assert not err.transient
        assert f"Redfish {emu.url}/redfish/v1/Systems/{NODE_A.uuid}: credentials refused" in (
            err.message
        )
        assert "(HTTP 401) for user 'admin'" in err.message
        assert "wrong-password" not in err.message

        with pytest.raises(AuthError, match="no username given"):
            await driver.get_power(target(emu, NODE_A.uuid, username=None, password=None))


async def test_unreachable_bmc_is_transient(driver: RedfishDriver) -> None:
    port = free_port()  # nothing listens there
    bare = BmcTarget("redfish", "127.0.0.1", port, USERNAME, PASSWORD)
    with pytest.raises(BmcError) as ei:
        await driver.get_power(bare)
    assert ei.value.transient and not isinstance(ei.value, AuthError)
    # a bare address means HTTPS on the target's port
    assert f"Redfish https://127.0.0.1:{port}/redfish/v1/Systems: cannot connect" in (
        ei.value.message
    )

    url = BmcTarget("redfish", f"http://127.0.0.1:{port}", None, USERNAME, PASSWORD, "1")
    with pytest.raises(BmcError, match="connection refused") as ei:
        await driver.validate(url)
    assert ei.value.transient
    assert f"http://127.0.0.1:{port}/redfish/v1/Systems/1" in ei.value.message


async def test_silent_bmc_times_out_transient() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    drv = RedfishDriver({"request_timeout": 0.3})
    try:
        with pytest.raises(BmcError, match=r"no answer within 0\.3 s") as ei:
            await drv.get_power(BmcTarget("redfish", f"http://127.0.0.1:{port}", None, "u", "p"))
        assert ei.value.transient
        assert f"http://127.0.0.1:{port}/redfish/v1/Systems" in ei.value.message
    finally:
        await drv.close()
        server.close()
        await server.wait_closed()


async def test_gateway_deadline_cuts_a_slow_power_change(emu: Emulator) -> None:
    gw = BmcGateway(
        BmcRegistry(
            {"redfish": "drivers.bmc.redfish:RedfishDriver"}, {"redfish": {"power_poll": 0.2}}
        ),
        timeout=60,
        concurrency=4,
    )
    t = target(emu, NODE_A.uuid)

    def set_power(action: PowerAction) -> Any:
        return lambda d: d.set_power(t, action=action, wait=POWER_WAIT)

    try:
        # the emulator applies a change at int(now) + randint(1, 11): rarely it lands inside a
        # 0.5 s deadline; then flip the power the other way and try again
        cut: DeadlineExceeded | None = None
        for _ in range(4):
            state = await gw.call(t, "get power", lambda d: d.get_power(t))
            action = PowerAction.OFF if state == PowerState.ON else PowerAction.ON
            try:
                await gw.call(t, f"power {action}", set_power(action), timeout=0.5)
            except DeadlineExceeded as exc:
                cut = exc
                break
        assert cut is not None, "every power change landed inside the deadline"
        assert cut.transient
        assert re.search(r"BMC .+ \(redfish\) power (on|off): no answer within 0\.5s", cut.message)
        # the driver is still usable after its call was cancelled
        assert await gw.call(t, "get power", lambda d: d.get_power(t)) in set(PowerState)
    finally:
        await gw.close()


# --- a scripted BMC with the quirks the emulator lacks -------------------------------------------

SYSTEM = "/redfish/v1/Systems/System.Embedded.1"


class QuirkyBmc:
    """Answers with an ETag, requires If-Match on PATCH, accepts a boot override without
    applying it (it would after a reset), offers GracefulRestart but no ForceRestart, reports a
    transitional power state, and has a system that answers 503."""

    etag = 'W/"1700000000"'

    def __init__(self) -> None:
        self.resets: list[str] = []
        self.patches: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/redfish/v1/Systems", self.collection)
        app.router.add_get(SYSTEM, self.system)
        app.router.add_patch(SYSTEM, self.patch)
        app.router.add_post(f"{SYSTEM}/Actions/ComputerSystem.Reset", self.reset)
        app.router.add_get("/redfish/v1/Systems/Busy", self.busy)
        return app

    async def collection(self, request: web.Request) -> web.Response:
        return web.json_response({"Members": [{"@odata.id": SYSTEM}]})

    async def system(self, request: web.Request) -> web.Response:
        body = {
            "@odata.id": SYSTEM,
            "Id": "System.Embedded.1",
            "PowerState": "PoweringOn",
            "Boot": {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None"},
            "Actions": {
                "#ComputerSystem.Reset": {
                    "target": f"{SYSTEM}/Actions/ComputerSystem.Reset",
                    "ResetType@Redfish.AllowableValues": [
                        "On",
                        "ForceOff",
                        "GracefulRestart",
                        "PushPowerButton",
                    ],
                }
            },
        }
        return web.json_response(body, headers={"ETag": self.etag})

    async def patch(self, request: web.Request) -> web.Response:
        if request.headers.get("If-Match") != self.etag:
            return web.json_response({"error": {"message": "ETag mismatch"}}, status=412)
        self.patches.append(await request.json())
        return web.json_response({}, status=200)

    async def reset(self, request: web.Request) -> web.Response:
        self.resets.append((await request.json())["ResetType"])
        return web.Response(status=204)

    async def busy(self, request: web.Request) -> web.Response:
        err = {"error": {"@Message.ExtendedInfo": [{"Message": "The service is busy."}]}}
        return web.json_response(err, status=503)


async def test_quirky_bmc() -> None:
    bmc = QuirkyBmc()
    drv = RedfishDriver({"power_poll": 0.05})
    async with TestServer(bmc.app(), host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        t = BmcTarget("redfish", url, None, "root", "calvin")
        try:
            assert await drv.get_power(t) == PowerState.UNKNOWN  # PoweringOn
            assert await drv.get_boot_device(t) == BootSetting(BootDevice.NONE, False, None)

            await drv.set_power(t, action=PowerAction.RESET)
            assert bmc.resets == ["GracefulRestart"]  # no ForceRestart on offer
            with pytest.raises(Unsupported, match=r"no reset type for power soft-off .*PushPower"):
                await drv.set_power(t, action=PowerAction.SOFT_OFF)

            with pytest.raises(BmcError, match="did not stick") as ei:
                await drv.set_boot_device(t, device=BootDevice.PXE, uefi=True)
            assert ei.value.transient
            assert f"{url}{SYSTEM}" in ei.value.message
            # If-Match carried the ETag (else 412); no BootSourceOverrideMode on this system
            assert bmc.patches == [
                {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
            ]

            busy = BmcTarget("redfish", url, None, "root", "calvin", system_id="Busy")
            with pytest.raises(BmcError, match=r"HTTP 503: The service is busy\.") as ei:
                await drv.get_power(busy)
            assert ei.value.transient
            assert f"{url}/redfish/v1/Systems/Busy" in ei.value.message
        finally:
            await drv.close()


# --- pure helpers --------------------------------------------------------------------------------


def test_reset_plan() -> None:
    emulator = EMULATOR_RESET_TYPES
    assert reset_plan(PowerAction.CYCLE, emulator) == ("ForceOff", "On")
    assert reset_plan(PowerAction.CYCLE, [*emulator, "PowerCycle"]) == ("PowerCycle",)
    assert reset_plan(PowerAction.RESET, emulator) == ("ForceRestart",)
    assert reset_plan(PowerAction.RESET, ["On", "GracefulRestart"]) == ("GracefulRestart",)
    assert reset_plan(PowerAction.ON, ["ForceOn", "ForceOff"]) == ("ForceOn",)
    assert reset_plan(PowerAction.CYCLE, ["ForceOn", "ForceOff"]) == ("ForceOff", "ForceOn")
    assert reset_plan(PowerAction.SOFT_OFF, ["On", "ForceOff"]) == ()
    # nothing advertised: the standard names
    assert reset_plan(PowerAction.SOFT_OFF, None) == ("GracefulShutdown",)
    assert reset_plan(PowerAction.CYCLE, None) == ("PowerCycle",)


def test_base_url() -> None:
    assert base_url("10.0.0.5", None) == "https://10.0.0.5"
    assert base_url("10.0.0.5", 8443) == "https://10.0.0.5:8443"
    assert base_url("fd00::5", 443) == "https://[fd00::5]:443"
    assert base_url("https://bmc.example:8443/redfish/v1/", 623) == "https://bmc.example:8443"
    assert base_url("http://127.0.0.1:8000", None) == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="must not carry credentials") as ei:
        base_url("https://root:calvin@10.0.0.5", None)
    assert "calvin" not in str(ei.value)
    with pytest.raises(ValueError):
        base_url("ftp://10.0.0.5", None)


def test_power_and_boot_parsing() -> None:
    assert parse_power({"PowerState": "On"}) == PowerState.ON
    assert parse_power({"PowerState": "Off"}) == PowerState.OFF
    for transitional in ("PoweringOn", "PoweringOff", "Paused", None):
        assert parse_power({"PowerState": transitional}) == PowerState.UNKNOWN

    boot = {
        "BootSourceOverrideEnabled": "Once",
        "BootSourceOverrideTarget": "Pxe",
        "BootSourceOverrideMode": "Legacy",
    }
    assert parse_boot({"Boot": boot}) == BootSetting(BootDevice.PXE, False, False)
    with pytest.raises(ValueError, match="'Cd'"):
        parse_boot({"Boot": {**boot, "BootSourceOverrideTarget": "Cd"}})

    offered = {
        "BootSourceOverrideMode": "UEFI",
        "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI"],
        "BootSourceOverrideEnabled@Redfish.AllowableValues": ["Once", "Disabled"],
    }
    assert boot_patch(offered, BootDevice.PXE, persistent=False, uefi=True) == {
        "BootSourceOverrideTarget": "Pxe",
        "BootSourceOverrideEnabled": "Once",
        "BootSourceOverrideMode": "UEFI",
    }
    with pytest.raises(ValueError, match="'Legacy' is not offered"):
        boot_patch(offered, BootDevice.PXE, persistent=False, uefi=False)
    with pytest.raises(ValueError, match="'Continuous' is not offered"):
        boot_patch(offered, BootDevice.DISK, persistent=True, uefi=True)

    wanted = {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}
    assert boot_mismatch({"BootSourceOverrideTarget": "Pxe"}, wanted) is None
    assert "'Hdd'" in (boot_mismatch({"BootSourceOverrideTarget": "Hdd"}, wanted) or "")


def test_inventory_parsing() -> None:
    # shaped like a Dell iDRAC ComputerSystem (trimmed)
    system = {
        "Manufacturer": "Dell Inc.",
        "Model": "PowerEdge R760",
        "SerialNumber": "CNIVC0012345",
        "SKU": "7XQ1234",
        "PartNumber": "",
        "UUID": "4c4c4544-0058-5110-8031-b7c04f123456",
        "BiosVersion": "2.1.5",
        "ProcessorSummary": {"Count": 2, "Model": "Intel(R) Xeon(R) Gold 6430"},
        "MemorySummary": {"TotalSystemMemoryGiB": 512.0},
        "HostName": "",
    }
    inv = parse_inventory(system)
    assert (inv.manufacturer, inv.product, inv.serial) == (
        "Dell Inc.",
        "PowerEdge R760",
        "CNIVC0012345",
    )
    assert inv.part_number == "7XQ1234"  # SKU when PartNumber is empty
    assert dict(inv.extra) == {
        "uuid": "4c4c4544-0058-5110-8031-b7c04f123456",
        "bios_version": "2.1.5",
        "processor_count": "2",
        "processor_model": "Intel(R) Xeon(R) Gold 6430",
        "memory_gib": "512",
        "sku": "7XQ1234",
    }
