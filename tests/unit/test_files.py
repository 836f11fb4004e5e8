"""File operations confined to a workspace (real files, real symlinks)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from deckhand.machine_agent.files import MAX_FILE_BYTES, FileAccessError, WorkspaceFiles


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text("secret")
    return d


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    return d


@pytest.fixture
def files(ws: Path) -> WorkspaceFiles:
    return WorkspaceFiles(ws)


def test_write_then_read_text_making_parents(files: WorkspaceFiles, ws: Path):
    real, size = files.write("a/b/c.txt", "héllo\n")
    assert real == ws / "a/b/c.txt" and size == len("héllo\n".encode())
    content = files.read("a/b/c.txt")
    assert (content.content, content.encoding, content.size) == ("héllo\n", "utf-8", 7)
    assert content.path == str(ws / "a/b/c.txt")


def test_absolute_path_inside_the_workspace_is_accepted(files: WorkspaceFiles, ws: Path):
    files.write(str(ws / "abs.txt"), "x")
    assert files.read("abs.txt").content == "x"
    assert files.read("./sub/../abs.txt").content == "x"


def test_binary_files_are_read_as_base64(files: WorkspaceFiles, ws: Path):
    data = bytes(range(256))
    (ws / "bin").write_bytes(data)
    content = files.read("bin")
    assert content.encoding == "base64"
    assert base64.b64decode(content.content) == data
    (ws / "text").write_text("plain")
    forced = files.read("text", binary=True)
    assert forced.encoding == "base64" and base64.b64decode(forced.content) == b"plain"


def test_append_exists_and_list(files: WorkspaceFiles, ws: Path):
    files.write("log.txt", "one\n")
    files.append("log.txt", "two\n")
    assert (ws / "log.txt").read_text() == "one\ntwo\n"
    (ws / "dir").mkdir()
    os.symlink("log.txt", ws / "link")
    assert files.exists("log.txt") == "file"
    assert files.exists("dir") == "directory"
    assert files.exists("link") == "file"  # followed, and inside
    assert files.exists("nope") is None
    assert files.exists("nope/deeper") is None
    listing = files.list_dir(".")
    assert [(e.name, e.type) for e in listing.entries] == [
        ("dir", "directory"), ("link", "symlink"), ("log.txt", "file")]
    assert files.list_dir("").path == str(ws)


def test_edit_replaces_exactly_one_occurrence(files: WorkspaceFiles, ws: Path):
    files.write("f.py", "a = 1\nb = 2\nb = 2\n")
    files.edit("f.py", "a = 1", "a = 10")
    assert (ws / "f.py").read_text() == "a = 10\nb = 2\nb = 2\n"
    with pytest.raises(FileAccessError, match="occurs 2 times"):
        files.edit("f.py", "b = 2", "b = 3")
    with pytest.raises(FileAccessError, match="not found"):
        files.edit("f.py", "zzz", "y")
    with pytest.raises(FileAccessError, match="empty"):
        files.edit("f.py", "", "y")


def test_delete_and_delete_directory(files: WorkspaceFiles, ws: Path):
    files.write("d/e/f.txt", "x")
    with pytest.raises(FileAccessError, match="is a directory"):
        files.delete("d")
    with pytest.raises(FileAccessError, match="not a directory"):
        files.delete_dir("d/e/f.txt")
    files.delete("d/e/f.txt")
    assert not (ws / "d/e/f.txt").exists()
    files.write("d/e/g.txt", "x")
    with pytest.raises(FileAccessError, match="not empty"):
        files.delete_dir("d", recursive=False)
    files.delete_dir("d")
    assert not (ws / "d").exists()
    with pytest.raises(FileAccessError, match="workspace itself"):
        files.delete_dir(".")
    with pytest.raises(FileAccessError, match="no such file"):
        files.delete("missing")


def test_errors_are_clear(files: WorkspaceFiles, ws: Path):
    (ws / "dir").mkdir()
    with pytest.raises(FileAccessError, match="is a directory"):
        files.read("dir")
    with pytest.raises(FileAccessError, match="no such file"):
        files.read("missing.txt")
    with pytest.raises(FileAccessError, match="NUL"):
        files.read("a\x00b")


def test_fifo_is_refused_without_blocking(files: WorkspaceFiles, ws: Path):
    os.mkfifo(ws / "pipe")
    with pytest.raises(FileAccessError, match="not a regular file"):
        files.read("pipe")
    with pytest.raises(FileAccessError, match="not a regular file"):
        files.write("pipe", "x")


def test_size_cap_on_reads_and_writes(files: WorkspaceFiles, ws: Path):
    with open(ws / "big", "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs nothing
    with pytest.raises(FileAccessError, match="limit"):
        files.read("big")
    with pytest.raises(FileAccessError, match="limit"):
        files.write("too-big", b"\0" * (MAX_FILE_BYTES + 1))
    assert not (ws / "too-big").exists()


# --------------------------------------------------------------------------- confinement


@pytest.mark.parametrize("path", ["../outside/secret.txt", "a/../../outside/secret.txt",
                                  "/etc/passwd", "..", "/"])
def test_paths_leaving_the_workspace_are_refused(files: WorkspaceFiles, path: str):
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.read(path)
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.write(path if path not in ("..", "/") else path + "/x", "pwned")
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.exists(path)


def test_absolute_path_of_a_sibling_is_refused(files: WorkspaceFiles, outside: Path):
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.read(str(outside / "secret.txt"))
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.list_dir(str(outside))
    # a sibling whose name starts like the workspace's is still outside
    twin = Path(str(files.root) + "-twin")
    twin.mkdir()
    with pytest.raises(FileAccessError, match="outside the workspace"):
        files.write(str(twin / "x"), "pwned")


def test_symlink_escapes_are_refused(files: WorkspaceFiles, ws: Path, outside: Path):
    os.symlink(outside, ws / "dirlink")
    os.symlink(outside / "secret.txt", ws / "filelink")
    os.symlink(outside / "new.txt", ws / "dangling")
    for op in (lambda: files.read("dirlink/secret.txt"),
               lambda: files.read("filelink"),
               lambda: files.write("dirlink/new.txt", "pwned"),
               lambda: files.write("filelink", "pwned"),
               lambda: files.write("dangling", "pwned"),
               lambda: files.append("filelink", "pwned"),
               lambda: files.edit("filelink", "secret", "pwned"),
               lambda: files.list_dir("dirlink"),
               lambda: files.delete("dirlink/secret.txt"),
               lambda: files.delete_dir("dirlink/")):
        with pytest.raises(FileAccessError, match="outside the workspace"):
            op()
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (outside / "new.txt").exists()


def test_deleting_an_escaping_symlink_removes_only_the_link(files: WorkspaceFiles, ws: Path,
                                                            outside: Path):
    os.symlink(outside, ws / "dirlink")
    os.symlink(outside / "secret.txt", ws / "filelink")
    with pytest.raises(FileAccessError, match="not a directory"):
        files.delete_dir("dirlink")  # a link, not a directory: never recurse through it
    files.delete("filelink")
    files.delete("dirlink")
    assert not os.path.lexists(ws / "filelink") and not os.path.lexists(ws / "dirlink")
    assert (outside / "secret.txt").read_text() == "secret"


def test_symlinks_inside_the_workspace_work(files: WorkspaceFiles, ws: Path):
    files.write("real/file.txt", "inside")
    os.symlink("real", ws / "alias")
    os.symlink(ws / "real" / "file.txt", ws / "abs-alias")
    assert files.read("alias/file.txt").content == "inside"
    assert files.read("abs-alias").content == "inside"
    files.write("alias/other.txt", "via link")
    assert (ws / "real/other.txt").read_text() == "via link"


def test_workspace_given_through_a_symlink(tmp_path: Path, ws: Path):
    os.symlink(ws, tmp_path / "ws-link")
    files = WorkspaceFiles(tmp_path / "ws-link")
    files.write(str(tmp_path / "ws-link" / "a.txt"), "x")
    assert (ws / "a.txt").read_text() == "x"


def test_swapping_a_directory_for_a_symlink_is_caught(files: WorkspaceFiles, ws: Path,
                                                      outside: Path):
    # The walk from the workspace uses O_NOFOLLOW: a directory replaced by a
    # symlink after the path was resolved makes the operation fail.
    (ws / "d").mkdir()
    real = files.resolve("d/secret.txt")
    (ws / "d").rmdir()
    os.symlink(outside, ws / "d")
    fd_dir, name = None, None
    with pytest.raises(OSError):
        fd_dir, name = files._parent(real, "d/secret.txt")
    assert fd_dir is None and name is None
