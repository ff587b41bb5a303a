"""A real OpenSM subnet manager against a simulated InfiniBand fabric (ibsim): no IB hardware.

``ibsim_subnet(tmp_path, hosts=6)`` writes a topology, starts ``ibsim`` on it under a unique
``IBSIM_SOCKNAME`` and ``opensm`` in the foreground (never ``-B``: it forks) with
``LD_PRELOAD=libumad2sim.so``, waits (bounded) for ``SUBNET UP`` in the OpenSM log, and on exit
stops both by pid. ``Subnet.partitions_file`` is the partitions.conf OpenSM reads; rewrite it and
call ``resweep()`` (SIGHUP, then wait for the sweep to finish). ``pkeys``, ``path_exists`` and
``lids`` read the fabric back with the real diagnostics (smpquery, saquery, ibnetdiscover).
``available()`` says what is missing; callers pass it to ``tests.support.peers.missing``.

The fabric (``write_topology``): one SM host ``sm`` and hosts ``h1``..``hN``, each a one-port
HCA, on one switch (``switches=1``) or spread round-robin over several switches, each switch
linked once to ``sw1`` (``sm`` always hangs off ``sw1``). Host number ``i`` (``sm`` is 0) has
node GUID ``GUID_BASE + i * 0x100`` and port GUID node GUID + 1, so ``sm`` is
0x0002c90300010001, ``h1`` 0x0002c90300010101, ``h2`` 0x0002c90300010201 ...
(``host_guids()``). Switch ``swK`` has GUID ``SWITCH_GUID_BASE + K * 0x100``. LIDs are OpenSM's
choice (``sm`` gets 1); ``Subnet.lids()`` reads them with ``ibnetdiscover -p``.

Facts this relies on (ibsim 0.10, OpenSM 3.3.23, infiniband-diags 44; checked by experiment):
- ibsim gives an HCA port the GUID node GUID + port number; ``caguid=``/``switchguid=`` lines in
  the topology set the next node's GUID. By default it holds 2048 nodes and 13312 ports
  (``ibsim -N``/``-P`` raise that; the harness passes them when needed: 4000 HCAs work).
- ibsim has 10 client slots (OpenSM takes one, every running diagnostic one more). A client that
  exits normally frees its slot; one killed by a signal (a timeout) never does, so a Subnet owns
  its own ibsim, named by IBSIM_SOCKNAME (abstract unix sockets: no files, no network).
- A diagnostic attaches to the node named by SIM_HOST (default: the topology's first node, here
  a switch). Every call here runs as ``sm`` (or the requesting host for path records), from a
  scratch working directory (umad2sim creates ``./sys-<pid>`` there), under a timeout: a
  preloaded tool without its ibsim blocks forever.
- ``force_log_flush`` must be TRUE or the log is written in large blocks (``SUBNET UP`` shows up
  only seconds later). Each heavy sweep, the initial one and each SIGHUP, ends with the line
  ``... 0x02 -> SUBNET UP``; the P_Key tables are already written when it appears. Periodic
  light sweeps that find nothing log nothing. SIGHUPs arriving during one sweep are merged into
  one more sweep, so wait for "one new SUBNET UP after the SIGHUP", never count signals.
- partitions.conf is re-read on every heavy sweep. Any parse error (a missing ``;`` between two
  definitions, a GUID without ``0x`` or with colons, a line over 4095 bytes: OpenSM reads lines
  with ``fgets`` into 4096 bytes), an empty file and a missing file all make OpenSM fall back to
  its built-in default: every port FULL member of 0x7fff (table ``{0xffff}``), i.e. no
  isolation at all. Unknown membership words (``Full``, ``member``) silently mean limited;
  GUIDs absent from the fabric are silently ignored.
- ``opensm --pidfile`` writes its file only in daemon mode (``-B``), so the caller tracks the pid
  (``Subnet.opensm.pid``; the harness also writes it to ``Subnet.pid_file``).
- ``smpquery -G`` resolves the GUID through an SA PathRecord query, which the SA answers only when
  the querying port shares a partition with the target: LIDs (from ``ibnetdiscover -p``, plain
  SMPs) are used instead. HCA P_Key tables are read on port 1 (64 entries in ibsim).
- The SA returns a PathRecord only when the requester, the source and the destination pairwise
  share a P_Key (and two limited members share nothing). ``path_exists`` asks as the source host.
- ibsim does not enforce P_Keys on traffic: isolation is shown by P_Key tables and PathRecords.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

PACKAGES = "ibsim-utils opensm infiniband-diags libumad2sim0"
_TOOL_PACKAGES = {
    "ibsim": "ibsim-utils",
    "opensm": "opensm",
    "smpquery": "infiniband-diags",
    "saquery": "infiniband-diags",
    "ibnetdiscover": "infiniband-diags",
}
_UMAD2SIM_GLOBS = (
    "/usr/lib/*/umad2sim/libumad2sim.so*",
    "/usr/lib/umad2sim/libumad2sim.so*",
    "/usr/lib64/umad2sim/libumad2sim.so*",
    "/usr/local/lib/umad2sim/libumad2sim.so*",
)
# where Debian puts opensm and the diagnostics; a non-root PATH often lacks them
_EXTRA_PATH = "/usr/sbin:/sbin:/usr/local/sbin"

SM_HOST = "sm"
GUID_BASE = 0x0002C90300010000
SWITCH_GUID_BASE = 0x0002C90300F00000
MAX_SWITCH_PORTS = 254
# ibsim's compiled-in defaults (raised with -N / -P)
IBSIM_MAX_NODES = 2048
IBSIM_MAX_PORTS = 13312
DEFAULT_PARTITIONS = "Default=0x7fff,ipoib : ALL=limited, SELF=full ;\n"

START_TIMEOUT = 10.0
DIAG_TIMEOUT = 5.0
STOP_GRACE = 3.0


class IbsimError(RuntimeError):
    """ibsim, OpenSM or a diagnostic failed, timed out or printed something unexpected."""


# --- what is installed --------------------------------------------------------------------------


def tool(name: str) -> str | None:
    """Absolute path of an InfiniBand tool, also looking in the sbin directories."""
    path = os.environ.get("PATH", "") + os.pathsep + _EXTRA_PATH
    return shutil.which(name, path=path)


def umad2sim_library() -> str | None:
    for pattern in _UMAD2SIM_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def available() -> str | None:
    """None when ibsim, opensm, the diagnostics and libumad2sim.so are all installed, else what
    to install."""
    missing = [name for name in _TOOL_PACKAGES if tool(name) is None]
    packages = {_TOOL_PACKAGES[name] for name in missing}
    if umad2sim_library() is None:
        missing.append("libumad2sim.so")
        packages.add("libumad2sim0")
    if not missing:
        return None
    return (
        f"InfiniBand simulator not available (missing: {', '.join(missing)}): install the Debian "
        f"packages {PACKAGES} (lacking here: {' '.join(sorted(packages))})"
    )


def _require(name: str) -> str:
    path = tool(name)
    if path is None:
        raise IbsimError(f"{name} not found: install the Debian packages {PACKAGES}")
    return path


# --- GUIDs and topology -------------------------------------------------------------------------


def format_guid(guid: int) -> str:
    return f"0x{guid:016x}"


def parse_guid(guid: str | int) -> int:
    if isinstance(guid, int):
        return guid
    return int(guid.replace(":", ""), 16)


def host_names(hosts: int = 6) -> list[str]:
    """``sm`` first, then ``h1``..``hN``."""
    return [SM_HOST, *(f"h{i}" for i in range(1, hosts + 1))]


def node_guid(index: int) -> int:
    """Node GUID of host number ``index`` (``sm`` is 0, ``hI`` is I)."""
    return GUID_BASE + index * 0x100


def port_guid(index: int) -> int:
    """Port GUID of port 1 of host number ``index``: what partitions.conf names."""
    return node_guid(index) + 1


def host_guids(hosts: int = 6) -> dict[str, str]:
    """``{host: port GUID}`` (``0x%016x``) of the fabric ``write_topology(hosts=...)`` writes,
    e.g. ``{"sm": "0x0002c90300010001", "h1": "0x0002c90300010101", ...}``."""
    return {name: format_guid(port_guid(i)) for i, name in enumerate(host_names(hosts))}


def switch_guid(number: int) -> int:
    return SWITCH_GUID_BASE + number * 0x100


def topology(hosts: int = 6, switches: int = 1) -> str:
    """ibsim topology text (ibnetdiscover format plus ``caguid=``/``switchguid=`` lines)."""
    if hosts < 1 or switches < 1:
        raise ValueError("need at least one host and one switch")
    names = host_names(hosts)
    # (switch number, [(remote name, remote port)]) in port order: hosts first, then links
    links: dict[int, list[tuple[str, int]]] = {k: [] for k in range(1, switches + 1)}
    attached: dict[str, tuple[int, int]] = {}
    for i, name in enumerate(names):
        k = 1 if i == 0 else (i - 1) % switches + 1
        links[k].append((name, 1))
        attached[name] = (k, len(links[k]))
    for k in range(2, switches + 1):
        links[1].append((f"sw{k}", len(links[k]) + 1))
        links[k].append(("sw1", len(links[1])))
    lines: list[str] = []
    for k, remote in links.items():
        if len(remote) > MAX_SWITCH_PORTS:
            raise ValueError(
                f"sw{k} would need {len(remote)} ports (max {MAX_SWITCH_PORTS}): more switches"
            )
        lines.append(f"switchguid={format_guid(switch_guid(k))}")
        lines.append(f'Switch {len(remote)} "sw{k}"')
        lines.extend(f'[{p}] "{name}"[{rport}]' for p, (name, rport) in enumerate(remote, 1))
        lines.append("")
    for i, name in enumerate(names):
        k, p = attached[name]
        lines.append(f"caguid={format_guid(node_guid(i))}")
        lines.append(f'Hca 1 "{name}"')
        lines.append(f'[1] "sw{k}"[{p}]')
        lines.append("")
    return "\n".join(lines)


def write_topology(path: Path, hosts: int = 6, switches: int = 1) -> dict[str, str]:
    """Write ``topology(hosts, switches)`` to ``path``; returns ``host_guids(hosts)``."""
    path.write_text(topology(hosts, switches))
    return host_guids(hosts)


# --- OpenSM configuration -----------------------------------------------------------------------

# every option of ``opensm -c`` output that names a file or directory
_PATH_OPTIONS = {
    "partition_config_file": "partitions.conf",
    "log_file": "opensm.log",
    "dump_files_dir": "dump/",
    "per_module_logging_file": "per-module-logging.conf",
    "qos_policy_file": "qos-policy.conf",
    "torus_config": "torus-2QoS.conf",
    "prefix_routes_file": "prefix-routes.conf",
}


def opensm_config(
    template: str, workdir: Path, partitions_file: Path, overrides: Mapping[str, str]
) -> str:
    """``opensm -c`` output with every path pointed into ``workdir`` and ``overrides`` applied.
    Any other option holding an absolute path is redirected into ``workdir`` too."""
    settings = dict(overrides)
    out: list[str] = []
    for line in template.splitlines():
        key, _, value = line.partition(" ")
        if not line or line.startswith("#"):
            out.append(line)
            continue
        if key == "partition_config_file":
            value = str(partitions_file)
        elif key in _PATH_OPTIONS:
            value = str(workdir / _PATH_OPTIONS[key])
            if _PATH_OPTIONS[key].endswith("/"):
                value += "/"
        elif value.startswith("/"):
            value = str(workdir / Path(value).name)
        if key in settings:
            value = settings.pop(key)
        out.append(f"{key} {value}")
    out.extend(f"{key} {value}" for key, value in settings.items())
    return "\n".join(out) + "\n"


# --- output parsers -----------------------------------------------------------------------------

_PKEY_ROW = re.compile(r"^\s*\d+:\s+((?:0x[0-9a-fA-F]{4}\s*)+)$")
_PORT_ROW = re.compile(r"^CA\s+(\d+)\s+(\d+)\s+(0x[0-9a-fA-F]+)\b")
# the INFO line ending every heavy sweep; VERBOSE adds a "*** SUBNET UP (sweep disabled) ***" box
_SWEEP_DONE = re.compile(r"-> SUBNET UP$", re.MULTILINE)
_PR_PKEY = re.compile(r"^\s*pkey\.+\s*(0x[0-9a-fA-F]+)\s*$", re.MULTILINE)


def parse_pkey_table(text: str) -> set[int]:
    """The non-zero entries of ``smpquery pkeys`` output, membership bit included."""
    keys: set[int] = set()
    for line in text.splitlines():
        m = _PKEY_ROW.match(line)
        if m:
            keys.update(int(word, 16) for word in m.group(1).split())
    keys.discard(0)
    return keys


def parse_port_lids(text: str) -> dict[int, int]:
    """``{port GUID: LID}`` of the CA ports in ``ibnetdiscover -p`` output (LIDs are decimal)."""
    lids: dict[int, int] = {}
    for line in text.splitlines():
        m = _PORT_ROW.match(line)
        if m:
            lids[int(m.group(3), 16)] = int(m.group(1))
    return lids


def parse_path_pkeys(text: str) -> set[int]:
    """The P_Keys of the PathRecords in ``saquery -p`` output (empty: no path)."""
    return {int(v, 16) for v in _PR_PKEY.findall(text)}


# --- the subnet ---------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = STOP_GRACE) -> None:
    if proc is None or proc.poll() is not None:
        if proc is not None:
            proc.wait()
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        proc.wait(timeout=grace)


class Subnet:
    """One ibsim fabric with one OpenSM on host ``sm``. Use as a context manager (or ``start()``
    / ``stop()``). Attributes: ``workdir``, ``guids`` ({host: port GUID}), ``names`` ({port GUID
    int: host}), ``partitions_file``, ``log_file``, ``config_file``, ``pid_file``,
    ``topology_file``, ``sockname``, ``ibsim`` and ``opensm`` (Popen, once started).

    ``partitions``: text written to ``partitions_file`` before OpenSM starts (None: leave the
    file alone, possibly absent). ``sweep_interval`` 0 (the default) disables periodic sweeps,
    so the only sweeps are the initial one and those ``resweep()`` asks for. ``log_flags`` is
    OpenSM's log mask (0x03 = ERROR|INFO, its default; 0x07 adds VERBOSE, where most
    partitions.conf warnings are). ``options`` are further opensm.conf settings."""

    def __init__(
        self,
        workdir: Path,
        hosts: int = 6,
        switches: int = 1,
        partitions: str | None = DEFAULT_PARTITIONS,
        sweep_interval: int = 0,
        log_flags: int = 0x03,
        options: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.workdir = workdir
        self.hosts = hosts
        self.switches = switches
        self.partitions = partitions
        self.start_timeout = start_timeout
        self.topology_file = workdir / "net.topo"
        self.partitions_file = workdir / "partitions.conf"
        self.config_file = workdir / "opensm.conf"
        self.log_file = workdir / "opensm.log"
        self.pid_file = workdir / "opensm.pid"
        self.clients_dir = workdir / "clients"
        self.sockname = f"provisiond-ibsim-{os.getpid()}-{secrets.token_hex(4)}"
        self.guids = host_guids(hosts)
        self.names = {parse_guid(g): name for name, g in self.guids.items()}
        self.ibsim: subprocess.Popen[bytes] | None = None
        self.opensm: subprocess.Popen[bytes] | None = None
        self._settings = {
            "sweep_interval": str(sweep_interval),
            "force_log_flush": "TRUE",
            "log_flags": f"0x{log_flags:02x}",
            "daemon": "FALSE",
            **(options or {}),
        }
        self._lids: dict[int, int] = {}
        self._library = ""

    # lifecycle

    def __enter__(self) -> Subnet:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        library = umad2sim_library()
        if library is None:
            raise IbsimError(f"libumad2sim.so not found: install the Debian packages {PACKAGES}")
        self._library = library
        for sub in ("cache", "tmp", "dump", "clients"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        write_topology(self.topology_file, self.hosts, self.switches)
        if self.partitions is not None:
            self.partitions_file.write_text(self.partitions)
        self._write_config()
        try:
            self._start_ibsim()
            self._start_opensm()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop OpenSM, then ibsim, by pid; wait for both."""
        _stop(self.opensm)
        _stop(self.ibsim)

    def _write_config(self) -> None:
        template = self.workdir / "opensm.conf.template"
        proc = subprocess.run(
            [_require("opensm"), "-c", str(template)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DIAG_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0 or not template.exists():
            raise IbsimError(f"opensm -c failed: {proc.stdout!r} {proc.stderr!r}")
        text = opensm_config(
            template.read_text(), self.workdir, self.partitions_file, self._settings
        )
        self.config_file.write_text(text)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # remote mode would send the simulator's traffic over TCP/UDP: never
        env.pop("IBSIM_SERVER_NAME", None)
        env.pop("IBSIM_SERVER_PORT", None)
        env["IBSIM_SOCKNAME"] = self.sockname
        return env

    def client_env(self, sim_host: str = SM_HOST) -> dict[str, str]:
        """Environment for a libibumad program talking to this fabric as node ``sim_host``."""
        env = self._base_env()
        env["LD_PRELOAD"] = self._library
        env["SIM_HOST"] = sim_host
        return env

    def _ibsim_limits(self) -> list[str]:
        """``-N``/``-P`` when the fabric exceeds ibsim's default 2048 nodes / 13312 ports."""
        nodes = self.hosts + 1 + self.switches
        # every switch: its ports plus port 0; every HCA: generously two
        ports = 2 * (self.hosts + 1) + (MAX_SWITCH_PORTS + 1) * self.switches
        args: list[str] = []
        if nodes > IBSIM_MAX_NODES:
            args += ["-N", str(nodes)]
        if ports > IBSIM_MAX_PORTS:
            args += ["-P", str(ports)]
        return args

    def _start_ibsim(self) -> None:
        out = self.workdir / "ibsim.out"
        with out.open("wb") as sink:
            self.ibsim = subprocess.Popen(
                [_require("ibsim"), "-s", "-n", *self._ibsim_limits(), str(self.topology_file)],
                cwd=self.workdir,
                env=self._base_env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self._wait_for(
            lambda: "Network simulator ready." in out.read_text(errors="replace"),
            self.ibsim,
            "ibsim ready",
            out,
        )

    def _start_opensm(self) -> None:
        env = self.client_env(SM_HOST)
        env["OSM_CACHE_DIR"] = str(self.workdir / "cache")
        env["OSM_TMP_DIR"] = str(self.workdir / "tmp")
        out = self.workdir / "opensm.out"
        with out.open("wb") as sink:
            command = [_require("opensm"), "-F", str(self.config_file)]
            command += ["-P", str(self.partitions_file), "-f", str(self.log_file)]
            self.opensm = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.pid_file.write_text(f"{self.opensm.pid}\n")
        self._wait_for(lambda: self.sweeps() > 0, self.opensm, "SUBNET UP", out)

    def _wait_for(
        self, ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, out: Path
    ) -> None:
        deadline = time.monotonic() + self.start_timeout
        for _ in range(int(self.start_timeout / 0.005) + 1):
            if ready():
                return
            if proc.poll() is not None:
                raise IbsimError(
                    f"{what}: process exited with {proc.returncode}: "
                    f"{out.read_text(errors='replace')[-2000:]}"
                )
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        raise IbsimError(f"{what} not seen within {self.start_timeout} s")

    # reading the fabric

    def diag(self, args: list[str], sim_host: str = SM_HOST, timeout: float = DIAG_TIMEOUT) -> str:
        """Run a diagnostic (``args[0]`` is looked up in PATH and the sbin directories) against
        this fabric as node ``sim_host``; its stdout. A timeout leaks one of ibsim's 10 slots."""
        cmd = [_require(args[0]), *args[1:]]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.clients_dir,
                env=self.client_env(sim_host),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise IbsimError(f"{' '.join(args)} timed out after {timeout} s") from None
        stdout = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            hint = ""
            if "connect failed" in stderr:
                hint = " (ibsim refused the client: all 10 slots taken, or ibsim is gone)"
            raise IbsimError(f"{' '.join(args)} exited {proc.returncode}{hint}: {stderr}{stdout}")
        return stdout

    def lids(self, refresh: bool = False) -> dict[str, int]:
        """``{host: LID}`` from ``ibnetdiscover -p`` (plain SMPs: independent of partitions).
        OpenSM keeps LIDs across sweeps (its guid2lid cache), so the answer is cached."""
        if refresh or not self._lids:
            self._lids = parse_port_lids(self.diag(["ibnetdiscover", "-p"]))
        return {self.names[g]: lid for g, lid in self._lids.items() if g in self.names}

    def lid(self, guid: str | int) -> int:
        number = parse_guid(guid)
        if number not in self._lids:
            self.lids(refresh=True)
        try:
            return self._lids[number]
        except KeyError:
            raise IbsimError(f"no LID for port {format_guid(number)}") from None

    def host(self, guid: str | int) -> str:
        number = parse_guid(guid)
        try:
            return self.names[number]
        except KeyError:
            raise IbsimError(f"{format_guid(number)} is no host of this fabric") from None

    def pkeys(self, guid: str | int) -> set[int]:
        """Non-zero P_Keys in port 1's P_Key table, membership bit included (0x8101 full,
        0x0101 limited); read by LID with ``smpquery pkeys LID 1`` as ``sm``."""
        return parse_pkey_table(self.diag(["smpquery", "pkeys", str(self.lid(guid)), "1"]))

    def wait_pkeys(
        self,
        guid: str | int,
        predicate: Callable[[set[int]], bool],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> set[int]:
        """Poll ``pkeys(guid)`` until ``predicate`` holds; the table. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        keys: set[int] = set()
        for _ in range(int(timeout / interval) + 2):
            keys = self.pkeys(guid)
            if predicate(keys):
                return keys
            if time.monotonic() > deadline:
                break
            time.sleep(interval)
        shown = sorted(f"0x{k:04x}" for k in keys)
        raise TimeoutError(f"P_Keys of {format_guid(parse_guid(guid))} still {shown}")

    def path_pkeys(self, src: str | int, dst: str | int, requester: str | None = None) -> set[int]:
        """P_Keys of the SA's PathRecords from ``src`` to ``dst``
        (``saquery -p --slid A --dlid B``), asked as ``requester`` (default: the source host).
        Empty: the SA knows no path, i.e. the ports share no partition."""
        asker = requester if requester is not None else self.host(src)
        args = ["saquery", "-p", "--slid", str(self.lid(src)), "--dlid", str(self.lid(dst))]
        return parse_path_pkeys(self.diag(args, sim_host=asker))

    def path_exists(self, src: str | int, dst: str | int, requester: str | None = None) -> bool:
        return bool(self.path_pkeys(src, dst, requester))

    # driving OpenSM

    def sweeps(self) -> int:
        """How many heavy sweeps finished so far (``... 0x02 -> SUBNET UP`` lines in the log)."""
        return len(_SWEEP_DONE.findall(self.log_text()))

    def resweep(self, wait: bool = True, timeout: float = 5.0) -> float:
        """SIGHUP OpenSM (it re-reads partitions.conf in the heavy sweep that follows) and, with
        ``wait``, wait for that sweep's ``SUBNET UP``; the seconds it took."""
        if self.opensm is None or self.opensm.poll() is not None:
            raise IbsimError("OpenSM is not running")
        before = self.sweeps()
        started = time.monotonic()
        os.kill(self.opensm.pid, signal.SIGHUP)
        if wait:
            self.wait_sweeps(before + 1, timeout)
        return time.monotonic() - started

    def wait_sweeps(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``sweeps()`` reaches ``count``."""
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.002) + 2):
            if self.sweeps() >= count:
                return
            if self.opensm is not None and self.opensm.poll() is not None:
                raise IbsimError(f"OpenSM exited with {self.opensm.returncode}")
            if time.monotonic() > deadline:
                break
            time.sleep(0.002)
        raise IbsimError(f"OpenSM did not finish sweep {count} within {timeout} s")

    def write_partitions(self, text: str) -> None:
        """Replace partitions.conf atomically (OpenSM may read it at any sweep)."""
        tmp = self.partitions_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.partitions_file)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextmanager
def ibsim_subnet(
    tmp_path: Path,
    hosts: int = 6,
    switches: int = 1,
    partitions: str | None = DEFAULT_PARTITIONS,
    sweep_interval: int = 0,
    log_flags: int = 0x03,
    options: Mapping[str, str] | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Iterator[Subnet]:
    """A started ``Subnet`` in ``tmp_path / "ibsim"``; stopped (by pid) on exit."""
    workdir = tmp_path / "ibsim"
    workdir.mkdir(parents=True, exist_ok=True)
    subnet = Subnet(
        workdir,
        hosts=hosts,
        switches=switches,
        partitions=partitions,
        sweep_interval=sweep_interval,
        log_flags=log_flags,
        options=options,
        start_timeout=start_timeout,
    )
    with subnet:
        yield subnet
