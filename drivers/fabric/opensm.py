"""The OpenSM fabric driver: owns one partitions.conf and tells OpenSM to re-read it.

Apply, in this order, never anything else:

1. validate the plan (base.check_plan), render it (partitions_conf.render) and parse the result
   back strictly: the file must say exactly the plan and nothing OpenSM would misread;
2. under a lock file beside it, write a temporary file in the same directory, fsync it;
3. keep the current file as ``<file>.provisiond-previous`` (a hard link made under a temporary
   name and renamed over the backup, so the backup is never partial either);
4. rename the temporary file over the live one and fsync the directory: at every instant the
   live path names a complete file, the old or the new one, whatever is killed when;
5. signal OpenSM: SIGHUP to the pid in ``pid_file`` (checked to be an opensm process), or run
   ``reload_command`` (e.g. ``ssh sm01 systemctl reload opensm``);
6. with ``log_file``, wait for OpenSM to log the re-read, and fail if it logged the fall-back to
   its default configuration; read the file back;
7. on any failure after step 4, put the previous file back the same atomic way, signal again,
   and raise FabricError: OpenSM keeps a valid file it had already accepted.

OpenSM never sees a file provisiond has not parsed. This module never edits a file it did not
render and never deletes the live file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import shlex
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.fabric import partitions_conf
from drivers.fabric.base import (
    DEFAULT_PORT_KEY_LIMIT,
    PKEY_MAX,
    PKEY_MIN,
    ApplyResult,
    FabricDriver,
    FabricError,
    Partition,
    Plan,
    PlanError,
    ReadBack,
    diff_partitions,
    ensure_plan,
)
from provisiond.errors import ConfigError, FieldProblem

BACKUP_SUFFIX = ".provisiond-previous"
# the sha256 of the content OpenSM last re-read after this driver signalled it
CONFIRMED_SUFFIX = ".provisiond-confirmed"
LOCK_SUFFIX = ".provisiond-lock"
_TMP_MARK = ".provisiond-tmp-"
# what OpenSM 3.3 logs when it processes partitions.conf (osm_prtn_config.c, osm_prtn.c)
FALLBACK_MARKS = (
    "Partition configuration in error",
    "Partition configuration was not fully processed",
    "is not accessible",
)
# a heavy sweep finished: the new tables are on the ports
# (OpenSM must run with force_log_flush TRUE, or the line arrives seconds late)
SWEEP_DONE_MARKS = ("-> SUBNET UP",)
LOCK_WAIT = 10.0


@dataclass(frozen=True)
class _Swap:
    previous: bytes | None
    changed: bool


class OpenSmDriver(FabricDriver):
    """Settings: ``partitions_file`` (absolute path), ``pid_file`` or ``reload_command``,
    optionally ``log_file`` (OpenSM's -f log: confirms the re-read, detects the fall-back),
    ``default_line`` and ``reload_timeout`` (seconds, default 10)."""

    name = "opensm"

    def __init__(
        self,
        settings: Mapping[str, Any],
        *,
        port_key_limit: int = DEFAULT_PORT_KEY_LIMIT,
        pkey_range: tuple[int, int] = (PKEY_MIN, PKEY_MAX),
    ) -> None:
        super().__init__(settings, port_key_limit=port_key_limit, pkey_range=pkey_range)
        known = {
            "partitions_file",
            "pid_file",
            "reload_command",
            "log_file",
            "default_line",
            "reload_timeout",
        }
        for key in settings:
            if key not in known:
                raise ConfigError(
                    f"settings.{key}: unknown OpenSM setting; known: {', '.join(sorted(known))}",
                    key=f"settings.{key}",
                )
        path = _abs_path(settings, "partitions_file")
        if path is None:
            raise ConfigError("settings.partitions_file: required", key="settings.partitions_file")
        self.path = path
        pid_file = _abs_path(settings, "pid_file")
        command = settings.get("reload_command")
        if (pid_file is None) == (command is None):
            raise ConfigError(
                "settings: give exactly one of pid_file (SIGHUP) or reload_command",
                key="settings.pid_file",
            )
        self.pid_file = pid_file
        self.command: list[str] | None = None
        if command is not None:
            argv = shlex.split(command) if isinstance(command, str) else command
            if not (
                isinstance(argv, list) and argv and all(isinstance(a, str) and a for a in argv)
            ):
                raise ConfigError(
                    "settings.reload_command: a command line or a list of arguments",
                    key="settings.reload_command",
                )
            self.command = argv
        self.log_file = _abs_path(settings, "log_file")
        self.default_line = str(settings.get("default_line", partitions_conf.DEFAULT_LINE))
        bad = partitions_conf.check_default_line(self.default_line)
        if bad:
            raise ConfigError(
                f"settings.default_line: {'; '.join(bad)}", key="settings.default_line"
            )
        timeout = settings.get("reload_timeout", 10)
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= 600
        ):
            raise ConfigError(
                "settings.reload_timeout: seconds, 0-600", key="settings.reload_timeout"
            )
        self.reload_timeout = float(timeout)
        self.backup = self.path.with_name(self.path.name + BACKUP_SUFFIX)
        self.marker = self.path.with_name(self.path.name + CONFIRMED_SUFFIX)

    # ------------------------------------------------------------------ contract

    async def validate(self, partitions: Sequence[Partition]) -> Plan:
        text = self._render_checked(partitions)
        current = await self.read()
        return Plan(
            partitions=tuple(sorted(partitions, key=lambda p: p.pkey)),
            diff=diff_partitions(current.partitions, partitions),
            rendered=text,
        )

    async def apply(self, partitions: Sequence[Partition], *, force: bool = False) -> ApplyResult:
        text = self._render_checked(partitions)
        before = await self.read()
        data = text.encode()
        swap = await asyncio.to_thread(self._swap_in, data, True)
        # the same bytes on disk do not prove OpenSM read them: a crash between the rename and
        # the signal, or a fall-back on a sweep someone else started, leave our file in place
        # and OpenSM elsewhere. Signal unless OpenSM confirmably read exactly this file.
        confirmed = await asyncio.to_thread(self._confirmed)
        if swap.changed or force or before.problems or confirmed != _digest(data):
            try:
                await self._reload()
            except FabricError as exc:
                outcome = await self._roll_back(swap) if swap.changed else "the file is unchanged"
                raise FabricError(f"{exc.message}; {outcome}", transient=exc.transient) from exc
            await asyncio.to_thread(self._set_confirmed, _digest(data))
        after = await self.read()
        if after.source != text:
            raise FabricError(
                f"{self.path}: read back differs from what was written (changed meanwhile?)",
                transient=True,
            )
        return ApplyResult(
            diff=diff_partitions(before.partitions, partitions) if swap.changed else (),
            observed=after,
            rendered=text,
        )

    async def read(self) -> ReadBack:
        try:
            text = await asyncio.to_thread(self.path.read_text)
        except FileNotFoundError:
            return ReadBack(
                (),
                (
                    f"{self.path} is missing: OpenSM gives every port full membership of the "
                    "default partition",
                ),
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise FabricError(f"{self.path}: cannot read: {exc}") from exc
        parsed = partitions_conf.parse(text)
        problems = [f"{self.path}: {p}" for p in parsed.problems]
        if parsed.default is None:
            problems.append(f"{self.path}: no Default line (OpenSM makes every port limited)")
        elif parsed.default != partitions_conf.parse(self.default_line + "\n").default:
            problems.append(f"{self.path}: the Default line is not the fabric's default_line")
        if self.log_file is not None:
            fell_back = await asyncio.to_thread(self._last_fallback)
            if fell_back:
                problems.append(f"{self.log_file}: {fell_back}")
        return ReadBack(parsed.partitions, tuple(problems), source=text)

    # ------------------------------------------------------------------ render

    def _render_checked(self, partitions: Sequence[Partition]) -> str:
        ensure_plan(partitions, port_key_limit=self.port_key_limit)
        text = partitions_conf.render(partitions, default_line=self.default_line)
        parsed = partitions_conf.parse(text)
        want = tuple(sorted(partitions, key=lambda p: p.pkey))
        if parsed.problems or parsed.partitions != want:
            # a renderer bug must never reach OpenSM
            problems = [
                FieldProblem("partitions.conf", str(p), line=p.line) for p in parsed.problems
            ]
            if parsed.partitions != want:
                problems.append(FieldProblem("partitions.conf", "does not parse back to the plan"))
            raise PlanError("the rendered partitions.conf would be misread", problems)
        return text

    # ------------------------------------------------------------------ the file

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An flock beside the file: two processes on this host never swap it at once."""
        lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT
            for _ in range(int(LOCK_WAIT / 0.05) + 1):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise FabricError(
                            f"{lock_path}: held by another process", transient=True
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def _swap_in(self, data: bytes, keep_backup: bool) -> _Swap:
        directory = self.path.parent
        try:
            with self._locked():
                for stale in directory.glob(f".{self.path.name}{_TMP_MARK}*"):
                    with contextlib.suppress(OSError):
                        stale.unlink()
                try:
                    previous: bytes | None = self.path.read_bytes()
                except FileNotFoundError:
                    previous = None
                if previous == data:
                    return _Swap(previous, changed=False)
                tmp = directory / f".{self.path.name}{_TMP_MARK}{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # only a file OpenSM reads as we do may ever be put back
                if keep_backup and previous is not None and _valid(previous):
                    backup_tmp = directory / f".{self.path.name}{_TMP_MARK}{os.getpid()}-prev"
                    os.link(self.path, backup_tmp)
                    os.replace(backup_tmp, self.backup)
                os.replace(tmp, self.path)
                dfd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
                return _Swap(previous, changed=True)
        except FabricError:
            raise
        except OSError as exc:
            transient = exc.errno in (errno.ENOSPC, errno.EAGAIN, errno.EBUSY)
            raise FabricError(f"{self.path}: cannot write: {exc}", transient=transient) from exc

    async def _roll_back(self, swap: _Swap) -> str:
        """Put the previous file back and have OpenSM re-read it; says how that went."""
        if swap.previous is None:
            return "there was no previous file: the new (valid) one stays"
        if not _valid(swap.previous):
            return "the previous file was not valid: the new (valid) one stays"
        try:
            await asyncio.to_thread(self._swap_in, swap.previous, False)
        except FabricError as exc:
            return f"putting the previous file back failed: {exc.message}"
        try:
            await self._reload()
        except FabricError as exc:
            return f"the previous file was put back; telling OpenSM failed too: {exc.message}"
        return "the previous file was put back and OpenSM re-read it"

    def _confirmed(self) -> str | None:
        """The digest of the file OpenSM was last confirmably told to read (by this driver)."""
        try:
            return self.marker.read_text().strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FabricError(f"{self.marker}: cannot read: {exc}", transient=True) from exc

    def _set_confirmed(self, digest: str) -> None:
        tmp = self.marker.with_name(f".{self.marker.name}{_TMP_MARK}{os.getpid()}")
        try:
            tmp.write_text(digest + "\n")
            os.replace(tmp, self.marker)
        except OSError as exc:
            raise FabricError(f"{self.marker}: cannot write: {exc}", transient=True) from exc

    # ------------------------------------------------------------------ OpenSM

    async def _reload(self) -> None:
        offset = await asyncio.to_thread(self._log_size)
        if self.pid_file is not None:
            await asyncio.to_thread(self._sighup)
        else:
            await self._run_command()
        if self.log_file is not None:
            await self._confirm(offset)

    def _sighup(self) -> None:
        assert self.pid_file is not None
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise FabricError(
                f"{self.pid_file}: no OpenSM pid in it: {exc}", transient=True
            ) from exc
        comm = Path(f"/proc/{pid}/comm")
        with contextlib.suppress(OSError):
            if not comm.read_text().startswith("opensm"):
                raise FabricError(
                    f"{self.pid_file}: pid {pid} is {comm.read_text().strip()!r}, not opensm "
                    "(stale pid file?)",
                    transient=True,
                )
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError as exc:
            raise FabricError(
                f"OpenSM is not running ({self.pid_file} names pid {pid})", transient=True
            ) from exc
        except PermissionError as exc:
            raise FabricError(f"not allowed to signal OpenSM pid {pid}: {exc}") from exc

    async def _run_command(self) -> None:
        assert self.command is not None
        env = dict(os.environ, PROVISIOND_PARTITIONS_FILE=str(self.path))
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise FabricError(f"reload_command {self.command[0]!r}: {exc}") from exc
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.reload_timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise FabricError(
                f"reload_command did not finish within {self.reload_timeout:g} s", transient=True
            ) from None
        if proc.returncode != 0:
            tail = out.decode(errors="replace").strip()[-400:]
            raise FabricError(
                f"reload_command exited {proc.returncode}: {tail or '(no output)'}", transient=True
            )

    def _log_size(self) -> int:
        if self.log_file is None:
            return 0
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    async def _confirm(self, offset: int) -> None:
        """Wait for OpenSM to log that it re-read the file and finished the sweep; FabricError
        when it logged the fall-back to its default configuration instead."""
        assert self.log_file is not None
        deadline = time.monotonic() + self.reload_timeout
        for _ in range(int(self.reload_timeout / 0.02) + 2):
            text = await asyncio.to_thread(self._log_since, offset)
            for line in text.splitlines():
                if any(mark in line for mark in FALLBACK_MARKS):
                    raise FabricError(
                        f"OpenSM refused the partitions file and fell back to its default "
                        f"configuration (every port a full member of 0x7fff): {line.strip()}",
                        transient=False,
                    )
            if any(mark in text for mark in SWEEP_DONE_MARKS):
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        raise FabricError(
            f"OpenSM logged no finished sweep in {self.log_file} within "
            f"{self.reload_timeout:g} s of the reload",
            transient=True,
        )

    def _log_since(self, offset: int) -> str:
        assert self.log_file is not None
        try:
            with self.log_file.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(offset if offset <= size else 0)  # a rotated log starts again
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _last_fallback(self) -> str | None:
        """The fall-back line of the last heavy sweep OpenSM finished, if it logged one. Every
        heavy sweep (the only ones that re-read the file) ends with ``SUBNET UP``, a fall-back
        sweep included, so the last sweep is the log between the last two of those."""
        assert self.log_file is not None
        try:
            with self.log_file.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 256 * 1024))
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        verdict: str | None = None
        current: str | None = None
        for line in text.splitlines():
            if any(mark in line for mark in FALLBACK_MARKS):
                current = line.strip()
            elif any(mark in line for mark in SWEEP_DONE_MARKS):
                verdict, current = current, None
        if verdict is None:
            return None
        return (
            "OpenSM's last sweep fell back to its default configuration (every port a full "
            f"member of 0x7fff): {verdict}"
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _valid(data: bytes) -> bool:
    """Whether ``data`` is a partitions.conf OpenSM reads as we do (nothing it would misread,
    a Default line)."""
    try:
        parsed = partitions_conf.parse(data.decode())
    except UnicodeDecodeError:
        return False
    return not parsed.problems and parsed.default is not None


def _abs_path(settings: Mapping[str, Any], key: str) -> Path | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise ConfigError(f"settings.{key}: an absolute path, got {value!r}", key=f"settings.{key}")
    return Path(value)
