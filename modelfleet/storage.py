"""Object storage: a small typed wrapper over the MinIO client, configured only from the env.

Workers, the operator and the CLI call `Storage.from_env()`; endpoint and credentials come from
`MODELFLEET_S3_ENDPOINT` (http://host:port or https://host:port), `MODELFLEET_S3_ACCESS_KEY`,
`MODELFLEET_S3_SECRET_KEY`, `MODELFLEET_S3_BUCKET` and optionally `MODELFLEET_S3_REGION`. They
never appear in requests, arguments, logs or reports: `S3Settings` hides the secret in its repr.

Every minio/urllib3 failure leaves this module as a `StorageError` (`raise ... from err`) that
names the operation, the bucket and the key, never the credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

ENV_ENDPOINT = "MODELFLEET_S3_ENDPOINT"
ENV_ACCESS_KEY = "MODELFLEET_S3_ACCESS_KEY"
ENV_SECRET_KEY = "MODELFLEET_S3_SECRET_KEY"
ENV_BUCKET = "MODELFLEET_S3_BUCKET"
ENV_REGION = "MODELFLEET_S3_REGION"

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


class StorageError(Exception):
    """An object-storage operation failed; `key` and `bucket` say which object."""

    def __init__(self, message: str, *, bucket: str | None = None, key: str | None = None):
        super().__init__(message)
        self.bucket = bucket
        self.key = key


class ObjectNotFound(StorageError):  # noqa: N818 (reads as the S3 condition)
    """The bucket or the object does not exist."""


class ObjectExists(Protocol):
    """The one storage call `is_artifact_complete` needs; `Storage` satisfies it."""

    def exists(self, key: str, *, bucket: str | None = None) -> bool: ...


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    bucket: str
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        values = os.environ if env is None else env
        missing = [
            name
            for name in (ENV_ENDPOINT, ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_BUCKET)
            if not values.get(name)
        ]
        if missing:
            raise StorageError(f"object storage is not configured: {', '.join(missing)} unset")
        endpoint = values[ENV_ENDPOINT]
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StorageError(f"{ENV_ENDPOINT} must look like http://host:port, got {endpoint!r}")
        return cls(
            endpoint=endpoint,
            access_key=values[ENV_ACCESS_KEY],
            secret_key=values[ENV_SECRET_KEY],
            bucket=values[ENV_BUCKET],
            region=values.get(ENV_REGION) or None,
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` → (`bucket`, `some/key`); the key may be empty."""
    match = _S3_URI.match(uri)
    if match is None:
        raise StorageError(f"not an s3:// URI: {uri!r}")
    return match.group("bucket"), match.group("key") or ""


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class Storage:
    """One bucket by default; every call may name another (sources can live elsewhere)."""

    def __init__(self, settings: S3Settings, *, timeout_s: float = 10.0, retries: int = 2):
        import urllib3
        from minio import Minio

        parts = urlsplit(settings.endpoint)
        http_client = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=max(timeout_s, 60.0)),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
        )
        self.settings = settings
        self.bucket = settings.bucket
        self._client = Minio(
            parts.netloc,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=parts.scheme == "https",
            region=settings.region,
            http_client=http_client,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Storage:
        return cls(S3Settings.from_env(env))

    def __repr__(self) -> str:
        return f"Storage(endpoint={self.settings.endpoint!r}, bucket={self.bucket!r})"

    def uri(self, key: str, *, bucket: str | None = None) -> str:
        return s3_uri(bucket or self.bucket, key)

    def ensure_bucket(self, bucket: str | None = None) -> None:
        name = bucket or self.bucket
        with self._translate("create bucket", name, None):
            if not self._client.bucket_exists(name):
                self._client.make_bucket(name)

    def put_file(
        self,
        key: str,
        path: Path,
        *,
        bucket: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        name = bucket or self.bucket
        with self._translate("upload", name, key):
            self._client.fput_object(name, key, str(path), content_type=content_type)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        bucket: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        import io

        name = bucket or self.bucket
        with self._translate("upload", name, key):
            self._client.put_object(
                name, key, io.BytesIO(data), len(data), content_type=content_type
            )

    def get_file(self, key: str, path: Path, *, bucket: str | None = None) -> Path:
        name = bucket or self.bucket
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._translate("download", name, key):
            self._client.fget_object(name, key, str(path))
        return path

    def get_bytes(self, key: str, *, bucket: str | None = None) -> bytes:
        name = bucket or self.bucket
        with self._translate("download", name, key):
            response = self._client.get_object(name, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def exists(self, key: str, *, bucket: str | None = None) -> bool:
        name = bucket or self.bucket
        try:
            with self._translate("stat", name, key):
                self._client.stat_object(name, key)
        except ObjectNotFound:
            return False
        return True

    def stat(self, key: str, *, bucket: str | None = None) -> tuple[int, str]:
        """(size, etag) of one object, without reading it; ObjectNotFound when absent."""
        name = bucket or self.bucket
        with self._translate("stat", name, key):
            found = self._client.stat_object(name, key)
            return int(found.size or 0), str(found.etag or "").strip('"')

    def sha256(self, key: str, *, bucket: str | None = None) -> tuple[int, str]:
        """(size, sha256 hex) of one object, streamed in 1 MiB chunks: memory stays flat
        however large the model is."""
        import hashlib

        name = bucket or self.bucket
        digest, size = hashlib.sha256(), 0
        with self._translate("download", name, key):
            response = self._client.get_object(name, key)
            try:
                for chunk in response.stream(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                response.close()
                response.release_conn()
        return size, digest.hexdigest()

    def list_keys(self, prefix: str, *, bucket: str | None = None) -> list[str]:
        name = bucket or self.bucket
        with self._translate("list", name, prefix):
            return [
                str(obj.object_name)
                for obj in self._client.list_objects(name, prefix=prefix, recursive=True)
                if not obj.is_dir
            ]

    def stat_prefix(self, prefix: str, *, bucket: str | None = None) -> dict[str, tuple[int, str]]:
        """{key: (size, etag)} under `prefix` (or the one object named `prefix`): a listing
        that fingerprints content without downloading it."""
        name = bucket or self.bucket
        with self._translate("list", name, prefix):
            return {
                str(obj.object_name): (int(obj.size or 0), str(obj.etag or "").strip('"'))
                for obj in self._client.list_objects(name, prefix=prefix, recursive=True)
                if not obj.is_dir
            }

    def remove(self, key: str, *, bucket: str | None = None) -> None:
        name = bucket or self.bucket
        with self._translate("delete", name, key):
            self._client.remove_object(name, key)

    def presigned_get_url(
        self, key: str, *, expires: timedelta = timedelta(hours=1), bucket: str | None = None
    ) -> str:
        name = bucket or self.bucket
        with self._translate("presign", name, key):
            return str(self._client.presigned_get_object(name, key, expires=expires))

    def _translate(self, operation: str, bucket: str, key: str | None) -> _Translate:
        return _Translate(operation, bucket, key, self.settings.endpoint)


class _Translate:
    """Turns minio/urllib3 failures into StorageError naming operation, bucket and key."""

    def __init__(self, operation: str, bucket: str, key: str | None, endpoint: str):
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.endpoint = endpoint

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, StorageError):
            return
        from minio.error import MinioException, S3Error
        from urllib3.exceptions import HTTPError

        where = s3_uri(self.bucket, self.key or "")
        if isinstance(exc, S3Error):
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"):
                raise ObjectNotFound(
                    f"{self.operation} {where}: not found ({exc.code})",
                    bucket=self.bucket,
                    key=self.key,
                ) from exc
            raise StorageError(
                f"{self.operation} {where}: {exc.code}: {exc.message}",
                bucket=self.bucket,
                key=self.key,
            ) from exc
        if isinstance(exc, HTTPError | MinioException | OSError | ValueError):
            raise StorageError(
                f"{self.operation} {where}: storage at {self.endpoint} failed: "
                f"{type(exc).__name__}: {_first_line(exc)}",
                bucket=self.bucket,
                key=self.key,
            ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def iter_prefix_files(
    storage: Storage, prefix: str, *, bucket: str | None = None
) -> Iterator[tuple[str, str]]:
    """(key, name relative to prefix) for every object under `prefix`."""
    base = prefix if prefix.endswith("/") or not prefix else prefix + "/"
    for key in storage.list_keys(base, bucket=bucket):
        yield key, key[len(base) :]
