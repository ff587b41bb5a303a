"""DHCP codec and policy (pxe/dhcp_codec.py, pxe/dhcp_policy.py): pure functions, no sockets.

Packets are built here byte by byte from RFC 2131's layout, independently of the codec's
encoder, so a codec bug cannot hide behind a matching encoder bug.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pxe.dhcp_codec import (
    BOOTP_MIN_LEN,
    MAGIC_COOKIE,
    DhcpReply,
    Malformed,
    MessageType,
    Opt,
    parse,
)
from pxe.dhcp_policy import Ignore, NodeBoot, Offer, PolicyConfig, decide
from pxe.dhcp_server import LoaderMemory

MAC = bytes.fromhex("525400aabb01")
UUID97 = b"\x00" + bytes(range(16))


def packet(
    *options: tuple[int, bytes],
    op: int = 1,
    mac: bytes = MAC,
    giaddr: str = "0.0.0.0",
    ciaddr: str = "0.0.0.0",
    flags: int = 0x8000,
    sname: bytes = b"",
    file: bytes = b"",
    end: bool = True,
) -> bytes:
    head = struct.pack("!BBBBIHH", op, 1, len(mac), 0, 0xDEADBEEF, 3, flags)
    head += ipaddress.IPv4Address(ciaddr).packed + bytes(8)
    head += ipaddress.IPv4Address(giaddr).packed
    head += mac.ljust(16, b"\x00") + sname.ljust(64, b"\x00") + file.ljust(128, b"\x00")
    body = b"".join(bytes((c, len(v))) + v for c, v in options)
    return head + MAGIC_COOKIE + body + (b"\xff" if end else b"")


def pxe_discover(arch: int = 7, *extra: tuple[int, bytes], **kw: object) -> bytes:
    return packet(
        (Opt.MESSAGE_TYPE, b"\x01"),
        (Opt.VENDOR_CLASS, f"PXEClient:Arch:{arch:05d}:UNDI:003016".encode()),
        (Opt.CLIENT_ARCH, struct.pack("!H", arch)),
        (Opt.CLIENT_NDI, b"\x01\x03\x10"),
        (Opt.CLIENT_UUID, UUID97),
        *extra,
        **kw,  # type: ignore[arg-type]
    )


def options_of(data: bytes) -> dict[int, bytes]:
    """Decode a reply's options independently of the codec (no overload, no repeats expected
    except split long options, which are joined)."""
    assert data[236:240] == MAGIC_COOKIE
    out: dict[int, bytes] = {}
    i = 240
    while data[i] != 255:
        code, n = data[i], data[i + 1]
        out[code] = out.get(code, b"") + data[i + 2 : i + 2 + n]
        i += 2 + n
    return out


PROXY = PolicyConfig(
    mode="proxy", server_address="198.51.100.1", http_base_url="http://198.51.100.1:8750"
)
AUTH = PolicyConfig(
    mode="authoritative",
    server_address="198.51.100.1",
    http_base_url="http://198.51.100.1:8750",
    router="198.51.100.254",
    dns=("198.51.100.53",),
    discovery_pool=("198.51.100.200", "198.51.100.201"),
)
NODE = NodeBoot(name="r01n01", ip="198.51.100.11")


# --- codec --------------------------------------------------------------------------------------


def test_parse_reads_fields_and_netboot_options() -> None:
    p = parse(pxe_discover(7))
    assert p.op == 1 and p.xid == 0xDEADBEEF and p.mac == "52:54:00:aa:bb:01"
    assert p.message_type is MessageType.DISCOVER
    assert p.is_netboot and not p.is_ipxe
    assert p.client_arch == 7
    assert p.client_uuid == UUID97
    assert p.broadcast and not p.relayed


def test_parse_concatenates_repeated_options_rfc3396() -> None:
    p = parse(
        packet(
            (Opt.MESSAGE_TYPE, b"\x01"), (Opt.VENDOR_CLASS, b"PXE"), (Opt.VENDOR_CLASS, b"Client")
        )
    )
    assert p.vendor_class == "PXEClient"


def test_parse_option_overload_reads_file_and_sname() -> None:
    in_file = bytes((Opt.VENDOR_CLASS, 9)) + b"PXEClient" + b"\xff"
    in_sname = bytes((Opt.CLIENT_ARCH, 2, 0, 7, 255))
    p = parse(
        packet((Opt.MESSAGE_TYPE, b"\x01"), (Opt.OVERLOAD, b"\x03"), file=in_file, sname=in_sname)
    )
    assert p.is_netboot and p.client_arch == 7
    assert p.file == b"" and p.sname == b""


@pytest.mark.parametrize(
    ("user_class", "ipxe"),
    [(b"iPXE", True), (b"\x04iPXE", True), (b"\x03abc\x04iPXE", True), (b"\x03abc", False)],
)
def test_user_class_plain_and_rfc3004(user_class: bytes, ipxe: bool) -> None:
    p = parse(pxe_discover(7, (Opt.USER_CLASS, user_class)))
    assert p.is_ipxe is ipxe


def test_ipxe_encapsulated_option_175_counts_as_ipxe() -> None:
    assert parse(pxe_discover(7, (Opt.IPXE_ENCAP, b"\x13\x01\x01"))).is_ipxe


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter than a DHCP header"),
        (pxe_discover()[:239], "shorter than a DHCP header"),
        (pxe_discover()[:236] + b"\x00\x00\x00\x00\xff", "magic cookie"),
        (packet((Opt.MESSAGE_TYPE, b"\x01"), op=3), "op 3"),
        (packet((Opt.MESSAGE_TYPE, b"\x01"), end=False), "no END"),
        (packet((Opt.MESSAGE_TYPE, b"\x01"))[:-1] + b"\x3c\x20abc", "says 32 bytes"),
        (packet((Opt.MESSAGE_TYPE, b"\x01"))[:-1] + b"\x3c", "no length byte"),
        (packet((Opt.OVERLOAD, b"\x07")), "overload"),
    ],
)
def test_malformed_packets_say_what(data: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        parse(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_parse_raises_only_malformed_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(Malformed):
        parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_parse_raises_only_malformed_after_a_valid_header(tail: bytes) -> None:
    with contextlib.suppress(Malformed):
        parse(pxe_discover()[:240] + tail)


def test_encode_pads_to_bootp_minimum_and_splits_long_options() -> None:
    req = parse(pxe_discover())
    long_value = bytes(range(256)) * 2  # 512 bytes -> three option chunks
    data = DhcpReply(req, MessageType.OFFER, options=[(Opt.BOOTFILE_NAME, long_value)]).encode()
    assert len(data) >= BOOTP_MIN_LEN
    assert data[0] == 2 and data[4:8] == struct.pack("!I", 0xDEADBEEF)
    assert data[28:34] == MAC
    opts = options_of(data)
    assert opts[Opt.MESSAGE_TYPE] == b"\x02"
    assert opts[Opt.BOOTFILE_NAME] == long_value
    # and our own parser reads back what the encoder wrote
    assert parse(data).options[Opt.BOOTFILE_NAME] == long_value


# --- policy ---------------------------------------------------------------------------------------


def offer(decision: Offer | Ignore) -> Offer:
    assert isinstance(decision, Offer), decision
    return decision


@pytest.mark.parametrize(
    ("arch", "loader"),
    [
        (0, "undionly.kpxe"),
        (6, "ipxe.efi"),
        (7, "ipxe.efi"),
        (9, "ipxe.efi"),
        (11, "ipxe-arm64.efi"),
    ],
)
def test_boot_file_follows_client_architecture(arch: int, loader: str) -> None:
    o = offer(decide(parse(pxe_discover(arch)), NODE, PROXY))
    data = o.reply.encode()
    assert data[108 : 108 + len(loader)] == loader.encode()
    assert options_of(data)[Opt.BOOTFILE_NAME] == loader.encode()


def test_per_node_loader_overrides_the_map() -> None:
    node = NodeBoot(name="gpu1", loader="snponly.efi")
    o = offer(decide(parse(pxe_discover(7)), node, PROXY))
    assert options_of(o.reply.encode())[Opt.BOOTFILE_NAME] == b"snponly.efi"


def test_uefi_http_boot_gets_a_url() -> None:
    p = parse(
        packet(
            (Opt.MESSAGE_TYPE, b"\x01"),
            (Opt.VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003001"),
            (Opt.CLIENT_ARCH, struct.pack("!H", 16)),
        )
    )
    opts = options_of(offer(decide(p, NODE, PROXY)).reply.encode())
    assert opts[Opt.BOOTFILE_NAME] == b"http://198.51.100.1:8750/boot/assets/ipxe.efi"
    assert opts[Opt.VENDOR_CLASS] == b"HTTPClient"
    assert Opt.TFTP_SERVER_NAME not in opts and Opt.VENDOR_SPECIFIC not in opts


def test_ipxe_client_gets_its_script_url_not_the_binary_again() -> None:
    o = offer(decide(parse(pxe_discover(7, (Opt.USER_CLASS, b"iPXE"))), NODE, PROXY))
    opts = options_of(o.reply.encode())
    assert opts[Opt.BOOTFILE_NAME] == b"http://198.51.100.1:8750/boot/ipxe?mac=52:54:00:aa:bb:01"
    assert Opt.VENDOR_SPECIFIC not in opts  # iPXE needs no PXE discovery control


def test_proxy_offer_never_assigns_an_address_and_names_itself() -> None:
    o = offer(decide(parse(pxe_discover(0)), NODE, PROXY))
    data = o.reply.encode()
    opts = options_of(data)
    assert data[16:20] == bytes(4)  # yiaddr 0.0.0.0
    assert data[20:24] == ipaddress.IPv4Address("198.51.100.1").packed  # siaddr
    assert data[44:56] == b"198.51.100.1"  # sname
    assert opts[Opt.SERVER_ID] == ipaddress.IPv4Address("198.51.100.1").packed
    assert opts[Opt.VENDOR_CLASS] == b"PXEClient"  # echoed
    assert opts[Opt.VENDOR_SPECIFIC] == bytes((6, 1, 8, 255))  # 43.6 = 8
    assert opts[Opt.CLIENT_UUID] == UUID97  # mirrored
    assert Opt.LEASE_TIME not in opts and Opt.SUBNET_MASK not in opts
    assert o.destination == ("255.255.255.255", 68)


def test_proxy_ignores_clients_that_do_not_netboot() -> None:
    plain = parse(packet((Opt.MESSAGE_TYPE, b"\x01")))
    assert isinstance(decide(plain, NODE, PROXY), Ignore)


def test_proxy_unknown_mac_per_config() -> None:
    p = parse(pxe_discover(7))
    assert isinstance(decide(p, None, PROXY), Offer)
    quiet = PolicyConfig(**{**PROXY.__dict__, "answer_unknown": False})
    assert isinstance(decide(p, None, quiet), Ignore)


def test_authoritative_reservation_with_lease_and_network_options() -> None:
    o = offer(decide(parse(pxe_discover(7)), NODE, AUTH))
    data = o.reply.encode()
    opts = options_of(data)
    assert data[16:20] == ipaddress.IPv4Address("198.51.100.11").packed
    assert opts[Opt.LEASE_TIME] == struct.pack("!I", 3600)
    assert opts[Opt.SUBNET_MASK] == ipaddress.IPv4Address("255.255.255.0").packed
    assert opts[Opt.ROUTER] == ipaddress.IPv4Address("198.51.100.254").packed
    assert opts[Opt.DNS] == ipaddress.IPv4Address("198.51.100.53").packed
    assert opts[Opt.MESSAGE_TYPE] == bytes((MessageType.OFFER,))


def test_authoritative_request_is_acked_only_for_its_reservation() -> None:
    ask = lambda ip: parse(  # noqa: E731
        packet((Opt.MESSAGE_TYPE, b"\x03"), (Opt.REQUESTED_IP, ipaddress.IPv4Address(ip).packed))
    )
    ack = offer(decide(ask("198.51.100.11"), NODE, AUTH))
    assert options_of(ack.reply.encode())[Opt.MESSAGE_TYPE] == bytes((MessageType.ACK,))
    assert isinstance(decide(ask("198.51.100.99"), NODE, AUTH), Ignore)


def test_authoritative_unknown_netboot_client_from_discovery_pool_stably() -> None:
    p = parse(pxe_discover(7))
    first = offer(decide(p, None, AUTH)).reply.yiaddr
    assert first in AUTH.discovery_pool
    assert offer(decide(p, None, AUTH)).reply.yiaddr == first
    no_pool = PolicyConfig(**{**AUTH.__dict__, "discovery_pool": ()})
    assert isinstance(decide(p, None, no_pool), Ignore)


def test_relayed_request_goes_back_to_the_relay() -> None:
    o = offer(decide(parse(pxe_discover(7, giaddr="10.9.8.1")), NODE, PROXY))
    assert o.destination == ("10.9.8.1", 67)
    assert o.reply.encode()[24:28] == ipaddress.IPv4Address("10.9.8.1").packed


@pytest.mark.parametrize("mtype", [b"\x02", b"\x04", b"\x05", b"\x07"])
def test_messages_that_need_no_answer_are_ignored(mtype: bytes) -> None:
    p = parse(pxe_discover(7, (Opt.MESSAGE_TYPE, mtype)))
    # MESSAGE_TYPE repeated: concatenated, so it is no longer one byte -> ignored as missing
    assert isinstance(decide(p, NODE, PROXY), Ignore)
    q = parse(packet((Opt.MESSAGE_TYPE, mtype), (Opt.VENDOR_CLASS, b"PXEClient")))
    assert isinstance(decide(q, NODE, PROXY), Ignore)


def test_unknown_architecture_is_ignored_with_a_reason() -> None:
    d = decide(parse(pxe_discover(25)), NODE, PROXY)
    assert isinstance(d, Ignore) and "architecture 25" in d.reason


def test_ipxe_rom_first_gets_our_loader_then_its_script() -> None:
    """QEMU's ROM is iPXE: its first exchange gets the TFTP loader; once that was offered to the
    MAC, an iPXE request with another xid (our loader running) gets the script URL."""
    rom = parse(pxe_discover(0, (Opt.USER_CLASS, b"iPXE")))
    first = offer(decide(rom, NODE, PROXY, chained=False))
    assert first.boot == "undionly.kpxe" and first.gives_loader
    then = offer(decide(rom, NODE, PROXY, chained=True))
    assert then.boot == "http://198.51.100.1:8750/boot/ipxe?mac=52:54:00:aa:bb:01"
    assert not then.gives_loader
    no_chain = dataclasses.replace(PROXY, chainload_ipxe_roms=False)
    assert offer(decide(rom, NODE, no_chain, chained=False)).boot == then.boot


def test_loader_memory_tells_stages_apart_by_xid_and_age() -> None:
    mem = LoaderMemory(window=300, limit=2)
    mac = "52:54:00:aa:bb:01"
    assert not mem.chained(mac, 1, now=0)
    mem.loader_offered(mac, 1, now=0)
    assert not mem.chained(mac, 1, now=1)  # same exchange (REQUEST after DISCOVER): same answer
    assert mem.chained(mac, 2, now=5)  # another exchange: our loader asks
    assert not mem.chained(mac, 2, now=301)  # a boot long after: start again from the loader
    mem.forget(mac)
    assert not mem.chained(mac, 2, now=5)
    for i in range(3):  # bounded
        mem.loader_offered(f"52:54:00:00:00:0{i}", i, now=0)
    assert not mem.chained("52:54:00:00:00:00", 9, now=1)
    assert mem.chained("52:54:00:00:00:02", 9, now=1)


def test_request_naming_another_server_is_left_to_it() -> None:
    """RFC 2131 4.3.2: the client took the site server's offer; we stay silent (both modes)."""

    def request(server: bytes) -> bytes:
        return packet(
            (Opt.MESSAGE_TYPE, b"\x03"),
            (Opt.VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016"),
            (Opt.CLIENT_ARCH, struct.pack("!H", 7)),
            (Opt.SERVER_ID, server),
        )

    assert isinstance(decide(parse(request(bytes([198, 51, 100, 2]))), NODE, PROXY), Ignore)
    assert isinstance(decide(parse(request(bytes([198, 51, 100, 1]))), NODE, PROXY), Offer)


def test_request_through_a_relay_with_server_id_override_is_ours() -> None:
    """RFC 5107: the relay names itself in option 54 and carries our address in 82.11."""
    relay = bytes([203, 0, 113, 1])
    p = packet(
        (Opt.MESSAGE_TYPE, b"\x03"),
        (Opt.VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016"),
        (Opt.CLIENT_ARCH, struct.pack("!H", 7)),
        (Opt.SERVER_ID, relay),
        (82, bytes([1, 2, 0, 1, 11, 4, 198, 51, 100, 1])),
        giaddr="203.0.113.1",
    )
    assert isinstance(decide(parse(p), NODE, PROXY), Offer)
