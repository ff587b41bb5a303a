"""The daemon's side of network boot: which script a MAC gets, one-time agent tokens, and what
the inspection agent and a deployed image report back.

Owns the rules; the transports live elsewhere (pxe.dhcp_server, pxe.tftp, the HTTP routes in
provisiond.api.boot_routes). Script choice by the node's state (docs/pxe.md#scripts):

- inspecting / inspect-wait (an inspect operation running): the inspection ramdisk with a fresh
  one-time token; deploying / deploy-wait: the operation's image, with a token for its call-back;
- active and every other enrolled state: boot from the local disk;
- unknown MAC: "discover" (recorded for an admin, boots the ramdisk so it reports its facts) or
  "exit", per ``[pxe] unknown``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisiond import events
from provisiond.config import Settings
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.errors import Conflict, NotFound, Unauthorized
from provisiond.lifecycle import Action
from provisiond.models import (
    ACTIVE_OPERATION_STATES,
    BootToken,
    DiscoveredMac,
    FirmwareReport,
    Image,
    Nic,
    Node,
    Operation,
    utcnow,
)
from pxe import ipxe
from pxe.dhcp_policy import NodeBoot
from pxe.dhcp_server import LoaderMemory

log = logging.getLogger("provisiond.boot")

INSPECT_STATES = ("inspecting", "inspect-wait")
DEPLOY_STATES = ("deploying", "deploy-wait")
# DHCP lookups are cached this long (a rack powering on asks for the same MACs many times)
LOOKUP_TTL = 5.0
# at most one "pxe" event per node and stage in this many seconds
EVENT_EVERY = 30.0


class TokenRefused(Unauthorized):
    """A token that is unknown, used, expired or for another purpose (HTTP 401)."""

    kind = "token-refused"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Known:
    node_id: str
    name: str
    ip: str | None


class BootService:
    def __init__(
        self, db: Database, settings: Settings, engine: Engine, memory: LoaderMemory
    ) -> None:
        self.db = db
        self.settings = settings
        self.engine = engine
        self.memory = memory
        self._cache: dict[str, tuple[float, _Known | None]] = {}
        self._events: dict[tuple[str, str], float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return self.settings.boot_base_url

    # ------------------------------------------------------------------ DHCP and TFTP hooks

    async def _known(self, mac: str) -> _Known | None:
        now = time.monotonic()
        hit = self._cache.get(mac)
        if hit is not None and now - hit[0] < LOOKUP_TTL:
            return hit[1]
        async with self.db.read() as s:
            row = (
                await s.execute(
                    select(Node.id, Node.name, Nic.ip).join(Nic.node).where(Nic.mac == mac)
                )
            ).first()
        known = _Known(row[0], row[1], row[2]) if row else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[mac] = (now, known)
        return known

    async def dhcp_lookup(self, mac: str) -> NodeBoot | None:
        known = await self._known(mac)
        return None if known is None else NodeBoot(name=known.name, ip=known.ip)

    async def dhcp_answered(self, mac: str, what: str) -> None:
        known = await self._known(mac)
        if known is not None:
            await self._stage(known, "dhcp", f"DHCP: {what}")

    def tftp_sent(self, path: str, client: tuple[str, int], size: int) -> None:
        """From the TFTP thread: note the transfer as an event of the node with that address."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(self._tftp_event(path, client[0], size))
            )

    async def _tftp_event(self, path: str, ip: str, size: int) -> None:
        try:
            async with self.db.read() as s:
                row = (
                    await s.execute(select(Node.id, Node.name).join(Nic.node).where(Nic.ip == ip))
                ).first()
            if row is not None:
                await self._stage(_Known(row[0], row[1], ip), "tftp", f"TFTP: sent {path}")
            log.info("tftp: sent %s (%d bytes) to %s", path, size, ip)
        except Exception:
            log.warning("tftp: recording the transfer to %s failed", ip, exc_info=True)

    async def _stage(self, known: _Known, stage: str, message: str) -> None:
        key = (known.node_id, stage + message)
        now = time.monotonic()
        if now - self._events.get(key, -1e9) < EVENT_EVERY:
            return
        self._events[key] = now
        if len(self._events) > 100_000:
            self._events.clear()
        async with self.db.write() as s:
            events.record(s, "pxe", message, node_id=known.node_id, data={"stage": stage})

    def bind_loop(self) -> None:
        self._loop = asyncio.get_running_loop()

    # ------------------------------------------------------------------ scripts

    async def script(self, mac: str, client: str | None) -> str:
        self.memory.forget(mac)  # the next boot of this MAC starts again from our loader
        async with self.db.write() as s:
            node = await s.scalar(select(Node).join(Nic.node).where(Nic.mac == mac))
            if node is None:
                return await self._unknown(s, mac, client)
            op = await s.scalar(
                select(Operation).where(
                    Operation.node_id == node.id, Operation.state.in_(ACTIVE_OPERATION_STATES)
                )
            )
            if op is not None and node.state in INSPECT_STATES and op.kind == Action.INSPECT:
                token = await self._mint(s, "inspect", mac, node.id, op.id)
                text = ipxe.netboot(self._ramdisk(node.name, mac, "inspect", token))
                what = "inspection ramdisk"
            elif op is not None and node.state in DEPLOY_STATES and op.kind in (
                Action.DEPLOY,
                Action.REBUILD,
            ):
                image = await self._image_of(s, op)
                if image is None:
                    text = ipxe.exit_script(f"{node.name}: deploy without an image")
                    what = "exit (no image)"
                else:
                    token = await self._mint(s, "deploy", mac, node.id, op.id)
                    text = ipxe.netboot(self._image_spec(node.name, mac, token, image))
                    what = f"image {image.name}"
            else:
                text = ipxe.local_disk(node.name, node.boot_mode)
                what = f"local disk (state {node.state})"
            events.record(
                s,
                "pxe",
                f"iPXE script: {what}",
                node_id=node.id,
                operation_id=op.id if op else None,
                data={"stage": "script", "client": client},
            )
            return text

    async def _unknown(self, s: AsyncSession, mac: str, client: str | None) -> str:
        if self.settings.pxe.unknown == "exit":
            return ipxe.exit_script(f"{mac} is not enrolled")
        row = await s.scalar(select(DiscoveredMac).where(DiscoveredMac.mac == mac))
        now = utcnow()
        if row is None:
            s.add(DiscoveredMac(mac=mac, first_seen=now, last_seen=now, boots=1,
                                client_address=client, facts={}))  # fmt: skip
            log.info("discovered %s (%s): recorded for enrollment", mac, client)
        else:
            row.last_seen = now
            row.boots += 1
            row.client_address = client or row.client_address
        token = await self._mint(s, "discover", mac, None, None)
        return ipxe.netboot(self._ramdisk(f"unknown {mac}", mac, "discover", token))

    def _asset_url(self, ref: str) -> str:
        if ref.startswith(("http://", "https://")):
            return ref
        return f"{self.base_url}/boot/assets/{ref.lstrip('/')}"

    def _ramdisk(self, node: str, mac: str, mode: str, token: str) -> ipxe.NetbootSpec:
        p = self.settings.pxe
        return ipxe.NetbootSpec(
            node=node,
            mac=mac,
            mode=mode,
            base_url=self.base_url,
            token=token,
            kernel_url=self._asset_url(p.inspect_kernel),
            initrd_url=self._asset_url(p.inspect_initrd) if p.inspect_initrd else None,
            cmdline=p.inspect_cmdline,
            label="inspection ramdisk",
        )

    def _image_spec(self, node: str, mac: str, token: str, image: Image) -> ipxe.NetbootSpec:
        return ipxe.NetbootSpec(
            node=node,
            mac=mac,
            mode="deploy",
            base_url=self.base_url,
            token=token,
            kernel_url=self._asset_url(image.kernel),
            initrd_url=self._asset_url(image.initrd) if image.initrd else None,
            cmdline=image.cmdline,
            label=f"image {image.name}",
            kernel_sha256=image.kernel_sha256,
            initrd_sha256=image.initrd_sha256,
        )

    @staticmethod
    async def _image_of(s: AsyncSession, op: Operation) -> Image | None:
        name = op.params.get("image")
        if not name:
            return None
        return await s.scalar(select(Image).where(Image.name == name))

    async def _mint(
        self, s: AsyncSession, purpose: str, mac: str, node_id: str | None, op_id: str | None
    ) -> str:
        """A fresh token; the earlier unused ones of this MAC and purpose stop working (only the
        latest boot of a node can report)."""
        await s.execute(
            delete(BootToken).where(
                BootToken.mac == mac, BootToken.purpose == purpose, BootToken.used_at.is_(None)
            )
        )
        token = secrets.token_urlsafe(32)
        now = utcnow()
        s.add(
            BootToken(
                token_hash=hash_token(token),
                purpose=purpose,
                mac=mac,
                node_id=node_id,
                operation_id=op_id,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.settings.pxe.token_ttl),
            )
        )
        return token

    # ------------------------------------------------------------------ call-backs

    async def _redeem(self, s: AsyncSession, token: str, purposes: tuple[str, ...]) -> BootToken:
        row = await s.scalar(
            select(BootToken).where(BootToken.token_hash == hash_token(token)).with_for_update()
        )
        now = utcnow()
        if row is None:
            raise TokenRefused("unknown token (superseded by a later boot, or never issued)")
        if row.used_at is not None:
            raise TokenRefused(f"token already used at {row.used_at.isoformat(timespec='seconds')}")
        if row.expires_at <= now:
            raise TokenRefused("token expired: the node booted too long ago; boot it again")
        if row.purpose not in purposes:
            raise TokenRefused(f"a {row.purpose} token cannot be used here")
        row.used_at = now
        return row

    async def inspected(self, token: str, report: Mapping[str, Any]) -> dict[str, Any]:
        """The inspection agent's report: facts, NICs and their switch ports, firmware. Stored
        in one transaction, then the waiting inspect operation is resumed."""
        async with self.db.write() as s:
            if await self._already_delivered(s, token, report):
                return {"node": None, "already_delivered": True}
            tok = await self._redeem(s, token, ("inspect", "discover"))
            if tok.purpose == "discover":
                found = await s.scalar(select(DiscoveredMac).where(DiscoveredMac.mac == tok.mac))
                if found is not None:
                    found.facts = dict(report)
                    found.reported_at = utcnow()
                return {"mac": tok.mac, "discovered": True}
            assert tok.node_id is not None
            node = await s.scalar(select(Node).where(Node.id == tok.node_id).with_for_update())
            if node is None:
                raise NotFound("the node of this token is gone")
            op = await s.get(Operation, tok.operation_id) if tok.operation_id else None
            if op is None or op.state not in ACTIVE_OPERATION_STATES:
                raise Conflict(
                    f"node {node.name}: the inspection this token was issued for is over "
                    f"(state {node.state}); the report is not stored",
                    state=node.state,
                )
            summary = await self._store_report(s, node, report)
            name = node.name
        await self.engine.resume(name, data={"inspection": summary})
        return {"node": name, **summary}

    async def _already_delivered(
        self, s: AsyncSession, token: str, report: Mapping[str, Any]
    ) -> bool:
        """The agent retries when an answer is lost; a copy of a report already stored with
        this token is acknowledged, not refused (the token is one-time, the report is not new)."""
        row = await s.scalar(select(BootToken).where(BootToken.token_hash == hash_token(token)))
        if row is None or row.used_at is None:
            return False
        if row.node_id is None:
            found = await s.scalar(select(DiscoveredMac).where(DiscoveredMac.mac == row.mac))
            return found is not None and found.facts == dict(report)
        node = await s.get(Node, row.node_id)
        stored = dict((node.facts if node else {}).get("inspection") or {})
        stored.pop("reported_at", None)
        return stored == dict(report)

    async def _store_report(
        self, s: AsyncSession, node: Node, report: Mapping[str, Any]
    ) -> dict[str, Any]:
        now = utcnow()
        node.facts = {**node.facts, "inspection": {**report, "reported_at": now.isoformat()}}
        nics = list((await s.scalars(select(Nic).where(Nic.node_id == node.id))).all())
        by_mac = {n.mac: n for n in nics if n.mac}
        by_guid = {n.guid: n for n in nics if n.guid}
        lldp = {
            str(item.get("interface")): item
            for item in report.get("lldp") or ()
            if isinstance(item, Mapping)
        }
        linked = added = 0
        for rn in report.get("nics") or ():
            if not isinstance(rn, Mapping) or not isinstance(rn.get("mac"), str):
                continue
            mac = rn["mac"].lower()
            nic = by_mac.get(mac)
            if nic is None:
                owner = await s.scalar(select(Node.name).join(Nic.node).where(Nic.mac == mac))
                if owner is not None:
                    events.record(s, "inspect", f"NIC {mac} is also enrolled on node {owner}; "
                                  "left there", node_id=node.id)  # fmt: skip
                    continue
                nic = Nic(node_id=node.id, kind="ethernet", mac=mac, pxe=False)
                s.add(nic)
                by_mac[mac] = nic
                added += 1
            peer = lldp.get(str(rn.get("name")))
            if peer:
                sw = peer.get("chassis_name") or peer.get("chassis_id")
                port = peer.get("port_id")
                if isinstance(sw, str) and isinstance(port, str) and sw and port:
                    sw, port = sw[:64], port[:64]
                    if (nic.switch_name, nic.switch_port) not in ((sw, port), (None, None)):
                        events.record(
                            s,
                            "inspect",
                            f"NIC {mac}: LLDP says {sw} {port}, the inventory said "
                            f"{nic.switch_name} {nic.switch_port}; now {sw} {port}",
                            node_id=node.id,
                            data={"mac": mac, "was": [nic.switch_name, nic.switch_port]},
                        )
                    nic.switch_name, nic.switch_port = sw, port
                    linked += 1
        for ib in report.get("infiniband") or ():
            if not isinstance(ib, Mapping) or ib.get("link_layer") not in (None, "InfiniBand"):
                continue  # a RoCE port's "GUID" is derived from its MAC: not an IB port
            guid = ib.get("port_guid")
            if not isinstance(guid, str) or guid in by_guid:
                continue
            if await s.scalar(select(Nic.id).where(Nic.guid == guid)) is not None:
                continue
            s.add(Nic(node_id=node.id, kind="infiniband", guid=guid, pxe=False))
            by_guid[guid] = None  # type: ignore[assignment]
            added += 1
        firmware = 0
        for fw in report.get("firmware") or ():
            if not isinstance(fw, Mapping):
                continue
            comp, ver, src = fw.get("component"), fw.get("version"), fw.get("source")
            if isinstance(comp, str) and isinstance(ver, str) and comp and ver:
                s.add(FirmwareReport(node_id=node.id, component=comp[:64], version=ver[:255],
                                     source=str(src or "agent")[:32], reported_at=now))  # fmt: skip
                firmware += 1
        summary = {"nics_added": added, "switch_links": linked, "firmware_reports": firmware}
        events.record(s, "inspect", "inspection report stored", node_id=node.id, data=summary)
        return summary

    async def deployed(self, token: str) -> dict[str, Any]:
        """The deployed image's call-back: the node is up in its image."""
        async with self.db.write() as s:
            tok = await self._redeem(s, token, ("deploy",))
            node = await s.scalar(select(Node).where(Node.id == tok.node_id))
            op = await s.get(Operation, tok.operation_id) if tok.operation_id else None
            if node is None or op is None or op.state not in ACTIVE_OPERATION_STATES:
                raise Conflict("the deployment this token was issued for is over")
            image = await self._image_of(s, op)
            if image is not None:
                await s.execute(update(Node).where(Node.id == node.id).values(image_id=image.id))
            name = node.name
        await self.engine.resume(name, data={"deployed": True})
        return {"node": name}
