"""The netmiko transport. Injection attempts are refused before any connection is made (a TCP
listener counts connection attempts); the rest runs against the lab switches (tests of the lab
itself, with netmiko's drivers, are in tests/test_lab_switch.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from drivers.switch.base import ChangeSet, Policy, PortChange, PortMode, SwitchTarget
from drivers.switch.netmiko_driver import NetmikoDriver
from provisiond.errors import ValidationError


class Listener:
    """A TCP port that accepts and counts connections (and closes them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


@pytest.mark.parametrize(
    ("driver", "port"),
    [
        ("arista_eos", "Ethernet1; reload"),
        ("arista_eos", "Ethernet1\nreload"),
        ("cumulus_nvue", "swp1 && reboot"),
        ("junos", "ge-0/0/1\ncommit"),
        ("sonic", "Ethernet0$(reboot)"),
    ],
)
async def test_injection_is_refused_before_any_connection(
    listener: Listener, driver: str, port: str
) -> None:
    target = SwitchTarget("sw1", driver, "127.0.0.1", listener.port, "admin", "admin")
    drv = NetmikoDriver({"connect_tries": 1})
    try:
        with pytest.raises(ValidationError) as err:
            await drv.apply(
                target,
                ChangeSet(ports=(PortChange(port, PortMode.ACCESS, vlan=100),)),
                Policy.parse("100-199"),
            )
        assert err.value.problems[0].where == "ports[0].port"
        with pytest.raises(ValidationError):  # outside the allow-list: refused the same way
            await drv.apply(
                target,
                ChangeSet(ports=(PortChange("Ethernet1", PortMode.ACCESS, vlan=300),)),
                Policy.parse("100-199"),
            )
    finally:
        await drv.close()
    assert listener.accepted == 0
