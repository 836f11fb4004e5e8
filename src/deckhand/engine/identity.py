"""The worker identity a data dir keeps, so that a restarted process knows
which runs were its own and resumes them at once instead of waiting for
their leases to run out.

The identity lives in ``data_dir/worker_id`` (created once, mode 0600) and
belongs to whichever process holds an exclusive ``flock`` on that file. The
kernel drops the lock when its holder dies, ``kill -9`` included, so holding
it proves that no other live process claims under that identity: a second
process on the same data dir (``serve`` beside a ``worker``, two workers)
cannot take the lock and gets a fresh identity, which waits for leases as
before. Claims that name the stable identity, left by a dead holder, are
therefore safe to take over at once (see :meth:`LeasedQueue.claim`'s
``resume``). On PostgreSQL with several hosts each data dir has its own file,
so the identity is still unique.

Within one process the stable identity goes to the first claim loop of each
kind only (one run worker, one workflow worker); another loop of the same kind
would otherwise see the first one's runs as left behind by a dead process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
from pathlib import Path

from deckhand.engine.claim_loop import new_worker_id

FILE = "worker_id"


class WorkerIdentity:
    """The process's claim on the data dir's worker identity (taken lazily:
    a process that runs no worker, ``serve --no-workers``, leaves it to one
    that does)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE
        self._fd: int | None = None
        self._stable: str | None = None
        self._tried = False
        self._given: set[str] = set()

    @property
    def stable_id(self) -> str | None:
        """The data dir's identity if this process holds it, else None."""
        self._acquire()
        return self._stable

    def take(self, kind: str) -> str:
        """The worker id for a claim loop of ``kind``: the stable identity for
        the first loop of each kind while this process holds the lock, a fresh
        one (host:pid:random) otherwise."""
        stable = self.stable_id
        if stable is None or kind in self._given:
            return new_worker_id()
        self._given.add(kind)
        return stable

    def release(self) -> None:
        """Give the identity up (after the loops using it have stopped)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
        self._stable = None
        self._given.clear()

    def _acquire(self) -> None:
        if self._tried:
            return
        self._tried = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a machine agent spawned by this process (it outlives it)
        # must not inherit the descriptor, or the lock would outlive us too.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            self._stable = _read_or_write(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _read_or_write(fd: int) -> str:
    """The id in the (locked) file, written first if the file is new."""
    os.fchmod(fd, 0o600)
    raw = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if raw:
        return raw
    value = f"{socket.gethostname()}:dd-{secrets.token_hex(6)}"
    os.ftruncate(fd, 0)
    os.pwrite(fd, value.encode() + b"\n", 0)
    os.fsync(fd)
    return value
