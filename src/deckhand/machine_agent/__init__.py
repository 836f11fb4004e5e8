"""The machine agent: the program that serves one or more machines over HTTP
(``deckhand machine-agent``, ``python -m deckhand.machine_agent``).

It imports only :mod:`deckhand.core` and the base modules, so it runs on hosts
without the database. This package root is its public surface: the control
plane, the CLI and the API import what they need from here, never from the
agent's modules. The names load on first use, so importing the package costs
nothing until one is read.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deckhand.machine_agent.__main__ import read_token
    from deckhand.machine_agent.cgroups import Limits, remove_recorded
    from deckhand.machine_agent.commands import BROWSER_OPS, COMMANDS
    from deckhand.machine_agent.launch import run_agent
    from deckhand.machine_agent.netns import parse_allow
    from deckhand.machine_agent.proctree import descendant_pids
    from deckhand.machine_agent.settle import SettlePolicy
    from deckhand.machine_agent.users import release_uid

# public name -> the module that defines it
_EXPORTS = {
    "BROWSER_OPS": "commands",  # the browser_* operations the agent accepts
    "COMMANDS": "commands",  # every operation of POST /command
    "Limits": "cgroups",  # a machine's memory, CPU and process limits
    "remove_recorded": "cgroups",  # remove a stopped machine's cgroup
    "parse_allow": "netns",  # DECKHAND_MACHINE_HOST_ALLOW's host ports
    "release_uid": "users",  # give a deleted machine's uid back
    "SettlePolicy": "settle",  # how the screen is settled after an action
    "descendant_pids": "proctree",  # the processes under a pid (to stop an agent whole)
    "read_token": "__main__",  # the bearer token from --token-file or the environment
    "run_agent": "launch",  # serve machines until stopped
}

__all__ = ["BROWSER_OPS", "COMMANDS", "Limits", "SettlePolicy", "descendant_pids",
           "parse_allow", "read_token", "release_uid", "remove_recorded", "run_agent"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
