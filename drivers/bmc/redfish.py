"""Redfish BMC driver: power, boot override, identity and inventory of one ComputerSystem.

Owns one aiohttp session per driver instance and the translation of HTTP and Redfish answers into
BmcError / AuthError / Unsupported, each naming the BMC URL. Vendor decisions (reset-type
fallbacks, boot override bodies, parsing of ComputerSystem) are pure helpers at the top; the
driver class only sends and receives. It must never block the event loop, retry a refused login,
or put a password in a message or a log line. See docs/redfish.md for the operator's view.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
from pydantic import ValidationError as PydanticValidationError

from drivers.bmc.base import (
    AuthError,
    BmcDriver,
    BmcIdentity,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
    SystemInventory,
    Unsupported,
)
from provisiond.config import RedfishSettings
from provisiond.errors import BmcError, ConfigError

log = logging.getLogger(__name__)

ROOT = "/redfish/v1"

# --- platform facts ------------------------------------------------------------------------------

_POWER_STATES = {"On": PowerState.ON, "Off": PowerState.OFF}

#: Reset types to try for each action, best first. A tuple of two is a sequence: the first must
#: take effect (power reads Off) before the second is sent.
_RESET_CHOICES: dict[PowerAction, tuple[tuple[str, ...], ...]] = {
    PowerAction.ON: (("On",), ("ForceOn",)),
    PowerAction.OFF: (("ForceOff",),),
    PowerAction.SOFT_OFF: (("GracefulShutdown",),),
    PowerAction.RESET: (("ForceRestart",), ("GracefulRestart",)),
    PowerAction.CYCLE: (("PowerCycle",), ("ForceOff", "On"), ("ForceOff", "ForceOn")),
}

_BOOT_TARGETS = {
    BootDevice.PXE: "Pxe",
    BootDevice.DISK: "Hdd",
    BootDevice.BIOS: "BiosSetup",
    BootDevice.NONE: "None",
}
_BOOT_DEVICES = {v: k for k, v in _BOOT_TARGETS.items()}

#: with wait=0, how long a power cycle done as ForceOff + On waits for the Off in between (the
#: gateway's deadline still bounds the whole call)
CYCLE_OFF_WAIT = 120.0
#: reads of the boot override after a PATCH before we call it "did not stick"
BOOT_READBACK_TRIES = 3
#: members of a collection fetched to name them in an error message
NAMED_MEMBERS = 8


# --- pure helpers --------------------------------------------------------------------------------


def base_url(address: str, port: int | None) -> str:
    """``scheme://host[:port]`` of the service. A URL is taken as given (its path is ignored);
    a bare host or IP address means HTTPS on ``port`` (443 when None)."""
    address = address.strip()
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {address!r}")
        if parts.username is not None or parts.password is not None:
            # never echo the address: it holds a password
            raise ValueError("the BMC address must not carry credentials; use username/password")
        try:
            url_port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {address!r}") from exc
        host = _host_in_url(parts.hostname)
        return f"{parts.scheme}://{host}" + (f":{url_port}" if url_port else "")
    if not address or "/" in address or "@" in address:
        raise ValueError(f"not a host, IP address or URL: {address!r}")
    host = _host_in_url(address.strip("[]"))
    return f"https://{host}" + (f":{port}" if port else "")


def _host_in_url(host: str) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def reset_plan(action: PowerAction, allowed: Sequence[str] | None) -> tuple[str, ...]:
    """Reset types to POST for ``action``: the first choice the BMC allows; with no
    ``ResetType@Redfish.AllowableValues`` advertised, the first choice. Empty: nothing fits."""
    choices = _RESET_CHOICES[action]
    if allowed is None:
        return choices[0]
    for plan in choices:
        if all(step in allowed for step in plan):
            return plan
    return ()


def reset_allowed(system: Mapping[str, Any]) -> list[str] | None:
    """``ResetType@Redfish.AllowableValues`` of the system's Reset action, None if not given."""
    action = _dict(_dict(system.get("Actions")).get("#ComputerSystem.Reset"))
    values = action.get("ResetType@Redfish.AllowableValues")
    if isinstance(values, list):
        return [str(v) for v in values]
    return None


def reset_target(system: Mapping[str, Any], system_path: str) -> str:
    action = _dict(_dict(system.get("Actions")).get("#ComputerSystem.Reset"))
    target = action.get("target")
    if isinstance(target, str) and target:
        return target
    return system_path.rstrip("/") + "/Actions/ComputerSystem.Reset"


def parse_power(system: Mapping[str, Any]) -> PowerState:
    """On/Off; transitional states (PoweringOn, PoweringOff, Paused) and a missing PowerState
    are UNKNOWN: reporting the state a node is heading for would let a caller act on a change
    that may still fail."""
    return _POWER_STATES.get(str(system.get("PowerState")), PowerState.UNKNOWN)


def boot_patch(
    boot: Mapping[str, Any], device: BootDevice, *, persistent: bool, uefi: bool
) -> dict[str, str]:
    """The ``Boot`` object to PATCH; raises ValueError naming what the BMC does not offer."""
    target = _BOOT_TARGETS[device]
    if device is BootDevice.NONE:
        # no override: the firmware's own order; the boot mode is left alone
        return {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Disabled"}
    _require_allowed(boot, "BootSourceOverrideTarget", target)
    enabled = "Continuous" if persistent else "Once"
    _require_allowed(boot, "BootSourceOverrideEnabled", enabled)
    body = {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": enabled}
    if "BootSourceOverrideMode" in boot:
        mode = "UEFI" if uefi else "Legacy"
        _require_allowed(boot, "BootSourceOverrideMode", mode)
        body["BootSourceOverrideMode"] = mode
    return body


def _require_allowed(boot: Mapping[str, Any], prop: str, value: str) -> None:
    allowed = boot.get(f"{prop}@Redfish.AllowableValues")
    if isinstance(allowed, list) and value not in allowed:
        offered = ", ".join(str(v) for v in allowed) or "nothing"
        raise ValueError(f"{prop} {value!r} is not offered (BMC allows: {offered})")


def boot_mismatch(boot: Mapping[str, Any], wanted: Mapping[str, str]) -> str | None:
    """What the read-back ``Boot`` lacks of ``wanted``, None when it stuck. Persistence
    (Once/Continuous) is not compared: a Once override reverts to Disabled after the next boot,
    and some services (the sushy-tools emulator among them) always report Continuous."""
    target = wanted["BootSourceOverrideTarget"]
    if wanted.get("BootSourceOverrideEnabled") == "Disabled":
        if boot.get("BootSourceOverrideEnabled") == "Disabled" or boot.get(
            "BootSourceOverrideTarget"
        ) in (None, "None"):
            return None
        return f"override still {boot.get('BootSourceOverrideTarget')!r}"
    if boot.get("BootSourceOverrideTarget") != target:
        return f"target is {boot.get('BootSourceOverrideTarget')!r}, not {target!r}"
    mode = wanted.get("BootSourceOverrideMode")
    if mode is not None and boot.get("BootSourceOverrideMode") != mode:
        return f"mode is {boot.get('BootSourceOverrideMode')!r}, not {mode!r}"
    return None


def parse_boot(system: Mapping[str, Any]) -> BootSetting:
    """BootSetting from ``Boot``; raises ValueError for an override provisiond cannot name
    (Cd, Usb, UefiHttp, ...)."""
    boot = _dict(system.get("Boot"))
    enabled = boot.get("BootSourceOverrideEnabled")
    mode = boot.get("BootSourceOverrideMode")
    uefi = {"UEFI": True, "Legacy": False}.get(mode) if isinstance(mode, str) else None
    target = boot.get("BootSourceOverrideTarget")
    if enabled == "Disabled" or target in (None, "None"):
        return BootSetting(device=BootDevice.NONE, persistent=False, uefi=uefi)
    device = _BOOT_DEVICES.get(str(target))
    if device is None:
        raise ValueError(f"boot override target {target!r} has no provisiond equivalent")
    return BootSetting(device=device, persistent=enabled == "Continuous", uefi=uefi)


def parse_identity(system: Mapping[str, Any], manager: Mapping[str, Any] | None) -> BmcIdentity:
    firmware = _text(_dict(manager).get("FirmwareVersion")) or _text(system.get("BiosVersion"))
    return BmcIdentity(
        manufacturer=_text(system.get("Manufacturer")),
        product=_text(system.get("Model")),
        firmware=firmware,
    )


def parse_inventory(system: Mapping[str, Any]) -> SystemInventory:
    cpu = _dict(system.get("ProcessorSummary"))
    mem = _dict(system.get("MemorySummary"))
    candidates = {
        "uuid": system.get("UUID"),
        "bios_version": system.get("BiosVersion"),
        "processor_count": cpu.get("Count"),
        "processor_model": cpu.get("Model"),
        "memory_gib": mem.get("TotalSystemMemoryGiB"),
        "sku": system.get("SKU"),
        "asset_tag": system.get("AssetTag"),
        "system_type": system.get("SystemType"),
        "host_name": system.get("HostName"),
    }
    extra = {k: _text(v) for k, v in candidates.items() if _text(v)}
    return SystemInventory(
        manufacturer=_text(system.get("Manufacturer")),
        product=_text(system.get("Model")),
        serial=_text(system.get("SerialNumber")),
        part_number=_text(system.get("PartNumber")) or _text(system.get("SKU")),
        extra=extra,
    )


def member_paths(collection: Mapping[str, Any]) -> list[str]:
    members = collection.get("Members")
    if not isinstance(members, list):
        return []
    return [m["@odata.id"] for m in members if isinstance(m, dict) and "@odata.id" in m]


def redfish_message(body: Any) -> str:
    """The service's own words from a Redfish error body, '' when it gave none."""
    err = _dict(_dict(body).get("error"))
    texts = [
        _text(info.get("Message"))
        for info in err.get("@Message.ExtendedInfo") or []
        if isinstance(info, dict)
    ]
    texts = [t for t in texts if t] or [_text(err.get("message"))]
    return "; ".join(t for t in texts if t)[:300]


def basic_auth(username: str, password: str) -> str:
    """The Authorization header value (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).strip()


def _last_segment(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# --- transport -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    url: str
    status: int
    body: Any
    etag: str | None


@dataclass(frozen=True)
class _SystemRef:
    """Where one system lives, resolved once per (service, system_id)."""

    url: str
    reset_url: str


class RedfishDriver(BmcDriver):
    """Redfish over aiohttp. Options: RedfishSettings ([drivers.redfish])."""

    name = "redfish"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        try:
            self.settings = RedfishSettings.model_validate(dict(self.options))
        except PydanticValidationError as exc:
            raise ConfigError(f"drivers.redfish: {exc}", key="drivers.redfish") from exc
        self.min_interval = self.settings.min_interval
        self._http: aiohttp.ClientSession | None = None
        self._http_lock = asyncio.Lock()
        self._systems: dict[tuple[str, str | None], _SystemRef] = {}

    # -- session ----------------------------------------------------------------------------------

    async def _session(self) -> aiohttp.ClientSession:
        async with self._http_lock:
            if self._http is None or self._http.closed:
                tls: ssl.SSLContext | bool = self.settings.verify_tls
                if self.settings.verify_tls and self.settings.ca_file:
                    tls = await asyncio.to_thread(self._ssl_context, self.settings.ca_file)
                self._http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self.settings.connections, ssl=tls),
                    timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout),
                    headers={"Accept": "application/json", "OData-Version": "4.0"},
                )
            return self._http

    @staticmethod
    def _ssl_context(ca_file: str) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"drivers.redfish.ca_file: cannot load {ca_file!r}: {exc}",
                key="drivers.redfish.ca_file",
            ) from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._systems.clear()

    # -- HTTP -------------------------------------------------------------------------------------

    def _base(self, target: BmcTarget) -> str:
        try:
            return base_url(target.address, target.port)
        except ValueError as exc:
            raise BmcError(f"Redfish BMC address: {exc}", transient=False) from None

    async def _request(
        self,
        target: BmcTarget,
        method: str,
        url: str,
        *,
        payload: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_404: bool = False,
    ) -> _Reply:
        """One request; every failure but (with ``ok_404``) a 404 becomes a BmcError here."""
        http = await self._session()
        sent = dict(headers or {})
        if target.username:
            if ":" in target.username:
                raise BmcError(
                    f"Redfish {url}: a username for HTTP basic auth may not contain ':'",
                    transient=False,
                )
            # aiohttp drops this header on a redirect to another origin
            sent["Authorization"] = basic_auth(target.username, target.password or "")
        try:
            async with http.request(method, url, json=payload, headers=sent) as resp:
                raw = await resp.read()
                status = resp.status
                etag = resp.headers.get("ETag")
                ctype = resp.content_type
        except aiohttp.ClientConnectorCertificateError as exc:
            raise BmcError(
                f"Redfish {url}: TLS certificate not trusted ({exc.certificate_error}); set "
                "drivers.redfish.ca_file, or verify_tls = false for lab BMCs",
                transient=False,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            why = (
                "connection refused"
                if isinstance(exc.os_error, ConnectionRefusedError)
                else exc.os_error.strerror or str(exc.os_error)
            )
            raise BmcError(f"Redfish {url}: cannot connect ({why})", transient=True) from exc
        except TimeoutError as exc:
            raise BmcError(
                f"Redfish {url}: no answer within {self.settings.request_timeout:g} s",
                transient=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise BmcError(f"Redfish {url}: {type(exc).__name__}: {exc}", transient=True) from exc

        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                if status < 400:
                    raise BmcError(
                        f"Redfish {url}: HTTP {status} answer is not JSON ({ctype})",
                        transient=False,
                    ) from None
        reply = _Reply(url=url, status=status, body=body, etag=etag)
        if status < 400 or (ok_404 and status == 404):
            return reply
        said = redfish_message(body)
        said = f": {said}" if said else ""
        if status in (401, 403):
            who = f"for user {target.username!r}" if target.username else "(no username given)"
            raise AuthError(f"Redfish {url}: credentials refused (HTTP {status}) {who}{said}")
        transient = status >= 500 or status in (408, 409, 412, 429)
        raise BmcError(
            f"Redfish {url}: {method} failed with HTTP {status}{said}", transient=transient
        )

    async def _get(self, target: BmcTarget, url: str, *, ok_404: bool = False) -> _Reply:
        reply = await self._request(target, "GET", url, ok_404=ok_404)
        if reply.status != 404 and not isinstance(reply.body, dict):
            raise BmcError(f"Redfish {url}: GET answered no JSON object", transient=False)
        return reply

    # -- system resolution ------------------------------------------------------------------------

    async def _system(self, target: BmcTarget) -> tuple[_SystemRef, _Reply]:
        """The system's location and a fresh GET of it."""
        base = self._base(target)
        key = (base, target.system_id)
        ref = self._systems.get(key)
        if ref is not None:
            reply = await self._get(target, ref.url, ok_404=True)
            if reply.status != 404:
                return ref, reply
            # renumbered behind our back (BMC reset, firmware update): resolve again
            del self._systems[key]
        reply = await self._resolve(target, base)
        path = reply.body.get("@odata.id")
        url = urljoin(base, path) if isinstance(path, str) and path else reply.url
        ref = _SystemRef(url=url, reset_url=urljoin(base, reset_target(reply.body, url)))
        self._systems[key] = ref
        return ref, reply

    async def _resolve(self, target: BmcTarget, base: str) -> _Reply:
        collection_url = f"{base}{ROOT}/Systems"
        if target.system_id:
            url = f"{collection_url}/{quote(target.system_id, safe='')}"
            reply = await self._get(target, url, ok_404=True)
            if reply.status != 404:
                return reply
            collection = await self._get(target, collection_url)
            found = await self._describe_members(target, base, member_paths(collection.body))
            raise BmcError(
                f"Redfish {url}: no system {target.system_id!r} on this BMC "
                f"(systems here: {found or 'none'})",
                transient=False,
            )
        collection = await self._get(target, collection_url)
        paths = member_paths(collection.body)
        if not paths:
            raise BmcError(f"Redfish {collection_url}: no systems on this BMC", transient=False)
        if len(paths) > 1:
            found = await self._describe_members(target, base, paths)
            raise BmcError(
                f"Redfish {collection_url}: {len(paths)} systems on this BMC ({found}); "
                "set the node's bmc system_id to pick one",
                transient=False,
            )
        return await self._get(target, urljoin(base, paths[0]))

    async def _describe_members(self, target: BmcTarget, base: str, paths: list[str]) -> str:
        """``id (Name), ...`` for an error message; names only for the first few members."""
        described = []
        for i, path in enumerate(paths):
            ident = _last_segment(path)
            name = ""
            if i < NAMED_MEMBERS:
                try:
                    member = await self._get(target, urljoin(base, path), ok_404=True)
                    name = _text(_dict(member.body).get("Name"))
                except BmcError:
                    pass  # only decoration of a message about something else
            described.append(f"{ident} ({name})" if name and name != ident else ident)
        return ", ".join(described)

    # -- contract ---------------------------------------------------------------------------------

    async def validate(self, target: BmcTarget) -> BmcIdentity:
        # the service root answers without credentials on most BMCs; the system does not
        _, system = await self._system(target)
        base = self._base(target)
        manager = None
        managed_by = _dict(system.body.get("Links")).get("ManagedBy")
        paths = member_paths({"Members": managed_by})
        if not paths:
            managers = await self._get(target, f"{base}{ROOT}/Managers", ok_404=True)
            paths = member_paths(managers.body) if managers.status != 404 else []
        if paths:
            reply = await self._get(target, urljoin(base, paths[0]), ok_404=True)
            manager = reply.body if reply.status != 404 else None
        return parse_identity(system.body, manager)

    async def get_power(self, target: BmcTarget) -> PowerState:
        _, system = await self._system(target)
        return parse_power(system.body)

    async def set_power(self, target: BmcTarget, *, action: PowerAction, wait: float = 0) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        ref, system = await self._system(target)
        state = parse_power(system.body)
        if action in (PowerAction.RESET, PowerAction.CYCLE) and state == PowerState.OFF:
            # reset or cycle of a node that is off: BMCs differ (refuse, ignore, power on); the
            # caller wants it on, so ask for exactly that
            action = PowerAction.ON
        if action in (PowerAction.ON, PowerAction.OFF, PowerAction.SOFT_OFF) and (
            state == action.expected
        ):
            # nothing to do; and several BMCs answer 409/400 to "On" when already on
            log.debug("redfish %s: already %s, no %s sent", ref.url, state, action)
            return
        allowed = reset_allowed(system.body)
        plan = reset_plan(action, allowed)
        if not plan:
            raise Unsupported(
                f"Redfish {ref.url}: no reset type for power {action} "
                f"(BMC allows: {', '.join(allowed or []) or 'nothing'})"
            )
        if len(plan) == 1:
            await self._reset(target, ref, plan[0])
        else:
            # off, then on: a BMC that applies the off later would drop an "On" sent meanwhile
            off, on = plan
            await self._reset(target, ref, off)
            off_wait = wait if wait > 0 else CYCLE_OFF_WAIT
            off_until = until if wait > 0 else loop.time() + CYCLE_OFF_WAIT
            await self._wait_power(target, ref, PowerState.OFF, off_until, off_wait)
            await self._reset(target, ref, on)
        if wait > 0:
            await self._wait_power(target, ref, action.expected, until, wait)

    async def _reset(self, target: BmcTarget, ref: _SystemRef, reset_type: str) -> None:
        log.info("redfish %s: reset %s", ref.url, reset_type, extra={"bmc": ref.url})
        await self._request(target, "POST", ref.reset_url, payload={"ResetType": reset_type})

    async def _wait_power(
        self, target: BmcTarget, ref: _SystemRef, expected: PowerState, until: float, wait: float
    ) -> None:
        """Poll until the system reads ``expected``; ``until`` is a loop time, ``wait`` the
        budget it stands for (for the message)."""
        loop = asyncio.get_running_loop()
        while True:
            # a BMC busy applying the change may fail a read (500, timeout): that is not the
            # action failing; keep polling until the budget is spent
            try:
                _, system = await self._system(target)
                state: object = parse_power(system.body)
            except BmcError as exc:
                if not exc.transient:
                    raise
                state = f"unreadable: {exc}"
            if state == expected:
                return
            left = until - loop.time()
            if left <= 0:
                raise BmcError(
                    f"Redfish {ref.url}: did not reach {expected} within {wait:g} s "
                    f"(still {state})",
                    transient=True,
                )
            await asyncio.sleep(min(self.settings.power_poll, left))

    async def set_boot_device(
        self, target: BmcTarget, *, device: BootDevice, persistent: bool = False, uefi: bool = True
    ) -> None:
        ref, system = await self._system(target)
        boot = system.body.get("Boot")
        if not isinstance(boot, dict):
            raise Unsupported(f"Redfish {ref.url}: the system has no Boot override")
        try:
            wanted = boot_patch(boot, device, persistent=persistent, uefi=uefi)
        except ValueError as exc:
            raise Unsupported(f"Redfish {ref.url}: {exc}") from None
        etag = system.etag or _text(system.body.get("@odata.etag")) or None
        headers = {"If-Match": etag} if etag else {}
        log.info("redfish %s: boot override %s", ref.url, wanted, extra={"bmc": ref.url})
        await self._request(target, "PATCH", ref.url, payload={"Boot": wanted}, headers=headers)
        # a 200/204 may only mean "accepted": read back, a few times, before calling it lost
        problem: str | None = None
        for attempt in range(BOOT_READBACK_TRIES):
            if attempt:
                await asyncio.sleep(self.settings.power_poll)
            _, after = await self._system(target)
            problem = boot_mismatch(_dict(after.body.get("Boot")), wanted)
            if problem is None:
                return
        raise BmcError(
            f"Redfish {ref.url}: boot override accepted but did not stick ({problem}); "
            "the BMC may apply it only after a reset",
            transient=True,
        )

    async def get_boot_device(self, target: BmcTarget) -> BootSetting:
        ref, system = await self._system(target)
        try:
            return parse_boot(system.body)
        except ValueError as exc:
            raise Unsupported(f"Redfish {ref.url}: {exc}") from None

    async def get_inventory(self, target: BmcTarget) -> SystemInventory:
        _, system = await self._system(target)
        return parse_inventory(system.body)
