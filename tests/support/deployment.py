"""Real Deckhand processes for end-to-end tests.

A :class:`Deployment` is one Deckhand installation: ``deckhand serve`` and
``deckhand worker`` subprocesses sharing a data dir and a database (SQLite in
the data dir, or the PostgreSQL URL given), each writing a log of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from deckhand.machines.local import LocalMachineProvider
from tests.support.polling import wait_until

T = TypeVar("T")


@dataclass
class Proc:
    """A Deckhand subprocess and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def tail(self, limit: int = 3000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.name} (pid {self.pid}) ---\n{text[-limit:]}"


@dataclass
class Deployment:
    """Processes of one Deckhand installation sharing a data dir and database.

    ``tmp`` holds the data dir and the logs; ``database_url`` is None for
    SQLite in the data dir. Each deployment gets a secret key of its own,
    ``secret_prefix`` followed by random hex.
    """

    tmp: Path
    database_url: str | None
    secret_prefix: str
    lease_seconds: int
    procs: list[Proc] = field(default_factory=list)
    machines: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. a fake model provider
    secret: str = field(init=False)

    def __post_init__(self) -> None:
        self.secret = self.secret_prefix + secrets.token_hex(16)

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'deckhand.db'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
        env.update({
            "DECKHAND_DATA_DIR": str(self.data_dir),
            "DECKHAND_SECRET_KEY": self.secret,
            "DECKHAND_LEASE_SECONDS": str(self.lease_seconds),
            "DECKHAND_POLL_INTERVAL_SECONDS": "0.2",
            "DECKHAND_WORKERS": "4",
            # no warm spare: a kill -9 would orphan it until the next start
            "DECKHAND_MACHINE_POOL_TERMINAL": "0",
        })
        if self.database_url:
            env["DECKHAND_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "deckhand.cli", *args]

    def create_key(self) -> str:
        out = subprocess.run(self.cli("keys", "create", "--name", "t", "--json"),
                             env=self.env(), capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == 0, out.stderr
        return str(json.loads(out.stdout.strip().splitlines()[-1])["key"])

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``deckhand <args>`` (with ``env`` over the deployment's
        environment), its output in ``<tmp>/<name>-<n>.log``."""
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with open(log, "wb") as f:
            popen = subprocess.Popen(self.cli(*args), env={**self.env(), **(env or {})},
                                     stdin=subprocess.DEVNULL,
                                     stdout=f, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    async def serve(self, port: int, *extra: str, env: dict[str, str] | None = None) -> Proc:
        """Start ``deckhand serve`` on ``port`` and wait until it answers."""
        proc = self.spawn("serve", "serve", "--port", str(port), *extra, env=env)
        base = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            assert proc.alive(), self.logs()
            try:
                async with httpx.AsyncClient(timeout=1.0) as c:
                    return (await c.get(f"{base}/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await poll(healthy, timeout=30, what=f"{base}/v1/health", logs=self.logs)
        return proc

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    async def teardown(self) -> None:
        """Kill the processes still running, then destroy the machines the
        test recorded in ``machines`` (whatever it did not delete through the
        API because it failed midway)."""
        for p in self.procs:
            if p.alive():
                p.popen.kill()
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - would be a kernel oddity
                pass
        provider = LocalMachineProvider(self.data_dir)
        for mid in self.machines:
            await provider.destroy(mid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def poll(check: Callable[[], Awaitable[T]], *, timeout: float, what: str,
               logs: Callable[[], str] = lambda: "", every: float = 0.05) -> T:
    """Await ``check()`` until it returns something truthy, at most ``timeout`` s;
    a timeout shows the deployment's ``logs()``."""
    return await wait_until(check, timeout=timeout, what=what, details=logs, every=every)
