"""What the gallery ("the model") currently holds, and re-embedding it with the current pipeline."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify

from attendance.dispatch import REEMBED_TASK
from attendance.domain.auth import Role
from attendance.domain.pipelines import pipeline_id
from attendance.domain.schemas import ModelInfo, ReembedRequest
from attendance.web.apidoc import ACCEPTED, Reply, operation
from attendance.web.auth import allowed_classes, current_principal, requires
from attendance.web.context import current_manifest, services
from attendance.web.submission import submit_job

bp = Blueprint("model", __name__, url_prefix="/api/v1/model")


@bp.get("")
@requires(Role.teacher)
@operation(
    "modelInfo", "The current gallery version.", replies={200: Reply("The gallery.", ModelInfo)}
)
def model_info():
    """The gallery as the current pipeline sees it: ``students`` and ``embeddings`` count its
    own embeddings (the only ones matched); those of other pipelines are counted apart."""
    settings = services().settings
    current = pipeline_id(settings)
    manifest = current_manifest()
    if manifest is None:
        info = ModelInfo(
            version=0,
            model_name=settings.model_name,
            detector=settings.detector,
            metric=settings.metric,
            threshold=settings.match_threshold,
            students=0,
            embeddings=0,
            pipeline=current,
        )
    else:
        by_pipeline = manifest.embeddings_by_pipeline()
        allowed = allowed_classes()
        if allowed is not None:
            # A class-limited teacher sees the counts of their own classes' students only.
            records = services().records
            mine = {s.student_id for c in sorted(allowed) for s in records.list_students(c)}
            by_pipeline = {
                p: {sid: n for sid, n in counts.items() if sid in mine}
                for p, counts in by_pipeline.items()
            }
        counts = {sid: n for sid, n in by_pipeline.get(current, {}).items() if n}
        totals = {p: sum(c.values()) for p, c in sorted(by_pipeline.items()) if p != current}
        others = {p: n for p, n in totals.items() if n}
        stale = {
            sid for p, c in by_pipeline.items() if p != current for sid, n in c.items() if n
        } - set(counts)
        info = ModelInfo(
            version=manifest.version,
            model_name=settings.model_name,
            detector=settings.detector,
            metric=manifest.metric,
            threshold=manifest.threshold,
            students=len(counts),
            embeddings=sum(counts.values()),
            updated_at=dt.datetime.fromisoformat(manifest.created_at),
            pipeline=current,
            other_pipelines=others,
            students_to_reembed=len(stale),
        )
    return jsonify(info.model_dump(mode="json"))


@bp.post("/reembed")
@operation(
    "reembedModel",
    "Re-embed, with the current pipeline, the stored enrollment photos of every student whose "
    "embeddings come from another pipeline (admin); runs as a job (kind enrollment) whose "
    "result is {pipeline, students, embeddings, skipped: [{student_id, reason}], "
    "model_version}.",
    replies={202: ACCEPTED},
    errors={503: "Redis is unavailable; nothing was queued."},
)
def reembed():
    """Queue the re-embedding of every student with embeddings of another pipeline (admin)."""
    requested_at = dt.datetime.now(dt.UTC)
    return submit_job(
        # A re-enrollment of stored photos; job kinds are "enrollment" and "recognition".
        "enrollment",
        REEMBED_TASK,
        [],
        lambda job_id, _uploads: ReembedRequest(
            job_id=job_id, requested_by=current_principal().name, requested_at=requested_at
        ),
    )
