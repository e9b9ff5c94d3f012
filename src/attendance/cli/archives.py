"""Checksums and safe extraction of selected members of a tarball or a zip (a wheel), for
attendance-provision.

Never ``extractall``: members are read and written as plain files only, each path checked to
stay inside its destination, links and devices refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from attendance.face.weights import sha256_file

_CHUNK = 1 << 20
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}
_ZIP_SUFFIXES = (".whl", ".zip")
# What a damaged archive raises while a member is read (gzip's BadGzipFile is an OSError, which
# the member iterators turn into ProvisionError; a write error stays an OSError).
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError)


class ProvisionError(Exception):
    """Provisioning failed; the message says why and what to do."""


class ChecksumError(ProvisionError):
    """A file's SHA-256 is not the pinned one."""


class UnsafeMemberError(ProvisionError):
    """An archive member would be written outside its destination, or is not a plain file."""


# --------------------------------------------------------------------------------------------
# Checksums


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ChecksumError`` unless ``path``'s SHA-256 is ``expected``."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"SHA-256 mismatch for {path}: expected {expected.lower()}, got {actual}"
        )


def has_sha256(path: Path, expected: str) -> bool:
    """True if ``path`` is a regular file whose SHA-256 is ``expected``."""
    try:
        return path.is_file() and sha256_file(path) == expected.lower()
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Member names


def is_junk(name: str) -> bool:
    """Finder/Explorer litter and AppleDouble files (``._foo``)."""
    return any(part in _JUNK_NAMES or part.startswith("._") for part in name.split("/"))


def safe_relative_path(name: str) -> PurePosixPath:
    """Validate an archive-relative path; raise ``UnsafeMemberError`` if it could escape."""
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeMemberError(f"refusing archive member with an unsafe name: {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMemberError(f"refusing archive member with an absolute path: {name!r}")
    parts = [part for part in path.parts if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise UnsafeMemberError(f"refusing archive member that escapes its directory: {name!r}")
    return PurePosixPath(*parts)


def safe_join(dest: Path, name: str) -> Path:
    """``dest / name``, guaranteed to stay inside ``dest`` (also through existing symlinks)."""
    relative = safe_relative_path(name)
    root = Path(dest).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise UnsafeMemberError(f"refusing archive member that escapes {dest}: {name!r}")
    if target == root:
        raise UnsafeMemberError(f"refusing archive member that names {dest} itself: {name!r}")
    return target


# --------------------------------------------------------------------------------------------
# Writing


def _copy(source: IO[bytes], out: IO[bytes]) -> str:
    """Copy ``source`` to ``out``; return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: source.read(_CHUNK), b""):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def write_stream_atomically(
    source: IO[bytes], target: Path, expected_sha256: str | None = None
) -> str:
    """Copy ``source`` to ``target`` via a temporary file in the same directory and a rename.

    If ``expected_sha256`` is given and does not match, nothing is left behind and
    ``ChecksumError`` is raised. Returns the SHA-256 of what was written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy(source, out)
            out.flush()
            os.fsync(out.fileno())
        if expected_sha256 is not None and actual != expected_sha256.lower():
            raise ChecksumError(
                f"SHA-256 mismatch for {target.name}: expected {expected_sha256.lower()}, "
                f"got {actual}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return actual


def _write_file(source: IO[bytes], target: Path) -> str:
    with open(target, "wb") as out:
        return _copy(source, out)


# --------------------------------------------------------------------------------------------
# Members, whatever the archive's format


@dataclass(frozen=True)
class _Entry:
    """An archive member, whatever the archive's format."""

    name: str
    kind: str  # "file", "dir" or "other" (a link, device, ...: never extracted)
    open: Callable[[], IO[bytes]]


def _tar_opener(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        source = tar.extractfile(member)
        if source is None:  # only for members that are not regular files
            raise UnsafeMemberError(f"archive member {member.name!r} is not a regular file")
        return source

    return open_member


def _tar_entries(tar_path: Path) -> Iterator[_Entry]:
    # Stream mode: one sequential pass over the compressed archive.
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for member in tar:
                kind = "file" if member.isfile() else "dir" if member.isdir() else "other"
                yield _Entry(member.name, kind, _tar_opener(tar, member))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ProvisionError(f"cannot read archive {tar_path}: {err}") from err


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if info.is_dir():
        return "dir"
    mode = info.external_attr >> 16  # the Unix mode, when the zip was made on Unix
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "other"
    return "file"


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


def _zip_entries(zip_path: Path) -> Iterator[_Entry]:
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ProvisionError(f"cannot read archive {zip_path}: {err}") from err
    with archive:
        for info in archive.infolist():
            yield _Entry(info.filename, _zip_kind(info), _zip_opener(archive, info))


def _entries(archive_path: Path) -> Iterator[_Entry]:
    """The members of a ``.tar.gz`` (or any tarball) or a ``.whl``/``.zip``, in archive order."""
    if archive_path.name.lower().endswith(_ZIP_SUFFIXES):
        return _zip_entries(archive_path)
    return _tar_entries(archive_path)


# --------------------------------------------------------------------------------------------
# Extraction


def _tree_target(entry: _Entry, trees: Mapping[str, Path]) -> Path | None:
    """Where a member under one of the ``trees`` prefixes goes; None if it is not extracted."""
    for prefix, dest in trees.items():
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix) :]
        if not rest.strip("/"):
            return None  # the prefix directory itself
        target = safe_join(Path(dest), rest)
        if entry.kind == "dir":
            return None
        if entry.kind != "file":
            raise UnsafeMemberError(
                f"refusing archive member {entry.name!r}: only regular files are extracted"
            )
        return None if is_junk(rest) else target
    return None


def extract(
    archive_path: Path,
    files: Mapping[str, tuple[Path, str | None]] | None = None,
    trees: Mapping[str, Path] | None = None,
) -> dict[Path, str]:
    """Extract selected members of a tarball or a zip (wheel) in a single pass.

    ``files`` maps an exact member name to ``(target path, expected SHA-256 or None)``; each is
    written atomically and verified before it replaces the target. Every named member must exist
    and be a regular file.

    ``trees`` maps a member-name prefix ending in ``/`` to a destination directory: every regular
    file under the prefix is written to ``dest/<rest of the name>``. Junk files are skipped. A
    member under a prefix whose path would leave the destination, or that is a link or device,
    raises ``UnsafeMemberError`` (callers extract trees into a staging directory, so a refused
    archive leaves nothing in place).

    Returns ``{written path: sha256}``.
    """
    archive_path = Path(archive_path)
    files = dict(files or {})
    trees = dict(trees or {})
    for prefix in trees:
        if not prefix.endswith("/"):
            raise ValueError(f"tree prefix must end with '/': {prefix!r}")
    written: dict[Path, str] = {}
    found = set()
    try:
        for entry in _entries(archive_path):
            if entry.name in files:
                if entry.kind != "file":
                    raise UnsafeMemberError(f"archive member {entry.name!r} is not a regular file")
                target, expected = files[entry.name]
                with entry.open() as source:
                    written[Path(target)] = write_stream_atomically(source, Path(target), expected)
                found.add(entry.name)
                continue
            tree_target = _tree_target(entry, trees)
            if tree_target is not None:
                tree_target.parent.mkdir(parents=True, exist_ok=True)
                with entry.open() as source:
                    written[tree_target] = _write_file(source, tree_target)
    except READ_ERRORS as err:
        raise ProvisionError(f"cannot read archive {archive_path}: {err}") from err
    missing = sorted(set(files) - found)
    if missing:
        raise ProvisionError(f"archive {archive_path} has no member {', '.join(missing)}")
    return written
