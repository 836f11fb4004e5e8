"""What the benchmarks share: the table of results, percentiles, a PostgreSQL
of their own (scripts/pg-test-server), SQLite files, and Deckhand processes
(``deckhand serve`` / ``worker``) on one data dir and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support

from deckhand.client import DeckhandClient  # noqa: E402
from tests.support.crash import kill_sessions_naming  # noqa: E402
from tests.support.deployment import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG_SCRIPT = ROOT / "scripts" / "pg-test-server"
SECRET = "bench-" + secrets.token_hex(16)


# --------------------------------------------------------------------- results


@dataclass
class Row:
    name: str
    backend: str
    goal: str
    value: str
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, backend: str, value: str, goal: str = "",
            met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append(Row(name, backend, goal or "-", value, verdict))
        print(f"  {name} [{backend}]: {value} {verdict}", file=sys.stderr, flush=True)

    def table(self) -> str:
        head = Row("measurement", "database", "goal", "measured", "")
        cols = [head, *self.rows]
        w = [max(len(getattr(r, a)) for r in cols) for a in ("name", "backend", "goal", "value")]
        lines = []
        for i, r in enumerate(cols):
            lines.append(f"{r.name:<{w[0]}}  {r.backend:<{w[1]}}  {r.goal:<{w[2]}}  "
                         f"{r.value:>{w[3]}}  {r.verdict}".rstrip())
            if i == 0:
                lines.append("  ".join("-" * x for x in w) + "  -------")
        return "\n".join(lines)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# --------------------------------------------------------------------- databases


@dataclass
class Postgres:
    base: str  # postgresql+asyncpg://postgres@127.0.0.1:PORT

    async def new_database(self) -> str:
        name = f"bench_{secrets.token_hex(5)}"
        conn = await asyncpg.connect(self._dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"{self.base}/{name}"

    def _dsn(self, db: str) -> str:
        return self.base.replace("postgresql+asyncpg://", "postgresql://") + "/" + db


@contextlib.contextmanager
def postgres_server() -> Any:
    # A directory of its own: the script hands it to the postgres user when run as root.
    d = tempfile.mkdtemp(prefix="deckhand-bench-pg-")
    try:
        out = subprocess.run([str(PG_SCRIPT), "start", d], check=True, capture_output=True,
                             text=True)
        try:
            yield Postgres(out.stdout.strip())
        finally:
            subprocess.run([str(PG_SCRIPT), "stop", d], check=False)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sqlite_url(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path / 'deckhand.db'}"


# --------------------------------------------------------------------- subprocesses


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-n:]
        return ""


@dataclass
class Cluster:
    """Deckhand processes sharing one data dir and database."""

    tmp: Path
    url: str
    procs: list[Proc] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
        env.update({"DECKHAND_DATA_DIR": str(self.tmp), "DECKHAND_DATABASE_URL": self.url,
                    "DECKHAND_SECRET_KEY": SECRET, "DECKHAND_LOG_LEVEL": "info",
                    # no warm spare machines: they would only take CPU from the measurement
                    "DECKHAND_MACHINE_POOL_TERMINAL": "0", "DECKHAND_MACHINE_POOL_BROWSER": "0",
                    "DECKHAND_MACHINE_POOL_DESKTOP": "0",
                    **self.extra_env})
        return env

    def key(self) -> str:
        out = subprocess.run([sys.executable, "-m", "deckhand.cli", "keys", "create",
                              "--name", "bench", "--json"], env=self.env(), check=True,
                             capture_output=True, text=True)
        return str(json.loads(out.stdout.strip().splitlines()[-1])["key"])

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with open(log, "wb") as f:
            p = subprocess.Popen(argv, env=self.env(), stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def deckhand(self, name: str, *args: str) -> Proc:
        return self.spawn(name, [sys.executable, "-m", "deckhand.cli", *args])

    async def serve(self, *args: str) -> str:
        port = free_port()
        proc = self.deckhand("serve", "serve", "--port", str(port), *args)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=1) as c:
            while True:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"serve exited:\n{proc.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get(url + "/v1/health")).status_code == 200:
                        return url
                if time.monotonic() > deadline:
                    raise RuntimeError(f"serve not healthy:\n{proc.tail()}")
                await asyncio.sleep(0.05)

    async def wait_log(self, proc: Proc, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in proc.tail(100_000):
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name}: no {text!r} in its log:\n{proc.tail()}")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        self.procs.clear()
        kill_sessions_naming(self.tmp)  # machine agents outlive their server by design


@contextlib.asynccontextmanager
async def cluster(tmp: Path, url: str, **extra_env: str) -> AsyncIterator[Cluster]:
    tmp.mkdir(parents=True, exist_ok=True)
    c = Cluster(tmp, url, extra_env=extra_env)
    try:
        yield c
    finally:
        c.stop()


@contextlib.asynccontextmanager
async def machine(client: DeckhandClient) -> AsyncIterator[str]:
    m = await client.create_machine("bench")
    try:
        yield m["id"]
    finally:
        await client.delete_machine(m["id"])
