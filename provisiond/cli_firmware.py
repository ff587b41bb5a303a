"""`provisiond firmware ...` and `provisiond catalog ...`: firmware verdicts and catalogs.
`catalog validate` runs here, without a daemon (the same loader the daemon uses); the rest talks
to the REST API. Output is for people; --json gives the API's answer."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisiond import cli  # the shared helpers: client, table, exit codes

Register = Callable[..., argparse.ArgumentParser]


def cmd_catalog_validate(args: argparse.Namespace) -> int:
    from firmware_db.catalog import check_catalog

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: cannot read: {exc}", file=sys.stderr)
        return int(cli.EXIT_ERROR)
    problems = check_catalog(text, source=str(path))
    if args.json:
        cli._print_json([p.as_dict() for p in problems])
    for p in problems:
        at = f"{path}:{p.line}" if p.line else str(path)
        print(f"{at}: {p.where}: {p.message}", file=sys.stderr)
    if problems:
        print(f"{path}: {len(problems)} problem(s); nothing imported", file=sys.stderr)
        return int(cli.EXIT_ERROR)
    if not args.json:
        print(f"{path}: valid")
    return int(cli.EXIT_OK)


def cmd_catalog_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = path.read_bytes()
    _, out = cli._client(args).request(
        "POST",
        "/v1/firmware/catalogs",
        query={"filename": path.name},
        data=data,
        content_type="application/yaml",
    )
    if args.json:
        cli._print_json(out)
    else:
        print(
            f"catalog {out['name']} imported ({out['components']} components, "
            f"{out['releases']} releases); active"
        )
    return int(cli.EXIT_OK)


def cmd_catalog_list(args: argparse.Namespace) -> int:
    items = cli._client(args).get("/v1/firmware/catalogs")["items"]
    if args.json:
        cli._print_json(items)
        return int(cli.EXIT_OK)
    rows = [
        (c["id"], c["name"], c["components"], c["releases"], "active" if c["active"] else "-",
         c["imported_by"] or "-", c["imported_at"])
        for c in items
    ]  # fmt: skip
    print(cli._table(rows, ("ID", "CATALOG", "COMPONENTS", "RELEASES", "STATE", "BY", "AT")))
    return int(cli.EXIT_OK)


def cmd_firmware_check(args: argparse.Namespace) -> int:
    client = cli._client(args)
    if args.node:
        out = client.get(f"/v1/nodes/{cli._seg(args.node)}/firmware")
        if args.json:
            cli._print_json(out)
        else:
            _print_node(out)
        return int(cli.EXIT_ERROR if out["verdict"] == "blocked" else cli.EXIT_OK)
    query = {"rack": args.rack} if args.rack else None
    _, out = client.request("GET", "/v1/firmware/report", query=query)
    if args.json:
        cli._print_json(out)
    else:
        print(f"catalog: {out['catalog'] or '(none imported)'}; {out['nodes']} node(s): "
              + ", ".join(f"{n} {v}" for v, n in sorted(out["by_verdict"].items())))  # fmt: skip
        rows = [(i["node"], i["verdict"], (i["reasons"] or [""])[0]) for i in out["items"]]
        print(cli._table(rows, ("NODE", "VERDICT", "FIRST REASON")))
    return int(cli.EXIT_ERROR if out["by_verdict"].get("blocked") else cli.EXIT_OK)


def _print_node(out: dict[str, Any]) -> None:
    print(f"{out['node']}: {out['verdict']} (catalog {out['catalog'] or 'none'}, model "
          f"{out['system_model'] or 'unknown'})")  # fmt: skip
    rows = [
        (c["slot"], c["component"] or "-", c["version"] or "?", c["target"] or "-", c["verdict"])
        for c in out["components"]
    ]
    if rows:
        print(cli._table(rows, ("SLOT", "COMPONENT", "VERSION", "TARGET", "VERDICT")))
    for c in out["components"]:
        for reason in c["reasons"]:
            print(f"  {c['slot']}: {reason}")
        if c["verdict"] == "channels-disagree":
            for r in c["readings"]:
                state = "staged" if r["staged"] else "running"
                print(f"    {r['channel']}: {r['version']} ({state}, {r['at']})")
    if out["plan"]:
        print("upgrade plan:")
        for i, step in enumerate(out["plan"], 1):
            print(f"  {i}. {step['slot']} ({step['component']}): {step['from']} -> {step['to']}, "
                  f"then {step['activation']}")  # fmt: skip
    for p in out["plan_problems"]:
        print(f"  plan: {p}")


def register(sub: Any, cmd: Register, remote: Callable[[argparse.ArgumentParser], None]) -> None:
    fw = sub.add_parser("firmware", help="firmware verdicts").add_subparsers(
        dest="sub", required=True
    )
    fc = cmd(fw, "check", cmd_firmware_check, "judge a node, a rack or every node", remote)
    which = fc.add_mutually_exclusive_group(required=True)
    which.add_argument("node", nargs="?")
    which.add_argument("--rack")
    which.add_argument("--all", action="store_true")
    cat = sub.add_parser("catalog", help="firmware catalogs").add_subparsers(
        dest="sub", required=True
    )
    cv = cat.add_parser("validate", help="check a catalog file (no daemon needed)")
    cv.add_argument("file")
    cv.add_argument("--json", action="store_true")
    cv.set_defaults(fn=cmd_catalog_validate)
    ci = cmd(cat, "import", cmd_catalog_import, "import a catalog file; it becomes active", remote)
    ci.add_argument("file")
    cmd(cat, "list", cmd_catalog_list, "imported catalogs", remote)
