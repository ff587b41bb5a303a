"""Steps and the workflow table.

A step is one of: a call (side effects through drivers, returns node updates), a lifecycle
transition (the engine applies it in the same transaction as the step pointer), or a wait (the
operation parks until a call-back resumes it or the state's deadline fails it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from drivers.bmc.base import BmcTarget, BootDevice, PowerAction, PowerState, Unsupported
from provisiond.bmc import BmcGateway
from provisiond.errors import BmcError
from provisiond.lifecycle import Action, Internal


@dataclass(frozen=True)
class NodeUpdate:
    """What a call step learned about the node, written with the step's completion."""

    power_state: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    checked_at: dt.datetime | None = None


@dataclass(frozen=True)
class StepContext:
    node_id: str
    node_name: str
    boot_mode: str
    target: BmcTarget
    bmc: BmcGateway
    params: Mapping[str, Any]


StepFn = Callable[[StepContext], Awaitable[NodeUpdate]]


@dataclass(frozen=True)
class Step:
    name: str
    kind: Literal["call", "transition", "wait"]
    fn: StepFn | None = None
    event: Internal | None = None


# How long a power action may take to show in the BMC's power state (some BMCs, and the Redfish
# emulator, apply it seconds after accepting it). Kept below the gateway's per-call deadline.
POWER_WAIT = 30.0
# a best-effort undo after a failed step may cost at most this
CLEANUP_TIMEOUT = 20.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def verify_bmc(ctx: StepContext) -> NodeUpdate:
    """Reachability and credentials (validate), power state, and what the BMC says it is and
    fronts (identity, FRU/system inventory where offered) as facts."""
    ident = await ctx.bmc.call(ctx.target, "validate", lambda d: d.validate(ctx.target))
    power = await ctx.bmc.call(ctx.target, "get power", lambda d: d.get_power(ctx.target))
    facts: dict[str, Any] = {
        "bmc": {
            "manufacturer": ident.manufacturer,
            "product": ident.product,
            "firmware": ident.firmware,
            "manufacturer_id": ident.manufacturer_id,
            "product_id": ident.product_id,
        }
    }
    try:
        inv = await ctx.bmc.call(ctx.target, "inventory", lambda d: d.get_inventory(ctx.target))
    except Unsupported:
        pass
    else:
        facts["system"] = {
            "manufacturer": inv.manufacturer,
            "product": inv.product,
            "serial": inv.serial,
            "part_number": inv.part_number,
            **{k: v for k, v in inv.extra.items() if isinstance(v, str)},
        }
    return NodeUpdate(power_state=power.value, checked_at=_now(), facts=facts)


async def pxe_boot(ctx: StepContext) -> NodeUpdate:
    """Boot from the network once: boot device right before the power action (the IPMI boot flag
    expires after 60 s on many BMCs), then reset a node that is on or cycle one that is off;
    refuse a node whose power state is unknown.

    Off nodes get CYCLE, not ON: every driver turns a cycle of an off node into "on", but a node
    that came on by itself since the read is then rebooted, where "on" would do nothing and the
    node would never PXE-boot. If the power action fails, the one-time override is cleared
    (best effort): Redfish keeps a "Once" override until the next boot, which would otherwise
    come at an unexpected time."""
    power = await ctx.bmc.call(ctx.target, "get power", lambda d: d.get_power(ctx.target))
    if power is PowerState.UNKNOWN:
        raise BmcError(
            f"node {ctx.node_name}: BMC reports power state unknown; refusing to reset a node "
            "whose state is unknown",
            transient=True,
        )
    uefi = ctx.boot_mode == "uefi"
    await ctx.bmc.call(
        ctx.target,
        "set boot device",
        lambda d: d.set_boot_device(ctx.target, device=BootDevice.PXE, persistent=False, uefi=uefi),
    )
    action = PowerAction.RESET if power is PowerState.ON else PowerAction.CYCLE
    try:
        await ctx.bmc.call(
            ctx.target,
            f"power {action.value}",
            lambda d: d.set_power(ctx.target, action=action, wait=POWER_WAIT),
        )
    except Exception:  # not on cancellation: the engine's own shutdown path owns that
        with contextlib.suppress(Exception):
            await ctx.bmc.call(
                ctx.target,
                "clear boot override",
                lambda d: d.set_boot_device(ctx.target, device=BootDevice.NONE),
                timeout=min(ctx.bmc.timeout, CLEANUP_TIMEOUT),
            )
        raise
    return NodeUpdate(power_state=PowerState.ON.value, checked_at=_now())


def _power(action: PowerAction, expect: PowerState) -> StepFn:
    async def step(ctx: StepContext) -> NodeUpdate:
        await ctx.bmc.call(
            ctx.target,
            f"power {action.value}",
            lambda d: d.set_power(ctx.target, action=action, wait=POWER_WAIT),
        )
        return NodeUpdate(power_state=expect.value, checked_at=_now())

    step.__name__ = f"power_{action.value}"
    return step


async def reboot(ctx: StepContext) -> NodeUpdate:
    power = await ctx.bmc.call(ctx.target, "get power", lambda d: d.get_power(ctx.target))
    if power is PowerState.UNKNOWN:
        raise BmcError(
            f"node {ctx.node_name}: power state unknown; refusing to reset it", transient=True
        )
    action = PowerAction.RESET if power is PowerState.ON else PowerAction.ON
    await ctx.bmc.call(
        ctx.target,
        f"power {action.value}",
        lambda d: d.set_power(ctx.target, action=action, wait=POWER_WAIT),
    )
    return NodeUpdate(power_state=PowerState.ON.value, checked_at=_now())


power_on = _power(PowerAction.ON, PowerState.ON)
power_off = _power(PowerAction.OFF, PowerState.OFF)


def _call(name: str, fn: StepFn) -> Step:
    return Step(name=name, kind="call", fn=fn)


def _move(event: Internal) -> Step:
    return Step(name=f"transition-{event.value}", kind="transition", event=event)


WAIT = Step(name="wait-callback", kind="wait")
DONE = _move(Internal.DONE)

_DEPLOY = (_call("pxe-boot", pxe_boot), _move(Internal.WAIT), WAIT, DONE)

# Cleaning today powers the node off; the network moves (issue: tenants) and disk erase join it
# as further steps without changing the engine.
WORKFLOWS: Mapping[str, tuple[Step, ...]] = {
    Action.MANAGE: (_call("verify-bmc", verify_bmc), DONE),
    Action.INSPECT: (
        _call("pxe-boot", pxe_boot),
        _move(Internal.WAIT),
        WAIT,
        _call("power-off", power_off),
        DONE,
    ),
    Action.PROVIDE: (_call("power-off", power_off), DONE),
    Action.DEPLOY: _DEPLOY,
    Action.REBUILD: _DEPLOY,
    Action.UNDEPLOY: (_call("power-off", power_off), DONE, DONE),
    Action.POWER_ON: (_call("power-on", power_on),),
    Action.POWER_OFF: (_call("power-off", power_off),),
    Action.REBOOT: (_call("reboot", reboot),),
}
