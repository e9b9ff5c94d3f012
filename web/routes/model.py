"""What the gallery ("the model") currently holds."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify

from common.schemas import ModelInfo
from common.auth import Role
from web.auth import allowed_classes, requires
from web.context import current_manifest, services

bp = Blueprint("model", __name__, url_prefix="/api/v1/model")


@bp.get("")
@requires(Role.teacher)
def model_info():
    manifest = current_manifest()
    if manifest is None:
        settings = services().settings
        info = ModelInfo(
            version=0, model_name=settings.model_name, detector=settings.detector,
            metric=settings.metric, threshold=settings.match_threshold, students=0, embeddings=0,
        )
    else:
        counts = manifest.embeddings_per_student()
        allowed = allowed_classes()
        if allowed is not None:
            # A class-limited teacher sees the counts of their own classes' students only.
            records = services().records
            mine = {s.student_id for c in sorted(allowed) for s in records.list_students(c)}
            counts = {sid: n for sid, n in counts.items() if sid in mine}
        info = ModelInfo(
            version=manifest.version, model_name=manifest.model_name,
            detector=manifest.detector, metric=manifest.metric, threshold=manifest.threshold,
            students=len(counts), embeddings=sum(counts.values()),
            updated_at=dt.datetime.fromisoformat(manifest.created_at),
        )
    return jsonify(info.model_dump(mode="json"))
