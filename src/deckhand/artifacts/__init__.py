"""The artifact store: content-addressed bytes (a step's screens, a run's
files) kept on the local filesystem under the data dir or in an S3-compatible
bucket, behind one interface. The rows that point at the bytes live in the
database (``store/artifacts.py``); this package only keeps bytes.

``DECKHAND_ARTIFACTS_URL`` chooses the store (docs/recordings.md):

- unset, or ``file:///path``: files under ``<data dir>/artifacts`` (or the path);
- ``s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1``: any
  S3 API (AWS, MinIO, Ceph, R2); credentials from the standard AWS variables.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from deckhand.artifacts.base import ArtifactStore, Blob
from deckhand.artifacts.fs import FsArtifactStore
from deckhand.errors import ValidationFailed

__all__ = ["ArtifactStore", "Blob", "FsArtifactStore", "digest", "open_store"]


def digest(data: bytes) -> str:
    """The key of ``data`` in every store: its sha256, in hex."""
    return hashlib.sha256(data).hexdigest()


def open_store(url: str | None, data_dir: Path) -> ArtifactStore:
    """The store ``url`` names (None: files under ``data_dir/artifacts``)."""
    if not url:
        return FsArtifactStore(data_dir / "artifacts")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FsArtifactStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValidationFailed("DECKHAND_ARTIFACTS_URL: s3:// needs a bucket "
                                   "(s3://bucket/prefix)")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        try:
            from deckhand.artifacts.s3 import S3ArtifactStore
        except ImportError as exc:
            raise ValidationFailed("DECKHAND_ARTIFACTS_URL: s3:// needs boto3 "
                                   "(pip install 'deckhand[s3]')") from exc

        return S3ArtifactStore(parsed.netloc, parsed.path.strip("/"),
                               endpoint=query.get("endpoint"), region=query.get("region"))
    raise ValidationFailed(f"DECKHAND_ARTIFACTS_URL: unknown scheme {parsed.scheme!r} "
                           "(file:// or s3://)")
