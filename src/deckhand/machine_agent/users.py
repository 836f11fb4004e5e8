"""The host user a machine runs as: one uid per machine, not root, owning
nothing on the host but the machine's workspace (and browser profile).

The uids come from a reserved range (``UID_BASE`` on), skipping any uid the
host names in ``/etc/passwd`` or hands out as subordinate ids (``/etc/subuid``,
``/etc/subgid``). A machine's claim is a file ``/run/deckhand/uids/<uid>``
naming its directory, taken under a lock, so two agents on one host (of one
data dir or of several) never share a uid; a claim whose directory is gone is
free again. An agent started on a directory it ran before keeps its uid (its
workspace is owned by it).

The switch happens last, just before the machine's program runs:
``setpriv`` sets the real, effective and saved uid and gid, clears the
supplementary groups, empties the capability sets (bounding and inheritable
included) and sets no-new-privileges, so set-uid programs (``su``, ``sudo``)
gain nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

UID_BASE = 200_000
UID_COUNT = 65_536
CLAIMS = Path("/run/deckhand/uids")
RUNTIME = Path("/run/deckhand/machines")


def _reserved() -> set[int]:
    """uids the host uses or delegates: never a machine's."""
    taken: set[int] = set()
    with contextlib.suppress(OSError):
        for line in Path("/etc/passwd").read_text().splitlines():
            parts = line.split(":")
            if len(parts) > 3 and parts[2].isdigit():
                taken.add(int(parts[2]))
    for sub in ("/etc/subuid", "/etc/subgid"):
        with contextlib.suppress(OSError):
            for line in Path(sub).read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    start, count = int(parts[1]), int(parts[2])
                    lo, hi = max(start, UID_BASE), min(start + count, UID_BASE + UID_COUNT)
                    taken.update(range(lo, hi))
    return taken


def claim_uid(state_dir: Path, workspace: Path, *, claims: Path = CLAIMS) -> int | None:
    """The machine's uid (claimed for ``state_dir``), or None when the agent is
    not root (then the machine runs as the agent's user, as before)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        logger.warning("the agent is not root (or setpriv is missing): the machine runs as "
                       "the agent's own user")
        return None
    me = str(state_dir.resolve())
    claims.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(claims / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held: dict[int, str] = {}
        for entry in os.listdir(claims):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    held[int(entry)] = (claims / entry).read_text().strip()
        mine = [uid for uid, owner in held.items() if owner == me]
        owner_now = os.stat(workspace).st_uid
        if owner_now in mine or (UID_BASE <= owner_now < UID_BASE + UID_COUNT
                                 and owner_now not in held):
            uid = owner_now
        elif mine:
            uid = mine[0]
        else:
            reserved = _reserved()
            uid = next((u for u in range(UID_BASE, UID_BASE + UID_COUNT)
                        if u not in reserved and (u not in held
                                                  or not Path(held[u]).exists())), -1)
            if uid < 0:
                raise OSError("no free machine uid left on this host")
        tmp = claims / f".{uid}.tmp"
        tmp.write_text(me + "\n")
        os.replace(tmp, claims / str(uid))
    return uid


def release_uid(state_dir: Path, *, claims: Path = CLAIMS) -> None:
    """Give the machine's uid back (its directory is being deleted)."""
    me = str(state_dir.resolve())
    with contextlib.suppress(OSError), open(claims / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as claim_uid: never unlink a claim just retaken
        for entry in os.listdir(claims):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if (claims / entry).read_text().strip() == me:
                        (claims / entry).unlink()


def runtime_dir(uid: int, *, root: Path = RUNTIME) -> Path:
    """A directory of the machine's own on the host, ``root/<uid>`` (0700,
    its user's), for what its programs that run outside bubblewrap read by
    path: the X server's cookie, x11vnc's password. The data dir does not
    do: its parents may be closed to the machine's user (``/root`` is 0700),
    and an X server that cannot read its cookie lets every client in."""
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    os.chmod(root, 0o711)  # traversable, not listable
    path = root / str(uid)
    path.mkdir(mode=0o700, exist_ok=True)
    os.lchown(path, uid, uid)
    os.chmod(path, 0o700)
    return path


def own_tree(path: Path, uid: int) -> None:
    """Make ``path`` (a directory) and everything under it owned by ``uid``,
    without following symlinks; a no-op when its top already is."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
    if os.lstat(path).st_uid == uid:
        return
    os.lchown(path, uid, uid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), uid, uid)


def setpriv_argv(uid: int) -> list[str]:
    """The command prefix that becomes ``uid`` for good before executing the rest."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
