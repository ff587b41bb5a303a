"""Request and response schemas. Handlers validate with these and the OpenAPI document is
generated from these, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from provisiond.lifecycle import Action, State


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Body(_In):
    """JSON bodies are strict: 0 is not False, "1" is not 1."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# ------------------------------------------------------------------------ requests


class NodeListQuery(_In):
    state: State | None = None
    rack: str | None = None
    tenant: str | None = None
    maintenance: bool | None = None
    limit: int | None = Field(
        None,
        ge=1,
        description="page size; default api.page_size_default, at most api.page_size_max",
    )
    cursor: str | None = None


class OperationListQuery(_In):
    node: str | None = None
    state: Literal["pending", "running", "succeeded", "failed"] | None = None
    limit: int = Field(100, ge=1, le=1000)


class EventListQuery(_In):
    node: str | None = None
    kind: str | None = None
    after: int | None = Field(
        None, ge=0, le=2**63 - 1, description="return events with id greater than this"
    )
    limit: int = Field(200, ge=1, le=5000)
    newest: bool = Field(
        False,
        description="the newest `limit` events (still in ascending order) instead of the oldest",
    )


class NicListQuery(_In):
    mac: str | None = None
    guid: str | None = None
    node: str | None = None


class EnrollQuery(_In):
    dry_run: bool = False
    filename: str | None = Field(
        None,
        description="name of the uploaded file; its extension picks the format when the "
        "Content-Type does not",
    )


class ActionRequest(_Body):
    reason: str | None = Field(None, max_length=1000, description="maintenance reason")
    image: str | None = Field(None, max_length=64, description="deploy/rebuild: the image name")
    firmware_override: str | None = Field(
        None,
        min_length=3,
        max_length=1000,
        description="provide: an admin's reason to provide a node whose firmware verdict is "
        "blocked (recorded as a firmware.override event)",
    )


class NodePatch(_Body):
    protected: bool | None = None
    retired: bool | None = None
    boot_mode: Literal["uefi", "bios"] | None = None
    boot_loader: str | None = Field(
        None,
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63}|-)$",
        description="a boot loader in the TFTP root (e.g. snponly.efi); '-' for the default",
    )


# ------------------------------------------------------------------------ responses


class BmcOut(_Out):
    driver: str
    address: str
    port: int | None
    username: str | None
    system_id: str | None = Field(None, description="Redfish ComputerSystem id")
    password_set: bool = Field(description="passwords are write-only")


class NicOut(_Out):
    id: int
    kind: Literal["ethernet", "infiniband"]
    mac: str | None = None
    guid: str | None = None
    pxe: bool
    switch: str | None = None
    port: str | None = None


class NodeOut(_Out):
    id: str
    name: str
    rack: str | None
    unit: int | None
    state: State
    target_state: str | None
    maintenance: bool
    maintenance_reason: str | None
    fault: str | None
    protected: bool
    retired: bool
    last_error: str | None
    power_state: Literal["on", "off", "unknown"]
    power_failures: int | None = Field(
        None, description="consecutive failed power-sync reads; > 0 means power_state is stale"
    )
    tenant: str | None
    bmc: BmcOut
    nics: list[NicOut] = []
    allowed_actions: list[str] | None = None
    facts: dict[str, Any] | None = None


class NodePage(_Out):
    items: list[NodeOut]
    next_cursor: str | None = Field(description="pass as ?cursor= to get the next page")


class OperationOut(_Out):
    id: str
    kind: Action
    node: str | None
    node_id: str | None
    state: Literal["pending", "running", "succeeded", "failed"]
    step: str | None
    attempts: int
    error: str | None
    result: dict[str, Any]
    requested_by: str | None
    deadline: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class OperationList(_Out):
    items: list[OperationOut]


class EventOut(_Out):
    id: int
    ts: str
    kind: str
    node: str | None
    node_id: str | None
    operation_id: str | None
    actor: str | None
    message: str
    data: dict[str, Any]


class EventList(_Out):
    items: list[EventOut]


class RackOut(_Out):
    name: str
    height: int
    location: str | None
    nodes: int


class RackList(_Out):
    items: list[RackOut]


class RackDetail(RackOut):
    units: list[dict[str, Any]]


class NicList(_Out):
    items: list[dict[str, Any]]


class EnrollOut(_Out):
    rack: str
    changed: bool
    dry_run: bool
    summary: str
    rack_created: bool
    rack_updated: list[str]
    created: list[str]
    updated: list[dict[str, Any]]
    unchanged: list[str]
    not_in_file: list[str]


class WhoAmI(_Out):
    name: str
    role: str
    tenant: str | None


class Health(_Out):
    status: str
    checks: dict[str, str] | None = None


class ProblemField(_Out):
    field: str
    message: str
    line: int | None = None
    row: str | None = None
    value: Any = None


class Problem(_Out):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemField] | None = None


# ------------------------------------------------------------------------ network boot


class BootScriptQuery(_In):
    mac: str = Field(description="the booting NIC's MAC (iPXE: ${net0/mac})")


class AgentInspect(_Body):
    token: str = Field(min_length=16, max_length=200, description="one-time token from the "
                       "kernel command line (provisiond.token=)")  # fmt: skip
    report: dict[str, Any] = Field(description="the agent's report (docs/agent.md)")


class AgentDeployed(_Body):
    token: str = Field(min_length=16, max_length=200)


class AgentAnswer(_Out):
    node: str | None = None


class ImageIn(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    kernel: str = Field(min_length=1, max_length=2000, description="asset path or http(s) URL")
    initrd: str | None = Field(None, max_length=2000)
    cmdline: str = Field("", max_length=4000)
    kernel_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    initrd_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class ImageOut(_Out):
    name: str
    kernel: str
    initrd: str | None
    cmdline: str


class ImageList(_Out):
    items: list[ImageOut]


class DiscoveredList(_Out):
    items: list[dict[str, Any]]


# ------------------------------------------------------------------------ switches


class PortStateIn(_Body):
    """A port's desired state: access (``vlan``) or trunk (``native_vlan`` and/or
    ``allowed_vlans``, e.g. "100-110,120"; the native VLAN is always carried)."""

    mode: Literal["access", "trunk"]
    vlan: int | None = Field(None, ge=1, le=4094)
    native_vlan: int | None = Field(None, ge=1, le=4094)
    allowed_vlans: str | None = Field(None, min_length=1, max_length=4096)


class NodeNetworkIn(_Body):
    """Bind a node's cabled Ethernet ports: a system network (each switch's own VLAN for it) or
    one access VLAN."""

    network: Literal["provisioning", "quarantine"] | None = None
    vlan: int | None = Field(None, ge=1, le=4094)


class AllocationListQuery(_In):
    tenant: str | None = Field(None, description="only this tenant's allocations")
    all: bool = Field(False, description="released ones too (default: active and releasing)")


class ReleaseQuery(_In):
    leave: bool = Field(
        False, description="forget the port at once, left as it is on the switch (no quarantine)"
    )


class SwitchApplyQuery(_In):
    retry: bool = Field(
        False, description="also retry ports left quarantined, failed or drifted by earlier passes"
    )


class PortBindingOut(_Out):
    switch: str
    port: str
    source: Literal["api", "node"]
    node: str | None
    network: str | None
    desired: dict[str, Any]
    applied: dict[str, Any] | None
    observed: dict[str, Any] | None
    status: Literal["pending", "applied", "quarantined", "failed", "drifted"]
    in_sync: bool
    last_error: str | None


class SwitchOut(_Out):
    name: str
    driver: str
    address: str
    port: int | None
    username: str | None
    password_set: bool = Field(description="passwords are write-only")
    allowed_vlans: str
    allowed_ports: str | None
    provisioning_vlan: int | None
    quarantine_vlan: int | None
    repair_drift: bool
    ports: dict[str, int] = Field(description="managed ports by status")
    failures: int
    last_error: str | None
    bindings: list[PortBindingOut] | None = None


class SwitchList(_Out):
    items: list[SwitchOut]


class SwitchEnrollOut(_Out):
    name: str
    created: bool
    changes: list[str]
    switch: SwitchOut


class PassOut(_Out):
    switch: str
    applied: list[str]
    quarantined: dict[str, str]
    failed: dict[str, str]
    pending: list[str]
    vlans_created: list[int]
    sessions: int
    error: str | None
    diff: str | None
    skipped: str | None


class DriftOut(_Out):
    switch: str
    checked: int
    drifted: dict[str, dict[str, str]]
    repairing: bool
    cleared: list[str]
    error: str | None


class PlanOut(_Out):
    switch: str
    ports: list[dict[str, Any]]
    vlans_to_create: list[int]
    commands: list[str]
    problems: list[str]


class NodeNetworkOut(_Out):
    node: str
    ports: list[PortBindingOut]
    skipped: list[dict[str, Any]]


class CablingOut(_Out):
    switch: str
    cabling: list[dict[str, Any]] = Field(
        description="per port: neighbor, node, mac, recorded, status (match | moved | "
        "unrecorded | unknown | silent)"
    )
    counts: dict[str, int]


# ------------------------------------------------------------------------ fabrics (InfiniBand)


class FabricIn(_Body):
    name: str = Field(description="lowercase name, e.g. ib0")
    driver: str = Field(description="opensm | ufm")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="opensm: partitions_file, pid_file | reload_command, log_file, "
        "default_line, reload_timeout; ufm: url, auth (basic | token), username, password | "
        "token, timeout, verify_tls (docs/infiniband.md)",
    )
    pkey_range: str | list[str | int] | None = Field(
        None, description="tenant P_Keys this fabric allocates from: '0x0100-0x01ff'"
    )
    port_key_limit: int = Field(128, description="P_Key table entries per port")
    repair_drift: bool = True


class PartitionIn(_Body):
    name: str = Field(description="partition name (A-Z a-z 0-9 _ . -, 1-64)")
    members: dict[str, str] = Field(
        default_factory=dict, description="port GUID -> 'full' | 'limited'"
    )
    ipoib: bool = False
    mtu: int | None = Field(None, description="IBTA MTU code of the IPoIB group: 4=2048, 5=4096")
    rate: int | None = Field(None, description="IBTA rate code")
    sl: int | None = None
    index0: bool = Field(True, description="put the key at P_Key table index 0")
    tenant: str | None = Field(None, description="tenant owning the partition (one per fabric)")


class FabricOut(_Out):
    name: str
    driver: str
    settings: dict[str, Any]
    pkey_range: str
    port_key_limit: int
    repair_drift: bool
    status: Literal["pending", "applied", "failed", "drifted"]
    pending: bool
    last_error: str | None
    problems: list[str]


class FabricList(_Out):
    items: list[FabricOut]


class PartitionOut(_Out):
    name: str
    pkey: str
    members: dict[str, str]
    ipoib: bool
    index0: bool
    state: Literal["active", "removing"]
    tenant: str | None


class PartitionsView(_Out):
    fabric: str
    status: str
    pending: bool
    desired: list[PartitionOut]
    removing: list[str]
    applied: list[dict[str, Any]]
    observed: list[dict[str, Any]] | None
    problems: list[str]


class FabricPlanOut(_Out):
    fabric: str
    ok: bool
    diff: list[str]
    rendered: str | None
    requests: list[str]
    problems: list[dict[str, Any]]


class FabricPassOut(_Out):
    fabric: str
    applied: bool
    diff: list[str]
    error: str | None
    problems: list[str]
    skipped: str | None


class FabricDriftOut(_Out):
    fabric: str
    drift: list[str]
    problems: list[str]
    error: str | None


# ------------------------------------------------------------------------ firmware


class CatalogImportQuery(_In):
    filename: str | None = Field(None, description="the file's name, used in error messages")


class FirmwareReportQuery(_In):
    rack: str | None = None


class FirmwareReportIn(_Body):
    system_model: str | None = Field(
        None, description="the node's stable model id (SMBIOS SKU, Dell SystemID, HPE product id)"
    )
    components: list[dict[str, Any]] = Field(
        description="[{slot, kind, version, channel (ipmi|redfish|inband|operator), staged, "
        "ids: {system_model, pci_vendor, pci_device, pci_subvendor, pci_subdevice, psid, "
        "software_id}, reported_at}]"
    )


# ------------------------------------------------------------------------ scheduler hooks


class SlurmHookIn(_Body):
    nodes: str = Field(
        min_length=1,
        max_length=65536,
        description="a SLURM hostlist expression, e.g. node[01-16,20],gpu[1-4]",
    )


class SlurmHookOut(_Out):
    id: str = Field(description="this call's batch id (the event hook.slurm carries it)")
    action: Literal["power-on", "power-off"]
    nodes: int
    operations: dict[str, str] = Field(description="node -> the power operation started")
    skipped: dict[str, str] = Field(description="node -> why nothing was started")
    unknown: str = Field(description="the names no node has (a hostlist), empty when none")


# ------------------------------------------------------------------------ tenants


class TenantIn(_Body):
    name: str = Field(description="1-64 of a-z 0-9 _ -")
    vlan: int | None = Field(
        None, description="a VLAN id to use (default: the lowest free on every switch)"
    )


class TenantOut(_Out):
    name: str
    state: Literal["active", "deleting"]
    vlan: int | None
    pkeys: list[dict[str, Any]]
    nodes: int


class AllocationIn(_Body):
    count: int = Field(description="how many nodes")
    image: str = Field(description="the image each node is deployed with")
    constraints: dict[str, Any] = Field(
        default_factory=dict,
        description="racks [names], cpu_model (substring), min_memory_gib, min_gpus, "
        "infiniband (bool), spread (across racks, default true), firmware ('not-blocked', "
        "the default, or 'compliant')",
    )


class WebhookIn(_Body):
    url: str = Field(description="http(s) URL the deliveries are POSTed to")
    secret: str = Field(description="signs every delivery (HMAC-SHA256); write-only")
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description="event kinds: exact (audit.violation), prefix (allocation.*) or *",
    )
