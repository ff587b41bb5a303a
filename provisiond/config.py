"""Settings: defaults, then a TOML file, then PROVISIOND_* environment variables, then flags.

Owns the search path and the validation of every key. It must never touch the database or the
network: it only reads files and the environment, and fails with the key and the reason.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from provisiond.errors import ConfigError

DEFAULT_PORT = 8750
ENV_PREFIX = "PROVISIOND_"
# Environment variables with this prefix that are not settings of the daemon.
_ENV_NOT_SETTINGS = {"PROVISIOND_CONFIG", "PROVISIOND_URL", "PROVISIOND_TOKEN"}
_ENV_NOT_SETTINGS_PREFIXES = ("PROVISIOND_TEST_", "PROVISIOND_BENCH_")
# The contract's short names for the boot network (PROVISIOND_PXE__MODE works too).
_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "PROVISIOND_PXE_MODE": ("pxe", "mode"),
    "PROVISIOND_PXE_INTERFACE": ("pxe", "interface"),
    "PROVISIOND_PXE_SERVER_ADDRESS": ("pxe", "server_address"),
    "PROVISIOND_TFTP_LISTEN": ("pxe", "tftp_listen"),
}

SEARCH_PATH = (Path("provisiond.toml"), Path("/etc/provisiond/provisiond.toml"))

# States with a deadline (seconds). A node in a transitional state longer than this fails into its
# *-failed twin; see docs/operator-guide.md#deadlines.
DEFAULT_DEADLINES: dict[str, float] = {
    "verifying": 300,
    "inspecting": 600,
    "inspect-wait": 1800,
    "cleaning": 1800,
    "clean-wait": 3600,
    "deploying": 1800,
    "deploy-wait": 3600,
    "releasing": 600,
    "power": 300,
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=1024)
    page_size_default: int = Field(100, ge=1, le=10000)
    page_size_max: int = Field(1000, ge=1, le=10000)
    # a token seen within this many seconds is not looked up again; revocation takes effect
    # within it. 0 disables the cache.
    token_cache_seconds: float = Field(5.0, ge=0, le=300)

    @model_validator(mode="after")
    def _pages(self) -> ApiSettings:
        if self.page_size_default > self.page_size_max:
            raise ValueError(
                f"page_size_default ({self.page_size_default}) is above page_size_max "
                f"({self.page_size_max})"
            )
        return self


class EngineSettings(_Section):
    lease_seconds: float = Field(30.0, gt=0.5)
    concurrency: int = Field(64, ge=1, le=10000)
    poll_seconds: float = Field(2.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=100)
    retry_backoff_seconds: float = Field(2.0, ge=0)
    retry_backoff_max_seconds: float = Field(60.0, ge=0)
    bmc_call_timeout: float = Field(60.0, gt=0)
    # a call to a hung BMC holds its slot until its deadline: keep this well above the number of
    # BMCs that may hang at once
    bmc_concurrency: int = Field(128, ge=1, le=10000)
    deadlines: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_DEADLINES))

    @field_validator("deadlines")
    @classmethod
    def _known_states(cls, v: dict[str, float]) -> dict[str, float]:
        # inspect_wait == inspect-wait, so environment variables can name every state
        v = {k.replace("_", "-"): s for k, s in v.items()}
        unknown = sorted(set(v) - set(DEFAULT_DEADLINES))
        if unknown:
            raise ValueError(
                f"unknown state(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_DEADLINES)}"
            )
        bad = {k: s for k, s in v.items() if s <= 0}
        if bad:
            raise ValueError(f"deadlines must be > 0 seconds, got {bad}")
        return {**DEFAULT_DEADLINES, **v}


class PowerSyncSettings(_Section):
    """[power_sync]: the power reconciliation loop (provisiond.powersync; docs/operator-guide.md
    #power-sync). It only reads power states; it never issues a power action."""

    enabled: bool = True
    # seconds between two passes (a pass that overruns is followed by the next at once)
    interval: float = Field(120.0, gt=0)
    # BMC calls this loop has in flight at once (the engine's calls are not counted here)
    concurrency: int = Field(8, ge=1, le=1000)
    # consecutive failed reads that put a node into maintenance with fault "power failure"
    failures_before_maintenance: int = Field(3, ge=1, le=1000)
    # nodes in maintenance with fault "power failure" are probed at most this often
    recovery_interval: float = Field(600.0, gt=0)
    # hard limit of one power read
    call_timeout: float = Field(20.0, gt=0)


class IpmiSettings(_Section):
    """[drivers.ipmi]: pyghmi in supervised worker processes (docs/operator-guide.md#ipmi)."""

    # worker processes; BMCs are sharded across them by address, so a library hang costs one shard
    workers: int = Field(4, ge=1, le=64)
    # concurrent calls inside one worker (threads); sessions are kept and reused
    threads_per_worker: int = Field(64, ge=1, le=1024)
    # a worker whose pyghmi I/O loop has not turned for this long (or that does not answer a
    # health probe) is wedged: it is killed and replaced, its calls fail as transient
    stall_grace: float = Field(5.0, gt=0)
    # a call still inside pyghmi this long after its caller's deadline is stuck for good: its
    # worker is replaced too (pyghmi gives up on a dead BMC well within this)
    stuck_after: float = Field(90.0, gt=0)
    # pause between two commands to one BMC (many BMCs fall over under bursts)
    min_interval: float = Field(1.0, ge=0, le=60)
    # pyghmi's own timeout for one command (it retries UDP inside it)
    command_timeout: float = Field(8.0, gt=0, le=120)
    # poll interval while waiting for a power change to show
    power_poll: float = Field(1.0, gt=0, le=30)


class RedfishSettings(_Section):
    """[drivers.redfish]: aiohttp client (docs/operator-guide.md#redfish)."""

    verify_tls: bool = True
    ca_file: str = ""
    request_timeout: float = Field(15.0, gt=0, le=300)
    min_interval: float = Field(0.0, ge=0, le=60)
    power_poll: float = Field(1.0, gt=0, le=30)
    connections: int = Field(64, ge=1, le=10000)


class NetmikoSettings(_Section):
    """[drivers.netmiko]: the SSH transport of the CLI switch dialects (docs/switches.md)."""

    connect_timeout: float = Field(15.0, gt=0, le=300)
    # one command's answer (a save can take a while on a big configuration)
    read_timeout: float = Field(60.0, gt=0, le=3600)
    # a whole session: login, batch, save
    session_timeout: float = Field(300.0, gt=0, le=7200)
    connect_tries: int = Field(3, ge=1, le=20)
    save_tries: int = Field(5, ge=1, le=100)
    save_retry_delay: float = Field(2.0, ge=0, le=300)
    # configuration lines per write (1: strictly one command at a time)
    pipeline: int = Field(16, ge=1, le=1000)
    # sessions in flight at once over all switches (each holds a thread)
    sessions: int = Field(32, ge=1, le=1024)


class NapalmSettings(_Section):
    """[drivers.napalm]: napalm's transactional drivers (napalm_eos, ...; docs/switches.md)."""

    timeout: float = Field(60.0, gt=0, le=3600)
    session_timeout: float = Field(300.0, gt=0, le=7200)
    # EOS eAPI transport: https on real switches, http where eAPI is plain
    eos_transport: Literal["https", "http"] = "https"
    verify_tls: bool = True
    sessions: int = Field(16, ge=1, le=1024)


class DriverSettings(_Section):
    # Extra drivers by name -> "module:Class"; entry points provide the installed ones.
    bmc: dict[str, str] = Field(default_factory=dict)
    ipmi: IpmiSettings = Field(default_factory=IpmiSettings)
    redfish: RedfishSettings = Field(default_factory=RedfishSettings)
    netmiko: NetmikoSettings = Field(default_factory=NetmikoSettings)
    napalm: NapalmSettings = Field(default_factory=NapalmSettings)

    def options(self) -> dict[str, dict[str, Any]]:
        """Per-driver option sections, by driver name, for the registry."""
        return {"ipmi": self.ipmi.model_dump(), "redfish": self.redfish.model_dump()}

    def switch_options(self) -> dict[str, dict[str, Any]]:
        """Per-transport option sections of the switch drivers."""
        return {"netmiko": self.netmiko.model_dump(), "napalm": self.napalm.model_dump()}

    @field_validator("bmc")
    @classmethod
    def _import_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for name, target in v.items():
            if ":" not in target:
                raise ValueError(f"driver {name!r}: expected 'module:Class', got {target!r}")
        return v


class SwitchSettings(_Section):
    """[switches]: the switch reconciler (provisiond/fabric.py; docs/switches.md)."""

    enabled: bool = True
    # seconds between two looks at the switches (a desired-state change wakes it at once)
    interval: float = Field(2.0, gt=0, le=3600)
    # seconds between two drift checks of one switch (reads every applied port)
    drift_interval: float = Field(300.0, gt=0)
    # switches worked on at once
    concurrency: int = Field(32, ge=1, le=10000)
    # a daemon holds a switch this long at most (another daemon takes over after a crash)
    lease_seconds: float = Field(900.0, gt=1)
    # an unreachable switch is retried after backoff_seconds, doubling up to the max
    backoff_seconds: float = Field(5.0, ge=0)
    backoff_max_seconds: float = Field(300.0, ge=0)


class FabricSettings(_Section):
    """[fabrics]: the InfiniBand partition reconciler (provisiond/partitions.py;
    docs/infiniband.md)."""

    enabled: bool = True
    # seconds between two looks at the fabrics (a partition change wakes it at once)
    interval: float = Field(2.0, gt=0, le=3600)
    # seconds between two read-backs of an applied fabric (hand edits, OpenSM fall-backs)
    drift_interval: float = Field(60.0, gt=0)
    lease_seconds: float = Field(300.0, gt=1)
    # a subnet manager that fails is retried after backoff_seconds, doubling up to the max
    backoff_seconds: float = Field(5.0, ge=0)
    backoff_max_seconds: float = Field(300.0, ge=0)
    # what a fabric added through the API may make this daemon do (an API token is not a shell
    # on this host): the directories an OpenSM partitions_file may be in, and the exact
    # reload_command argument lists it may run
    opensm_dirs: list[str] = Field(default_factory=lambda: ["/etc/opensm"])
    reload_commands: list[list[str]] = Field(
        default_factory=lambda: [["systemctl", "reload", "opensm"]]
    )
    # seconds between two isolation audits (provisiond/audit.py); 0: only on request
    audit_interval: float = Field(3600.0, ge=0)


class WebhookSettings(_Section):
    """[webhooks]: the sender of event deliveries (provisiond/webhooks.py)."""

    enabled: bool = True
    # seconds between two looks for new events and due deliveries
    interval: float = Field(1.0, gt=0, le=3600)
    # the first retry waits this long, each next one twice as long (at most an hour)
    backoff_seconds: float = Field(2.0, gt=0)


class PxeSettings(_Section):
    """[pxe]: network boot (docs/pxe.md). DHCP, TFTP and the iPXE/agent HTTP endpoints."""

    # off: another DHCP server (dnsmasq, ISC, Kea) sends PXE clients to us (docs/pxe.md#off);
    # proxy: proxyDHCP beside the site's server, answers netboot clients only, no addresses;
    # authoritative: addresses from NIC reservations (rack file "ip") + optional discovery pool
    mode: Literal["off", "proxy", "authoritative"] = "off"
    interface: str = ""  # the boot network's interface (DHCP binds to it)
    server_address: str = ""  # our address on the boot network: siaddr, option 54, TFTP
    # TFTP serves tftp_root (default data_dir/tftp) and never follows a symlink out of it. The
    # loaders are copied in at start from loaders_dir (Debian's ipxe package: its ipxe.efi there
    # is a symlink to /boot/ipxe.efi, which a confined server must not follow)
    tftp_root: str = ""
    loaders_dir: str = "/usr/lib/ipxe"
    loaders: list[str] = Field(
        default_factory=lambda: ["undionly.kpxe", "ipxe.efi", "snponly.efi", "ipxe-arm64.efi"]
    )
    tftp_listen: str = "0.0.0.0:69"
    # run TFTP in mode "off" too (when the site's DHCP points next-server at us); None: only
    # when this daemon answers DHCP
    tftp: bool | None = None
    # how nodes reach this daemon's HTTP listener; default http://<server_address>:<port>
    http_base_url: str = ""
    # boot assets (inspection ramdisk, images) served under /boot/assets/; default data_dir/assets
    assets_dir: str = ""
    inspect_kernel: str = "inspect/vmlinuz"
    inspect_initrd: str = "inspect/initrd.img"
    inspect_cmdline: str = "console=tty0 console=ttyS0,115200n8"
    # unknown MAC asking for a script: "discover" records it (GET /v1/discovered) and boots the
    # inspection ramdisk so it reports its facts; "exit" hands the node back to its firmware
    unknown: Literal["discover", "exit"] = "discover"
    chainload_ipxe_roms: bool = True
    subnet_mask: str = "255.255.255.0"
    router: str = ""
    dns: list[str] = Field(default_factory=list)
    lease_time: int = Field(3600, ge=60)
    # authoritative mode: addresses for unknown netboot clients (discovery), "A-B" ranges allowed
    discovery_pool: list[str] = Field(default_factory=list)
    # one-time agent tokens expire after this many seconds
    token_ttl: float = Field(7200.0, gt=0)

    @field_validator("tftp_listen")
    @classmethod
    def _tftp_listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("server_address", "router")
    @classmethod
    def _ipv4(cls, v: str) -> str:
        if v:
            import ipaddress

            try:
                ipaddress.IPv4Address(v)
            except ValueError:
                raise ValueError(f"expected an IPv4 address, got {v!r}") from None
        return v

    @field_validator("dns", "discovery_pool", "loaders", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        # the environment gives "a,b" (or "" for none)
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @field_validator("discovery_pool")
    @classmethod
    def _pool(cls, v: list[str]) -> list[str]:
        return expand_pool(v)

    @model_validator(mode="after")
    def _needs(self) -> PxeSettings:
        if self.mode != "off":
            missing = [k for k in ("interface", "server_address") if not getattr(self, k)]
            if missing:
                raise ValueError(f"mode {self.mode!r} needs {' and '.join(missing)}")
        return self

    @property
    def tftp_enabled(self) -> bool:
        return self.mode != "off" if self.tftp is None else self.tftp


def expand_pool(items: list[str]) -> list[str]:
    """["198.51.100.200-198.51.100.210", "198.51.100.250"] -> every address, in order."""
    import ipaddress

    out: list[str] = []
    for item in items:
        lo, sep, hi = item.partition("-")
        try:
            a = ipaddress.IPv4Address(lo.strip())
            b = ipaddress.IPv4Address(hi.strip()) if sep else a
        except ValueError:
            raise ValueError(f"discovery_pool: {item!r} is not an address or A-B range") from None
        if int(b) < int(a) or int(b) - int(a) > 65535:
            raise ValueError(f"discovery_pool: range {item!r} is empty or too large")
        out += [str(ipaddress.IPv4Address(i)) for i in range(int(a), int(b) + 1)]
    return out


class ClientSettings(_Section):
    """For the client commands (node, rack, op): where the API is and the token to use."""

    url: str = ""
    token_file: str = ""


class Settings(_Section):
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    database_url: str = ""
    secret_key: str = ""
    secret_key_file: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api: ApiSettings = Field(default_factory=ApiSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    drivers: DriverSettings = Field(default_factory=DriverSettings)
    power_sync: PowerSyncSettings = Field(default_factory=PowerSyncSettings)
    switches: SwitchSettings = Field(default_factory=SwitchSettings)
    fabrics: FabricSettings = Field(default_factory=FabricSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    pxe: PxeSettings = Field(default_factory=PxeSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if v:
            normalise_db_url(v)  # fail at load time, naming the key, not when first connecting
        return v

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL with an async driver, derived from data_dir when not set."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'provisiond.db'}"
        return normalise_db_url(self.database_url)

    @property
    def boot_base_url(self) -> str:
        """Where nodes reach our HTTP endpoints (iPXE scripts, assets, agent call-backs)."""
        if self.pxe.http_base_url:
            return self.pxe.http_base_url.rstrip("/")
        host = self.pxe.server_address or self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def assets_path(self) -> Path:
        return Path(self.pxe.assets_dir) if self.pxe.assets_dir else self.data_dir / "assets"

    @property
    def tftp_path(self) -> Path:
        return Path(self.pxe.tftp_root) if self.pxe.tftp_root else self.data_dir / "tftp"

    @property
    def key_file(self) -> Path:
        return Path(self.secret_key_file) if self.secret_key_file else self.data_dir / "secret.key"


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/provisiond")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "provisiond"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_s!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    return host, port


def normalise_db_url(url: str) -> str:
    """Map the URLs people write to the async drivers we ship."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(
            f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql://...)"
        )
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    raise ValueError(f"unsupported database {base!r}: use sqlite or postgresql")


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", key="--config")
        return path
    from_env = env.get("PROVISIOND_CONFIG")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"PROVISIOND_CONFIG={path}: no such file", key="PROVISIOND_CONFIG")
        return path
    for candidate in SEARCH_PATH:
        if candidate.is_file():
            return candidate
    return None


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """PROVISIOND_ENGINE__LEASE_SECONDS=5 -> {"engine": {"lease_seconds": "5"}}."""
    tree: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_SETTINGS:
            continue
        if name.startswith(_ENV_NOT_SETTINGS_PREFIXES):
            continue
        path = _ENV_ALIASES.get(name) or tuple(
            part.lower() for part in name[len(ENV_PREFIX) :].split("__")
        )
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: conflicts with another variable", key=name)
            node = child
        node[path[-1]] = value
        sources[path] = name
    return tree, sources


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _has(tree: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _source_of(
    loc: tuple[str, ...],
    flags: Mapping[str, Any],
    env_sources: Mapping[tuple[str, ...], str],
    path: Path | None,
) -> str:
    """Where the value at ``loc`` came from, in precedence order (flags > env > file)."""
    if _has(flags, loc):
        return "flags"
    if loc in env_sources:
        return env_sources[loc]
    # A nested variable (PROVISIOND_ENGINE__DEADLINES__X) can fail as its parent key.
    names = [n for p, n in env_sources.items() if p[: len(loc)] == loc]
    if names:
        return ", ".join(sorted(names))
    return str(path) if path is not None else "defaults"


def load_settings(
    config: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from file + environment + explicit overrides (flags), or raise ConfigError."""
    env = os.environ if env is None else env
    path = find_config_file(config, env)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}", key=str(path)) from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}", key=str(path)) from exc
    env_tree, env_sources = _env_overrides(env)
    flags = {k: v for k, v in (overrides or {}).items() if v}
    merged = _merge(_merge(raw, env_tree), flags)
    try:
        return Settings.model_validate(merged)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            key = ".".join(loc)
            source = _source_of(loc, flags, env_sources, path)
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            problems.append(f"{key}{shown}: {err['msg']} (from {source})")
        raise ConfigError("bad configuration:\n  " + "\n  ".join(problems)) from exc
