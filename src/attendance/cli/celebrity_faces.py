"""The 5 Celebrity Faces data set as attendance-provision installs it:
``<datasets>/5-celebrity-faces/{train,val}/<person>/*.jpg`` and a manifest of every file's
SHA-256 and the archive it came from, so a later run can tell that it is complete."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from attendance.cli.archives import ProvisionError, has_sha256, is_junk, safe_join
from attendance.face.weights import sha256_file

NAME = "5-celebrity-faces"
SPLITS = ("train", "val")
MANIFEST = ".manifest.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg")


def member_wanted(relative: str) -> bool:
    """``{train,val}/<person>/<image>.jpg`` and nothing else."""
    parts = relative.split("/")
    return (
        len(parts) == 3
        and parts[0] in SPLITS
        and bool(parts[1])
        and not is_junk(relative)
        and parts[2].lower().endswith(IMAGE_SUFFIXES)
    )


def is_complete(dest: Path, source_sha256: str) -> bool:
    """True if ``dest`` came from the archive ``source_sha256`` and holds every file its
    manifest lists, with the recorded checksums."""
    try:
        data = json.loads((dest / MANIFEST).read_text())
        if data.get("source_sha256") != source_sha256:
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


def _prune(staging: Path) -> dict[str, str]:
    """Drop what ``member_wanted`` rejects; return ``{relative path: sha256}``."""
    kept: dict[str, str] = {}
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            relative = path.relative_to(staging).as_posix()
            if member_wanted(relative):
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


def install(staging: Path, dest: Path, source_name: str, source_sha256: str) -> dict[str, str]:
    """Turn what was extracted into ``staging`` into the data set at ``dest``: keep only its
    images, write the manifest, then replace ``dest`` in one rename. Returns the manifest's
    ``{relative path: sha256}``."""
    kept = _prune(staging)
    splits = {relative.split("/")[0] for relative in kept}
    if splits != set(SPLITS):
        raise ProvisionError(
            f"archive {source_name} holds no complete {NAME} data set "
            f"(found splits: {sorted(splits) or 'none'})"
        )
    manifest = {"source": source_name, "source_sha256": source_sha256, "files": kept}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    _swap_into_place(staging, dest)
    return kept


def describe(files: Mapping[str, str]) -> str:
    """``train: N images of M people; val: ...``."""
    summary: list[str] = []
    for split in SPLITS:
        names = [relative for relative in files if relative.startswith(split + "/")]
        people = {relative.split("/")[1] for relative in names}
        summary.append(f"{split}: {len(names)} images of {len(people)} people")
    return "; ".join(summary)
