"""DHCP/BOOTP packet codec (RFC 2131, 2132; 3396 long options; option overload 52).

``parse`` reads a datagram through a memoryview into a frozen ``DhcpPacket`` or raises
``Malformed`` naming what is wrong; it never raises anything else, whatever the bytes. ``encode``
builds a reply from named fields and ordered options. No I/O here: the server owns sockets.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LEN = 236  # op .. file, before the magic cookie
BOOTP_MIN_LEN = 300  # RFC 951/1542: some clients drop shorter replies
BROADCAST_FLAG = 0x8000


class MessageType(IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(IntEnum):
    """Option codes provisiond reads or writes."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    DOMAIN = 15
    VENDOR_SPECIFIC = 43
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAM_REQUEST = 55
    MAX_MESSAGE_SIZE = 57
    VENDOR_CLASS = 60
    CLIENT_ID = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    USER_CLASS = 77
    CLIENT_ARCH = 93
    CLIENT_NDI = 94
    CLIENT_UUID = 97
    IPXE_ENCAP = 175
    END = 255


class Malformed(ValueError):
    """A datagram that is not a usable DHCP packet; the message says why."""


@dataclass(frozen=True)
class DhcpPacket:
    op: int
    htype: int
    hlen: int
    hops: int
    xid: int
    secs: int
    flags: int
    ciaddr: str
    yiaddr: str
    siaddr: str
    giaddr: str
    chaddr: bytes
    sname: bytes
    file: bytes
    options: Mapping[int, bytes] = field(default_factory=dict)

    # --- what the policy asks -------------------------------------------------------------
    @property
    def mac(self) -> str:
        """Client hardware address, lowercase colon form (Ethernet: 6 bytes)."""
        return ":".join(f"{b:02x}" for b in self.chaddr[: self.hlen])

    @property
    def message_type(self) -> MessageType | None:
        raw = self.options.get(Opt.MESSAGE_TYPE)
        if raw is None or len(raw) != 1:
            return None
        try:
            return MessageType(raw[0])
        except ValueError:
            return None

    @property
    def vendor_class(self) -> str:
        return self.options.get(Opt.VENDOR_CLASS, b"").decode("ascii", "replace")

    @property
    def is_netboot(self) -> bool:
        """PXE or UEFI HTTP boot firmware (option 60 PXEClient / HTTPClient)."""
        return self.vendor_class.startswith(("PXEClient", "HTTPClient"))

    @property
    def client_arch(self) -> int | None:
        """Option 93: the first architecture type the client lists (RFC 4578)."""
        raw = self.options.get(Opt.CLIENT_ARCH)
        if raw is None or len(raw) < 2:
            return None
        return int(struct.unpack_from("!H", raw)[0])

    @property
    def user_classes(self) -> tuple[bytes, ...]:
        """Option 77, RFC 3004 form (length-prefixed) or the plain string old iPXE sends."""
        raw = self.options.get(Opt.USER_CLASS)
        if not raw:
            return ()
        out: list[bytes] = []
        i = 0
        while i < len(raw):
            n = raw[i]
            if n == 0 or i + 1 + n > len(raw):
                return (raw,)  # not RFC 3004: the whole value is one class
            out.append(raw[i + 1 : i + 1 + n])
            i += 1 + n
        return tuple(out)

    @property
    def is_ipxe(self) -> bool:
        """A client already running iPXE: user class "iPXE", or iPXE's own option 175."""
        return b"iPXE" in self.user_classes or Opt.IPXE_ENCAP in self.options

    @property
    def client_uuid(self) -> bytes | None:
        """Option 97 as sent (type byte + 16-byte UUID, or empty), to mirror in the reply."""
        raw = self.options.get(Opt.CLIENT_UUID)
        return raw if raw is not None and len(raw) in (0, 17) else None

    @property
    def requested_ip(self) -> str | None:
        raw = self.options.get(Opt.REQUESTED_IP)
        return str(ipaddress.IPv4Address(raw)) if raw is not None and len(raw) == 4 else None

    @property
    def relayed(self) -> bool:
        return self.giaddr != "0.0.0.0"

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)


def _ip(b: bytes | memoryview) -> str:
    return str(ipaddress.IPv4Address(bytes(b)))


def _read_options(view: memoryview, where: str, into: dict[int, bytearray]) -> int | None:
    """Options from ``view`` into ``into`` (repeated codes concatenate, RFC 3396); returns the
    overload value if option 52 was seen. Stops at END; PADs are skipped."""
    overload: int | None = None
    i, n = 0, len(view)
    while i < n:
        code = view[i]
        if code == Opt.PAD:
            i += 1
            continue
        if code == Opt.END:
            return overload
        if i + 1 >= n:
            raise Malformed(f"{where}: option {code} has no length byte")
        length = view[i + 1]
        if i + 2 + length > n:
            raise Malformed(f"{where}: option {code} says {length} bytes, {n - i - 2} left")
        value = view[i + 2 : i + 2 + length]
        if code == Opt.OVERLOAD:
            if length != 1 or value[0] not in (1, 2, 3):
                raise Malformed(f"{where}: option 52 (overload) must be 1 byte of 1, 2 or 3")
            overload = value[0]
        else:
            into.setdefault(code, bytearray()).extend(value)
        i += 2 + length
    if where == "options":
        raise Malformed("options: no END option")
    return overload


def parse(data: bytes | bytearray | memoryview) -> DhcpPacket:
    """One datagram to a DhcpPacket; Malformed for anything that is not one."""
    view = memoryview(data)
    if len(view) < FIXED_LEN + 4:
        raise Malformed(f"{len(view)} bytes: shorter than a DHCP header ({FIXED_LEN + 4})")
    if bytes(view[FIXED_LEN : FIXED_LEN + 4]) != MAGIC_COOKIE:
        raise Malformed("no DHCP magic cookie (plain BOOTP is not served)")
    op, htype, hlen, hops, xid, secs, flags = struct.unpack_from("!BBBBIHH", view, 0)
    if op not in (1, 2):
        raise Malformed(f"op {op}: neither BOOTREQUEST (1) nor BOOTREPLY (2)")
    if hlen > 16:
        raise Malformed(f"hlen {hlen}: more than the 16 bytes of chaddr")
    raw: dict[int, bytearray] = {}
    overload = _read_options(view[FIXED_LEN + 4 :], "options", raw)
    sname, file = bytes(view[44:108]), bytes(view[108:236])
    if overload in (1, 3):
        _read_options(view[108:236], "file (overloaded)", raw)
        file = b""
    if overload in (2, 3):
        _read_options(view[44:108], "sname (overloaded)", raw)
        sname = b""
    return DhcpPacket(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=_ip(view[12:16]),
        yiaddr=_ip(view[16:20]),
        siaddr=_ip(view[20:24]),
        giaddr=_ip(view[24:28]),
        chaddr=bytes(view[28:44]),
        sname=sname.split(b"\x00", 1)[0],
        file=file.split(b"\x00", 1)[0],
        options={k: bytes(v) for k, v in raw.items()},
    )


@dataclass(frozen=True)
class DhcpReply:
    """A BOOTREPLY. ``options`` in the order written; values longer than 255 bytes are split
    into repeated options (RFC 3396)."""

    request: DhcpPacket
    message_type: MessageType
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    sname: bytes = b""
    file: bytes = b""
    options: Sequence[tuple[int, bytes]] = ()

    def encode(self) -> bytes:
        req = self.request
        if len(self.sname) > 63 or len(self.file) > 127:
            raise ValueError("sname is at most 63 bytes and file at most 127 (NUL-terminated)")
        head = struct.pack(
            "!BBBBIHH4s4s4s4s16s64s128s",
            2,
            req.htype,
            req.hlen,
            0,
            req.xid,
            0,
            req.flags,
            ipaddress.IPv4Address(req.ciaddr).packed,
            ipaddress.IPv4Address(self.yiaddr).packed,
            ipaddress.IPv4Address(self.siaddr).packed,
            ipaddress.IPv4Address(req.giaddr).packed,
            req.chaddr,
            self.sname,
            self.file,
        )
        out = bytearray(head + MAGIC_COOKIE)
        out += bytes((Opt.MESSAGE_TYPE, 1, self.message_type))
        for code, value in self.options:
            if not 0 < code < 255 or code == Opt.MESSAGE_TYPE:
                raise ValueError(f"option {code} cannot be written here")
            if not value:
                out += bytes((code, 0))
            for i in range(0, len(value), 255):
                chunk = value[i : i + 255]
                out += bytes((code, len(chunk))) + chunk
        out.append(Opt.END)
        if len(out) < BOOTP_MIN_LEN:
            out += bytes(BOOTP_MIN_LEN - len(out))
        return bytes(out)


def ip_option(*addresses: str) -> bytes:
    return b"".join(ipaddress.IPv4Address(a).packed for a in addresses)


def u32_option(value: int) -> bytes:
    return struct.pack("!I", value)


def pxe_vendor_options() -> bytes:
    """Option 43 for PXE ROMs: sub-option 6 (discovery control) = 8: skip boot-server
    discovery, boot the file field."""
    return bytes((6, 1, 8, 255))
