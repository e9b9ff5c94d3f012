"""Which pipeline made an embedding: embeddings of different pipelines are never compared."""

from __future__ import annotations

from attendance.config.settings import Settings

# The version of each detector's alignment (how a detected face becomes FaceNet's 160x160 input).
# Bump a detector's number whenever its cropping or alignment changes: the embeddings it makes
# then differ from the stored ones, which a new pipeline id keeps apart (README, "Upgrading the
# detector or the model").
ALIGNMENT_VERSIONS = {"opencv": 1, "mtcnn": 1, "centerface": 1}


def pipeline_id(settings: Settings) -> str:
    """What makes embeddings under these settings, e.g. ``Facenet/centerface-v1``: the model, the
    detector and the version of its alignment. Embeddings of different ids are never compared."""
    return f"{settings.model_name}/{settings.detector}-v{ALIGNMENT_VERSIONS[settings.detector]}"
