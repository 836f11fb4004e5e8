"""Machine agents as real processes: spawned by the local provider, reached
over loopback HTTP with RemoteMachine, shells under real bubblewrap."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from deckhand.core.actions import ReadFile, RunCommand, Wait, WriteFile
from deckhand.errors import MachineError
from deckhand.machine_agent.proctree import descendant_pids
from deckhand.machines.local import AgentHandle, LocalMachineProvider, session_pids
from deckhand.machines.remote import RemoteMachine
from tests.support.polling import wait_until

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap not installed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2] not in "ZX"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


async def _wait_gone(pids: list[int], timeout: float) -> None:
    await wait_until(lambda: [p for p in pids if _alive(p)], timeout=timeout, every=0.005,
                     done=lambda alive: not alive, what=f"processes {pids} to exit")


def _host_pid(agent_pid: int, sandbox_pid: int) -> int | None:
    """The host pid of the agent's descendant that is ``sandbox_pid`` inside
    its pid namespace (NSpid lists the pid in every namespace, host first)."""
    for pid in descendant_pids(agent_pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == sandbox_pid and _alive(pid):
                            return pid
                        break
        except OSError:
            continue
    return None


async def _host_pid_from_file(handle: AgentHandle, pid_file: Path, timeout: float = 3.0) -> int:
    """The host pid of the sandboxed process whose own pid it wrote to ``pid_file``."""

    def host_pid() -> int | None:
        try:
            sandbox_pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return None
        return _host_pid(handle.pid, sandbox_pid)

    return await wait_until(host_pid, timeout=timeout, every=0.01,
                            done=lambda pid: pid is not None, what=f"a process for {pid_file}")


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Outside /tmp on purpose: the sandbox must hide it by not binding it,
    # not merely because /tmp is a tmpfs inside.
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="deckhand-it-", dir=base))
    (d / "deckhand.db").write_text("server secrets")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
async def provider(data_dir: Path) -> AsyncIterator[LocalMachineProvider]:
    p = LocalMachineProvider(data_dir)
    yield p
    for mdir in list((data_dir / "machines").glob("*")):
        await p.destroy(mdir.name)


@pytest.fixture(scope="module")
async def machine_a(provider: LocalMachineProvider) -> AgentHandle:
    return await provider.create("mch_a")


@pytest.fixture(scope="module")
async def machine_b(provider: LocalMachineProvider) -> AgentHandle:
    return await provider.create("mch_b", network=False)


@pytest.fixture
async def a(provider: LocalMachineProvider, machine_a: AgentHandle) -> AsyncIterator[RemoteMachine]:
    async with provider.client(machine_a) as m:
        yield m


@pytest.fixture
async def b(provider: LocalMachineProvider, machine_b: AgentHandle) -> AsyncIterator[RemoteMachine]:
    async with provider.client(machine_b) as m:
        yield m


def _unique_name() -> str:
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- basics


async def test_create_layout_and_health(provider: LocalMachineProvider,
                                        machine_a: AgentHandle, a: RemoteMachine):
    mdir = provider.machine_dir("mch_a")
    assert (mdir / "workspace").stat().st_mode & 0o777 == 0o700
    assert (mdir / "token").stat().st_mode & 0o777 == 0o600
    assert machine_a.url.startswith("http://127.0.0.1:")
    assert await a.health()
    async with httpx.AsyncClient() as http:
        r = await http.get(machine_a.url + "/health",
                           headers={"Authorization": f"Bearer {machine_a.token}"})
    assert r.json() == {"status": "ok", "machine_id": "mch_a", "kinds": ["terminal", "files"]}


async def test_bad_token_is_refused(machine_a: AgentHandle):
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": machine_a.token}):
            r = await http.get(machine_a.url + "/health", headers=headers)
            assert r.status_code == 401
            r = await http.post(machine_a.url + "/act", headers=headers,
                                json={"action": {"kind": "terminal", "command": "touch pwned"}})
            assert r.status_code == 401
    async with RemoteMachine("mch_a", machine_a.url, "wrong") as m:
        assert not await m.health()
        with pytest.raises(MachineError, match="token"):
            await m.act(RunCommand(command="true"))


async def test_unreachable_agent_raises_machine_error():
    async with RemoteMachine("gone", "http://127.0.0.1:9", "t") as m:
        with pytest.raises(MachineError, match="unreachable"):
            await m.act(RunCommand(command="true"))
        assert not await m.health()


async def test_commands_keep_state_and_report_exit_codes(a: RemoteMachine,
                                                         provider: LocalMachineProvider):
    ws = provider.workspace("mch_a")
    r = await a.act(RunCommand(command="mkdir -p proj && cd proj && export V=42", session_id="s1"))
    assert r.ok and r.exit_code == 0
    r = await a.act(RunCommand(command='pwd; echo "$V"; exit_code() { return 5; }; exit_code',
                               session_id="s1"))
    assert r.ok and r.output == f"{ws}/proj\n42\n" and r.exit_code == 5
    assert r.data["cwd"] == f"{ws}/proj" and r.data["session_id"] == "s1"
    r = await a.act(RunCommand(command="pwd"))  # the default session is another shell
    assert r.output == f"{ws}\n"


async def test_file_actions_and_file_ops(a: RemoteMachine, provider: LocalMachineProvider):
    ws = provider.workspace("mch_a")
    r = await a.act(WriteFile(path="notes/todo.txt", content="buy milk\n"))
    assert r.ok and r.data["bytes"] == 9
    r = await a.act(ReadFile(path=str(ws / "notes/todo.txt")))
    assert r.ok and r.output == "buy milk\n" and r.data["encoding"] == "utf-8"
    r = await a.files("edit", {"path": "notes/todo.txt", "old_text": "milk", "new_text": "tea"})
    assert r.ok
    r = await a.files("list-directory", {"path": "notes"})
    assert r.data["entries"] == [{"name": "todo.txt", "type": "file", "size": 8}]
    r = await a.files("write", {"path": "b.bin", "content": "AAEC", "encoding": "base64"})
    assert r.ok and (ws / "b.bin").read_bytes() == b"\0\1\2"
    r = await a.files("exists", {"path": "b.bin"})
    assert r.data == {"exists": True, "type": "file"}
    r = await a.files("delete", {"path": "b.bin"})
    assert r.ok and not (ws / "b.bin").exists()
    r = await a.files("frobnicate", {})
    assert not r.ok and "unknown file operation" in (r.error or "")


async def test_file_ops_cannot_leave_the_workspace(a: RemoteMachine, data_dir: Path,
                                                  provider: LocalMachineProvider):
    for path in ("../token", str(data_dir / "deckhand.db"), "../../mch_b/workspace/x"):
        r = await a.act(ReadFile(path=path))
        assert not r.ok and "outside the workspace" in (r.error or "")
        r = await a.act(WriteFile(path=path, content="pwned"))
        assert not r.ok and "outside the workspace" in (r.error or "")
    await a.act(RunCommand(command=f"ln -sfn {data_dir} escape"))
    r = await a.act(ReadFile(path="escape/deckhand.db"))
    assert not r.ok and "outside the workspace" in (r.error or "")
    assert (data_dir / "deckhand.db").read_text() == "server secrets"


async def test_invalid_action_is_a_result_not_a_traceback(machine_a: AgentHandle):
    async with httpx.AsyncClient() as http:
        r = await http.post(machine_a.url + "/act",
                            headers={"Authorization": f"Bearer {machine_a.token}"},
                            json={"action": {"kind": "teleport"}})
    assert r.status_code == 422
    body = r.json()
    assert body["ok"] is False and "invalid action" in body["error"]
    assert "Traceback" not in r.text


# --------------------------------------------------------------------------- killing


async def test_cancelling_act_kills_the_command_within_a_second(
        a: RemoteMachine, machine_a: AgentHandle, provider: LocalMachineProvider):
    ws = provider.workspace("mch_a")
    pid_file = ws / f"{_unique_name()}.pid"
    task = asyncio.create_task(a.act(RunCommand(
        command=f"sh -c 'echo $$ > {pid_file.name}; exec sleep 600'")))
    pid = await _host_pid_from_file(machine_a, pid_file)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_gone([pid], timeout=1.0)
    assert time.monotonic() - started < 1.0
    r = await a.act(RunCommand(command="echo usable"))
    assert r.output == "usable\n"


async def test_client_disconnect_alone_kills_the_command(machine_a: AgentHandle,
                                                         provider: LocalMachineProvider):
    ws = provider.workspace("mch_a")
    pid_file = ws / f"{_unique_name()}.pid"
    body = {"action": {"kind": "terminal", "session_id": "dc",
                       "command": f"sh -c 'echo $$ > {pid_file.name}; exec sleep 600'"}}
    async with httpx.AsyncClient() as http:  # no interrupt is sent: only the disconnect
        task = asyncio.create_task(http.post(
            machine_a.url + "/act", json=body,
            headers={"Authorization": f"Bearer {machine_a.token}"}, timeout=30))
        pid = await _host_pid_from_file(machine_a, pid_file)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await _wait_gone([pid], timeout=1.0)


async def test_cancelling_a_wait_returns_at_once(a: RemoteMachine):
    task = asyncio.create_task(a.act(Wait(seconds=60)))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    assert (await a.act(Wait(seconds=0.05))).ok


async def test_timeout_kills_the_process_and_the_session_stays_usable(
        a: RemoteMachine, machine_a: AgentHandle, provider: LocalMachineProvider):
    ws = provider.workspace("mch_a")
    pid_file = ws / f"{_unique_name()}.pid"
    await a.act(RunCommand(command="cd /tmp && export T=1", session_id="t"))
    task = asyncio.create_task(a.act(RunCommand(
        command=f"sh -c 'echo $$ > {ws}/{pid_file.name}; exec sleep 600'",
        session_id="t", timeout_ms=600)))
    pid = await _host_pid_from_file(machine_a, pid_file)
    r = await task
    assert r.ok and r.exit_code == 124 and r.data["timed_out"] is True
    assert not _alive(pid)
    r = await a.act(RunCommand(command='pwd; echo "$T"', session_id="t"))
    assert r.output == "/tmp\n1\n"


async def test_interrupt_endpoint_stops_the_running_command(a: RemoteMachine):
    task = asyncio.create_task(a.act(RunCommand(command="sleep 600", session_id="int")))
    await wait_until(lambda: a.interrupt("int"), timeout=3, every=0.01,
                     what="the interrupt to find the running command")
    r = await task
    assert r.exit_code == 137 and r.data["interrupted"] is True


# --------------------------------------------------------------------------- sandbox


async def test_server_data_dir_is_invisible_inside(a: RemoteMachine, data_dir: Path,
                                                   provider: LocalMachineProvider):
    r = await a.act(RunCommand(
        command=f"cat {data_dir}/deckhand.db; cat {provider.machine_dir('mch_a')}/token; "
                f"ls -A {data_dir}/machines"))
    assert "server secrets" not in r.output
    assert r.output.splitlines()[-1] == "mch_a"  # only the path down to its own workspace


async def test_machines_cannot_see_each_other(a: RemoteMachine, b: RemoteMachine,
                                              provider: LocalMachineProvider):
    ws_a, ws_b = provider.workspace("mch_a"), provider.workspace("mch_b")
    await a.act(WriteFile(path="private.txt", content="a's data"))
    r = await b.act(RunCommand(command=f"cat {ws_a}/private.txt || echo hidden; ls {ws_a}"))
    assert "a's data" not in r.output and "hidden" in r.output
    r = await b.act(RunCommand(command=f"echo b > {ws_a}/planted.txt"))
    assert r.exit_code != 0 and not (ws_a / "planted.txt").exists()
    r = await a.act(RunCommand(command=f"ls {ws_b} || echo hidden"))
    assert "hidden" in r.output


async def test_tmp_is_private_to_each_machine(a: RemoteMachine, b: RemoteMachine):
    name = f"/tmp/deckhand-{_unique_name()}"
    r = await a.act(RunCommand(command=f"echo mine > {name} && cat {name}"))
    assert r.output == "mine\n"
    r = await b.act(RunCommand(command=f"cat {name} 2>/dev/null || echo absent"))
    assert r.output == "absent\n"
    assert not Path(name).exists()


async def test_network_off_leaves_only_loopback(b: RemoteMachine):
    r = await b.act(RunCommand(command="tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"))
    assert r.output.split() == ["lo"]


async def test_python_venv_works_inside(a: RemoteMachine, provider: LocalMachineProvider):
    r = await a.act(RunCommand(
        command="python3 -m venv --without-pip .venv && .venv/bin/python -c "
                "'import sys, ensurepip, venv; print(sys.prefix)'",
        timeout_ms=30_000))
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(provider.workspace("mch_a") / ".venv")


# --------------------------------------------------------------------------- lifecycle


async def test_attach_finds_a_running_agent(data_dir: Path, machine_a: AgentHandle):
    again = LocalMachineProvider(data_dir)  # as after a restart of the server
    handle = await again.attach("mch_a")
    assert handle == machine_a
    assert await again.attach("never-created") is None
    assert (await again.create("mch_a")) == machine_a  # create is idempotent


async def test_agent_outlives_the_process_that_spawned_it(data_dir: Path):
    script = textwrap.dedent(f"""
        import asyncio, json
        from deckhand.machines.local import LocalMachineProvider
        h = asyncio.run(LocalMachineProvider({str(data_dir)!r}).create("mch_orphan"))
        print(json.dumps({{"pid": h.pid, "url": h.url}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=30, check=True)
    spawned = json.loads(out.stdout)
    provider = LocalMachineProvider(data_dir)
    handle = await provider.attach("mch_orphan")
    assert handle is not None and handle.pid == spawned["pid"]
    await provider.destroy("mch_orphan")
    assert not _alive(spawned["pid"])


async def test_destroy_leaves_no_process_behind(data_dir: Path):
    provider = LocalMachineProvider(data_dir)
    handle = await provider.create("mch_doomed")
    async with provider.client(handle) as m:
        r = await m.act(RunCommand(
            command="sleep 900 & (sleep 901 &); nohup sleep 902 >/dev/null 2>&1 & "
                    "python3 -c 'import time; time.sleep(903)' & echo started"))
        assert r.output == "started\n"
        await m.act(RunCommand(command="sleep 904 &", session_id="second"))
        await m.act(RunCommand(command="echo plain", session_id="third"))
    procs = set(session_pids(handle.pid)) | set(descendant_pids(handle.pid))
    assert len(procs) >= 8  # agent, 3 × bwrap/bwrap/bash, and the sleeps
    started = time.monotonic()
    await provider.destroy("mch_doomed")
    elapsed = time.monotonic() - started
    assert session_pids(handle.pid) == []
    assert [p for p in procs if _alive(p)] == []
    assert not provider.machine_dir("mch_doomed").exists()
    assert await provider.attach("mch_doomed") is None
    assert elapsed < 3.0


async def test_destroy_after_the_agent_died_still_kills_its_processes(data_dir: Path):
    provider = LocalMachineProvider(data_dir, sandbox=False)  # nothing dies with bwrap here
    handle = await provider.create("mch_crashed")
    async with provider.client(handle) as m:
        await m.act(RunCommand(command="sleep 906 > /dev/null 2>&1 &"))
    left = [p for p in session_pids(handle.pid) if _cmdline(p) == "sleep 906"]
    assert len(left) == 1
    os.kill(handle.pid, 9)
    await _wait_gone([handle.pid], timeout=2.0)
    assert _alive(left[0])  # an orphan of the dead agent (its shell exits on EOF)
    await provider.destroy("mch_crashed")
    assert not _alive(left[0])
    assert session_pids(handle.pid) == []


async def test_a_stale_ready_file_is_not_trusted(data_dir: Path):
    stranger = subprocess.Popen(["sleep", "907"])
    try:
        mdir = data_dir / "machines" / "mch_stale"
        mdir.mkdir(parents=True)
        (mdir / "token").write_text("t")
        (mdir / "agent.json").write_text(json.dumps(
            {"pid": stranger.pid, "port": 9, "url": "http://127.0.0.1:9"}))
        provider = LocalMachineProvider(data_dir)
        assert await provider.attach("mch_stale") is None
        await provider.destroy("mch_stale")
        assert _alive(stranger.pid)  # the pid was reused by someone else: left alone
        assert not mdir.exists()
    finally:
        stranger.kill()
        stranger.wait()


async def test_agent_refuses_a_token_file_readable_by_others(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("t")
    token.chmod(0o644)
    (tmp_path / "ws").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "deckhand.machine_agent", "--machine-id", "x",
         "--workspace", str(tmp_path / "ws"), "--token-file", str(token)],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "chmod 600" in proc.stderr
