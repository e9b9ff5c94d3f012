"""Polling a queued enrollment or recognition."""

from __future__ import annotations

from flask import Blueprint, jsonify

from common.errors import NotFound
from common.auth import Role
from web.auth import requires
from web.context import services
from web.forms import is_job_id

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


@bp.get("/<job_id>")
@requires(Role.teacher)
def get_job(job_id: str):
    if not is_job_id(job_id):
        raise NotFound(f"no job {job_id[:64]!r}", code="job_not_found")
    return jsonify(services().jobs.get(job_id).model_dump(mode="json"))
