"""Blob store on the local file system: ``file://<dir>``."""

from __future__ import annotations

import builtins
import datetime as dt
import os
import tempfile
from pathlib import Path

from attendance.domain.errors import NotFound
from attendance.stores.blob.base import check_key, check_prefix


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

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"blob store {self.root} is not writable")
