#!/usr/bin/env bash
# Debian packages the test suite talks to as independent peers: ipmitool against the lab BMCs,
# busybox's udhcpc and ISC dhclient against the DHCP server, dnsmasq beside it (proxy mode), the
# tftp-hpa and atftp clients and tftpd-hpa (benchmark peer) against TFTP, QEMU with its iPXE ROMs
# and Debian's iPXE loaders for the end-to-end PXE test, and the tools the inspection agent reads
# (dmidecode, lspci, ethtool), and ibsim + OpenSM + infiniband-diags for the partition tests.
# Installs only what is missing, only as root; prints nothing on
# success.
set -euo pipefail
need=()
command -v ipmitool >/dev/null || need+=(ipmitool)
command -v busybox >/dev/null || need+=(busybox)
command -v ip >/dev/null || need+=(iproute2)
command -v dhclient >/dev/null || need+=(isc-dhcp-client)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v tftp >/dev/null || need+=(tftp-hpa)
command -v atftp >/dev/null || need+=(atftp)
command -v in.tftpd >/dev/null || need+=(tftpd-hpa)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -f /usr/lib/ipxe/undionly.kpxe ] || need+=(ipxe)
[ -f /usr/lib/ipxe/qemu/efi-virtio.rom ] || need+=(ipxe-qemu)
[ -f /usr/share/OVMF/OVMF_CODE.fd ] || [ -f /usr/share/ovmf/OVMF.fd ] || need+=(ovmf)
command -v dmidecode >/dev/null || need+=(dmidecode)
command -v lspci >/dev/null || need+=(pciutils)
command -v ethtool >/dev/null || need+=(ethtool)
# a real OpenSM on a simulated InfiniBand fabric (tests/support/ibsim.py)
command -v ibsim >/dev/null || need+=(ibsim-utils)
command -v opensm >/dev/null || [ -x /usr/sbin/opensm ] || need+=(opensm)
command -v smpquery >/dev/null || [ -x /usr/sbin/smpquery ] || need+=(infiniband-diags)
ls /usr/lib/*/umad2sim/libumad2sim.so >/dev/null 2>&1 || need+=(libumad2sim0)
# the QEMU test's ramdisk takes the kernel from Debian's cloud kernel package, downloaded (never
# installed) into apt's cache
kernel_deb() { ls /var/cache/apt/archives/linux-image-*-cloud-amd64_*.deb >/dev/null 2>&1; }
if ! kernel_deb && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq -d --no-install-recommends linux-image-cloud-amd64 \
    || { apt-get update -qq && apt-get install -y -qq -d --no-install-recommends linux-image-cloud-amd64; }; } \
    >/dev/null || echo "syspkgs: could not download linux-image-cloud-amd64 (QEMU agent test)" >&2
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq --no-install-recommends "${need[@]}" \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }; } >/dev/null
else
  echo "syspkgs: missing ${need[*]}; install with: apt-get install ${need[*]}" >&2
fi
