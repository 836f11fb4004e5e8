"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, R2, moto):
``<prefix>/<sha256>`` objects.

boto3 (the SDK every S3-compatible server documents), called in worker
threads: its client is thread-safe, and aiobotocore pins botocore to a narrow
range that fights boto3/moto's. Credentials come from boto3's usual chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, instance
roles); nothing here logs them. A PUT is acknowledged only once the server has
stored the object, which is what "bytes written first" needs."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from deckhand.artifacts.base import Blob
from deckhand.artifacts.fs import check_key
from deckhand.errors import ArtifactError

_DELETE_BATCH = 1000  # the S3 API's limit per DeleteObjects


class S3ArtifactStore:
    name = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=region or "us-east-1",
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5, read_timeout=30, max_pool_connections=16,
                # path-style works on every S3 API (MinIO, Ceph, moto); AWS accepts it too
                s3={"addressing_style": "path"},
                # newer boto3 adds CRC checksums many S3-compatible servers reject
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ))

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, what: str, op: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, op), Bucket=self.bucket,
                                           **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ArtifactError(f"S3 {what} in bucket {self.bucket}: {code}") from exc
        except BotoCoreError as exc:
            raise ArtifactError(f"S3 {what} in bucket {self.bucket}: "
                                f"{type(exc).__name__}") from exc

    async def put(self, key: str, data: bytes) -> None:
        await self._call("put", "put_object", Key=self._key(key), Body=data)

    async def get(self, key: str) -> bytes | None:
        answer = await self._call("get", "get_object", Key=self._key(key))
        if answer is None:
            return None
        body = answer["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
            return data
        finally:
            body.close()

    async def delete(self, keys: list[str]) -> None:
        names = [self._key(k) for k in keys]
        for i in range(0, len(names), _DELETE_BATCH):
            batch = names[i:i + _DELETE_BATCH]
            await self._call("delete", "delete_objects",
                             Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})

    async def scan(self) -> list[Blob]:
        out: list[Blob] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call("list", "list_objects_v2", Prefix=self.prefix, **extra)
            for obj in (page or {}).get("Contents", []):
                name = obj["Key"][len(self.prefix):]
                if len(name) == 64:
                    out.append(Blob(name, int(obj["Size"]), obj["LastModified"]))
            if not page or not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
