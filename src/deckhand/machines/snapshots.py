"""Snapshots of local machines: the workspace and the browser profile, as a
gzipped tar under ``data_dir/snapshots/<snapshot_id>.tar.gz`` (mode 0600).
Restoring unpacks one into a new machine's directory before its agent
starts. Symlinks are kept as links (never followed) and members that would
land outside the machine's directory are refused."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

MEMBERS = ("workspace", "browser-profile")
# Chromium's lock files point at the process that held them: not restorable.
SKIP = {"SingletonLock", "SingletonCookie", "SingletonSocket"}


class SnapshotError(Exception):
    pass


def snapshot_path(data_dir: Path, snapshot_id: str) -> Path:
    return data_dir / "snapshots" / f"{snapshot_id}.tar.gz"


def create(machine_dir: Path, target: Path) -> int:
    """Pack the machine's workspace and profile into ``target``; its size."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(target.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if os.path.basename(info.name) in SKIP or not (info.isfile() or info.isdir()
                                                         or info.issym()):
            return None
        return info

    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name in MEMBERS:
            source = machine_dir / name
            if source.exists():
                tar.add(source, arcname=name, filter=keep)
    os.replace(tmp, target)
    return target.stat().st_size


def restore(archive: Path, machine_dir: Path) -> None:
    """Unpack ``archive`` into ``machine_dir`` (which must not hold a workspace yet)."""
    if not archive.exists():
        raise SnapshotError(f"snapshot file {archive.name} is missing")
    machine_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(machine_dir, filter="data")
    workspace = machine_dir / "workspace"
    workspace.mkdir(exist_ok=True, mode=0o700)
    os.chmod(workspace, 0o700)
