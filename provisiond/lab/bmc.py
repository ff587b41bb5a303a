"""Lab BMCs: up to a thousand virtual IPMI 2.0 (RMCP+) BMCs in one process on 127.0.0.1 ports.

Each BMC is pyghmi's BMC server (with drivers.bmc.pyghmi_fixes applied) holding a power state,
boot flags (with the 60 s valid-bit expiry real BMCs have), a device id with firmware revision, a
system GUID and a FRU inventory. One thread drives every socket through epoll; pyghmi's own I/O
thread (select(), limited to 1024 descriptors) is never started in this process.

Faults per BMC, from a JSON control file that is re-read when it changes (docs/lab.md):
  {"6230": {"hung": true}, "6231": {"slow": 2.5}, "6232": {"drop": 30},
   "6233": {"wrong_password": true}, "6234": {"flap": 5}, "*": {"firmware": "1.74"}}
  hung            no answer at all, to anything (a dead or wedged BMC)
  slow            seconds added before each answer
  drop            percent of incoming packets silently dropped
  wrong_password  the BMC's password was changed: logins fail the way real ones do
  flap            the power state flips by itself every N seconds
  firmware        firmware revision reported by Get Device ID ("major.minor", minor two digits)
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import random
import resource
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.private.session as ipmisession

from drivers.bmc import pyghmi_fixes
from provisiond.errors import ProvisionError

log = logging.getLogger("provisiond.lab.bmc")

MAX_BMCS = 1000
SESSION_IDLE_SECONDS = 60.0  # IPMI session inactivity timeout of typical BMCs
BOOT_FLAG_VALID_SECONDS = 60.0  # IPMI 2.0 §28.12: the BMC clears the valid bit after 60 s
# Identity every lab BMC reports unless the control file says otherwise: IANA 10876 with an
# X12-class product id, so firmware rules can be written against the lab.
LAB_MANUFACTURER_ID = 10876
LAB_PRODUCT_ID = 0x1B0A
LAB_FIRMWARE = "1.74"

_BOOT_DEVICES = {0x0: "none", 0x1: "pxe", 0x2: "disk", 0x5: "cdrom", 0x6: "bios"}


@dataclass(frozen=True)
class Fault:
    hung: bool = False
    slow: float = 0.0
    drop: float = 0.0
    wrong_password: bool = False
    flap: float = 0.0
    firmware: str = LAB_FIRMWARE

    @classmethod
    def parse(cls, where: str, raw: object) -> Fault:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object, got {raw!r}")
        known = {"hung", "slow", "drop", "wrong_password", "flap", "firmware"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}"
            )
        f = cls(
            hung=bool(raw.get("hung", False)),
            slow=float(raw.get("slow", 0.0)),
            drop=float(raw.get("drop", 0.0)),
            wrong_password=bool(raw.get("wrong_password", False)),
            flap=float(raw.get("flap", 0.0)),
            firmware=str(raw.get("firmware", LAB_FIRMWARE)),
        )
        if not 0 <= f.drop <= 100:
            raise ValueError(f"{where}.drop: a percentage 0-100, got {f.drop}")
        if f.slow < 0 or f.flap < 0:
            raise ValueError(f"{where}: slow and flap must be >= 0")
        _firmware_bytes(f.firmware, where)
        return f


def _firmware_bytes(text: str, where: str = "firmware") -> tuple[int, int]:
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit() and len(minor) <= 2 and int(major) < 128):
        raise ValueError(f"{where}.firmware: expected 'major.minor' like '1.74', got {text!r}")
    return int(major), int(minor[:2].ljust(2, "0"), 16)  # minor is BCD


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A --fault flag: PORT=hung | PORT=slow:2.5 | PORT=drop:30 | PORT=wrong-password |
    PORT=flap:5 | PORT=firmware:1.73 (PORT may be '*')."""
    port, sep, what = spec.partition("=")
    name, _, arg = what.partition(":")
    name = name.replace("-", "_")
    if not sep or not port or not name:
        raise ValueError(f"--fault {spec!r}: expected PORT=FAULT[:VALUE]")
    value: Any = True if name in ("hung", "wrong_password") else arg
    if name in ("slow", "drop", "flap"):
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(f"--fault {spec!r}: {name} needs a number") from None
    return port, {name: value}


class _AuthData:
    """pyghmi's server asks ``authdata.get(user)``; a wrong_password fault changes the answer."""

    def __init__(self, bmc: LabBmc, username: str, password: str) -> None:
        self.bmc = bmc
        self.username = username
        self.password = password

    def get(self, user: str, default: Any = None) -> Any:
        if user != self.username:
            return default
        return (
            "changed-by-fault-" + self.password if self.bmc.fault.wrong_password else self.password
        )


@dataclass
class BootFlags:
    data: bytes = bytes(5)  # boot flags parameter 5, bytes 1-5
    set_at: float = 0.0

    def current(self, now: float) -> bytes:
        b = bytearray(self.data)
        persistent = bool(b[0] & 0x40)
        if b[0] & 0x80 and not persistent and now - self.set_at > BOOT_FLAG_VALID_SECONDS:
            b[0] &= 0x7F
        return bytes(b)


@dataclass
class BmcStats:
    packets: int = 0
    dropped: int = 0
    sessions: int = 0
    boots: list[str] = field(default_factory=list)


class LabBmc(pyghmi_bmc.Bmc):  # type: ignore[misc]
    def __init__(self, index: int, port: int, address: str, username: str, password: str) -> None:
        self.index = index
        self.fault = Fault()
        self.power = "off"
        self.power_changed = time.monotonic()
        self.boot = BootFlags()
        self.stats = BmcStats()
        self.guid = uuid.UUID(int=(0x5052_4F56 << 96) | (port << 32) | index)
        super().__init__(_AuthData(self, username, password), port=port, address=address)
        self.uuid = self.guid
        self.mfgid = LAB_MANUFACTURER_ID
        self.prodid = LAB_PRODUCT_ID
        self.serial = f"LAB{port:05d}"
        self.nodes: Any = None  # provisiond.lab.node.LabNodes: the host behind this BMC
        self.bind_address = address

    # power -----------------------------------------------------------------------------------
    def get_power_state(self) -> str:
        if self.fault.flap > 0:
            flips = int((time.monotonic() - self.power_changed) / self.fault.flap)
            if flips % 2:
                return "on" if self.power == "off" else "off"
        return self.power

    def _set_power(self, state: str) -> None:
        self.power = state
        self.power_changed = time.monotonic()

    def _boot(self) -> None:
        """The host starts: a one-time boot override is consumed, as firmware does."""
        flags = self.boot.current(time.monotonic())
        device = _BOOT_DEVICES.get((flags[1] >> 2) & 0xF, "none") if flags[0] & 0x80 else "none"
        self.stats.boots.append(device)
        if flags[0] & 0x80 and not flags[0] & 0x40:
            self.boot = BootFlags(bytes([flags[0] & 0x7F, *flags[1:]]), self.boot.set_at)
        if self.nodes is not None:
            self.nodes.on_boot(
                self.bind_address, self.port, device, lambda: self.get_power_state() == "on"
            )

    def power_on(self) -> int:
        if self.get_power_state() == "off":
            self._set_power("on")
            self._boot()
        return 0

    def power_off(self) -> int:
        self._set_power("off")
        if self.nodes is not None:
            self.nodes.power_changed(self.bind_address, self.port)
        return 0

    def power_shutdown(self) -> int:  # soft off: the lab's "OS" obeys at once
        return self.power_off()

    def power_reset(self) -> int:
        if self.get_power_state() == "on":
            self._boot()
        return 0

    def power_cycle(self) -> int:
        if self.get_power_state() == "off":
            return 0xD5  # IPMI: "command not supported in present state"
        self._set_power("on")
        self._boot()
        return 0

    def pulse_diag(self) -> int:
        return 0

    def cold_reset(self) -> int:
        return 0

    def get_system_guid(self) -> uuid.UUID:
        return self.guid

    # boot options ----------------------------------------------------------------------------
    def get_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        param = request["data"][0] & 0x7F
        if param == 5:
            data = self.boot.current(time.monotonic())
            session.send_ipmi_response(data=[1, 5, *data])
        elif param == 0:
            session.send_ipmi_response(data=[1, 0, 0])
        elif param == 3:
            session.send_ipmi_response(data=[1, 3, 0])
        elif param == 4:
            session.send_ipmi_response(data=[1, 4, 0, 0])
        else:
            session.send_ipmi_response(code=0x80)  # parameter not supported

    def set_system_boot_options(self, request: dict[str, Any], session: Any) -> None:
        data = bytes(request["data"])
        param = data[0] & 0x7F
        if param == 5:
            if len(data) < 3:
                session.send_ipmi_response(code=0xC7)  # request data length invalid
                return
            flags = (data[1:6] + bytes(5))[:5]
            if ((flags[1] >> 2) & 0xF) not in _BOOT_DEVICES:
                session.send_ipmi_response(code=0xCC)
                return
            self.boot = BootFlags(flags, time.monotonic())
            session.send_ipmi_response()
        elif param in (0, 3, 4):
            session.send_ipmi_response()
        else:
            session.send_ipmi_response(code=0x80)

    # identity and FRU ------------------------------------------------------------------------
    def send_device_id(self, session: Any) -> None:
        """Get Device ID with the layout of IPMI 2.0 §20.1: 3-byte manufacturer, 2-byte product
        (pyghmi's server packs 4 + 4)."""
        major, minor = _firmware_bytes(self.fault.firmware)
        # device 0x20, revision 1 (no device SDRs); additional support: chassis + FRU only
        data = [0x20, 0x01, major, minor, 0x02, 0x88]
        data += list(struct.pack("<I", self.mfgid)[:3]) + list(struct.pack("<H", self.prodid))
        data += [0, 0, 0, 0]
        session.send_ipmi_response(data=data)

    def fru(self) -> bytes:
        return build_fru(
            manufacturer="Supermicro",
            product="LAB-X12-1U",
            serial=self.serial,
            part="LAB-X12-PN",
            board_serial=f"LB{self.index:06d}",
        )

    def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
        if request["netfn"] == 0x0A and request["command"] in (0x10, 0x11):
            data = request["data"]
            if not data or data[0] != 0:
                session.send_ipmi_response(code=0xCB)  # requested sensor/FRU not present
                return
            image = self.fru()
            if request["command"] == 0x10:
                session.send_ipmi_response(data=[len(image) & 0xFF, len(image) >> 8, 0])
                return
            if len(data) < 4:
                session.send_ipmi_response(code=0xC7)
                return
            offset = data[1] | data[2] << 8
            chunk = image[offset : offset + min(data[3], 64)]
            session.send_ipmi_response(data=[len(chunk), *chunk])
            return
        super().handle_raw_request(request, session)


def _tlv(text: str) -> bytes:
    raw = text.encode("ascii", "replace")[:63]
    return bytes([0xC0 | len(raw)]) + raw


def _area(body: bytes) -> bytes:
    body = body + b"\xc1"  # end of fields
    length = (len(body) + 1 + 7) // 8 * 8
    body = body.ljust(length - 1, b"\x00")
    return body + bytes([(-sum(body)) & 0xFF])


def build_fru(
    *, manufacturer: str, product: str, serial: str, part: str, board_serial: str
) -> bytes:
    """A FRU image (IPMI Platform Management FRU Information Storage Definition v1.0) with a
    board area and a product area."""
    board = _area(
        bytes([1, 0, 0, 0, 0, 0])  # version, length (patched below), language, mfg date
        + _tlv(manufacturer)
        + _tlv(product + " board")
        + _tlv(board_serial)
        + _tlv(part + "-MB")
        + _tlv("")
    )
    board = board[:1] + bytes([len(board) // 8]) + board[2:-1]
    board += bytes([(-sum(board)) & 0xFF])
    prod = _area(
        bytes([1, 0, 0])
        + _tlv(manufacturer)
        + _tlv(product)
        + _tlv(part)
        + _tlv("1.0")
        + _tlv(serial)
        + _tlv("")
        + _tlv("")
    )
    prod = prod[:1] + bytes([len(prod) // 8]) + prod[2:-1]
    prod += bytes([(-sum(prod)) & 0xFF])
    header = bytes([1, 0, 0, 1, 1 + len(board) // 8, 0, 0])
    header += bytes([(-sum(header)) & 0xFF])
    return header + board + prod


@contextlib.contextmanager
def _own_sockets() -> Iterator[None]:
    """While lab BMCs are built, pyghmi binds their sockets without registering them with (or
    starting) its own select()-based I/O thread; the lab's epoll loop reads them instead."""

    def bind_only(cls: Any, server: Any = None, forbiddensockets: Any = ()) -> socket.socket:
        family, _, _, _, addr = server
        s = socket.socket(family, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(addr)
        s.setblocking(False)
        return s

    saved = ipmisession.Session.__dict__["_assignsocket"]
    ipmisession.Session._assignsocket = classmethod(bind_only)
    try:
        yield
    finally:
        ipmisession.Session._assignsocket = saved


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            raise OSError(f"need {needed} file descriptors, the hard limit is {hard} (ulimit -n)")


class Lab:
    def __init__(
        self,
        *,
        count: int,
        base_port: int,
        address: str = "127.0.0.1",
        username: str = "admin",
        password: str = "password",
        control: Path | None = None,
        faults: dict[str, dict[str, Any]] | None = None,
        nodes: Any = None,
    ) -> None:
        if not 1 <= count <= MAX_BMCS:
            raise ValueError(f"--count must be 1..{MAX_BMCS}, got {count}")
        if base_port < 1 or base_port + count - 1 > 65535:
            raise ValueError(f"ports {base_port}..{base_port + count - 1} are out of range")
        pyghmi_fixes.apply()
        _raise_fd_limit(count + 64)
        self.address = address
        self.control = control
        self._control_mtime: float | None = None
        self._flag_faults = faults or {}
        self._sel = selectors.DefaultSelector()
        self.bmcs: dict[int, LabBmc] = {}
        self._delayed: list[tuple[float, int, LabBmc, socket.socket, bytes, Any]] = []
        self._seq = 0
        self._seen: dict[tuple[Any, int], float] = {}
        self._stop = threading.Event()
        self._rng = random.Random()
        with _own_sockets():
            try:
                for i in range(count):
                    bmc = LabBmc(i, base_port + i, address, username, password)
                    bmc.nodes = nodes
                    self.bmcs[bmc.port] = bmc
                    self._sel.register(bmc.serversocket, selectors.EVENT_READ, bmc)
            except OSError as exc:
                self.close()
                raise OSError(
                    f"cannot bind lab BMC on {address}:{base_port + len(self.bmcs)}: {exc}"
                ) from exc
        self._apply_faults(self._flag_faults, {})

    # control ---------------------------------------------------------------------------------
    def _apply_faults(self, flags: dict[str, dict[str, Any]], file: dict[str, Any]) -> None:
        merged: dict[str, dict[str, Any]] = {}
        for source in (flags, file):
            for key, raw in source.items():
                merged.setdefault(key, {}).update(raw)
        default = Fault.parse("*", merged.get("*", {}))
        per: dict[int, Fault] = {}
        for key, raw in merged.items():
            if key == "*":
                continue
            if not key.isdigit() or int(key) not in self.bmcs:
                raise ValueError(f"{key!r}: not a lab BMC port")
            per[int(key)] = Fault.parse(key, {**merged.get("*", {}), **raw})
        for port, bmc in self.bmcs.items():
            new = per.get(port, default)
            if new.flap != bmc.fault.flap:
                bmc.power_changed = time.monotonic()
            bmc.fault = new

    def _reload(self) -> None:
        if self.control is None:
            return
        try:
            mtime = self.control.stat().st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._control_mtime:
            return
        self._control_mtime = mtime
        try:
            data = json.loads(self.control.read_text()) if mtime is not None else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object of PORT -> faults")
            self._apply_faults(self._flag_faults, data)
            log.info("lab bmc: faults from %s applied", self.control)
        except (OSError, ValueError) as exc:
            log.error("lab bmc: %s: %s (faults unchanged)", self.control, exc)

    # the loop --------------------------------------------------------------------------------
    def _deliver(self, bmc: LabBmc, sock: socket.socket, data: bytes, addr: Any) -> None:
        handlers = ipmisession.Session.bmc_handlers
        sessions = handlers.get(addr)
        if sessions is not None and bmc.port in sessions:
            target: Any = sessions[bmc.port]
            pkt = (data, addr, sock, True)
        else:
            target = bmc
            pkt = (data, addr, sock, False)
        self._seen[(addr, bmc.port)] = time.monotonic()
        target.pktqueue.append(pkt)
        try:
            target.process_pktqueue()
        except Exception:  # a bad packet must never stop the other 999 BMCs
            target.pktqueue.clear()
            log.exception("lab bmc %d: packet from %s raised; dropped", bmc.port, addr)

    def _receive(self, bmc: LabBmc, sock: socket.socket) -> None:
        for _ in range(64):  # bounded: one busy BMC cannot starve the others
            try:
                data, addr = sock.recvfrom(3000)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 4:
                continue
            bmc.stats.packets += 1
            f = bmc.fault
            if f.hung or (f.drop and self._rng.random() * 100 < f.drop):
                bmc.stats.dropped += 1
                continue
            if f.slow > 0:
                self._seq += 1
                heapq.heappush(
                    self._delayed, (time.monotonic() + f.slow, self._seq, bmc, sock, data, addr)
                )
                continue
            self._deliver(bmc, sock, data, addr)

    def _expire_sessions(self, now: float) -> None:
        handlers = ipmisession.Session.bmc_handlers
        for key, seen in list(self._seen.items()):
            if now - seen > SESSION_IDLE_SECONDS:
                del self._seen[key]
                addr, port = key
                sessions = handlers.get(addr)
                if isinstance(sessions, dict):
                    sessions.pop(port, None)
                    if not sessions:
                        handlers.pop(addr, None)

    def serve_forever(self) -> None:
        next_housekeeping = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_housekeeping:
                self._reload()
                self._expire_sessions(now)
                next_housekeeping = now + 0.5
            while self._delayed and self._delayed[0][0] <= now:
                _, _, bmc, sock, data, addr = heapq.heappop(self._delayed)
                self._deliver(bmc, sock, data, addr)
            wait = next_housekeeping - now
            if self._delayed:
                wait = min(wait, self._delayed[0][0] - now)
            for key, _ in self._sel.select(max(0.0, wait)):
                self._receive(key.data, key.fileobj)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        for bmc in self.bmcs.values():
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(bmc.serversocket)
            bmc.serversocket.close()
        self._sel.close()


def run(
    *,
    count: int,
    base_port: int,
    address: str,
    username: str,
    password: str,
    control: Path | None,
    faults: list[str],
    racks: list[Path] | None = None,
    boot_url: str = "",
    post_delay: float = 1.0,
) -> int:
    """`provisiond lab bmc`: serve until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    flag_faults: dict[str, dict[str, Any]] = {}
    try:
        for spec in faults:
            port, fault = parse_spec(spec)
            flag_faults.setdefault(port, {}).update(fault)
        nodes = None
        if racks:
            from provisiond.lab.node import LabNodes, load_racks

            if not boot_url:
                raise ValueError("--rack needs --boot-url (where lab nodes fetch iPXE scripts)")
            nodes = LabNodes(load_racks(racks), boot_url, post_delay=post_delay)
        lab = Lab(
            count=count,
            base_port=base_port,
            address=address,
            username=username,
            password=password,
            control=control,
            faults=flag_faults,
            nodes=nodes,
        )
    except (ValueError, OSError, ProvisionError) as exc:
        print(f"provisiond lab bmc: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: lab.stop())
    signal.signal(signal.SIGINT, lambda *_: lab.stop())
    last = base_port + count - 1
    print(
        f"lab bmc: {count} IPMI BMC(s) on {address}:{base_port}-{last} "
        f"(user {username!r}, pid {os.getpid()}) ready",
        flush=True,
    )
    try:
        lab.serve_forever()
    finally:
        lab.close()
    return 0


__all__ = ["Fault", "Lab", "LabBmc", "build_fru", "parse_spec", "run"]
