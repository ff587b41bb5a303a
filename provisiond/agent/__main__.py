"""python -m provisiond.agent [--url URL] [--token TOKEN] [--root /] [--print] [--timeout S]

Exit codes: 0 delivered (or printed), 1 not delivered (network / 5xx after retries),
2 refused by the server (4xx) or bad command line, 3 no URL or token known, unknown mode."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provisiond.agent.collect import (
    PostError,
    Runner,
    collect,
    post,
    read_cmdline,
    run_command,
    wait_for_lldp,
)

MODES = ("inspect", "discover")  # both post the report to /v1/agent/inspect


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m provisiond.agent",
        description="Collect hardware facts and post them to provisiond.",
    )
    p.add_argument("--url", help="provisiond base URL (default: provisiond.url= on /proc/cmdline)")
    p.add_argument("--token", help="one-time token (default: provisiond.token= on /proc/cmdline)")
    p.add_argument("--mode", help="inspect (default) or discover (default: provisiond.mode=)")
    p.add_argument("--root", default="/", type=Path, help="where /sys, /proc and /etc live")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the JSON report and post nothing")  # fmt: skip
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP attempt")
    p.add_argument("--tries", type=int, default=6, help="HTTP attempts (5xx, network errors)")
    p.add_argument("--deadline", type=float, default=60.0,
                   help="stop retrying after this many seconds")  # fmt: skip
    p.add_argument("--backoff", type=float, default=1.0,
                   help="first retry delay in seconds (doubles per try, at most 15)")  # fmt: skip
    p.add_argument("--lldp-wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for LLDP neighbors before collecting")  # fmt: skip
    return p


def _err(msg: str) -> None:
    print(f"provisiond-agent: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, *, run: Runner | None = None) -> int:
    args = _parser().parse_args(argv)
    runner: Runner = run if run is not None else run_command
    cmdline = read_cmdline(args.root)
    if args.lldp_wait > 0:
        wait_for_lldp(runner, args.lldp_wait)
    report = collect(args.root, runner)
    if args.print_only:
        print(json.dumps(report, indent=2))
        return 0
    mode = args.mode or cmdline.get("provisiond.mode") or "inspect"
    url = args.url or cmdline.get("provisiond.url")
    token = args.token or cmdline.get("provisiond.token")
    if mode not in MODES:
        _err(f"mode {mode!r}: the agent knows {', '.join(MODES)}")
        return 3
    if not url or not token:
        _err("no " + " or ".join(n for n, v in (("URL", url), ("token", token)) if not v)
             + ": pass --url/--token or boot with provisiond.url= provisiond.token=")  # fmt: skip
        return 3
    for e in report["errors"]:
        _err(f"note: {e}")
    try:
        answer = post(url, token, report, tries=args.tries, timeout=args.timeout,
                      deadline=args.deadline, backoff=args.backoff, log=_err)  # fmt: skip
    except PostError as exc:
        if exc.refused:
            _err(f"refused ({exc.status}): {exc.detail}")
            return 2
        _err(str(exc))
        return 1
    _err(f"report delivered: {json.dumps(answer)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
