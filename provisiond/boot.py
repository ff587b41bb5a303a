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
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from provisiond import events
from provisiond.config import Settings
from provisiond.db import Database
from provisiond.engine import Engine
from provisiond.errors import Conflict, FieldProblem, NotFound, Unauthorized, ValidationError
from provisiond.lifecycle import Action
from provisiond.models import (
    ACTIVE_OPERATION_STATES,
    BootToken,
    DiscoveredMac,
    Event,
    FirmwareReport,
    Image,
    Nic,
    Node,
    Operation,
    utcnow,
)
from provisiond.rackfile import normalise_guid, normalise_mac
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
# TFTP transfers waiting to be recorded as events; beyond it they are only logged
MAX_EVENT_TASKS = 256
# a TFTP request for a node's script waits this long for the database
TFTP_SCRIPT_TIMEOUT = 5.0
# stage events are written in one transaction this often; at most this many wait
FLUSH_EVERY = 0.5
MAX_QUEUED_EVENTS = 10_000
# unenrolled MACs recorded for discovery; beyond it unknown MACs get "exit" (a flood of invented
# MACs must not grow the database without end)
MAX_DISCOVERED = 10_000
# unused tokens kept per MAC (each script fetch makes one; the newest ones stay valid)
TOKENS_PER_MAC = 4


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
    loader: str | None = None


class BootService:
    def __init__(
        self, db: Database, settings: Settings, engine: Engine, memory: LoaderMemory
    ) -> None:
        self.db = db
        self.settings = settings
        self.engine = engine
        self.memory = memory
        self._macs: dict[str, _Known] = {}
        self._by_ip_table: dict[str, _Known] = {}
        self._macs_at = -math.inf
        self._refreshing: asyncio.Future[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self._queued: list[tuple[str, str, str]] = []  # (node id, stage, message)
        self._flusher: asyncio.Future[None] | None = None
        self._events: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return self.settings.boot_base_url

    # ------------------------------------------------------------------ DHCP and TFTP hooks

    async def _known(self, mac: str) -> _Known | None:
        """From the in-memory MAC table (every NIC with a MAC): a rack powering on sends
        thousands of DISCOVERs, which must not each cost a database query. The table is
        reloaded in the background when older than LOOKUP_TTL; only the first lookup waits."""
        now = time.monotonic()
        if now - self._macs_at >= LOOKUP_TTL:
            if self._macs_at == -math.inf:
                await self._refresh_macs()
            elif self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(self._refresh_macs())
        return self._macs.get(mac)

    async def _refresh_macs(self) -> None:
        async with self._refresh_lock:  # single flight
            if time.monotonic() - self._macs_at < LOOKUP_TTL:
                return
            try:
                async with self.db.read() as s:
                    rows = await s.execute(
                        select(Nic.mac, Node.id, Node.name, Nic.ip, Node.boot_loader)
                        .join(Nic.node)
                        .where(Nic.mac.is_not(None))
                    )
                    table = {str(r[0]): _Known(r[1], r[2], r[3], r[4]) for r in rows}
            except Exception:
                log.warning(
                    "boot: loading the MAC table failed; keeping the old one", exc_info=True
                )
                return
            self._macs = table
            self._by_ip_table = {k.ip: k for k in table.values() if k.ip}
            self._macs_at = time.monotonic()

    async def dhcp_lookup(self, mac: str) -> NodeBoot | None:
        known = await self._known(mac)
        if known is None:
            return None
        return NodeBoot(name=known.name, ip=known.ip, loader=known.loader)

    async def dhcp_answered(self, mac: str, what: str) -> None:
        known = await self._known(mac)
        if known is not None:
            await self._stage(known, "dhcp", f"DHCP: {what}")

    def tftp_sent(self, path: str, client: tuple[str, int], size: int) -> None:
        """From the TFTP thread: note the transfer as an event of the node with that address."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._spawn_tftp_event, path, client[0], size)

    def _spawn_tftp_event(self, path: str, ip: str, size: int) -> None:
        if len(self._tasks) >= MAX_EVENT_TASKS:  # a download loop must not flood the database
            return
        task = asyncio.ensure_future(self._tftp_event(path, ip, size))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tftp_event(self, path: str, ip: str, size: int) -> None:
        try:
            await self._known("")  # keeps the table (and its address index) fresh
            known = self._by_ip_table.get(ip)
            if known is not None:
                await self._stage(known, "tftp", f"TFTP: sent {path}")
            log.info("tftp: sent %s (%d bytes) to %s", path, size, ip)
        except Exception:
            log.warning("tftp: recording the transfer to %s failed", ip, exc_info=True)

    def tftp_file(self, path: str, client: tuple[str, int]) -> bytes | None:
        """From a TFTP resolver thread: per-node files generated on the fly. ``ipxe/<MAC>`` is
        the node's iPXE script (what GET /boot/ipxe answers), for sites whose DHCP server can
        only point iPXE at TFTP (``chain tftp://SERVER/ipxe/${net0/mac:hexhyp}``: dashes, since
        TFTP clients read a colon as HOST:FILE). Anything else falls through to the TFTP
        root."""
        head, _, tail = path.partition("/")
        loop = self._loop
        if head != "ipxe" or not tail or loop is None or loop.is_closed():
            return None
        mac = _mac(tail)
        if mac is None:
            return None
        future = asyncio.run_coroutine_threadsafe(self.script(mac, client[0]), loop)
        try:
            return future.result(timeout=TFTP_SCRIPT_TIMEOUT).encode()
        except Exception:
            future.cancel()
            log.warning("tftp: no script for %s within %gs", mac, TFTP_SCRIPT_TIMEOUT)
            return None

    def _due(self, node_id: str, what: str) -> bool:
        """Throttle: True at most once per node and stage every EVENT_EVERY seconds."""
        key = (node_id, what)
        now = time.monotonic()
        if now - self._events.get(key, -1e9) < EVENT_EVERY:
            return False
        self._events[key] = now
        if len(self._events) > 100_000:
            self._events.clear()
        return True

    async def _stage(self, known: _Known, stage: str, message: str) -> None:
        """Queue a stage event; they are written in batches (one transaction per FLUSH_EVERY),
        so a rack's worth of DHCP answers costs a few writes, not one per node."""
        if not self._due(known.node_id, stage + message):
            return
        if len(self._queued) >= MAX_QUEUED_EVENTS:
            return
        self._queued.append((known.node_id, stage, message))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_EVERY)
        await self.flush()

    async def flush(self) -> None:
        batch, self._queued = self._queued, []
        if not batch:
            return
        now = utcnow()
        rows = [
            {"ts": now, "node_id": node_id, "kind": "pxe", "message": message,
             "data": {"stage": stage}, "operation_id": None, "actor": None}
            for node_id, stage, message in batch
        ]  # fmt: skip
        try:
            async with self.db.write() as s:  # one multi-row INSERT, no ORM objects
                await s.execute(insert(cast(Table, Event.__table__)), rows)
        except Exception:
            log.warning("boot: writing %d stage events failed", len(batch), exc_info=True)

    async def close(self) -> None:
        """Write what is queued (at shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        await self.flush()

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
            reserved = await s.scalar(select(Nic.ip).where(Nic.mac == mac))
            if (
                self.settings.pxe.mode == "authoritative"
                and reserved
                and client is not None
                and client != reserved
            ):
                # we gave this MAC its address: a request from elsewhere is not that node
                log.warning("boot script for %s asked from %s, reserved %s", mac, client, reserved)
                if self._due(node.id, f"script-from {client}"):
                    events.record(
                        s,
                        "pxe",
                        f"iPXE script for {mac} asked from {client}, not from its reserved "
                        f"address {reserved}: refused",
                        node_id=node.id,
                        data={"stage": "script", "client": client},
                    )
                return ipxe.exit_script(f"{mac}: not from its reserved address")
            if op is not None and node.state in INSPECT_STATES and op.kind == Action.INSPECT:
                token = await self._mint(s, "inspect", mac, node.id, op.id, client)
                text = ipxe.netboot(self._ramdisk(node.name, mac, "inspect", token))
                what = "inspection ramdisk"
            elif (
                op is not None
                and node.state in DEPLOY_STATES
                and op.kind
                in (
                    Action.DEPLOY,
                    Action.REBUILD,
                )
            ):
                image = await self._image_of(s, op)
                if image is None:
                    text = ipxe.exit_script(f"{node.name}: deploy without an image")
                    what = "exit (no image)"
                else:
                    token = await self._mint(s, "deploy", mac, node.id, op.id, client)
                    text = ipxe.netboot(self._image_spec(node.name, mac, token, image))
                    what = f"image {image.name}"
            else:
                text = ipxe.local_disk(node.name, node.boot_mode)
                what = f"local disk (state {node.state})"
            if self._due(node.id, f"script {what}"):
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
        if (
            row is None
            and (await s.scalar(select(func.count()).select_from(DiscoveredMac)) or 0)
            >= MAX_DISCOVERED
        ):
            log.warning("discovery: %d MACs recorded already; %s gets exit", MAX_DISCOVERED, mac)
            return ipxe.exit_script(f"{mac} is not enrolled (discovery list is full)")
        if row is None:
            s.add(DiscoveredMac(mac=mac, first_seen=now, last_seen=now, boots=1,
                                client_address=client, facts={}))  # fmt: skip
            log.info("discovered %s (%s): recorded for enrollment", mac, client)
        else:
            row.last_seen = now
            row.boots += 1
            row.client_address = client or row.client_address
        token = await self._mint(s, "discover", mac, None, None, client)
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
        self,
        s: AsyncSession,
        purpose: str,
        mac: str,
        node_id: str | None,
        op_id: str | None,
        client: str | None,
    ) -> str:
        """A fresh token, bound to the address that fetched the script. Expired tokens go; of
        this MAC's unused ones only the newest TOKENS_PER_MAC stay valid (a host that keeps
        fetching the script cannot invalidate the real node's token at once)."""
        now = utcnow()
        await s.execute(delete(BootToken).where(BootToken.expires_at < now))
        stale = (
            await s.scalars(
                select(BootToken.id)
                .where(BootToken.mac == mac, BootToken.used_at.is_(None))
                .order_by(BootToken.id.desc())
                .offset(TOKENS_PER_MAC - 1)
            )
        ).all()
        if stale:
            await s.execute(delete(BootToken).where(BootToken.id.in_(stale)))
        token = secrets.token_urlsafe(32)
        s.add(
            BootToken(
                token_hash=hash_token(token),
                purpose=purpose,
                mac=mac,
                node_id=node_id,
                operation_id=op_id,
                client_address=client,
                created_at=now,
                expires_at=now + dt.timedelta(seconds=self.settings.pxe.token_ttl),
            )
        )
        return token

    # ------------------------------------------------------------------ call-backs

    async def _redeem(
        self,
        s: AsyncSession,
        token: str,
        purposes: tuple[str, ...],
        client: str | None,
        report: Mapping[str, Any] | None = None,
    ) -> BootToken | None:
        """The token, locked and marked used; None when it was used already for this same
        report (the agent retries when an answer is lost: acknowledged, not refused)."""
        row = await s.scalar(
            select(BootToken).where(BootToken.token_hash == hash_token(token)).with_for_update()
        )
        now = utcnow()
        if row is None:
            raise TokenRefused("unknown token (superseded by later boots, or never issued)")
        if row.purpose not in purposes:
            raise TokenRefused(f"a {row.purpose} token cannot be used here")
        if (
            self.settings.pxe.mode == "authoritative"
            and row.client_address
            and client is not None
            and client != row.client_address
        ):
            raise TokenRefused(
                f"token issued to {row.client_address}, presented by {client}; in authoritative "
                "mode a token is bound to the address that fetched the script"
            )
        if row.used_at is not None:
            if report is not None and await self._same_report(s, row, report):
                return None
            raise TokenRefused(f"token already used at {row.used_at.isoformat(timespec='seconds')}")
        if row.expires_at <= now:
            raise TokenRefused("token expired: the node booted too long ago; boot it again")
        row.used_at = now
        return row

    async def _same_report(
        self, s: AsyncSession, row: BootToken, report: Mapping[str, Any]
    ) -> bool:
        if row.node_id is None:
            found = await s.scalar(select(DiscoveredMac).where(DiscoveredMac.mac == row.mac))
            return found is not None and found.facts == dict(report)
        node = await s.get(Node, row.node_id)
        stored = dict((node.facts if node else {}).get("inspection") or {})
        stored.pop("reported_at", None)
        return stored == dict(report)

    async def inspected(
        self, token: str, report: Mapping[str, Any], client: str | None = None
    ) -> dict[str, Any]:
        """The inspection agent's report: facts, NICs and their switch ports, firmware, and the
        resume of the waiting inspect operation, all in one transaction."""
        async with self.db.write() as s:
            tok = await self._redeem(s, token, ("inspect", "discover"), client, report)
            if tok is None:
                return {"node": None, "already_delivered": True}
            macs = {_mac(n.get("mac")) for n in report.get("nics") or () if isinstance(n, Mapping)}
            if tok.mac not in macs:
                raise ValidationError(
                    "the report does not list the NIC the node booted from",
                    [FieldProblem("report.nics", f"no NIC with MAC {tok.mac}")],
                )
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
            await self.engine.resume_in(s, node, operation_id=op.id, data={"inspection": summary})
            name = node.name
        self.engine.wake()
        return {"node": name, **summary}

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
        linked = added = mismatches = 0
        for rn in report.get("nics") or ():
            mac = _mac(rn.get("mac")) if isinstance(rn, Mapping) else None
            if mac is None:
                continue
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
                    if (nic.switch_name, nic.switch_port) == (None, None):
                        nic.switch_name, nic.switch_port = sw, port
                        linked += 1
                    elif (nic.switch_name, nic.switch_port) != (sw, port):
                        # the inventory's port is what switch automation will configure: a
                        # report (which a host on the boot network could forge) never moves it
                        events.record(
                            s,
                            "inspect",
                            f"cabling: NIC {mac} is at {sw} {port} per LLDP, the inventory says "
                            f"{nic.switch_name} {nic.switch_port}; fix the cable or the rack file",
                            node_id=node.id,
                            data={"mac": mac, "lldp": [sw, port],
                                  "inventory": [nic.switch_name, nic.switch_port]},
                        )  # fmt: skip
                        mismatches += 1
        for ib in report.get("infiniband") or ():
            if not isinstance(ib, Mapping) or ib.get("link_layer") not in (None, "InfiniBand"):
                continue  # a RoCE port's "GUID" is derived from its MAC: not an IB port
            guid = _guid(ib.get("port_guid"))
            if guid is None or guid in by_guid:
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
        summary = {
            "nics_added": added,
            "switch_links": linked,
            "cabling_mismatches": mismatches,
            "firmware_reports": firmware,
        }
        events.record(s, "inspect", "inspection report stored", node_id=node.id, data=summary)
        return summary

    async def deployed(self, token: str, client: str | None = None) -> dict[str, Any]:
        """The deployed image's call-back: the node is up in its image."""
        async with self.db.write() as s:
            tok = await self._redeem(s, token, ("deploy",), client)
            assert tok is not None
            node = await s.scalar(select(Node).where(Node.id == tok.node_id).with_for_update())
            op = await s.get(Operation, tok.operation_id) if tok.operation_id else None
            if node is None or op is None or op.state not in ACTIVE_OPERATION_STATES:
                raise Conflict("the deployment this token was issued for is over")
            image = await self._image_of(s, op)
            if image is not None:
                await s.execute(update(Node).where(Node.id == node.id).values(image_id=image.id))
            await self.engine.resume_in(s, node, operation_id=op.id, data={"deployed": True})
            name = node.name
        self.engine.wake()
        return {"node": name}


def _mac(value: Any) -> str | None:
    try:
        return normalise_mac(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _guid(value: Any) -> str | None:
    try:
        return normalise_guid(value) if isinstance(value, str) else None
    except ValueError:
        return None
