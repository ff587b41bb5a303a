#!/bin/bash
# Shared by resume.sh and suspend.sh: POST the hostlist to /v1/hooks/slurm/{resume,suspend}.
set -u
TAG=provisiond-slurm
log() { logger -t "$TAG" -- "$*" 2>/dev/null || true; echo "$TAG: $*" >&2; }

[ -r /etc/provisiond/slurm.env ] && . /etc/provisiond/slurm.env
what=${1:-}
hosts=${2:-}
if [ "$what" != resume ] && [ "$what" != suspend ] || [ -z "$hosts" ] || [ $# -ne 2 ]; then
  log "usage: $0 resume|suspend HOSTLIST"
  exit 2
fi
url=${PROVISIOND_URL:-}
token_file=${PROVISIOND_TOKEN_FILE:-/etc/provisiond/slurm.token}
timeout=${PROVISIOND_TIMEOUT:-30}
if [ -z "$url" ]; then log "PROVISIOND_URL is not set"; exit 2; fi
if [ ! -r "$token_file" ]; then log "cannot read the token file $token_file"; exit 2; fi
token=$(tr -d ' \n\r\t' < "$token_file")
if [ -z "$token" ]; then log "the token file $token_file is empty"; exit 2; fi
# the hostlist goes in a JSON string: SLURM host names hold no quotes or backslashes; refuse any
case "$hosts" in *'"'*|*'\'*) log "refusing a hostlist with quotes: $hosts"; exit 2;; esac

body=$(mktemp) || exit 2
trap 'rm -f "$body"' EXIT
code=$(curl -sS --max-time "$timeout" -o "$body" -w '%{http_code}' \
  -X POST "${url%/}/v1/hooks/slurm/$what" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data "{\"nodes\": \"$hosts\"}") || { log "$what $hosts: provisiond at $url unreachable"; exit 3; }
if [ "$code" != 202 ]; then
  log "$what $hosts: HTTP $code: $(head -c 500 "$body")"
  exit 3
fi
# one line for syslog: what started, what was skipped and why, what is unknown
summary=$(python3 - "$body" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
skipped = r["skipped"]
bad = {n: why for n, why in skipped.items() if not why.startswith("already")}
print(f"batch {r['id']}: {len(r['operations'])} started, {len(skipped)} skipped"
      + (f"; not acted on: {bad}" if bad else "")
      + (f"; unknown: {r['unknown']}" if r["unknown"] else ""))
print("FAIL" if bad or r["unknown"] else "OK")
PY
) || { log "$what $hosts: unreadable answer"; exit 3; }
log "$what $hosts: $(echo "$summary" | head -1)"
[ "$(echo "$summary" | tail -1)" = OK ] || exit 1
exit 0
