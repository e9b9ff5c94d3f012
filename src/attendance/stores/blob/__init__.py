"""Blob store for uploads, annotated photos and gallery versions: keys are '/'-separated paths."""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from attendance.domain.errors import NotFound

if TYPE_CHECKING:
    from attendance.config.settings import Settings

_SAFE_KEY = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def check_key(key: str) -> str:
    """A key is '/'-separated segments of [A-Za-z0-9._-], none of them '.' or '..'.

    fullmatch, not match with '$': '$' also matches before a trailing newline."""
    if not _SAFE_KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"unsafe blob key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix is '' (everything) or a safe key, with or without a trailing '/'."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


class BlobStore(Protocol):
    """Keys are written whole or not at all; ``get`` of a missing key raises NotFound; ``list``
    returns the sorted keys under a '/'-separated prefix; ``ping`` raises when unusable."""

    def put(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def list_older_than(self, prefix: str, cutoff: dt.datetime) -> list[str]:
        """Keys under ``prefix`` last written before ``cutoff`` (an aware datetime)."""
        ...

    def ping(self) -> None: ...


class LocalBlobStore:
    """Files under one root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no stored object {key!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self.root / check_prefix(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def list_older_than(self, prefix: str, cutoff: dt.datetime) -> list[str]:
        limit = cutoff.timestamp()
        return [key for key in self.list(prefix) if (self.root / key).stat().st_mtime < limit]

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob store {self.root} is not writable")


# GCS bucket names: 3-63 characters (222 with dots) of lowercase letters, digits, '-', '_' and
# '.', starting and ending with a letter or a digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


@dataclass(frozen=True)
class GsUrl:
    bucket: str
    prefix: str  # "" or "some/prefix" (no leading or trailing '/')


def parse_gs_url(url: str) -> GsUrl:
    """``gs://bucket`` or ``gs://bucket/prefix/path``; ValueError says what is wrong."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    rest = url[len("gs://") :]
    if "?" in rest or "#" in rest:
        raise ValueError("a gs:// blob_store_url takes no query or fragment")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket) or (len(bucket) > 63 and "." not in bucket):
        raise ValueError(
            f"invalid GCS bucket name {bucket!r} in blob_store_url: 3-63 lowercase letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise ValueError(
                f"invalid object prefix {prefix!r} in blob_store_url: '/'-separated parts of "
                "letters, digits, '.', '_' or '-'"
            ) from None
    return GsUrl(bucket, prefix)


def open_blob_store(url: str, settings: Settings | None = None) -> BlobStore:
    """The store a URL names; cloud clients take their timeouts and retries from ``settings``
    (defaults when None). Nothing here contacts a service: the first operation does."""
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://") :]))
    if url.startswith("gs://"):
        from attendance.stores.blob.gcs import GcsBlobStore

        return GcsBlobStore.from_url(url, settings)
    raise ValueError(f"unsupported blob store URL: {url}")
