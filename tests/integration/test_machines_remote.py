"""A machine agent started by hand (``deckhand machine-agent --listen
HOST:PORT --token T``) on another loopback port, registered with the server
through the API and the CLI, and used by runs like a local machine."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.contract import assert_error, assert_valid
from tests.support.machine_pages import server, sqlite_server
from tests.support.polling import wait_until_sync
from tests.support.runs import start, wait_for

__all__ = ["server", "sqlite_server"]  # fixtures that terminate leftover machines

pytestmark = pytest.mark.asyncio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def remote_agent(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A hand-started agent on its own port, with its own workspace."""
    port, token = _free_port(), secrets.token_urlsafe(24)
    workspace = tmp_path / "remote-host" / "workspace"
    env = {**os.environ, "DECKHAND_AGENT_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deckhand.cli", "machine-agent", "--listen",
         f"127.0.0.1:{port}", "--workspace", str(workspace)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, "the agent exited"
        try:
            r = httpx.get(url + "/health", headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    wait_until_sync(healthy, timeout=20, what=f"the agent at {url} to start")
    yield url, token, workspace
    os.killpg(proc.pid, 15)
    proc.wait(timeout=10)


async def test_register_and_run_on_a_remote_agent(sqlite_server, remote_agent) -> None:  # type: ignore[no-untyped-def]
    url, token, workspace = remote_agent
    key = await sqlite_server.key()
    async with sqlite_server.client(key) as c:
        r = await c.post("/v1/machines", json={"display_name": "far", "agent_url": url,
                                               "agent_token": "wrong"})
        assert_error(r, 502, "MACHINE_ERROR")
        r = await c.post("/v1/machines", json={"display_name": "far", "agent_url": url,
                                               "agent_token": token})
        assert r.status_code == 200, r.text
        assert_valid("ProvisionResponse", r.json())
        m = r.json()["machine"]
        assert m["status"] == "running" and m["provider"] == "remote"
        mid = m["id"]
        # the agent now serves that machine, and refuses a second registration
        info = httpx.get(url + "/info", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["machine_id"] == mid
        r = await c.post("/v1/machines", json={"display_name": "again", "agent_url": url,
                                               "agent_token": token})
        assert_error(r, 409, "INVALID_STATE")

        run = await start(c, machine_id=mid, task='run `echo remote-$((40+2)) > r.txt; '
                                                  'cat r.txt` then verify the output '
                                                  'contains "remote-42"')
        final = await wait_for(c, run["id"], timeout=60)
        assert final["status"] == "succeeded", final
        assert (workspace / "r.txt").read_text() == "remote-42\n"
        shot = (await c.get(f"/v1/machines/{mid}/screenshot")).json()
        assert_valid("ScreenshotResponse", shot)

        r = await c.delete(f"/v1/machines/{mid}")
        assert r.json()["status"] == "terminated"
        # released: its workspace emptied, ready to be registered again
        assert list(workspace.iterdir()) == []
        info = httpx.get(url + "/info", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["machine_id"] is None


async def test_cli_registers_a_remote_agent(sqlite_server, remote_agent) -> None:  # type: ignore[no-untyped-def]
    url, token, _ = remote_agent
    key = await sqlite_server.key()
    env = {**os.environ, "DECKHAND_URL": sqlite_server.url, "DECKHAND_API_KEY": key,
           "DECKHAND_AGENT_TOKEN": token}
    # (the server runs in this event loop: the CLI must not block it)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deckhand.cli", "machines", "register", url, "--name", "by-cli",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    mid = stdout.decode().strip().splitlines()[-1]
    async with sqlite_server.client(key) as c:
        m = (await c.get(f"/v1/machines/{mid}")).json()["machine"]
        assert m["display_name"] == "by-cli" and m["provider"] == "remote"
        r = await c.post(f"/v1/machines/{mid}/terminal", json={"command": "echo via-cli"})
        assert r.json()["result"]["output"] == "via-cli\n"
