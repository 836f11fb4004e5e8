"""Pages the machine tests open, served on loopback by a thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.static_site import static_site

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

# Each click starts a 300 ms background animation in 6 steps from red; the first
# click's ends on (and stays) blue, the second's on green, the third's on blue…
# so a screenshot taken before the click, or before the animation's end, is
# never the colour expected after it.
ANIMATED = """<!doctype html><html><head><style>
html, body {margin: 0; height: 100%; background: #ffffff}
body.to-blue {animation: to-blue 300ms steps(6, end) forwards}
body.to-green {animation: to-green 300ms steps(6, end) forwards}
@keyframes to-blue {from {background: #ff0000} to {background: #0000ff}}
@keyframes to-green {from {background: #ff0000} to {background: #00ff00}}
</style></head><body onclick="this.dataset.n = (+(this.dataset.n || 0) + 1);
this.className = this.dataset.n % 2 ? 'to-blue' : 'to-green'"></body></html>"""
FINAL_COLOURS = ((0, 0, 255), (0, 255, 0))  # after click 1, 3, 5… and after click 2, 4…

# Never still: a square turning forever.
SPINNER = """<!doctype html><html><head><style>
div {width: 300px; height: 300px; margin: 150px auto; background: #208040;
     animation: turn 1s linear infinite}
@keyframes turn {to {transform: rotate(360deg)}}
</style></head><body><div></div></body></html>"""

# Nothing on it moves, whatever is clicked.
STILL = """<!doctype html><html><body style="font: 24px 'DejaVu Sans', sans-serif">
<h1>Still</h1><p>Nothing here moves.</p><input id="q"></body></html>"""

# A form whose label stands above its field (no `for`: clicking the label's
# text focuses nothing) and a field named only by its placeholder; the result
# text appears once both are filled and Submit is clicked.
FORM = """<!doctype html><html><head><title>Newsletter</title>
<style>body{font-family:'DejaVu Sans',sans-serif;font-size:20px;margin:60px}
input,button{font:inherit;padding:6px 8px} input{width:340px} .row{margin-bottom:28px}
input::placeholder{color:#a0a0a0}</style></head><body><h1>Newsletter</h1>
<div class="row"><label>Email address</label><div><input id="email" type="email"></div></div>
<div class="row"><input id="name" placeholder="Your name"></div>
<button onclick="const e = document.getElementById('email').value,
 n = document.getElementById('name').value; document.getElementById('out').textContent =
 e && n ? 'Thanks ' + n + ', we wrote to ' + e : 'Please fill in both fields'">Submit</button>
<p id="out" style="font-size:24px"></p></body></html>"""

PAGES = {"signin.html": SIGNIN, "form.html": FORM, "long.html": LONG, "animated.html": ANIMATED,
         "spinner.html": SPINNER, "still.html": STILL}


@contextlib.contextmanager
def serve_pages(server: object) -> Iterator[str]:
    """The test pages, at the port the machines of ``server`` (a live server,
    or its Settings) may reach: machines have a network of their own and
    reach only the host ports their server allows."""
    with static_site(PAGES, pages_port(server)) as base:
        yield base


def pages_port(server: object) -> int:
    """The loopback port a test server's settings allow its machines (see
    tests.conftest.make_settings)."""
    settings = getattr(getattr(server, "services", None), "settings", server)
    allow = settings.machine_host_allow  # type: ignore[attr-defined]
    return int(allow.split(",")[0].rpartition(":")[2])


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
