"""Workflow steps against a scripted BMC (no engine): ordering and undo on failure."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.bmc.base import BmcTarget, BootDevice, PowerAction, PowerState
from provisiond.errors import BmcError
from provisiond.workflows.steps import StepContext, pxe_boot


class ScriptedBmc:
    """Stands in for the gateway: records calls, answers power, fails the power action on ask."""

    timeout = 60.0

    def __init__(self, power: PowerState, fail_power: bool) -> None:
        self.power = power
        self.fail_power = fail_power
        self.calls: list[tuple[str, Any]] = []

    async def call(
        self, target: BmcTarget, what: str, fn: Any, *, timeout: float | None = None
    ) -> Any:
        return await fn(self)

    async def get_power(self, target: BmcTarget) -> PowerState:
        self.calls.append(("get_power", None))
        return self.power

    async def set_boot_device(self, target: BmcTarget, *, device: BootDevice, **kw: Any) -> None:
        self.calls.append(("boot", device))

    async def set_power(self, target: BmcTarget, *, action: PowerAction, wait: float = 0) -> None:
        self.calls.append(("power", action))
        if self.fail_power:
            raise BmcError("BMC 10.0.0.1:623: power cycle: node busy", transient=True)


def ctx(bmc: ScriptedBmc) -> StepContext:
    target = BmcTarget("ipmi", "10.0.0.1", 623, "admin", "x")
    return StepContext("id", "n1", "uefi", target, bmc, {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("power", "action"), [(PowerState.ON, PowerAction.RESET), (PowerState.OFF, PowerAction.CYCLE)]
)
async def test_pxe_boot_sets_boot_device_right_before_the_power_action(
    power: PowerState, action: PowerAction
) -> None:
    bmc = ScriptedBmc(power, fail_power=False)
    await pxe_boot(ctx(bmc))
    assert bmc.calls == [("get_power", None), ("boot", BootDevice.PXE), ("power", action)]


async def test_pxe_boot_clears_the_override_when_the_power_action_fails() -> None:
    bmc = ScriptedBmc(PowerState.OFF, fail_power=True)
    with pytest.raises(BmcError, match="node busy"):
        await pxe_boot(ctx(bmc))
    assert bmc.calls[-2:] == [("power", PowerAction.CYCLE), ("boot", BootDevice.NONE)]


async def test_pxe_boot_refuses_unknown_power() -> None:
    bmc = ScriptedBmc(PowerState.UNKNOWN, fail_power=False)
    with pytest.raises(BmcError, match="unknown"):
        await pxe_boot(ctx(bmc))
    assert bmc.calls == [("get_power", None)]
