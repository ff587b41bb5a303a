"""The `provisiond` command: the daemon (serve), local admin (db, token) and API clients
(rack, node, op). Client commands talk only to the API; local admin commands open the database
directly and are meant for the daemon's host."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from provisiond import __version__
from provisiond.client import ApiError, Client, Unreachable
from provisiond.config import Settings, load_settings
from provisiond.errors import ConfigError, ProvisionError
from provisiond.lifecycle import Action

# the dialects `provisiond lab switch` serves (provisiond.lab.switch.CLI_CLASSES; kept here so the
# CLI starts without importing asyncssh)
LAB_SWITCH_DIALECTS = (
    "arista_eos",
    "cisco_nxos",
    "comware",
    "cumulus_nvue",
    "dell_os10",
    "junos",
    "sonic",
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


# ------------------------------------------------------------------ settings and client


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    return load_settings(getattr(args, "config", None), overrides=overrides)


def _client(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get("PROVISIOND_URL")
    token = args.token or os.environ.get("PROVISIOND_TOKEN")
    if not url or not token:
        try:
            settings = load_settings(getattr(args, "config", None))
        except ConfigError:
            settings = None
        if settings is not None:
            url = url or settings.client.url or f"http://{settings.listen}"
            if not token and settings.client.token_file:
                try:
                    token = Path(settings.client.token_file).read_text().strip()
                except OSError as exc:
                    raise ConfigError(
                        f"client.token_file {settings.client.token_file}: {exc.strerror}"
                    ) from exc
    return Client(url or "http://127.0.0.1:8750", token)


# ------------------------------------------------------------------ output


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip()]
    lines += [fmt.format(*row).rstrip() for row in cells]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _flags(node: dict[str, Any]) -> str:
    out = []
    if node.get("maintenance"):
        out.append("maint")
    if node.get("protected"):
        out.append("protected")
    if node.get("retired"):
        out.append("retired")
    if node.get("fault"):
        out.append(f"fault:{node['fault']}")
    return ",".join(out)


# ------------------------------------------------------------------ commands: daemon & local


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from provisiond.api.app import create_app

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("provisiond")
    log.info(
        "provisiond %s: data dir %s, database %s, listening on %s",
        __version__,
        settings.data_dir,
        settings.db_url.split("@")[-1],
        settings.listen,
    )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda msg: log.info("%s", msg.strip()),
        access_log=None,
        shutdown_timeout=10,
    )
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from provisiond.db import Database

    settings = _settings(args)

    async def run() -> str | None:
        db = Database(settings.db_url)
        try:
            await db.upgrade()
            return await db.current_revision()
        finally:
            await db.close()

    rev = asyncio.run(run())
    print(f"database {settings.db_url.split('@')[-1]} is at revision {rev}")
    return EXIT_OK


def cmd_token_create(args: argparse.Namespace) -> int:
    from provisiond.auth import create_token
    from provisiond.db import Database

    settings = _settings(args)

    async def run() -> tuple[str, bool]:
        db = Database(settings.db_url)
        try:
            await db.upgrade()
            return await create_token(db, role=args.role, name=args.name, tenant=args.tenant)
        finally:
            await db.close()

    token, tenant_created = asyncio.run(run())
    if tenant_created:
        print(f"created tenant {args.tenant}", file=sys.stderr)
    print(token)
    return EXIT_OK


def _with_db(args: argparse.Namespace, fn: Callable[[Any], Any]) -> Any:
    from provisiond.db import Database

    settings = _settings(args)

    async def run() -> Any:
        db = Database(settings.db_url)
        try:
            await db.upgrade()
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(run())


def cmd_token_list(args: argparse.Namespace) -> int:
    from provisiond.auth import list_tokens

    rows = _with_db(args, list_tokens)
    print(
        _table(
            [
                (
                    r["name"],
                    r["role"],
                    r["tenant"],
                    r["prefix"] + "...",
                    r["created_at"],
                    r["last_used_at"] or "never",
                    "yes" if r["revoked"] else "",
                )
                for r in rows
            ],
            ("NAME", "ROLE", "TENANT", "TOKEN", "CREATED", "LAST USED", "REVOKED"),
        )
    )
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from provisiond.auth import revoke_token

    _with_db(args, lambda db: revoke_token(db, args.name))
    print(f"token {args.name} revoked")
    return EXIT_OK


# ------------------------------------------------------------------ commands: API clients


def cmd_rack_enroll(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    suffix = path.suffix.lower()
    ctype = {".json": "application/json", ".csv": "text/csv"}.get(suffix, "application/yaml")
    rack = args.rack
    if rack is None:
        rack = _rack_name_from_file(data, suffix) or path.stem
    _, result = _client(args).request(
        "POST",
        f"/v1/racks/{rack}/enroll",
        data=data,
        content_type=ctype,
        query={"dry_run": True} if args.dry_run else None,
    )
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(result["summary"])
    for name in result["created"]:
        print(f"  + {name}")
    for upd in result["updated"]:
        print(f"  ~ {upd['name']}: {', '.join(upd['changes'])}")
    if result["not_in_file"]:
        print(f"  kept (not in file): {', '.join(result['not_in_file'])}")
    return EXIT_OK


def _rack_name_from_file(data: bytes, suffix: str) -> str | None:
    import csv
    import io

    import yaml

    try:
        text = data.decode("utf-8-sig")
        if suffix == ".csv":
            for row in csv.DictReader(io.StringIO(text)):
                return (row.get("rack") or "").strip() or None
            return None
        doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, csv.Error, RecursionError):
        return None  # the server will say exactly what is wrong
    rack = doc.get("rack") if isinstance(doc, dict) else None
    return rack if isinstance(rack, str) else None


def cmd_rack_list(args: argparse.Namespace) -> int:
    items = _client(args).get("/v1/racks")["items"]
    if args.json:
        _print_json(items)
    else:
        rows = [(r["name"], r["height"], r["nodes"], r["location"]) for r in items]
        print(_table(rows, ("RACK", "UNITS", "NODES", "LOCATION")))
    return EXIT_OK


def cmd_node_list(args: argparse.Namespace) -> int:
    client = _client(args)
    query: dict[str, Any] = {
        "state": args.state,
        "rack": args.rack,
        "tenant": args.tenant,
        "maintenance": args.maintenance,
        "limit": args.limit,
    }
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100000):  # pages; bounded by the inventory size
        page = client.get("/v1/nodes", **{**query, "cursor": cursor})
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor or not args.all:
            break
    if args.json:
        _print_json(items)
        return EXIT_OK
    rows = [
        (
            n["name"],
            n["rack"],
            n["unit"],
            n["state"],
            n["power_state"],
            _bmc_label(n["bmc"]),
            ",".join(nic.get("mac") or nic.get("guid") for nic in n["nics"]),
            _flags(n),
        )
        for n in items
    ]
    print(_table(rows, ("NODE", "RACK", "U", "STATE", "POWER", "BMC", "NICS", "FLAGS")))
    if cursor and not args.all:
        print(f"(more: --all, or --limit; next cursor {cursor})", file=sys.stderr)
    return EXIT_OK


def _bmc_label(bmc: dict[str, Any]) -> str:
    """ipmi://10.0.0.5:623, or redfish+https://bmc.example/System.Embedded.1"""
    address = bmc["address"]
    port = f":{bmc['port']}" if bmc.get("port") else ""
    system = f"/{bmc['system_id']}" if bmc.get("system_id") else ""
    if "://" in address:
        return f"{bmc['driver']}+{address}{system}"
    return f"{bmc['driver']}://{address}{port}{system}"


def _facts_lines(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The BMC's and the system's identity, one line each, when verify recorded them."""
    out = []
    b = facts.get("bmc") or {}
    if b:
        out.append(("bmc identity", f"{b.get('manufacturer')} {b.get('product')} "
                    f"firmware {b.get('firmware')}"))  # fmt: skip
    sysf = facts.get("system") or {}
    if sysf:
        out.append(("system", " ".join(
            str(sysf[k]) for k in ("manufacturer", "product", "serial") if sysf.get(k)
        )))  # fmt: skip
    return out


def cmd_node_show(args: argparse.Namespace) -> int:
    node = _client(args).get(f"/v1/nodes/{args.node}")
    if args.json:
        _print_json(node)
        return EXIT_OK
    bmc = node["bmc"]
    lines = [
        ("name", node["name"]),
        ("id", node["id"]),
        ("rack / unit", f"{node['rack']} / U{node['unit']}"),
        ("state", node["state"] + (f" -> {node['target_state']}" if node["target_state"] else "")),
        (
            "power",
            f"{node['power_state']} (checked {node['power_checked_at'] or 'never'}"
            + (
                f"; last {node['power_failures']} read(s) failed: stale"
                if node.get("power_failures")
                else ""
            )
            + ")",
        ),
        ("flags", _flags(node) or "-"),
        ("maintenance reason", node["maintenance_reason"] or "-"),
        ("last error", node["last_error"] or "-"),
        ("tenant", node["tenant"] or "-"),
        (
            "bmc",
            f"{_bmc_label(bmc)} user {bmc['username']}"
            f" (password {'set' if bmc['password_set'] else 'not set'})",
        ),
        *_facts_lines(node.get("facts") or {}),
        ("boot", f"{node['boot_mode']} {node['arch']}"),
        ("allowed actions", ", ".join(node["allowed_actions"])),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    print("nics:")
    for nic in node["nics"]:
        where = f" -> {nic['switch']} {nic['port']}" if nic.get("switch") else ""
        pxe = " pxe" if nic["pxe"] else ""
        print(f"  {nic['kind']:<10} {nic.get('mac') or nic.get('guid')}{pxe}{where}")
    return EXIT_OK


def cmd_node_set(args: argparse.Namespace) -> int:
    body = {
        k: v
        for k, v in (
            ("protected", args.protected),
            ("retired", args.retired),
            ("boot_mode", args.boot_mode),
            ("boot_loader", args.boot_loader),
        )
        if v is not None
    }
    if not body:
        print(
            "error: nothing to set (--protected, --retired, --boot-mode, --boot-loader)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    _, node = _client(args).request("PATCH", f"/v1/nodes/{args.node}", json_body=body)
    if args.json:
        _print_json(node)
    else:
        print(f"{node['name']}: " + ", ".join(f"{k}={node[k]}" for k in body))
    return EXIT_OK


def cmd_node_events(args: argparse.Namespace) -> int:
    items = _client(args).get(f"/v1/nodes/{args.node}/events", limit=args.limit, newest=True)[
        "items"
    ]
    if args.json:
        _print_json(items)
    else:
        print(
            _table(
                [(e["ts"], e["kind"], e["actor"], e["message"]) for e in items],
                ("TIME", "KIND", "ACTOR", "MESSAGE"),
            )
        )
    return EXIT_OK


def cmd_image_add(args: argparse.Namespace) -> int:
    body = {
        k: v
        for k, v in {
            "name": args.name,
            "kernel": args.kernel,
            "initrd": args.initrd,
            "cmdline": args.cmdline,
            "kernel_sha256": args.kernel_sha256,
            "initrd_sha256": args.initrd_sha256,
        }.items()
        if v is not None
    }
    out = _client(args).post("/v1/images", body)
    if args.json:
        _print_json(out)
    else:
        print(f"image {out['name']} registered")
    return EXIT_OK


def cmd_image_list(args: argparse.Namespace) -> int:
    items = _client(args).get("/v1/images")["items"]
    if args.json:
        _print_json(items)
    else:
        rows = [(i["name"], i["kernel"], i["initrd"] or "-", i["cmdline"]) for i in items]
        print(_table(rows, ("NAME", "KERNEL", "INITRD", "CMDLINE")))
    return EXIT_OK


def cmd_discovered(args: argparse.Namespace) -> int:
    items = _client(args).get("/v1/discovered")["items"]
    if args.json:
        _print_json(items)
    else:
        rows = [
            (i["mac"], i["last_seen"], str(i["boots"]), i["client_address"] or "-",
             "yes" if i["reported"] else "no")
            for i in items
        ]  # fmt: skip
        print(_table(rows, ("MAC", "LAST SEEN", "BOOTS", "ADDRESS", "REPORTED")))
    return EXIT_OK


def cmd_node_action(args: argparse.Namespace) -> int:
    client = _client(args)
    body: dict[str, Any] = {"reason": args.reason} if getattr(args, "reason", None) else {}
    if getattr(args, "image", None):
        body["image"] = args.image
    if getattr(args, "firmware_override", None):
        body["firmware_override"] = args.firmware_override
    ops: list[dict[str, Any]] = []
    failures = 0
    for node in args.nodes:
        try:
            op = client.post(f"/v1/nodes/{node}/actions/{args.action}", body)
        except ApiError as exc:
            failures += 1
            print(f"{node}: {exc.describe()}", file=sys.stderr)
            continue
        ops.append(op)
        if not args.wait and not args.json:
            print(f"{node}: operation {op['id']} {op['state']}")
    if args.wait and ops:
        ops = final = _wait(client, [o["id"] for o in ops], args.timeout)
        if args.json:
            _print_json(final)
            return EXIT_ERROR if failures or any(o["state"] != "succeeded" for o in final) else 0
        for op in final:
            err = f": {op['error']}" if op.get("error") else ""
            print(f"{op['node']}: {op['kind']} {op['state']}{err}")
        failures += sum(1 for o in final if o["state"] != "succeeded")
    elif args.json:
        _print_json(ops)
    return EXIT_ERROR if failures else EXIT_OK


def _progress(done: int, total: int, failed: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} done, {failed} failed"
    )
    sys.stderr.flush()


def _wait(client: Client, op_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    latest: dict[str, dict[str, Any]] = {}
    pending = list(op_ids)
    delay = 0.2
    while pending:
        for op_id in list(pending):
            op = client.get(f"/v1/operations/{op_id}")
            latest[op_id] = op
            if op["state"] in ("succeeded", "failed"):
                pending.remove(op_id)
        done = len(op_ids) - len(pending)
        _progress(done, len(op_ids), sum(1 for o in latest.values() if o["state"] == "failed"))
        if not pending:
            break
        if time.monotonic() > deadline:
            if sys.stderr.isatty():
                sys.stderr.write("\n")
            names = ", ".join(latest[i].get("node") or i for i in pending)
            raise TimeoutError(f"still running after {timeout:g}s: {names}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return [latest[i] for i in op_ids]


def cmd_op_show(args: argparse.Namespace) -> int:
    op = _client(args).get(f"/v1/operations/{args.op}")
    _print_json(op) if args.json else _print_op(op)
    return EXIT_OK


def _print_op(op: dict[str, Any]) -> None:
    for k in (
        "id",
        "kind",
        "node",
        "state",
        "step",
        "attempts",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "deadline",
    ):
        print(f"{k:<12} {op.get(k) if op.get(k) is not None else '-'}")


def cmd_op_wait(args: argparse.Namespace) -> int:
    final = _wait(_client(args), args.ops, args.timeout)
    if args.json:
        _print_json(final)
        return EXIT_OK if all(o["state"] == "succeeded" for o in final) else EXIT_ERROR
    for op in final:
        err = f": {op['error']}" if op.get("error") else ""
        print(f"{op['id']} {op['node'] or '-'} {op['kind']} {op['state']}{err}")
    return EXIT_OK if all(o["state"] == "succeeded" for o in final) else EXIT_ERROR


# ------------------------------------------------------------------ commands: switches


def _ports_summary(counts: dict[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def cmd_switch_list(args: argparse.Namespace) -> int:
    items = _client(args).get("/v1/switches")["items"]
    if args.json:
        _print_json(items)
        return EXIT_OK
    rows = [
        (
            sw["name"],
            sw["driver"],
            f"{sw['address']}:{sw['port'] or 'default'}",
            sw["allowed_vlans"],
            sw["provisioning_vlan"] or "-",
            sw["quarantine_vlan"],
            _ports_summary(sw["ports"]),
            sw["last_error"] or "",
        )
        for sw in items
    ]
    print(_table(rows, ("SWITCH", "DRIVER", "ADDRESS", "VLANS", "PROV", "QUAR", "PORTS", "ERROR")))
    return EXIT_OK


def _describe_state(state: dict[str, Any] | None) -> str:
    if not state:
        return "-"
    if state.get("missing"):
        return "missing"
    if state.get("mode") == "access":
        return f"access {state.get('vlan')}"
    if state.get("mode") == "trunk":
        allowed = ",".join(str(v) for v in state.get("allowed_vlans") or []) or "none"
        return f"trunk {state.get('native_vlan') or '-'}/{allowed}"
    return "routed"


def cmd_switch_show(args: argparse.Namespace) -> int:
    sw = _client(args).get(f"/v1/switches/{_seg(args.switch)}")
    if args.json:
        _print_json(sw)
        return EXIT_OK
    print(f"{sw['name']}: {sw['driver']} at {sw['address']}:{sw['port'] or 'default'}")
    print(f"  allowed VLANs {sw['allowed_vlans']}, ports {sw['allowed_ports'] or 'any'}")
    print(
        f"  provisioning VLAN {sw['provisioning_vlan'] or '-'}, quarantine VLAN "
        f"{sw['quarantine_vlan']}, drift {'repaired' if sw['repair_drift'] else 'reported'}"
    )
    if sw["last_error"]:
        print(f"  last error ({sw['failures']} failure(s)): {sw['last_error']}")
    rows = [
        (
            b["port"],
            b["node"] or b["source"],
            _describe_state(b["desired"]),
            _describe_state(b["observed"]),
            b["status"] if b["in_sync"] or b["status"] != "applied" else "pending",
            b["last_error"] or "",
        )
        for b in sw["bindings"]
    ]
    if rows:
        print(_table(rows, ("PORT", "FOR", "DESIRED", "OBSERVED", "STATUS", "ERROR")))
    return EXIT_OK


def cmd_switch_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "driver": args.driver,
        "address": args.address,
        "allowed_vlans": args.allowed_vlans,
        "quarantine_vlan": args.quarantine_vlan,
    }
    for key in ("port", "username", "allowed_ports", "provisioning_vlan"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.repair_drift:
        body["repair_drift"] = True
    if args.password_file:
        body["password"] = Path(args.password_file).read_text().strip()
    elif os.environ.get("PROVISIOND_SWITCH_PASSWORD"):
        body["password"] = os.environ["PROVISIOND_SWITCH_PASSWORD"]
    _, out = _client(args).request("POST", "/v1/switches", json_body=body)
    if args.json:
        _print_json(out)
    elif out["created"]:
        print(f"switch {out['name']} enrolled")
    else:
        print(f"switch {out['name']}: " + (", ".join(out["changes"]) or "nothing") + " changed")
    return EXIT_OK


def cmd_switch_port(args: argparse.Namespace) -> int:
    if (args.access is None) == (args.native is None and args.allowed is None):
        print("error: give --access VLAN, or --native/--allowed for a trunk", file=sys.stderr)
        return EXIT_USAGE
    body: dict[str, Any] = (
        {"mode": "access", "vlan": args.access}
        if args.access is not None
        else {"mode": "trunk", "native_vlan": args.native, "allowed_vlans": args.allowed}
    )
    _, out = _client(args).request(
        "PUT", f"/v1/switches/{_seg(args.switch)}/ports/{_seg(args.port)}", json_body=body
    )
    if args.json:
        _print_json(out)
    else:
        print(f"{out['switch']} {out['port']}: desired {_describe_state(out['desired'])} "
              f"({'in sync' if out['in_sync'] else 'pending'})")  # fmt: skip
    return EXIT_OK


def _seg(name: str) -> str:
    """One path segment: port names carry "/" (Ethernet1/1, ge-0/0/1)."""
    return urllib.parse.quote(name, safe="")


def cmd_switch_release(args: argparse.Namespace) -> int:
    _, out = _client(args).request(
        "DELETE",
        f"/v1/switches/{_seg(args.switch)}/ports/{_seg(args.port)}",
        query={"leave": args.leave},
    )
    if args.json:
        _print_json(out)
    elif args.leave:
        print(f"{args.switch} {args.port}: no longer managed (left as it is)")
    else:
        print(f"{args.switch} {args.port}: released: to quarantine, then no longer managed")
    return EXIT_OK


def cmd_switch_plan(args: argparse.Namespace) -> int:
    plan = _client(args).get(f"/v1/switches/{_seg(args.switch)}/plan")
    if args.json:
        _print_json(plan)
        return EXIT_OK
    if not plan["ports"]:
        print(f"{plan['switch']}: nothing pending")
        return EXIT_OK
    rows = [(p["port"], p["from"], p["to"], p["status"]) for p in plan["ports"]]
    print(_table(rows, ("PORT", "FROM", "TO", "STATUS")))
    if plan["vlans_to_create"]:
        print("VLANs to create: " + ", ".join(str(v) for v in plan["vlans_to_create"]))
    for problem in plan["problems"]:
        print(f"problem: {problem}")
    print("commands:")
    for c in plan["commands"]:
        print(f"  {c}")
    return EXIT_OK


def cmd_switch_apply(args: argparse.Namespace) -> int:
    client = dataclasses.replace(_client(args), timeout=args.timeout)
    res = client.post(f"/v1/switches/{_seg(args.switch)}/apply", retry=args.retry)
    if args.json:
        _print_json(res)
    elif res["skipped"]:
        print(f"{res['switch']}: {res['skipped']}")
    else:
        print(
            f"{res['switch']}: {len(res['applied'])} applied, {len(res['quarantined'])} "
            f"quarantined, {len(res['failed'])} failed, {len(res['pending'])} still pending "
            f"({res['sessions']} session(s))"
        )
        for port, why in sorted({**res["quarantined"], **res["failed"]}.items()):
            print(f"  {port}: {why}")
        if res["error"]:
            print(f"  error: {res['error']}")
        if res["diff"]:
            print(res["diff"])
    ok = not (res["failed"] or res["quarantined"] or res["error"])
    return EXIT_OK if ok else EXIT_ERROR


def cmd_switch_drift(args: argparse.Namespace) -> int:
    client = dataclasses.replace(_client(args), timeout=args.timeout)
    res = client.post(f"/v1/switches/{_seg(args.switch)}/drift")
    if args.json:
        _print_json(res)
    elif res["error"]:
        print(f"{res['switch']}: drift check failed: {res['error']}")
    else:
        print(f"{res['switch']}: {res['checked']} port(s) checked, {len(res['drifted'])} drifted"
              + (" (repairing)" if res["repairing"] and res["drifted"] else ""))  # fmt: skip
        for port, d in sorted(res["drifted"].items()):
            print(f"  {port}: {d['observed']} (expected {d['expected']})")
    return EXIT_OK if not (res["drifted"] or res["error"]) else EXIT_ERROR


def cmd_switch_lldp(args: argparse.Namespace) -> int:
    client = dataclasses.replace(_client(args), timeout=args.timeout)
    res = client.get(f"/v1/switches/{_seg(args.switch)}/lldp")
    if args.json:
        _print_json(res)
        return EXIT_OK
    rows = []
    for r in res["cabling"]:
        n = r["neighbor"] or {}
        heard = " ".join(x for x in (n.get("system_name"), n.get("port_id")) if x) or "-"
        rows.append((r["port"], heard, r["node"] or "-", r["recorded"] or "-", r["status"]))
    print(_table(rows, ("PORT", "HEARS", "NODE", "INVENTORY", "STATUS")))
    print(", ".join(f"{k}: {v}" for k, v in sorted(res["counts"].items())) or "no neighbours")
    bad = res["counts"].get("moved", 0)
    return EXIT_ERROR if bad else EXIT_OK


def cmd_node_network(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"network": args.network} if args.network else {"vlan": args.vlan}
    _, out = _client(args).request("PUT", f"/v1/nodes/{args.node}/network", json_body=body)
    if args.json:
        _print_json(out)
        return EXIT_OK
    for b in out["ports"]:
        print(f"{out['node']}: {b['switch']} {b['port']} -> {_describe_state(b['desired'])}")
    for sk in out["skipped"]:
        print(f"{out['node']}: NIC {sk['mac']} skipped: {sk['reason']}")
    return EXIT_OK


def cmd_lab_bmc(args: argparse.Namespace) -> int:
    from provisiond.lab.bmc import run as run_lab_bmc

    return run_lab_bmc(
        count=args.count,
        base_port=args.base_port,
        address=args.address,
        username=args.username,
        password=args.password,
        control=Path(args.control) if args.control else None,
        faults=list(args.fault or ()),
        racks=[Path(r) for r in args.rack or ()],
        boot_url=args.boot_url or "",
        post_delay=args.post_delay,
    )


def cmd_lab_redfish(args: argparse.Namespace) -> int:
    from provisiond.lab.redfish import run as run_lab_redfish

    return run_lab_redfish(
        port=args.port,
        systems=[s.strip() for s in args.systems.split(",")],
        username=args.username,
        password=args.password,
        state=args.state,
    )


def cmd_lab_ufm(args: argparse.Namespace) -> int:
    from provisiond.lab.ufm import run as run_lab_ufm

    return run_lab_ufm(
        args.port,
        username=args.user,
        password=args.password,
        token=args.token,
        control=Path(args.control) if args.control else None,
        faults=list(args.fault or ()),
        delay=args.delay,
    )


def cmd_lab_switch(args: argparse.Namespace) -> int:
    from provisiond.lab.switch import run as run_lab_switch

    return run_lab_switch(
        dialect=args.dialect,
        port=args.port,
        username=args.username,
        password=args.password,
        ports=args.ports,
        control=Path(args.control) if args.control else None,
        faults=list(args.fault or ()),
        count=args.count,
        lldp=Path(args.lldp) if args.lldp else None,
        eapi_port=args.eapi_port,
    )


def cmd_lab_demo(args: argparse.Namespace) -> int:
    from provisiond.lab.demo import run_demo

    return run_demo(
        oneshot=args.oneshot or os.environ.get("DEMO_ONESHOT") == "1",
        data_dir=Path(args.data_dir),
        port=args.port,
    )


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provisiond", description="Bare-metal provisioning daemon")
    p.add_argument("--version", action="version", version=f"provisiond {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def local(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="TOML config file (default: see operator guide)")
        sp.add_argument("--data-dir", help="data directory (database, key file)")

    def remote(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--url", help="API URL (env PROVISIOND_URL)")
        sp.add_argument("--token", help="API token (env PROVISIOND_TOKEN)")
        sp.add_argument("--config", help=argparse.SUPPRESS)
        sp.add_argument("--json", action="store_true", help="print JSON")

    def cmd(
        parent: Any,
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_: str,
        kind: Callable[[argparse.ArgumentParser], None],
    ) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help_)
        kind(sp)
        sp.set_defaults(fn=fn)
        return sp

    serve = cmd(sub, "serve", cmd_serve, "run the daemon", local)
    serve.add_argument("--listen", help="HOST:PORT for the API (default 127.0.0.1:8750)")

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="sub", required=True)
    cmd(db, "upgrade", cmd_db_upgrade, "apply migrations", local)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="sub", required=True)
    tc = cmd(token, "create", cmd_token_create, "create a token and print it once", local)
    tc.add_argument("--role", required=True, choices=["admin", "operator", "tenant", "scheduler"])
    tc.add_argument("--name", required=True)
    tc.add_argument("--tenant", help="tenant name (role tenant only)")
    cmd(token, "list", cmd_token_list, "list tokens (never their secrets)", local)
    tr = cmd(token, "revoke", cmd_token_revoke, "revoke a token by name", local)
    tr.add_argument("name")

    rack = sub.add_parser("rack", help="racks").add_subparsers(dest="sub", required=True)
    re_ = cmd(rack, "enroll", cmd_rack_enroll, "enroll a rack file (YAML, JSON or CSV)", remote)
    re_.add_argument("file")
    re_.add_argument("--rack", help="rack name (default: from the file)")
    re_.add_argument("--dry-run", action="store_true", help="validate and show what would change")
    cmd(rack, "list", cmd_rack_list, "list racks", remote)

    node = sub.add_parser("node", help="nodes").add_subparsers(dest="sub", required=True)
    nl = cmd(node, "list", cmd_node_list, "list nodes", remote)
    nl.add_argument("--state")
    nl.add_argument("--rack")
    nl.add_argument("--tenant")
    nl.add_argument("--maintenance", choices=["true", "false"])
    nl.add_argument("--limit", type=int, help="page size (default: the server's)")
    nl.add_argument("--all", action="store_true", help="follow pages to the end")
    ns = cmd(node, "show", cmd_node_show, "show a node", remote)
    ns.add_argument("node")
    ne = cmd(node, "events", cmd_node_events, "a node's history (newest last)", remote)
    ne.add_argument("node")
    ne.add_argument("--limit", type=int, default=50, help="how many of the newest events")
    nset = cmd(node, "set", cmd_node_set, "set protected / retired / boot mode", remote)
    nset.add_argument("node")
    flag = {"true": True, "false": False}
    nset.add_argument("--protected", type=lambda v: flag[v.lower()], metavar="true|false")
    nset.add_argument("--retired", type=lambda v: flag[v.lower()], metavar="true|false")
    nset.add_argument("--boot-mode", choices=["uefi", "bios"])
    nset.add_argument(
        "--boot-loader", help="its own boot loader in the TFTP root (snponly.efi); '-' resets"
    )
    for action in Action:
        sp = cmd(node, action.value, cmd_node_action, f"{action.value} one or more nodes", remote)
        sp.add_argument("nodes", nargs="+", metavar="node")
        sp.add_argument("--wait", action="store_true", help="wait for the operations to end")
        sp.add_argument("--timeout", type=float, default=3600)
        if action is Action.MAINTENANCE_ON:
            sp.add_argument("--reason")
        if action in (Action.DEPLOY, Action.REBUILD):
            sp.add_argument("--image", help="image name (provisiond image list); required")
        if action is Action.PROVIDE:
            sp.add_argument(
                "--firmware-override",
                metavar="REASON",
                help="admin: provide although the firmware verdict is blocked (recorded)",
            )
        sp.set_defaults(action=action.value)

    image = sub.add_parser("image", help="netboot images").add_subparsers(dest="sub", required=True)
    ia = cmd(image, "add", cmd_image_add, "register a netboot image (kernel, initrd, cmdline)",
             remote)  # fmt: skip
    ia.add_argument("name")
    ia.add_argument("--kernel", required=True, help="path under the assets directory, or a URL")
    ia.add_argument("--initrd", help="path under the assets directory, or a URL")
    ia.add_argument("--cmdline", default="", help="kernel command line of the image")
    ia.add_argument("--kernel-sha256")
    ia.add_argument("--initrd-sha256")
    cmd(image, "list", cmd_image_list, "list images", remote)
    cmd(node, "discovered", cmd_discovered, "MACs that booted without being enrolled", remote)

    sw = sub.add_parser("switch", help="Ethernet switches").add_subparsers(
        dest="sub", required=True
    )
    cmd(sw, "list", cmd_switch_list, "list switches", remote)
    ss = cmd(sw, "show", cmd_switch_show, "a switch and its managed ports", remote)
    ss.add_argument("switch")
    sa = cmd(sw, "add", cmd_switch_add, "enroll or update a switch (password: "
             "--password-file or PROVISIOND_SWITCH_PASSWORD)", remote)  # fmt: skip
    sa.add_argument("name")
    sa.add_argument("--driver", required=True, help="dialect (arista_eos, ...) or napalm_eos")
    sa.add_argument("--address", required=True)
    sa.add_argument("--port", type=int)
    sa.add_argument("--username")
    sa.add_argument("--password-file")
    sa.add_argument("--allowed-vlans", required=True, help='e.g. "100-199,300"')
    sa.add_argument("--allowed-ports", help="regular expression of the ports provisiond may touch")
    sa.add_argument("--provisioning-vlan", type=int)
    sa.add_argument("--quarantine-vlan", type=int, required=True)
    sa.add_argument("--repair-drift", action="store_true", help="put hand-changed ports back")
    sp_ = cmd(sw, "port", cmd_switch_port, "set a port's desired state", remote)
    sp_.add_argument("switch")
    sp_.add_argument("port")
    sp_.add_argument("--access", type=int, metavar="VLAN")
    sp_.add_argument("--native", type=int, metavar="VLAN", help="trunk: native VLAN")
    sp_.add_argument("--allowed", metavar="LIST", help='trunk: allowed VLANs, e.g. "100-110"')
    srl = cmd(sw, "release", cmd_switch_release, "stop managing a port (after quarantine)", remote)
    srl.add_argument("switch")
    srl.add_argument("port")
    srl.add_argument("--leave", action="store_true", help="forget it now, as it is on the switch")
    spl = cmd(sw, "plan", cmd_switch_plan, "what the next pass would send", remote)
    spl.add_argument("switch")
    sap = cmd(sw, "apply", cmd_switch_apply, "run a pass now", remote)
    sap.add_argument("switch")
    sap.add_argument("--retry", action="store_true",
                     help="also retry ports left quarantined, failed or drifted")  # fmt: skip
    sap.add_argument("--timeout", type=float, default=900)
    sdr = cmd(sw, "drift", cmd_switch_drift, "compare the switch with what was applied", remote)
    sdr.add_argument("switch")
    sdr.add_argument("--timeout", type=float, default=900)
    sll = cmd(sw, "lldp", cmd_switch_lldp, "LLDP neighbours vs the inventory's cabling", remote)
    sll.add_argument("switch")
    sll.add_argument("--timeout", type=float, default=300)
    nn = cmd(node, "network", cmd_node_network, "put a node's switch ports on a network", remote)
    nn.add_argument("node")
    nng = nn.add_mutually_exclusive_group(required=True)
    nng.add_argument("--network", choices=["provisioning", "quarantine"])
    nng.add_argument("--vlan", type=int)

    from provisiond.cli_fabric import register as register_fabric

    register_fabric(sub, cmd, remote)
    from provisiond.cli_firmware import register as register_firmware

    register_firmware(sub, cmd, remote)
    from provisiond.cli_tenancy import register as register_tenancy

    register_tenancy(sub, cmd, remote)

    op = sub.add_parser("op", help="operations").add_subparsers(dest="sub", required=True)
    os_ = cmd(op, "show", cmd_op_show, "show an operation", remote)
    os_.add_argument("op")
    ow = cmd(op, "wait", cmd_op_wait, "wait for operations to end", remote)
    ow.add_argument("ops", nargs="+")
    ow.add_argument("--timeout", type=float, default=3600)

    lab = sub.add_parser("lab", help="the simulated lab").add_subparsers(dest="sub", required=True)
    demo = lab.add_parser("demo", help="run the demo story")
    demo.add_argument("--data-dir", default=".demo")
    demo.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    demo.add_argument("--oneshot", action="store_true", help="exit after the story")
    demo.set_defaults(fn=cmd_lab_demo)
    lbmc = lab.add_parser(
        "bmc",
        help="serve virtual IPMI BMCs on 127.0.0.1:P..P+N-1 until killed",
        description="Virtual IPMI 2.0 BMCs (RMCP+, cipher suites 17 and 3) with power, boot "
        "flags, device id, FRU and fault injection; see docs/lab.md.",
    )
    lbmc.add_argument("--count", type=int, default=8, help="number of BMCs (1-1000)")
    lbmc.add_argument("--base-port", type=int, default=6230, help="UDP port of the first BMC")
    lbmc.add_argument("--address", default="127.0.0.1")
    lbmc.add_argument("--username", default="admin")
    lbmc.add_argument("--password", default="password")
    lbmc.add_argument(
        "--control", help="JSON file of faults per port, re-read when it changes (docs/lab.md)"
    )
    lbmc.add_argument(
        "--fault",
        action="append",
        metavar="PORT=FAULT[:VALUE]",
        help="hung | slow:SECONDS | drop:PERCENT | wrong-password | flap:SECONDS | "
        "firmware:X.YY; PORT may be '*'; repeatable",
    )
    lbmc.add_argument(
        "--rack",
        action="append",
        metavar="FILE",
        help="rack file describing the hosts behind these BMCs (lab nodes: they PXE-boot "
        "from --boot-url and run the agent); repeatable",
    )
    lbmc.add_argument("--boot-url", help="the daemon's HTTP base URL, e.g. http://127.0.0.1:8750")
    lbmc.add_argument(
        "--post-delay", type=float, default=1.0, help="seconds of firmware POST before PXE"
    )
    lbmc.set_defaults(fn=cmd_lab_bmc)
    lrf = lab.add_parser(
        "redfish",
        help="serve a Redfish service (sushy-tools emulator) with fake systems until killed",
    )
    lrf.add_argument("--port", type=int, default=8000)
    lrf.add_argument("--systems", default="r02n01,r02n02,r02n03,r02n04", help="comma-separated")
    lrf.add_argument("--username", default="root")
    lrf.add_argument("--password", default="calvin")
    lrf.add_argument("--state", help="state directory (default: a new temporary one)")
    lrf.set_defaults(fn=cmd_lab_redfish)
    lufm = lab.add_parser(
        "ufm",
        help="serve a lab NVIDIA UFM (P_Key REST API) on 127.0.0.1:PORT until killed",
        description="The P_Key endpoints of UFM's REST API, in memory, under /ufmRest (basic "
        "auth) and /ufmRestV3 (token), with fault injection; see provisiond/lab/ufm.py.",
    )
    lufm.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    lufm.add_argument("--user", default="admin", help="basic-auth user (default admin)")
    lufm.add_argument("--password", default="123456", help="basic-auth password (default 123456)")
    lufm.add_argument("--token", help="access token for /ufmRestV3 (default: none, all refused)")
    lufm.add_argument("--control", help="JSON file of faults, re-read when it changes")
    lufm.add_argument(
        "--fault",
        action="append",
        metavar="500|500:N|slow|auth",
        help="HTTP 500 on every (or the next N) request(s), slow answers, refused credentials; "
        "repeatable",
    )
    lufm.add_argument("--delay", type=float, help="seconds before each answer (the slow fault)")
    lufm.set_defaults(fn=cmd_lab_ufm)
    lsw = lab.add_parser(
        "switch",
        help="serve emulated Ethernet switches over SSH on 127.0.0.1:PORT until killed",
        description="SSH servers emulating one switch CLI dialect: VLANs, ports, running and "
        "saved configuration, fault injection; see docs/lab.md.",
    )
    lsw.add_argument("--dialect", required=True, choices=sorted(LAB_SWITCH_DIALECTS))
    lsw.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    lsw.add_argument(
        "--count", type=int, default=1, help="serve N switches on PORT..PORT+N-1 (default 1)"
    )
    lsw.add_argument("--username", help="login (default: the vendor's usual, docs/lab.md)")
    lsw.add_argument("--password", help="password (default: the vendor's usual, docs/lab.md)")
    lsw.add_argument("--ports", type=int, default=48, help="number of front-panel ports")
    lsw.add_argument(
        "--eapi-port",
        type=int,
        metavar="Q",
        help="arista_eos: also serve eAPI (JSON-RPC over HTTP) on Q..Q+N-1 (docs/lab.md)",
    )
    lsw.add_argument("--control", help="JSON file of faults, re-read when it changes (docs/lab.md)")
    lsw.add_argument(
        "--lldp", help="JSON file of the LLDP neighbours per port, re-read when it changes"
    )
    lsw.add_argument(
        "--fault",
        action="append",
        metavar="SPEC",
        help="drop-after:N | slow:SECONDS | config-locked | auth-fail; repeatable",
    )
    lsw.set_defaults(fn=cmd_lab_switch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ApiError as exc:
        print(exc.describe(), file=sys.stderr)
        return EXIT_ERROR
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ConfigError as exc:
        print(f"provisiond: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
