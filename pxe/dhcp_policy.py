"""What to answer a DHCP packet: a pure function of the packet, what we know of the client, and
the config. No I/O, no clock: ``decide(request, node, config) -> Offer | Ignore``.

Rules (docs/pxe.md; ../shared/design/domain-notes.md §3):
- proxy mode answers only netboot clients (option 60 PXEClient/HTTPClient) and never assigns an
  address (yiaddr 0.0.0.0); it names itself in siaddr, sname and option 54;
- authoritative mode answers enrolled MACs with their reservation, unknown MACs from the
  discovery pool when one is configured, and nobody else;
- the boot file follows option 93 (BIOS undionly.kpxe, x86-64 UEFI ipxe.efi or snponly.efi per
  node, ARM64 its efi, UEFI HTTP boot a URL); a client already running OUR iPXE gets the HTTP URL
  of its per-node script instead (the chain-load loop). Which iPXE runs is told by per-MAC state
  the caller keeps (``chained``), not by the user class alone: QEMU's PXE ROM, and many NIC ROMs,
  are iPXE themselves and send user class "iPXE" at their first request;
- option 60 is echoed, 97 mirrored, 43 sub-option 6 = 8 is set for PXE ROMs;
- a relayed request (giaddr set) is answered to the relay, port 67.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pxe.dhcp_codec import (
    DhcpPacket,
    DhcpReply,
    MessageType,
    Opt,
    ip_option,
    pxe_vendor_options,
    u32_option,
)

Mode = Literal["proxy", "authoritative"]

# RFC 4578 / IANA processor architecture types -> default boot loader
ARCH_BIOS = 0
ARCH_UEFI_X64_HTTP = 16
ARCH_UEFI_ARM64_HTTP = 19
DEFAULT_LOADERS: Mapping[int, str] = {
    0: "undionly.kpxe",  # x86 BIOS
    6: "ipxe.efi",  # x86 UEFI (32-bit)
    7: "ipxe.efi",  # x64 UEFI
    9: "ipxe.efi",  # EBC, in practice x64 UEFI
    11: "ipxe-arm64.efi",  # ARM64 UEFI
}


@dataclass(frozen=True)
class NodeBoot:
    """What the inventory says about a MAC (None from the caller: an unknown MAC)."""

    name: str
    ip: str | None = None  # authoritative mode: the reservation
    loader: str | None = None  # per-node override, e.g. "snponly.efi" for some ConnectX NICs


@dataclass(frozen=True)
class PolicyConfig:
    mode: Mode
    server_address: str  # our address on the boot network (siaddr, option 54)
    http_base_url: str  # e.g. http://198.51.100.1:8750
    subnet_mask: str = "255.255.255.0"
    router: str | None = None
    dns: tuple[str, ...] = ()
    lease_time: int = 3600
    # authoritative mode: addresses for unknown netboot clients (discovery), or none
    discovery_pool: tuple[str, ...] = ()
    answer_unknown: bool = True  # proxy: offer boot to netboot clients we do not know
    # an iPXE ROM (user class iPXE, no loader of ours served to that MAC yet) still gets our
    # loader first, so every node runs the same known iPXE build; False: any iPXE gets its script
    chainload_ipxe_roms: bool = True
    loaders: Mapping[int, str] = field(default_factory=lambda: dict(DEFAULT_LOADERS))


@dataclass(frozen=True)
class Offer:
    reply: DhcpReply
    destination: tuple[str, int]  # where to send it
    reason: str
    # what the client is told to boot: a TFTP loader name, a URL, or None (address only)
    boot: str | None = None

    @property
    def gives_loader(self) -> bool:
        """A loader over TFTP (or UEFI HTTP): the next iPXE request of this MAC is chained."""
        return self.boot is not None and "/boot/ipxe?" not in self.boot


@dataclass(frozen=True)
class Ignore:
    reason: str


def script_url(config: PolicyConfig, mac: str) -> str:
    return f"{config.http_base_url.rstrip('/')}/boot/ipxe?mac={mac}"


def _boot_file(
    req: DhcpPacket, node: NodeBoot | None, config: PolicyConfig, chained: bool
) -> str | Ignore:
    if req.is_ipxe and (chained or not config.chainload_ipxe_roms):
        return script_url(config, req.mac)  # our iPXE runs already: no second chain-load
    arch = req.client_arch if req.client_arch is not None else ARCH_BIOS
    if arch in (ARCH_UEFI_X64_HTTP, ARCH_UEFI_ARM64_HTTP):  # UEFI HTTP boot: a URL
        loader = "ipxe.efi" if arch == ARCH_UEFI_X64_HTTP else "ipxe-arm64.efi"
        if node is not None and node.loader:
            loader = node.loader
        return f"{config.http_base_url.rstrip('/')}/boot/assets/{loader}"
    if node is not None and node.loader:
        return node.loader
    mapped = config.loaders.get(arch)
    if mapped is None:
        return Ignore(f"client architecture {arch} has no boot loader configured")
    return mapped


RELAY_AGENT_INFO = 82
SERVER_ID_OVERRIDE = 11  # RFC 5107: the relay put its own address in the client's option 54


def _server_id_override(req: DhcpPacket) -> bytes | None:
    raw = req.options.get(RELAY_AGENT_INFO)
    if raw is None:
        return None
    data, i = bytes(raw), 0
    while i + 2 <= len(data):
        code, n = data[i], data[i + 1]
        if code == SERVER_ID_OVERRIDE and n == 4 and i + 2 + n <= len(data):
            return data[i + 2 : i + 6]
        i += 2 + n
    return None


def decide(
    req: DhcpPacket, node: NodeBoot | None, config: PolicyConfig, *, chained: bool = True
) -> Offer | Ignore:
    """``chained``: the caller served this MAC our loader in an earlier exchange (another xid)
    of this boot, so an iPXE request now comes from our loader. Callers that keep no per-MAC
    state leave it True: every iPXE client gets its script URL."""
    mtype = req.message_type
    if req.op != 1:
        return Ignore("not a BOOTREQUEST")
    if mtype not in (MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM):
        return Ignore(f"message type {mtype.name if mtype else 'missing'} needs no answer")
    server_id = req.options.get(Opt.SERVER_ID)
    if (
        mtype is MessageType.REQUEST
        and server_id is not None
        and bytes(server_id) != ip_option(config.server_address)
        and _server_id_override(req) != ip_option(config.server_address)
    ):
        # RFC 2131 4.3.2: the client chose another server's offer; a server not named stays silent
        return Ignore("REQUEST names another server: the client took its offer")
    if req.htype != 1 or req.hlen != 6:
        return Ignore(f"hardware type {req.htype}/{req.hlen}: only Ethernet is served")
    if config.mode == "proxy" and not req.is_netboot:
        return Ignore("proxy mode: not a netboot client (no PXEClient/HTTPClient in option 60)")
    if config.mode == "proxy" and node is None and not config.answer_unknown:
        return Ignore("proxy mode: unknown MAC and answer_unknown is off")

    address = "0.0.0.0"
    if config.mode == "authoritative":
        if node is not None and node.ip:
            address = node.ip
        elif node is None and config.discovery_pool and req.is_netboot:
            pool = config.discovery_pool  # stable per MAC: a client asks twice (DISCOVER, REQUEST)
            address = pool[int(req.mac.replace(":", ""), 16) % len(pool)]
        else:
            return Ignore("authoritative mode: no reservation for this MAC and no discovery pool")
        if mtype is MessageType.REQUEST and req.requested_ip not in (None, address):
            return Ignore(f"asked for {req.requested_ip}, reserved {address}: not ours to answer")

    boot = _boot_file(req, node, config, chained) if req.is_netboot or req.is_ipxe else None
    if isinstance(boot, Ignore):
        return boot

    opts: list[tuple[int, bytes]] = [(Opt.SERVER_ID, ip_option(config.server_address))]
    if config.mode == "authoritative":
        opts += [
            (Opt.LEASE_TIME, u32_option(config.lease_time)),
            (Opt.SUBNET_MASK, ip_option(config.subnet_mask)),
        ]
        if config.router:
            opts.append((Opt.ROUTER, ip_option(config.router)))
        if config.dns:
            opts.append((Opt.DNS, ip_option(*config.dns)))
    if req.is_netboot:
        # echo the class: iPXE waits 1-3 s for proxy offers without "PXEClient" in them
        http = req.vendor_class.startswith("HTTPClient")
        opts.append((Opt.VENDOR_CLASS, b"HTTPClient" if http else b"PXEClient"))
        if req.vendor_class.startswith("PXEClient") and not req.is_ipxe:
            opts.append((Opt.VENDOR_SPECIFIC, pxe_vendor_options()))
    uuid = req.client_uuid
    if uuid is not None:
        opts.append((Opt.CLIENT_UUID, uuid))
    file = b""
    if boot is not None:
        raw = boot.encode()
        if len(raw) <= 127:
            file = raw
        opts.append((Opt.BOOTFILE_NAME, raw))
        if not boot.startswith("http"):
            opts.append((Opt.TFTP_SERVER_NAME, config.server_address.encode()))

    reply_type = {
        MessageType.DISCOVER: MessageType.OFFER,
        MessageType.REQUEST: MessageType.ACK,
        MessageType.INFORM: MessageType.ACK,
    }[mtype]
    reply = DhcpReply(
        request=req,
        message_type=reply_type,
        yiaddr=address if mtype is not MessageType.INFORM else "0.0.0.0",
        siaddr=config.server_address,
        sname=config.server_address.encode() if config.mode == "proxy" else b"",
        file=file,
        options=opts,
    )
    if req.relayed:
        destination = (req.giaddr, 67)
    elif req.ciaddr != "0.0.0.0":
        destination = (req.ciaddr, 68)
    else:
        destination = ("255.255.255.255", 68)
    what = boot or "address"
    return Offer(
        reply, destination, f"{config.mode} {reply_type.name.lower()} {what} to {req.mac}", boot
    )
