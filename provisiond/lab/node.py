"""Lab nodes: the host behind each lab BMC, so inspect and deploy run without a VM.

When a lab BMC powers its host on (or resets it) with a PXE boot override set, the lab node does
what a real node's iPXE would: after a short POST delay it fetches its iPXE script over HTTP from
the daemon (``GET <boot_url>/boot/ipxe?mac=<its PXE MAC>``), downloads the kernel and initrd the
script names (checking the sha256 the script publishes), and "boots" them:

- an inspection (or discovery) ramdisk runs the real agent code (provisiond.agent: collect and
  post) against a fixture /sys tree built from the lab rack description: its MACs, IB GUIDs,
  switch ports as LLDP neighbours, firmware versions;
- a deploy image calls back ``/v1/agent/deployed`` with its token, as the image's init would;
- a local-disk or exit script: the node boots its disk, nothing more to do.

Faithful where it matters: power off (or another reset) during the boot abandons it, a
download that fails is retried three times (as the script says) and then given up, and nothing
is posted for a host that is no longer on. The kernel is not executed, of course: the QEMU test
(tests/test_pxe_qemu.py) is the proof that a real PXE client boots through our stack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisiond import rackfile

log = logging.getLogger("provisiond.lab.node")

FETCH_TRIES = 3
HTTP_TIMEOUT = 15.0
# what a lab host reports besides its rack-file facts (the firmware DB issue matches on these)
LAB_BIOS = "3.4"
LAB_NIC_DRIVER = "ice"
LAB_NIC_FIRMWARE = "4.40 0x8001c967 1.3534.0"
LAB_HCA_FIRMWARE = "28.39.1002"
LAB_HCA_BOARD = "MT_0000000838"


@dataclass
class NodeSpec:
    """One lab host: what its agent will find (the agent fixture spec) and its PXE MAC."""

    name: str
    pxe_mac: str
    fixture: dict[str, Any]


@dataclass
class _Host:
    spec: NodeSpec
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    boots: list[str] = field(default_factory=list)  # what each boot did, for tests and logs


def _note(h: _Host, what: str) -> None:
    """What a boot did (tests and logs read it); the last 50 are kept."""
    h.boots.append(what)
    del h.boots[:-50]


def fixture_for(node: rackfile.NodeSpec, bmc_firmware: str | None = None) -> dict[str, Any]:
    """The agent fixture spec of an enrolled node (provisiond.agent.fixture.build_tree)."""
    eths = [n for n in node.nics if n.kind == "ethernet"]
    ibs = [n for n in node.nics if n.kind == "infiniband"]
    nics = []
    for i, nic in enumerate(eths, start=1):
        item: dict[str, Any] = {
            "name": f"eno{i}",
            "mac": nic.mac,
            "driver": LAB_NIC_DRIVER,
            "firmware": LAB_NIC_FIRMWARE,
        }
        if nic.switch and nic.port:
            item["lldp"] = {"chassis_name": nic.switch, "port_id": nic.port}
        nics.append(item)
    serial = hashlib.sha1(node.name.encode()).hexdigest()[:10].upper()
    spec: dict[str, Any] = {
        "hostname": node.name,
        "boot_mac": next((n.mac for n in eths if n.pxe), eths[0].mac if eths else None),
        "system": {
            "manufacturer": "Supermicro",
            "product": "SYS-421GE-TNRT",
            "serial": f"LAB{serial}",
            "uuid": str(_uuid_of(node.name)),
            "bios_vendor": "American Megatrends International, LLC.",
            "bios_version": LAB_BIOS,
            "bios_date": "06/14/2024",
            "board_vendor": "Supermicro",
            "board_product": "X13DEG-OAD",
        },
        "cpu": {
            "model": "Intel(R) Xeon(R) Platinum 8480+",
            "sockets": 2,
            "cores": 112,
            "threads": 224,
        },
        "memory_bytes": 2 * 1024**4,
        "nics": nics,
        "infiniband": [
            {
                "device": f"mlx5_{i}",
                "port": 1,
                "port_guid": ib.guid,
                "node_guid": _node_guid(ib.guid or ""),
                "fw_ver": LAB_HCA_FIRMWARE,
                "board_id": LAB_HCA_BOARD,
            }
            for i, ib in enumerate(ibs)
        ],
        "disks": [
            {
                "name": "nvme0n1",
                "size_bytes": 3840755982336,
                "model": "SAMSUNG MZQL23T8HCLS",
                "serial": f"S6{serial}",
                "rotational": False,
            },
        ],
    }
    if bmc_firmware:
        spec["bmc_firmware"] = bmc_firmware
    return spec


def _uuid_of(name: str) -> Any:
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.lab.provisiond")


def _node_guid(port_guid: str) -> str:
    # a dual-port HCA's node GUID is its port GUID with the low bit cleared, roughly
    return f"0x{int(port_guid, 16) & ~1:016x}" if port_guid else ""


def load_racks(paths: list[Path]) -> dict[tuple[str, int], NodeSpec]:
    """(BMC address, port) -> lab host, from rack files (the files the demo enrolls)."""
    out: dict[tuple[str, int], NodeSpec] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        fmt = rackfile.detect_format(path.name, None)
        rack = rackfile.validate(rackfile.parse(text, fmt))
        for node in rack.nodes:
            if node.bmc.driver != "ipmi" or node.bmc.port is None:
                continue
            fx = fixture_for(node)
            if fx["boot_mac"] is None:
                continue
            out[(node.bmc.address, node.bmc.port)] = NodeSpec(node.name, fx["boot_mac"], fx)
    return out


_KERNEL = re.compile(r"^kernel\s+(?:--name\s+\S+\s+)?(\S+)(.*)$", re.M)
_INITRD = re.compile(r"^initrd\s+(?:--name\s+\S+\s+)?(\S+)", re.M)
_SHA = re.compile(r"^# (kernel|initrd) sha256 ([0-9a-f]{64})$", re.M)


@dataclass(frozen=True)
class Script:
    kernel: str | None
    initrd: str | None
    args: dict[str, str]
    sha256: dict[str, str]

    @property
    def local(self) -> bool:
        return self.kernel is None


def parse_script(text: str) -> Script:
    """What an iPXE script of ours asks for (the lines pxe.ipxe writes)."""
    if not text.startswith("#!ipxe"):
        raise ValueError("not an iPXE script (no #!ipxe first line)")
    k = _KERNEL.search(text)
    i = _INITRD.search(text)
    args: dict[str, str] = {}
    if k:
        for word in k.group(2).split():
            if word.startswith("||"):
                break
            key, sep, value = word.partition("=")
            if sep:
                args[key] = value
    sums = {m.group(1): m.group(2) for m in _SHA.finditer(text)}
    return Script(k.group(1) if k else None, i.group(1) if i else None, args, sums)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
        data: bytes = resp.read()
        return data


class LabNodes:
    """The hosts behind the lab BMCs; ``on_boot`` is called by a LabBmc when its host starts."""

    def __init__(
        self, hosts: dict[tuple[str, int], NodeSpec], boot_url: str, *, post_delay: float = 1.0
    ) -> None:
        self.hosts = {key: _Host(spec) for key, spec in hosts.items()}
        self.boot_url = boot_url.rstrip("/")
        self.post_delay = post_delay
        self._threads: set[threading.Thread] = set()

    def host(self, address: str, port: int) -> _Host | None:
        return self.hosts.get((address, port))

    def power_changed(self, address: str, port: int) -> None:
        """Power off (or any new start) abandons a boot in progress."""
        h = self.host(address, port)
        if h is not None:
            with h.lock:
                h.generation += 1

    def on_boot(self, address: str, port: int, device: str, is_on: Any) -> None:
        h = self.host(address, port)
        if h is None:
            return
        with h.lock:
            h.generation += 1
            gen = h.generation
        if device != "pxe":
            _note(h, f"{device}: boots its disk")
            return
        t = threading.Thread(
            target=self._netboot, args=(h, gen, is_on), name=f"lab-node-{h.spec.name}", daemon=True
        )
        self._threads = {x for x in self._threads if x.is_alive()}
        self._threads.add(t)
        t.start()

    def _current(self, h: _Host, gen: int, is_on: Any) -> bool:
        with h.lock:
            return h.generation == gen and bool(is_on())

    def _netboot(self, h: _Host, gen: int, is_on: Any) -> None:
        name = h.spec.name
        try:
            time.sleep(self.post_delay)  # firmware POST
            if not self._current(h, gen, is_on):
                return
            url = f"{self.boot_url}/boot/ipxe?mac={h.spec.pxe_mac}"
            script = parse_script(self._fetch(url).decode())
            if script.local:
                _note(h, "pxe: script says local disk")
                log.info("lab node %s: script says boot from disk", name)
                return
            assert script.kernel is not None
            for what, ref in (("kernel", script.kernel), ("initrd", script.initrd)):
                if ref is None:
                    continue
                blob = self._fetch(ref)
                want = script.sha256.get(what)
                if want and hashlib.sha256(blob).hexdigest() != want:
                    _note(h, f"pxe: {what} checksum mismatch")
                    log.warning("lab node %s: %s %s fails its sha256; not booting", name, what, ref)
                    return
            if not self._current(h, gen, is_on):
                return
            self._run(h, gen, is_on, script)
        except Exception as exc:  # a lab host that fails to boot logs it, as a console would
            _note(h, f"pxe: failed: {exc}")
            log.warning("lab node %s: network boot failed: %s", name, exc)

    def _fetch(self, url: str) -> bytes:
        last: Exception | None = None
        for attempt in range(FETCH_TRIES):
            try:
                return _get(url)
            except (urllib.error.URLError, OSError) as exc:
                last = exc
                time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"GET {url}: {last}")

    def _run(self, h: _Host, gen: int, is_on: Any, script: Script) -> None:
        mode = script.args.get("provisiond.mode", "")
        base = script.args.get("provisiond.url", "")
        token = script.args.get("provisiond.token", "")
        if mode in ("inspect", "discover"):
            from provisiond.agent.collect import collect, post
            from provisiond.agent.fixture import build_tree

            with tempfile.TemporaryDirectory(prefix=f"lab-{h.spec.name}-") as tmp:
                runner = build_tree(Path(tmp), h.spec.fixture)
                report = collect(Path(tmp), runner)
            if not self._current(h, gen, is_on):
                return
            post(base, token, report, tries=3, timeout=HTTP_TIMEOUT)
            _note(h, f"pxe: {mode} ramdisk reported")
            log.info("lab node %s: agent reported (%s)", h.spec.name, mode)
        elif mode == "deploy":
            body = json.dumps({"token": token}).encode()
            req = urllib.request.Request(
                f"{base.rstrip('/')}/v1/agent/deployed",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT):
                pass
            _note(h, "pxe: image booted, called back")
            log.info("lab node %s: image booted, called back", h.spec.name)
        else:
            _note(h, f"pxe: unknown mode {mode!r}")
