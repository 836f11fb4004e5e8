"""Persistent bash sessions of a terminal machine, sandboxed with bubblewrap.

Each session is one long-lived ``bash --noprofile --norc`` reading commands
from a pipe. A command runs in the shell itself (``eval``), so ``cd`` and
``export`` persist, and is followed by an end marker carrying ``$?``; output is
read until that marker. A command that runs too long, is interrupted or whose
caller is cancelled has the processes it started killed (stopped first, so
nothing can fork away, then SIGKILLed); the shell survives and the marker still
arrives, so the session stays usable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.proctree import (
    descendant_pids,
    kill_descendants,
    process_name,
    send_signal,
)
from deckhand.machine_agent.sandbox import bwrap_argv, bwrap_available, shell_env

logger = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
OUTPUT_LIMIT = 100_000
TRANSCRIPT_LIMIT = 20_000
MAX_SESSIONS = 32
SESSION_ID_MAX = 128

_READ_CHUNK = 65_536
_START_TIMEOUT_S = 10.0
# After killing a command's processes, how long the shell gets to print the
# marker (it does so at once unless the command was a builtin such as `wait`);
# then, after killing every process of the session, how long before giving up.
_DRAIN_GRACE_S = 0.5
_LAST_GRACE_S = 2.0
# Longest marker line: "\n__DH_END_<16 hex>__<rc> <PWD>\n" with PWD up to PATH_MAX.
_MARKER_TAIL = 64 + 4096

class TerminalError(AgentError):
    """The terminal could not run a command (no shell, bad request). A command
    that fails inside the shell is not an error: its exit code is data."""


@dataclass(frozen=True)
class CommandResult:
    output: str
    exit_code: int | None
    duration_ms: int
    session_id: str
    timed_out: bool = False
    interrupted: bool = False
    truncated: bool = False
    cwd: str | None = None
    # The shell exited (``exit``, ``set -e``) or had to be killed: the next
    # command starts a fresh session (cwd and environment are lost).
    session_closed: bool = False
    error: str | None = None


# --------------------------------------------------------------------------- quoting


def _ansi_c_quote(text: str) -> str:
    """``text`` as a bash ``$'…'`` word on one line (every byte preserved)."""
    out = ["$'"]
    for b in text.encode("utf-8", errors="surrogateescape"):
        if 0x20 <= b < 0x7F and b not in (0x27, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    out.append("'")
    return "".join(out)


# --------------------------------------------------------------------------- sessions


@dataclass(eq=False)
class _Session:
    session_id: str
    proc: asyncio.subprocess.Process
    shell_pid: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    buf: bytearray = field(default_factory=bytearray)
    read_task: asyncio.Future[bytes] | None = None
    # Descendants of the shell that existed before the running command.
    baseline: frozenset[int] = frozenset()
    running: bool = False
    interrupted: bool = False
    # Set by an interrupt: the running command's reader stops waiting and
    # kills the command until its marker comes (its process may not even
    # have been forked when the interrupt arrived).
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0  # output bytes of the running command dropped from buf
    closed: bool = False

    async def read_some(self, timeout: float, stop: asyncio.Event | None = None) -> bytes | None:
        """The next chunk of output; ``b""`` at EOF, None if nothing came in
        ``timeout`` seconds or ``stop`` was set. A read that times out stays
        pending for the next call, so no output is lost."""
        assert self.proc.stdout is not None
        if self.read_task is None:
            self.read_task = asyncio.ensure_future(self.proc.stdout.read(_READ_CHUNK))
        waiters: set[asyncio.Future[Any]] = {self.read_task}
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        if stopped is not None:
            waiters.add(stopped)
        try:
            done, _ = await asyncio.wait(waiters, timeout=max(0.0, timeout),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopped is not None:
                stopped.cancel()
        if self.read_task not in done:
            return None
        task, self.read_task = self.read_task, None
        return task.result()


class _Timeout:
    pass


class _Eof:
    pass


class _Interrupted:
    pass


_TIMEOUT = _Timeout()
_EOF = _Eof()
_INTERRUPTED = _Interrupted()


class TerminalSessions:
    """The terminal sessions of one machine, keyed by ``session_id``."""

    def __init__(
        self,
        workspace: Path | str,
        *,
        sandbox: bool | None = None,
        network: bool = True,
        output_limit: int = OUTPUT_LIMIT,
        box: MachineBox | None = None,
    ) -> None:
        self.workspace = Path(os.path.realpath(workspace))
        self.box = box
        if sandbox is None:
            sandbox = bwrap_available()
        if sandbox and not bwrap_available():
            raise TerminalError("sandbox requested but bubblewrap (bwrap) is not installed")
        self.sandbox = sandbox
        self.network = network
        self.output_limit = output_limit
        #: the desktop's DISPLAY and XAUTHORITY on a desktop machine (set once
        #: it is up): sessions started afterwards can open apps on it
        self.display_env: dict[str, str] | None = None
        self._sessions: dict[str, _Session] = {}
        self._create_lock = asyncio.Lock()
        # What each session showed (commands and their output), for the
        # rendered terminal screen and terminal_read; bounded.
        self.transcripts: dict[str, str] = {}
        self.last_session = DEFAULT_SESSION
        self.version = 0
        if not sandbox and not network:
            logger.warning("network=False has no effect without the bubblewrap sandbox")

    # ------------------------------------------------------------------ public

    def session_ids(self) -> list[str]:
        return sorted(self._sessions)

    async def start(self, session_id: str = DEFAULT_SESSION) -> None:
        """Start ``session_id``'s shell now rather than on its first command."""
        await self._session(session_id)

    async def run(
        self,
        command: str,
        *,
        session_id: str | None = None,
        cwd: str | None = None,
        timeout_ms: int = 120_000,
    ) -> CommandResult:
        """Run ``command`` in the session's shell and return its output and exit
        code. Cancelling the awaiting task kills the command's processes and
        leaves the session usable (or, if it cannot be recovered, closed)."""
        sid = session_id or DEFAULT_SESSION
        if "\x00" in command or (cwd is not None and "\x00" in cwd):
            raise TerminalError("the command contains a NUL byte")
        if timeout_ms <= 0:
            raise TerminalError("timeout_ms must be positive")
        started = asyncio.get_running_loop().time()
        for _ in range(2):
            session = await self._session(sid)
            async with session.lock:
                if session.closed or session.proc.returncode is not None:
                    await self._drop(session)
                    continue
                self._note(sid, f"$ {command}\n")
                result = await self._run_locked(session, command, cwd, timeout_ms, started)
                self._note(sid, result.output if result.output.endswith("\n") or not
                           result.output else result.output + "\n")
                return result
        raise TerminalError("the shell keeps exiting; could not run the command")

    def transcript(self, session_id: str | None = None) -> str:
        return self.transcripts.get(session_id or self.last_session, "")

    def clear_transcript(self, session_id: str | None = None) -> None:
        self.transcripts.pop(session_id or self.last_session, None)
        self.version += 1

    def _note(self, sid: str, text: str) -> None:
        kept = self.transcripts.get(sid, "") + text
        if len(kept) > TRANSCRIPT_LIMIT:
            kept = kept[-TRANSCRIPT_LIMIT:]
        self.transcripts[sid] = kept
        self.last_session = sid
        self.version += 1

    async def interrupt(self, session_id: str | None = None) -> bool:
        """Kill the processes of the command running in the session. The
        command then ends (exit code 137) and the session stays usable.
        Returns False when no command was running."""
        session = self._sessions.get(session_id or DEFAULT_SESSION)
        if session is None or not session.running:
            return False
        session.interrupted = True
        session.stop.set()
        return True

    async def close(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await self._drop(session)
        return True

    async def close_all(self) -> None:
        for session in list(self._sessions.values()):
            await self._drop(session)

    # ------------------------------------------------------------------ sessions

    async def _session(self, sid: str) -> _Session:
        if not sid or len(sid) > SESSION_ID_MAX:
            raise TerminalError(f"session_id must be 1-{SESSION_ID_MAX} characters")
        session = self._sessions.get(sid)
        if session is not None and not session.closed:
            return session
        async with self._create_lock:
            session = self._sessions.get(sid)
            if session is not None and not session.closed:
                return session
            if len(self._sessions) >= MAX_SESSIONS:
                raise TerminalError(f"too many terminal sessions (limit {MAX_SESSIONS})")
            session = await self._spawn(sid)
            self._sessions[sid] = session
            return session

    async def _spawn(self, sid: str) -> _Session:
        argv = ["bash", "--noprofile", "--norc"]
        uid = self.box.uid if self.box is not None else None
        if self.box is not None:
            argv = self.box.as_user(argv)
        if self.sandbox:
            own_net = self.box is not None and self.box.own_network
            argv = bwrap_argv(self.workspace, network=self.network or own_net, uid=uid,
                              resolv=self.box.resolv_conf() if self.box else None,
                              display=self.display_env) + argv
        if self.box is not None:
            argv = self.box.enter(argv)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.workspace,
            env=shell_env(self.workspace, sandboxed=self.sandbox, display=self.display_env),
        )
        session = _Session(session_id=sid, proc=proc, shell_pid=proc.pid)
        nonce = secrets.token_hex(8)
        ready = re.compile(rb"__DH_READY_" + nonce.encode() + rb"__\n")
        try:
            await self._write(session, f"builtin printf '__DH_READY_%s__\\n' {nonce}\n")
            deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_S
            found = await self._collect(session, ready, deadline)
        except BaseException:
            await self._kill_session(session)
            raise
        if not isinstance(found, re.Match):
            early = bytes(session.buf).decode(errors="replace").strip()
            await self._kill_session(session)
            raise TerminalError(f"the shell did not start: {early or 'no output'}")
        del session.buf[: found.end()]
        if self.sandbox:
            shell = next((p for p in descendant_pids(proc.pid) if process_name(p) == "bash"), None)
            if shell is None:
                await self._kill_session(session)
                raise TerminalError("the sandboxed shell could not be found")
            session.shell_pid = shell
        return session

    async def _drop(self, session: _Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        await self._kill_session(session)

    async def _kill_session(self, session: _Session) -> None:
        session.closed = True
        if session.read_task is not None:
            session.read_task.cancel()
            session.read_task = None
        proc = session.proc
        if proc.returncode is None:
            kill_descendants(proc.pid)
            send_signal(proc.pid, signal.SIGKILL)
            waiter = asyncio.ensure_future(proc.wait())
            done, _ = await asyncio.wait({waiter}, timeout=2.0)
            if not done:
                waiter.cancel()
                logger.warning("shell %s did not exit after SIGKILL", proc.pid)
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    # ------------------------------------------------------------------ commands

    async def _run_locked(
        self, s: _Session, command: str, cwd: str | None, timeout_ms: int, started: float
    ) -> CommandResult:
        loop = asyncio.get_running_loop()
        nonce = secrets.token_hex(8)
        marker = re.compile(
            rb"\n__DH_END_" + nonce.encode() + rb"__(\d+) ([^\n]*)\n"
        )
        line = f"__dh_c={_ansi_c_quote(command)}; "
        if cwd:
            target = cwd if os.path.isabs(cwd) else str(self.workspace / cwd)
            line += f"builtin cd -- {_ansi_c_quote(target)} </dev/null && "
        line += (
            'eval "$__dh_c" </dev/null; '
            f"builtin printf '\\n__DH_END_%s__%s %s\\n' {nonce} \"$?\" \"$PWD\"; "
            "builtin unset __dh_c\n"
        )
        s.baseline = frozenset(descendant_pids(s.shell_pid))
        s.interrupted = False
        s.stop.clear()
        s.running = True
        s.dropped = 0
        timed_out = False
        try:
            try:
                await self._write(s, line)
            except (BrokenPipeError, ConnectionResetError) as exc:
                await self._drop(s)
                raise TerminalError(f"the shell is gone: {exc}") from exc
            deadline = started + timeout_ms / 1000
            found: object = await self._collect(s, marker, deadline, stop=s.stop)
            if found is _TIMEOUT or found is _INTERRUPTED:
                timed_out = found is _TIMEOUT
                found = await self._stop_command(s, marker)
            if not isinstance(found, re.Match):
                await self._reap(s)
        except asyncio.CancelledError:
            await self._recover_after_cancel(s, marker)
            raise
        except BaseException:
            await self._drop(s)
            raise
        finally:
            s.running = False
        duration_ms = int((loop.time() - started) * 1000)
        return self._result(s, found, timed_out=timed_out, duration_ms=duration_ms,
                            timeout_ms=timeout_ms)

    async def _reap(self, s: _Session) -> None:
        """The shell's output ended (it exited) or it was given up: wait for
        its exit status (bounded) and forget the session."""
        if s.proc.returncode is None:
            waiter = asyncio.ensure_future(s.proc.wait())
            done, _ = await asyncio.wait({waiter}, timeout=1.0)
            if not done:
                waiter.cancel()
        await self._drop(s)

    async def _stop_command(self, s: _Session, marker: re.Pattern[bytes]) -> object:
        """Kill what the command started and read on to its marker. If the
        marker does not come (the command is a shell builtin such as ``wait``,
        or redirected the shell's output), kill every process of the session,
        then the session itself."""
        loop = asyncio.get_running_loop()
        kill_descendants(s.shell_pid, prune=s.baseline)
        found = await self._collect(s, marker, loop.time() + _DRAIN_GRACE_S)
        if found is _TIMEOUT:
            kill_descendants(s.shell_pid)
            found = await self._collect(s, marker, loop.time() + _LAST_GRACE_S)
        if found is _TIMEOUT:
            await self._drop(s)
        return found

    async def _recover_after_cancel(self, s: _Session, marker: re.Pattern[bytes]) -> None:
        try:
            found = await self._stop_command(s, marker)
            if isinstance(found, re.Match):
                del s.buf[: found.end()]
            elif found is _EOF:
                await self._drop(s)
        except BaseException:
            await self._drop(s)

    async def _write(self, s: _Session, text: str) -> None:
        assert s.proc.stdin is not None
        s.proc.stdin.write(text.encode("utf-8", errors="surrogateescape"))
        await s.proc.stdin.drain()

    async def _collect(
        self, s: _Session, marker: re.Pattern[bytes], deadline: float,
        stop: asyncio.Event | None = None,
    ) -> re.Match[bytes] | _Timeout | _Eof | _Interrupted:
        """Read output into ``s.buf`` until ``marker`` appears, the deadline
        passes, ``stop`` is set or the shell's output ends."""
        loop = asyncio.get_running_loop()
        keep = 4 * self.output_limit + _MARKER_TAIL
        scan_from = 0
        while True:
            found = marker.search(s.buf, scan_from)
            if found is not None:
                return found
            scan_from = max(0, len(s.buf) - _MARKER_TAIL)
            chunk = await s.read_some(deadline - loop.time(), stop)
            if chunk is None:
                return _INTERRUPTED if stop is not None and stop.is_set() else _TIMEOUT
            if not chunk:
                return _EOF
            s.buf += chunk
            if len(s.buf) > 2 * keep:
                cut = len(s.buf) - keep
                del s.buf[:cut]
                s.dropped += cut
                scan_from = max(0, scan_from - cut)

    def _result(
        self, s: _Session, found: object, *, timed_out: bool, duration_ms: int, timeout_ms: int
    ) -> CommandResult:
        exit_code: int | None
        cwd: str | None = None
        closed = False
        error = None
        if isinstance(found, re.Match):
            raw = bytes(s.buf[: found.start()])
            exit_code = int(found.group(1))
            cwd = found.group(2).decode(errors="replace")
            del s.buf[: found.end()]
        else:
            raw = bytes(s.buf)
            s.buf.clear()
            closed = True
            exit_code = s.proc.returncode
            if exit_code is not None and exit_code < 0:
                exit_code = 128 - exit_code
            if found is _TIMEOUT:
                error = ("the shell stopped responding and was killed; "
                         "the next command starts a new session")
        text, truncated = self._decode(raw, s.dropped)
        if timed_out:
            exit_code = 124
            text += f"\n[timed out after {timeout_ms / 1000:g} s; the command was killed]"
        return CommandResult(
            output=text,
            exit_code=exit_code,
            duration_ms=duration_ms,
            session_id=s.session_id,
            timed_out=timed_out,
            interrupted=s.interrupted,
            truncated=truncated,
            cwd=cwd,
            session_closed=closed,
            error=error,
        )

    def _decode(self, raw: bytes, dropped: int) -> tuple[str, bool]:
        text = raw.decode("utf-8", errors="replace")
        if not dropped and len(text) <= self.output_limit:
            return text, False
        note = f"[output truncated: showing the last {self.output_limit} characters]\n"
        keep = max(0, self.output_limit - len(note))
        return note + text[len(text) - keep:], True

