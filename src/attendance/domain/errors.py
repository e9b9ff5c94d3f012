"""Errors with a machine-readable code, an HTTP status and a message meant for people."""

from __future__ import annotations


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


class ValidationFailed(AppError):
    status = 400
    code = "invalid_request"


class InvalidImage(AppError):
    status = 400
    code = "invalid_image"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class NotFound(AppError):
    status = 404
    code = "not_found"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"


class ModelWeightsMissing(AppError):
    """Pretrained weights (FaceNet, CenterFace) are missing or not the pinned ones; never fall
    back to random or downloaded weights."""

    status = 503
    code = "model_weights_missing"


class NoUsablePhoto(AppError):
    status = 422
    code = "no_usable_photo"


class GalleryConflict(AppError):
    """Another writer moved the gallery pointer first; the caller retries on the new version."""

    status = 409
    code = "gallery_conflict"


class StoreUnavailable(ServiceUnavailable):
    """A blob or records store cannot be used: the bucket or table is missing, access is refused,
    or the service cannot be reached. The message names the bucket or table and what to do."""

    status = 503
    code = "store_unavailable"


class StoreBusy(StoreUnavailable):
    """Transient: throttled, a 5xx or a timeout that outlasted the client's own retries with
    backoff. A task tries again later; if it keeps failing the job fails with this message."""


class StorageFull(AppError):
    """A write found no space left on the disk under a store (ENOSPC, or EDQUOT: over a quota).
    Whatever that write was making is not kept; what was stored before stays whole. The
    message says which store. A full disk is rarely freed within seconds, so a job that meets
    it fails with this at once instead of retrying."""

    status = 507
    code = "storage_full"


class StudentExists(AppError):
    """The id is taken: adding photos or renaming are requests of their own."""

    status = 409
    code = "student_exists"


class MarkChanged(AppError):
    """The mark was changed by someone else between reading it and writing what was decided
    from it."""

    status = 409
    code = "mark_changed"


class RegisterFinalized(AppError):
    """The register of that class, date and period was signed off: only an admin corrects it."""

    status = 409
    code = "register_finalized"


class StudentErased(AppError):
    """The student was erased after this work was asked for: it must not bring them back."""

    status = 409
    code = "student_erased"


class ConsentRequired(AppError):
    """No consent is on record for the student: their face data may not be enrolled."""

    status = 409
    code = "consent_required"


class ConsentWithdrawn(AppError):
    """The student's consent was withdrawn while this work waited or ran: it keeps nothing."""

    status = 409
    code = "consent_withdrawn"
