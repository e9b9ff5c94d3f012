"""What a worker holds for its lifetime: settings, stores, the detector, FaceNet and the gallery."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attendance.config.settings import Settings
from attendance.domain.matching import warm_up as warm_up_matching
from attendance.domain.pipelines import pipeline_id
from attendance.stores import open_stores
from attendance.stores.blob import BlobStore
from attendance.stores.gallery import GalleryCache, GalleryRepository
from attendance.stores.jobs import JobStore
from attendance.stores.records import RecordsStore

if TYPE_CHECKING:
    # Imported for real in load(), once DeepFace knows where its weights are.
    from attendance.face.detect import FaceDetector
    from attendance.face.embed import FaceNetEmbedder

log = logging.getLogger(__name__)


@dataclass
class FacePipeline:
    settings: Settings
    blobs: BlobStore
    records: RecordsStore
    jobs: JobStore
    gallery_repo: GalleryRepository
    gallery: GalleryCache
    detector: FaceDetector
    embedder: FaceNetEmbedder

    @property
    def pipeline_id(self) -> str:
        """The pipeline this worker's embeddings come from (attendance.domain.pipelines.pipeline_id)."""
        return pipeline_id(self.settings)

    @classmethod
    def load(cls, settings: Settings) -> FacePipeline:
        # DeepFace reads its home from the environment; point it at the provisioned weights so
        # it never tries to download anything.
        os.environ["DEEPFACE_HOME"] = str(settings.deepface_home.resolve())
        from attendance.face.detect import FaceDetector
        from attendance.face.embed import FaceNetEmbedder

        stores = open_stores(settings)
        embedder = FaceNetEmbedder(
            settings.weights_path,
            settings.embed_batch_size,
            settings.embed_engine,
            settings.embed_precision,
        )
        embedder.warm_up()
        warm_up_matching()
        detector = FaceDetector.from_settings(settings)
        detector.warm_up()
        log.info(
            "face pipeline ready: FaceNet on %s (%s, %s), detector %s (%s), pipeline %s",
            embedder.device,
            embedder.engine,
            embedder.precision,
            settings.detector,
            detector.precision or "its own",
            pipeline_id(settings),
        )
        return cls(
            settings=settings,
            blobs=stores.blobs,
            records=stores.records,
            jobs=stores.jobs,
            gallery_repo=stores.gallery_repo,
            gallery=GalleryCache(stores.gallery_repo, pipeline_id(settings)),
            detector=detector,
            embedder=embedder,
        )
