"""The files sub-API's operations (``POST /files/{op}``) on a machine's
workspace, as :class:`ActionResult` values."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from deckhand.core.actions import ActionResult
from deckhand.errors import ErrorCode
from deckhand.machine_agent.errors import AgentError
from deckhand.machine_agent.files import WorkspaceFiles

FILE_OPS = (
    "read", "exists", "list", "list-directory", "download", "list-downloads",
    "write", "edit", "append", "delete", "delete-directory",
)


class BadParameters(AgentError):
    """Parameters a file operation cannot use (missing, of the wrong type)."""

    code = ErrorCode.VALIDATION_ERROR


def file_op(f: WorkspaceFiles, op: str, p: dict[str, Any]) -> ActionResult:
    """Carry out the file operation ``op`` with parameters ``p``."""
    if op in ("read", "download"):
        c = f.read(_param(p, "path"), binary=op == "download")
        return ActionResult(ok=True, output=c.content,
                            data={"path": c.path, "encoding": c.encoding, "size": c.size})
    if op == "exists":
        kind = f.exists(_param(p, "path"))
        return ActionResult(ok=True, output="true" if kind else "false",
                            data={"exists": kind is not None, "type": kind})
    if op in ("list", "list-directory", "list-downloads"):
        path = "Downloads" if op == "list-downloads" else str(p.get("path") or ".")
        if op == "list-downloads" and f.exists(path) is None:
            return ActionResult(ok=True, data={"path": path, "entries": []})
        listing = f.list_dir(path)
        entries = [{"name": e.name, "type": e.type, "size": e.size} for e in listing.entries]
        text = "\n".join(e.name + ("/" if e.type == "directory" else "")
                         for e in listing.entries)
        return ActionResult(ok=True, output=text, data={
            "path": listing.path, "entries": entries, "truncated": listing.truncated})
    if op in ("write", "append"):
        content = _param(p, "content")
        payload: str | bytes = content
        if p.get("encoding") == "base64":
            try:
                payload = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise BadParameters("content is not valid base64") from None
        real, size = f.write(_param(p, "path"), payload, append=op == "append")
        return ActionResult(ok=True, data={"path": str(real), "bytes": size})
    if op == "edit":
        old = p.get("old_text", p.get("old_str"))
        new = p.get("new_text", p.get("new_str"))
        if not isinstance(old, str) or not isinstance(new, str):
            raise BadParameters("edit needs parameters old_text and new_text (strings)")
        real = f.edit(_param(p, "path"), old, new)
        return ActionResult(ok=True, data={"path": str(real), "replacements": 1})
    if op == "delete":
        real = f.delete(_param(p, "path"))
        return ActionResult(ok=True, data={"path": str(real)})
    if op == "delete-directory":
        real = f.delete_dir(_param(p, "path"), recursive=bool(p.get("recursive", True)))
        return ActionResult(ok=True, data={"path": str(real)})
    raise BadParameters(f"unknown file operation {op!r}; one of: {', '.join(FILE_OPS)}")


def _param(p: dict[str, Any], name: str) -> str:
    value = p.get(name)
    if not isinstance(value, str):
        raise BadParameters(f"parameter {name!r} (a string) is required")
    return value
