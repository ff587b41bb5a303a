"""SLURM's ResumeProgram/SuspendProgram hooks: the API with a scheduler token, and the shipped
contrib/slurm scripts (bash, curl, logger) run against it as slurmctld would run them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from sqlalchemy import update

from provisiond.models import Node
from tests.conftest import Api, rack_yaml
from tests.test_engine import wait_op

ROOT = Path(__file__).resolve().parents[1]


async def set_nodes(api: Api, names: list[str], **values: Any) -> None:
    async with api.services.db.write() as s:
        await s.execute(update(Node).where(Node.name.in_(names)).values(**values))


async def hook(api: Api, what: str, nodes: str, role: str = "scheduler", expect: int = 202) -> Any:
    r = await api.req("POST", f"/v1/hooks/slurm/{what}", role=role, json={"nodes": nodes})
    out = await r.json()
    assert r.status == expect, out
    return out


async def deployed_rack(api: Api) -> None:
    r = await api.enroll(rack_yaml(n=4))
    assert r.status == 201, await r.text()
    await set_nodes(api, ["r01n01", "r01n02", "r01n03"], state="active", power_state="off")
    await set_nodes(api, ["r01n03"], power_state="on")
    await set_nodes(api, ["r01n04"], state="manageable")


async def test_resume_powers_on_deployed_nodes_once(api: Api) -> None:
    await deployed_rack(api)
    out = await hook(api, "resume", "r01n[01-04],ghost[1-2]")
    assert sorted(out["operations"]) == ["r01n01", "r01n02"]
    assert out["skipped"] == {
        "r01n03": "already on",
        "r01n04": "not deployed (state manageable): provisiond leaves it alone",
    }
    assert out["unknown"] == "ghost[1-2]" and out["nodes"] == 6
    # asked again while the power-ons run: nothing new is started
    again = await hook(api, "resume", "r01n[01-02]")
    assert again["operations"] == {}
    assert all(why.startswith("already") for why in again["skipped"].values()), again
    for op_id in out["operations"].values():
        assert (await wait_op(api, op_id))["state"] == "succeeded"
    third = await hook(api, "resume", "r01n[01-02]")
    assert third["skipped"] == {"r01n01": "already on", "r01n02": "already on"}
    r = await api.req("GET", "/v1/events", params={"kind": "hook.slurm"})
    batches = [e["data"]["id"] for e in (await r.json())["items"]]
    assert batches[0] == out["id"] and len(batches) == 3


async def test_suspend_and_bad_input(api: Api) -> None:
    await deployed_rack(api)
    out = await hook(api, "suspend", "r01n03")
    assert list(out["operations"]) == ["r01n03"]
    bad = await hook(api, "suspend", "r01n[3-1]", expect=422)
    assert "runs backwards" in bad["errors"][0]["message"]
    # a tenant token is no scheduler
    denied = await api.req(
        "POST", "/v1/hooks/slurm/resume", role="tenant", json={"nodes": "r01n01"}
    )
    assert denied.status == 403


async def run_script(api: Api, tmp_path: Path, script: str, hosts: str, token: str) -> Any:
    token_file = tmp_path / "slurm.token"
    token_file.write_text(token + "\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PROVISIOND_URL": str(api.client.make_url("/")),
        "PROVISIOND_TOKEN_FILE": str(token_file),
    }
    proc = await asyncio.create_subprocess_exec(
        "bash", str(ROOT / "contrib" / "slurm" / script), hosts,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, err.decode()


async def test_the_contrib_scripts_as_slurm_runs_them(api: Api, tmp_path: Path) -> None:
    await deployed_rack(api)
    code, err = await run_script(api, tmp_path, "resume.sh", "r01n[01-02]", api.tokens["scheduler"])
    assert code == 0, err
    assert "resume r01n[01-02]: batch" in err and "2 started" in err
    code, err = await run_script(api, tmp_path, "resume.sh", "r01n04", api.tokens["scheduler"])
    assert code == 1 and "not acted on" in err, err
    code, err = await run_script(api, tmp_path, "resume.sh", "ghost1", api.tokens["scheduler"])
    assert code == 1 and "unknown: ghost1" in err, err
    code, err = await run_script(api, tmp_path, "suspend.sh", "r01n03", "pvd_not-a-token")
    assert code == 3 and "HTTP 401" in err, err
    code, err = await run_script(api, tmp_path, "resume.sh", "", api.tokens["scheduler"])
    assert code == 2 and "usage" in err, err
