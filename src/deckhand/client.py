"""A small client of the Deckhand (Coasty v1) HTTP API, used by the CLI and
the MCP server. It speaks only the public contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code", "HTTP_ERROR")
        self.message = err.get("message", str(body))
        super().__init__(f"{self.code}: {self.message}")


class DeckhandClient:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"X-API-Key": api_key},
            timeout=httpx.Timeout(timeout, connect=5.0), transport=transport,
        )

    async def __aenter__(self) -> DeckhandClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        """Any operation of the API: the decoded body, or :class:`ApiError`."""
        return await self._call(method, path, **kw)

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.http.request(method, path, **kw)
        body = r.json() if r.content else None
        if r.status_code >= 400:
            raise ApiError(r.status_code, body)
        return body

    async def create_machine(self, display_name: str, **fields: Any) -> dict[str, Any]:
        body = await self._call("POST", "/v1/machines",
                                json={"display_name": display_name, **fields})
        return body["machine"]  # type: ignore[no-any-return]

    async def delete_machine(self, machine_id: str) -> None:
        await self._call("DELETE", f"/v1/machines/{machine_id}")

    async def create_run(self, **fields: Any) -> dict[str, Any]:
        return await self._call("POST", "/v1/runs", json=fields)  # type: ignore[no-any-return]

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/runs/{run_id}")  # type: ignore[no-any-return]

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/runs/{run_id}/cancel")  # type: ignore[no-any-return]

    async def run_steps(self, run_id: str, *, limit: int = 50, after: int = 0
                        ) -> dict[str, Any]:
        """One page of the run's recorded steps: ``{"data": [...], "has_more"}``."""
        return await self._call(  # type: ignore[no-any-return]
            "GET", f"/v1/runs/{run_id}/steps", params={"limit": limit, "after": after})

    async def all_run_steps(self, run_id: str) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        while True:
            page = await self.run_steps(run_id, limit=200, after=steps[-1]["number"]
                                        if steps else 0)
            steps += page["data"]
            if not page["has_more"] or not page["data"]:
                return steps

    async def step_screenshot(self, run_id: str, number: int, *, after: bool = False
                              ) -> tuple[str, bytes]:
        """The screen step ``number`` saw (``after``: the settled screen after
        it): (content type, bytes)."""
        return await self._bytes(f"/v1/runs/{run_id}/steps/{number}/screenshot",
                                 params={"after": "true"} if after else None)

    async def run_recording(self, run_id: str) -> tuple[str, bytes]:
        """The run's screens as one animated WebP: (content type, bytes)."""
        return await self._bytes(f"/v1/runs/{run_id}/recording")

    async def run_trajectory(self, run_id: str) -> bytes:
        """The zip of the run's steps and screens (docs/recordings.md)."""
        return (await self._bytes(f"/v1/runs/{run_id}/trajectory"))[1]

    async def run_downloads(self, run_id: str) -> list[dict[str, Any]]:
        """The files the run's browser downloaded (docs/recordings.md)."""
        return (await self.call("GET", f"/v1/runs/{run_id}/downloads"))["data"]  # type: ignore[no-any-return]

    async def run_download(self, download: dict[str, Any]) -> bytes:
        """The bytes of one of :meth:`run_downloads`."""
        return (await self._bytes(str(download["url"])))[1]

    async def _bytes(self, path: str, params: dict[str, str] | None = None
                     ) -> tuple[str, bytes]:
        r = await self.http.get(path, params=params)
        if r.status_code >= 400:
            raise ApiError(r.status_code, r.json() if r.content else None)
        return r.headers.get("content-type", "application/octet-stream"), r.content

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every event of the run after ``after``, through ``done``; reconnects
        with ``Last-Event-ID`` when the connection drops."""
        last = after
        while True:
            try:
                async for event in self._stream(run_id, last):
                    last = event["seq"]
                    yield event
                    if event["type"] == "done":
                        return
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout):
                continue

    async def _stream(self, run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        headers = {"Last-Event-ID": str(after), "Accept": "text/event-stream"}
        async with self.http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers,
                                    timeout=httpx.Timeout(60.0, connect=5.0)) as r:
            if r.status_code >= 400:
                await r.aread()
                raise ApiError(r.status_code, r.json())
            async for data in sse_data(r.aiter_lines()):
                yield json.loads(data)


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each Server-Sent Event (comments and other fields skipped)."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
