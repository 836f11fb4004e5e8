"""Starting Chromium as a process the agent talks to over a pipe.

The command line is the machine's box prefix (cgroup, network namespace,
bubblewrap, the machine's user: :meth:`.box.MachineBox.chromium`) and then
Chromium's own binary (``/usr/lib/chromium/chromium``: Debian's
``/usr/bin/chromium`` is a shell script that adds extension flags and costs
a shell). ``--remote-debugging-pipe`` makes Chromium read the protocol on
its fd 3 and write on its fd 4; ``os.posix_spawn`` puts the two pipe ends
there (every prefix program — sh, nsenter, bwrap, setpriv — passes inherited
fds on unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from pathlib import Path

from deckhand.machine_agent.cdp import Connection
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.sandbox import PASSTHROUGH_ENV

CHROMIUM = "/usr/bin/chromium"  # what the machine says it runs (Debian's package)
CHROMIUM_BINARY = "/usr/lib/chromium/chromium"  # what the wrapper script executes


# What a driver passes (Playwright's defaults, less automation's marks),
# plus what a machine does not need running.
BASE_ARGS = [
    "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--disable-dev-shm-usage", "--password-store=basic",
    "--use-mock-keychain", "--disable-breakpad", "--disable-client-side-phishing-detection",
    "--disable-default-apps", "--disable-extensions",
    "--disable-component-extensions-with-background-pages", "--disable-hang-monitor",
    "--disable-popup-blocking", "--disable-prompt-on-repost", "--no-service-autorun",
    "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding", "--disable-field-trial-config",
    "--disable-back-forward-cache", "--metrics-recording-only", "--no-pings",
    "--force-color-profile=srgb", "--mute-audio", "--disable-gpu",
    "--test-type",  # no "unsupported command-line flag" bar over the page
    "--disable-smooth-scrolling",  # a wheel scrolls at once: nothing to wait for
]
# Memory (docs/machines.md "Memory", measured per flag; Chromium reads one
# --enable-features and one --disable-features, the last): no preloaded
# omnibox-popup WebUI renderer (a renderer, and 0.6 s of CPU at start), no
# spare renderer, one renderer for every site the limit allows (site
# isolation still gives a cross-site frame its own), the network service
# and the GPU (SwiftShader) work in the browser process instead of a
# process each.
MEMORY_ARGS = [
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess",
    # CDPScreenshotNewSurface: a capture from a new surface, not the next
    # drawn frame (as Playwright enables it): a step 115 → 82 ms p50
    "--enable-features=CDPScreenshotNewSurface,NetworkServiceInProcess2",
    "--renderer-process-limit=1",
    "--in-process-gpu",
]
# A machine whose metadata says network: "off": every request goes to a dead proxy.
NO_NETWORK_ARGS = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def command_line(profile_dir: Path, *, own_user: bool, network: bool, headless: bool,
                 width: int, height: int) -> list[str]:
    """Chromium's arguments after its binary. ``DECKHAND_BROWSER_ARGS``
    (space-separated) is appended: an operator's own flags (a later
    ``--enable-features`` or ``--disable-features`` replaces the one here)."""
    args = [*BASE_ARGS, *MEMORY_ARGS, f"--user-data-dir={profile_dir}"]
    if not own_user and os.geteuid() == 0:
        args.append("--no-sandbox")  # no user of its own (an unboxed test agent)
    if not network:
        args += NO_NETWORK_ARGS
    if headless:
        args += ["--headless", "--hide-scrollbars", f"--window-size={width},{height}"]
    else:
        args += ["--window-position=0,0", f"--window-size={width},{height}", "--start-maximized"]
    args += os.environ.get("DECKHAND_BROWSER_ARGS", "").split()
    return [*args, "about:blank"]


class LaunchError(AgentError):
    pass


def binary() -> str:
    return CHROMIUM_BINARY if os.access(CHROMIUM_BINARY, os.X_OK) else CHROMIUM


def environment(display_env: dict[str, str] | None) -> dict[str, str]:
    """What Chromium inherits: locale, proxies and CA bundles, the display;
    nothing of the agent's own (its token, the server's keys)."""
    env = {k: os.environ[k] for k in (*PASSTHROUGH_ENV, "PATH", "HOME") if k in os.environ}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(display_env or {})
    return env


class ChromiumProcess:
    """One running Chromium: its pid, its connection and its stderr log."""

    def __init__(self, pid: int, conn: Connection, log: Path) -> None:
        self.pid = pid
        self.conn = conn
        self.log = log
        self._exit: asyncio.Future[int] | None = None
        self._pidfd: int | None = None

    @classmethod
    async def spawn(cls, argv: list[str], env: dict[str, str], log: Path) -> ChromiumProcess:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # fds 3 and 4 of the child are made from high copies (a pipe end
        # that already is 3 or 4 would be overwritten by the other's dup2)
        hi_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            pid = os.posix_spawnp(argv[0], argv, env, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                 0o600),
                (os.POSIX_SPAWN_DUP2, hi_r, 3),
                (os.POSIX_SPAWN_DUP2, hi_w, 4),
            ], setsid=True)
        except OSError as exc:
            for fd in (hi_r, hi_w, to_browser_w, from_browser_r):
                os.close(fd)
            raise LaunchError(f"starting Chromium failed: {exc}") from exc
        os.close(hi_r)
        os.close(hi_w)
        conn = Connection()
        await conn.open(from_browser_r, to_browser_w)
        proc = cls(pid, conn, log)
        proc._watch()
        return proc

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        self._exit = loop.create_future()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # no pidfd: reaped when closed
            return
        loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.pid, os.WNOHANG)
            if self._exit is not None and not self._exit.done():
                self._exit.set_result(os.waitstatus_to_exitcode(status))
        self._unwatch()

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    @property
    def exited(self) -> bool:
        return self._exit is not None and self._exit.done()

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    async def stop(self, grace_s: float = 5.0) -> None:
        """Ask the browser to close (it writes its profile), then end it."""
        if not self.exited and self.conn.alive:
            with contextlib.suppress(AgentError, OSError):
                await self.conn.send("Browser.close", timeout=grace_s)
        await self.conn.close()
        if not await self._wait(grace_s):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await self._wait(grace_s)
        self._unwatch()

    async def _wait(self, timeout: float) -> bool:
        if self._exit is None:
            return False
        if self._pidfd is None and not self._exit.done():  # nothing watches: poll
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self._exit.set_result(os.waitstatus_to_exitcode(status))
        try:
            await asyncio.wait_for(asyncio.shield(self._exit), timeout)
        except TimeoutError:
            return False
        return True
