"""Hardware facts from /sys, /proc and a few tools, and the POST that delivers them.

Stdlib only: this module runs under a bare python3 in the inspection ramdisk. Nothing here raises
on a missing or odd source: each source that fails adds a line to the report's ``errors``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from http.client import HTTPException
from pathlib import Path
from typing import Any

AGENT_VERSION = "1"
ENDPOINT = "/v1/agent/inspect"

Runner = Callable[[list[str]], "str | None"]
"""Runs argv and returns its stdout, or None when the command is missing, fails or times out."""

# argv of every command the agent runs (fixture.py answers exactly these)
LSPCI = ["lspci", "-D", "-mm", "-nn"]
LLDPCTL = ["lldpctl", "-f", "json"]
DMIDECODE = ["dmidecode", "-t", "0,1,2"]
IPMI_MC_INFO = ["ipmitool", "mc", "info"]


def ethtool_argv(nic: str) -> list[str]:
    return ["ethtool", "-i", nic]


def run_command(argv: list[str], timeout: float = 20.0) -> str | None:
    """The default Runner: stdout of argv, None if it is missing, fails or outlives timeout."""
    env = {**os.environ, "LC_ALL": "C"}
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, check=False,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------ helpers


def _read(path: Path) -> str | None:
    """A sysfs/procfs file's text, stripped; None when absent or unreadable (EINVAL included)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except (OSError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _opt(text: str | None) -> str | None:
    """Empty means unknown."""
    return text if text else None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def normalize_mac(text: str) -> str | None:
    """aa:bb:.., AA-BB-.., aabb.ccdd.eeff, aabbccddeeff -> lowercase colon form, else None."""
    hexdigits = re.sub(r"[^0-9a-fA-F]", "", text)
    if len(hexdigits) != 12 or len(re.sub(r"[0-9a-fA-F:.\-]", "", text)) != 0:
        return None
    mac = ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2)).lower()
    return mac if _MAC.match(mac) else None


def guid_hex(text: str | None) -> str | None:
    """'0002:c903:000e:0b70' (sysfs) or '0x0002c903000e0b70' -> '0x0002c903000e0b70'."""
    if not text:
        return None
    digits = text.lower().removeprefix("0x").replace(":", "")
    if len(digits) != 16 or not all(c in "0123456789abcdef" for c in digits):
        return None
    return "0x" + digits


def parse_cmdline(text: str) -> dict[str, str]:
    """Kernel command line key=value words (a later repeat wins); bare words map to ''."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out: dict[str, str] = {}
    for word in words:
        if word == "--":  # what follows belongs to init
            break
        key, _, value = word.partition("=")
        out[key] = value
    return out


def read_cmdline(root: Path) -> dict[str, str]:
    text = _read(root / "proc" / "cmdline")
    return parse_cmdline(text) if text else {}


def boot_mac_from(cmdline: dict[str, str]) -> str | None:
    """provisiond.mac= first, then PXELINUX/iPXE's BOOTIF=01-aa-bb-cc-dd-ee-ff."""
    mac = cmdline.get("provisiond.mac")
    if mac:
        found = normalize_mac(mac)
        if found:
            return found
    bootif = cmdline.get("BOOTIF")
    if bootif:
        parts = bootif.replace(":", "-").split("-")
        if len(parts) == 7:  # the leading ARP hardware type (01 = Ethernet)
            parts = parts[1:]
        return normalize_mac("-".join(parts))
    return None


# ------------------------------------------------------------------------------ sources


def _hostname(root: Path) -> str | None:
    for rel in ("proc/sys/kernel/hostname", "etc/hostname"):
        name = _read(root / rel)
        if name and name != "(none)":
            return name.split()[0]
    if root == Path("/"):
        return os.uname().nodename or None
    return None


DMI_FILES = {
    "manufacturer": "sys_vendor",
    "product": "product_name",
    "serial": "product_serial",
    "uuid": "product_uuid",
    "bios_vendor": "bios_vendor",
    "bios_version": "bios_version",
    "bios_date": "bios_date",
    "board_vendor": "board_vendor",
    "board_product": "board_name",
}
# dmidecode -t 0,1,2: (section title, field) per report key
DMIDECODE_FIELDS = {
    "manufacturer": ("System Information", "Manufacturer"),
    "product": ("System Information", "Product Name"),
    "serial": ("System Information", "Serial Number"),
    "uuid": ("System Information", "UUID"),
    "bios_vendor": ("BIOS Information", "Vendor"),
    "bios_version": ("BIOS Information", "Version"),
    "bios_date": ("BIOS Information", "Release Date"),
    "board_vendor": ("Base Board Information", "Manufacturer"),
    "board_product": ("Base Board Information", "Product Name"),
}
# vendor placeholders that identify nothing (identity fields only; BIOS strings stay verbatim)
PLACEHOLDERS = frozenset(
    s.lower()
    for s in (
        "To Be Filled By O.E.M.", "Default string", "Not Specified", "Not Applicable", "None",
        "Not Present", "N/A", "System Serial Number", "System manufacturer", "System Product Name",
        "0123456789", "Unknown",
    )
)  # fmt: skip
IDENTITY_KEYS = ("manufacturer", "product", "serial", "uuid", "board_vendor", "board_product")


def parse_dmidecode(text: str) -> dict[str, str]:
    """The fields of DMIDECODE_FIELDS found in dmidecode's text output."""
    wanted = {v: k for k, v in DMIDECODE_FIELDS.items()}
    out: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            section = line.strip()
            continue
        name, sep, value = line.strip().partition(":")
        key = wanted.get((section, name.strip()))
        if sep and key and key not in out:
            out[key] = value.strip()
    return out


def _clean_system(values: dict[str, str | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in DMI_FILES:
        v = values.get(key)
        v = v.strip() if isinstance(v, str) else None
        if v and key in IDENTITY_KEYS and v.lower() in PLACEHOLDERS:
            v = None
        if v and key == "uuid":
            v = v.lower()
        out[key] = v or None
    return out


def _system(root: Path, run: Runner, errors: list[str]) -> tuple[dict[str, str | None], str]:
    """DMI identity; returns (system, source of bios_version)."""
    dmi = root / "sys" / "class" / "dmi" / "id"
    values: dict[str, str | None] = {k: _read(dmi / f) for k, f in DMI_FILES.items()}
    unreadable = [k for k, v in values.items() if v is None]
    source = "dmi"
    if unreadable:
        out = run(list(DMIDECODE))
        parsed = parse_dmidecode(out) if out else {}
        if parsed:
            for k in unreadable:
                values[k] = parsed.get(k)
            if "bios_version" in unreadable:
                source = "dmidecode"
        elif len(unreadable) == len(values):
            errors.append("system: no /sys/class/dmi/id and dmidecode failed or is missing")
        else:
            errors.append(f"system: unreadable in /sys/class/dmi/id and dmidecode failed: "
                          f"{', '.join(DMI_FILES[k] for k in unreadable)}")  # fmt: skip
    return _clean_system(values), source


def _cpuinfo_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            cur.setdefault(key.strip(), value.strip())
    return stanzas


def _online_count(text: str | None) -> int | None:
    """'0-63' or '0,2-5' -> count."""
    if not text:
        return None
    n = 0
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    except ValueError:
        return None
    return n


def _arch(root: Path, stanzas: list[dict[str, str]]) -> str | None:
    arch = _read(root / "proc" / "sys" / "kernel" / "arch")
    if arch:
        return arch
    if root == Path("/"):
        return os.uname().machine
    flags = next((s.get("flags", "") for s in stanzas if "flags" in s), "")
    if " lm " in f" {flags} ":
        return "x86_64"
    if any(s.get("CPU architecture") == "8" for s in stanzas):
        return "aarch64"
    return None


def _cpu(root: Path, errors: list[str]) -> dict[str, Any]:
    text = _read(root / "proc" / "cpuinfo")
    if text is None:
        errors.append("cpu: /proc/cpuinfo unreadable")
    stanzas = _cpuinfo_stanzas(text or "")
    procs = [s for s in stanzas if "processor" in s]
    model = None
    for s in stanzas:
        for key in ("model name", "cpu model", "Processor", "cpu", "Hardware"):
            if s.get(key):
                model = s[key]
                break
        if model:
            break
    sysfs = root / "sys" / "devices" / "system" / "cpu"
    threads = len(procs) or _online_count(_read(sysfs / "online")) or 0
    sockets = cores = 0
    if any("physical id" in s for s in procs):
        sockets = len({s.get("physical id") for s in procs})
        if any("core id" in s for s in procs):
            cores = len({(s.get("physical id"), s.get("core id")) for s in procs})
        elif procs[0].get("cpu cores", "").isdigit():
            cores = int(procs[0]["cpu cores"]) * sockets
    if not sockets:  # arm64 and others: sysfs topology
        pairs = set()
        for name in _listdir(sysfs):
            if re.fullmatch(r"cpu\d+", name):
                topo = sysfs / name / "topology"
                pkg, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
                if pkg is not None and core is not None:
                    pairs.add((pkg, core))
        if pairs:
            sockets = len({p for p, _ in pairs})
            cores = len(pairs)
    if threads and not sockets:
        sockets = 1
    if threads and not cores:
        cores = threads
    if not threads:
        errors.append("cpu: no processors found in /proc/cpuinfo or /sys/devices/system/cpu")
    return {"model": model, "arch": _arch(root, stanzas), "sockets": sockets, "cores": cores,
            "threads": threads}  # fmt: skip


def _memory(root: Path, errors: list[str]) -> dict[str, int]:
    text = _read(root / "proc" / "meminfo") or ""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    if not m:
        errors.append("memory: no MemTotal in /proc/meminfo")
        return {"total_bytes": 0}
    return {"total_bytes": int(m.group(1)) * 1024}


SKIP_DISKS = ("loop", "ram", "dm-", "zram", "sr", "fd", "nbd")


def _vpd_serial(path: Path) -> str | None:
    """SCSI VPD page 0x80 (unit serial number): 4-byte header, then the serial."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < 5 or raw[1] != 0x80:
        return None
    return raw[4 : 4 + raw[3]].decode("ascii", errors="replace").strip() or None


def _udev_props(root: Path, block: Path) -> dict[str, str]:
    dev = _read(block / "dev")
    text = _read(root / "run" / "udev" / "data" / f"b{dev}") if dev else None
    props: dict[str, str] = {}
    for line in (text or "").splitlines():
        if line.startswith("E:"):
            k, _, v = line[2:].partition("=")
            props[k] = v
    return props


def _disks(root: Path, errors: list[str]) -> list[dict[str, Any]]:
    base = root / "sys" / "block"
    if not base.is_dir():
        errors.append("disks: /sys/block missing")
        return []
    disks = []
    for name in _listdir(base):
        if name.startswith(SKIP_DISKS):
            continue
        block = base / name
        sectors = _read_int(block / "size")
        dev = block / "device"
        udev = _udev_props(root, block)
        serial = (_opt(_read(dev / "serial")) or _opt(udev.get("ID_SERIAL_SHORT"))
                  or _vpd_serial(dev / "vpd_pg80"))  # fmt: skip
        wwn = (_opt(_read(block / "wwid")) or _opt(_read(dev / "wwid"))
               or _opt(udev.get("ID_WWN")))  # fmt: skip
        rot = _read(block / "queue" / "rotational")
        disks.append({
            "name": name,
            "size_bytes": sectors * 512 if sectors is not None else None,
            "model": _opt(_read(dev / "model")) or _opt(udev.get("ID_MODEL")),
            "serial": serial,
            "rotational": rot == "1",
            "wwn": wwn,
        })  # fmt: skip
        if sectors is None:
            errors.append(f"disks: {name}: size unreadable")
    return disks


_PCI_SLOT = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def parse_ethtool_i(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _nics(root: Path, run: Runner, errors: list[str]) -> list[dict[str, Any]]:
    base = root / "sys" / "class" / "net"
    names = [n for n in _listdir(base) if os.path.lexists(base / n / "device")]
    virtual = [n for n in _listdir(base) if n not in names]
    nics = []
    no_ethtool = []
    for name in names:
        d = base / name
        if (_read(d / "type") or "1") != "1":  # IPoIB (32) and others: not Ethernet
            continue
        info_text = run(ethtool_argv(name))
        info = parse_ethtool_i(info_text) if info_text is not None else {}
        if info_text is None:
            no_ethtool.append(name)
        driver = _opt(info.get("driver"))
        if driver is None:
            try:
                driver = os.path.basename(os.readlink(d / "device" / "driver"))
            except OSError:
                driver = None
        bus = _opt(info.get("bus-info"))
        if bus is None:
            try:
                link = os.path.basename(os.readlink(d / "device"))
                bus = link if _PCI_SLOT.fullmatch(link) else None
            except OSError:
                bus = None
        speed = _read_int(d / "speed")
        carrier = _read(d / "carrier")
        mac = _read(d / "address")
        nics.append({
            "name": name,
            "mac": mac.lower() if mac else None,
            "driver": driver,
            "driver_version": _opt(info.get("version")),
            "firmware": _opt(info.get("firmware-version")),
            "bus_info": bus,
            "speed_mbps": speed if speed is not None and speed > 0 else None,
            "carrier": {"1": True, "0": False}.get(carrier or ""),
        })  # fmt: skip
    if no_ethtool:
        errors.append(f"nics: ethtool -i failed or ethtool missing for {', '.join(no_ethtool)}")
    if not nics:
        errors.append("nics: no physical network interface in /sys/class/net"
                      + (f" (virtual only: {', '.join(virtual)})" if virtual else ""))  # fmt: skip
    return nics


def _ib_state(text: str | None) -> str | None:
    """'4: ACTIVE' -> 'ACTIVE'."""
    if not text:
        return None
    if ":" in text:
        return text.partition(":")[2].strip() or text
    return text


def _infiniband(root: Path, errors: list[str]) -> list[dict[str, Any]]:
    base = root / "sys" / "class" / "infiniband"
    out = []
    for dev in _listdir(base):
        d = base / dev
        node_guid = guid_hex(_read(d / "node_guid"))
        ports = [p for p in _listdir(d / "ports") if p.isdigit()]
        if not ports:
            errors.append(f"infiniband: {dev}: no ports in sysfs")
        for port in sorted(ports, key=int):
            p = d / "ports" / port
            gid = _read(p / "gids" / "0") or ""
            groups = gid.split(":")
            port_guid = guid_hex("".join(groups[4:])) if len(groups) == 8 else None
            if port_guid == "0x0000000000000000":
                port_guid = None
            out.append({
                "device": dev,
                "port": int(port),
                "port_guid": port_guid,
                "node_guid": node_guid,
                "fw_ver": _opt(_read(d / "fw_ver")),
                "board_id": _opt(_read(d / "board_id")),
                "hca_type": _opt(_read(d / "hca_type")),
                "state": _ib_state(_read(p / "state")),
                "rate": _opt(_read(p / "rate")),
                "link_layer": _opt(_read(p / "link_layer")),
            })  # fmt: skip
    return out


_NAME_ID = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{4,6})\]$")


def _name_id(field: str) -> tuple[str | None, str | None]:
    m = _NAME_ID.match(field.strip())
    if not m:
        return (field.strip() or None), None
    return (m.group(1) or None), m.group(2).lower()


def parse_lspci(text: str) -> list[dict[str, Any]]:
    """`lspci -D -mm -nn` (also without -D): slot "class [id]" "vendor [id]" "device [id]" ..."""
    out = []
    for line in text.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        fields = [w for w in words[1:] if not re.fullmatch(r"-[rp][0-9a-fA-F]+", w)]
        if len(fields) < 3:
            continue
        cls, _ = _name_id(fields[0])
        vendor, vendor_id = _name_id(fields[1])
        device, device_id = _name_id(fields[2])
        out.append({"slot": words[0], "class": cls, "vendor": vendor, "device": device,
                    "vendor_id": vendor_id, "device_id": device_id})  # fmt: skip
    return out


def _pci(run: Runner, errors: list[str]) -> list[dict[str, Any]]:
    text = run(list(LSPCI))
    if text is None:
        errors.append("pci: lspci failed or is missing")
        return []
    return parse_lspci(text)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _vlan_id(vlan: Any) -> int | None:
    entries = [v for v in _as_list(vlan) if isinstance(v, dict)]
    if not entries:
        return None
    best = next((v for v in entries if v.get("pvid") in (True, "yes")), entries[0])
    vid = best.get("vlan-id", best.get("vid"))
    try:
        return int(vid) if vid is not None else None
    except (TypeError, ValueError):
        return None


def _lldp_value(node: Any) -> str | None:
    """lldpctl's {"type": .., "value": ..} or a bare string."""
    if isinstance(node, dict):
        node = node.get("value")
    return node if isinstance(node, str) and node else None


def parse_lldpctl(data: Any) -> list[dict[str, Any]]:
    """`lldpctl -f json` (show neighbors): "interface" is a dict for one neighbor, a list of
    one-key dicts for several; "chassis" is keyed by SysName, or holds "id" when there is none."""
    out: list[dict[str, Any]] = []
    lldp: Any = data.get("lldp") if isinstance(data, dict) else None
    if isinstance(lldp, list):  # json0-like shapes
        lldp = lldp[0] if lldp and isinstance(lldp[0], dict) else {}
    if not isinstance(lldp, dict):
        return out
    entries: list[tuple[str, dict[str, Any]]] = []
    for item in _as_list(lldp.get("interface")):
        if isinstance(item, dict):
            for ifname, body in item.items():
                if isinstance(body, dict):
                    entries.append((ifname, body))
    for ifname, body in entries:
        chassis = body.get("chassis")
        name = None
        cbody: dict[str, Any] = {}
        if isinstance(chassis, dict):
            ident = chassis.get("id")
            if isinstance(ident, dict) and "value" in ident:
                cbody = chassis  # no SysName
            elif chassis:
                name, first = next(iter(chassis.items()))
                cbody = first if isinstance(first, dict) else {}
        port_any = body.get("port")
        port: dict[str, Any] = port_any if isinstance(port_any, dict) else {}
        out.append({
            "interface": ifname,
            "chassis_id": _lldp_value(cbody.get("id")),
            "chassis_name": name,
            "port_id": _lldp_value(port.get("id")),
            "port_descr": _lldp_value(port.get("descr")),
            "vlan": _vlan_id(body.get("vlan")),
        })  # fmt: skip
    return out


def collect_lldp(run: Runner, errors: list[str]) -> list[dict[str, Any]]:
    text = run(list(LLDPCTL))
    if text is None:
        errors.append("lldp: lldpctl -f json failed or is missing (is lldpd running?)")
        return []
    try:
        return parse_lldpctl(json.loads(text))
    except ValueError as exc:
        errors.append(f"lldp: lldpctl printed no JSON: {exc}")
        return []


def _bmc_firmware(root: Path, run: Runner) -> str | None:
    """`ipmitool mc info` "Firmware Revision", only when the kernel has an IPMI device."""
    devs = ("dev/ipmi0", "dev/ipmi/0", "dev/ipmidev/0")
    if not any(os.path.lexists(root / d) for d in devs):
        return None
    text = run(list(IPMI_MC_INFO))
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Firmware Revision" and value.strip():
            return value.strip()
    return None


# ------------------------------------------------------------------------------ collect


def _section(name: str, errors: list[str], fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception as exc:  # a source must never sink the report
        errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return default


def collect(root: Path = Path("/"), run: Runner | None = None) -> dict[str, Any]:
    """Everything the agent reports (docs/agent.md). Never raises for a missing source."""
    root = Path(root)
    runner: Runner = run if run is not None else run_command
    errors: list[str] = []
    cmdline: dict[str, str] = _section("cmdline", errors, lambda: read_cmdline(root), {})
    empty_system: dict[str, Any] = dict.fromkeys(DMI_FILES)
    system, bios_source = _section("system", errors, lambda: _system(root, runner, errors),
                                   (empty_system, "dmi"))  # fmt: skip
    nics = _section("nics", errors, lambda: _nics(root, runner, errors), [])
    ib = _section("infiniband", errors, lambda: _infiniband(root, errors), [])
    bmc = _section("bmc", errors, lambda: _bmc_firmware(root, runner), None)
    firmware: list[dict[str, str]] = []
    if system.get("bios_version"):
        firmware.append({"component": "bios", "version": system["bios_version"],
                         "source": bios_source})  # fmt: skip
    if bmc:
        firmware.append({"component": "bmc", "version": bmc, "source": "ipmitool"})
    for nic in nics:
        if nic["firmware"]:
            firmware.append({"component": f"nic:{nic['name']}", "version": nic["firmware"],
                             "source": "ethtool"})  # fmt: skip
    seen = set()
    for port in ib:
        if port["fw_ver"] and port["device"] not in seen:
            seen.add(port["device"])
            firmware.append({"component": f"hca:{port['device']}", "version": port["fw_ver"],
                             "source": "sysfs"})  # fmt: skip
    return {
        "agent_version": AGENT_VERSION,
        "hostname": _section("hostname", errors, lambda: _hostname(root), None),
        "boot_mac": boot_mac_from(cmdline),
        "system": system,
        "cpu": _section("cpu", errors, lambda: _cpu(root, errors),
                        {"model": None, "arch": None, "sockets": 0, "cores": 0, "threads": 0}),
        "memory": _section("memory", errors, lambda: _memory(root, errors), {"total_bytes": 0}),
        "disks": _section("disks", errors, lambda: _disks(root, errors), []),
        "nics": nics,
        "infiniband": ib,
        "pci": _section("pci", errors, lambda: _pci(runner, errors), []),
        "lldp": _section("lldp", errors, lambda: collect_lldp(runner, errors), []),
        "firmware": firmware,
        "errors": errors,
    }  # fmt: skip


# ------------------------------------------------------------------------------ delivery


class PostError(Exception):
    """The report was not delivered. status: the last HTTP status (None: never got an answer);
    refused: the server answered 4xx (retrying cannot help)."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None,
                 refused: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.refused = refused


def _problem_detail(body: bytes, fallback: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()[:500] or fallback
    if isinstance(doc, dict):
        for key in ("detail", "title"):
            if isinstance(doc.get(key), str) and doc[key]:
                return str(doc[key])
    return fallback


def post(
    url: str,
    token: str,
    report: dict[str, Any],
    *,
    tries: int = 6,
    timeout: float = 10.0,
    deadline: float = 60.0,
    backoff: float = 1.0,
    max_delay: float = 15.0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """POST {"token", "report"} to URL/v1/agent/inspect; the server's JSON answer on 2xx.

    Connection errors, timeouts and 5xx are retried up to `tries` times with exponential backoff
    (backoff * 2**n seconds, capped at max_delay, jittered, a 503's Retry-After honoured) while
    `deadline` seconds have not passed; a 4xx is never retried. Raises PostError."""
    endpoint = url.rstrip("/") + ENDPOINT
    body = json.dumps({"token": token, "report": report}).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # talk direct
    start = time.monotonic()
    last = "no attempt made"
    status: int | None = None
    for attempt in range(max(1, tries)):
        remaining = deadline - (time.monotonic() - start)
        retry_after: float | None = None
        req = urllib.request.Request(endpoint, data=body, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json",
            "User-Agent": f"provisiond-agent/{AGENT_VERSION}"})  # fmt: skip
        try:
            with opener.open(req, timeout=max(0.5, min(timeout, remaining))) as resp:
                raw = resp.read()
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {}
            return answer if isinstance(answer, dict) else {"answer": answer}
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = _problem_detail(exc.read(), exc.reason or f"HTTP {exc.code}")
            if 400 <= exc.code < 500:
                raise PostError(f"{endpoint}: refused ({exc.code}): {detail}", status=exc.code,
                                detail=detail, refused=True) from None  # fmt: skip
            last = f"HTTP {exc.code}: {detail}"
            ra = exc.headers.get("Retry-After") if exc.headers else None
            if ra and ra.strip().isdigit():
                retry_after = float(ra.strip())
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            last = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        if attempt == tries - 1:
            break
        delay = min(max_delay, backoff * 2**attempt) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max_delay))
        if time.monotonic() - start + delay > deadline:
            break
        if log:
            log(f"attempt {attempt + 1} failed ({last}); retrying in {delay:.1f}s")
        time.sleep(delay)
    raise PostError(f"{endpoint}: not delivered after {attempt + 1} tries: {last}", status=status,
                    detail=last)  # fmt: skip


def wait_for_lldp(run: Runner, seconds: float, interfaces: Iterable[str] = (),
                  poll: float = 2.0) -> bool:  # fmt: skip
    """Poll lldpctl until a neighbor shows up on every interface in `interfaces` (or on any, when
    empty) or `seconds` pass. Switches send LLDP every ~30 s; lldpd needs that long after start."""
    want = set(interfaces)
    end = time.monotonic() + seconds
    while True:
        text = run(list(LLDPCTL))
        if text is None:
            return False  # no lldpd: waiting cannot help
        try:
            seen = {e["interface"] for e in parse_lldpctl(json.loads(text))}
        except ValueError:
            seen = set()
        if (want and want <= seen) or (not want and seen):
            return True
        if time.monotonic() + poll > end:
            return False
        time.sleep(poll)
