"""Blob store on the local file system: ``file://<dir>``."""

from __future__ import annotations

import builtins
import datetime as dt
import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attendance.domain.errors import NotFound, StorageFull
from attendance.stores.blob.base import check_key, check_prefix

# What a write into a full disk, or one over its user's quota, fails with.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
STORAGE_FULL_MESSAGE = (
    "storage full: the blob store (local files) has no space left on its disk; "
    "nothing was written. Free space on it and try again"
)
# readyz writes this much (and deletes it): a disk that cannot take it cannot take a photo.
PROBE_BYTES = 4096


@contextmanager
def _no_space_is_storage_full() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise StorageFull(STORAGE_FULL_MESSAGE) from exc
        raise


class LocalBlobStore:
    """Files under one root directory; writes are atomic (temp file + rename), so a key holds
    its old bytes or its new ones, never part of either, whatever the write met (a full disk
    included: StorageFull, and the temp file is gone)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        with _no_space_is_storage_full():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_new(path.parent, data, path)

    @staticmethod
    def _write_new(folder: Path, data: bytes, path: Path | None) -> None:
        """Write ``data`` to a temp file in ``folder``, synced; then rename it to ``path``, or
        with ``path`` None delete it again. The temp file never outlives a failure."""
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                # ENOSPC may surface only here (or at close, just above) on some filesystems.
                os.fsync(fh.fileno())
            if path is not None:
                os.replace(tmp, path)
                return
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        Path(tmp).unlink()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no stored object {key!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    # builtins.list: inside the class, ``list`` is the method.
    def list(self, prefix: str) -> builtins.list[str]:
        base = self.root / check_prefix(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def list_older_than(self, prefix: str, cutoff: dt.datetime) -> builtins.list[str]:
        limit = cutoff.timestamp()
        return [key for key in self.list(prefix) if (self.root / key).stat().st_mtime < limit]

    def modified_at(self, key: str) -> dt.datetime:
        try:
            mtime = self._path(key).stat().st_mtime
        except FileNotFoundError:
            raise NotFound(f"no stored object {key!r}") from None
        return dt.datetime.fromtimestamp(mtime, dt.UTC)

    def ping(self) -> None:
        """A small write under the root, synced and deleted: raises StorageFull when the disk is
        full, OSError when it cannot be written (read-only, permissions, gone). The temp name
        keeps it out of every listing while it exists."""
        with _no_space_is_storage_full():
            self._write_new(self.root, b"\0" * PROBE_BYTES, None)
