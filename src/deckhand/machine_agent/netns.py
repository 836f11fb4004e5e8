"""A machine's network: a network namespace of its own, shared by everything
the machine runs (a server a shell starts on 127.0.0.1 is reachable from the
machine's browser, and from nowhere else).

- **Egress** goes through ``slirp4netns --disable-host-loopback`` attached to
  the namespace (user-mode TCP/IP: the machine's packets become the agent
  host's ordinary sockets). Inside, a firewall (nftables, set by the agent,
  which the machine's user cannot change) rejects what is not the internet:
  loopback and private ranges, link-local (cloud metadata), CGNAT, multicast,
  the host's own addresses, slirp's gateway, and IPv6; DNS goes to slirp's
  resolver or the host's own name servers only.
- **Allowed host ports** (``DECKHAND_MACHINE_HOST_ALLOW``, ``host:port``,
  comma-separated) are reachable at the address they have on the host: a
  loopback one through a relay whose listening socket the agent opens *inside*
  the namespace (``setns`` in a thread of its own) and whose other end it
  connects on the host; any other one by a firewall exception.
- ``network: off``: no slirp4netns and no relay; only the namespace's loopback.

The namespace is held by a ``sleep`` that dies with the agent (parent-death
signal); slirp4netns stops when the agent's end of its exit pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from deckhand.machine_agent.errors import AgentError

logger = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
SLIRP_CIDR = "10.0.2.0/24"
SLIRP_DNS = "10.0.2.3"
START_TIMEOUT_S = 5.0
BLOCKED_V4 = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
    "240.0.0.0/4",
)
_RELAY_CHUNK = 65_536


class NetworkError(AgentError):
    pass


def parse_allow(text: str | None) -> list[tuple[str, int]]:
    """``"127.0.0.1:8099, 10.1.2.3:5432"`` → [("127.0.0.1", 8099), …]
    (``localhost`` is 127.0.0.1; a malformed entry is an error)."""
    out: list[tuple[str, int]] = []
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            addr = ipaddress.ip_address(host)
            number = int(port)
        except ValueError as exc:
            raise ValueError(f"host allow {item!r}: use IPv4:PORT (e.g. 127.0.0.1:8099)") \
                from exc
        if not sep or addr.version != 4 or not 0 < number < 65536:
            raise ValueError(f"host allow {item!r}: use IPv4:PORT (e.g. 127.0.0.1:8099)")
        out.append((str(addr), number))
    return out


def available() -> bool:
    return os.geteuid() == 0 and all(shutil.which(b) for b in
                                     ("slirp4netns", "nsenter", "unshare", "nft", "ip"))


def _host_addresses() -> list[str]:
    """The IPv4 addresses of the host's own interfaces."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        return sorted({a["local"] for link in json.loads(out) for a in link.get("addr_info", [])
                       if "local" in a})
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return []


def _name_servers() -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(parts[1]).version == 4:
                        found.append(parts[1])
    return found


def resolv_conf(state_dir: Path) -> str | None:
    """A resolv.conf naming slirp's resolver, for a host whose name servers
    are all on its loopback (systemd-resolved): the machine cannot reach those."""
    servers = _name_servers()
    if servers and not all(ipaddress.ip_address(s).is_loopback for s in servers):
        return None
    path = state_dir / "resolv.conf"
    path.write_text(f"nameserver {SLIRP_DNS}\n")
    os.chmod(path, 0o644)
    return str(path)


def firewall(allow: list[tuple[str, int]]) -> str:
    """The nftables rules of the machine's namespace (output only: nothing
    reaches a namespace from outside but through slirp4netns's replies)."""
    dns = sorted({SLIRP_DNS, *(ns for ns in _name_servers()
                               if not ipaddress.ip_address(ns).is_loopback)})
    blocked = sorted({*BLOCKED_V4, *_host_addresses()})
    lines = [
        "table inet deckhand {",
        "  chain out {",
        "    type filter hook output priority 0; policy accept;",
        '    oifname "lo" accept',
        f"    ip daddr {{ {', '.join(dns)} }} udp dport 53 accept",
        f"    ip daddr {{ {', '.join(dns)} }} tcp dport 53 accept",
    ]
    for host, port in allow:
        if not ipaddress.ip_address(host).is_loopback:
            lines.append(f"    ip daddr {host} tcp dport {port} accept")
    lines += [
        f"    ip daddr {{ {', '.join(blocked)} }} reject",
        "    meta nfproto ipv6 reject",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _listen_inside(ns_path: str, host: str, port: int) -> socket.socket:
    """A listening socket of the namespace at ``ns_path``: made by a thread
    that enters the namespace (setns changes the calling thread only) and ends."""
    result: dict[str, object] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {ns_path}: {os.strerror(err)}")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(64)
            sock.setblocking(False)
            result["sock"] = sock
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=work, name="netns-listen", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


class MachineNet:
    """The network namespace of one machine (see the module's docstring)."""

    def __init__(self, allow: list[tuple[str, int]]) -> None:
        self.allow = allow
        self.egress = False
        self._holder: subprocess.Popen[bytes] | None = None
        self._slirp: subprocess.Popen[bytes] | None = None
        self._slirp_exit: int | None = None
        self._relays: list[asyncio.Server] = []
        self._links: set[asyncio.Task[None]] = set()

    @property
    def ns_path(self) -> str:
        assert self._holder is not None, "the machine's network is not started"
        return f"/proc/{self._holder.pid}/ns/net"

    def enter_argv(self) -> list[str]:
        """A command prefix that runs the rest in the machine's namespace."""
        return ["nsenter", f"--net={self.ns_path}", "--"]

    async def start(self, egress: bool) -> None:
        # from the agent's main thread: the parent-death signal follows the
        # thread that forked, and the agent's main thread lives as long as it
        self._holder = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--net", "--",
             "sleep", "infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mine = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                if os.stat(self.ns_path).st_ino != mine:
                    break
            if self._holder.poll() is not None or time.monotonic() > deadline:
                raise NetworkError("the machine's network namespace did not start")
            await asyncio.sleep(0.002)
        await self._inside(["ip", "link", "set", "lo", "up"])
        await self._inside(["nft", "-f", "-"], stdin=firewall(self.allow).encode())
        await self.set_egress(egress)

    async def _inside(self, argv: list[str], stdin: bytes | None = None) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.enter_argv(), *argv, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate(stdin)
        if proc.returncode != 0:
            raise NetworkError(f"{' '.join(argv)} in the machine's namespace failed: "
                               f"{out.decode(errors='replace').strip()}")

    async def set_egress(self, on: bool) -> None:
        """Give the machine the internet and its allowed host ports, or take them."""
        if on and self._slirp is None:
            await self._start_slirp()
            for host, port in self.allow:
                if ipaddress.ip_address(host).is_loopback:
                    await self._relay(host, port)
        elif not on:
            await self._stop_egress()
        self.egress = on

    async def _start_slirp(self) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            self._slirp = subprocess.Popen(
                ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                 "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_w}",
                 f"--exit-fd={exit_r}", self.ns_path, "tap0", "--netns-type=path"],
                pass_fds=(ready_w, exit_r), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finally:
            os.close(ready_w)
            os.close(exit_r)
        self._slirp_exit = exit_w
        try:
            ok = await asyncio.to_thread(_wait_readable, ready_r, START_TIMEOUT_S)
        finally:
            os.close(ready_r)
        if not ok:
            err = b""
            if self._slirp.poll() is not None and self._slirp.stderr is not None:
                err = self._slirp.stderr.read()
            await self._stop_egress()
            raise NetworkError(f"slirp4netns did not configure the machine's network: "
                               f"{err.decode(errors='replace').strip() or 'timed out'}")

    async def _relay(self, host: str, port: int) -> None:
        sock = await asyncio.to_thread(_listen_inside, self.ns_path, host, port)

        async def link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_r, up_w = await asyncio.open_connection(host, port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
            for w in (writer, up_w):
                w.close()

        def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(link(reader, writer))
            self._links.add(task)
            task.add_done_callback(self._links.discard)

        self._relays.append(await asyncio.start_server(track, sock=sock))

    async def _stop_egress(self) -> None:
        for server in self._relays:
            server.close()
        self._relays.clear()
        for task in list(self._links):
            task.cancel()
        if self._slirp_exit is not None:
            os.close(self._slirp_exit)  # slirp4netns exits when this closes
            self._slirp_exit = None
        if self._slirp is not None:
            proc, self._slirp = self._slirp, None
            await _reap(proc)

    async def close(self) -> None:
        await self._stop_egress()
        if self._holder is not None:
            holder, self._holder = self._holder, None
            with contextlib.suppress(ProcessLookupError):
                holder.kill()
            await _reap(holder)

    def info(self) -> dict[str, object]:
        return {"egress": self.egress, "host_allow": [f"{h}:{p}" for h, p in self.allow]}


def _wait_readable(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready) and os.read(fd, 1) == b"1"


async def _reap(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 2.0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            deadline = time.monotonic() + 2.0
        await asyncio.sleep(0.01)
    if proc.stderr is not None:
        proc.stderr.close()
