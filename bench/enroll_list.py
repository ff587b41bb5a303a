"""Benchmark: enroll N nodes through the API, then list filtered pages; compare with a peer.

For each backend (sqlite; postgres when PROVISIOND_TEST_PG_URL or --pg-url is given):

1. start a real ``provisiond serve`` subprocess on a fresh data dir (and, for PostgreSQL, a
   fresh database) on 127.0.0.1 and a free port; wait for /healthz; create an admin token with
   ``provisiond token create``;
2. enroll --nodes nodes through ``POST /v1/racks/{rack}/enroll`` (40 nodes a rack, each with an
   IPMI BMC, one ethernet PXE NIC and one InfiniBand port), timing the total wall time;
3. list pages of 100 (``?state=enrolled`` and ``?maintenance=false``, with varied cursors) over
   one keep-alive connection, sequentially, and report p50/p99 latency;
4. measure the PEER, the floor of the same work without a daemon: (a) the same node and NIC rows
   inserted with one executemany per table through SQLAlchemy Core into a fresh schema
   (Base.metadata.create_all) on the same backend; (b) the equivalent raw SQL page query
   (100 nodes joined with their NICs) executed directly;
5. clean up: stop the daemon by its pid, drop the databases it created, remove temp dirs.

Not a test: it prints a table and exits 0 even when a goal is missed (exit 1 only on errors).
Usage: python bench/enroll_list.py [--nodes 10000] [--backends sqlite,postgres] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget import Budget
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import TextClause

from provisiond.models import Base

HOST = "127.0.0.1"
NODES_PER_RACK = 40
PAGE = 100
ENROLL_GOAL_S = 10.0
LIST_P99_GOAL_MS = 20.0
STARTUP_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 120.0
SEED = 20240611
TABLES = Base.metadata.tables


# ----------------------------------------------------------------------------- helpers


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def daemon_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "provisiond"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "provisiond.cli"]


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without PROVISIOND_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISIOND_")}
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- the workload


@dataclass(frozen=True)
class NodeGen:
    rack: str
    name: str
    unit: int
    bmc_address: str
    mac: str
    guid: str


def make_inventory(n_nodes: int) -> list[list[NodeGen]]:
    """Racks of 40 nodes with unique names, BMC addresses, MACs and GUIDs."""
    racks: list[list[NodeGen]] = []
    n_racks = math.ceil(n_nodes / NODES_PER_RACK)
    for r in range(n_racks):
        rack = f"r{r + 1:04d}"
        nodes = []
        for u in range(1, NODES_PER_RACK + 1):
            i = r * NODES_PER_RACK + (u - 1)
            if i >= n_nodes:
                break
            b = (i + 1).to_bytes(3, "big")
            nodes.append(
                NodeGen(
                    rack=rack,
                    name=f"{rack}n{u:02d}",
                    unit=u,
                    bmc_address=f"10.{b[0]}.{b[1]}.{b[2]}",
                    mac="52:54:00:" + ":".join(f"{x:02x}" for x in b),
                    guid=f"0x0002c903{i + 1:08x}",
                )
            )
        racks.append(nodes)
    return racks


def rack_body(nodes: list[NodeGen]) -> bytes:
    doc = {
        "rack": nodes[0].rack,
        "height": 42,
        "location": "bench hall",
        "nodes": [
            {
                "name": n.name,
                "unit": n.unit,
                "bmc": {
                    "driver": "ipmi",
                    "address": n.bmc_address,
                    "port": 623,
                    "username": "admin",
                    "password": "bench-secret",
                },
                "nics": [
                    {
                        "kind": "ethernet",
                        "mac": n.mac,
                        "pxe": True,
                        "switch": "leaf1",
                        "port": f"swp{n.unit}",
                    },
                    {"kind": "infiniband", "guid": n.guid},
                ],
            }
            for n in nodes
        ],
    }
    return json.dumps(doc).encode()


# ----------------------------------------------------------------------------- HTTP client


class Http:
    """One keep-alive HTTP/1.1 connection to the daemon."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(
        self, method: str, path: str, body: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if ctype:
            headers["Content-Type"] = ctype
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


# ----------------------------------------------------------------------------- backends


@dataclass
class Backend:
    """Where the daemon's and the peer's databases live, and how to remove them."""

    name: str
    admin_pg_url: str | None = None
    created_dbs: list[str] = field(default_factory=list)
    temp_dirs: list[Path] = field(default_factory=list)

    def temp_dir(self, tag: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=f"provisiond-bench-{self.name}-{tag}-"))
        self.temp_dirs.append(d)
        return d

    def new_pg_db(self, tag: str) -> str:
        """Create a fresh PostgreSQL database; return its plain postgresql:// URL."""
        import psycopg

        assert self.admin_pg_url
        name = f"bench_{tag}_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self.created_dbs.append(name)
        url = make_url(self.admin_pg_url).set(drivername="postgresql", database=name)
        return url.render_as_string(hide_password=False)

    def cleanup(self) -> list[str]:
        errors = []
        if self.created_dbs:
            import psycopg

            assert self.admin_pg_url
            for name in list(self.created_dbs):
                try:
                    with psycopg.connect(self.admin_pg_url, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    self.created_dbs.remove(name)
                except Exception as exc:
                    errors.append(f"drop database {name}: {exc}")
        for d in list(self.temp_dirs):
            shutil.rmtree(d, ignore_errors=True)
            self.temp_dirs.remove(d)
        return errors


def check_local_pg(url: str) -> None:
    host = make_url(url).host or ""
    if host != HOST:
        raise SystemExit(f"refusing PostgreSQL at host {host!r}: this benchmark uses {HOST} only")


# ----------------------------------------------------------------------------- the daemon


class Daemon:
    def __init__(self, data_dir: Path, db_url: str | None) -> None:
        self.data_dir = data_dir
        self.config = data_dir.parent / f"{data_dir.name}.toml"
        self.config.write_text("")  # an empty config file: no /etc/provisiond or cwd file
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        extra = {"PROVISIOND_CONFIG": str(self.config), "PROVISIOND_LOG_LEVEL": "warning"}
        if db_url:
            extra["PROVISIOND_DATABASE_URL"] = db_url
        self.env = clean_env(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, budget: Budget) -> None:
        for _attempt in range(3):  # a free port may be taken between probe and bind
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        *daemon_cmd(),
                        "serve",
                        "--data-dir",
                        str(self.data_dir),
                        "--listen",
                        f"{HOST}:{self.port}",
                    ],
                    env=self.env,
                    cwd=self.data_dir.parent,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_healthy(budget):
                return
            self.stop()
        raise RuntimeError(f"provisiond did not become healthy; log:\n{self.log_tail()}")

    def _wait_healthy(self, budget: Budget) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + min(STARTUP_TIMEOUT_S, max(budget.left(), 1))
        for _ in range(int(STARTUP_TIMEOUT_S / 0.05)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            try:
                c = Http(self.port)
                try:
                    status, _ = c.request("GET", "/healthz")
                finally:
                    c.close()
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def create_token(self) -> str:
        out = subprocess.run(
            [
                *daemon_cmd(),
                "token",
                "create",
                "--role",
                "admin",
                "--name",
                "bench",
                "--data-dir",
                str(self.data_dir),
            ],
            env=self.env,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"token create failed: {out.stderr.strip()}")
        return out.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)  # SIGTERM, by pid
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# ----------------------------------------------------------------------------- measurements


@dataclass
class Results:
    backend: str
    nodes: int
    racks: int
    enroll_s: float = math.nan
    enroll_rack_p50_ms: float = math.nan
    enroll_rack_max_ms: float = math.nan
    peer_enroll_s: float = math.nan
    list_n: int = 0
    list_p50_ms: float = math.nan
    list_p99_ms: float = math.nan
    list_max_ms: float = math.nan
    peer_list_n: int = 0
    peer_list_p50_ms: float = math.nan
    peer_list_p99_ms: float = math.nan
    load_before: float = math.nan  # 1-minute load average: other work on the machine skews this
    load_after: float = math.nan


def enroll_via_api(c: Http, bodies: list[tuple[str, bytes, int]], budget: Budget) -> list[float]:
    per_rack = []
    for rack, body, count in bodies:
        budget.check("enrollment")
        t0 = time.perf_counter()
        status, raw = c.request("POST", f"/v1/racks/{rack}/enroll", body, "application/json")
        per_rack.append(time.perf_counter() - t0)
        if status != 201:
            raise RuntimeError(f"enroll {rack}: HTTP {status}: {raw[:2000]!r}")
        created = len(json.loads(raw)["created"])
        if created != count:
            raise RuntimeError(f"enroll {rack}: created {created} of {count}")
    return per_rack


def collect_cursors(c: Http, n_nodes: int, budget: Budget) -> list[tuple[str | None, str]]:
    """Walk the ?state=enrolled pages (also the warm-up): (cursor, name the page starts after)
    for every page that is full, the first page (no cursor) included."""
    max_pages = n_nodes // PAGE
    out: list[tuple[str | None, str]] = [(None, "")]
    cursor: str | None = None
    for _ in range(max_pages):
        budget.check("cursor walk")
        path = f"/v1/nodes?state=enrolled&limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        status, raw = c.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {raw[:500]!r}")
        page = json.loads(raw)
        cursor = page["next_cursor"]
        if not cursor:
            break
        out.append((cursor, page["items"][-1]["name"]))
    # the k-th entry starts after k pages: keep it when a full page follows
    return [e for k, e in enumerate(out) if (k + 1) * PAGE <= n_nodes]


def list_plan(
    cursors: list[tuple[str | None, str]], n: int
) -> list[tuple[str, str, str | None, str]]:
    """n requests: (filter name, query string, cursor, after-name), alternating the filters."""
    rng = random.Random(SEED)
    plan = []
    for i in range(n):
        cursor, after = rng.choice(cursors)
        filt = "state" if i % 2 == 0 else "maintenance"
        q = "state=enrolled" if filt == "state" else "maintenance=false"
        plan.append((filt, q, cursor, after))
    return plan


def list_via_api(
    c: Http, plan: list[tuple[str, str, str | None, str]], budget: Budget
) -> list[float]:
    samples = []
    for _filt, q, cursor, _after in plan:
        if budget.left() <= 0:
            break
        path = f"/v1/nodes?{q}&limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        t0 = time.perf_counter()
        status, raw = c.request("GET", path)
        samples.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {raw[:500]!r}")
        items = json.loads(raw)["items"]
        if len(items) != PAGE or any(len(it["nics"]) != 2 for it in items):
            raise RuntimeError(f"GET {path}: page of {len(items)} nodes or wrong NICs")
    return samples


# -- the peer


def peer_engine(backend: Backend) -> Engine:
    """A synchronous SQLAlchemy engine on a fresh database/file, configured like the daemon."""
    if backend.name == "sqlite":
        path = backend.temp_dir("peer") / "peer.db"
        engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # the daemon's settings (provisiond/db.py)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    url = make_url(backend.new_pg_db("peer")).set(drivername="postgresql+psycopg")
    return create_engine(url)


def peer_rows(
    racks: list[list[NodeGen]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows the daemon writes for nodes and NICs (same columns, same values)."""
    now = dt.datetime.now(dt.UTC)
    fernet = Fernet(Fernet.generate_key())
    rack_rows, node_rows, nic_rows = [], [], []
    for r_i, nodes in enumerate(racks, start=1):
        rack_rows.append(
            {
                "id": r_i,
                "name": nodes[0].rack,
                "height": 42,
                "location": "bench hall",
                "created_at": now,
                "updated_at": now,
            }
        )
        for n in nodes:
            node_id = str(uuid.uuid4())
            node_rows.append(
                {
                    "id": node_id,
                    "name": n.name,
                    "rack_id": r_i,
                    "unit": n.unit,
                    "unit_height": 1,
                    "state": "enrolled",
                    "maintenance": False,
                    "protected": False,
                    "retired": False,
                    "power_state": "unknown",
                    "boot_mode": "uefi",
                    "arch": "x86_64",
                    "facts": {},
                    "bmc_driver": "ipmi",
                    "bmc_address": n.bmc_address,
                    "bmc_port": 623,
                    "bmc_username": "admin",
                    "bmc_password_enc": fernet.encrypt(b"bench-secret").decode(),
                    "state_entered_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            nic_rows.append(
                {
                    "node_id": node_id,
                    "kind": "ethernet",
                    "mac": n.mac,
                    "guid": None,
                    "pxe": True,
                    "switch_name": "leaf1",
                    "switch_port": f"swp{n.unit}",
                }
            )
            nic_rows.append(
                {
                    "node_id": node_id,
                    "kind": "infiniband",
                    "mac": None,
                    "guid": n.guid,
                    "pxe": False,
                    "switch_name": None,
                    "switch_port": None,
                }
            )
    return rack_rows, node_rows, nic_rows


PEER_PAGE_SQL = """
SELECT n.id, n.name, n.unit, n.state, n.target_state, n.maintenance, n.maintenance_reason,
       n.fault, n.protected, n.retired, n.last_error, n.power_state, n.bmc_driver,
       n.bmc_address, n.bmc_port, n.bmc_username, n.bmc_password_enc, n.updated_at,
       r.name AS rack_name, t.name AS tenant_name,
       c.id AS nic_id, c.kind, c.mac, c.guid, c.pxe, c.switch_name, c.switch_port
FROM (SELECT * FROM nodes WHERE {where} AND name > :after ORDER BY name LIMIT :limit) AS n
LEFT JOIN racks r ON r.id = n.rack_id
LEFT JOIN tenants t ON t.id = n.tenant_id
LEFT JOIN nics c ON c.node_id = n.id
ORDER BY n.name, c.id
"""
PEER_QUERIES: dict[str, tuple[TextClause, dict[str, Any]]] = {
    "state": (text(PEER_PAGE_SQL.format(where="state = :state")), {"state": "enrolled"}),
    "maintenance": (text(PEER_PAGE_SQL.format(where="maintenance = :m")), {"m": False}),
}


def peer_enroll(engine: Engine, racks: list[list[NodeGen]]) -> float:
    Base.metadata.create_all(engine)
    rack_rows, node_rows, nic_rows = peer_rows(racks)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(TABLES["racks"]), rack_rows)
        conn.execute(insert(TABLES["nodes"]), node_rows)
        conn.execute(insert(TABLES["nics"]), nic_rows)
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM nics")).scalar_one()
    if count != len(nic_rows):
        raise RuntimeError(f"peer inserted {count} NICs, expected {len(nic_rows)}")
    if engine.dialect.name == "postgresql":
        # The floor: the peer's planner gets fresh statistics at once (outside the timing);
        # the daemon's tables get theirs whenever autovacuum analyzes them.
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return elapsed


def peer_list(
    engine: Engine, plan: list[tuple[str, str, str | None, str]], budget: Budget
) -> list[float]:
    samples = []
    with engine.connect() as conn:
        for filt, _q, _cursor, after in plan[: min(len(plan), 50)]:  # warm-up
            stmt, params = PEER_QUERIES[filt]
            conn.execute(stmt, {**params, "after": after, "limit": PAGE}).all()
        for filt, _q, _cursor, after in plan:
            if budget.left() <= 0:
                break
            stmt, params = PEER_QUERIES[filt]
            t0 = time.perf_counter()
            rows = conn.execute(stmt, {**params, "after": after, "limit": PAGE}).all()
            samples.append(time.perf_counter() - t0)
            if len(rows) != 2 * PAGE:
                raise RuntimeError(f"peer page returned {len(rows)} rows, expected {2 * PAGE}")
    return samples


# ----------------------------------------------------------------------------- one backend


def run_backend(backend: Backend, args: argparse.Namespace, budget: Budget) -> Results:
    racks = make_inventory(args.nodes)
    res = Results(backend=backend.name, nodes=args.nodes, racks=len(racks))
    res.load_before = os.getloadavg()[0]
    bodies = [(nodes[0].rack, rack_body(nodes), len(nodes)) for nodes in racks]

    # -- the daemon
    db_url = backend.new_pg_db("daemon") if backend.name == "postgres" else None
    daemon = Daemon(backend.temp_dir("daemon") / "data", db_url)
    daemon.data_dir.mkdir()
    try:
        daemon.start(budget)
        token = daemon.create_token()
        c = Http(daemon.port, token)
        try:
            t0 = time.perf_counter()
            per_rack = enroll_via_api(c, bodies, budget)
            res.enroll_s = time.perf_counter() - t0
            res.enroll_rack_p50_ms = pct(per_rack, 50) * 1000
            res.enroll_rack_max_ms = max(per_rack) * 1000
            cursors = collect_cursors(c, args.nodes, budget)
            plan = list_plan(cursors, args.requests)
            samples = list_via_api(c, plan, budget)
        finally:
            c.close()
        res.list_n = len(samples)
        res.list_p50_ms = pct(samples, 50) * 1000
        res.list_p99_ms = pct(samples, 99) * 1000
        res.list_max_ms = max(samples) * 1000 if samples else math.nan
    except Exception:
        print(f"--- provisiond log ({backend.name}) ---\n{daemon.log_tail()}", file=sys.stderr)
        raise
    finally:
        daemon.stop()

    # -- the peer (daemon stopped: nothing else competes for the two cores)
    engine = peer_engine(backend)
    try:
        res.peer_enroll_s = peer_enroll(engine, racks)
        peer_samples = peer_list(engine, plan, budget)
    finally:
        engine.dispose()
    res.peer_list_n = len(peer_samples)
    res.peer_list_p50_ms = pct(peer_samples, 50) * 1000
    res.peer_list_p99_ms = pct(peer_samples, 99) * 1000
    res.load_after = os.getloadavg()[0]
    return res


# ----------------------------------------------------------------------------- output


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b and not math.isnan(a) and not math.isnan(b) else "-"


def verdict(value: float, goal: float) -> str:
    return "-" if math.isnan(value) else ("PASS" if value < goal else "FAIL")


def table(results: list[Results]) -> str:
    header = ("backend", "measure", "daemon", "peer", "daemon/peer", "goal", "result")
    rows: list[tuple[str, ...]] = []
    for r in results:
        rows += [
            (
                r.backend,
                f"enroll {r.nodes} nodes ({r.racks} racks), s",
                f"{r.enroll_s:.2f}",
                f"{r.peer_enroll_s:.3f}",
                ratio(r.enroll_s, r.peer_enroll_s),
                f"< {ENROLL_GOAL_S:g} s",
                verdict(r.enroll_s, ENROLL_GOAL_S),
            ),
            (
                r.backend,
                "  per rack p50 / max, ms",
                f"{r.enroll_rack_p50_ms:.0f} / {r.enroll_rack_max_ms:.0f}",
                "",
                "",
                "",
                "",
            ),
            (
                r.backend,
                f"list page of {PAGE} p50, ms (n={r.list_n}/{r.peer_list_n})",
                f"{r.list_p50_ms:.2f}",
                f"{r.peer_list_p50_ms:.2f}",
                ratio(r.list_p50_ms, r.peer_list_p50_ms),
                "",
                "",
            ),
            (
                r.backend,
                f"list page of {PAGE} p99, ms",
                f"{r.list_p99_ms:.2f}",
                f"{r.peer_list_p99_ms:.2f}",
                ratio(r.list_p99_ms, r.peer_list_p99_ms),
                f"< {LIST_P99_GOAL_MS:g} ms",
                verdict(r.list_p99_ms, LIST_P99_GOAL_MS),
            ),
            (r.backend, "  list max, ms", f"{r.list_max_ms:.2f}", "", "", "", ""),
            (
                r.backend,
                "  load average before / after",
                f"{r.load_before:.2f} / {r.load_after:.2f}",
                "",
                "",
                "",
                "",
            ),
        ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row).rstrip() for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{os.cpu_count()} cpu(s), {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--nodes", type=int, default=10000, help="nodes to enroll (default 10000)")
    p.add_argument(
        "--backends",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres (default both; postgres needs a URL)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("PROVISIOND_TEST_PG_URL", ""),
        help="PostgreSQL admin URL on 127.0.0.1 (default $PROVISIOND_TEST_PG_URL); "
        "the role must be allowed to CREATE DATABASE",
    )
    p.add_argument("--requests", type=int, default=500, help="list requests (default 500)")
    p.add_argument(
        "--time-budget",
        type=float,
        default=900.0,
        help="wall-clock limit per backend in seconds (default 900)",
    )
    p.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not 1 <= args.nodes <= 1_000_000:
        p.error("--nodes must be 1..1000000")
    if args.nodes < 2 * PAGE:
        p.error(f"--nodes must be at least {2 * PAGE} (pages of {PAGE})")
    if not 1 <= args.requests <= 100_000:
        p.error("--requests must be 1..100000")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in args.backends:
        if b not in ("sqlite", "postgres"):
            p.error(f"unknown backend {b!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = []
    for name in args.backends:
        if name == "postgres":
            if not args.pg_url:
                print("postgres: skipped (set PROVISIOND_TEST_PG_URL or --pg-url)", file=sys.stderr)
                continue
            check_local_pg(args.pg_url)
            backends.append(Backend(name, admin_pg_url=args.pg_url))
        else:
            backends.append(Backend(name))
    print(
        f"provisiond enroll/list benchmark: {args.nodes} nodes, {args.requests} list "
        f"requests; {machine()}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    results: list[Results] = []
    failed = False
    for backend in backends:
        print(f"[{backend.name}] running...", file=sys.stderr, flush=True)
        try:
            results.append(run_backend(backend, args, Budget(args.time_budget)))
        except Exception as exc:
            failed = True
            print(f"[{backend.name}] error: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            for err in backend.cleanup():
                print(f"[{backend.name}] cleanup: {err}", file=sys.stderr)
    if results:
        print(table(results))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"machine": machine(), "results": [r.__dict__ for r in results]}, indent=2)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
