"""The ``deckhand`` command line as a user runs it, against a live server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

DECKHAND = [sys.executable, "-m", "deckhand.cli"]


async def deckhand(tmp_path: Path, *args: str, server: Any = None,
                   key: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run the CLI (exit code, stdout, stderr); the server (a LiveServer) and
    key come from the environment, as a user sets them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DECKHAND_")}
    env["DECKHAND_DATA_DIR"] = str(tmp_path / "var")
    if server is not None:
        env["DECKHAND_URL"] = server.url
    if key is not None:
        env["DECKHAND_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        *DECKHAND, *args, env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
