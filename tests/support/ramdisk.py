"""A kernel + initramfs that runs the inspection agent, for the QEMU end-to-end PXE test.

``build()`` returns ``Ramdisk(kernel, initrd)`` from a cache keyed by a hash of everything that
goes in (kernel package, busybox, the Python interpreter, the agent's sources, this file):

- kernel: Debian's ``linux-image-*-cloud-amd64`` package (virtio drivers as modules), extracted
  with ``dpkg-deb -x``, never installed: taken from the cache, from apt's own archive cache, or
  fetched with ``apt-get download``. Its ``vmlinuz``, and ``virtio_net`` + ``virtio_pci`` with
  their dependencies from ``modules.dep``, in load order;
- busybox (Debian's dynamic build: its libraries come along) for the shell, ``insmod``, ``ip``,
  ``udhcpc`` and ``poweroff``;
- the host's Python (Debian's ``/usr/bin/python3`` when there is one) with its shared libraries
  (ldd) and only the standard-library modules the agent was seen to import, compiled to
  sourceless ``.pyc`` by that same interpreter; ``provisiond/__init__.py`` and
  ``provisiond/agent/`` as sources;
- ``/init``: mount /proc /sys /dev, insmod the virtio modules, bring up the NIC whose MAC is
  ``provisiond.mac=`` on the kernel command line (else the first ethernet), ``udhcpc``, run
  ``python3 -m provisiond.agent`` (its URL, token and mode come from the command line too), then
  power off (QEMU with -no-reboot exits).

The cpio (newc) is written here, gzip-compressed, so no cpio tool is needed. ``python -m
tests.support.ramdisk`` builds it and prints the paths and sizes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PROVISIOND_RAMDISK_CACHE", "/var/tmp/provisiond-ramdisk"))
KERNEL_META = "linux-image-cloud-amd64"  # depends on the current linux-image-<abi>-cloud-amd64
APT_ARCHIVES = Path("/var/cache/apt/archives")
MODULES = ("virtio_pci", "virtio_net")  # + their dependencies
KEEP_BUILDS = 3
# optional extension modules the stdlib falls back without (ssl, hashlib's OpenSSL, lzma, bz2):
# left out, they and their libraries (libcrypto alone is 4.7 MB) would be half the initramfs
LEAVE_OUT = ("_ssl", "_hashlib", "_lzma", "_bz2")


class RamdiskUnavailable(Exception):
    """What is missing to build it (a package to install, a download that failed)."""


@dataclass(frozen=True)
class Ramdisk:
    kernel: Path
    initrd: Path
    kernel_release: str
    python: str


# ------------------------------------------------------------------------------------- kernel


def _kernel_deb(cache: Path) -> Path:
    debs = cache / "debs"
    pattern = re.compile(r"linux-image-\d[\w.+-]*-cloud-amd64_.*_amd64\.deb$")
    for where in (debs, APT_ARCHIVES):
        found = sorted(p for p in where.glob("linux-image-*.deb") if pattern.match(p.name))
        if found:
            return found[-1]
    if shutil.which("apt-get") is None:
        raise RamdiskUnavailable(f"no {KERNEL_META} package and no apt-get to download one")
    deps = subprocess.run(
        ["apt-cache", "depends", KERNEL_META], capture_output=True, text=True, timeout=60
    ).stdout
    names = re.findall(r"Depends:\s*(linux-image-\d\S*-cloud-amd64)", deps)
    if not names:
        raise RamdiskUnavailable(f"apt-cache knows no {KERNEL_META} (run apt-get update)")
    debs.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["apt-get", "download", names[0]], cwd=debs, capture_output=True, text=True, timeout=600
    )
    found = sorted(debs.glob(f"{names[0]}_*.deb"))
    if res.returncode != 0 or not found:
        raise RamdiskUnavailable(f"apt-get download {names[0]} failed: {res.stderr[-500:]}")
    return found[-1]


def _extract_kernel(cache: Path, deb: Path) -> Path:
    dest = cache / "kernels" / deb.stem
    if (dest / ".done").exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, timeout=300)
    (dest / ".done").touch()
    return dest


def _module_depends(ko: Path) -> list[str]:
    """The ``depends=`` field of a module's .modinfo (modules.dep exists only after depmod)."""
    data = ko.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9 : data.index(b"\0", at + 9)].decode()
    return [d for d in value.split(",") if d]


def _module_order(moddir: Path, wanted: Iterable[str]) -> list[str]:
    """Paths (relative to moddir) of ``wanted`` and their dependencies, dependencies first."""
    by_name = {ko.name.removesuffix(".ko").replace("-", "_"): ko for ko in moddir.rglob("*.ko")}
    order: list[str] = []

    def visit(name: str, depth: int = 0) -> None:
        ko = by_name.get(name.replace("-", "_"))
        if ko is None:
            raise RamdiskUnavailable(f"kernel has no module {name} (built in?)")
        rel = str(ko.relative_to(moddir))
        if rel in order or depth > 32:
            return
        for dep in _module_depends(ko):
            visit(dep, depth + 1)
        order.append(rel)

    for name in wanted:
        visit(name)
    return order


# ------------------------------------------------------------------------------------- python

PROBE = r"""
import json, os, py_compile, sys, sysconfig, tempfile
from pathlib import Path
stage, src, leave_out = Path(sys.argv[1]), sys.argv[2], tuple(sys.argv[3].split(","))
sys.path.insert(0, src)
import provisiond.agent, provisiond.agent.__main__, provisiond.agent.collect
c = sys.modules["provisiond.agent.collect"]
# exercise the paths that import lazily: an empty root, no commands, a refused POST
with tempfile.TemporaryDirectory() as empty:
    c.collect(Path(empty), lambda argv, *a, **k: None)
try:
    c.post("http://127.0.0.1:9", "t", {}, tries=1, timeout=0.5, deadline=1)
except Exception:
    pass
import encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.idna  # noqa
dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
dynload = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
dirs = tuple(str(Path(d).resolve()) + "/" for d in dirs | {str(dynload)})
ext = []
for name, mod in sorted(sys.modules.items()):
    f = getattr(mod, "__file__", None)
    if not f:
        continue
    f = str(Path(f).resolve())
    if not f.startswith(dirs) or "site-packages" in f or "dist-packages" in f:
        continue
    if name == "ssl" or any(m in name for m in ("._ssl", "_hashlib", "_lzma", "_bz2")):
        continue  # ssl.py without _ssl is dead weight; the rest are extensions, below
    if f.endswith(".py"):
        out = stage / f.lstrip("/")
        py_compile.compile(f, cfile=str(out) + "c", dfile=f, doraise=True)
    elif f.endswith(".so") and not Path(f).name.startswith(leave_out):
        ext.append(f)
print(json.dumps({"ext": ext, "prefix": sys.prefix, "executable": os.path.realpath(sys.executable),
                  "version": sys.version.split()[0],
                  "landmark": str(Path(sysconfig.get_paths()["stdlib"]) / "os.py")}))
"""


def _python() -> str:
    for cand in ("/usr/bin/python3", sys.executable):
        if cand and os.path.exists(cand):
            return os.path.realpath(cand)
    raise RamdiskUnavailable("no python3")


def _agent_sources() -> list[Path]:
    files = [ROOT / "provisiond" / "__init__.py"]
    files += sorted((ROOT / "provisiond" / "agent").glob("*.py"))
    if len(files) < 2:
        raise RamdiskUnavailable("provisiond/agent is missing")
    return files


def _ldd(paths: Iterable[str]) -> set[str]:
    libs: set[str] = set()
    for p in paths:
        out = subprocess.run(["ldd", p], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    return libs


# ------------------------------------------------------------------------------------- cpio


class Cpio:
    """A newc cpio archive written in memory."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1000
        self.seen: set[str] = set()

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self.ino += 1
        raw = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
        head = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
        self.buf.write(head + raw)
        self.buf.write(b"\0" * (-(len(head) + len(raw)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, path: str) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p and p not in self.seen:
                self.seen.add(p)
                self._entry(p, stat.S_IFDIR | 0o755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if path in self.seen:
            return
        self.dir(str(Path(path).parent))
        self.seen.add(path)
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if path in self.seen:
            return
        self.dir(str(Path(path).parent))
        self.seen.add(path)
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, path: str, major: int, minor: int) -> None:
        self.dir(str(Path(path.strip("/")).parent))
        self.seen.add(path.strip("/"))
        self._entry(path.strip("/"), stat.S_IFCHR | 0o600, rdev=(major, minor))

    def copy(self, host_path: str, at: str | None = None) -> None:
        st = os.stat(host_path)
        self.file(
            at or host_path, Path(host_path).read_bytes(), 0o755 if st.st_mode & 0o111 else 0o644
        )

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
say() { echo "provisiond-ramdisk: $*"; }
say "init (uptime $(cut -d' ' -f1 /proc/uptime))"
for m in $(cat /etc/provisiond/modules); do
  insmod "/lib/modules/$m" || say "insmod $m failed"
done
mac=""
for w in $(cat /proc/cmdline); do
  case "$w" in provisiond.mac=*) mac="${w#provisiond.mac=}";; esac
done
mac=$(echo "$mac" | tr 'A-F-' 'a-f:')
ifc=""
i=0
while [ -z "$ifc" ] && [ $i -lt 50 ]; do  # the driver may still be probing: 5 s at most
  for d in /sys/class/net/*; do
    n=${d##*/}; [ "$n" = lo ] && continue
    a=$(cat "$d/address")
    if [ -z "$mac" ] || [ "$a" = "$mac" ]; then ifc=$n; break; fi
  done
  [ -z "$ifc" ] && sleep 0.1
  i=$((i + 1))
done
ip link set lo up
if [ -z "$ifc" ]; then
  say "no interface with MAC ${mac:-any}"; ls /sys/class/net
else
  say "interface $ifc ($mac)"
  ip link set "$ifc" up
  udhcpc -i "$ifc" -n -q -t 10 -T 2 -s /etc/provisiond/udhcpc.script || say "udhcpc failed"
  addr=$(ip -4 -o addr show dev "$ifc" | awk '{print $4}')
  say "address $addr (uptime $(cut -d' ' -f1 /proc/uptime))"
  cd /opt/provisiond
  PYTHONHOME=@PREFIX@ PYTHONDONTWRITEBYTECODE=1 python3 -S -E -m provisiond.agent --deadline 60
  say "agent exited $? (uptime $(cut -d' ' -f1 /proc/uptime))"
fi
sync
poweroff -f
"""

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
esac
exit 0
"""


def _key(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _file_id(path: str) -> bytes:
    st = os.stat(path)
    return f"{path}:{st.st_size}:{int(st.st_mtime)}".encode()


def build(cache: Path = CACHE) -> Ramdisk:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RamdiskUnavailable("apt-get install busybox")
    for tool in ("dpkg-deb", "ldd"):
        if shutil.which(tool) is None:
            raise RamdiskUnavailable(f"{tool} is missing")
    busybox = os.path.realpath(busybox)
    python = _python()
    cache.mkdir(parents=True, exist_ok=True)
    deb = _kernel_deb(cache)
    sources = _agent_sources()
    key = _key([
        Path(__file__).read_bytes(), deb.name.encode(), _file_id(busybox), _file_id(python),
        *(s.read_bytes() for s in sources),
    ])  # fmt: skip
    out = cache / f"build-{key}"
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Ramdisk(out / "vmlinuz", out / "initrd.img", meta["release"], meta["python"])

    kdir = _extract_kernel(cache, deb)
    vmlinuz = sorted((kdir / "boot").glob("vmlinuz-*"))[-1]
    release = vmlinuz.name.removeprefix("vmlinuz-")
    moddir = kdir / "lib" / "modules" / release
    modules = _module_order(moddir, MODULES)

    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        res = subprocess.run(
            [python, "-S", "-E", "-c", PROBE, str(stage), str(ROOT), ",".join(LEAVE_OUT)],
            capture_output=True, text=True, timeout=120, cwd=tmp,
        )  # fmt: skip
        if res.returncode != 0:
            raise RamdiskUnavailable(f"probing the agent's imports failed: {res.stderr[-2000:]}")
        probe = json.loads(res.stdout.strip().splitlines()[-1])

        cpio = Cpio()
        for d in ("proc", "sys", "dev", "tmp", "run", "bin", "sbin", "usr/bin", "usr/sbin",
                  "etc", "lib64", "root"):  # fmt: skip
            cpio.dir(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/null", 1, 3)
        cpio.file("init", INIT.replace("@PREFIX@", probe["prefix"]).encode(), 0o755)
        cpio.file("etc/provisiond/udhcpc.script", UDHCPC_SCRIPT.encode(), 0o755)
        cpio.file("etc/provisiond/modules", "\n".join(modules).encode() + b"\n")
        cpio.file("etc/hostname", b"provisiond-agent\n")
        for m in modules:
            cpio.copy(str(moddir / m), f"lib/modules/{m}")
        cpio.copy(busybox, "bin/busybox")
        elfs = [python, busybox, *probe["ext"]]
        for lib in sorted(_ldd(elfs)):
            cpio.copy(os.path.realpath(lib), lib)
        cpio.copy(python, python)
        if python != "/usr/bin/python3":
            cpio.symlink("usr/bin/python3", python)
        for ext in probe["ext"]:
            cpio.copy(ext)
        for pyc in sorted(stage.rglob("*.pyc")):
            cpio.file("/" + str(pyc.relative_to(stage)), pyc.read_bytes())
        # getpath's landmark, so sys.prefix is found whatever the binary's path
        cpio.file(probe["landmark"], b"")
        for src in sources:
            cpio.file(f"opt/provisiond/{src.relative_to(ROOT)}", src.read_bytes())
        raw = cpio.finish()

        build_dir = Path(tmp) / "out"
        build_dir.mkdir()
        shutil.copyfile(vmlinuz, build_dir / "vmlinuz")
        (build_dir / "initrd.img").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        meta = {"release": release, "python": f"{python} {probe['version']}",
                "modules": modules, "cpio_bytes": len(raw), "deb": deb.name}  # fmt: skip
        (build_dir / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            build_dir.rename(out)
        except OSError:  # built at the same time by someone else: theirs is the same
            if not meta_path.exists():
                raise
    _prune(cache, keep=out)
    return Ramdisk(out / "vmlinuz", out / "initrd.img", release, meta["python"])


def _prune(cache: Path, keep: Path) -> None:
    builds = sorted(cache.glob("build-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [b for b in builds if b != keep][KEEP_BUILDS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    rd = build()
    for p in (rd.kernel, rd.initrd):
        print(f"{p}  {p.stat().st_size / 1e6:.1f} MB")
    print(rd.kernel_release, rd.python)
