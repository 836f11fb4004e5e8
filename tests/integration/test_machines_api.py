"""The machines API end to end on real machine agents: provisioning
(asynchronous, from the warm pool), lifecycle and its 409 rules, TTL and the
sweeper, per-account limits, snapshots, metering, files, sandbox isolation,
server restarts and process clean-up."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from deckhand.core.clock import utcnow
from deckhand.machine_agent.cgroups import MachineCgroup
from deckhand.machines.local import session_pids
from deckhand.store import machines as machines_store
from tests.conftest import make_settings, serve
from tests.support.contract import assert_error, assert_valid
from tests.support.machine_pages import server, serving, sqlite_server
from tests.support.polling import wait_until
from tests.support.runs import start, wait_for

__all__ = ["server", "sqlite_server"]  # fixtures that terminate leftover machines

pytestmark = pytest.mark.asyncio


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2] not in "ZX"


def _agent_pid(data_dir: Path, machine_id: str) -> int:
    return int(json.loads((data_dir / "machines" / machine_id / "agent.json").read_text())["pid"])


async def _provision(c, **body) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await c.post("/v1/machines", json={"display_name": "m", **body})
    assert r.status_code == 200, r.text
    assert_valid("ProvisionResponse", r.json())
    return r.json()["machine"]  # type: ignore[no-any-return]


async def _sh(c, mid: str, command: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await c.post(f"/v1/machines/{mid}/terminal", json={"command": command})
    assert r.status_code == 200, r.text
    assert_valid("ActionResultResponse", r.json())
    return r.json()  # type: ignore[no-any-return]


async def test_lifecycle_and_its_state_rules(server) -> None:  # type: ignore[no-untyped-def]
    key = await server.key()
    async with server.client(key) as c:
        m = await _provision(c, ttl_minutes=60, metadata={"team": "a"})
        mid = m["id"]
        assert m["status"] == "running" and m["kind"] == "terminal"
        assert m["ttl_minutes"] == 60 and m["auto_destroy_at"]
        assert (await _sh(c, mid, "echo hi > f.txt; cat f.txt"))["result"]["output"] == "hi\n"

        r = await c.get(f"/v1/machines/{mid}")
        assert_valid("GetMachineResponse", r.json())
        r = await c.get("/v1/machines")
        assert_valid("ListMachinesResponse", r.json())
        assert [x["id"] for x in r.json()["data"]] == [mid]

        assert_error(await c.post(f"/v1/machines/{mid}/start"), 409, "INVALID_STATE")
        r = await c.post(f"/v1/machines/{mid}/stop")
        assert_valid("LifecycleResponse", r.json())
        assert r.json()["status"] == "stopped"
        assert_error(await c.post(f"/v1/machines/{mid}/stop"), 409, "INVALID_STATE")
        assert_error(await c.post(f"/v1/machines/{mid}/restart"), 409, "INVALID_STATE")
        assert_error(await c.post(f"/v1/machines/{mid}/terminal", json={"command": "true"}),
                     409, "INVALID_STATE")
        r = await c.post(f"/v1/machines/{mid}/start")
        assert r.json()["status"] == "running"
        # the workspace survived the stop
        assert (await _sh(c, mid, "cat f.txt"))["result"]["output"] == "hi\n"
        r = await c.post(f"/v1/machines/{mid}/restart")
        assert r.json()["status"] == "running"
        assert (await _sh(c, mid, "cat f.txt"))["result"]["output"] == "hi\n"

        r = await c.patch(f"/v1/machines/{mid}", json={"ttl_minutes": 0})
        assert_valid("UpdateMachineResponse", r.json())
        assert r.json()["ttl_minutes"] is None and r.json()["auto_destroy_at"] is None
        assert_error(await c.patch(f"/v1/machines/{mid}", json={"ttl_minutes": 3}), 422,
                     "VALIDATION_ERROR")
        r = await c.patch(f"/v1/machines/{mid}", json={"ttl_minutes": 5})
        assert r.json()["ttl_minutes"] == 5

        pid = _agent_pid(server.services.settings.data_dir, mid)
        procs = session_pids(pid)
        assert len(procs) >= 2  # the agent and its sandboxed shell
        r = await c.delete(f"/v1/machines/{mid}")
        assert_valid("LifecycleResponse", r.json())
        assert r.json()["status"] == "terminated"
        assert not [p for p in procs if _alive(p)]
        assert not (server.services.settings.data_dir / "machines" / mid).exists()
        r = await c.delete(f"/v1/machines/{mid}")  # idempotent
        assert r.status_code == 200 and r.json()["status"] == "terminated"
        assert_error(await c.post(f"/v1/machines/{mid}/start"), 409, "INVALID_STATE")
        assert (await c.get("/v1/machines")).json()["data"] == []


async def test_files_sub_api_all_ops_and_isolation(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    data_dir = sqlite_server.services.settings.data_dir
    (data_dir / "server-secret.txt").write_text("not for machines")
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        a = (await _provision(c))["id"]
        b = (await _provision(c))["id"]

        async def op(mid: str, name: str, **params: object) -> dict:  # type: ignore[type-arg]
            r = await c.post(f"/v1/machines/{mid}/files/{name}", json={"parameters": params})
            assert r.status_code == 200, r.text
            assert_valid("ActionResultResponse", r.json())
            return r.json()  # type: ignore[no-any-return]

        assert (await op(a, "write", path="dir/note.txt", content="one"))["success"]
        assert (await op(a, "append", path="dir/note.txt", content=" two"))["success"]
        assert (await op(a, "edit", path="dir/note.txt", old_text="two",
                         new_text="2"))["success"]
        assert (await op(a, "read", path="dir/note.txt"))["result"]["output"] == "one 2"
        assert (await op(a, "exists", path="dir/note.txt"))["result"]["exists"] is True
        names = [e["name"] for e in (await op(a, "list", path="dir"))["result"]["entries"]]
        assert names == ["note.txt"]
        assert (await op(a, "list-directory", path="."))["success"]
        dl = (await op(a, "download", path="dir/note.txt"))["result"]
        assert base64.b64decode(dl["output"]) == b"one 2"
        assert (await op(a, "list-downloads"))["result"]["entries"] == []
        assert (await op(a, "delete", path="dir/note.txt"))["success"]
        assert (await op(a, "delete-directory", path="dir"))["success"]
        escaped = await op(a, "read", path=str(data_dir / "server-secret.txt"))
        assert not escaped["success"]

        # scopes: a read-only key cannot write
        ro = await sqlite_server.key(scopes=("files:read",))
        async with sqlite_server.client(ro) as c2:
            r = await c2.post(f"/v1/machines/{a}/files/write",
                              json={"parameters": {"path": "x", "content": "y"}})
            assert_error(r, 403, "INSUFFICIENT_SCOPE")

        # the sandbox: no server data, no other machine
        secret = await _sh(c, a, f"cat {data_dir}/server-secret.txt; ls {data_dir}")
        assert "not for machines" not in secret["result"]["output"]
        # only the path down to its own workspace exists inside the sandbox
        assert "deckhand.db" not in secret["result"]["output"]
        assert "secret_key" not in secret["result"]["output"]
        await _sh(c, a, "echo private-to-a > mine.txt")
        b_ws = data_dir / "machines" / b / "workspace"
        a_ws = data_dir / "machines" / a / "workspace"
        peek = await _sh(c, b, f"cat {a_ws}/mine.txt; ls {a_ws}")
        assert "private-to-a" not in peek["result"]["output"]
        assert (await op(b, "exists", path="mine.txt"))["result"]["exists"] is False
        assert b_ws != a_ws


async def test_actions_terminal_sessions_cwd_timeouts_and_unknown_commands(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        mid = (await _provision(c))["id"]
        r = await c.post(f"/v1/machines/{mid}/terminal",
                         json={"command": "mkdir -p sub && cd sub && export X=1",
                               "session_id": "s1"})
        assert r.json()["success"]
        r = await c.post(f"/v1/machines/{mid}/terminal",
                         json={"command": "echo $X; pwd", "session_id": "s1"})
        assert r.json()["result"]["output"].startswith("1\n")
        assert r.json()["result"]["output"].rstrip().endswith("/sub")
        r = await c.post(f"/v1/machines/{mid}/terminal",
                         json={"command": "echo ${X:-unset}", "cwd": "sub"})
        assert r.json()["result"]["output"] == "unset\n"
        assert r.json()["result"]["cwd"].endswith("/sub")
        r = await c.post(f"/v1/machines/{mid}/terminal",
                         json={"command": "sleep 30", "timeout_ms": 1000})
        assert r.json()["result"]["timed_out"] is True
        big = await c.post(f"/v1/machines/{mid}/terminal",
                           json={"command": "head -c 20000 /dev/zero | tr '\\0' x"})
        assert len(big.json()["result"]["output"]) == 5000 and big.json()["result"]["truncated"]
        act = f"/v1/machines/{mid}/actions"
        r = await c.post(act, json={"command": "terminal_read", "parameters": {"session_id": "s1"}})
        assert "echo $X" in r.json()["result"]["output"]
        # no desktop: window commands say why; no page: clicks say why
        r = await c.post(act, json={"command": "minimize_window", "parameters": {"title": "x"}})
        assert not r.json()["success"] and "needs a desktop" in r.json()["error"]
        r = await c.post(act, json={"command": "click", "parameters": {"x": 5, "y": 5}})
        assert not r.json()["success"] and "no page is open" in r.json()["error"]
        # the screen of a terminal machine is the rendered terminal
        shot = (await c.get(f"/v1/machines/{mid}/screenshot")).json()
        assert_valid("ScreenshotResponse", shot)
        assert (shot["width"], shot["height"], shot["source"]) == (1280, 800, "terminal")
        assert_error(await c.post(act, json={"command": "reboot"}), 422, "VALIDATION_ERROR")
        r = await c.post(f"{act}/batch", json={"steps": [{"command": "screenshot"}] * 51})
        assert_error(r, 422, "VALIDATION_ERROR")
        r = await c.post(f"{act}/batch", json={"stop_on_error": False, "steps": [
            {"command": "file_read", "parameters": {"path": "missing"}},
            {"command": "terminal_execute", "parameters": {"command": "echo after"}}]})
        b = r.json()
        assert_valid("BatchActionResponse", b)
        assert (b["completed_count"], b["failed_count"], b["aborted"]) == (1, 1, False)
        # per-command scopes: terminal_* needs terminal:exec
        only_actions = await sqlite_server.key(scopes=("actions:exec",))
        async with sqlite_server.client(only_actions) as c2:
            r = await c2.post(act, json={"command": "terminal_execute",
                                         "parameters": {"command": "id"}})
            assert_error(r, 403, "INSUFFICIENT_SCOPE")
            r = await c2.post(f"{act}/batch", json={"steps": [
                {"command": "screenshot"}, {"command": "file_read", "parameters": {"path": "x"}}]})
            assert_error(r, 403, "INSUFFICIENT_SCOPE")


async def test_snapshot_restore_pricing_and_metering(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    svc = sqlite_server.services
    key = await sqlite_server.key(account="payer", credits=100)
    async with sqlite_server.client(key) as c:
        a = (await _provision(c))["id"]
        await _sh(c, a, "echo kept > state.txt")
        r = await c.post(f"/v1/machines/{a}/snapshot")
        assert r.status_code == 200, r.text
        assert_valid("SnapshotResponse", r.json())
        assert r.json()["credits_charged"] == 1 and r.headers["x-credits-charged"] == "1"
        b = await _provision(c, restore_from_snapshot=True,
                             metadata={"snapshot_id": r.json()["snapshot_id"]})
        assert (await _sh(c, b["id"], "cat state.txt"))["result"]["output"] == "kept\n"

        pricing = (await c.get("/v1/machines/pricing")).json()
        assert_valid("MachinePricingResponse", pricing)
        assert pricing["pricing"]["runtime"]["linux"]["running_credits_per_hour"] == 5

        # an hour of runtime: 5 credits at the contract's rate
        async with svc.db.write() as conn:
            await machines_store.set_fields(conn, a, billing_since=utcnow() - timedelta(hours=1))
        active = (await c.get("/v1/billing/active")).json()
        assert_valid("BillingActiveResponse", active)
        item = next(x for x in active["active"] if x["machine_id"] == a)
        assert item["accrued_cents"] == 5 and item["rate_cents_per_hour"] == 5
        assert active["current_run_rate_cents_per_hour"] == 10
        await svc.machines.sweep()
        m = (await c.get(f"/v1/machines/{a}")).json()["machine"]
        assert m["billing"]["total_credits_billed"] == 5 and m["billing"]["accrued_cents"] == 0
        r = await c.post(f"/v1/machines/{a}/stop")
        m = (await c.get(f"/v1/machines/{a}")).json()["machine"]
        assert m["status"] == "stopped" and m["billing"]["projected_daily_cents"] == 24
        await c.delete(f"/v1/machines/{a}")
        await c.delete(f"/v1/machines/{b['id']}")
        # what the machines cost shows in usage, beside the requests
        usage = (await c.get("/v1/usage")).json()
        assert_valid("UsageSummaryResponse", usage)
        parts = usage["breakdown"]
        assert parts["machineSnapshots"]["credits"] == 1
        assert parts["machineSnapshots"]["requests"] == 1
        assert parts["machineRuntime"]["credits"] >= 5
        assert usage["total_credits"] == sum(p["credits"] for p in parts.values())
        assert usage["balance"] == 100 - usage["total_credits"]
    test_key = await sqlite_server.key(account="payer", test=True)
    async with sqlite_server.client(test_key) as c:
        t = await _provision(c)
        assert t["id"].startswith("mch_test_") and t["billing"]["running_credits_per_hour"] == 0
        assert (await c.get("/v1/billing/active")).json()["active"] == []
        await c.delete(f"/v1/machines/{t['id']}")


async def test_ttl_sweep_limit_and_offline_run(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, machine_limit_per_account=2)
    async with serving(settings) as s:
        key = await s.key()
        async with s.client(key) as c:
            a = (await _provision(c, ttl_minutes=5))["id"]
            b = (await _provision(c))["id"]
            err = assert_error(await c.post("/v1/machines", json={"display_name": "x"}),
                               409, "CONFLICT")
            assert "limit 2" in err["message"]
            run = await start(c, machine_id=b, task='run `echo from-run` then verify the '
                                                   'output contains "from-run"')
            assert (await wait_for(c, run["id"]))["status"] == "succeeded"
            # the TTL passes: the sweeper destroys the machine
            async with s.services.db.write() as conn:
                await machines_store.set_fields(conn, a,
                                                auto_destroy_at=utcnow() - timedelta(seconds=1))
            pid = _agent_pid(settings.data_dir, a)
            done = await s.services.machines.sweep()
            assert (a, "ttl") in done
            assert (await c.get(f"/v1/machines/{a}")).json()["machine"]["status"] == "terminated"
            assert not _alive(pid)
            # a stopped machine does not count against the limit
            await c.post(f"/v1/machines/{b}/stop")
            c_id = (await _provision(c))["id"]
            d_id = (await _provision(c))["id"]
            for mid in (b, c_id, d_id):
                await c.delete(f"/v1/machines/{mid}")


async def test_machines_survive_a_server_restart(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    async with serve(settings, keep_machines=True) as s:
        key = await s.key()
        async with s.client(key) as c:
            mid = (await _provision(c))["id"]
            await _sh(c, mid, "export KEPT=yes")
    pid = _agent_pid(settings.data_dir, mid)
    assert _alive(pid)  # the agent outlived the server
    async with serve(settings) as s, s.client(key) as c:
        out = await _sh(c, mid, "echo ${KEPT:-lost}")
        assert out["result"]["output"] == "yes\n"  # the same shell: re-attached
        assert _agent_pid(settings.data_dir, mid) == pid
        await c.delete(f"/v1/machines/{mid}")
    assert not _alive(pid)


async def test_warm_pool_provisions_from_a_spare(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, machine_pool_terminal=1)
    async with serving(settings) as s:
        pool = s.services.machines.pool
        await wait_until(lambda: pool.available("terminal"), timeout=10,
                         what="a warm terminal spare")
        assert pool.available("terminal") == 1
        key = await s.key()
        async with s.client(key) as c:
            m = await _provision(c, memory_gb=1, cpu_cores=2)
            # Running at once, on a claimed spare (its speed is bench/machines.py's to measure)
            assert m["status"] == "running"
            assert (settings.data_dir / "machines" / m["id"]).is_symlink()
            # the spare took the machine's limits at the claim
            group = MachineCgroup.recorded((settings.data_dir / "machines" / m["id"]).resolve())
            assert group is not None, "the spare's agent recorded no cgroup"
            if group.version == 1:
                assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text().strip() \
                    == str(2**30)
                assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "200000"
            else:
                d = group.dirs["unified"]
                assert (d / "memory.max").read_text().strip() == str(2**30)
                assert (d / "cpu.max").read_text().split()[0] == "200000"
            out = await _sh(c, m["id"], "echo pooled; echo $HOME")
            assert out["result"]["output"].startswith("pooled\n")
            spare_dirs = [p for p in (settings.data_dir / "machines").iterdir()
                          if p.name.startswith("pool-")]
            await c.delete(f"/v1/machines/{m['id']}")
            assert not (settings.data_dir / "machines" / m["id"]).exists()
    # closing the server stops its spares
    left = [p for p in (settings.data_dir / "machines").iterdir()]
    assert left == [], (left, spare_dirs)
