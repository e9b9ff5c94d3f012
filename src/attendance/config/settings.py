"""One typed settings object, read from the environment (prefix ``ATTENDANCE_``) and ``.env``."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from attendance.config.urls import parse_blob_store_url, parse_oidc_metadata_url, parse_records_url

# As Streamlit's st.login names them ([auth.<name>]): no underscore.
PROVIDER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class OidcProvider(BaseModel):
    """A school's identity provider (OpenID Connect) whose ID tokens log people in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The provider's discovery document: its issuer, keys and endpoints (Google:
    # https://accounts.google.com/.well-known/openid-configuration; Microsoft Entra:
    # https://login.microsoftonline.com/<tenant id>/v2.0/.well-known/openid-configuration).
    server_metadata_url: str
    # The app's client id at the provider: an ID token must name it as its audience.
    client_id: str = Field(min_length=1)

    @field_validator("server_metadata_url")
    @classmethod
    def _https(cls, value: str) -> str:
        parse_oidc_metadata_url(value)  # raises ValueError saying what is wrong
        return value


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
    # Where uploads, annotated photos and gallery versions live: file://<dir> on one machine, or
    # gs://<bucket>[/<prefix>] on Google Cloud Storage (STORAGE_EMULATOR_HOST, as the
    # google-cloud-storage client reads it, points it at an emulator with anonymous credentials).
    blob_store_url: str = "file://./var/store"
    # Where students, attendance and the gallery's current-version pointer live:
    # sqlite:///<path> on one machine, or DynamoDB as
    # dynamodb://<table-prefix>[?region=<region>][&endpoint_url=<url>] (docs/deploy.md).
    records_url: str = "sqlite:///./var/attendance.db"
    # DynamoDB: create the tables (on-demand capacity) when they are missing. Turn off in
    # production, where the tables are provisioned beforehand and the role cannot create them.
    dynamodb_create_tables: bool = True
    # GCS: create the bucket when it is missing (meant for emulators; a production bucket is
    # provisioned with its location, retention and IAM beforehand).
    gcs_create_bucket: bool = False
    # Cloud clients. Throttling, 5xx answers and timeouts are retried with exponential backoff:
    # DynamoDB up to cloud_max_attempts calls (botocore's aws_retry_mode), GCS until
    # cloud_retry_deadline_seconds have passed. cloud_timeout_seconds bounds each request.
    cloud_max_attempts: int = Field(default=5, ge=1, le=20)
    aws_retry_mode: Literal["standard", "adaptive"] = "standard"
    cloud_timeout_seconds: float = Field(default=30.0, gt=0)
    cloud_retry_deadline_seconds: float = Field(default=60.0, gt=0)
    # /readyz probes each store once, without retries, within this many seconds.
    store_ping_timeout_seconds: float = Field(default=2.0, gt=0)
    # SQLite: how long a write waits for another writer's lock before it gives up (a job then
    # tries again later, a request gets 503). Keep it well below the web's gunicorn --timeout
    # (120 s): SQLite waits in C, where gunicorn's timeout cannot interrupt it.
    sqlite_busy_timeout_seconds: float = Field(default=30.0, gt=0)
    # DeepFace looks for weights under $DEEPFACE_HOME/.deepface/weights.
    deepface_home: Path = Path("./var/deepface")

    web_host: str = "127.0.0.1"
    web_port: int = 5000
    flower_port: int = 5555
    frontend_port: int = 8501
    # The Streamlit app's own settings (where it finds the API, its token) are
    # attendance.frontend.settings.FrontendSettings: it never reads these.

    # Access. API tokens are JSON lists of {"name", "role", "sha256", "classes"} (roles: admin,
    # teacher, viewer; sha256 of the token; classes limits a teacher to those classes), read from
    # api_tokens (e.g. a secret in the environment) and from the file api_tokens_file, which
    # `attendance-tokens` writes (`make run` creates a local admin token there on first start).
    api_tokens: str | None = None
    # How long a login (username and password) lasts before the person logs in again.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    api_tokens_file: Path = Path("./var/tokens.json")
    # Identity providers by name (the name the app's [auth.<name>] section has), as JSON:
    # {"google": {"server_metadata_url": "...", "client_id": "..."}}. A person logs in through
    # one as the account whose email is the token's verified email (README, "Accounts").
    oidc_providers: dict[str, OidcProvider] = {}

    # Face pipeline.
    model_name: Literal["Facenet"] = "Facenet"
    # "centerface" (a CNN with five landmarks; faces aligned on them), "opencv" (Haar cascades,
    # eye rotation) or "mtcnn" (README, "Detector").
    detector: Literal["centerface", "opencv", "mtcnn"] = "centerface"
    # CenterFace's confidence a detection needs to count as a face: 0.4 finds the face cut by
    # the frame in selfie-many-people.jpg (0.43) with no false detection in the labelled photos
    # or the synthetic classrooms (README, "Detector").
    detect_min_confidence: float = Field(default=0.4, gt=0.0, lt=1.0)
    # Detection runs on a copy downscaled to this longest side; faces are cropped from the original.
    # 2048 rather than 1600: on the 30-face class photo opencv found 29 real faces instead of 27,
    # for ~25% more detection time (docs/performance.md, "Detector").
    detect_max_side: int = Field(default=2048, ge=320, le=8000)
    # CenterFace: a face narrower than this on the detection copy is found again on a crop of
    # the original photo where it is this wide, for landmarks precise enough to align it by
    # (0: never; docs/performance.md, "The refining pass").
    detect_refine_px: int = Field(default=32, ge=0, le=96)
    # What precision OpenVINO runs CenterFace in: "f32", "bf16" (where the CPU has it), or
    # "auto": the CPU's fastest where, on a check photo at start, it finds the faces float32
    # finds with the same boxes and landmarks, else float32 (docs/performance.md, "Detection on
    # OpenVINO": bf16 found the same faces and recognised as many students).
    detect_precision: Literal["f32", "bf16", "auto"] = "auto"
    # Faces smaller than this (pixels, in the original photo) are ignored as too small to recognise:
    # measured here, val faces shrunk to 24-28 px were detected 11-17 times in 25 and recognised
    # 7-10 times; at 40 px 22 and 20. Not scanning for them makes opencv ~40% faster on photos
    # up to detect_max_side (docs/performance.md).
    min_face_px: int = Field(default=32, ge=8)
    # The opencv cascade's scan: window sizes grow by detect_scale_step, and a face needs
    # detect_min_neighbors overlapping hits. DeepFace's 1.1 and 10 scan ~2.6x more windows; 1.25
    # and 3 found the same faces in the group photos and class photo, and 100 of 118 single-face
    # photos with exactly one face against 105 (docs/performance.md, "Detection").
    detect_scale_step: float = Field(default=1.25, ge=1.01, le=2.0)
    detect_min_neighbors: int = Field(default=3, ge=0, le=50)
    embed_batch_size: int = Field(default=32, ge=1, le=256)
    # What runs FaceNet: "openvino" or "onnx" (ONNX Runtime), both on the CPU and on the graph
    # `make provision` converts from the same weights, "tensorflow", or "auto": TensorFlow where
    # it sees a GPU, else OpenVINO (docs/performance.md, "Embedding").
    embed_engine: Literal["auto", "openvino", "onnx", "tensorflow"] = "auto"
    # What precision OpenVINO runs FaceNet in: "bf16" (the CPU's default; float32 where bf16
    # would move embeddings too far), "f32", "int8" (the model `make provision` quantizes with
    # NNCF, attendance.face.quantize), or "auto": INT8 where that model passed its accuracy
    # check and passes the check at start, else as "bf16". Not "auto" by default: INT8 moves
    # decisions near the threshold several times more than bf16 (attendance.face.quantize).
    embed_precision: Literal["auto", "int8", "bf16", "f32"] = "bf16"
    metric: Literal["cosine"] = "cosine"
    # Cosine distance above which a face is "unknown". Calibrated on the 5 Celebrity Faces split
    # (see README: "How the threshold was chosen").
    match_threshold: float = Field(default=0.45, gt=0.0, lt=2.0)
    # A face is a student's only when this many of the student's embeddings (all of them, if
    # fewer) are within the threshold: one look-alike photo is not enough (README, "How the
    # threshold was chosen"). 1: the nearest embedding decides.
    match_min_photos: int = Field(default=2, ge=1, le=20)
    # Enrollment is stricter than recognition (README, "Enrollment photos"): a face at least
    # this wide (in min_face_px's terms) and this sure, and no farther than
    # enroll_consistency_distance from the student's other photos (the second nearest of them,
    # when there are two or more).
    enroll_min_face_px: int = Field(default=48, ge=8)
    enroll_min_confidence: float = Field(default=0.7, gt=0.0, lt=1.0)
    enroll_consistency_distance: float = Field(default=0.6, gt=0.0, lt=2.0)

    # Upload limits.
    max_upload_mb: float = Field(default=50.0, gt=0)
    max_enroll_photos: int = Field(default=20, ge=1)
    max_recognition_photos: int = Field(default=50, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1_000_000)
    # The pixels all photos of one request may declare, checked from their headers before any
    # is decoded: decoding costs the web and the worker ~12 ms per megapixel of JPEG and ~24 of
    # a palette GIF here, and a tiny file can declare max_image_pixels. 250 Mpx admits 20
    # photos of 12 MP (an enrollment at its limit; more than 50 MB of ordinary phone JPEGs
    # holds) and bounds a request's decoding to a few seconds, not the ~minute that 50 photos
    # at max_image_pixels would cost (README, "The API (v1)").
    max_request_pixels: int = Field(default=250_000_000, ge=1_000_000)

    # Jobs.
    job_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    # Privacy: uploaded photos and annotated images are deleted this long after they were
    # written, by a periodic task (Celery beat) that runs every retention_sweep_seconds.
    # A student's enrollment photos are kept until the student or their face data is erased.
    retention_days: float = Field(default=30, gt=0)
    retention_sweep_seconds: float = Field(default=3600, ge=1)
    # A student's face data (embeddings, enrollment photos) is erased this long after they were
    # last recognised (never recognised: after their consent or latest enrollment), by the
    # same periodic task; their consent record stays and they need enrolling again.
    template_retention_days: float = Field(default=1095, gt=0)
    # Every start of a task counts, whether a retry after a transient error or a redelivery after
    # its worker died: a job that keeps failing (a poison input) is failed after this many.
    task_max_attempts: int = Field(default=4, ge=1, le=20)
    # A job that met a transient error (Redis, a store locked, read-only, throttling or
    # unreachable) tries again after this many seconds, doubled at each retry: with the
    # defaults after 5, 10 and 20 s, so an outage of about half a minute loses no job.
    task_retry_backoff_seconds: float = Field(default=5.0, ge=0)
    # A running job holds a lease in Redis that its worker renews every third of this; once it
    # lapses (the worker or Redis died), the reconciler in every worker's main process puts the
    # job's task back on its queue, or sends it again (README, "Reliability").
    job_lease_seconds: float = Field(default=30.0, ge=1)
    # Every worker marks the jobs it holds at this interval, so it is at most half a lease.
    reconcile_interval_seconds: float = Field(default=10.0, ge=0.2)
    # A job still queued this long after it was created, with no task message anywhere, was
    # never enqueued (the API stopped while accepting it): it is failed and its photos deleted.
    # Longer than a request may last (gunicorn's --timeout).
    submission_grace_seconds: float = Field(default=180.0, ge=1)
    # Which Celery queue enrollment and recognition go to: "cpu" or "gpu"; "auto" is "gpu" when
    # gpu_workers says GPU workers (`celery ... worker -Q gpu`) are deployed, else "cpu".
    task_queue: Literal["auto", "cpu", "gpu"] = "auto"
    gpu_workers: bool = False

    @field_validator("blob_store_url")
    @classmethod
    def _known_blob_store_url(cls, value: str) -> str:
        parse_blob_store_url(value)  # raises ValueError saying what is wrong
        return value

    @model_validator(mode="after")
    def _marks_renewed_within_a_lease(self) -> Settings:
        if self.reconcile_interval_seconds > self.job_lease_seconds / 2:
            raise ValueError(
                f"ATTENDANCE_RECONCILE_INTERVAL_SECONDS ({self.reconcile_interval_seconds:g}) "
                f"must be at most half of ATTENDANCE_JOB_LEASE_SECONDS "
                f"({self.job_lease_seconds:g}): a worker renews its marks at that interval"
            )
        return self

    @field_validator("oidc_providers")
    @classmethod
    def _provider_names(cls, value: dict[str, OidcProvider]) -> dict[str, OidcProvider]:
        for name in value:
            if not PROVIDER_NAME_RE.fullmatch(name):
                raise ValueError(
                    f"an identity provider's name is 1 to 32 lowercase letters, digits or '-': "
                    f"not {name!r}"
                )
        return value

    @field_validator("records_url")
    @classmethod
    def _known_records_url(cls, value: str) -> str:
        parse_records_url(value)  # raises ValueError saying what is wrong
        return value

    @property
    def resolved_task_queue(self) -> Literal["cpu", "gpu"]:
        if self.task_queue == "auto":
            return "gpu" if self.gpu_workers else "cpu"
        return self.task_queue

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def weights_dir(self) -> Path:
        """DeepFace's weights folder, filled by `make provision` (attendance-provision)."""
        return self.deepface_home / ".deepface" / "weights"

    @property
    def weights_path(self) -> Path:
        """FaceNet's weights (checked by attendance.face.embed.check_weights)."""
        return self.weights_dir / "facenet_weights.h5"

    @property
    def centerface_path(self) -> Path:
        """CenterFace's ONNX graph (checked by attendance.face.weights.check_centerface_weights)."""
        return self.weights_dir / "centerface.onnx"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def default_settings() -> Settings:
    """Every setting at its default, whatever the environment and .env say: what a store opened
    without settings (a script, a test) runs with."""
    return Settings.model_construct()
