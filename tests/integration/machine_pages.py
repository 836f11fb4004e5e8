"""Pages the machine tests open, served on loopback by a thread."""

from __future__ import annotations

import contextlib
import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SIGNIN = """<!doctype html><html><head><title>Acme portal</title>
<style>body{font-family:'DejaVu Sans',sans-serif;font-size:22px;margin:40px}
button,input{font-size:22px}</style></head><body><h1>Acme portal</h1>
<button id="signin" onclick="document.getElementById('form').style.display='block'">Sign in</button>
<div id="form" style="display:none;margin-top:24px"><label for="email">Email</label>
<input id="email" type="text" oninput="if (this.value.includes('@'))
 document.getElementById('w').textContent = 'Welcome ' + this.value"></div>
<p id="w" style="font-size:28px"></p></body></html>"""

LONG = ("<!doctype html><html><body style='font-size:20px'>"
        + "".join(f"<p>line {i}</p>" for i in range(300)) + "<p id='bottom'>bottom</p></body></html>")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_pages() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "signin.html").write_text(SIGNIN)
        (Path(d) / "long.html").write_text(LONG)
        handler = functools.partial(_Quiet, directory=d)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            yield f"http://127.0.0.1:{srv.server_address[1]}"
        finally:
            srv.shutdown()
            srv.server_close()


async def recorded_groundings(server: object, run_id: str) -> list[str]:
    """How each label of a run was found on the screen (from its recorded steps)."""
    from deckhand.store import steps as steps_store

    async with server.services.db.read() as conn:  # type: ignore[attr-defined]
        records = await steps_store.for_run(conn, run_id)
    found = []
    for record in records:
        for result in record.results:
            if "grounding" in (result.get("data") or {}):
                found.append(result["data"]["grounding"])
    return found


async def destroy_all(server: object) -> None:
    """Terminate every machine the server knows: machine agents outlive the
    server by design, so a test must not leave its machines behind."""
    from deckhand.store import machines as machines_store
    from deckhand.store.tables import machines as machines_table

    svc = server.services  # type: ignore[attr-defined]
    async with svc.db.read() as conn:
        rows = (await conn.execute(machines_table.select())).all()
    for row in rows:
        if row.status not in machines_store.GONE:
            with contextlib.suppress(Exception):
                await svc.machines.terminate(row)


@contextlib.asynccontextmanager
async def serving(settings):  # type: ignore[no-untyped-def]
    """The conftest's server, terminating the machines its test left."""
    from tests.conftest import serve

    async with serve(settings) as s:
        try:
            yield s
        finally:
            await destroy_all(s)


# The machine test modules import these: the conftest's fixtures of the same
# names, cleaning up after themselves.


@pytest.fixture
async def server(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    async with serving(make_settings(tmp_path, database_url)) as s:
        yield s


@pytest.fixture
async def sqlite_server(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    async with serving(make_settings(tmp_path, sqlite_url)) as s:
        yield s
