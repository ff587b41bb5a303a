"""The UEFI path with a real UEFI PXE client: QEMU with OVMF (TCG, secure boot off), its own
virtio-net driver and PXE stack (the NIC's iPXE option ROM is left out, ``romfile=``), against
``provisiond serve`` in mode authoritative, in a network namespace (tests/support/pxenet.py;
docs/pxe-e2e.md, "UEFI (OVMF)", has what was seen and the timings). Stages, from the wire
(PacketLog) and the daemon:

1. OVMF's PXE DISCOVER carries option 93 = 7 (x64 UEFI) and ``PXEClient:Arch:00007``, and is
   offered its reservation with ``ipxe.efi``;
2. ``ipxe.efi`` (Debian's, copied into the daemon's TFTP root) crosses TFTP whole;
3. the chain-loaded ipxe.efi asks DHCP again (new xid, user class iPXE) and is offered
   ``/boot/ipxe?mac=<its MAC>``;
4. the script boots the inspection ramdisk (the EFI-stub kernel, the initrd by iPXE's
   ``initrd=initrd.img``), the agent reports, and the inspect operation succeeds.

Every wait is a bounded poll that also stops when QEMU exits; QEMU, the daemon, the helpers and
the namespace are removed by pid and name on the way out, whatever happened.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support.peers import missing
from tests.support.pxenet import (
    PacketLog,
    PxeNet,
    Qemu,
    poll,
)
from tests.test_pxe_qemu import (
    IPXE_DIR,
    VM_IP,
    VM_MAC,
    _report_timings,
    _wait_json,
    _with_ra,
    inspecting_vm,
)

LOADER = "ipxe.efi"
ARCH_X64_UEFI = 7
# OVMF under TCG takes tens of seconds to reach its PXE; each stage gets this bound
STAGE_SECONDS = 240.0
# the script fetch, kernel + initrd over HTTP, Linux and the agent, under TCG
AGENT_SECONDS = 480.0
VM_MEMORY_MB = 512

# Debian's ovmf: split code + variables (pflash), else the combined image (-bios)
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")  # not .secboot / .ms: secure boot off
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS.fd")
OVMF_COMBINED = Path("/usr/share/ovmf/OVMF.fd")


def ovmf_args(workdir: Path) -> list[str]:
    """QEMU arguments for OVMF without secure boot; the variable store is a copy of the
    package's empty one (OVMF writes its boot options there)."""
    if OVMF_CODE.is_file() and OVMF_VARS.is_file():
        vars_copy = workdir / "OVMF_VARS.fd"
        shutil.copyfile(OVMF_VARS, vars_copy)
        return [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]  # fmt: skip
    if OVMF_COMBINED.is_file():
        return ["-bios", str(OVMF_COMBINED)]
    missing("apt-get install ovmf")


class Wire:
    """What the test reads from the packet log of the boot network."""

    def __init__(self, net: PxeNet, packets: PacketLog, qemu: Qemu) -> None:
        self.net = net
        self.packets = packets
        self.qemu = qemu

    def dhcp(self, **want: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.packets.events()
            if e["kind"] == "dhcp"
            and e["mac"] == VM_MAC
            and all(e.get(k) == v for k, v in want.items())
        ]

    def firmware_discover(self) -> dict[str, Any] | None:
        """The first DISCOVER of the VM that is not iPXE's: OVMF's PXE."""
        found = self.dhcp(type="DISCOVER", ipxe=False)
        return found[0] if found else None

    def offer(self, file: str, after: float = 0.0) -> dict[str, Any] | None:
        for e in self.dhcp(type="OFFER", op=2, src=self.net.server_ip):
            if e["t"] >= after and (e["file"] == file or e["file"].startswith(file)):
                return e
        return None

    def ipxe_discover(self, after: float) -> dict[str, Any] | None:
        for e in self.dhcp(type="DISCOVER", ipxe=True):
            if e["t"] >= after:
                return e
        return None

    def tftp_complete(self, name: str) -> dict[str, Any] | None:
        """The RRQ for ``name`` whose DATA blocks add up to the whole file, with ``t_done``."""
        size = (IPXE_DIR / name).stat().st_size  # follows Debian's symlink to /boot
        events = self.packets.events()
        for rrq in events:
            if not (rrq["kind"] == "tftp" and rrq["op"] == "RRQ" and rrq["file"] == name):
                continue
            blocks: dict[int, int] = {}
            t_done = 0.0
            for e in events:
                if (
                    e["kind"] == "tftp" and e["op"] == "DATA" and e["dport"] == rrq["sport"]
                    and e["dst"] == rrq["src"] and e["t"] >= rrq["t"]
                ):  # fmt: skip
                    if e["block"] not in blocks:
                        t_done = e["t"]
                    blocks.setdefault(e["block"], e["len"])
            # rollover past 65535 blocks is not reached by an 850 KB file at blksize >= 512
            if sum(blocks.values()) == size:
                return {**rrq, "t_done": t_done, "bytes": size}
        return None

    def tftp_requests(self, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.packets.events()
            if e["kind"] == "tftp" and e["op"] == "RRQ" and e["file"] == name
        ]

    def since_start(self, t: float) -> float:
        return round(t - self.qemu.started, 2)


def _diagnostics(net: PxeNet, packets: PacketLog, qemu: Qemu | None, daemon: Any) -> str:
    parts = [f"--- {p.log.name}\n{p.output()[-3000:]}" for p in net.processes]
    events = packets.events()
    parts.append("--- packets (last 60)\n" + "\n".join(json.dumps(e) for e in events[-60:]))
    parts.append(f"--- daemon\n{daemon.log()}")
    if qemu is not None:
        parts.append(f"--- serial\n{qemu.console()[-4000:]}")
        parts.append(f"qemu alive: {qemu.proc.alive()}")
    return "\n".join(parts)


def test_ovmf_inspection_through_the_daemon(tmp_path: Path) -> None:
    """test_qemu_inspection_through_the_daemon (tests/test_pxe_qemu.py) with UEFI firmware:
    the DHCP offer follows option 93 to ipxe.efi, which the firmware's own PXE fetches over the
    daemon's TFTP; the rest is the same."""
    if not (IPXE_DIR / LOADER).is_file():
        missing("apt-get install ipxe")
    firmware = ovmf_args(tmp_path)
    with ExitStack() as stack:
        net, packets, daemon, op_id = stack.enter_context(inspecting_vm(tmp_path))
        # the daemon copied Debian's ipxe.efi (a symlink to /boot/ipxe.efi) into its TFTP root
        served = tmp_path / "data" / "tftp" / LOADER
        assert served.is_file() and not served.is_symlink(), served
        assert served.read_bytes() == (IPXE_DIR / LOADER).read_bytes()

        # the BMC has set PXE once and powered the host on: the host is this VM. bootindex puts
        # the NIC first in OVMF's boot order; romfile= leaves QEMU's iPXE ROM out, so the PXE
        # client is OVMF's own (VirtioNetDxe + PxeBcDxe), as on a real UEFI server
        qemu = stack.enter_context(
            Qemu(
                net,
                VM_MAC,
                memory_mb=VM_MEMORY_MB,
                firmware=firmware,
                nic_options=",bootindex=1,romfile=",
            )
        )
        wire = Wire(net, packets, qemu)

        def wait(what: str, cond: Any, seconds: float = STAGE_SECONDS) -> Any:
            found = poll(cond, seconds, alive=qemu.proc)
            assert found, (
                f"{what} not seen within {seconds:.0f} s\n"
                f"{_diagnostics(net, packets, qemu, daemon)}"
            )
            return found

        # 1. OVMF's PXE: option 93 = 7, offered ipxe.efi with the reservation
        discover = wait("OVMF's DHCP DISCOVER", wire.firmware_discover)
        assert discover["arch"] == ARCH_X64_UEFI, discover
        assert discover["vendor_class"].startswith("PXEClient:Arch:00007"), discover
        offer = wait(f"a DHCP offer of {LOADER}", lambda: wire.offer(LOADER))
        assert offer["yiaddr"] == VM_IP and offer["file"] == LOADER, offer

        # 2. the firmware fetches ipxe.efi over the daemon's TFTP
        tftp = wait(f"{LOADER} sent whole over TFTP", lambda: wire.tftp_complete(LOADER))
        assert tftp["src"] == VM_IP, tftp

        # 3. the chain-loaded ipxe.efi asks again (new xid) and is sent to its script
        again = wait("the chain-loaded iPXE's DISCOVER", lambda: wire.ipxe_discover(tftp["t_done"]))
        assert again["xid"] != discover["xid"], (again, discover)
        assert again["arch"] == ARCH_X64_UEFI, again
        script_offer = wait(
            "a DHCP offer of the boot script URL",
            lambda: wire.offer(f"{daemon.url}/boot/ipxe?mac=", after=tftp["t_done"]),
        )
        assert script_offer["file"] == f"{daemon.url}/boot/ipxe?mac={VM_MAC}", script_offer

        # 4. the ramdisk boots under UEFI, the agent reports, the operation ends
        def op_done(o: dict[str, Any]) -> bool:
            return o["state"] in ("succeeded", "failed")

        try:
            op = _wait_json(
                daemon, f"/v1/operations/{op_id}", op_done, AGENT_SECONDS, alive=qemu.proc
            )
        except AssertionError:
            # QEMU exits at the ramdisk's poweroff (-no-reboot), maybe a moment before the
            # operation has powered the node off through the BMC: a short bounded grace
            op = _wait_json(daemon, f"/v1/operations/{op_id}", op_done, 30)
        t_op = time.monotonic()
        assert op["state"] == "succeeded", (op, qemu.console()[-4000:], daemon.log())
        # the ramdisk powers off after the report (the operation may end first): QEMU
        # (-no-reboot) then exits by itself
        exited = poll(lambda: not qemu.proc.alive(), 60)
        console = qemu.console()
        assert "agent exited 0" in console, console[-4000:]
        assert exited, "the VM did not power off after the report"
        _, text = daemon.http("GET", "/v1/nodes/vm01")
        node = json.loads(text)
        assert node["state"] == "manageable" and node["power_state"] == "off", node
        report = node["facts"]["inspection"]
        nics = report["nics"]
        assert any(n["mac"] == VM_MAC and n["driver"] == "virtio_net" for n in nics), nics
        _, text = daemon.http("GET", "/v1/nodes/vm01/events?limit=200")
        msgs = [e["message"] for e in json.loads(text)["items"]]
        for want in (
            f"DHCP: authoritative offer {LOADER}",
            f"TFTP: sent {LOADER}",
            f"DHCP: authoritative offer {daemon.url}/boot/ipxe?mac={VM_MAC}",
            "iPXE script: inspection ramdisk",
            "inspection report stored",
        ):
            assert any(m.startswith(want) for m in msgs), (want, msgs)

        # the ramdisk's own DHCP (busybox udhcpc) after the script: Linux is up under UEFI
        ramdisk_dhcp = [
            e for e in wire.dhcp(type="DISCOVER") if e["vendor_class"].startswith("udhcp")
        ]
        _report_timings(
            "uefi daemon" + ("" if _with_ra() else " (no RA)"),
            {
                "discover": wire.since_start(discover["t"]),
                "loader_offer": wire.since_start(offer["t"]),
                "tftp_rrq": wire.since_start(tftp["t"]),
                "tftp_done": wire.since_start(tftp["t_done"]),
                "ipxe_discover": wire.since_start(again["t"]),
                "script_offer": wire.since_start(script_offer["t"]),
                "ramdisk_dhcp": wire.since_start(ramdisk_dhcp[0]["t"]) if ramdisk_dhcp else -1,
                "op_succeeded_seen": wire.since_start(t_op),
                "tftp_rrqs": len(wire.tftp_requests(LOADER)),
            },
        )
        print("\n--- serial (first 3000 chars)\n" + console[:3000])
        print("--- wire (DHCP)\n" + "\n".join(json.dumps(e) for e in wire.dhcp()))
        print("--- events\n" + "\n".join(msgs))
