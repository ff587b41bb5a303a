"""A real `provisiond serve` inside a network namespace, for the boot-network tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from provisiond.procs import stop_group
from tests.support.daemon import ROOT, free_port


class NsDaemon:
    """`provisiond serve` inside network namespace ``ns`` (its DHCP and TFTP bind there), driven
    over HTTP from inside a namespace (the test's own process cannot reach it). Stopped by its
    process group."""

    def __init__(
        self, ns: str, server_ip: str, tmp: Path, *, pxe: str, extra: str = "", port: int = 0
    ) -> None:
        self.ns = ns
        self.tmp = tmp
        self.port = port or free_port()
        self.url = f"http://{server_ip}:{self.port}"
        self.config = tmp / "provisiond.toml"
        self.config.write_text(
            "\n".join(
                [
                    f'data_dir = "{tmp / "data"}"',
                    f'listen = "0.0.0.0:{self.port}"',
                    "[engine]",
                    "poll_seconds = 0.2",
                    "[power_sync]",
                    "enabled = false",
                    "[drivers.bmc]",
                    'fake = "tests.support.fakebmc:FakeBmc"',
                    extra,
                    "[pxe]",
                    pxe,
                ]
            )
            + "\n"
        )
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""

    def start(self) -> None:
        with open(self.tmp / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sys.executable, "-m", "provisiond.cli",
                 "serve", "--config", str(self.config)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp,
                start_new_session=True,
            )  # fmt: skip
        end = time.monotonic() + 40
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.log()
            if self.http("GET", "/healthz", auth=False)[0] == 200:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"daemon not healthy in 40 s:\n{self.log()}")
        out = subprocess.run(
            [sys.executable, "-m", "provisiond.cli", "token", "create", "--role", "admin",
             "--name", "t", "--config", str(self.config)],
            env=self.env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        self.token = out.stdout.strip()

    def log(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")[-3000:]

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        ns: str | None = None,
        ctype: str = "application/json",
    ) -> tuple[int, str]:
        """An HTTP request made from inside a namespace (the server's by default)."""
        code = (
            "import json,sys,urllib.request,urllib.error\n"
            "a=json.loads(sys.argv[1])\n"
            "r=urllib.request.Request(a['url'],data=a['body'] and a['body'].encode(),"
            "method=a['method'],headers=a['headers'])\n"
            "try:\n"
            "  resp=urllib.request.urlopen(r,timeout=10); print(resp.status); "
            "print(resp.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "  print(e.code); print(e.read().decode())\n"
            "except OSError as e:\n"
            "  print(0); print(e)\n"
        )
        headers = {"Content-Type": ctype}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        arg = json.dumps(
            {
                "url": self.url + path,
                "method": method,
                "headers": headers,
                "body": body if isinstance(body, str) or body is None else json.dumps(body),
            }
        )
        res = subprocess.run(
            ["ip", "netns", "exec", ns or self.ns, sys.executable, "-c", code, arg],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        status, _, text = res.stdout.partition("\n")
        return int(status or 0), text

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, grace=15)
