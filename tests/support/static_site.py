"""Static HTML pages on a loopback port, for the browser and desktop machines
(tests and bench scripts: standard library only)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def static_site(pages: Mapping[str, str], port: int = 0) -> Iterator[str]:
    """Serve ``pages`` (file name → HTML) until the block ends; yields the
    base URL (``{base}/{name}``). A machine reaches the site only at a port
    its server allows (``DECKHAND_MACHINE_HOST_ALLOW``): pass that ``port``."""
    with tempfile.TemporaryDirectory() as d:
        for name, html in pages.items():
            (Path(d) / name).write_text(html)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                              functools.partial(_Quiet, directory=d))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{srv.server_address[1]}"
        finally:
            srv.shutdown()
            srv.server_close()
