"""The IPMI driver (drivers.bmc.ipmi) against the lab's virtual BMCs, in every fault mode.

One lab serves the module; each test uses its own BMC(s) (``P_*`` below), so power and boot state
never leak between tests, and faults are reset before each test. Every test gets fresh drivers
(and so fresh worker processes), closed, and their workers killed if still there, at teardown.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from drivers.bmc.base import (
    AuthError,
    BmcIdentity,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
)
from drivers.bmc.ipmi import IpmiDriver
from drivers.bmc.ipmi_worker import TEST_HOOKS_ENV
from drivers.registry import BmcRegistry
from provisiond.bmc import BmcGateway
from provisiond.errors import BmcError, DeadlineExceeded, DriverError
from tests.support.labbmc import Lab, lab_bmc

# which lab BMC (index into lab.ports) each test uses
(
    P_VALIDATE,
    P_POWER,
    P_RESET,
    P_SOFT,
    P_BOOT,
    P_BOOT_CONSUMED,
    P_INVENTORY,
    P_AUTH,
    P_AUTH_FAULT,
    P_HUNG,
    P_SLOW,
    P_DROP,
    P_FLAP,
    P_GATEWAY,
    P_KILL,
    P_CLOSE,
    P_HOOKS_OFF,
) = range(17)
P_SHARD = range(17, 21)  # one hung + three healthy, all on one worker
P_STALL = range(21, 29)  # pick two on different workers
P_CLOSE_PICK = range(29, 45)  # pick one per worker
COUNT = 45

COMMAND_TIMEOUT = 2.0  # call budget: 2 * command_timeout (+ power wait) = 4 s
FAST = {
    "workers": 1,
    "threads_per_worker": 8,
    "stall_grace": 2.0,
    "min_interval": 0,
    "command_timeout": COMMAND_TIMEOUT,
    "power_poll": 0.1,
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_bmc(COUNT, tmp=tmp_path_factory.mktemp("labbmc")) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(lab: Lab) -> None:
    lab.clear_faults()


def _worker_procs(driver: IpmiDriver) -> list[subprocess.Popen[bytes]]:
    return [w.proc for w in driver.pool._workers if w is not None]


@pytest.fixture
async def make_driver() -> AsyncIterator[Callable[..., IpmiDriver]]:
    made: list[IpmiDriver] = []
    procs: list[subprocess.Popen[bytes]] = []

    def make(**options: Any) -> IpmiDriver:
        driver = IpmiDriver({**FAST, **options})
        made.append(driver)
        return driver

    def remember() -> None:
        for d in made:
            procs.extend(p for p in _worker_procs(d) if p not in procs)

    yield make
    remember()
    for d in made:
        await d.close()
    for proc in procs:  # belt and braces: no worker we started outlives the test
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def target(
    lab: Lab, index: int, *, username: str = "admin", password: str = "password"
) -> BmcTarget:
    return BmcTarget("ipmi", "127.0.0.1", lab.ports[index], username, password)


def pid_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


# identity, power, boot, inventory ----------------------------------------------------------------


async def test_validate_reports_the_lab_identity(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    ident = await make_driver().validate(target(lab, P_VALIDATE))
    assert ident == BmcIdentity(
        manufacturer="Supermicro",
        product="0x1b0a",
        firmware="1.74",
        manufacturer_id=10876,
        product_id=0x1B0A,
        device_id=0x20,
    )


async def test_validate_sees_a_firmware_fault(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    lab.set_faults({lab.ports[P_VALIDATE]: {"firmware": "1.73"}})
    ident = await make_driver().validate(target(lab, P_VALIDATE))
    assert ident.firmware == "1.73"


async def test_power_on_off_with_wait_and_read_back(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver, t = make_driver(), target(lab, P_POWER)
    assert await driver.get_power(t) == PowerState.OFF
    await driver.set_power(t, action=PowerAction.ON, wait=3)
    assert await driver.get_power(t) == PowerState.ON
    await driver.set_power(t, action=PowerAction.ON, wait=3)  # already on: a no-op
    assert await driver.get_power(t) == PowerState.ON
    await driver.set_power(t, action=PowerAction.OFF, wait=3)
    assert await driver.get_power(t) == PowerState.OFF
    await driver.set_power(t, action=PowerAction.ON)  # no wait: returns once accepted
    assert await driver.get_power(t) == PowerState.ON


async def test_reset_and_cycle(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    driver, t = make_driver(), target(lab, P_RESET)
    # a cycle while off powers on (many BMCs, and the lab, refuse a cycle while off: 0xD5)
    await driver.set_power(t, action=PowerAction.CYCLE, wait=3)
    assert await driver.get_power(t) == PowerState.ON
    await driver.set_power(t, action=PowerAction.RESET, wait=3)
    assert await driver.get_power(t) == PowerState.ON
    await driver.set_power(t, action=PowerAction.CYCLE, wait=3)
    assert await driver.get_power(t) == PowerState.ON


async def test_soft_off(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    driver, t = make_driver(), target(lab, P_SOFT)
    await driver.set_power(t, action=PowerAction.ON, wait=3)
    await driver.set_power(t, action=PowerAction.SOFT_OFF, wait=3)
    assert await driver.get_power(t) == PowerState.OFF


async def test_boot_device_round_trip(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    driver, t = make_driver(), target(lab, P_BOOT)
    await driver.set_boot_device(t, device=BootDevice.PXE, persistent=False, uefi=True)
    assert await driver.get_boot_device(t) == BootSetting(
        device=BootDevice.PXE, persistent=False, uefi=True, valid=True
    )
    await driver.set_boot_device(t, device=BootDevice.DISK, persistent=True, uefi=False)
    assert await driver.get_boot_device(t) == BootSetting(
        device=BootDevice.DISK, persistent=True, uefi=False, valid=True
    )
    await driver.set_boot_device(t, device=BootDevice.BIOS, persistent=False, uefi=True)
    assert (await driver.get_boot_device(t)).device == BootDevice.BIOS


async def test_one_time_boot_flag_is_consumed_by_a_boot_not_by_a_noop(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver, t = make_driver(), target(lab, P_BOOT_CONSUMED)
    await driver.set_boot_device(t, device=BootDevice.PXE, persistent=False, uefi=True)
    await driver.set_power(t, action=PowerAction.ON, wait=3)  # off -> on: the host boots
    assert (await driver.get_boot_device(t)).valid is False
    await driver.set_boot_device(t, device=BootDevice.PXE, persistent=False, uefi=True)
    await driver.set_power(t, action=PowerAction.ON, wait=3)  # already on: must not reset it
    assert (await driver.get_boot_device(t)).valid is True
    await driver.set_power(t, action=PowerAction.RESET, wait=3)
    after = await driver.get_boot_device(t)
    assert (after.device, after.valid) == (BootDevice.PXE, False)
    await driver.set_boot_device(t, device=BootDevice.PXE, persistent=True, uefi=True)
    await driver.set_power(t, action=PowerAction.RESET, wait=3)
    assert (await driver.get_boot_device(t)).valid is True  # persistent flags stay


async def test_inventory(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    port = lab.ports[P_INVENTORY]
    inv = await make_driver().get_inventory(target(lab, P_INVENTORY))
    assert inv.serial == f"LAB{port}"
    assert inv.manufacturer == "Supermicro"
    assert inv.product == "LAB-X12-1U"
    assert inv.part_number == "LAB-X12-PN"
    assert inv.extra.get("Board serial number") == f"LB{P_INVENTORY:06d}"


# credentials -------------------------------------------------------------------------------------


def assert_auth_error(err: BaseException, port: int) -> None:
    assert isinstance(err, AuthError), repr(err)
    assert err.transient is False
    assert f"127.0.0.1:{port}" in str(err)
    assert "username and password" in str(err)


async def test_wrong_password_is_an_auth_error(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver, port = make_driver(), lab.ports[P_AUTH]
    with pytest.raises(AuthError) as err:
        await driver.get_power(target(lab, P_AUTH, password="not-the-password"))
    assert_auth_error(err.value, port)
    with pytest.raises(AuthError) as err:
        await driver.validate(target(lab, P_AUTH, username="nobody"))
    assert_auth_error(err.value, port)
    assert "nobody" in str(err.value)
    assert await driver.get_power(target(lab, P_AUTH)) == PowerState.OFF  # the right ones work


async def test_wrong_password_fault_is_an_auth_error(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    port = lab.ports[P_AUTH_FAULT]
    lab.set_faults({port: {"wrong_password": True}})
    with pytest.raises(AuthError) as err:
        await make_driver().validate(target(lab, P_AUTH_FAULT))
    assert_auth_error(err.value, port)


# faults -------------------------------------------------------------------------------------------


async def test_hung_bmc_fails_transient_naming_it(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    port = lab.ports[P_HUNG]
    lab.set_faults({port: {"hung": True}})
    with pytest.raises((BmcError, DeadlineExceeded)) as err:
        await make_driver().get_power(target(lab, P_HUNG))
    exc = err.value
    assert isinstance(exc, DriverError)
    assert exc.transient is True
    assert str(exc).strip()  # pyghmi alone raises IpmiException(None)
    assert f"127.0.0.1:{port}" in str(exc)


async def test_slow_bmc_within_and_beyond_the_budget(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver, port, t = make_driver(), lab.ports[P_SLOW], target(lab, P_SLOW)
    assert await driver.get_power(t) == PowerState.OFF  # log in while the BMC is quick
    lab.set_faults({port: {"slow": 1}})
    assert await driver.get_power(t) == PowerState.OFF  # 1 s per answer: within 4 s
    lab.set_faults({port: {"slow": 2 * COMMAND_TIMEOUT + 2}})
    with pytest.raises(DeadlineExceeded) as err:
        await driver.get_power(t)
    assert f"127.0.0.1:{port}" in str(err.value)
    assert err.value.transient is True
    assert driver.pool.restarts == 0  # a slow BMC is not a wedged worker


async def test_dropped_packets_are_retried(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    port = lab.ports[P_DROP]
    lab.set_faults({port: {"drop": 20}})
    errors: list[BaseException] = []
    ident = None
    for _ in range(4):  # bounded: each try is one login plus one command
        # a fresh driver (fresh worker) per try: once in CI a login lost to the drops left the
        # worker answering "Session no longer connected" to every later try (a half-made login
        # kept by pyghmi is suspected; not explained yet, see docs/runbooks/bmc-hangs.md)
        driver = make_driver(command_timeout=5)  # ~6 round trips at 20% loss: seconds
        try:
            ident = await driver.validate(target(lab, P_DROP))
            break
        except (BmcError, DeadlineExceeded) as exc:
            assert exc.transient, repr(exc)
            errors.append(exc)
            await asyncio.sleep(0.5)
    assert ident is not None, f"no success in 4 tries through 20% loss: {errors}"
    assert ident.manufacturer_id == 10876


async def test_flapping_power_is_seen(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    lab.set_faults({lab.ports[P_FLAP]: {"flap": 2}})
    driver, t = make_driver(), target(lab, P_FLAP)
    seen = [await driver.get_power(t)]
    for _ in range(60):  # at most ~6 s: the state flips every 2 s
        await asyncio.sleep(0.1)
        seen.append(await driver.get_power(t))
        if len(set(seen)) > 1:
            break
    assert set(seen) == {PowerState.ON, PowerState.OFF}, seen


async def test_hung_bmc_does_not_delay_healthy_ones_on_its_worker(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    hung, *healthy = (target(lab, i) for i in P_SHARD)
    lab.set_faults({lab.ports[P_SHARD[0]]: {"hung": True}})
    driver = make_driver(workers=1)
    assert await driver.get_power(healthy[0]) == PowerState.OFF  # worker up
    assert len({driver.pool.shard(t.key) for t in (hung, *healthy)}) == 1
    finished: list[str] = []

    def note(name: str) -> Callable[[asyncio.Task[Any]], None]:
        return lambda _task: finished.append(name)

    hung_task = asyncio.create_task(driver.validate(hung))
    hung_task.add_done_callback(note("hung"))
    await asyncio.sleep(0)  # the hung BMC's login is in flight first
    tasks = []
    for t in healthy:  # fresh logins and commands on the same worker
        task = asyncio.create_task(driver.validate(t))
        task.add_done_callback(note(str(t.port)))
        tasks.append(task)
    await asyncio.wait([hung_task, *tasks], return_when=asyncio.ALL_COMPLETED)
    assert finished[-1] == "hung", finished
    assert all(task.result().manufacturer_id == 10876 for task in tasks)
    exc = hung_task.exception()
    assert isinstance(exc, (BmcError, DeadlineExceeded)) and exc.transient
    assert f"127.0.0.1:{hung.port}" in str(exc)


# workers -----------------------------------------------------------------------------------------


async def test_injected_stall_costs_one_worker_and_it_is_replaced(
    lab: Lab, make_driver: Callable[..., IpmiDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")  # before the driver spawns its workers
    driver = make_driver(workers=2, command_timeout=3)  # budget 6 s > grace 2 s + probe
    targets = [target(lab, i) for i in P_STALL]
    wedged = targets[0]
    other = next(t for t in targets if driver.pool.shard(t.key) != driver.pool.shard(wedged.key))
    assert await driver.get_power(wedged) == PowerState.OFF
    assert await driver.get_power(other) == PowerState.OFF
    wedged_pid, other_pid = driver.pool.worker_pid(wedged.key), driver.pool.worker_pid(other.key)
    assert wedged_pid is not None and other_pid is not None and wedged_pid != other_pid

    assert await driver.pool.call(wedged, "stall", {}, seconds=5, what="stall") == "stalled"
    stuck = asyncio.create_task(driver.get_power(wedged))
    answered = 0
    for _ in range(400):  # bounded; ends when the wedged call fails
        if stuck.done():
            break
        assert await driver.get_power(other) == PowerState.OFF
        answered += 1
        await asyncio.sleep(0.02)
    assert answered >= 1  # the other worker answered while this one was wedged
    with pytest.raises(BmcError) as err:
        await stuck
    assert err.value.transient is True
    assert not isinstance(err.value, AuthError)
    await wait_until(lambda: driver.pool.restarts >= 1, "the wedged worker's replacement")
    assert driver.pool.restarts == 1
    assert await driver.get_power(wedged) == PowerState.OFF  # same BMC, new worker
    new_pid = driver.pool.worker_pid(wedged.key)
    assert new_pid is not None and new_pid != wedged_pid
    assert driver.pool.worker_pid(other.key) == other_pid  # the other worker was left alone
    await wait_until(lambda: not pid_running(wedged_pid), "the wedged worker to die", 5)


async def test_stall_hook_is_off_by_default(
    lab: Lab, make_driver: Callable[..., IpmiDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TEST_HOOKS_ENV, raising=False)
    driver = make_driver()
    t = target(lab, P_HOOKS_OFF)
    with pytest.raises(BmcError) as err:
        await driver.pool.call(t, "stall", {}, seconds=5, what="stall")
    assert err.value.transient is False
    assert await driver.get_power(t) == PowerState.OFF
    assert driver.pool.restarts == 0


async def test_killed_worker_is_replaced(lab: Lab, make_driver: Callable[..., IpmiDriver]) -> None:
    driver, t = make_driver(), target(lab, P_KILL)
    assert await driver.get_power(t) == PowerState.OFF
    pid = driver.pool.worker_pid(t.key)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_until(lambda: driver.pool.restarts == 1, "the dead worker to be noticed")
    assert await driver.get_power(t) == PowerState.OFF
    new_pid = driver.pool.worker_pid(t.key)
    assert new_pid is not None and new_pid != pid
    assert driver.pool.restarts == 1


async def test_call_racing_a_worker_death_fails_transient(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    """A call sent before the death is noticed fails fast and says retry; the next one works."""
    driver, t = make_driver(), target(lab, P_KILL)
    assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF)
    pid = driver.pool.worker_pid(t.key)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    try:
        await driver.get_power(t)  # may meet the dead worker (nothing yielded to the loop yet)
    except BmcError as exc:
        assert exc.transient is True, repr(exc)
        assert "retry" in str(exc)
    await wait_until(lambda: driver.pool.restarts == 1, "the dead worker to be noticed")
    assert await driver.get_power(t) == PowerState.OFF


async def test_close_leaves_no_worker_process(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver, t = make_driver(workers=1), target(lab, P_CLOSE)
    assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF)
    pid = driver.pool.worker_pid(t.key)
    assert pid is not None and pid_running(pid)
    await driver.close()
    assert not pid_exists(pid), f"worker {pid} left after close()"
    assert driver.pool.worker_pid(t.key) is None


async def test_close_leaves_no_worker_running(
    lab: Lab, make_driver: Callable[..., IpmiDriver]
) -> None:
    driver = make_driver(workers=3)
    by_shard: dict[int, BmcTarget] = {}
    for i in P_CLOSE_PICK:
        by_shard.setdefault(driver.pool.shard(target(lab, i).key), target(lab, i))
    assert sorted(by_shard) == [0, 1, 2], "no lab BMC for some worker: add P_CLOSE_PICK ports"
    for t in by_shard.values():  # one at a time: no concurrent logins
        assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF)
    pids = [driver.pool.worker_pid(t.key) for t in by_shard.values()]
    assert None not in pids and len(set(pids)) == 3
    await driver.close()
    running = [p for p in pids if p is not None and pid_running(p)]
    assert not running, f"workers still running after close(): {running}"


async def test_close_reaps_replaced_workers_too(
    lab: Lab, make_driver: Callable[..., IpmiDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wedged worker is killed and replaced; it must be reaped, not left a zombie, even while
    something (here: the failed call's traceback) still references it."""
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")
    driver, t = make_driver(command_timeout=3), target(lab, P_CLOSE)
    assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF)
    old = driver.pool.worker_pid(t.key)
    assert old is not None
    await driver.pool.call(t, "stall", {}, seconds=5, what="stall")
    with pytest.raises(BmcError) as err:  # the wedged worker is killed and replaced
        await driver.get_power(t)
    assert err.value.transient
    assert driver.pool.restarts == 1
    assert await driver.get_power(t) in (PowerState.ON, PowerState.OFF)
    new = driver.pool.worker_pid(t.key)
    await driver.close()
    assert new is not None and not pid_exists(new)
    assert not pid_exists(old), f"replaced worker {old} left as a zombie after close()"


# through the gateway ------------------------------------------------------------------------------


async def test_gateway_spaces_commands_to_one_bmc_by_min_interval(lab: Lab) -> None:
    registry = BmcRegistry(options={"ipmi": {**FAST, "min_interval": 0.3}})
    assert "ipmi" in registry.installed()
    gateway = BmcGateway(registry, timeout=10, concurrency=8)
    t = target(lab, P_GATEWAY)
    spans: list[tuple[float, float]] = []

    async def timed(driver: Any) -> PowerState:
        start = time.monotonic()
        try:
            state: PowerState = await driver.get_power(t)
            return state
        finally:
            spans.append((start, time.monotonic()))

    try:
        driver = registry.get("ipmi")
        assert isinstance(driver, IpmiDriver) and driver.min_interval == 0.3
        assert await gateway.call(t, "get power", timed) == PowerState.OFF
        assert await gateway.call(t, "get power", timed) == PowerState.OFF
        # three at once to the same BMC: serialized, and spaced too
        states = await asyncio.gather(*(gateway.call(t, "get power", timed) for _ in range(3)))
        assert states == [PowerState.OFF] * 3
    finally:
        await gateway.close()
    assert len(spans) == 5
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end >= 0.3 - 0.005, spans  # a lower bound: cannot flake
