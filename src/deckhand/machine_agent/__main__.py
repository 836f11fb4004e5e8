"""``python -m deckhand.machine_agent``: run a machine agent.

The token is read from ``--token-file`` (which must not be readable by group
or others) or from the ``DECKHAND_AGENT_TOKEN`` environment variable, so that
it never appears on a command line.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys

TOKEN_ENV = "DECKHAND_AGENT_TOKEN"
DEFAULT_QUIET_MS, DEFAULT_CAP_MS = 60, 3000  # as in deckhand.machine_agent.settle


def read_token(token_file: str | None) -> str:
    if token_file:
        st = os.stat(token_file)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SystemExit(f"{token_file} is readable by others; chmod 600 it")
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
    else:
        token = os.environ.pop(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(f"no token: pass --token-file or set {TOKEN_ENV}")
    return token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deckhand.machine_agent",
                                     description="Serve one machine over HTTP.")
    parser.add_argument("--machine-id", help="the machine's id (omitted: wait to be claimed)")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--state-dir", help="Xauthority, browser profile (default: the "
                                            "workspace's parent directory)")
    parser.add_argument("--token-file", help=f"file holding the bearer token (else ${TOKEN_ENV})")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT; port 0 picks one")
    parser.add_argument("--ready-file", help="where to write {pid, port, url} once listening")
    parser.add_argument("--sandbox", action=argparse.BooleanOptionalAction, default=None,
                        help="run shells under bubblewrap (default: when bwrap is installed)")
    parser.add_argument("--network", action=argparse.BooleanOptionalAction, default=True,
                        help="give sandboxed shells the network (default: yes)")
    parser.add_argument("--desktop", action="store_true",
                        help="run a desktop (Xvfb, openbox, xterm) for this machine")
    parser.add_argument("--browser", action="store_true",
                        help="launch the browser before reporting ready")
    parser.add_argument("--settle-quiet-ms", type=int, default=DEFAULT_QUIET_MS,
                        help="after a screen action, the screen is settled once still this "
                             "long (ms)")
    parser.add_argument("--settle-cap-ms", type=int, default=DEFAULT_CAP_MS,
                        help="and an action waits at most this long for it (ms)")
    parser.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=True,
                        help="run the machine's programs in its box: a cgroup holding its "
                             "limits, a uid of its own, a network of its own (default: yes, "
                             "as far as the host lets the agent; docs/machines.md)")
    parser.add_argument("--memory-mb", type=int, default=2048,
                        help="memory of the machine (MiB; default 2048)")
    parser.add_argument("--cpus", type=float, default=1.0,
                        help="CPU cores of the machine (default 1)")
    parser.add_argument("--pids-max", type=int, default=512,
                        help="processes the machine may run at once (default 512)")
    parser.add_argument("--host-allow", default="",
                        help="host ports the machine may reach, at their own address "
                             "(comma list of IPv4:PORT, e.g. 127.0.0.1:8099)")
    args = parser.parse_args(argv)
    for name in ("memory_mb", "cpus", "pids_max"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    token = read_token(args.token_file)
    # Imported after the arguments are read: `--help` stays fast.
    from deckhand.machine_agent.cgroups import Limits
    from deckhand.machine_agent.launch import run_agent
    from deckhand.machine_agent.netns import parse_allow

    try:
        host_allow = parse_allow(args.host_allow)
    except ValueError as exc:
        parser.error(str(exc))
    from deckhand.machine_agent.settle import SettlePolicy

    run_agent(
        machine_id=args.machine_id,
        workspace=args.workspace,
        token=token,
        listen=args.listen,
        ready_file=args.ready_file,
        sandbox=args.sandbox,
        network=args.network,
        state_dir=args.state_dir,
        desktop=args.desktop,
        browser=args.browser,
        settle=SettlePolicy(args.settle_quiet_ms, args.settle_cap_ms),
        limits=Limits(args.memory_mb, args.cpus, args.pids_max) if args.isolate else None,
        host_allow=host_allow,
    )


if __name__ == "__main__":
    sys.exit(main())
