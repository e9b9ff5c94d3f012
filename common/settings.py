"""One typed settings object, read from the environment (prefix ``ATTENDANCE_``) and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATTENDANCE_", env_file=".env", extra="ignore", frozen=True
    )

    # Broker, job state and Celery results all live in Redis. REDIS_URL (no prefix) is honoured
    # too because it is the name every hosting platform uses.
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias="REDIS_URL",
    )
    # Where uploads, annotated photos and gallery versions live.
    blob_store_url: str = "file://./var/store"
    # Where students, attendance and the gallery's current-version pointer live.
    records_url: str = "sqlite:///./var/attendance.db"
    # DeepFace looks for weights under $DEEPFACE_HOME/.deepface/weights.
    deepface_home: Path = Path("./var/deepface")

    web_host: str = "127.0.0.1"
    web_port: int = 5000
    flower_port: int = 5555
    frontend_port: int = 8501

    # Face pipeline.
    model_name: Literal["Facenet"] = "Facenet"
    detector: Literal["opencv", "mtcnn"] = "opencv"
    # Detection runs on a copy downscaled to this longest side; faces are cropped from the original.
    detect_max_side: int = Field(default=1600, ge=320, le=8000)
    # Faces smaller than this (pixels, in the original photo) are ignored as too small to recognise.
    min_face_px: int = Field(default=24, ge=8)
    embed_batch_size: int = Field(default=32, ge=1, le=256)
    metric: Literal["cosine"] = "cosine"
    # Cosine distance above which a face is "unknown". Calibrated on the 5 Celebrity Faces split
    # (see README: "How the threshold was chosen").
    match_threshold: float = Field(default=0.45, gt=0.0, lt=2.0)

    # Upload limits.
    max_upload_mb: float = Field(default=50.0, gt=0)
    max_enroll_photos: int = Field(default=20, ge=1)
    max_recognition_photos: int = Field(default=50, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1_000_000)

    # Jobs.
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    task_max_retries: int = Field(default=3, ge=0)

    @field_validator("blob_store_url")
    @classmethod
    def _known_blob_scheme(cls, value: str) -> str:
        if not value.startswith("file://"):
            raise ValueError("blob_store_url must start with file://")
        return value

    @field_validator("records_url")
    @classmethod
    def _known_records_scheme(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            raise ValueError("records_url must start with sqlite:///")
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def weights_path(self) -> Path:
        return self.deepface_home / ".deepface" / "weights" / "facenet_weights.h5"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
