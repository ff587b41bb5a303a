"""`provisiond tenant ...` and `provisiond alloc ...`: tenants (their VLAN and P_Keys) and
allocations of nodes to them, over the REST API (/v1/tenants, /v1/allocations). Output is for
people; --json gives the API's answer. ``--wait`` polls, bounded by ``--timeout``, printing a
line each time the nodes' states change."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from provisiond import cli  # the shared helpers: client, table, exit codes
from provisiond.client import ApiError, Client
from provisiond.hostlist import compress

Register = Callable[..., argparse.ArgumentParser]

POLL_MIN, POLL_MAX = 0.5, 2.0  # seconds between two looks while waiting


def _out(args: argparse.Namespace, data: Any) -> bool:
    """Print ``data`` as JSON when asked; True when done."""
    if args.json:
        cli._print_json(data)
        return True
    return False


def _say(args: argparse.Namespace, text: str) -> None:
    """Progress: on stdout for people, on stderr when stdout is JSON."""
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def _pkeys(t: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"{k['fabric']} {k['pkey']}" + ("" if k["state"] == "active" else f" ({k['state']})")
            for k in t["pkeys"]
        )
        or "-"
    )


def _failed(state: str) -> bool:
    return state.endswith("-failed")


def _states(nodes: list[dict[str, Any]]) -> str:
    """``active r01n[01-02]; deploy-wait r02n01`` (a count instead of names past 16 nodes)."""
    by_state: dict[str, list[str]] = {}
    for n in nodes:
        by_state.setdefault(n["state"], []).append(n["name"])
    if len(nodes) > 16:
        return ", ".join(f"{st} {len(names)}" for st, names in sorted(by_state.items()))
    return "; ".join(f"{st} {compress(names)}" for st, names in sorted(by_state.items()))


# ------------------------------------------------------------------ tenants


def cmd_tenant_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.vlan is not None:
        body["vlan"] = args.vlan
    status, t = cli._client(args).request("POST", "/v1/tenants", json_body=body)
    if not _out(args, t):
        verb = "created" if status == 201 else "already exists"
        print(
            f"tenant {t['name']} {verb}: VLAN {t['vlan'] or '- (no switch managed)'}, "
            f"P_Keys {_pkeys(t)}"
        )
    return int(cli.EXIT_OK)


def cmd_tenant_list(args: argparse.Namespace) -> int:
    items = cli._client(args).get("/v1/tenants")["items"]
    if _out(args, items):
        return int(cli.EXIT_OK)
    rows = [(t["name"], t["state"], t["vlan"] or "-", _pkeys(t), t["nodes"]) for t in items]
    print(cli._table(rows, ("TENANT", "STATE", "VLAN", "P_KEYS", "NODES")))
    return int(cli.EXIT_OK)


def cmd_tenant_show(args: argparse.Namespace) -> int:
    client = cli._client(args)
    t = client.get(f"/v1/tenants/{cli._seg(args.name)}")
    nodes = client.get("/v1/nodes", tenant=args.name, limit=1000)["items"] if t["nodes"] else []
    if _out(args, {**t, "node_names": [n["name"] for n in nodes]}):
        return int(cli.EXIT_OK)
    lines = [
        ("tenant", t["name"]),
        ("state", t["state"]),
        ("VLAN", t["vlan"] or "- (no switch managed when it was created)"),
        ("P_Keys", _pkeys(t)),
        ("nodes", t["nodes"]),
        ("created", t["created_at"]),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    if nodes:
        rows = [(n["name"], n["rack"] or "-", n["state"], n["power_state"]) for n in nodes]
        print(cli._table(rows, ("NODE", "RACK", "STATE", "POWER")))
    return int(cli.EXIT_OK)


def cmd_tenant_delete(args: argparse.Namespace) -> int:
    client = cli._client(args)
    _, t = client.request("DELETE", f"/v1/tenants/{cli._seg(args.name)}")
    if not args.wait:
        if not _out(args, t):
            print(
                f"tenant {t['name']} deleting: VLAN {t['vlan'] or '-'} and P_Keys "
                f"{_pkeys(t)} are freed once no switch port and no partition holds them"
            )
        return int(cli.EXIT_OK)
    _say(args, f"tenant {args.name} deleting; waiting until its networks are released")
    deadline = time.monotonic() + args.timeout
    delay = POLL_MIN
    while True:
        try:
            client.get(f"/v1/tenants/{cli._seg(args.name)}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            if not _out(args, {**t, "state": "deleted"}):
                print(f"tenant {args.name} deleted; VLAN {t['vlan'] or '-'} free")
            return int(cli.EXIT_OK)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"tenant {args.name} still deleting after {args.timeout:g}s "
                "(a switch port or a partition still holds its networks: "
                "provisiond switch list, provisiond fabric list)"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)


# ------------------------------------------------------------------ allocations


def _constraints(args: argparse.Namespace) -> dict[str, Any]:
    c: dict[str, Any] = {}
    racks = [r for item in args.rack or () for r in item.split(",") if r]
    if racks:
        c["racks"] = racks
    for key in ("cpu_model", "min_memory_gib", "min_gpus", "infiniband", "firmware"):
        if getattr(args, key) is not None:
            c[key] = getattr(args, key)
    if args.no_spread:
        c["spread"] = False
    return c


def _errors(out: dict[str, Any], what: str) -> int:
    """Nodes whose operation could not be started (yet), on stderr; how many."""
    for node, why in sorted((out.get("errors") or {}).items()):
        print(f"{node}: {what} not started yet: {why}", file=sys.stderr)
    return len(out.get("errors") or {})


def _op_errors(client: Client, out: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
    """Why each failed node failed: its operation's error, when it has one."""
    ops = out.get("operations") or {}
    for n in nodes:
        if not _failed(n["state"]):
            continue
        why = ""
        if n["name"] in ops:
            with contextlib.suppress(ApiError):
                why = client.get(f"/v1/operations/{ops[n['name']]}").get("error") or ""
        print(f"{n['name']}: {n['state']}" + (f": {why}" if why else ""), file=sys.stderr)


def _poll(
    args: argparse.Namespace,
    client: Client,
    alloc_id: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    node: str | None = None,
) -> dict[str, Any]:
    """The allocation, polled until ``done`` says so or a node (``node``, when given) failed;
    a line per change."""
    started = time.monotonic()
    deadline = started + args.timeout
    last = ""
    delay = POLL_MIN
    while True:
        a = client.get(f"/v1/allocations/{cli._seg(alloc_id)}")
        line = _states(a["nodes"]) or "no node left"
        if a["state"] != "active":
            line += f" (allocation {a['state']})"
        if line != last:
            _say(args, f"  {time.monotonic() - started:5.1f}s  {line}")
            last = line
        if done(a) or any(_failed(n["state"]) for n in a["nodes"] if node in (None, n["name"])):
            return dict(a)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"allocation {alloc_id}: not {what} after {args.timeout:g}s ({line})"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)


def cmd_alloc_create(args: argparse.Namespace) -> int:
    client = cli._client(args)
    body = {"count": args.count, "image": args.image, "constraints": _constraints(args)}
    _, out = client.request(
        "POST", f"/v1/tenants/{cli._seg(args.tenant)}/allocations", json_body=body
    )
    if not args.json:
        print(
            f"allocation {out['id']} for {out['tenant']}: {len(out['nodes'])} node(s) "
            f"{compress([n['name'] for n in out['nodes']])}, image {out['image']}"
        )
    if _errors(out, "deploy"):
        # those nodes are reserved but idle: waiting for them would only run into the timeout
        _out(args, out)
        print(
            f"deploy them by hand (provisiond node deploy NODE --image {out['image']}) or "
            f"release the allocation (provisiond alloc release {out['id']})",
            file=sys.stderr,
        )
        return int(cli.EXIT_ERROR)
    if not args.wait:
        if not _out(args, out):
            print(f"deploying (provisiond alloc show {out['id']}; --wait to wait)")
        return int(cli.EXIT_OK)
    _say(args, "waiting until every node is active:")
    final = _poll(
        args,
        client,
        out["id"],
        lambda a: bool(a["nodes"]) and all(n["state"] == "active" for n in a["nodes"]),
        "active",
    )
    failed = [n for n in final["nodes"] if n["state"] != "active"]
    if _out(args, {**final, "operations": out["operations"], "errors": out["errors"]}):
        return int(cli.EXIT_ERROR if failed else cli.EXIT_OK)
    if failed:
        _op_errors(client, out, failed)
        print(
            f"allocation {out['id']}: {len(failed)} node(s) failed; release it "
            f"(provisiond alloc release {out['id']}) or look (provisiond node events NODE)",
            file=sys.stderr,
        )
        return int(cli.EXIT_ERROR)
    print(f"allocation {out['id']}: every node active")
    return int(cli.EXIT_OK)


def cmd_alloc_list(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"tenant": args.tenant}
    if args.all:
        query["all"] = "true"
    items = cli._client(args).get("/v1/allocations", **query)["items"]
    if _out(args, items):
        return int(cli.EXIT_OK)
    rows = [
        (
            a["id"],
            a["tenant"],
            a["state"],
            a["image"],
            f"{len(a['nodes'])}/{a['count']}",
            _states(a["nodes"]) or "-",
            a["created_at"],
        )
        for a in items
    ]
    print(
        cli._table(
            rows, ("ALLOCATION", "TENANT", "STATE", "IMAGE", "NODES", "NODE STATES", "CREATED")
        )
    )
    return int(cli.EXIT_OK)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def cmd_alloc_show(args: argparse.Namespace) -> int:
    a = cli._client(args).get(f"/v1/allocations/{cli._seg(args.id)}")
    if _out(args, a):
        return int(cli.EXIT_OK)
    c = a["constraints"] or {}
    lines = [
        ("allocation", a["id"]),
        ("tenant", a["tenant"]),
        ("state", a["state"]),
        ("image", a["image"]),
        ("count", a["count"]),
        ("constraints", ", ".join(f"{k}={_value(v)}" for k, v in sorted(c.items())) or "-"),
        ("created", a["created_at"]),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    if a["nodes"]:
        print(cli._table([(n["name"], n["state"]) for n in a["nodes"]], ("NODE", "STATE")))
    elif a["state"] == "released":
        print("(every node was released and has left the tenant)")
    return int(cli.EXIT_OK)


def cmd_alloc_release(args: argparse.Namespace) -> int:
    client = cli._client(args)
    path = f"/v1/allocations/{cli._seg(args.id)}"
    if args.node:
        path += f"/nodes/{cli._seg(args.node)}"
    _, out = client.request("DELETE", path)
    which = args.node or compress([n["name"] for n in out["nodes"]]) or "no node"
    if not args.json:
        print(f"allocation {out['id']} ({out['tenant']}): releasing {which}")
    if _errors(out, "undeploy"):
        # busy nodes (still deploying): the daemon undeploys them once that operation ends
        print(
            "the daemon undeploys those once their operation ends (provisiond node events NODE)",
            file=sys.stderr,
        )
    if not args.wait:
        if not _out(args, out):
            print("the nodes are undeployed and cleaned, then leave the tenant (--wait to wait)")
        return int(cli.EXIT_OK)

    def released(a: dict[str, Any]) -> bool:
        if args.node:
            return a["state"] == "released" or args.node not in {n["name"] for n in a["nodes"]}
        return bool(a["state"] == "released")

    _say(args, f"waiting until {'node ' + args.node if args.node else 'it'} is released:")
    final = _poll(args, client, out["id"], released, "released", args.node)
    failed = [n for n in final["nodes"] if _failed(n["state"]) and args.node in (None, n["name"])]
    if _out(args, {**final, "operations": out["operations"], "errors": out["errors"]}):
        return int(cli.EXIT_OK if released(final) else cli.EXIT_ERROR)
    if not released(final):
        _op_errors(client, out, failed)
        print(
            f"allocation {out['id']}: release stopped on a failure (provisiond node events "
            f"NODE; a release-failed node: provisiond alloc release {out['id']} again; a "
            "clean-failed one: provisiond node provide NODE)",
            file=sys.stderr,
        )
        return int(cli.EXIT_ERROR)
    print(f"allocation {out['id']}: " + (f"{args.node} released" if args.node else "released"))
    return int(cli.EXIT_OK)


# ------------------------------------------------------------------ parser


def register(sub: Any, cmd: Register, remote: Callable[[argparse.ArgumentParser], None]) -> None:
    ten = sub.add_parser("tenant", help="tenants and their networks").add_subparsers(
        dest="sub", required=True
    )
    tc = cmd(
        ten,
        "create",
        cmd_tenant_create,
        "create a tenant: a VLAN on every switch, a P_Key on every fabric",
        remote,
    )
    tc.add_argument("name")
    tc.add_argument("--vlan", type=int, help="this VLAN id (default: the lowest free everywhere)")
    cmd(ten, "list", cmd_tenant_list, "list tenants", remote)
    ts = cmd(ten, "show", cmd_tenant_show, "a tenant, its networks and nodes", remote)
    ts.add_argument("name")
    td = cmd(
        ten, "delete", cmd_tenant_delete, "delete a tenant (refused while it holds nodes)", remote
    )
    td.add_argument("name")
    td.add_argument("--wait", action="store_true", help="wait until its networks are freed")
    td.add_argument("--timeout", type=float, default=600)

    al = sub.add_parser("alloc", help="allocations of nodes to tenants").add_subparsers(
        dest="sub", required=True
    )
    ac = cmd(
        al,
        "create",
        cmd_alloc_create,
        "allocate N available nodes to a tenant and deploy them",
        remote,
    )
    ac.add_argument("tenant")
    ac.add_argument("--count", type=int, required=True, help="how many nodes")
    ac.add_argument("--image", required=True, help="image name (provisiond image list)")
    ac.add_argument(
        "--rack",
        action="append",
        metavar="RACK",
        help="only nodes of this rack; repeatable (or r01,r02)",
    )
    ac.add_argument("--cpu-model", help="a substring of the CPU model inspection found")
    ac.add_argument("--min-memory-gib", type=int, metavar="N")
    ac.add_argument("--min-gpus", type=int, metavar="N")
    ac.add_argument(
        "--infiniband",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only nodes with (--no-infiniband: without) an InfiniBand NIC",
    )
    ac.add_argument(
        "--firmware",
        choices=("not-blocked", "compliant"),
        help="the firmware verdict a node must have (the server's default: not-blocked)",
    )
    ac.add_argument(
        "--no-spread",
        action="store_true",
        help="take nodes in name order instead of fairly across racks",
    )
    ac.add_argument(
        "--wait", action="store_true", help="wait until every node is active (or one failed)"
    )
    ac.add_argument("--timeout", type=float, default=3600)
    ali = cmd(al, "list", cmd_alloc_list, "list allocations (not released ones: --all)", remote)
    ali.add_argument("--tenant")
    ali.add_argument("--all", action="store_true", help="released allocations too")
    ash = cmd(al, "show", cmd_alloc_show, "an allocation and its nodes", remote)
    ash.add_argument("id")
    ar = cmd(
        al,
        "release",
        cmd_alloc_release,
        "release an allocation (or one node): undeploy, clean, leave the tenant",
        remote,
    )
    ar.add_argument("id")
    ar.add_argument("--node", help="release only this node")
    ar.add_argument("--wait", action="store_true", help="wait until released (or one failed)")
    ar.add_argument("--timeout", type=float, default=3600)
