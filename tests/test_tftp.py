"""The TFTP service for real, on 127.0.0.1: Debian's tftp-hpa and atftp clients as independent
peers, plus a small raw-socket client of our own where a test must see the packets themselves
(the OACK, retransmissions, a client that misbehaves or vanishes).

The root is a temp dir: copies of Debian's iPXE loaders, a file whose size is a multiple of both
block sizes used, and symlinks pointing in and out of the root. No wall-clock assertions: waits
are bounded polls, and every client runs under a timeout.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pxe.tftp import MAX_BLKSIZE, Refused, TftpService, negotiate, normalize_path
from tests.support.peers import missing

HOST = "127.0.0.1"
LOADERS = Path("/usr/lib/ipxe")
# a multiple of 512 (tftp-hpa's default block) and 1468 (the Ethernet-sized block): the
# transfer must end with an empty DATA block
MULTIPLE = 512 * 367
CLIENT_TIMEOUT_S = 60


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"apt-get install {package}")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    if not (LOADERS / "ipxe.efi").exists():
        missing("apt-get install ipxe")
    root = tmp_path / "root"
    root.mkdir()
    for name in ("ipxe.efi", "undionly.kpxe", "snponly.efi"):
        shutil.copyfile(LOADERS / name, root / name)  # ipxe.efi is itself a symlink to /boot
    (root / "multiple.bin").write_bytes(os.urandom(MULTIPLE))
    (root / "empty.bin").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"line one\nline two\r\n")
    (root / "evil").symlink_to("/etc/passwd")
    (root / "escape").symlink_to("/etc")
    (root / "inside").symlink_to("ipxe.efi")
    (root / "sub" / "up").symlink_to("../undionly.kpxe")  # relative, still inside
    outside = tmp_path / "secret.txt"
    outside.write_text("not for clients")
    (root / "sibling").symlink_to(outside)
    return root


@dataclass
class Svc:
    service: TftpService
    root: Path
    sent: list[tuple[str, tuple[str, int], int]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.service.port


def node_script(path: str, client: tuple[str, int]) -> bytes | None:
    if path.startswith("nodes/") and path.endswith(".ipxe"):
        return f"#!ipxe\n# for {path[6:-5]} at {client[0]}\nchain http://x/boot\n".encode()
    if path == "boom":
        raise RuntimeError("the inventory is down")
    return None


@pytest.fixture
def svc(root: Path) -> Iterator[Svc]:
    holder: list[Svc] = []

    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        holder[0].asked.append(path)
        return node_script(path, client)

    def on_sent(path: str, client: tuple[str, int], nbytes: int) -> None:
        holder[0].sent.append((path, client, nbytes))
        if path == "undionly.kpxe":
            raise RuntimeError("a broken on_sent must not hurt the service")

    service = TftpService(root, host=HOST, port=0, dynamic=dynamic, on_sent=on_sent)
    s = Svc(service, root)
    holder.append(s)
    service.start()
    try:
        yield s
    finally:
        service.stop()


def wait_for(cond: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


# ----------------------------------------------------------------------------- clients


def tftp_hpa(port: int, cwd: Path, *commands: str, mode: str = "binary") -> str:
    tftp = need_tool("tftp", "tftp-hpa")
    p = subprocess.run(
        [tftp, HOST, str(port), "-m", mode, "-c", *commands],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
    )
    return p.stdout + p.stderr


def atftp_get(
    port: int, remote: str, local: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    atftp = need_tool("atftp", "atftp")
    opts: list[str] = []
    for o in options:
        opts += ["--option", o]
    return subprocess.run(
        [atftp, *opts, "-g", "-r", remote, "-l", str(local), HOST, str(port)],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
    )


def rrq(name: str | bytes, mode: bytes = b"octet", **options: object) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    pkt = struct.pack("!H", 1) + raw + b"\0" + mode + b"\0"
    for k, v in options.items():
        pkt += k.encode() + b"\0" + str(v).encode() + b"\0"
    return pkt


def parse_oack(data: bytes) -> dict[str, str]:
    parts = data[2:].split(b"\0")[:-1]
    return {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts), 2)}


@dataclass
class RawResult:
    oack: dict[str, str] | None
    data: bytes
    sizes: list[int]  # of every DATA payload, in order
    error: tuple[int, str] | None = None


def raw_get(
    port: int,
    name: str | bytes,
    *,
    window: int = 1,
    drop_first: bool = False,
    **options: object,
) -> RawResult:
    """A minimal RFC 1350/2347/7440 client: OACK handling, windows, block-number rollover.
    ``drop_first`` ignores the first DATA block once, so the server must retransmit it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(rrq(name, **options), (HOST, port))
        blksize = int(options.get("blksize", 512))
        got = bytearray()
        sizes: list[int] = []
        oack = None
        server: tuple[str, int] | None = None
        expected = 1  # absolute block count
        since_ack = 0
        dropped = False
        for _ in range(2_000_000):  # bounded; every step either ends or moves on
            try:
                data, addr = s.recvfrom(70000)
            except TimeoutError:
                pytest.fail(f"raw client: no answer waiting for block {expected}")
            if server is None:
                server = addr
            assert addr == server, "the server changed its TID mid-transfer"
            opcode = struct.unpack("!H", data[:2])[0]
            if opcode == 5:
                code = struct.unpack("!H", data[2:4])[0]
                return RawResult(oack, bytes(got), sizes, (code, data[4:-1].decode()))
            if opcode == 6:
                oack = parse_oack(data)
                blksize = int(oack.get("blksize", blksize))
                s.sendto(struct.pack("!HH", 4, 0), server)
                continue
            assert opcode == 3, f"unexpected opcode {opcode}"
            number = struct.unpack("!H", data[2:4])[0]
            if drop_first and not dropped:
                dropped = True
                continue
            if number != expected & 0xFFFF:
                continue  # a retransmission or an out-of-window block: ignore
            payload = data[4:]
            got += payload
            sizes.append(len(payload))
            since_ack += 1
            last = len(payload) < blksize
            if last or since_ack >= window:
                s.sendto(struct.pack("!HH", 4, expected & 0xFFFF), server)
                since_ack = 0
            if last:
                return RawResult(oack, bytes(got), sizes)
            expected += 1
        pytest.fail("raw client: too many packets")


def raw_error(port: int, packet: bytes) -> tuple[int, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(packet, (HOST, port))
        data, _ = s.recvfrom(1024)
    assert data[:2] == b"\0\5", data
    return struct.unpack("!H", data[2:4])[0], data[4:-1].decode()


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("ipxe.efi", "ipxe.efi"),
        ("sub/inner.txt", "sub/inner.txt"),
        ("sub\\inner.txt", "sub/inner.txt"),
        ("./sub//inner.txt", "sub/inner.txt"),
    ],
)
def test_normalize_accepts(raw: str, want: str) -> None:
    assert normalize_path(raw) == want


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/etc/passwd",
        "\\etc\\passwd",
        "../etc/passwd",
        "..\\..\\etc\\passwd",
        "a/../b",
        "C:\\boot.ini",
        "a\x01b",
        ".",
        "./",
    ],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(Refused):
        normalize_path(raw)


def test_negotiate() -> None:
    o = negotiate({"blksize": "1468", "tsize": "0", "windowsize": "8", "timeout": "3"}, 1000)
    assert (o.blksize, o.windowsize, o.timeout) == (1468, 8, 3.0)
    assert dict(o.acked) == {"blksize": "1468", "tsize": "1000", "windowsize": "8", "timeout": "3"}
    assert negotiate({"blksize": "100000"}, 1).blksize == MAX_BLKSIZE
    # malformed, out-of-range or unknown options are left out of the OACK, never an error
    o = negotiate({"blksize": "4", "timeout": "0", "tsize": "x", "multicast": ""}, 1)
    assert o.acked == () and o.blksize == 512


# ----------------------------------------------------------------------------- transfers


def test_tftp_hpa_gets_loaders_byte_identical(svc: Svc, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = ["ipxe.efi", "undionly.kpxe", "snponly.efi", "multiple.bin", "empty.bin"]
    for name in names:
        tftp_hpa(svc.port, out, "get", name)
        assert (out / name).read_bytes() == (svc.root / name).read_bytes(), name
    wait_for(lambda: len(svc.sent) == len(names), "on_sent for every file")
    assert [(p, n) for p, _, n in svc.sent] == [(n, (svc.root / n).stat().st_size) for n in names]
    assert all(c[0] == HOST for _, c, _ in svc.sent)
    assert svc.service.stats["sent"] == len(names)  # on_sent raising did not count as failure
    assert svc.service.stats["failed"] == 0


def test_atftp_blksize_and_tsize(svc: Svc, tmp_path: Path) -> None:
    for name in ("ipxe.efi", "multiple.bin"):
        out = tmp_path / f"{name}.out"
        p = atftp_get(svc.port, name, out, "blksize 1468", "tsize 0")
        assert p.returncode == 0, p.stdout + p.stderr
        assert out.read_bytes() == (svc.root / name).read_bytes()


def test_oack_answers_blksize_tsize_windowsize(svc: Svc) -> None:
    want = (svc.root / "ipxe.efi").read_bytes()
    r = raw_get(svc.port, "ipxe.efi", blksize=1468, tsize=0, windowsize=4, window=4, foo="bar")
    assert r.oack == {"blksize": "1468", "tsize": str(len(want)), "windowsize": "4"}
    assert r.data == want
    assert set(r.sizes[:-1]) == {1468} and r.sizes[-1] == len(want) % 1468

    r = raw_get(svc.port, "multiple.bin", blksize=1468, tsize=0)
    assert r.data == (svc.root / "multiple.bin").read_bytes()
    assert r.sizes[-1] == 0  # a multiple of the block size ends with an empty block

    r = raw_get(svc.port, "undionly.kpxe")  # no options: no OACK, plain RFC 1350
    assert r.oack is None and r.data == (svc.root / "undionly.kpxe").read_bytes()


def test_block_number_rollover_with_window(svc: Svc) -> None:
    data = os.urandom(16 * 65536 + 100)  # 65543 blocks of 16 bytes: the 16-bit number wraps
    (svc.root / "big.bin").write_bytes(data)
    r = raw_get(svc.port, "big.bin", blksize=16, windowsize=64, window=64)
    assert r.oack == {"blksize": "16", "windowsize": "64"}
    assert r.data == data


def test_lost_block_is_retransmitted(svc: Svc) -> None:
    r = raw_get(svc.port, "undionly.kpxe", drop_first=True, blksize=1468)
    assert r.data == (svc.root / "undionly.kpxe").read_bytes()


def test_netascii_mode(svc: Svc, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    tftp_hpa(svc.port, out, "get", "sub/inner.txt", "inner.txt", mode="ascii")
    assert (out / "inner.txt").read_bytes() == (svc.root / "sub" / "inner.txt").read_bytes()


def test_symlinks_inside_root_are_served(svc: Svc) -> None:
    assert raw_get(svc.port, "inside").data == (svc.root / "ipxe.efi").read_bytes()
    assert raw_get(svc.port, "sub/up").data == (svc.root / "undionly.kpxe").read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "..\\..\\etc\\passwd",
        "sub/../../etc/passwd",
        "/etc/passwd",
        "evil",  # symlink to /etc/passwd
        "escape/passwd",  # through a symlinked directory
        "sibling",  # symlink to a file next to the root
    ],
)
def test_refused_paths(
    svc: Svc, tmp_path: Path, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="provisiond.pxe.tftp"):
        assert raw_error(svc.port, rrq(path)) == (2, "Access violation")
        out = tmp_path / "out"
        out.mkdir()
        text = tftp_hpa(svc.port, out, "get", path, "got")
        assert "Access violation" in text
        assert not (out / "got").exists() or (out / "got").stat().st_size == 0
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert lines and all(HOST in m and repr(path) in m for m in lines)
    assert svc.service.stats["refused"] == 2
    assert svc.service.stats["sent"] == 0


def test_missing_file(svc: Svc, tmp_path: Path) -> None:
    assert raw_error(svc.port, rrq("no-such-file")) == (1, "File not found")
    assert raw_error(svc.port, rrq("sub")) == (1, "File not found")  # a directory
    assert "File not found" in tftp_hpa(svc.port, tmp_path, "get", "nope.efi")
    assert svc.service.stats["not_found"] == 3


def test_dynamic_files(svc: Svc, tmp_path: Path) -> None:
    r = raw_get(svc.port, "nodes/52-54-00-aa-bb-01.ipxe", tsize=0)
    assert r.data == node_script("nodes/52-54-00-aa-bb-01.ipxe", (HOST, 0))
    assert r.oack == {"tsize": str(len(r.data))}
    out = tmp_path / "n.ipxe"
    p = atftp_get(svc.port, "nodes\\52-54-00-aa-bb-02.ipxe", out, "blksize 1468")
    assert p.returncode == 0, p.stderr
    assert b"52-54-00-aa-bb-02 at 127.0.0.1" in out.read_bytes()
    # asked first, with the normalized path; None falls through to the root
    assert raw_get(svc.port, "ipxe.efi").data == (svc.root / "ipxe.efi").read_bytes()
    assert svc.asked == ["nodes/52-54-00-aa-bb-01.ipxe", "nodes/52-54-00-aa-bb-02.ipxe", "ipxe.efi"]
    # never asked about a refused path
    raw_error(svc.port, rrq("../nodes/x.ipxe"))
    assert "../nodes/x.ipxe" not in svc.asked
    # a failing lookup answers an error; the service goes on
    assert raw_error(svc.port, rrq("boom"))[0] == 0
    assert raw_get(svc.port, "nodes/after.ipxe").data.startswith(b"#!ipxe")


def test_write_requests_refused(svc: Svc, tmp_path: Path) -> None:
    wrq = struct.pack("!H", 2) + b"upload.bin\0octet\0"
    code, _ = raw_error(svc.port, wrq)
    assert code == 2
    (tmp_path / "up.bin").write_bytes(b"x" * 1000)
    text = tftp_hpa(svc.port, tmp_path, "put", "up.bin")
    assert "Access violation" in text
    assert not (svc.root / "upload.bin").exists() and not (svc.root / "up.bin").exists()


def test_bad_clients_do_not_stop_the_service(svc: Svc, tmp_path: Path) -> None:
    port = svc.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        # garbage to the listener: short, unknown opcode, stray ACK/DATA, broken requests
        for junk in (
            b"",
            b"\x00",
            b"\xff\xff garbage",
            struct.pack("!HH", 4, 7),
            struct.pack("!HH", 3, 1) + b"data",
            b"\x00\x01no-terminators",
            b"\x00\x01file\x00",
            b"\x00\x01\xff\xfe\x00octet\x00",  # not ASCII
            rrq("ipxe.efi", mode=b"mail"),
            rrq("ipxe.efi", blksize="1468", odd=None)[:-5],
            os.urandom(600),
        ):
            s.sendto(junk, (HOST, port))
    # a client that starts a transfer, sends nonsense on the transfer's port, then vanishes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(rrq("ipxe.efi", blksize=1468), (HOST, port))
        _, server = s.recvfrom(2000)  # the OACK
        s.sendto(struct.pack("!HH", 4, 0), server)
        s.recvfrom(2000)  # block 1
        for pkt in (
            struct.pack("!HH", 4, 999),  # ACK for a block never sent
            struct.pack("!HH", 4, 60000),
            b"\x00\x03junk",
            b"\xde\xad",
            struct.pack("!HH", 1, 0),
        ):
            s.sendto(pkt, server)
        s.sendto(struct.pack("!HH", 4, 1), server)
        s.recvfrom(2000)  # block 2: it still answers the real ACK
    # ... and vanished: the transfer ends (port unreachable, or the retries run out)
    wait_for(lambda: svc.service.stats["active"] == 0, "the abandoned transfer to end")
    assert svc.service.stats["failed"] >= 1
    # a client that aborts after the OACK (what PXE ROMs do to learn tsize)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(rrq("ipxe.efi", tsize=0), (HOST, port))
        data, server = s.recvfrom(2000)
        assert data[:2] == b"\0\6"
        s.sendto(struct.pack("!HH", 5, 8) + b"tsize only\0", server)
    wait_for(lambda: svc.service.stats["aborted"] == 1, "the abort to be counted")
    # the next (real) client is served; on_sent raising for undionly.kpxe changes nothing
    out = tmp_path / "out"
    out.mkdir()
    for name in ("undionly.kpxe", "ipxe.efi"):
        tftp_hpa(port, out, "get", name)
        assert (out / name).read_bytes() == (svc.root / name).read_bytes()
    assert svc.service.stats["malformed"] >= 8


def test_many_clients_at_once(svc: Svc, tmp_path: Path) -> None:
    atftp = need_tool("atftp", "atftp")
    want = (svc.root / "ipxe.efi").read_bytes()
    procs = [
        subprocess.Popen(
            [
                atftp,
                "--option",
                "blksize 1468",
                "-g",
                "-r",
                "ipxe.efi",
                "-l",
                str(tmp_path / f"c{i}"),
                HOST,
                str(svc.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(30)
    ]
    try:
        codes = [p.wait(CLIENT_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0] * 30
    assert all((tmp_path / f"c{i}").read_bytes() == want for i in range(30))


def test_lifecycle(root: Path) -> None:
    a = TftpService(root, host=HOST, port=0)
    a.start()
    try:
        assert a.port > 0
        b = TftpService(root, host=HOST, port=a.port)
        with pytest.raises(OSError, match=f"{HOST}:{a.port}"):
            b.start()
        b.stop()  # never started: a no-op
    finally:
        a.stop()
        a.stop()  # idempotent
    # the port is free again and nothing answers on it
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, a.port))
