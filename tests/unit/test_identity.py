"""The data dir's worker identity (engine/identity.py): kept in a 0600 file,
held under an exclusive flock while its process lives; a second holder gets a
fresh identity; a killed holder's lock is free again at once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from deckhand.engine.identity import FILE, WorkerIdentity

HOLDER = """
import sys
from pathlib import Path
from deckhand.engine.identity import WorkerIdentity
identity = WorkerIdentity(Path(sys.argv[1]))
print(identity.stable_id, flush=True)
sys.stdin.read()
"""


def hold_in_process(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Another process holding ``data_dir``'s identity; it and the id it holds."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(data_dir)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_created_once_private_and_kept(tmp_path: Path) -> None:
    first = WorkerIdentity(tmp_path)
    stable = first.stable_id
    assert stable and stable.count(":") == 1  # host:dd-<hex>, no pid in it
    mode = stat.S_IMODE(os.stat(tmp_path / FILE).st_mode)
    assert mode == 0o600
    first.release()
    again = WorkerIdentity(tmp_path)
    assert again.stable_id == stable
    again.release()


def test_second_holder_in_the_same_process_gets_a_fresh_id(tmp_path: Path) -> None:
    first = WorkerIdentity(tmp_path)
    second = WorkerIdentity(tmp_path)
    assert first.stable_id is not None
    assert second.stable_id is None
    fresh = second.take("run")
    assert fresh != first.stable_id and fresh.count(":") == 2  # host:pid:random
    first.release()
    # the lock is free now, but `second` decided once: it stays fresh
    assert second.stable_id is None
    second.release()


def test_the_stable_id_goes_to_one_loop_of_each_kind(tmp_path: Path) -> None:
    identity = WorkerIdentity(tmp_path)
    stable = identity.stable_id
    assert identity.take("run") == stable
    assert identity.take("workflow run") == stable
    assert identity.take("run") != stable
    identity.release()


def test_another_process_holding_it_leaves_us_a_fresh_id(tmp_path: Path) -> None:
    proc, held = hold_in_process(tmp_path)
    try:
        assert held.count(":") == 1
        ours = WorkerIdentity(tmp_path)
        assert ours.stable_id is None
        assert ours.take("run") != held
    finally:
        proc.kill()  # SIGKILL: the kernel drops the lock with the process
        proc.wait(timeout=10)
    after = WorkerIdentity(tmp_path)
    assert after.stable_id == held
    after.release()


def test_children_do_not_inherit_the_lock(tmp_path: Path) -> None:
    """A machine agent outlives the server that spawned it: it must not keep
    the server's lock, or a restarted server could never resume its runs."""
    identity = WorkerIdentity(tmp_path)
    stable = identity.stable_id
    child = subprocess.Popen(["sleep", "60"], close_fds=False)
    try:
        identity.release()
        successor = WorkerIdentity(tmp_path)
        assert successor.stable_id == stable
        successor.release()
    finally:
        child.kill()
        child.wait(timeout=10)
