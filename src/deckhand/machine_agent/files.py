"""File operations confined to a machine's workspace.

A path is relative to the workspace, or absolute inside it. It is resolved
(symlinks included) and refused if it leads outside. The operation then walks
to the resolved path from the workspace one component at a time with
``O_NOFOLLOW``, so a symlink planted between the check and the access (the
sandboxed shell writes in the same directory) makes it fail instead of escape.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from deckhand.machine_agent.errors import AgentError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_LIST_ENTRIES = 10_000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Encoding = Literal["utf-8", "base64"]
EntryType = Literal["file", "directory", "symlink", "other"]


class FileAccessError(AgentError):
    """A file operation was refused or failed; the message is meant for the
    agent (it names the path and what to do differently)."""


@dataclass(frozen=True)
class FileContent:
    path: str
    content: str
    encoding: Encoding
    size: int


@dataclass(frozen=True)
class DirEntry:
    name: str
    type: EntryType
    size: int


@dataclass(frozen=True)
class Listing:
    path: str
    entries: tuple[DirEntry, ...]
    truncated: bool


@contextmanager
def _os_errors(path: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise FileAccessError(f"{path}: no such file or directory") from None
    except NotADirectoryError:
        raise FileAccessError(f"{path}: a component of the path is not a directory") from None
    except IsADirectoryError:
        raise FileAccessError(f"{path}: is a directory") from None
    except PermissionError:
        raise FileAccessError(f"{path}: permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileAccessError(
                f"{path}: the path changed while it was being accessed (a symlink appeared)"
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO without reader, a socket, a device
            raise FileAccessError(f"{path}: not a regular file") from None
        if exc.errno == errno.ENOTEMPTY:
            raise FileAccessError(f"{path}: directory not empty") from None
        raise FileAccessError(f"{path}: {exc.strerror or exc}") from None


class WorkspaceFiles:
    """File operations on one workspace directory."""

    def __init__(self, root: Path | str, *, owner: int | None = None) -> None:
        """``owner``: the machine's uid, given what the agent (root) creates."""
        self.owner = owner
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise FileAccessError(f"workspace {self.root} is not a directory")

    # ------------------------------------------------------------------ paths

    def resolve(self, path: str, *, follow_final: bool = True) -> Path:
        """The real absolute path ``path`` names, which must lie inside the
        workspace. With ``follow_final=False`` a symlink in the last component
        is not followed (it is the object operated on, as for ``rm``)."""
        if not isinstance(path, str):
            raise FileAccessError("path must be a string")
        if "\x00" in path:
            raise FileAccessError("path contains a NUL byte")
        raw = path.strip() or "."
        candidate = raw if os.path.isabs(raw) else os.path.join(self.root, raw)
        name = os.path.basename(candidate.rstrip("/"))
        if follow_final or name in ("", ".", "..") or candidate.endswith("/"):
            real = Path(os.path.realpath(candidate))
        else:
            real = Path(os.path.realpath(os.path.dirname(candidate))) / name
        if real != self.root and self.root not in real.parents:
            raise FileAccessError(
                f"{path}: outside the workspace ({self.root}); "
                "use a path relative to the workspace or absolute inside it"
            )
        return real

    def _give(self, fd: int) -> None:
        """Hand what the agent just made to the machine's user: only a file
        root owns with one link (never one the machine linked in from outside)."""
        if self.owner is None:
            return
        st = os.fstat(fd)
        if st.st_uid == 0 and (st.st_nlink == 1 or stat.S_ISDIR(st.st_mode)):
            os.fchown(fd, self.owner, self.owner)

    def _parts(self, real: Path) -> tuple[str, ...]:
        return real.relative_to(self.root).parts

    def _open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> int:
        """An fd of the directory ``root/parts`` reached without following any
        symlink; missing directories are made when ``create``."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    self._give(nfd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent(self, real: Path, path: str, *, create: bool = False) -> tuple[int, str]:
        parts = self._parts(real)
        if not parts:
            raise FileAccessError(f"{path}: is the workspace itself")
        return self._open_dir(parts[:-1], create=create), parts[-1]

    # ------------------------------------------------------------------ reading

    def read_bytes(self, path: str) -> tuple[Path, bytes]:
        real = self.resolve(path)
        with _os_errors(path):
            dfd, name = self._parent(real, path)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dfd)
            finally:
                os.close(dfd)
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if stat.S_ISDIR(st.st_mode):
                    raise FileAccessError(f"{path}: is a directory; use list-directory")
                if not stat.S_ISREG(st.st_mode):
                    raise FileAccessError(f"{path}: not a regular file")
                if st.st_size > MAX_FILE_BYTES:
                    raise FileAccessError(
                        f"{path}: {st.st_size} bytes; the limit is {MAX_FILE_BYTES} bytes"
                    )
                data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise FileAccessError(f"{path}: larger than the limit of {MAX_FILE_BYTES} bytes")
        return real, data

    def read(self, path: str, *, binary: bool = False) -> FileContent:
        """The file's content: text when it is UTF-8 without NUL bytes (and
        ``binary`` is False), base64 otherwise."""
        real, data = self.read_bytes(path)
        if not binary and b"\x00" not in data:
            try:
                return FileContent(str(real), data.decode("utf-8"), "utf-8", len(data))
            except UnicodeDecodeError:
                pass
        return FileContent(str(real), base64.b64encode(data).decode("ascii"), "base64", len(data))

    def exists(self, path: str) -> EntryType | None:
        """The type of what ``path`` names, or None if nothing is there."""
        real = self.resolve(path)
        parts = self._parts(real)
        try:
            if not parts:
                return "directory"
            dfd = self._open_dir(parts[:-1])
            try:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise FileAccessError(f"{path}: {exc.strerror or exc}") from None
        return _entry_type(st.st_mode)

    def list_dir(self, path: str = ".") -> Listing:
        real = self.resolve(path)
        entries: list[DirEntry] = []
        truncated = False
        with _os_errors(path):
            fd = self._open_dir(self._parts(real))
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if len(entries) >= MAX_LIST_ENTRIES:
                            truncated = True
                            break
                        st = entry.stat(follow_symlinks=False)
                        entries.append(DirEntry(entry.name, _entry_type(st.st_mode),
                                                st.st_size))
            finally:
                os.close(fd)
        entries.sort(key=lambda e: e.name)
        return Listing(str(real), tuple(entries), truncated)

    # ------------------------------------------------------------------ writing

    def write(self, path: str, content: str | bytes, *, append: bool = False) -> tuple[Path, int]:
        """Write (or append) ``content``, making missing parent directories.
        Returns the real path and the number of bytes written."""
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if len(data) > MAX_FILE_BYTES:
            raise FileAccessError(
                f"{path}: {len(data)} bytes; the limit is {MAX_FILE_BYTES} bytes"
            )
        real = self.resolve(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        flags |= os.O_APPEND if append else os.O_TRUNC
        with _os_errors(path):
            dfd, name = self._parent(real, path, create=True)
            try:
                fd = os.open(name, flags, 0o644, dir_fd=dfd)
            finally:
                os.close(dfd)
            with os.fdopen(fd, "wb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise FileAccessError(f"{path}: not a regular file")
                self._give(f.fileno())
                if append and st.st_size + len(data) > MAX_FILE_BYTES:
                    raise FileAccessError(
                        f"{path}: appending would exceed the limit of {MAX_FILE_BYTES} bytes"
                    )
                f.write(data)
        return real, len(data)

    def append(self, path: str, content: str | bytes) -> tuple[Path, int]:
        return self.write(path, content, append=True)

    def edit(self, path: str, old_text: str, new_text: str) -> Path:
        """Replace ``old_text`` by ``new_text``; ``old_text`` must occur
        exactly once."""
        if not old_text:
            raise FileAccessError("old_text must not be empty")
        current = self.read(path)
        if current.encoding != "utf-8":
            raise FileAccessError(f"{path}: not a UTF-8 text file")
        count = current.content.count(old_text)
        if count == 0:
            raise FileAccessError(f"{path}: old_text not found")
        if count > 1:
            raise FileAccessError(
                f"{path}: old_text occurs {count} times; it must occur exactly once "
                "(include more surrounding text)"
            )
        real, _ = self.write(path, current.content.replace(old_text, new_text, 1))
        return real

    def delete(self, path: str) -> Path:
        """Delete a file or a symlink (not what it points to)."""
        real = self.resolve(path, follow_final=False)
        with _os_errors(path):
            dfd, name = self._parent(real, path)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    raise FileAccessError(f"{path}: is a directory; use delete-directory")
                os.unlink(name, dir_fd=dfd)
            finally:
                os.close(dfd)
        return real

    def delete_dir(self, path: str, *, recursive: bool = True) -> Path:
        """Delete a directory (with its content when ``recursive``). The
        workspace itself cannot be deleted."""
        real = self.resolve(path, follow_final=False)
        if real == self.root:
            raise FileAccessError(f"{path}: is the workspace itself")
        with _os_errors(path):
            dfd, name = self._parent(real, path)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise FileAccessError(f"{path}: not a directory; use delete")
                if recursive:
                    shutil.rmtree(name, dir_fd=dfd)
                else:
                    os.rmdir(name, dir_fd=dfd)
            finally:
                os.close(dfd)
        return real


def _entry_type(mode: int) -> EntryType:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"
