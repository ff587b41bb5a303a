"""Starts and stops the boot network's servers inside the daemon: DHCP (pxe.dhcp_server, on the
event loop) and TFTP (pxe.tftp, in its own thread), both fed by provisiond.boot.

``[pxe] mode = "off"`` starts no DHCP; TFTP runs when DHCP does, or when ``[pxe] tftp = true``.
A port that cannot be bound (69 and 67 need root or CAP_NET_BIND_SERVICE) stops the daemon at
start with the address and the reason: a daemon that silently does not answer PXE is worse.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from provisiond.boot import BootService
from provisiond.config import Settings, parse_listen
from provisiond.errors import ConfigError
from pxe.dhcp_policy import PolicyConfig
from pxe.dhcp_server import DhcpServer
from pxe.tftp import TftpService

log = logging.getLogger("provisiond.pxe")


def policy_config(settings: Settings) -> PolicyConfig:
    p = settings.pxe
    assert p.mode != "off"
    return PolicyConfig(
        mode=p.mode,
        server_address=p.server_address,
        http_base_url=settings.boot_base_url,
        subnet_mask=p.subnet_mask,
        router=p.router or None,
        dns=tuple(p.dns),
        lease_time=p.lease_time,
        discovery_pool=tuple(p.discovery_pool),
        answer_unknown=p.unknown == "discover",
        chainload_ipxe_roms=p.chainload_ipxe_roms,
    )


def prepare_tftp_root(settings: Settings) -> Path:
    """Copy the boot loaders into the TFTP root (when missing or changed), following the
    symlinks of the loaders directory, which the admin chose; returns the root."""
    p = settings.pxe
    root = settings.tftp_path
    root.mkdir(parents=True, exist_ok=True)
    src_dir = Path(p.loaders_dir)
    copied = []
    for name in p.loaders:
        src = src_dir / name
        if not src.is_file():
            continue
        dst = root / name
        if dst.is_symlink():
            dst.unlink()
        if dst.is_file() and dst.read_bytes() == src.read_bytes():
            continue
        tmp = root / f".{name}.tmp"
        shutil.copyfile(src, tmp)  # follows the source's symlink
        tmp.replace(dst)
        copied.append(name)
    have = [n for n in p.loaders if (root / n).is_file()]
    if not have:
        raise ConfigError(
            f"no boot loader in {root} and none of {', '.join(p.loaders)} in pxe.loaders_dir "
            f"{src_dir} (Debian: apt-get install ipxe)",
            key="pxe.loaders_dir",
        )
    if copied:
        log.info("tftp: copied %s from %s into %s", ", ".join(copied), src_dir, root)
    return root


class Netboot:
    def __init__(self, settings: Settings, boot: BootService) -> None:
        self.settings = settings
        self.boot = boot
        self.dhcp: DhcpServer | None = None
        self.tftp: TftpService | None = None

    async def start(self) -> None:
        p = self.settings.pxe
        self.boot.bind_loop()
        try:
            if p.tftp_enabled:
                host, port = parse_listen(p.tftp_listen)
                root = await asyncio.to_thread(prepare_tftp_root, self.settings)
                self.tftp = TftpService(
                    root,
                    host=host,
                    port=port,
                    dynamic=self.boot.tftp_file,
                    on_sent=self.boot.tftp_sent,
                    interface=p.interface or None,
                )
                try:
                    self.tftp.start()
                except OSError as exc:
                    self.tftp = None
                    raise ConfigError(
                        f"pxe.tftp_listen {p.tftp_listen}: cannot bind ({exc.strerror or exc})",
                        key="pxe.tftp_listen",
                    ) from exc
            if p.mode != "off":
                self.dhcp = DhcpServer(
                    policy_config(self.settings),
                    self.boot.dhcp_lookup,
                    interface=p.interface,
                    memory=self.boot.memory,
                    notify=self.boot.dhcp_answered,
                )
                try:
                    await self.dhcp.start()
                except OSError as exc:
                    await self.dhcp.close()
                    self.dhcp = None
                    raise ConfigError(
                        f"pxe: cannot open DHCP on interface {p.interface!r} "
                        f"({exc.strerror or exc}); it needs root and an existing interface",
                        key="pxe.interface",
                    ) from exc
        except BaseException:
            await self.stop()
            raise
        log.info(
            "netboot: dhcp %s, tftp %s, scripts at %s/boot/ipxe",
            p.mode,
            f"on {p.tftp_listen} from {p.tftp_root}" if self.tftp else "off",
            self.settings.boot_base_url,
        )

    async def stop(self) -> None:
        if self.dhcp is not None:
            await self.dhcp.close()
            self.dhcp = None
        await self.boot.close()
        if self.tftp is not None:
            tftp, self.tftp = self.tftp, None
            await asyncio.to_thread(tftp.stop)
