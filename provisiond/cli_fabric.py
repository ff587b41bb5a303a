"""`provisiond fabric ...`: InfiniBand fabrics and their partitions, over the REST API
(/v1/fabrics). Output is for people; --json gives the API's answer."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisiond import cli  # the shared helpers: client, table, exit codes

Register = Callable[..., argparse.ArgumentParser]


def _out(args: argparse.Namespace, data: Any) -> bool:
    """Print ``data`` as JSON when asked; True when done."""
    if args.json:
        cli._print_json(data)
        return True
    return False


def cmd_fabric_list(args: argparse.Namespace) -> int:
    items = cli._client(args).get("/v1/fabrics")["items"]
    if _out(args, items):
        return int(cli.EXIT_OK)
    rows = [
        (
            f["name"],
            f["driver"],
            f["pkey_range"],
            f["partitions"]["active"],
            f["status"] + (" (pending)" if f["pending"] else ""),
            f["last_error"] or ("; ".join(f["problems"]) if f["problems"] else ""),
        )
        for f in items
    ]
    print(cli._table(rows, ("FABRIC", "DRIVER", "P_KEYS", "PARTITIONS", "STATUS", "ERROR")))
    return int(cli.EXIT_OK)


def cmd_fabric_show(args: argparse.Namespace) -> int:
    client = cli._client(args)
    f = client.get(f"/v1/fabrics/{cli._seg(args.fabric)}")
    view = client.get(f"/v1/fabrics/{cli._seg(args.fabric)}/partitions")
    if _out(args, {**f, "view": view}):
        return int(cli.EXIT_OK)
    print(f"{f['name']}: {f['driver']}, P_Keys {f['pkey_range']}, {f['port_key_limit']} per port")
    print(f"  status {f['status']}{' (pending)' if f['pending'] else ''}, drift "
          f"{'repaired' if f['repair_drift'] else 'reported'}")  # fmt: skip
    for key, value in sorted(f["settings"].items()):
        print(f"  {key} = {value}")
    if f["last_error"]:
        print(f"  last error ({f['failures']} failure(s)): {f['last_error']}")
    for problem in view["problems"]:
        print(f"  problem: {problem}")
    observed = {p["pkey"]: p for p in view["observed"] or []}
    applied = {p["pkey"]: p for p in view["applied"]}
    rows = []
    for p in view["desired"]:
        members = p["members"]
        full = sum(1 for m in members.values() if m == "full")
        state = (
            "in sync"
            if observed.get(p["pkey"]) == applied.get(p["pkey"])
            and (applied.get(p["pkey"], {}).get("members") == members)
            else "pending"
        )
        rows.append((p["pkey"], p["name"], p["tenant"] or "-", f"{full}/{len(members)}", state))
    for pkey in view["removing"]:
        rows.append((pkey, "-", "-", "-", "removing"))
    for pkey, p in observed.items():
        if pkey not in {r[0] for r in rows}:
            rows.append((pkey, p["name"], "-", str(len(p["members"])), "NOT OURS (on the SM)"))
    if rows:
        print(cli._table(sorted(rows), ("P_KEY", "NAME", "TENANT", "FULL/MEMBERS", "STATE")))
    return int(cli.EXIT_OK)


def cmd_fabric_add(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: KEY=VALUE")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    for key in ("password", "token"):
        path = getattr(args, f"{key}_file")
        if path:
            settings[key] = Path(path).read_text().strip()
    body: dict[str, Any] = {"name": args.name, "driver": args.driver, "settings": settings}
    if args.pkey_range:
        body["pkey_range"] = args.pkey_range
    if args.port_key_limit is not None:
        body["port_key_limit"] = args.port_key_limit
    if args.report_drift_only:
        body["repair_drift"] = False
    _, out = cli._client(args).request("POST", "/v1/fabrics", json_body=body)
    if not _out(args, out):
        print(f"fabric {out['name']} added ({out['driver']}, P_Keys {out['pkey_range']})")
    return int(cli.EXIT_OK)


def cmd_fabric_partition(args: argparse.Namespace) -> int:
    members = {g: "full" for g in args.full or []}
    members.update({g: "limited" for g in args.limited or []})
    body: dict[str, Any] = {"name": args.name, "members": members, "ipoib": args.ipoib}
    for key in ("mtu", "rate", "sl", "tenant"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.no_index0:
        body["index0"] = False
    fabric = cli._seg(args.fabric)
    client = cli._client(args)
    if args.pkey:
        _, out = client.request(
            "PUT", f"/v1/fabrics/{fabric}/partitions/{cli._seg(args.pkey)}", json_body=body
        )
    else:
        _, out = client.request("POST", f"/v1/fabrics/{fabric}/partitions", json_body=body)
    if not _out(args, out):
        print(f"{args.fabric}: partition {out['pkey']} {out['name']} set "
              f"({len(out['members'])} members); the reconciler applies it")  # fmt: skip
    return int(cli.EXIT_OK)


def cmd_fabric_remove(args: argparse.Namespace) -> int:
    path = f"/v1/fabrics/{cli._seg(args.fabric)}/partitions/{cli._seg(args.pkey)}"
    _, out = cli._client(args).request("DELETE", path)
    if not _out(args, out):
        print(f"{args.fabric}: partition {out['pkey']} removing (its key stays reserved until "
              "the subnet manager no longer holds it)")  # fmt: skip
    return int(cli.EXIT_OK)


def cmd_fabric_plan(args: argparse.Namespace) -> int:
    _, plan = cli._client(args).request("POST", f"/v1/fabrics/{cli._seg(args.fabric)}/plan")
    if _out(args, plan):
        return int(cli.EXIT_OK)
    if not plan["ok"]:
        print(f"{args.fabric}: the desired set would be refused:")
        for p in plan["problems"]:
            print(f"  {p['field']}: {p['message']}")
        return int(cli.EXIT_ERROR)
    print("\n".join(plan["diff"]) or f"{args.fabric}: nothing to change")
    if args.rendered and plan["rendered"]:
        print("--- partitions.conf as it would be written:")
        print(plan["rendered"], end="")
    for request in plan["requests"]:
        print(f"  {request}")
    return int(cli.EXIT_OK)


def cmd_fabric_apply(args: argparse.Namespace) -> int:
    _, res = cli._client(args).request("POST", f"/v1/fabrics/{cli._seg(args.fabric)}/apply")
    if _out(args, res):
        return int(cli.EXIT_OK if res["applied"] else cli.EXIT_ERROR)
    if res["skipped"]:
        print(f"{args.fabric}: {res['skipped']}")
    elif res["applied"]:
        print("\n".join(res["diff"]) or f"{args.fabric}: applied, nothing changed")
    else:
        print(f"{args.fabric}: apply failed: {res['error']}")
        for p in res["problems"]:
            print(f"  {p}")
    return int(cli.EXIT_OK if res["applied"] or res["skipped"] else cli.EXIT_ERROR)


def cmd_fabric_drift(args: argparse.Namespace) -> int:
    _, res = cli._client(args).request("POST", f"/v1/fabrics/{cli._seg(args.fabric)}/drift")
    if _out(args, res):
        return int(cli.EXIT_OK)
    if res["error"]:
        print(f"{args.fabric}: read-back failed: {res['error']}")
        return int(cli.EXIT_ERROR)
    for line in res["drift"] + [f"problem: {p}" for p in res["problems"]]:
        print(line)
    if not res["drift"] and not res["problems"]:
        print(f"{args.fabric}: the subnet manager holds what was applied")
    return int(cli.EXIT_OK)


def cmd_fabric_audit(args: argparse.Namespace) -> int:
    client = cli._client(args)
    report = client.get("/v1/fabric/audit")
    if _out(args, report):
        return int(cli.EXIT_OK if report["ok"] else cli.EXIT_ERROR)
    print(report["statement"])
    for v in report["violations"]:
        print(f"  [{v['kind']}] {v['where']}: {v['detail']}")
    print(f"(report digest {report['digest']})")
    return int(cli.EXIT_OK if report["ok"] else cli.EXIT_ERROR)


def register(sub: Any, cmd: Register, remote: Callable[[argparse.ArgumentParser], None]) -> None:
    fab = sub.add_parser("fabric", help="InfiniBand fabrics and partitions").add_subparsers(
        dest="sub", required=True
    )
    cmd(fab, "list", cmd_fabric_list, "list fabrics", remote)
    fs = cmd(fab, "show", cmd_fabric_show, "a fabric and its partitions", remote)
    fs.add_argument("fabric")
    fa = cmd(fab, "add", cmd_fabric_add, "add a fabric (opensm | ufm)", remote)
    fa.add_argument("name")
    fa.add_argument("--driver", required=True, choices=("opensm", "ufm"))
    fa.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a driver setting, e.g. partitions_file=/etc/opensm/partitions.conf "
                    "(docs/infiniband.md)")  # fmt: skip
    fa.add_argument("--password-file", help="ufm: file holding the password")
    fa.add_argument("--token-file", help="ufm: file holding the access token")
    fa.add_argument("--pkey-range", help='tenant P_Keys, e.g. "0x0100-0x01ff"')
    fa.add_argument("--port-key-limit", type=int)
    fa.add_argument("--report-drift-only", action="store_true",
                    help="report hand edits but do not put them back")  # fmt: skip
    fp = cmd(fab, "partition", cmd_fabric_partition,
             "set a partition (with --pkey) or add one on the next free key", remote)  # fmt: skip
    fp.add_argument("fabric")
    fp.add_argument("name")
    fp.add_argument("--pkey")
    fp.add_argument("--full", nargs="*", metavar="GUID", help="full members")
    fp.add_argument("--limited", nargs="*", metavar="GUID", help="limited members")
    fp.add_argument("--ipoib", action="store_true")
    fp.add_argument("--mtu", type=int, help="IBTA code: 4=2048, 5=4096")
    fp.add_argument("--rate", type=int)
    fp.add_argument("--sl", type=int)
    fp.add_argument("--tenant")
    fp.add_argument("--no-index0", action="store_true")
    fr = cmd(fab, "remove", cmd_fabric_remove, "remove a partition", remote)
    fr.add_argument("fabric")
    fr.add_argument("pkey")
    fpl = cmd(fab, "plan", cmd_fabric_plan, "dry run: the diff (and file) of a pass", remote)
    fpl.add_argument("fabric")
    fpl.add_argument("--rendered", action="store_true", help="print the partitions.conf too")
    fap = cmd(fab, "apply", cmd_fabric_apply, "run a pass now", remote)
    fap.add_argument("fabric")
    fdr = cmd(fab, "drift", cmd_fabric_drift, "read back and compare now", remote)
    fdr.add_argument("fabric")
    cmd(fab, "audit", cmd_fabric_audit, "isolation audit of every switch port and partition",
        remote)  # fmt: skip
