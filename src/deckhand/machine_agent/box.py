"""The box a machine's processes run in: its cgroup (limits, :mod:`.cgroups`),
its host user (:mod:`.users`), its network namespace (:mod:`.netns`), and the
command line prefix every program the machine runs is started with.

:class:`MachineBox` is made once per agent; the terminal, the desktop and
the browser ask it to ``wrap`` what they start. An agent that cannot build a
part (not root, no cgroup tree) runs without it and says so in ``/info``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from deckhand.machine_agent import netns, users
from deckhand.machine_agent.cgroups import CgroupError, Limits, MachineCgroup
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.sandbox import bwrap_argv

logger = logging.getLogger(__name__)


class MachineBox:
    def __init__(self, state_dir: Path, workspace: Path, *, limits: Limits | None,
                 host_allow: list[tuple[str, int]] | None = None) -> None:
        """``limits`` None: no box (the agent's own tests run so).
        ``host_allow``: the host ports the machine may reach (:mod:`.netns`)."""
        self.state_dir = state_dir
        self.workspace = workspace
        self.limits = limits
        self.cgroup: MachineCgroup | None = None
        self.uid: int | None = None
        self.net: netns.MachineNet | None = None
        self._net_started = False
        if limits is None:
            return
        self.uid = users.claim_uid(state_dir, workspace)
        if self.uid is not None:
            users.own_tree(workspace, self.uid)
        try:
            self.cgroup = MachineCgroup.create(state_dir.name, limits, record_dir=state_dir)
        except (CgroupError, OSError) as exc:
            logger.warning("the machine's cgroup could not be made: %s", exc)
        if self.uid is not None and netns.available():
            self.net = netns.MachineNet(host_allow or [])
        else:
            logger.warning("the machine shares the host's network (needs root, slirp4netns, "
                           "nsenter, nft and ip)")

    async def start(self, network: bool) -> None:
        """Bring up the machine's network (before anything runs in it)."""
        if self.net is not None and not self._net_started:
            await self.net.start(network)
            self._net_started = True

    async def set_network(self, network: bool) -> None:
        if self.net is not None and self._net_started:
            await self.net.set_egress(network)

    @property
    def own_network(self) -> bool:
        """Whether the machine's programs run in a network namespace of its own
        (then bubblewrap must not make another one)."""
        return self.net is not None and self._net_started

    def resolv_conf(self) -> str | None:
        """The /etc/resolv.conf a sandbox shows, when the host's cannot serve it."""
        if not self.own_network:
            return None
        return netns.resolv_conf(self.state_dir)

    def set_limits(self, limits: Limits) -> None:
        """New limits (a claimed spare takes its machine's)."""
        self.limits = limits
        if self.cgroup is not None:
            self.cgroup.apply(limits)

    def enter(self, argv: list[str], *, network: bool = True) -> list[str]:
        """``argv`` started inside the machine's cgroup and (``network``) in its
        network namespace."""
        prefix = self.cgroup.join_argv() if self.cgroup is not None else []
        if network and self.net is not None and self._net_started:
            prefix += self.net.enter_argv()
        return [*prefix, *argv]

    def as_user(self, argv: list[str]) -> list[str]:
        """``argv`` run as the machine's user (when it has one)."""
        return [*users.setpriv_argv(self.uid), *argv] if self.uid is not None else argv

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` in the cgroup, as the machine's user."""
        return self.enter(self.as_user(argv))

    def private_dir(self) -> Path:
        """Where files the machine's own programs read by path go (see
        :func:`users.runtime_dir`); the state dir without a user of its own."""
        return users.runtime_dir(self.uid) if self.uid is not None else self.state_dir

    def own(self, path: Path) -> None:
        """Give ``path`` (made by the agent, as root) to the machine's user."""
        if self.uid is not None:
            users.own_tree(path, self.uid)

    def chromium(self, profile_dir: Path,
                 display_env: dict[str, str] | None) -> tuple[list[str], bool]:
        """The command prefix Chromium's binary is started with, and whether
        Chromium runs as the machine's user (in its sandbox, with its own
        sandbox on) or, without a user of its own, only in the cgroup and the
        network. The browser talks to it over a pipe (fds 3 and 4), which
        every program of the prefix passes on."""
        if self.uid is None:
            return self.enter([]), False
        users.own_tree(profile_dir, self.uid)
        binds = [str(profile_dir)]
        if display_env:
            binds.append(f"/tmp/.X11-unix/X{display_env['DISPLAY'].lstrip(':').split('.')[0]}")
            binds.append(display_env["XAUTHORITY"])
        argv = bwrap_argv(self.workspace, network=True, uid=self.uid, binds=tuple(binds),
                          resolv=self.resolv_conf())
        argv += ["--setenv", "TMPDIR", "/tmp", "--setenv", "HOME", str(profile_dir),
                 "--setenv", "XDG_CACHE_HOME", f"{profile_dir}/.cache",
                 "--setenv", "XDG_CONFIG_HOME", f"{profile_dir}/.config"]
        return self.enter([*argv, *self.as_user([])]), True

    def info(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "network": self.net.info() if self.net is not None and self._net_started
            else "host",
            "cgroup": None if self.cgroup is None else f"v{self.cgroup.version}",
            "limits": None if self.cgroup is None or self.limits is None
            else self.limits.to_json(),
        }

    async def close(self) -> None:
        """Stop every process left in the machine, its network, and remove its cgroup."""
        if self.net is not None:
            try:
                await self.net.close()
            except (AgentError, OSError) as exc:
                logger.warning("closing the machine's network: %s", exc)
            self._net_started = False
        await asyncio.to_thread(self._remove_cgroup)
        if self.uid is not None:
            await asyncio.to_thread(shutil.rmtree, users.RUNTIME / str(self.uid), True)

    def _remove_cgroup(self) -> None:
        if self.cgroup is not None:
            if self.cgroup.remove():
                (self.state_dir / "cgroup.json").unlink(missing_ok=True)
            self.cgroup = None
