"""What a worker holds for its lifetime: settings, stores, the detector, FaceNet and the gallery."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from attendance.config.settings import Settings
from attendance.stores.blob import BlobStore, open_blob_store
from attendance.stores.gallery import GalleryCache, GalleryRepository
from attendance.stores.jobs import JobStore
from attendance.stores.records import RecordsStore, open_records

log = logging.getLogger(__name__)

# The version of each detector's alignment (how a detected face becomes FaceNet's 160x160 input).
# Bump a detector's number whenever its cropping or alignment changes: the embeddings it makes
# then differ from the stored ones, which a new pipeline id keeps apart (README, "Upgrading the
# detector or the model").
ALIGNMENT_VERSIONS = {"opencv": 1, "mtcnn": 1, "centerface": 1}


def pipeline_id(settings: Settings) -> str:
    """What makes embeddings under these settings, e.g. ``Facenet/centerface-v1``: the model, the
    detector and the version of its alignment. Embeddings of different ids are never compared."""
    return f"{settings.model_name}/{settings.detector}-v{ALIGNMENT_VERSIONS[settings.detector]}"


@dataclass
class FacePipeline:
    settings: Settings
    blobs: BlobStore
    records: RecordsStore
    jobs: JobStore
    gallery_repo: GalleryRepository
    gallery: GalleryCache
    detector: FaceDetector  # noqa: F821 - imported lazily with TensorFlow
    embedder: FaceNetEmbedder  # noqa: F821

    @property
    def pipeline_id(self) -> str:
        """The pipeline this worker's embeddings come from (attendance.services.pipeline.pipeline_id)."""
        return pipeline_id(self.settings)

    @classmethod
    def load(cls, settings: Settings) -> FacePipeline:
        # DeepFace reads its home from the environment; point it at the provisioned weights so
        # it never tries to download anything.
        os.environ["DEEPFACE_HOME"] = str(settings.deepface_home.resolve())
        from attendance.face.detect import FaceDetector
        from attendance.face.embed import FaceNetEmbedder

        blobs = open_blob_store(settings.blob_store_url, settings)
        records = open_records(settings.records_url, settings)
        repo = GalleryRepository(blobs, records)
        embedder = FaceNetEmbedder(
            settings.weights_path, settings.embed_batch_size, settings.embed_engine
        )
        embedder.warm_up()
        from attendance.domain.matching import warm_up as warm_up_matching

        warm_up_matching()
        detector = FaceDetector.from_settings(settings)
        log.info(
            "face pipeline ready: FaceNet on %s (%s), detector %s, pipeline %s",
            embedder.device,
            embedder.engine,
            settings.detector,
            pipeline_id(settings),
        )
        return cls(
            settings=settings,
            blobs=blobs,
            records=records,
            jobs=JobStore.from_url(settings.redis_url, settings.job_ttl_seconds),
            gallery_repo=repo,
            gallery=GalleryCache(repo, pipeline_id(settings)),
            detector=detector,
            embedder=embedder,
        )
