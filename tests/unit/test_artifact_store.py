"""The artifact store's one interface, the same tests over the filesystem
store and the S3 store (moto's S3 server on loopback)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from deckhand.artifacts import ArtifactStore, FsArtifactStore, digest, open_store
from deckhand.artifacts.fs import STALE_TMP_SECONDS
from deckhand.artifacts.s3 import S3ArtifactStore
from deckhand.errors import ArtifactError, ValidationFailed
from tests.support.s3 import CREDENTIALS, s3_bucket, s3_endpoint

__all__ = ["s3_bucket", "s3_endpoint"]  # the fixtures (asyncio_mode is auto)


@pytest.fixture(params=["fs", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "fs":
        made = open_store(None, tmp_path)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        made = open_store(f"s3://{bucket}/runs/screens?endpoint={endpoint}", tmp_path)
    assert made.name == request.param
    yield made
    await made.close()


async def test_bytes_come_back_by_their_digest(store: ArtifactStore) -> None:
    data = b"\xff\xd8" + bytes(range(256)) * 400  # ~100 KB, a screen's size
    key = digest(data)
    assert await store.get(key) is None
    await store.put(key, data)
    assert await store.get(key) == data
    await store.put(key, data)  # the same bytes again: one object
    blobs = await store.scan()
    assert [(b.key, b.size) for b in blobs] == [(key, len(data))]


async def test_a_put_again_renews_when_it_was_written(store: ArtifactStore) -> None:
    await store.put(digest(b"a"), b"a")
    first = (await store.scan())[0].modified_at
    await asyncio.sleep(1.1)  # not a race: S3's LastModified counts whole seconds
    await store.put(digest(b"a"), b"a")
    assert (await store.scan())[0].modified_at > first


async def test_delete_forgets_the_keys_and_ignores_missing_ones(store: ArtifactStore) -> None:
    keys = []
    for i in range(5):
        data = f"blob-{i}".encode()
        keys.append(digest(data))
        await store.put(keys[-1], data)
    await store.delete(keys[:3] + [digest(b"never stored")])
    assert sorted(b.key for b in await store.scan()) == sorted(keys[3:])
    assert await store.get(keys[0]) is None and await store.get(keys[4]) == b"blob-4"
    await store.delete([])


async def test_keys_are_digests_only(store: ArtifactStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "ab", ""):
        with pytest.raises(ArtifactError):
            await store.put(bad, b"x")
        with pytest.raises(ArtifactError):
            await store.get(bad)


def test_the_url_chooses_the_store(tmp_path: Path) -> None:
    assert isinstance(open_store(None, tmp_path), FsArtifactStore)
    fs = open_store(f"file://{tmp_path}/elsewhere", tmp_path)
    assert isinstance(fs, FsArtifactStore) and fs.root == tmp_path / "elsewhere"
    s3 = open_store("s3://bucket/a/b?endpoint=http://127.0.0.1:9&region=eu-west-1", tmp_path)
    assert isinstance(s3, S3ArtifactStore) and (s3.bucket, s3.prefix) == ("bucket", "a/b/")
    for bad in ("s3:///prefix", "ftp://host/x", "bucket/prefix"):
        with pytest.raises(ValidationFailed):
            open_store(bad, tmp_path)


async def test_an_s3_failure_is_an_artifact_error_without_the_secret(
        s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3://no-such-bucket?endpoint={s3_endpoint}", tmp_path)
    with pytest.raises(ArtifactError) as failed:
        await store.put(digest(b"x"), b"x")
    assert "NoSuchBucket" in failed.value.message
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in failed.value.message + caplog.text
    await store.close()


async def test_a_crashed_write_leaves_no_blob(tmp_path: Path) -> None:
    """The filesystem store renames a finished temporary file into place: a
    write cut short leaves a temporary file the scan does not count."""
    store = FsArtifactStore(tmp_path)
    key = digest(b"whole")
    (tmp_path / key[:2]).mkdir()
    partial = tmp_path / key[:2] / f".{key}.123.tmp"
    partial.write_bytes(b"wh")
    assert await store.scan() == [] and await store.get(key) is None
    assert partial.exists()  # it may be a write in progress
    await store.put(key, b"whole")
    assert [b.key for b in await store.scan()] == [key]
    old = time.time() - 2 * STALE_TMP_SECONDS
    os.utime(partial, (old, old))
    await store.scan()
    assert not partial.exists()  # a crashed write's, an hour on: gone
