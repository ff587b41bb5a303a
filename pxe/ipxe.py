"""iPXE scripts, rendered from what the daemon decided: pure functions, no I/O.

Every script starts with ``#!ipxe``. Boot scripts fetch a kernel and an initrd over HTTP and pass
the node's one-time token, our base URL and its MAC on the kernel command line, where the
inspection agent (provisiond.agent) or the image's call-back reads them:

    provisiond.url=<base> provisiond.token=<token> provisiond.mode=<inspect|deploy|discover>
    provisiond.mac=<mac> BOOTIF=01-<mac with dashes>

A failed download is retried a bounded number of times, then the node reboots (its operation's
deadline decides what happens next; nothing loops forever inside iPXE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# iPXE splits a command line at whitespace; these must stay one word each
_WORD = re.compile(r"^[^\s]+$")
FETCH_TRIES = 3


class ScriptError(ValueError):
    pass


@dataclass(frozen=True)
class NetbootSpec:
    """A kernel + initrd boot: the inspection ramdisk or a tenant's stateless image."""

    node: str  # shown on the console, for whoever watches it at 3 AM
    mac: str
    mode: str  # inspect | deploy | discover
    base_url: str  # where the agent calls back
    token: str
    kernel_url: str
    initrd_url: str | None
    cmdline: str = ""
    label: str = ""  # "inspection ramdisk" or "image NAME"
    kernel_sha256: str | None = None
    initrd_sha256: str | None = None


def _word(what: str, value: str) -> str:
    if not _WORD.match(value):
        raise ScriptError(f"{what} must be one word without spaces: {value!r}")
    return value


def netboot(spec: NetbootSpec) -> str:
    kernel = _word("kernel URL", spec.kernel_url)
    args = [
        *(["initrd=initrd.img"] if spec.initrd_url else []),
        *spec.cmdline.split(),
        f"provisiond.url={_word('base URL', spec.base_url)}",
        f"provisiond.token={_word('token', spec.token)}",
        f"provisiond.mode={_word('mode', spec.mode)}",
        f"provisiond.mac={spec.mac}",
        f"BOOTIF=01-{spec.mac.replace(':', '-')}",
    ]
    lines = [
        "#!ipxe",
        f"# provisiond: {spec.node} {spec.mode} ({spec.label or 'netboot'})",
    ]
    if spec.kernel_sha256:
        lines.append(f"# kernel sha256 {spec.kernel_sha256}")
    if spec.initrd_sha256:
        lines.append(f"# initrd sha256 {spec.initrd_sha256}")
    lines += [
        f"echo provisiond: {spec.node} {spec.mode}: {spec.label or 'netboot'}",
        "set tries:int32 0",
        ":fetch",
        f"kernel --name vmlinuz {kernel} {' '.join(args)} || goto retry",
    ]
    if spec.initrd_url:
        lines.append(
            f"initrd --name initrd.img {_word('initrd URL', spec.initrd_url)} || goto retry"
        )
    lines += [
        "boot || goto retry",
        ":retry",
        "imgfree",
        "inc tries",
        f"iseq ${{tries}} {FETCH_TRIES} && goto fail ||",
        "echo provisiond: download failed, retrying in 5 s",
        "sleep 5",
        "goto fetch",
        ":fail",
        f"echo provisiond: could not boot after {FETCH_TRIES} tries; rebooting in 30 s",
        "sleep 30",
        "reboot",
        "",
    ]
    return "\n".join(lines)


def local_disk(node: str, boot_mode: str) -> str:
    """Hand the node back to its firmware's next boot device (the local disk). UEFI: ``exit``
    returns to the boot manager; BIOS: boot the first hard disk directly (``exit`` there often
    ends in "no bootable device" on older BIOSes)."""
    lines = ["#!ipxe", f"# provisiond: {node} boots from its local disk"]
    lines.append(f"echo provisiond: {node}: booting from local disk")
    if boot_mode == "bios":
        lines += ["sanboot --no-describe --drive 0x80 || exit"]
    else:
        lines += ["exit"]
    return "\n".join(lines) + "\n"


def exit_script(reason: str) -> str:
    """Nothing to do for this client: say why on the console and return to the firmware."""
    safe = " ".join(reason.split())[:200]
    return f"#!ipxe\n# provisiond: {safe}\necho provisiond: {safe}\nexit\n"
