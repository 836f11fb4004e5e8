"""A run's recording (Deckhand, additive): its steps with their screens, each
screen, the screens as one playable file, and the trajectory zip
(docs/recordings.md). Same key, scope (``runs:read``) and 404 across
accounts and modes as ``GET /v1/runs/{id}``."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from deckhand.api.deps import principal, services
from deckhand.api.routing import endpoint, router
from deckhand.artifacts import render
from deckhand.auth import Principal
from deckhand.errors import NotFound
from deckhand.ids import is_uuid
from deckhand.services import Services
from deckhand.store import artifacts as artifacts_store
from deckhand.store import runs as runs_store
from deckhand.store import steps as steps_store
from deckhand.store.records import Run, RunArtifact
from deckhand.views import download_view, run_view, step_view

r = router(tags=["runs"])

Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(principal)]
RunIdParam = Annotated[str, Path(description="Run UUID.")]
StepParam = Annotated[int, Path(ge=1, le=1_000_000, description="Step number (from 1).")]
CHUNK = 256 * 1024
SPOOL_BYTES = 16 * 1024 * 1024  # a trajectory zip above this goes to a temporary file


class StepTokens(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = Field(
        0, description="Input tokens written to the provider's prompt cache.")
    cache_read_input_tokens: int = Field(
        0, description="Input tokens read from the provider's prompt cache.")


class DownloadView(BaseModel):
    step: int = Field(description="The step during which the download finished.")
    index: int = Field(description="Its number among the step's downloads (from 1).")
    name: str = Field(description="The file name the browser saved it under.")
    size: int
    content_type: str
    source_url: str | None = Field(description="The URL it was downloaded from.")
    created_at: str
    url: str = Field(description="Where its bytes are (relative path).")


class DownloadList(BaseModel):
    data: list[DownloadView]
    has_more: bool


class StepView(BaseModel):
    number: int
    started_at: str
    finished_at: str
    text: str | None
    reasoning: str | None
    actions: list[dict[str, Any]] = Field(description="The decision's actions, as recorded.")
    results: list[dict[str, Any]] = Field(description="Each action's result, in order.")
    tokens: StepTokens
    credits: int
    screenshot_url: str | None = Field(
        description="The screen the brain saw (relative path); null when none was kept.")
    screenshot_after_url: str | None = Field(
        description="The settled screen after the step's last action; null when none.")
    downloads: list[DownloadView] = Field(
        default_factory=list, description="Files the browser downloaded during the step.")


class StepList(BaseModel):
    data: list[StepView]
    has_more: bool


_NOT_FOUND = {404: {"description": "The ApiError envelope (NOT_FOUND): no such run for this "
                         "key's account and mode, or no such screen (never kept, or past "
                         "its retention)."}}
_IMAGE = {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                      for t in ("image/jpeg", "image/png")},
          "description": "The screen, as the machine sent it."}


async def _run(svc: Services, caller: Principal, run_id: str) -> Run:
    if not is_uuid(run_id):
        raise NotFound(f"Run {run_id} not found.")
    async with svc.db.read() as conn:
        return await runs_store.get_owned(conn, run_id, caller.account_id, caller.mode)


def _by_step(rows: list[RunArtifact]) -> dict[int, dict[str, RunArtifact]]:
    out: dict[int, dict[str, RunArtifact]] = {}
    for a in rows:
        out.setdefault(a.step, {})[a.kind] = a
    return out


@endpoint(r, "GET", "/v1/runs/{run_id}/steps", operation_id="listRunSteps",
          scopes=("runs:read",), response_model=StepList, responses=_NOT_FOUND)
async def list_run_steps(
    run_id: RunIdParam, svc: Svc, caller: Caller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[int, Query(ge=0, description="List the steps numbered above this.")] = 0,
) -> dict[str, Any]:
    """The run's recorded steps, in order, each with the URLs of its screens."""
    await _run(svc, caller, run_id)
    async with svc.db.read() as conn:
        steps, more = await steps_store.page(conn, run_id, after=after, limit=limit)
        shots = _by_step(await artifacts_store.for_run(
            conn, run_id, first=after + 1, last=steps[-1].number if steps else after))
    return {"data": [step_view(s, shots.get(s.number, {})) for s in steps], "has_more": more}


@endpoint(r, "GET", "/v1/runs/{run_id}/steps/{number}/screenshot",
          operation_id="getRunStepScreenshot", scopes=("runs:read",),
          response_class=Response, responses={200: _IMAGE, **_NOT_FOUND})
async def get_step_screenshot(
    run_id: RunIdParam, number: StepParam, svc: Svc, caller: Caller,
    after: Annotated[bool, Query(description="The settled screen after the step's last "
                                             "action instead of the one the brain saw.")] = False,
) -> Response:
    await _run(svc, caller, run_id)
    kind = artifacts_store.AFTER if after else artifacts_store.SCREEN
    async with svc.db.read() as conn:
        row = await artifacts_store.get(conn, run_id, number, kind)
    data = await svc.artifacts.get(row.sha256) if row is not None else None
    if row is None or data is None:
        which = "settled screen after" if after else "screen"
        raise NotFound(f"Step {number} of run {run_id} has no recorded {which} (none was "
                       "kept, or it is past its retention).")
    return Response(data, media_type=row.content_type, headers={
        "Cache-Control": "private, max-age=86400, immutable", "ETag": f'"{row.sha256}"'})


@endpoint(r, "GET", "/v1/runs/{run_id}/downloads", operation_id="listRunDownloads",
          scopes=("runs:read",), response_model=DownloadList, responses=_NOT_FOUND)
async def list_run_downloads(run_id: RunIdParam, svc: Svc, caller: Caller) -> dict[str, Any]:
    """The files the machine's browser downloaded during the run, by step."""
    await _run(svc, caller, run_id)
    async with svc.db.read() as conn:
        rows = await artifacts_store.downloads(conn, run_id)
    return {"data": [download_view(a) for a in rows], "has_more": False}


@endpoint(r, "GET", "/v1/runs/{run_id}/steps/{number}/downloads/{index}",
          operation_id="getRunDownload", scopes=("runs:read",), response_class=Response,
          responses={200: {"content": {"application/octet-stream": {
              "schema": {"type": "string", "format": "binary"}}},
              "description": "The file, always as an attachment."}, **_NOT_FOUND})
async def get_run_download(
    run_id: RunIdParam, number: StepParam, svc: Svc, caller: Caller,
    index: Annotated[int, Path(ge=1, le=10_000, description="The download's number in "
                                                            "its step (from 1).")],
) -> Response:
    await _run(svc, caller, run_id)
    async with svc.db.read() as conn:
        row = await artifacts_store.get(conn, run_id, number, artifacts_store.download_kind(index))
    data = await svc.artifacts.get(row.sha256) if row is not None else None
    if row is None or data is None:
        raise NotFound(f"Step {number} of run {run_id} has no download {index} (none was "
                       "kept, or it is past its retention).")
    # what a page made the browser download is untrusted: never rendered on
    # the dashboard's origin (attachment, no sniffing, a sandbox if opened)
    return Response(data, media_type=row.content_type, headers={
        "Content-Disposition": _attachment(row.name or "download"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=86400, immutable", "ETag": f'"{row.sha256}"'})


def _attachment(name: str) -> str:
    """A Content-Disposition naming the file: an ASCII fallback and the
    UTF-8 name (RFC 6266 / 5987)."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{quote(name, safe="")}'


@endpoint(r, "GET", "/v1/runs/{run_id}/recording", operation_id="getRunRecording",
          scopes=("runs:read",), response_class=Response, responses={200: {
              "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The run's screens as an animated WebP, one step a second."},
              **_NOT_FOUND})
async def get_run_recording(run_id: RunIdParam, svc: Svc, caller: Caller) -> Response:
    await _run(svc, caller, run_id)
    async with svc.db.read() as conn:
        rows = await artifacts_store.for_run(conn, run_id)
    frames = _frame_rows(rows)
    data: list[render.Frame] = []
    for index, count in render.picks(len(frames)):
        blob = await svc.artifacts.get(frames[index].sha256)
        if blob is not None:
            data.append(render.Frame(blob, count * render.FRAME_MS))
    if not data:
        raise NotFound(f"Run {run_id} has no recorded screens (none was kept, or they are "
                       "past their retention).")
    webp = await asyncio.to_thread(render.recording_webp, data)
    return Response(webp, media_type="image/webp", headers={
        "Content-Disposition": f'inline; filename="run-{run_id}.webp"'})


def _frame_rows(rows: list[RunArtifact]) -> list[RunArtifact]:
    """Each step's screen as the brain saw it, then the last step's settled screen."""
    frames = [a for a in rows if a.kind == artifacts_store.SCREEN]
    afters = [a for a in rows if a.kind == artifacts_store.AFTER]
    if afters and (not frames or afters[-1].step >= frames[-1].step):
        frames.append(afters[-1])
    return frames


@endpoint(r, "GET", "/v1/runs/{run_id}/trajectory", operation_id="getRunTrajectory",
          scopes=("runs:read",), response_class=StreamingResponse, responses={200: {
              "content": {"application/zip": {"schema": {"type": "string",
                                                         "format": "binary"}}},
              "description": "run.json, steps/NNNN.json, screens/NNNN[-after].<ext> "
                             "and downloads/NNNN/<name> (docs/recordings.md)."}, **_NOT_FOUND})
async def get_run_trajectory(run_id: RunIdParam, svc: Svc, caller: Caller) -> Response:
    run = await _run(svc, caller, run_id)
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        zipped = render.Trajectory(out, run_view(run))
        after = 0
        while True:
            async with svc.db.read() as conn:
                steps, more = await steps_store.page(conn, run_id, after=after, limit=100)
                shots = _by_step(await artifacts_store.for_run(
                    conn, run_id, first=after + 1, last=steps[-1].number if steps else after))
            for s in steps:
                screens: dict[str, tuple[str, bytes]] = {}
                files: list[tuple[str, bytes]] = []
                for kind, a in shots.get(s.number, {}).items():
                    blob = await svc.artifacts.get(a.sha256)
                    if blob is None:
                        continue
                    if a.name is not None:
                        files.append((a.name, blob))
                    else:
                        screens[kind] = (a.content_type, blob)
                await asyncio.to_thread(zipped.add_step, step_view(s, shots.get(s.number, {})),
                                        screens, files)
            if not more or not steps:
                break
            after = steps[-1].number
        await asyncio.to_thread(zipped.close)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return StreamingResponse(_chunks(out), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="run-{run_id}-trajectory.zip"'})


def _chunks(f: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := f.read(CHUNK):
            yield chunk
    finally:
        f.close()
