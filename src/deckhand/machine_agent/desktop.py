"""The desktop of a machine: Xvfb (1280x800), openbox, an xterm whose shell
runs in the machine's sandbox, screenshots with mss over XShm encoded to
JPEG from the raw buffer, input through XTEST (:mod:`.xinput`), windows
through EWMH (:mod:`.windows`) and, on demand, x11vnc on loopback for the
live view.

The X server picks a free display itself (``-displayfd``) and only accepts
clients holding the machine's cookie (``-auth``), so other machines on the
host cannot reach this one's screen even through abstract sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.sandbox import bwrap_argv, interactive_shell_argv, shell_env

if TYPE_CHECKING:  # X and Pillow are loaded when a desktop starts or encodes
    from PIL import Image

    from deckhand.machine_agent.windows import Windows
    from deckhand.machine_agent.xinput import XInput

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 1280, 800
JPEG_QUALITY = 75
XVFB_TIMEOUT_S = 5.0
WM_SETTLE_S = 0.5  # launching an app the instant openbox is up can stall ~5 s
APP_MAP_S = 3.0  # how long the first xterm's window is waited for
VNC_TIMEOUT_S = 10.0


class DesktopError(AgentError):
    pass


@dataclass(frozen=True)
class Frame:
    jpeg: bytes
    width: int
    height: int
    source: str  # desktop | browser | terminal


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height of a JPEG, from its first start-of-frame marker."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    raise ValueError("not a JPEG (no start-of-frame marker)")


@dataclass(frozen=True)
class VncInfo:
    port: int
    password: str


def write_xauthority(path: Path, cookie: bytes) -> None:
    """An Xauthority file with the cookie for any display of this host: a
    FamilyWild entry (libxcb/libX11 clients) and a FamilyLocal one for the
    host name (python-xlib ignores wildcards)."""

    def field(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b

    name = b"MIT-MAGIC-COOKIE-1"
    data = struct.pack(">H", 0xFFFF) + field(b"") + field(b"") + field(name) + field(cookie)
    data += struct.pack(">H", 256) + field(socket.gethostname().encode()) + field(b"") \
        + field(name) + field(cookie)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def encode_jpeg(raw: bytes | bytearray | memoryview, width: int, height: int,
                quality: int = JPEG_QUALITY) -> bytes:
    """JPEG from a raw BGRX buffer, without a Python-level conversion."""
    from PIL import Image

    img = Image.frombuffer("RGB", (width, height), raw, "raw", "BGRX", 0, 1)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Desktop:
    """One X desktop; ``start`` brings it up, ``close`` stops every process."""

    def __init__(self, state_dir: Path, workspace: Path, *, sandbox: bool, network: bool,
                 width: int = WIDTH, height: int = HEIGHT, box: MachineBox | None = None) -> None:
        self.box = box
        self.state_dir = state_dir
        self.workspace = workspace
        self.sandbox = sandbox
        self.network = network
        self.width = width
        self.height = height
        self.display = ""
        # the X cookie (and x11vnc's password) where the machine's user can read them
        self.private_dir = box.private_dir() if box is not None else state_dir
        self.xauthority = self.private_dir / "Xauthority"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._mss: object | None = None
        self.input: XInput | None = None
        self.windows: Windows | None = None
        self.vnc: VncInfo | None = None
        self._vnc_lock = asyncio.Lock()
        self._apps: asyncio.Task[None] | None = None
        self.started_at = 0.0

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.xauthority)}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for binary in ("Xvfb", "openbox"):
            if shutil.which(binary) is None:
                raise DesktopError(f"{binary} is not installed (scripts/install-system-deps)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_xauthority(self.xauthority, secrets.token_bytes(16))
        if self.box is not None and self.box.uid is not None:  # the X server runs as it
            os.chown(self.xauthority, self.box.uid, self.box.uid)
        read_fd, write_fd = os.pipe()
        try:
            self._procs["xvfb"] = subprocess.Popen(
                self._wrap(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                            f"{self.width}x{self.height}x24", "-nolisten", "tcp",
                            "-auth", str(self.xauthority), "-dpi", "96"]),
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(write_fd)
        try:
            number = await asyncio.to_thread(_read_display, read_fd, XVFB_TIMEOUT_S)
        finally:
            os.close(read_fd)
        if number is None:
            await self.close()
            raise DesktopError("Xvfb did not start")
        self.display = f":{number}"
        # libxcb (mss) and python-xlib read the cookie from the environment;
        # one desktop per agent process, so the process's own environment.
        os.environ.update(self.env)
        env = {**os.environ, **self.env}
        self._procs["openbox"] = subprocess.Popen(
            self._wrap(["openbox", "--sm-disable"]), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import mss  # a ~30 ms import: only desktops pay it

        self._mss = mss.MSS(display=self.display)
        from deckhand.machine_agent.windows import Windows
        from deckhand.machine_agent.xinput import XInput

        self.input = XInput(self.display)
        self.windows = Windows(self.display)
        self.started_at = time.monotonic()
        self._apps = asyncio.create_task(self._start_apps())

    async def _start_apps(self) -> None:
        await asyncio.sleep(WM_SETTLE_S)
        self.open_terminal()
        # its window maps a moment later: a browser opened before that would
        # end up under it
        deadline = time.monotonic() + APP_MAP_S
        while time.monotonic() < deadline and not self._has_window("Terminal"):
            await asyncio.sleep(0.02)

    def _has_window(self, title: str) -> bool:
        from deckhand.machine_agent.windows import WindowError

        if self.windows is None:
            return True
        try:
            self.windows.find(title)
        except WindowError:
            return False
        return True

    async def apps_started(self) -> None:
        """Once the apps a desktop starts with (its xterm) show (at most
        ``APP_MAP_S`` after the window manager settled)."""
        if self._apps is not None and not self._apps.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._apps), WM_SETTLE_S + APP_MAP_S + 1)

    def open_terminal(self) -> None:
        """Open an xterm running a shell in the machine's sandbox."""
        env = {**shell_env(self.workspace, sandboxed=self.sandbox, display=self.env),
               "TERM": "xterm"}
        xterm = ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "12", "-geometry", "100x30+40+40",
                 "-title", "Terminal", "-e"]
        uid = self.box.uid if self.box is not None else None
        if uid is not None and self.sandbox and self.box is not None:
            # the whole xterm in the machine's sandbox, as its user, its X socket
            # and cookie shown inside
            argv = self.box.enter(
                bwrap_argv(self.workspace, network=self.network or self.box.own_network,
                           uid=uid, resolv=self.box.resolv_conf(),
                           binds=(f"/tmp/.X11-unix/X{self.display.lstrip(':')}",
                                  str(self.xauthority)))
                + self.box.as_user([*xterm, "bash", "--noprofile", "--norc", "-i"]))
        else:
            argv = self._wrap([*xterm, *interactive_shell_argv(
                self.workspace, sandbox=self.sandbox, network=self.network, display=self.env)])
        name = f"xterm-{secrets.token_hex(3)}"
        self._procs[name] = subprocess.Popen(
            argv, env=env, cwd=self.workspace, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _wrap(self, argv: list[str]) -> list[str]:
        return self.box.wrap(argv) if self.box is not None else argv

    async def close(self) -> None:
        if self._apps is not None:
            self._apps.cancel()
        for closer in (self.input, self.windows):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        if self._mss is not None:
            with contextlib.suppress(Exception):
                self._mss.close()  # type: ignore[attr-defined]
        procs = list(self._procs.values())
        self._procs.clear()
        for p in reversed(procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for p in procs:
            while p.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=1.0)

    # ------------------------------------------------------------------ screen

    def grab(self) -> tuple[bytes, int, int]:
        """The screen as a raw BGRX buffer (XShm; ~0.4 ms)."""
        if self._mss is None:
            raise DesktopError("the desktop is not running")
        shot = self._mss.grab({"left": 0, "top": 0, "width": self.width,  # type: ignore[attr-defined]
                               "height": self.height})
        return shot.raw, shot.width, shot.height

    def capture(self, quality: int = JPEG_QUALITY) -> Frame:
        raw, w, h = self.grab()
        return Frame(encode_jpeg(raw, w, h, quality), w, h, "desktop")

    def image(self, shot: tuple[bytes, int, int] | None = None) -> Image.Image:
        """The screen (or a ``grab()`` taken before) as a Pillow image."""
        raw, w, h = shot or self.grab()
        from PIL import Image

        return Image.frombuffer("RGB", (w, h), bytes(raw), "raw", "BGRX", 0, 1)

    # ------------------------------------------------------------------ live view

    async def start_vnc(self) -> VncInfo:
        """x11vnc on loopback with a password (started on first use; ~1.5 s)."""
        async with self._vnc_lock:
            proc = self._procs.get("x11vnc")
            if self.vnc is not None and proc is not None and proc.poll() is None:
                return self.vnc
            if shutil.which("x11vnc") is None:
                raise DesktopError("x11vnc is not installed (scripts/install-system-deps)")
            password = secrets.token_urlsafe(6)[:8]  # VNC passwords use 8 characters
            pw_file = self.private_dir / "vncpasswd"
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            as_machine = self.box is not None and self.box.uid is not None
            if as_machine:  # x11vnc runs as the machine's user: its password file is its own
                os.chown(pw_file, self.box.uid, self.box.uid)  # type: ignore[union-attr]
            port = _free_port()
            argv = ["x11vnc", "-display", self.display, "-auth", str(self.xauthority),
                    "-localhost", "-rfbport", str(port), "-passwdfile", str(pw_file),
                    "-forever", "-shared", "-noxdamage", "-quiet", "-norc",
                    # the X server runs as the machine's user and may not attach
                    # a root-owned SysV segment: x11vnc reads the screen without
                    *(["-noshm"] if as_machine else [])]
            if self.box is not None:
                # in the machine's cgroup, as its user, but on the host's
                # loopback, where the agent's live-view bridge reaches it (the
                # machine's own programs, in their network, do not)
                argv = self.box.enter(self.box.as_user(argv), network=False)
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env={**os.environ, **self.env, "HOME": str(self.private_dir)},
            )
            self._procs["x11vnc"] = proc
            try:
                self.vnc = await _listening(proc, port, password)
            finally:
                with contextlib.suppress(OSError):  # read once at its start
                    pw_file.unlink()
            return self.vnc


async def _listening(proc: subprocess.Popen[bytes], port: int, password: str) -> VncInfo:
    deadline = time.monotonic() + VNC_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DesktopError(f"x11vnc exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return VncInfo(port=port, password=password)
        await asyncio.sleep(0.05)
    raise DesktopError("x11vnc did not start listening")


def _read_display(fd: int, timeout: float) -> int | None:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 32)
        if not chunk:
            return None
        data += chunk
    try:
        return int(data.strip())
    except ValueError:
        return None
