"""A package index on the loopback site (PEP 503 "simple"), so the terminal
tasks install packages with pip and no internet: ``dh-eval-hello`` 1.0 and
2.0, pure-Python wheels built in memory, each with a ``dh-hello`` command."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

from starlette.responses import HTMLResponse, PlainTextResponse, Response

PROJECT = "dh-eval-hello"
MODULE = "dh_eval_hello"
VERSIONS = ("1.0", "2.0")


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_wheel(version: str) -> tuple[str, bytes]:
    """(file name, bytes) of the wheel of ``version``."""
    dist = f"{MODULE}-{version}.dist-info"
    files = {
        f"{MODULE}/__init__.py": (f'VERSION = "{version}"\n\n\ndef main() -> None:\n'
                                  f'    print("hello from {PROJECT} {version}")\n').encode(),
        f"{dist}/METADATA": (f"Metadata-Version: 2.1\nName: {PROJECT}\nVersion: {version}\n"
                             "Summary: A package of Deckhand's eval suite\n").encode(),
        f"{dist}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: deckhand-eval\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        f"{dist}/entry_points.txt": f"[console_scripts]\ndh-hello = {MODULE}:main\n".encode(),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += f"{dist}/RECORD,,\n"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(f"{dist}/RECORD", record)
    return f"{MODULE}-{version}-py3-none-any.whl", out.getvalue()


class Index:
    def __init__(self) -> None:
        self.wheels = dict(build_wheel(v) for v in VERSIONS)

    def serve(self, path: str, base_url: str) -> Response:
        if path in ("simple", "simple/"):
            return HTMLResponse(f"<!doctype html><html><body><a href='{base_url}/simple/"
                                f"{PROJECT}/'>{PROJECT}</a></body></html>")
        if path.rstrip("/") == f"simple/{PROJECT}":
            links = "".join(
                f"<a href='{base_url}/packages/{name}#sha256="
                f"{hashlib.sha256(data).hexdigest()}'>{name}</a><br>"
                for name, data in self.wheels.items())
            return HTMLResponse(f"<!doctype html><html><body>{links}</body></html>")
        name = path[len("packages/"):] if path.startswith("packages/") else ""
        if name in self.wheels:
            return Response(self.wheels[name], media_type="application/octet-stream")
        return PlainTextResponse("not found", status_code=404)
