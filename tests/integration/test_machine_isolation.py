"""Machines hold what runs in them (issue #13), on real agents, cgroups,
bubblewrap and network namespaces, checked from the host: the limits a
machine is told it has (memory, CPU, processes), a user that is not root
and reads no host secret, a network that reaches no host port but the
allowed one (at its own address), and that deleting a machine leaves no
process and no cgroup. Egress to the internet is not tried here (tests stay
on loopback): `make demo` installs a package from a machine's shell."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from deckhand.machine_agent.cgroups import MachineCgroup, detect
from tests.support.contract import assert_valid
from tests.support.machine_pages import pages_port, sqlite_server
from tests.support.static_site import static_site

__all__ = ["sqlite_server"]

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(detect() is None, reason="needs root and a writable cgroup tree"),
]


async def _provision(c, **body) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await c.post("/v1/machines", json={"display_name": "m", **body})
    assert r.status_code == 200, r.text
    assert r.json()["machine"]["status"] == "running", r.text
    return r.json()["machine"]  # type: ignore[no-any-return]


async def _sh(c, mid: str, command: str, timeout_ms: int = 60_000) -> dict:  # type: ignore[no-untyped-def, type-arg]
    r = await c.post(f"/v1/machines/{mid}/terminal",
                     json={"command": command, "timeout_ms": timeout_ms}, timeout=120)
    assert r.status_code == 200, r.text
    assert_valid("ActionResultResponse", r.json())
    return r.json()["result"]  # type: ignore[no-any-return]


def _cgroup(server, mid: str) -> MachineCgroup:  # type: ignore[no-untyped-def]
    mdir = (server.services.settings.data_dir / "machines" / mid).resolve()
    group = MachineCgroup.recorded(mdir)
    assert group is not None, "the machine's agent recorded no cgroup"
    return group


async def _deleted_without_trace(c, server, mid: str, group: MachineCgroup) -> None:  # type: ignore[no-untyped-def]
    pids = group.pids()
    assert pids, "the machine runs nothing in its cgroup"
    r = await c.delete(f"/v1/machines/{mid}")
    assert r.status_code == 200 and r.json()["status"] == "terminated", r.text
    assert not any(Path(f"/proc/{p}").exists() and _state(p) not in "ZX" for p in pids)
    assert not any(d.exists() for d in group.dirs.values()), group.dirs


def _state(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return raw[raw.rfind(")") + 2]


async def test_memory_limit_kills_the_offender_and_the_machine_answers(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    async with server.client(await server.key()) as c:
        mid = (await _provision(c, memory_gb=1))["id"]
        group = _cgroup(server, mid)
        limit_file = group.dirs.get("memory", group.dirs.get("unified"))
        assert limit_file is not None
        out = await _sh(c, mid, "python3 -c 'b = bytearray(1536 * 2**20); print(len(b))'; "
                                "echo rc=$?")
        assert "rc=137" in out["output"], out  # SIGKILLed by the OOM killer
        assert "1610612736" not in out["output"]
        assert (await _sh(c, mid, "echo still here"))["output"] == "still here\n"
        # the 1 GiB it was told it has is there
        ok = await _sh(c, mid, "python3 -c 'b = bytearray(600 * 2**20); print(len(b))'")
        assert ok["exit_code"] == 0, ok
        await _deleted_without_trace(c, server, mid, group)


async def test_one_core_holds_two_busy_loops(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    async with server.client(await server.key()) as c:
        mid = (await _provision(c, cpu_cores=1))["id"]
        group = _cgroup(server, mid)
        await _sh(c, mid, "for i in 1 2; do timeout 20 sh -c 'while :; do :; done' & done")
        await asyncio.sleep(0.5)  # the loops reach their quota's steady state
        used0, t0 = group.cpu_usage_ns(), time.monotonic()
        await asyncio.sleep(2.0)  # the interval the usage is measured over
        used1, t1 = group.cpu_usage_ns(), time.monotonic()
        assert used0 is not None and used1 is not None
        cores = (used1 - used0) / 1e9 / (t1 - t0)
        assert 0.2 < cores <= 1.3, f"{cores:.2f} cores"  # 0.2: the loops ran (2 shared cores)
        await _deleted_without_trace(c, server, mid, group)


async def test_a_fork_bomb_stops_at_the_process_limit(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    async with server.client(await server.key()) as c:
        mid = (await _provision(c))["id"]
        group = _cgroup(server, mid)
        out = await _sh(c, mid, "sh -c 'for i in $(seq 1500); do sleep 60 </dev/null "
                                ">/dev/null 2>&1 & done; echo launched' 2>&1 | tail -n 3",
                        timeout_ms=30_000)
        assert "Cannot fork" in out["output"], out
        running = len(group.pids())
        assert 400 < running <= 512, running
        async with httpx.AsyncClient(base_url=server.url) as plain:
            assert (await plain.get("/v1/health")).status_code == 200
        # the machine itself still answers (a builtin needs no new process)
        assert (await _sh(c, mid, "echo alive"))["output"] == "alive\n"
        await _deleted_without_trace(c, server, mid, group)


async def test_a_machine_is_not_root_and_sees_no_host_secret(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    data_dir = server.services.settings.data_dir
    async with server.client(await server.key()) as c:
        mid = (await _provision(c))["id"]
        other = (await _provision(c))["id"]
        await _sh(c, other, "echo neighbour-secret > mine.txt")
        neighbour = (data_dir / "machines" / other).resolve() / "workspace"
        assert (neighbour / "mine.txt").read_text() == "neighbour-secret\n"

        out = await _sh(c, mid, "echo $$ > pid.txt; id -u; touch made.txt; sleep 30 &")
        uid = int(out["output"].split()[0])
        assert uid >= 200_000
        ws = (data_dir / "machines" / mid).resolve() / "workspace"
        # checked from the host: the file it wrote and its processes
        assert (ws / "made.txt").stat().st_uid == uid
        assert ws.stat().st_uid == uid
        group = _cgroup(server, mid)
        live = {p: v for p in group.pids() if (v := _live_process(p)) is not None}
        uids = {p: _uid_in(status) for p, (_, status) in live.items()}
        shells = [p for p, (_, status) in live.items()
                  if status.split("\n", 1)[0].split()[1] in ("bash", "sleep")]
        assert shells and all(uids[p] == uid for p in shells), uids
        assert 0 not in {uids[p] for p in shells}
        # the neighbour has another uid
        assert neighbour.stat().st_uid not in (0, uid)

        denied = await _sh(c, mid, f"cat /etc/shadow; cat {neighbour}/mine.txt; "
                                   f"ls {data_dir}; cat /proc/1/environ; "
                                   "echo agent-token=${DECKHAND_AGENT_TOKEN:-none}")
        text = denied["output"]
        assert "root:" not in text and "neighbour-secret" not in text
        assert "agent-token=none" in text
        assert "secret" not in text.lower().replace("neighbour-secret", "")
        # the files API writes as the machine's user too
        r = await c.post(f"/v1/machines/{mid}/files/write",
                         json={"parameters": {"path": "sub/f.txt", "content": "x"}})
        assert r.status_code == 200, r.text
        assert (ws / "sub" / "f.txt").stat().st_uid == uid and (ws / "sub").stat().st_uid == uid
        assert (await _sh(c, mid, "echo more >> sub/f.txt && cat sub/f.txt"))["output"] \
            == "xmore\n"
        mdir = str((data_dir / "machines" / mid).resolve())
        await _deleted_without_trace(c, server, mid, group)
        claim = Path(f"/run/deckhand/uids/{uid}")  # given back (or already another's)
        assert not claim.exists() or claim.read_text().strip() != mdir


def _curl(url: str) -> str:
    return f"curl -sS -m 5 -o /dev/null -w '%{{http_code}}\\n' {url} 2>&1 | tail -n 1"


async def test_a_machine_reaches_only_the_allowed_host_port(sqlite_server) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    port = pages_port(server)
    with static_site({"ok.html": "allowed"}, port) as allowed, \
            static_site({"no.html": "closed"}) as other:
        async with server.client(await server.key()) as c:
            mid = (await _provision(c))["id"]
            # the allowed port answers at the address it has on the host
            out = await _sh(c, mid, f"curl -sS -m 5 {allowed}/ok.html")
            assert out["output"] == "allowed", out
            # the server's own port, another loopback port, metadata, the host's address
            host_ip = next((a for a in _host_addresses() if not a.startswith("127.")), None)
            targets = [f"{server.url}/v1/health", f"{other}/no.html",
                       "http://169.254.169.254/latest/meta-data/", "http://10.0.2.2:22/"]
            if host_ip:
                targets.append(f"http://{host_ip}:{server.url.rpartition(':')[2]}/v1/health")
            for url in targets:
                out = await _sh(c, mid, _curl(url))
                assert "Failed to connect" in out["output"] or "000" in out["output"], \
                    (url, out)
            # a server the machine starts itself is reachable inside it
            out = await _sh(c, mid, "(python3 -m http.server 8765 --bind 127.0.0.1 "
                                    ">/dev/null 2>&1 &) ; for i in $(seq 50); do "
                                    + _curl("http://127.0.0.1:8765/") + " | grep -q 200 "
                                    "&& break; sleep 0.1; done; " + _curl("http://127.0.0.1:8765/"))
            assert out["output"].strip().endswith("200"), out
            # ...and not from the host
            with pytest.raises(httpx.ConnectError):
                async with httpx.AsyncClient() as plain:
                    await plain.get("http://127.0.0.1:8765/", timeout=2)

            off = (await _provision(c, metadata={"network": "off"}))["id"]
            out = await _sh(c, off, _curl(f"{allowed}/ok.html"))
            assert "200" not in out["output"], out


def _host_addresses() -> list[str]:
    import json
    import subprocess

    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                         check=True).stdout
    return [a["local"] for link in json.loads(out) for a in link.get("addr_info", [])]


def _live_process(pid: int) -> tuple[str, str] | None:
    """(command line, /proc status text) of a live process; None once it
    has exited (or is a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    state = next((x for x in status.splitlines() if x.startswith("State:")), "State:\tX")
    return None if state.split()[1] in "ZX" else (cmdline, status)


def _uid_in(status: str) -> int:
    return int(next(x for x in status.splitlines() if x.startswith("Uid:")).split()[1])


@pytest.mark.parametrize("kind", ["browser", "desktop"])
async def test_browser_and_desktop_programs_run_as_the_machine_in_its_network(
        sqlite_server, kind: str) -> None:  # type: ignore[no-untyped-def]
    server = sqlite_server
    with static_site({"ok.html": "<title>allowed</title><p>allowed page</p>"},
                     pages_port(server)) as allowed:
        async with server.client(await server.key(scopes=None)) as c:
            shape = ({"desktop_enabled": True} if kind == "desktop"
                     else {"metadata": {"kind": kind}})
            mid = (await _provision(c, **shape))["id"]
            act = f"/v1/machines/{mid}/actions"
            r = await c.post(act, json={"command": "browser_open",
                                        "parameters": {"url": allowed + "/ok.html"}})
            assert r.json()["success"], r.json()
            r = await c.post(f"/v1/machines/{mid}/browser/dom", json={"parameters": {}})
            assert "allowed page" in r.json()["result"]["text"]
            # the server's port is closed to the machine's browser
            r = await c.post(act, json={"command": "browser_open",
                                        "parameters": {"url": server.url + "/v1/health"}})
            assert not r.json()["success"] and "ERR_CONNECTION_REFUSED" in r.json()["error"], \
                r.json()

            group = _cgroup(server, mid)
            # one reading of each live process: Chromium starts and ends
            # helpers all the time, so a pid listed may be gone a moment later
            seen = {p: _live_process(p) for p in group.pids()}
            procs = {p: v for p, v in seen.items() if v is not None}
            chromium = [p for p, (a, _) in procs.items() if a.startswith("/usr/lib/chromium/")]
            assert chromium, procs
            uid = _uid_in(procs[chromium[0]][1])
            assert uid >= 200_000
            programs = chromium + [p for p, (a, _) in procs.items()
                                   if a.split(" ")[0] in ("Xvfb", "openbox", "xterm")]
            uids = {p: _uid_in(procs[p][1]) for p in programs}
            assert all(u == uid for u in uids.values()), uids
            assert not any("--no-sandbox" in procs[p][0] for p in chromium)
            # Chromium's own sandbox is on: its renderers are in a pid namespace of
            # Chromium's (below the machine's own) and under a seccomp filter
            status = {p: procs[p][1] for p in chromium if "--type=renderer" in procs[p][0]}
            nspid = {p: next(x for x in t.splitlines() if x.startswith("NSpid")).split()[1:]
                     for p, t in status.items()}
            assert status and all(len(v) >= 3 for v in nspid.values()), nspid
            assert any("Seccomp:\t2" in t for t in status.values()), status
            if kind == "desktop":
                assert {a.split(" ")[0] for a, _ in procs.values()} >= {"Xvfb", "openbox", "xterm"}
            await _deleted_without_trace(c, server, mid, group)
