"""The inspection agent: runs in the inspection ramdisk under a bare python3 (stdlib only), collects
hardware facts from /sys, /proc and a few tools, and posts them to provisiond (docs/agent.md).

    report = collect()                      # or collect(Path(tree), run=runner) on a fixture tree
    post("http://10.0.0.1:8080", token, report)
"""

from provisiond.agent.collect import (
    AGENT_VERSION,
    ENDPOINT,
    PostError,
    Runner,
    collect,
    post,
    run_command,
)

__all__ = ["AGENT_VERSION", "ENDPOINT", "PostError", "Runner", "collect", "post", "run_command"]
