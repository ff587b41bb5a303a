"""`provisiond lab bmc` checked with an independent IPMI client: Debian's ipmitool (lanplus).

Every BMC of the module's lab is used by one test only, so power and boot state never leak
between tests; faults are reset before each test.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.labbmc import (
    LAB_CMD,
    ROOT,
    Lab,
    free_udp_block,
    ipmitool,
    ipmitool_path,
    lab_bmc,
)

# which lab BMC (index into lab.ports) each test uses
POWER, BOOT, BOOT_PERSISTENT, MC_INFO, FRU, CIPHERS, AUTH, AUTH_FAULT, HUNG = range(9)
PARALLEL = range(9, 13)  # 4 BMCs
COUNT = 13


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    ipmitool_path()  # skip (or fail under CI) before starting anything
    with lab_bmc(COUNT, tmp=tmp_path_factory.mktemp("labbmc")) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> None:
    if "lab" in request.fixturenames:
        lab: Lab = request.getfixturevalue("lab")
        lab.clear_faults()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} failed ({result.returncode}): "
        f"{result.stderr.strip()} {result.stdout.strip()}"
    )
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure, got: {result.stdout.strip()}"
    return result.stderr


def test_power_status_on_status(lab: Lab) -> None:
    port = lab.ports[POWER]
    assert "Chassis Power is off" in ok(ipmitool(port, "power", "status"))
    assert "Up/On" in ok(ipmitool(port, "power", "on"))
    assert "Chassis Power is on" in ok(ipmitool(port, "power", "status"))


def test_bootdev_pxe_is_valid_for_next_boot_only(lab: Lab) -> None:
    port = lab.ports[BOOT]
    ok(ipmitool(port, "chassis", "bootdev", "pxe"))
    out = ok(ipmitool(port, "chassis", "bootparam", "get", "5"))
    assert "Boot Flag Valid" in out
    assert "Force PXE" in out
    assert "only next boot" in out
    assert "legacy" in out.lower()  # no efiboot option: BIOS (legacy) boot


def test_bootdev_pxe_persistent_efi(lab: Lab) -> None:
    port = lab.ports[BOOT_PERSISTENT]
    ok(ipmitool(port, "chassis", "bootdev", "pxe", "options=persistent,efiboot"))
    out = ok(ipmitool(port, "chassis", "bootparam", "get", "5"))
    assert "Boot Flag Valid" in out
    assert "Force PXE" in out
    assert "all future boots" in out
    assert "EFI" in out
    assert "only next boot" not in out


def test_mc_info_identity_and_firmware_fault(lab: Lab) -> None:
    port = lab.ports[MC_INFO]
    out = ok(ipmitool(port, "mc", "info"))
    assert re.search(r"Manufacturer ID\s*:\s*10876\b", out), out
    assert re.search(r"Firmware Revision\s*:\s*1\.74\b", out), out
    lab.set_faults({port: {"firmware": "1.73"}})
    out = ok(ipmitool(port, "mc", "info"))
    assert re.search(r"Firmware Revision\s*:\s*1\.73\b", out), out
    # the other BMCs keep the default
    other = ok(ipmitool(lab.ports[FRU], "mc", "info"))
    assert re.search(r"Firmware Revision\s*:\s*1\.74\b", other), other


def test_fru_print_shows_product_serial(lab: Lab) -> None:
    port = lab.ports[FRU]
    out = ok(ipmitool(port, "fru", "print", "0"))
    assert re.search(rf"Product Serial\s*:\s*LAB{port:05d}\b", out), out
    assert re.search(r"Product Manufacturer\s*:\s*Supermicro", out), out


@pytest.mark.parametrize("cipher", [17, 3])
def test_cipher_suites_17_and_3_work(lab: Lab, cipher: int) -> None:
    assert "Chassis Power is" in ok(ipmitool(lab.ports[CIPHERS], "power", "status", cipher=cipher))


def test_cipher_suite_1_is_refused(lab: Lab) -> None:
    err = failed(ipmitool(lab.ports[CIPHERS], "power", "status", cipher=1))
    assert "no matching cipher suite" in err  # RMCP+ status 0x11, not a timeout


def test_default_cipher_is_17_from_the_cipher_suite_list(lab: Lab) -> None:
    # ipmitool asks Get Channel Cipher Suites and picks the best listed one
    result = ipmitool(lab.ports[CIPHERS], "-v", "power", "status")
    ok(result)
    assert "cipher suite 17" in result.stderr


def test_wrong_password_and_unknown_user_fail(lab: Lab) -> None:
    port = lab.ports[AUTH]
    err = failed(ipmitool(port, "-v", "power", "status", password="not-the-password"))
    assert "RAKP 2 HMAC is invalid" in err  # refused during the handshake, not timed out
    err = failed(ipmitool(port, "-v", "power", "status", user="nobody"))
    assert "unauthorized name" in err.lower()  # RAKP 2 status 0x0D (pyghmi fix 4)
    ok(ipmitool(port, "power", "status"))  # the right credentials still work


def test_wrong_password_fault_rejects_the_right_password(lab: Lab) -> None:
    port = lab.ports[AUTH_FAULT]
    ok(ipmitool(port, "power", "status"))
    lab.set_faults({port: {"wrong_password": True}})
    err = failed(ipmitool(port, "-v", "power", "status"))
    assert "RAKP 2 HMAC is invalid" in err
    lab.set_faults({})
    ok(ipmitool(port, "power", "status"))


def test_hung_fault_gets_no_answer(lab: Lab) -> None:
    port = lab.ports[HUNG]
    lab.set_faults({port: {"hung": True}})
    failed(ipmitool(port, "-N", "1", "-R", "1", "power", "status"))
    lab.set_faults({})
    ok(ipmitool(port, "power", "status"))  # the lab itself is fine


def test_parallel_clients_all_succeed_and_the_lab_survives(lab: Lab) -> None:
    """10 concurrent ipmitool sessions x 3 rounds against 4 BMCs: sessions come and go under
    each other's feet (unpatched pyghmi lost its listen loop here, fix 3)."""
    ports = [lab.ports[i] for i in PARALLEL]
    commands = [("power", "status"), ("mc", "info"), ("chassis", "status")]

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return ipmitool(ports[i % len(ports)], *commands[i % len(commands)])

    with ThreadPoolExecutor(max_workers=10) as pool:
        for _ in range(3):
            results = list(pool.map(one, range(10)))
            for r in results:
                ok(r)
    assert lab.alive()
    log = lab.log_text()
    assert "Traceback" not in log, log[-3000:]
    for port in ports:
        ok(ipmitool(port, "power", "status"))


def test_two_hundred_bmcs_answer_on_first_and_last_port(tmp_path: Path) -> None:
    ipmitool_path()
    with lab_bmc(200, faults=["{last}=firmware:1.73"], tmp=tmp_path) as big:
        assert len(big.ports) == 200
        first, last = big.ports[0], big.ports[-1]
        assert last == first + 199
        assert "Chassis Power is off" in ok(ipmitool(first, "power", "status"))
        assert "Chassis Power is off" in ok(ipmitool(last, "power", "status"))
        # --fault flags reach the right BMC
        assert re.search(r"Firmware Revision\s*:\s*1\.73\b", ok(ipmitool(last, "mc", "info")))
        assert re.search(r"Firmware Revision\s*:\s*1\.74\b", ok(ipmitool(first, "mc", "info")))
        assert re.search(
            rf"Product Serial\s*:\s*LAB{last}\b", ok(ipmitool(last, "fru", "print", "0"))
        )


@pytest.mark.parametrize("count", [0, 1001])
def test_count_out_of_range_is_refused(count: int) -> None:
    base = free_udp_block(1)
    result = subprocess.run(
        [*LAB_CMD, "--count", str(count), "--base-port", str(base)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode != 0
    assert "--count must be 1..1000" in result.stderr, result.stderr
    assert f"got {count}" in result.stderr
    assert "ready" not in result.stdout
