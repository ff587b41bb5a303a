#!/usr/bin/env bash
# Debian packages the test suite talks to as independent peers: ipmitool against the lab BMCs,
# busybox's udhcpc against the DHCP server (in network namespaces made with iproute2's ip).
# Installs only what is missing, only as root; prints nothing on success.
set -euo pipefail
need=()
command -v ipmitool >/dev/null || need+=(ipmitool)
command -v busybox >/dev/null || need+=(busybox)
command -v ip >/dev/null || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq "${need[@]}" || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }; } >/dev/null
else
  echo "syspkgs: missing ${need[*]}; install with: apt-get install ${need[*]}" >&2
fi
