"""What every blob store is: keys are '/'-separated paths, each written whole or not at all."""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Protocol

from attendance.config.urls import is_safe_path


def check_key(key: str) -> str:
    """A key is '/'-separated segments of [A-Za-z0-9._-], none of them '.' or '..'."""
    if not is_safe_path(key):
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

    # builtins.list: inside the class, ``list`` is the method.
    def list(self, prefix: str) -> builtins.list[str]: ...

    def list_older_than(self, prefix: str, cutoff: dt.datetime) -> builtins.list[str]:
        """Keys under ``prefix`` last written before ``cutoff`` (an aware datetime)."""
        ...

    def modified_at(self, key: str) -> dt.datetime:
        """When ``key`` was last written (an aware datetime, as ``list_older_than`` compares
        it); NotFound if it is missing."""
        ...

    def ping(self) -> None: ...
