"""Starting an agent process (``deckhand machine-agent``): a browser
machine's box and Chromium first, then the agent's HTTP side.

Chromium takes ~0.5 s to answer its first command, the agent's HTTP side
(Starlette, uvicorn, the action models) ~0.3 s to import. So a browser
machine's box is made and Chromium's process started before
:mod:`.serving` is imported: both happen at once, and the browser's
``start`` (in the agent's start-up, as before) connects to a Chromium that
is already coming up. This module imports only what that needs."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from deckhand.machine_agent.box import MachineBox
from deckhand.machine_agent.browser import Browser
from deckhand.machine_agent.cgroups import Limits
from deckhand.machine_agent.settle import SettlePolicy


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def run_agent(
    machine_id: str | None,
    workspace: str,
    token: str,
    listen: str,
    ready_file: str | None,
    sandbox: bool | None,
    network: bool,
    *,
    state_dir: str | None = None,
    desktop: bool = False,
    browser: bool = False,
    settle: SettlePolicy | None = None,
    limits: Limits | None = None,
    host_allow: list[tuple[str, int]] | None = None,
) -> None:
    """Entry point of ``deckhand machine-agent``: serve one machine until shut
    down. ``listen`` is ``HOST:PORT`` (port 0 picks a free one). Without a
    ``machine_id`` the agent waits to be claimed (``POST /claim``)."""
    host, port = parse_listen(listen)
    ws = Path(workspace)
    if not ws.is_dir():
        raise SystemExit(f"workspace {workspace} is not a directory")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        box = launched = None
        if browser and not desktop:
            real = Path(os.path.realpath(ws))
            state = Path(state_dir) if state_dir else real.parent
            box = MachineBox(state, real, limits=limits, host_allow=host_allow or [])
            try:
                await box.start(network)
                launched = Browser(state / "browser-profile", real / "Downloads",
                                   network=network, box=box)
                await launched.launch()
            except BaseException:
                await box.close()
                raise
        # imported while Chromium comes up
        from deckhand.machine_agent.server import AgentOptions
        from deckhand.machine_agent.serving import serve

        options = AgentOptions(sandbox=sandbox, network=network, state_dir=state_dir,
                               desktop=desktop, browser=browser,
                               settle=settle or SettlePolicy(), limits=limits,
                               host_allow=host_allow or [], box=box, launched=launched)
        await serve(machine_id, ws, token, host=host, port=port, ready_file=ready_file,
                    sandbox=sandbox, network=network, options=options)

    asyncio.run(main())
