"""Persistent bash sessions: real bash, real bubblewrap, no mocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from deckhand.machine_agent.terminal import OUTPUT_LIMIT, TerminalError, TerminalSessions
from tests.support.polling import wait_until

HAVE_BWRAP = shutil.which("bwrap") is not None
SANDBOX_MODES = [
    pytest.param(False, id="plain"),
    pytest.param(True, id="bwrap",
                 marks=pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap not installed")),
]
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap not installed")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2] not in "ZX"


def _pids_running(needle: str) -> list[int]:
    """Host pids of live processes whose command line contains ``needle``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and _alive(int(name)):
            found.append(int(name))
    return found


async def _wait_for_pids(needle: str, timeout: float = 3.0) -> list[int]:
    return await wait_until(lambda: _pids_running(needle), timeout=timeout, every=0.01,
                            what=f"a process running {needle!r}")


async def _wait_gone(pids: list[int], timeout: float = 1.0) -> None:
    await wait_until(lambda: [p for p in pids if _alive(p)], timeout=timeout, every=0.01,
                     done=lambda alive: not alive, what=f"processes {pids} to exit")


def _unique_sleep() -> str:
    """A sleep duration nobody else uses, to find the process in /proc."""
    return f"{300 + uuid.uuid4().int % 10_000}.{uuid.uuid4().int % 1000:03d}"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o700)
    return ws


@pytest.fixture(params=SANDBOX_MODES)
async def term(request: pytest.FixtureRequest, workspace: Path):
    t = TerminalSessions(workspace, sandbox=request.param)
    yield t
    await t.close_all()


@pytest.fixture
async def sandboxed(workspace: Path):
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap not installed")
    t = TerminalSessions(workspace, sandbox=True)
    yield t
    await t.close_all()


# --------------------------------------------------------------------------- basics


async def test_cd_and_export_persist_between_commands(term: TerminalSessions, workspace: Path):
    (workspace / "sub").mkdir()
    r1 = await term.run("cd sub && export GREETING=hello && X=1")
    assert r1.exit_code == 0
    r2 = await term.run('pwd; echo "$GREETING $X"')
    assert r2.output == f"{workspace}/sub\nhello 1\n"
    assert r2.cwd == f"{workspace}/sub"


async def test_home_is_the_workspace_and_shell_starts_there(term: TerminalSessions,
                                                           workspace: Path):
    r = await term.run('pwd; echo "$HOME"; cd; pwd')
    assert r.output == f"{workspace}\n{workspace}\n{workspace}\n"


async def test_exit_codes_and_stderr_merged(term: TerminalSessions):
    assert (await term.run("true")).exit_code == 0
    assert (await term.run("false")).exit_code == 1
    r = await term.run("echo out; echo err >&2; sh -c 'exit 7'")
    assert r.exit_code == 7
    assert r.output == "out\nerr\n"


async def test_output_without_trailing_newline_is_exact(term: TerminalSessions):
    assert (await term.run("printf abc")).output == "abc"
    assert (await term.run("printf 'a\\n\\n'")).output == "a\n\n"


async def test_syntax_error_and_stdin_readers_do_not_break_the_session(term: TerminalSessions):
    r = await term.run("echo 'unterminated")
    assert r.exit_code == 2 and "unexpected EOF" in r.output
    r = await term.run("cat; read line; echo read=$?")  # stdin is /dev/null
    assert r.output == "read=1\n"
    assert (await term.run("echo fine")).output == "fine\n"


async def test_multiline_commands_heredocs_and_quotes(term: TerminalSessions):
    cmd = "cat <<'EOF'\nline 'one'\n\"two\" $HOME \\n\nEOF\nfor i in 1 2; do\n  echo $i\ndone"
    r = await term.run(cmd)
    assert r.output == "line 'one'\n\"two\" $HOME \\n\n1\n2\n"
    r = await term.run("echo 'héllo ✓'")
    assert r.output == "héllo ✓\n"


async def test_forged_end_marker_in_output_is_ignored(term: TerminalSessions):
    r = await term.run("printf '\\n__DH_END_0123456789abcdef__0 /\\n'; echo real")
    assert r.output.endswith("real\n")
    assert "__DH_END_0123456789abcdef__0 /" in r.output


async def test_invalid_utf8_is_replaced(term: TerminalSessions):
    r = await term.run("printf 'a\\377b\\n'")
    assert r.output == "a\ufffdb\n"


async def test_cwd_argument_is_relative_to_the_workspace(term: TerminalSessions,
                                                         workspace: Path):
    (workspace / "proj").mkdir()
    await term.run("cd /")
    r = await term.run("pwd", cwd="proj")
    assert r.output == f"{workspace}/proj\n"
    r = await term.run("echo never", cwd="missing")
    assert r.exit_code == 1 and "never" not in r.output
    r = await term.run("pwd", cwd=str(workspace))
    assert r.output == f"{workspace}\n"


async def test_exit_closes_the_session_and_the_next_command_starts_fresh(
        term: TerminalSessions, workspace: Path):
    await term.run("cd / && export K=v")
    r = await term.run("echo bye; exit 3")
    assert r.exit_code == 3 and r.output == "bye\n" and r.session_closed
    r = await term.run('pwd; echo "[$K]"')
    assert r.output == f"{workspace}\n[]\n" and not r.session_closed


async def test_output_is_capped_keeping_the_tail(term: TerminalSessions):
    r = await term.run("seq 1 300000")
    assert r.truncated
    assert len(r.output) <= OUTPUT_LIMIT
    assert r.output.startswith("[output truncated")
    assert r.output.endswith("\n299999\n300000\n")
    assert (await term.run("echo small")).output == "small\n"


async def test_sessions_are_independent_and_run_in_parallel(term: TerminalSessions,
                                                            workspace: Path):
    await term.run("cd /", session_id="a")
    assert (await term.run("pwd", session_id="b")).output == f"{workspace}\n"
    assert (await term.run("pwd", session_id="a")).output == "/\n"
    started = time.monotonic()
    await asyncio.gather(term.run("sleep 0.4", session_id="a"),
                         term.run("sleep 0.4", session_id="b"))
    assert time.monotonic() - started < 0.75
    assert term.session_ids() == ["a", "b"]


async def test_nul_byte_is_refused(term: TerminalSessions):
    with pytest.raises(TerminalError):
        await term.run("echo a\x00b")


# --------------------------------------------------------------------------- killing


async def test_timeout_kills_the_command_and_the_session_stays_usable(term: TerminalSessions):
    await term.run("cd / && export KEEP=yes")
    duration = _unique_sleep()
    task = asyncio.create_task(term.run(f"sleep {duration} | cat", timeout_ms=400))
    pids = await _wait_for_pids(f"sleep {duration}")
    r = await task
    assert r.timed_out and r.exit_code == 124
    assert "timed out" in r.output
    assert 350 <= r.duration_ms < 2000
    await _wait_gone(pids)
    r = await term.run('pwd; echo "$KEEP"')
    assert r.output == "/\nyes\n" and r.exit_code == 0


async def test_timeout_spares_background_jobs_of_earlier_commands(term: TerminalSessions):
    bg, fg = _unique_sleep(), _unique_sleep()
    await term.run(f"sleep {bg} > /dev/null 2>&1 &")
    bg_pids = await _wait_for_pids(f"sleep {bg}")
    r = await term.run(f"sleep {fg}", timeout_ms=300)
    assert r.timed_out
    assert all(_alive(p) for p in bg_pids)
    await term.close_all()
    await _wait_gone(bg_pids)


async def test_timeout_of_a_builtin_wait_recovers(term: TerminalSessions):
    bg = _unique_sleep()
    await term.run(f"sleep {bg} > /dev/null 2>&1 &")
    r = await term.run("wait", timeout_ms=300)  # waits on the earlier job: killed at last
    assert r.timed_out
    assert (await term.run("echo ok")).output == "ok\n"


async def test_cancelling_run_kills_the_command_quickly(term: TerminalSessions):
    await term.run("cd /")
    duration = _unique_sleep()
    task = asyncio.create_task(term.run(f"sh -c 'sleep {duration}; echo done'"))
    pids = await _wait_for_pids(f"sleep {duration}")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_gone(pids, timeout=0.5)
    assert time.monotonic() - started < 0.5
    r = await term.run("pwd")
    assert r.output == "/\n"


async def test_interrupt_kills_the_running_command(term: TerminalSessions):
    assert not await term.interrupt()
    duration = _unique_sleep()
    task = asyncio.create_task(term.run(f"sleep {duration}"))
    pids = await _wait_for_pids(f"sleep {duration}")
    assert await term.interrupt()
    r = await task
    assert r.exit_code == 137 and r.interrupted
    await _wait_gone(pids)
    assert (await term.run("echo again")).output == "again\n"


async def test_an_interrupt_stops_the_whole_command_not_only_its_current_process(
        term: TerminalSessions):
    # the first sleep is what runs when the interrupt comes; the second is
    # forked after the kill (as a command's process may be when an interrupt
    # lands before the shell forked it): it must not run on
    first, second = _unique_sleep(), _unique_sleep()
    task = asyncio.create_task(term.run(f"sleep {first}; sleep {second}"))
    await _wait_for_pids(f"sleep {first}")
    assert await term.interrupt()
    r = await asyncio.wait_for(task, timeout=30)
    assert r.exit_code == 137 and r.interrupted, r
    assert not _pids_running(f"sleep {second}")
    assert (await term.run("echo again")).output == "again\n"


async def test_close_all_kills_background_processes(term: TerminalSessions):
    bg = _unique_sleep()
    await term.run(f"sleep {bg} > /dev/null 2>&1 & (sleep {bg} > /dev/null 2>&1 &)")
    pids = await _wait_for_pids(f"sleep {bg}")
    await term.close_all()
    # the orphaned one is reparented away from the shell: only bwrap's pid
    # namespace takes it down with the session; without the sandbox it is
    # left to the machine provider (which kills the agent's whole session)
    if term.sandbox:
        await _wait_gone(pids)
    else:
        for p in pids:
            if _alive(p):
                os.kill(p, 9)


# --------------------------------------------------------------------------- sandbox


@needs_bwrap
async def test_sandbox_hides_files_outside_the_workspace(sandboxed: TerminalSessions,
                                                         tmp_path: Path):
    secret = tmp_path / "data" / "deckhand.db"
    secret.parent.mkdir()
    secret.write_text("top secret")
    r = await sandboxed.run(f"cat {secret}")
    assert "top secret" not in r.output and r.exit_code == 1
    r = await sandboxed.run(f"ls -A {tmp_path}")  # only the path to the workspace exists
    assert r.output == "ws\n"
    r = await sandboxed.run("ls /")
    assert set(r.output.split()) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                                     "proc", "root", "sbin", "tmp", "usr", "var"}
    r = await sandboxed.run("find /var -mindepth 1 -maxdepth 2")  # only the font cache
    assert set(r.output.split()) <= {"/var/cache", "/var/cache/fontconfig"}, r.output


@needs_bwrap
async def test_sandbox_tmp_is_private(sandboxed: TerminalSessions):
    host_file = Path("/tmp") / f"deckhand-host-{uuid.uuid4().hex}"
    host_file.write_text("host")
    inner = f"/tmp/deckhand-inner-{uuid.uuid4().hex}"
    try:
        r = await sandboxed.run(f"test -e {host_file} && echo visible; echo x > {inner} && "
                                f"cat {inner}")
        assert r.output == "x\n"
        assert not Path(inner).exists()
    finally:
        host_file.unlink()


@needs_bwrap
async def test_sandbox_system_is_read_only_and_workspace_writable(
        sandboxed: TerminalSessions, workspace: Path):
    r = await sandboxed.run("touch /usr/deckhand-test 2>/dev/null || echo refused; "
                            "echo data > mine.txt && cat mine.txt")
    assert r.output == "refused\ndata\n"
    assert (workspace / "mine.txt").read_text() == "data\n"


@needs_bwrap
async def test_sandbox_sees_only_its_own_processes(sandboxed: TerminalSessions):
    r = await sandboxed.run("ls /proc | grep -c '^[0-9]'")
    assert int(r.output) < 10


@needs_bwrap
async def test_sandbox_without_network_has_only_loopback(workspace: Path):
    t = TerminalSessions(workspace, sandbox=True, network=False)
    try:
        r = await t.run("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")
        assert r.output.split() == ["lo"]
    finally:
        await t.close_all()


async def test_agent_environment_does_not_leak_into_the_shell(
        term: TerminalSessions, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DECKHAND_AGENT_TOKEN", "s3cret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-leak")
    await term.close_all()  # new sessions see the patched environment
    r = await term.run('echo "[${DECKHAND_AGENT_TOKEN-}][${ANTHROPIC_API_KEY-}]"')
    assert r.output == "[][]\n"


@needs_bwrap
async def test_python_venv_works_inside_the_sandbox(sandboxed: TerminalSessions,
                                                    workspace: Path):
    r = await sandboxed.run(
        "python3 -m venv --without-pip venv && venv/bin/python -c "
        "'import sys, ensurepip; print(sys.prefix)'",
        timeout_ms=30_000,
    )
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"{workspace}/venv"
