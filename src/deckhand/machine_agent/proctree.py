"""Process trees from /proc: children, descendants, and killing them (stopped
first, so that nothing can fork away, then SIGKILLed)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's children), from /proc."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def descendant_pids(pid: int, *, prune: Iterable[int] = ()) -> list[int]:
    """All descendants of ``pid``, parents before children. Processes in
    ``prune`` are skipped together with their own descendants."""
    skip = set(prune)
    found: list[int] = []
    queue = [pid]
    seen = {pid}
    while queue:
        for child in child_pids(queue.pop(0)):
            if child in seen or child in skip:
                continue
            seen.add(child)
            found.append(child)
            queue.append(child)
    return found


def send_signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_descendants(pid: int, *, prune: Iterable[int] = ()) -> int:
    """SIGKILL every descendant of ``pid`` (not ``pid`` itself), except the
    subtrees of ``prune``. Processes are stopped first and the tree is walked
    again until it is stable, so that nothing forks out of reach between the
    walk and the kill. Returns how many processes were killed."""
    keep = set(prune)
    stopped: list[int] = []
    for _ in range(50):
        fresh = [p for p in descendant_pids(pid, prune=keep) if p not in stopped]
        if not fresh:
            break
        for p in fresh:
            if send_signal(p, signal.SIGSTOP):
                stopped.append(p)
            else:
                keep.add(p)
    for p in stopped:
        send_signal(p, signal.SIGKILL)
    return len(stopped)


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""
