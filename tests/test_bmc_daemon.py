"""The BMC layer inside a real daemon (`provisiond serve`) against lab BMCs over real IPMI.

Acceptance: a hung BMC and a stalled IPMI library (a worker process frozen with SIGSTOP: it stops
answering exactly as a wedged pyghmi does) do not hold up operations on other BMCs beyond one
deadline, and the process keeps serving the API throughout. No wall-clock assertions: ordering
and outcomes only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import Daemon, wait_for
from tests.support.labbmc import lab_bmc

COUNT = 6


def _rack(ports: list[int]) -> str:
    lines = ["rack: rb", "nodes:"]
    for i, port in enumerate(ports, start=1):
        lines += [
            f"  - name: rb{i:02d}",
            f"    unit: {i}",
            f"    bmc: {{driver: ipmi, address: 127.0.0.1, port: {port}, "
            "username: admin, password: password}",
        ]
    return "\n".join(lines) + "\n"


def _ipmi_workers(daemon_pid: int) -> set[int]:
    """Pids of the daemon's IPMI worker processes (children running drivers.bmc.ipmi_worker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == daemon_pid and b"drivers.bmc.ipmi_worker" in cmdline:
            found.add(int(entry.name))
    return found


class ApiWatch:
    """Polls /healthz and GET /v1/nodes in a thread; records every failure."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(100_000):  # bounded; stopped by the test long before
            if self.stop.is_set():
                return
            try:
                status, _ = self.daemon.call("GET", "/v1/nodes?limit=10")
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"GET /v1/nodes -> {status}")
            except OSError as exc:  # includes a 10 s client timeout
                self.failures.append(f"GET /v1/nodes: {exc}")
            self.stop.wait(0.1)

    def __enter__(self) -> ApiWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def _node(d: Daemon, name: str) -> dict:
    status, body = d.call("GET", f"/v1/nodes/{name}")
    assert status == 200, body
    return body


def _act(d: Daemon, name: str, action: str) -> str:
    status, body = d.call("POST", f"/v1/nodes/{name}/actions/{action}", b"{}")
    assert status == 202, body
    return str(body["id"])


def _op(d: Daemon, op_id: str) -> dict:
    status, body = d.call("GET", f"/v1/operations/{op_id}")
    assert status == 200, body
    return body


def test_hung_bmc_and_wedged_worker_do_not_stall_the_daemon(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    with lab_bmc(COUNT, control={"{base}": {"hung": True}}, tmp=tmp_path / "lab") as lab:
        # from the fixture: the daemon is stopped (by pid) even when an assertion fails
        d = daemon_factory(f"sqlite:///{tmp_path / 'p.db'}")
        d.config.write_text(
            d.config.read_text()
            + "[drivers.ipmi]\nworkers = 2\ncommand_timeout = 2\nstall_grace = 2\n"
            "min_interval = 0\nstuck_after = 10\n"
        )
        d.env.update(
            # enough retries to outlast a call stuck inside pyghmi after the worker restart (seen
            # about once in five runs): the supervisor replaces a worker whose call is stuck
            # stuck_after (10 s here) past its deadline, and a retry then succeeds
            PROVISIOND_ENGINE__MAX_ATTEMPTS="8",
            PROVISIOND_ENGINE__RETRY_BACKOFF_SECONDS="1",
            PROVISIOND_ENGINE__RETRY_BACKOFF_MAX_SECONDS="8",
            PROVISIOND_POWER_SYNC__ENABLED="false",
        )
        d.start()
        d.make_token()
        status, body = d.call("POST", "/v1/racks/rb/enroll", _rack(lab.ports).encode(), "text/yaml")
        assert status == 201, body
        names = [f"rb{i:02d}" for i in range(1, COUNT + 1)]
        hung, healthy = names[0], names[1:]

        with ApiWatch(d) as watch:
            # 1. a hung BMC: the others verify while its operation is still retrying
            ops = {n: _act(d, n, "manage") for n in names}
            wait_for(
                lambda: all(_op(d, ops[n])["state"] == "succeeded" for n in healthy),
                90,
                "healthy nodes verified",
            )
            assert _op(d, ops[hung])["state"] in ("pending", "running"), _op(d, ops[hung])
            final = wait_for(
                lambda: (o := _op(d, ops[hung]))["state"] in ("failed", "succeeded") and o,
                180,
                "the hung node's operation to end",
            )
            assert final["state"] == "failed"
            assert f"127.0.0.1:{lab.ports[0]}" in (final.get("error") or "")
            assert _node(d, hung)["state"] == "verify-failed"
            for n in healthy:
                node = _node(d, n)
                assert node["state"] == "manageable"
                assert node["facts"]["bmc"]["firmware"] == "1.74"

            # 2. a wedged worker: freeze one with SIGSTOP; power actions still all succeed
            assert d.proc is not None
            workers = wait_for(lambda: _ipmi_workers(d.proc.pid), 10, "IPMI worker processes")
            frozen = min(workers)
            os.kill(frozen, signal.SIGSTOP)
            try:
                power_ops = {n: _act(d, n, "power-on") for n in healthy}
                wait_for(
                    lambda: all(
                        _op(d, power_ops[n])["state"] in ("succeeded", "failed") for n in healthy
                    ),
                    240,
                    "power-on on every healthy node",
                )
                results = {n: _op(d, power_ops[n]) for n in healthy}
                assert all(o["state"] == "succeeded" for o in results.values()), json.dumps(
                    results, indent=1
                )
                assert all(_node(d, n)["power_state"] == "on" for n in healthy)
                # the frozen worker was killed and replaced by the supervisor
                wait_for(lambda: frozen not in _ipmi_workers(d.proc.pid), 30, "frozen worker gone")
                assert len(_ipmi_workers(d.proc.pid)) >= 1
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(frozen, signal.SIGCONT)

        assert watch.failures == [], watch.failures[:5]
        assert watch.ok > 0
        log = (tmp_path / "daemon.log").read_text()
        assert "stalled" in log or "died" in log, log[-3000:]
