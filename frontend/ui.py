"""Streamlit helpers shared by the pages: the API client, error display, job progress bars."""

from __future__ import annotations

import time
from typing import Callable, Sequence, TypeVar

import streamlit as st

from common.schemas import JobView
from common.settings import Settings
from frontend.api_client import TERMINAL_STATES, ApiClient, ApiError

T = TypeVar("T")

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
POLL_INTERVAL = 0.5
JOB_TIMEOUT = 900.0


def settings() -> Settings:
    # Read on every run (it is cheap), so a changed ATTENDANCE_API_URL applies without a restart.
    try:
        return Settings()
    except Exception as exc:  # a bad ATTENDANCE_* variable or .env line: say which, not a trace
        errors = getattr(exc, "errors", None)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors()
        ) if callable(errors) else f"{type(exc).__name__}: {exc}"
        st.error(f"The settings (ATTENDANCE_* variables, .env) are invalid: {detail}",
                 icon=":material/settings:")
        st.stop()
        raise


def request_bytes(config: Settings) -> int:
    """Photo bytes per request: under the API's upload limit, with room for the form's framing."""
    return int(config.max_upload_bytes * 0.9)


def client() -> ApiClient:
    return ApiClient(settings().api_url)


def flower_url() -> str:
    return f"http://127.0.0.1:{settings().flower_port}"


def show_error(exc: ApiError, doing: str | None = None) -> None:
    """An ApiError as people read it: what failed, why, and the API's code in small print."""
    if exc.unreachable:
        st.error(exc.message, icon=":material/cloud_off:")
        return
    st.error(f"{doing}: {exc.message}" if doing else exc.message, icon=":material/error:")
    if exc.code:
        st.caption(f"error code: `{exc.code}`" + (f", HTTP {exc.status}" if exc.status else ""))


def fetch(doing: str, call: Callable[..., T], *args, **kwargs) -> T:
    """``call(*args, **kwargs)``, or show why it failed and stop this page's run."""
    try:
        return call(*args, **kwargs)
    except ApiError as exc:
        show_error(exc, doing)
        st.stop()
        raise  # st.stop() raises; this only tells type checkers the call does not fall through


@st.cache_data(show_spinner=False, max_entries=256)
def annotated_image(api_url: str, job_id: str, n: int) -> bytes:
    """An annotated photo never changes under its URL, so it is fetched once per session."""
    return ApiClient(api_url).annotated(job_id, n)


def _progress_text(label: str, job: JobView) -> str:
    done, total = job.progress.done, job.progress.total
    state = {"queued": "queued, waiting for a worker", "running": "running",
             "succeeded": "done", "failed": "failed"}[job.state]
    return f"{label}: {state} ({done}/{total} photos)"


def wait_for_jobs(
    api: ApiClient,
    jobs: Sequence[tuple[str, str]],
    *,
    timeout: float = JOB_TIMEOUT,
    interval: float = POLL_INTERVAL,
) -> dict[str, JobView | ApiError]:
    """One progress bar per (label, job_id), polled until every job succeeded or failed.

    Returns each job's final view, or the ApiError that stopped following it (the API went
    away, or the job did not finish within ``timeout``).
    """
    bars = {job_id: st.progress(0.0, text=f"{label}: submitted") for label, job_id in jobs}
    labels = dict((job_id, label) for label, job_id in jobs)
    outcome: dict[str, JobView | ApiError] = {}
    deadline = time.monotonic() + timeout
    while len(outcome) < len(jobs):
        for job_id in labels:
            if job_id in outcome:
                continue
            try:
                job = api.job(job_id)
            except ApiError as exc:
                outcome[job_id] = exc
                bars[job_id].progress(0.0, text=f"{labels[job_id]}: {exc.message}")
                continue
            total = max(job.progress.total, 1)
            fraction = 1.0 if job.state == "succeeded" else min(job.progress.done / total, 1.0)
            bars[job_id].progress(fraction, text=_progress_text(labels[job_id], job))
            if job.state in TERMINAL_STATES:
                outcome[job_id] = job
        if len(outcome) < len(jobs):
            if time.monotonic() > deadline:
                for job_id in labels:
                    outcome.setdefault(job_id, ApiError(
                        f"{labels[job_id]}: job {job_id} has not finished after {timeout:g} s; "
                        "is a worker running? (see Monitoring)", code="job_timeout"))
                break
            time.sleep(interval)
    return outcome


def api_status_sidebar() -> bool:
    """The API's address and whether it answers, in the sidebar; True when it does."""
    api = client()
    try:
        api.health()
    except ApiError as exc:
        if exc.unreachable:
            st.sidebar.error(f"API not reachable: {api.base_url}", icon=":material/cloud_off:")
        else:
            st.sidebar.error(f"API at {api.base_url} fails: {exc.message}",
                             icon=":material/error:")
        return False
    st.sidebar.success(f"API: {api.base_url}", icon=":material/cloud_done:")
    return True
