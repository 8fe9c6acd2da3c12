"""S3BlobStore: vault blobs as objects in an S3 bucket (AWS, MinIO, Ceph RGW, ...).

An upload buffers ``PART`` bytes at a time: small blobs become one ``PutObject``, larger
ones a multipart upload whose parts are sent as they fill, so memory stays at one part.
Nothing exists under the key until the upload completes (S3 publishes atomically), and
an unfinished multipart upload is the "temp debris" fsck lists and aborts. Reads are
ranged ``GetObject`` calls, or, when enabled, a presigned GET URL so downloads bypass the
server entirely.
"""
from __future__ import annotations

import time
from typing import Iterator
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ...protocol.http_headers import content_disposition

PART = 8 * 1024 * 1024        # S3 parts must be >= 5 MiB except the last
PRESIGN_SECONDS = 3600
PROBE = Config(connect_timeout=3, read_timeout=3, retries={"max_attempts": 1})


class S3Sink:
    """Bytes of one new object; same interface as ``streams.TempFile``."""

    def __init__(self, store: "S3BlobStore", key: str) -> None:
        self.store, self.key = store, key
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: list[dict] = []

    def write(self, chunk: bytes) -> None:
        self._buffer.append(bytes(chunk))  # a copy when the caller reuses its buffer
        self._buffered += len(chunk)
        if self._buffered >= PART:
            self._send_part()

    def _send_part(self) -> None:
        s3, bucket, name = self.store.s3, self.store.bucket, self.store.name(self.key)
        if self._upload_id is None:
            self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
        number = len(self._parts) + 1
        answer = s3.upload_part(Bucket=bucket, Key=name, UploadId=self._upload_id,
                                PartNumber=number, Body=b"".join(self._buffer))
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._buffer, self._buffered = [], 0

    def sync(self) -> None:
        """Nothing to do: S3 acknowledges a part only once it is stored."""

    def publish(self) -> None:
        s3, bucket, name = self.store.s3, self.store.bucket, self.store.name(self.key)
        if self._upload_id is None:
            s3.put_object(Bucket=bucket, Key=name, Body=b"".join(self._buffer))
        else:
            if self._buffered:
                self._send_part()
            s3.complete_multipart_upload(Bucket=bucket, Key=name, UploadId=self._upload_id,
                                         MultipartUpload={"Parts": self._parts})
        self._buffer, self._upload_id = [], None

    def discard(self) -> None:
        self._buffer = []
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self.store.s3.abort_multipart_upload(Bucket=self.store.bucket,
                                                 Key=self.store.name(self.key), UploadId=upload_id)


class S3ReadHandle:
    def __init__(self, store: "S3BlobStore", key: str, size: int, md5: str | None,
                 mtime: float, direct_url: str | None) -> None:
        self.store, self.key = store, key
        self.size, self.md5, self.mtime, self.direct_url = size, md5, mtime, direct_url

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset >= self.size:
            return b""
        last = min(offset + length, self.size) - 1
        answer = self.store.s3.get_object(Bucket=self.store.bucket, Key=self.store.name(self.key),
                                          Range=f"bytes={offset}-{last}")
        return answer["Body"].read()

    def close(self) -> None:
        pass


class S3BlobStore:
    def __init__(self, url: str, endpoint_url: str = "", access_key: str = "",
                 secret_key: str = "", region: str = "", redirect_downloads: bool = True) -> None:
        parts = urlsplit(url)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.redirect_downloads = redirect_downloads
        options = dict(endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
                       aws_secret_access_key=secret_key or None,
                       region_name=region or "us-east-1")
        self.s3 = boto3.client("s3", **options, config=Config(max_pool_connections=64,
                                                               retries={"max_attempts": 5}))
        # Health probes fail fast instead of riding out the data path's retries.
        self.probe = boto3.client("s3", **options, config=PROBE)
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.s3.create_bucket(Bucket=self.bucket)

    def name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def writer(self, key: str) -> S3Sink:
        return S3Sink(self, key)

    def open(self, key: str, md5: str | None, mtime: float, filename: str = "") -> S3ReadHandle:
        try:
            size = self.s3.head_object(Bucket=self.bucket, Key=self.name(key))["ContentLength"]
        except ClientError as exc:
            raise FileNotFoundError(key) from exc
        url = None
        if self.redirect_downloads:
            params = {"Bucket": self.bucket, "Key": self.name(key)}
            if filename:  # the CADC client names downloads into a directory after it
                params["ResponseContentDisposition"] = content_disposition(filename)
            url = self.s3.generate_presigned_url("get_object", Params=params,
                                                 ExpiresIn=PRESIGN_SECONDS)
        return S3ReadHandle(self, key, size, md5, mtime, url)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.name(key))

    def copy(self, src: str, dest: str) -> None:
        self.s3.copy({"Bucket": self.bucket, "Key": self.name(src)}, self.bucket, self.name(dest))

    def keys(self, min_age: float = 0) -> Iterator[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        newest = time.time() - min_age
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["LastModified"].timestamp() <= newest:
                    yield obj["Key"][len(prefix):]

    def debris(self, min_age: float = 0) -> list[str]:
        """Unfinished multipart uploads, as ``key/upload-id``."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        newest = time.time() - min_age
        answer = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return sorted(f"{u['Key'][len(prefix):]}/{u['UploadId']}"
                      for u in answer.get("Uploads", []) if u["Initiated"].timestamp() <= newest)

    def remove_debris(self, name: str) -> None:
        key, _, upload_id = name.partition("/")
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.name(key), UploadId=upload_id)

    def check(self) -> None:
        try:
            self.probe.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"s3://{self.bucket}: {exc}") from exc
