"""HTTP for booting nodes: iPXE scripts, boot assets, the agent's call-backs (no API token: a
booting node has none; the call-backs carry their one-time token), plus images and discovered
MACs for staff."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from provisiond.api import schemas as sc
from provisiond.api.keys import Services
from provisiond.api.routing import STAFF, Call, Route
from provisiond.auth import Role
from provisiond.errors import Conflict, FieldProblem, NotFound, ValidationError
from provisiond.models import DiscoveredMac, Image
from provisiond.rackfile import normalise_mac

ADMIN = frozenset({Role.ADMIN})
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _boot(services: Services) -> Any:
    if services.boot is None:
        raise NotFound("network boot is not running in this daemon")
    return services.boot


async def boot_script(call: Call) -> web.StreamResponse:
    q: sc.BootScriptQuery = call.query
    try:
        mac = normalise_mac(q.mac)
    except ValueError as exc:
        raise ValidationError(
            "bad MAC", [FieldProblem("query.mac", str(exc), value=q.mac)]
        ) from None
    text = await _boot(call.services).script(mac, call.request.remote)
    return web.Response(text=text, content_type="text/plain")


def _confine(roots: list[Path], rel: str) -> Path | None:
    """The file under one of the roots, or None; nothing outside a root (no .., no absolute
    path, no symlink pointing out) is ever served."""
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    for root in roots:
        try:
            real_root = root.resolve(strict=True)
            candidate = (real_root / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if candidate.is_relative_to(real_root) and candidate.is_file():
            return candidate
    return None


def _sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    hit = _DIGESTS.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_DIGESTS) > 10_000:
        _DIGESTS.clear()
    _DIGESTS[key] = digest
    return digest


async def boot_asset(call: Call) -> web.StreamResponse:
    """A boot asset with Range support (aiohttp's FileResponse: 206, If-Range, ETag) and its
    SHA-256 in ``Repr-Digest`` (RFC 9530) and ``X-Checksum-Sha256``; ``NAME.sha256`` answers the
    sha256sum line."""
    settings = call.services.settings
    roots = [settings.assets_path, settings.tftp_path]
    rel = call.match("path")
    want_sum = rel.endswith(".sha256")
    path = _confine(roots, rel.removesuffix(".sha256") if want_sum else rel)
    if path is None:
        raise NotFound(f"no boot asset {rel!r}", asset=rel)
    digest = await asyncio.to_thread(_sha256_of, path)
    if want_sum:
        return web.Response(text=f"{digest}  {path.name}\n", content_type="text/plain")
    resp = web.FileResponse(path, chunk_size=256 * 1024)
    b64 = base64.b64encode(bytes.fromhex(digest)).decode()
    resp.headers["Repr-Digest"] = f"sha-256=:{b64}:"
    resp.headers["X-Checksum-Sha256"] = digest
    resp.headers["Cache-Control"] = "no-cache"
    return resp


async def agent_inspect(call: Call) -> web.StreamResponse:
    body: sc.AgentInspect = call.body
    out = await _boot(call.services).inspected(body.token, body.report, call.request.remote)
    return web.json_response(out)


async def agent_deployed(call: Call) -> web.StreamResponse:
    body: sc.AgentDeployed = call.body
    out = await _boot(call.services).deployed(body.token, call.request.remote)
    return web.json_response(out)


def _image_dict(img: Image) -> dict[str, Any]:
    return {
        "name": img.name,
        "kernel": img.kernel,
        "initrd": img.initrd,
        "cmdline": img.cmdline,
        "kernel_sha256": img.kernel_sha256,
        "initrd_sha256": img.initrd_sha256,
        "created_at": img.created_at.isoformat(),
    }


async def list_images(call: Call) -> web.StreamResponse:
    async with call.services.db.read() as s:
        rows = (await s.scalars(select(Image).order_by(Image.name))).all()
    return web.json_response({"items": [_image_dict(i) for i in rows]})


def _check_local(services: Services, field: str, ref: str | None, sha: str | None) -> list[Any]:
    """A local asset must exist under the assets directory and match its digest when given."""
    if ref is None or ref.startswith(("http://", "https://")):
        return []
    path = _confine([services.settings.assets_path], ref.lstrip("/"))
    if path is None:
        where = services.settings.assets_path
        return [FieldProblem(field, f"no such file under {where}", value=ref)]
    if sha is not None and _sha256_of(path) != sha:
        return [FieldProblem(f"{field}_sha256", f"does not match {path}", value=sha)]
    return []


async def create_image(call: Call) -> web.StreamResponse:
    body: sc.ImageIn = call.body
    problems = await asyncio.to_thread(
        lambda: (
            _check_local(call.services, "kernel", body.kernel, body.kernel_sha256)
            + _check_local(call.services, "initrd", body.initrd, body.initrd_sha256)
        )
    )
    if problems:
        raise ValidationError(f"image {body.name}: bad assets", problems)
    async with call.services.db.write() as s:
        if await s.scalar(select(Image.id).where(Image.name == body.name)) is not None:
            raise Conflict(f"image {body.name} exists", image=body.name)
        img = Image(**body.model_dump())
        s.add(img)
        await s.flush()
        out = _image_dict(img)
    return web.json_response(out, status=201)


async def list_discovered(call: Call) -> web.StreamResponse:
    async with call.services.db.read() as s:
        rows = (await s.scalars(select(DiscoveredMac).order_by(DiscoveredMac.last_seen))).all()
    items = [
        {
            "mac": r.mac,
            "first_seen": r.first_seen.isoformat(),
            "last_seen": r.last_seen.isoformat(),
            "boots": r.boots,
            "client_address": r.client_address,
            "reported": r.reported_at is not None,
            "facts": r.facts,
        }
        for r in rows
    ]
    return web.json_response({"items": items})


def boot_routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/boot/ipxe",
            boot_script,
            "iPXE script of a booting node",
            "boot",
            roles=None,
            query=sc.BootScriptQuery,
            description="text/plain, first line #!ipxe; chosen by the node's state "
            "(docs/pxe.md#scripts)",
        ),
        Route(
            "GET",
            "/boot/assets/{path:.+}",
            boot_asset,
            "A boot asset (Range supported; NAME.sha256 gives its checksum)",
            "boot",
            roles=None,
            path_params={"path": "path under the assets directory or the TFTP root"},
        ),
        Route(
            "POST",
            "/v1/agent/inspect",
            agent_inspect,
            "Inspection report from the agent",
            "boot",
            roles=None,
            body=sc.AgentInspect,
            response=sc.AgentAnswer,
        ),
        Route(
            "POST",
            "/v1/agent/deployed",
            agent_deployed,
            "Call-back of a deployed image",
            "boot",
            roles=None,
            body=sc.AgentDeployed,
            response=sc.AgentAnswer,
        ),
        Route(
            "GET",
            "/v1/images",
            list_images,
            "List images",
            "images",
            STAFF,
            response=sc.ImageList,
        ),
        Route(
            "POST",
            "/v1/images",
            create_image,
            "Register an image",
            "images",
            ADMIN,
            body=sc.ImageIn,
            response=sc.ImageOut,
            status=201,
        ),
        Route(
            "GET",
            "/v1/discovered",
            list_discovered,
            "MACs that booted unenrolled",
            "boot",
            STAFF,
            response=sc.DiscoveredList,
        ),
    ]
