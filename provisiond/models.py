"""The ORM: every table provisiond keeps, in one module.

Owns table shapes and constraints only. No business rules live here (lifecycle rules are in
lifecycle.py, enrollment rules in workflows/enroll.py); relationships are lazy="raise" so every
query states what it loads.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


str32 = Annotated[str, 32]
str64 = Annotated[str, 64]
str255 = Annotated[str, 255]
Timestamp = Annotated[dt.datetime, "ts"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        str32: String(32),
        str64: String(64),
        str255: String(255),
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JsonType,
    }


class Rack(Base):
    __tablename__ = "racks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    height: Mapped[int] = mapped_column(default=42)
    location: Mapped[str255 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    nodes: Mapped[list[Node]] = relationship(back_populates="rack", lazy="raise")


class Tenant(Base):
    """A tenant and its Ethernet VLAN (provisiond/tenants.py); its P_Keys are fabric
    partitions. ``deleting``: its networks are being released, the row goes once the switches
    and subnet managers confirm."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    vlan: Mapped[int | None]
    state: Mapped[str32] = mapped_column(default="active", server_default="active")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (
        UniqueConstraint("rack_id", "unit", name="uq_nodes_rack_unit"),
        Index("ix_nodes_state_name", "state", "name"),
        Index("ix_nodes_rack_name", "rack_id", "name"),
        Index("ix_nodes_tenant_name", "tenant_id", "name"),
        Index("ix_nodes_maintenance_name", "maintenance", "name"),
        Index("ix_nodes_bmc", "bmc_address", "bmc_port"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str64] = mapped_column(unique=True)
    rack_id: Mapped[int | None] = mapped_column(ForeignKey("racks.id", ondelete="RESTRICT"))
    unit: Mapped[int | None]
    unit_height: Mapped[int] = mapped_column(default=1)
    state: Mapped[str32] = mapped_column(default="enrolled")
    target_state: Mapped[str32 | None]
    maintenance: Mapped[bool] = mapped_column(default=False)
    maintenance_reason: Mapped[str | None] = mapped_column(Text)
    fault: Mapped[str64 | None]
    protected: Mapped[bool] = mapped_column(default=False)
    retired: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    power_state: Mapped[str32] = mapped_column(default="unknown")
    power_checked_at: Mapped[dt.datetime | None]
    # consecutive failures of the power reconciliation loop (provisiond.powersync)
    power_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    boot_mode: Mapped[str32] = mapped_column(default="uefi")
    # the node's own boot loader (a file in the TFTP root), or None: by client architecture
    boot_loader: Mapped[str64 | None]
    arch: Mapped[str32] = mapped_column(default="x86_64")
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"))
    # the allocation that holds the node (provisiond/allocations.py), None when free
    allocation_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("allocations.id", ondelete="SET NULL", use_alter=True)
    )
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bmc_driver: Mapped[str32]
    bmc_address: Mapped[str255]
    bmc_port: Mapped[int | None]
    # Redfish: which ComputerSystem behind the service (None: the only one)
    bmc_system_id: Mapped[str255 | None]
    bmc_username: Mapped[str255 | None]
    # Fernet token; never leaves the daemon (write-only in the API).
    bmc_password_enc: Mapped[str | None] = mapped_column(Text)
    # the image the node was last deployed with (stateless netboot)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"))
    state_entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    rack: Mapped[Rack | None] = relationship(back_populates="nodes", lazy="raise")
    tenant: Mapped[Tenant | None] = relationship(lazy="raise")
    nics: Mapped[list[Nic]] = relationship(
        back_populates="node",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="Nic.id",
    )


class Nic(Base):
    __tablename__ = "nics"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str32]  # ethernet | infiniband
    # lowercase colon form; unique across the inventory
    mac: Mapped[str | None] = mapped_column(String(17), unique=True)
    # InfiniBand port GUID, 0x + 16 lowercase hex digits; unique across the inventory
    guid: Mapped[str | None] = mapped_column(String(18), unique=True)
    pxe: Mapped[bool] = mapped_column(default=False)
    # Where the cable goes, from the rack file or LLDP; becomes a Switch FK with the switch issue.
    switch_name: Mapped[str64 | None]
    switch_port: Mapped[str64 | None]
    # authoritative DHCP reservation on the boot network (rack file "ip")
    ip: Mapped[str | None] = mapped_column(String(45), unique=True)

    node: Mapped[Node] = relationship(back_populates="nics", lazy="raise")


class Switch(Base):
    """An Ethernet switch provisiond may configure: how to reach it (credentials encrypted at
    rest), what it may touch (allow-lists) and its system VLANs; plus the reconciler's
    bookkeeping (provisiond/fabric.py)."""

    __tablename__ = "switches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    # a dialect (drivers/switch/dialects) or napalm_<platform>
    driver: Mapped[str32]
    address: Mapped[str255]
    port: Mapped[int | None]
    username: Mapped[str255 | None]
    # Fernet token; never leaves the daemon (write-only in the API)
    password_enc: Mapped[str | None] = mapped_column(Text)
    # "100-199,300": the VLANs provisiond may put on ports or create
    allowed_vlans: Mapped[str] = mapped_column(Text)
    # a regular expression the whole port name must match (None: any port of the dialect)
    allowed_ports: Mapped[str | None] = mapped_column(Text)
    provisioning_vlan: Mapped[int | None]
    quarantine_vlan: Mapped[int | None]
    # put ports changed by hand back as desired (else the drift check only reports them)
    repair_drift: Mapped[bool] = mapped_column(default=False)
    # VLANs last read from the switch (ids), so a pass creates only what is missing
    known_vlans: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # reconciler: one daemon works on a switch at a time (a lease, as for operations)
    lease_owner: Mapped[str255 | None]
    lease_expires_at: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_applied_at: Mapped[dt.datetime | None]
    last_drift_check_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PortBinding(Base):
    """One switch port provisiond manages: what it should be (desired), what provisiond last
    made it (applied) and what the switch last said it is (observed). ``desired_rev`` grows with
    every change of ``desired``; the port is pending while ``applied_rev`` is behind it.

    desired/applied/observed: {"mode": "access", "vlan": N} or {"mode": "trunk", "native_vlan":
    N | None, "allowed_vlans": [..]} (observed may also be {"mode": null} for a routed port)."""

    __tablename__ = "port_bindings"
    __table_args__ = (
        UniqueConstraint("switch_id", "port", name="uq_port_bindings_switch_port"),
        Index("ix_port_bindings_node_id", "node_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("switches.id", ondelete="CASCADE"))
    port: Mapped[str64]
    # who asked: "api" (PUT /v1/switches/../ports/..) or "node" (a node-level network binding)
    source: Mapped[str32] = mapped_column(default="api")
    node_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("nodes.id", ondelete="SET NULL")
    )
    # a system network the desired state follows (provisioning | quarantine), else None
    network: Mapped[str32 | None]
    desired: Mapped[dict[str, Any]] = mapped_column(default=dict)
    desired_rev: Mapped[int] = mapped_column(default=1)
    applied: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    applied_rev: Mapped[int] = mapped_column(default=0)
    applied_at: Mapped[dt.datetime | None]
    observed: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    observed_at: Mapped[dt.datetime | None]
    # pending | applied | quarantined | failed | drifted
    status: Mapped[str32] = mapped_column(default="pending")
    # the desired state failed (or the port's state is in doubt) and the move to quarantine is
    # not confirmed yet: the reconciler retries that move (with the switch's backoff) before
    # anything else on this port
    quarantine_owed: Mapped[bool] = mapped_column(default=False)
    # released: once the port reads back in quarantine the binding is deleted
    releasing: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Allocation(Base):
    """Nodes a tenant asked for (provisiond/allocations.py): reserved at once, deployed with
    ``image``, released through cleaning. ``active`` | ``releasing`` | ``released``."""

    __tablename__ = "allocations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="RESTRICT"))
    image: Mapped[str64]
    count: Mapped[int]
    constraints: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str32] = mapped_column(default="active")
    # {"nodes": [names]}: nodes released one by one while the allocation stays
    releasing_nodes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str64 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookSubscription(Base):
    """Where events go (provisiond/webhooks.py): a URL, a secret that signs each delivery, the
    event kinds wanted (``*`` suffix: a prefix), and how far the sender has looked."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(Text)
    secret_enc: Mapped[str] = mapped_column(Text)
    kinds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    # the newest event id already turned into deliveries
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str64 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event to one subscription: pending until the receiver answers 2xx, retried with
    backoff, ``failed`` after the last attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str64]
    status: Mapped[str32] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Fabric(Base):
    """An InfiniBand subnet whose partitions provisiond owns, through its subnet manager's driver
    (drivers/fabric: opensm | ufm), plus the partition reconciler's bookkeeping
    (provisiond/partitions.py). ``desired_rev`` grows with every change of a partition; the
    fabric is pending while ``applied_rev`` is behind it."""

    __tablename__ = "fabrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    driver: Mapped[str32]
    # the driver's settings; secrets (password, token) are Fernet tokens under "<key>_enc"
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pkey_min: Mapped[int] = mapped_column(default=0x0001)
    pkey_max: Mapped[int] = mapped_column(default=0x7FFE)
    port_key_limit: Mapped[int] = mapped_column(default=128)
    # put a hand-edited partition set back as desired (else the drift check only reports it)
    repair_drift: Mapped[bool] = mapped_column(default=True)
    desired_rev: Mapped[int] = mapped_column(default=0)
    applied_rev: Mapped[int] = mapped_column(default=0)
    # pending | applied | failed | drifted
    status: Mapped[str32] = mapped_column(default="applied")
    # {"0x0101": partition dict}: what provisiond last applied (confirmed by a read-back) and what
    # the subnet manager last said it holds
    applied: Mapped[dict[str, Any]] = mapped_column(default=dict)
    observed: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # what the last read-back found that the subnet manager would misread
    problems: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lease_owner: Mapped[str255 | None]
    lease_expires_at: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_applied_at: Mapped[dt.datetime | None]
    last_drift_check_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FabricPartition(Base):
    """One tenant partition of a fabric as provisiond wants it. A removed partition stays, as
    ``removing``, until a read-back shows the subnet manager no longer holds its key: until then
    the key is never given to anyone else."""

    __tablename__ = "fabric_partitions"
    __table_args__ = (
        UniqueConstraint("fabric_id", "pkey", name="uq_fabric_partitions_pkey"),
        UniqueConstraint("fabric_id", "name", name="uq_fabric_partitions_name"),
        UniqueConstraint("fabric_id", "tenant_id", name="uq_fabric_partitions_tenant"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fabric_id: Mapped[int] = mapped_column(ForeignKey("fabrics.id", ondelete="CASCADE"))
    pkey: Mapped[int]
    name: Mapped[str64]
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    ipoib: Mapped[bool] = mapped_column(default=False)
    mtu: Mapped[int | None]
    rate: Mapped[int | None]
    sl: Mapped[int | None]
    index0: Mapped[bool] = mapped_column(default=True)
    # {"0x0002c90300001003": "full" | "limited"}
    members: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # active | removing
    state: Mapped[str32] = mapped_column(default="active")
    # the fabric's desired_rev when this row last changed (a removal is confirmed only by a
    # pass that started after it)
    rev: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Image(Base):
    """A stateless netboot image: kernel, initrd and command line (docs/pxe.md#images).

    kernel and initrd are paths under the assets directory (served at /boot/assets/) or absolute
    http(s) URLs; their sha256 digests, when given, are checked when the image is registered
    (local files) and published in the iPXE script as comments."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    kernel: Mapped[str] = mapped_column(Text)
    initrd: Mapped[str | None] = mapped_column(Text)
    cmdline: Mapped[str] = mapped_column(Text, default="")
    kernel_sha256: Mapped[str64 | None]
    initrd_sha256: Mapped[str64 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BootToken(Base):
    """A one-time token put on a booting node's kernel command line; the agent (or the booted
    image's call-back) presents it once. Only its sha256 is kept."""

    __tablename__ = "boot_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str64] = mapped_column(unique=True)
    purpose: Mapped[str32]  # inspect | deploy | discover
    mac: Mapped[str] = mapped_column(String(17), index=True)
    node_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    operation_id: Mapped[str | None] = mapped_column(String(36))
    # who fetched the script (authoritative mode: only that address may present the token)
    client_address: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class DiscoveredMac(Base):
    """A MAC that asked us for a boot script without being enrolled: for an admin to enroll."""

    __tablename__ = "discovered"

    id: Mapped[int] = mapped_column(primary_key=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    boots: Mapped[int] = mapped_column(default=1)
    client_address: Mapped[str | None] = mapped_column(String(45))
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reported_at: Mapped[dt.datetime | None]


class FirmwareReport(Base):
    """A firmware version as a channel reported it, verbatim: the inspection agent (channel
    ``inband``; source dmi, ethtool, sysfs), a BMC driver (``ipmi``, ``redfish``) or an operator.
    ``component`` is the slot (``bios``, ``nic:0000:3b:00.0``); ``kind`` and ``identifiers`` say
    what it is (firmware_db matches on those, never on names); ``staged``: an image waiting for
    activation. Evaluated by provisiond/firmware.py against the active catalog."""

    __tablename__ = "firmware_reports"
    __table_args__ = (Index("ix_firmware_reports_node_component", "node_id", "component"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(String(36), ForeignKey("nodes.id", ondelete="CASCADE"))
    component: Mapped[str64]
    version: Mapped[str255]
    source: Mapped[str32]
    reported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str32 | None]
    identifiers: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    channel: Mapped[str32] = mapped_column(default="inband", server_default="inband")
    staged: Mapped[bool] = mapped_column(default=False, server_default=false())


class FirmwareCatalog(Base):
    """An imported firmware catalog (firmware_db/catalog.py format), kept verbatim; the newest
    active one is the one nodes are judged by."""

    __tablename__ = "firmware_catalogs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str255]
    sha256: Mapped[str64]
    text: Mapped[str] = mapped_column(Text)
    components: Mapped[int] = mapped_column(default=0)
    releases: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    imported_by: Mapped[str64 | None]
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


ACTIVE_OPERATION_STATES = ("pending", "running")


class Operation(Base):
    """A durable unit of work. Written before any side effect starts; see engine.py."""

    __tablename__ = "operations"
    __table_args__ = (
        # One active operation per node, enforced by the database itself so that two daemons (or
        # two requests) racing cannot both win.
        Index(
            "uq_operations_node_active",
            "node_id",
            unique=True,
            sqlite_where=text("state IN ('pending', 'running')"),
            postgresql_where=text("state IN ('pending', 'running')"),
        ),
        Index("ix_operations_state_not_before", "state", "not_before"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str32]
    node_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str32] = mapped_column(default="pending")
    step: Mapped[str64 | None]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=4)
    deadline: Mapped[dt.datetime | None]
    not_before: Mapped[dt.datetime | None]
    lease_owner: Mapped[str255 | None]
    lease_expires_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str64 | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """Append-only log of what happened; also the audit trail."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    ts: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    node_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("nodes.id", ondelete="SET NULL"), index=True
    )
    operation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    switch_id: Mapped[int | None] = mapped_column(
        ForeignKey("switches.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str64]
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str64 | None]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str64] = mapped_column(unique=True)
    role: Mapped[str32]
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # sha256 of the full token; tokens are 256-bit random, so a fast hash is enough
    token_hash: Mapped[str64] = mapped_column(unique=True)
    prefix: Mapped[str32]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    tenant: Mapped[Tenant | None] = relationship(lazy="raise")
