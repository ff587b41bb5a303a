"""Network boot in the daemon, in-process on both backends: the iPXE script a MAC gets in each
state, one-time agent tokens, the inspection report (facts, LLDP links, new NICs, firmware), the
deploy call-back, discovery of unknown MACs, and boot assets (Range, checksums, confinement)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select

from provisiond.models import BootToken, FirmwareReport, Nic, Node
from tests.conftest import Api, rack_yaml
from tests.support import fakebmc
from tests.test_engine import act, node, wait_op

MAC = "52:54:00:01:00:01"


def report(mac: str = MAC) -> dict[str, Any]:
    return {
        "agent_version": "1",
        "hostname": "r01n01",
        "boot_mac": mac,
        "system": {"manufacturer": "Supermicro", "product": "SYS-1029", "serial": "S1"},
        "cpu": {"model": "Xeon", "arch": "x86_64", "sockets": 2, "cores": 32, "threads": 64},
        "memory": {"total_bytes": 274877906944},
        "disks": [],
        "nics": [
            {"name": "eno1", "mac": mac, "firmware": "4.40"},
            {"name": "eno2", "mac": "52:54:00:99:00:02", "firmware": "4.40"},
        ],
        "infiniband": [{"device": "mlx5_0", "port": 1, "port_guid": "0x0002c90300009901"}],
        "pci": [],
        "lldp": [{"interface": "eno1", "chassis_name": "leaf-r01", "port_id": "Ethernet1/1"}],
        "firmware": [
            {"component": "bios", "version": "3.4", "source": "dmi"},
            {"component": "nic:eno1", "version": "4.40 0x8001c967 1.3534.0", "source": "ethtool"},
        ],
        "errors": [],
    }


def token_of(script: str) -> str:
    for word in script.split():
        if word.startswith("provisiond.token="):
            return word.split("=", 1)[1]
    raise AssertionError(f"no token in script:\n{script}")


async def script(api: Api, mac: str = MAC) -> str:
    r = await api.client.get("/boot/ipxe", params={"mac": mac})
    assert r.status == 200, await r.text()
    assert r.content_type == "text/plain"
    text: str = await r.text()
    assert text.startswith("#!ipxe\n")
    return text


async def wait_state(api: Api, name: str, state: str) -> None:
    for _ in range(400):
        if (await node(api, name))["state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {state}: {await node(api, name)}")


async def manageable(api: Api, n: int = 2) -> None:
    assert (await api.enroll(rack_yaml(n=n))).status == 201
    for i in range(1, n + 1):
        op = await act(api, f"r01n{i:02d}", "manage")
        assert (await wait_op(api, op["id"]))["state"] == "succeeded"


async def test_enrolled_node_boots_its_disk_and_bad_mac_is_refused(api: Api) -> None:
    await manageable(api, 1)
    text = await script(api)
    assert "exit" in text and "provisiond.token" not in text
    r = await api.client.get("/boot/ipxe", params={"mac": "zz:zz"})
    assert r.status == 422 and "query.mac" in await r.text()


async def test_inspection_round_trip(api: Api) -> None:
    await manageable(api)
    op = await act(api, "r01n01", "inspect")
    await wait_state(api, "r01n01", "inspect-wait")
    text = await script(api)
    assert "/boot/assets/inspect/vmlinuz" in text and "provisiond.mode=inspect" in text
    assert f"provisiond.mac={MAC}" in text and "BOOTIF=01-52-54-00-01-00-01" in text
    token = token_of(text)
    # each fetch (the node rebooted) issues a token; only the newest few stay valid, so a host
    # that keeps fetching cannot void the real node's token at once, nor collect many
    for _ in range(4):
        token2 = token_of(await script(api))
    r = await api.client.post("/v1/agent/inspect", json={"token": token, "report": report()})
    assert r.status == 401 and "superseded" in (await r.json())["detail"]
    r = await api.client.post("/v1/agent/inspect", json={"token": token2, "report": report()})
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["node"] == "r01n01" and out["firmware_reports"] == 2 and out["switch_links"] == 1
    assert out["cabling_mismatches"] == 0
    assert (await wait_op(api, op["id"]))["state"] == "succeeded"
    n = await node(api, "r01n01")
    assert n["state"] == "manageable" and n["power_state"] == "off"
    assert n["facts"]["inspection"]["system"]["serial"] == "S1"
    # a retry of the same report (its answer was lost) is acknowledged, nothing stored twice;
    # the one-time token refuses anything else
    r = await api.client.post("/v1/agent/inspect", json={"token": token2, "report": report()})
    assert r.status == 200 and (await r.json())["already_delivered"] is True
    other = {**report(), "hostname": "changed"}
    r = await api.client.post("/v1/agent/inspect", json={"token": token2, "report": other})
    assert r.status == 401 and "already used" in (await r.json())["detail"]
    async with api.services.db.read() as s:
        nid = await s.scalar(select(Node.id).where(Node.name == "r01n01"))
        nics = {
            (x.mac or x.guid): x for x in await s.scalars(select(Nic).where(Nic.node_id == nid))
        }
        fw = {(f.component, f.version) for f in await s.scalars(select(FirmwareReport))}
        hashes = list(await s.scalars(select(BootToken.token_hash)))
    assert (nics[MAC].switch_name, nics[MAC].switch_port) == ("leaf-r01", "Ethernet1/1")
    assert "52:54:00:99:00:02" in nics and "0x0002c90300009901" in nics  # learned
    assert ("nic:eno1", "4.40 0x8001c967 1.3534.0") in fw
    assert token2 not in hashes and hashlib.sha256(token2.encode()).hexdigest() in hashes


async def test_call_back_before_the_wait_step_is_not_lost(api: Api) -> None:
    """A fast node reports while the boot step still waits on the BMC: the operation does not
    park afterwards waiting for a call-back that already came."""
    await manageable(api, 1)
    fakebmc.set_behaviour("127.0.0.1:7001", delay=0.7)
    op = await act(api, "r01n01", "inspect")
    await wait_state(api, "r01n01", "inspecting")
    r = await api.client.post(
        "/v1/agent/inspect", json={"token": token_of(await script(api)), "report": report()}
    )
    assert r.status == 200, await r.text()
    fakebmc.set_behaviour("127.0.0.1:7001")
    assert (await wait_op(api, op["id"]))["state"] == "succeeded"
    assert (await node(api, "r01n01"))["state"] == "manageable"


async def test_report_after_the_operation_ended_is_refused(api: Api) -> None:
    await manageable(api, 1)
    op = await act(api, "r01n01", "inspect")
    await wait_state(api, "r01n01", "inspect-wait")
    token = token_of(await script(api))
    await act(api, "r01n01", "maintenance-on", reason="pulled")  # flags do not end it...
    async with api.services.db.write() as s:  # ...so end it the way a deadline would
        from provisiond.models import Operation

        o = await s.get(Operation, op["id"])
        assert o is not None
        o.state = "failed"
    r = await api.client.post("/v1/agent/inspect", json={"token": token, "report": report()})
    assert r.status == 409 and "is over" in (await r.json())["detail"]


async def test_deploy_boots_the_image_and_its_call_back_finishes(api: Api) -> None:
    await manageable(api, 1)
    assert (await wait_op(api, (await act(api, "r01n01", "provide"))["id"]))["state"] == (
        "succeeded"
    )
    r = await api.req(
        "POST",
        "/v1/images",
        json={"name": "rocky9", "kernel": "images/rocky9/vmlinuz", "initrd": None,
              "cmdline": "ro quiet"},
    )  # fmt: skip
    assert r.status == 422 and "no such file" in await r.text()  # local assets must exist
    assets = api.services.settings.assets_path / "images" / "rocky9"
    assets.mkdir(parents=True)
    (assets / "vmlinuz").write_bytes(b"kernel")
    sha = hashlib.sha256(b"kernel").hexdigest()
    r = await api.req(
        "POST",
        "/v1/images",
        json={"name": "rocky9", "kernel": "images/rocky9/vmlinuz", "kernel_sha256": sha,
              "cmdline": "ro quiet"},
    )  # fmt: skip
    assert r.status == 201, await r.text()
    op = await act(api, "r01n01", "deploy", image="rocky9")
    await wait_state(api, "r01n01", "deploy-wait")
    text = await script(api)
    assert "/boot/assets/images/rocky9/vmlinuz ro quiet provisiond.url=" in text
    assert f"# kernel sha256 {sha}" in text and "provisiond.mode=deploy" in text
    r = await api.client.post("/v1/agent/deployed", json={"token": token_of(text)})
    assert r.status == 200, await r.text()
    assert (await wait_op(api, op["id"]))["state"] == "succeeded"
    assert (await node(api, "r01n01"))["state"] == "active"
    assert "exit" in await script(api)  # active: local disk


async def test_unknown_mac_is_discovered_and_reports(api: Api) -> None:
    mac = "52:54:00:77:00:01"
    text = await script(api, mac)
    assert "provisiond.mode=discover" in text
    for _ in range(4):
        await script(api, mac)
    r = await api.client.post(
        "/v1/agent/inspect", json={"token": token_of(text), "report": report(mac)}
    )
    assert r.status == 401  # superseded by later boots
    text = await script(api, mac)
    r = await api.client.post(
        "/v1/agent/inspect", json={"token": token_of(text), "report": report(mac)}
    )
    assert r.status == 200 and (await r.json())["discovered"] is True
    r = await api.req("GET", "/v1/discovered")
    (item,) = (await r.json())["items"]
    assert item["mac"] == mac and item["boots"] == 6 and item["reported"]
    assert item["facts"]["system"]["serial"] == "S1"
    r = await api.req("GET", "/v1/discovered", role="tenant")
    assert r.status == 403


async def test_boot_assets_range_checksum_and_confinement(api: Api, tmp_path: Path) -> None:
    root = api.services.settings.assets_path
    (root / "inspect").mkdir(parents=True)
    blob = bytes(range(256)) * 64
    (root / "inspect" / "initrd.img").write_bytes(blob)
    (tmp_path / "secret").write_text("no")
    (root / "evil").symlink_to(tmp_path / "secret")
    (root / "inspect" / "ok-link").symlink_to(root / "inspect" / "initrd.img")
    r = await api.client.get("/boot/assets/inspect/initrd.img")
    assert r.status == 200 and await r.read() == blob
    digest = hashlib.sha256(blob).digest()
    assert r.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    r = await api.client.get("/boot/assets/inspect/initrd.img", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and await r.read() == blob[10:20]
    r = await api.client.get("/boot/assets/inspect/initrd.img.sha256")
    assert await r.text() == f"{digest.hex()}  initrd.img\n"
    assert (await api.client.get("/boot/assets/inspect/ok-link")).status == 200
    for bad in ("evil", "inspect/../../secret", "inspect/%2e%2e/%2e%2e/secret", "nope"):
        r = await api.client.get(f"/boot/assets/{bad}")
        assert r.status == 404, bad
    # the TFTP root (boot loaders) is the fallback: UEFI HTTP boot fetches ipxe.efi here
    loaders = api.services.settings.tftp_path
    loaders.mkdir(parents=True, exist_ok=True)
    (loaders / "ipxe.efi").write_bytes(b"MZ efi")
    r = await api.client.get("/boot/assets/ipxe.efi")
    assert r.status == 200 and await r.read() == b"MZ efi"


async def test_report_must_name_the_boot_nic_and_garbage_nics_are_skipped(api: Api) -> None:
    await manageable(api, 1)
    op = await act(api, "r01n01", "inspect")
    await wait_state(api, "r01n01", "inspect-wait")
    token = token_of(await script(api))
    bad = {**report(), "nics": [{"name": "eno9", "mac": "52:54:00:99:99:99"}]}
    r = await api.client.post("/v1/agent/inspect", json={"token": token, "report": bad})
    assert r.status == 422 and "report.nics" in await r.text()
    # the token was not spent by the refused report; junk MACs/GUIDs are skipped, not stored
    junk = {
        **report(),
        "nics": [*report()["nics"], {"name": "x", "mac": "not-a-mac-at-all-really"}],
        "infiniband": [{"port_guid": "0xZZ"}, {"port_guid": "fe80::1", "link_layer": "Ethernet"}],
    }
    r = await api.client.post("/v1/agent/inspect", json={"token": token, "report": junk})
    assert r.status == 200, await r.text()
    assert (await wait_op(api, op["id"]))["state"] == "succeeded"


async def test_authoritative_binds_scripts_and_tokens_to_the_reserved_address(
    api: Api,
) -> None:
    """In authoritative mode we gave the node its address: a script asked from another address
    is refused, and a token only works from the address that fetched it."""
    import dataclasses as _dc

    text = rack_yaml(n=1).replace("pxe: true}", "pxe: true, ip: 127.0.0.1}", 1)
    assert (await api.enroll(text)).status == 201
    assert (await wait_op(api, (await act(api, "r01n01", "manage"))["id"]))["state"] == "succeeded"
    boot = api.services.boot
    assert boot is not None
    auth = api.services.settings.model_copy(
        update={"pxe": api.services.settings.pxe.model_copy(update={"mode": "authoritative"})}
    )
    boot.settings = auth
    op = await act(api, "r01n01", "inspect")
    await wait_state(api, "r01n01", "inspect-wait")
    refused = await boot.script(MAC, "127.0.0.9")
    assert "provisiond.token" not in refused and "not from its reserved address" in refused
    token = token_of(await boot.script(MAC, "127.0.0.1"))
    from provisiond.boot import TokenRefused

    try:
        await boot.inspected(token, report(), "127.0.0.9")
    except TokenRefused as exc:
        assert "bound to the address" in exc.message
    else:
        raise AssertionError("a token presented from another address was accepted")
    out = await boot.inspected(token, report(), "127.0.0.1")
    assert out["node"] == "r01n01"
    assert (await wait_op(api, op["id"]))["state"] == "succeeded"
    _ = _dc


async def test_per_node_boot_loader_from_rack_file_and_patch(api: Api) -> None:
    text = rack_yaml(n=2).replace("    nics:\n", "    boot_loader: snponly.efi\n    nics:\n", 1)
    assert (await api.enroll(text)).status == 201
    boot = api.services.boot
    assert boot is not None
    got = await boot.dhcp_lookup(MAC)
    assert got is not None and got.loader == "snponly.efi"
    other = await boot.dhcp_lookup("52:54:00:01:00:02")
    assert other is not None and other.loader is None
    r = await api.req("PATCH", "/v1/nodes/r01n02", json={"boot_loader": "../../etc/passwd"})
    assert r.status == 422
    r = await api.req("PATCH", "/v1/nodes/r01n01", json={"boot_loader": "-"})
    assert r.status == 200 and (await r.json())["boot_loader"] is None
    bad = rack_yaml(n=1).replace("    nics:\n", "    boot_loader: /abs/x.efi\n    nics:\n", 1)
    r = await api.enroll(bad)
    assert r.status == 422 and "boot_loader" in await r.text()
