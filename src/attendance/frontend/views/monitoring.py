"""Monitoring, for administrators: whether the system can do its work right now, in plain words
(from the API's /readyz and, for someone logged in, the face model), and a link to Flower for
the jobs themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from attendance.domain.schemas import ModelInfo
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError

# /readyz's checks, as the people who look after the system call them.
CHECK_NAMES = {
    "redis": "The job queue (Redis)",
    "blob_store": "The photo store",
    "records": "The records (students, registers, accounts)",
    "workers": "The workers, which read the photos",
}
WORKING, NOT_WORKING, UNKNOWN = "working", "not working", "unknown"
# A word and an icon for each state, so that none is told by its colour alone.
LOOKS = {
    WORKING: ("green", ":material/check_circle:", "Working"),
    NOT_WORKING: ("red", ":material/cancel:", "Not working"),
    UNKNOWN: ("gray", ":material/help:", "Unknown"),
}


@dataclass(frozen=True)
class Status:
    """One part of the system: what it is, whether it works, and a few words on it."""

    part: str
    state: str  # WORKING, NOT_WORKING or UNKNOWN
    words: str = ""


def _workers_words(ready: dict) -> str:
    answering = len(ready.get("workers") or [])
    if answering == 0:
        return "at least one answers"
    return f"{answering} worker{'s' * (answering != 1)} answer{'s' * (answering == 1)}"


def health(ready: dict | None) -> list[Status]:
    """Each part's state from /readyz's answer (None: the API did not answer)."""
    if ready is None:
        return [Status("The API", NOT_WORKING, "it does not answer")] + [
            Status(part, UNKNOWN, "cannot be asked without the API")
            for part in CHECK_NAMES.values()
        ]
    checks = ready.get("checks") or {}
    parts = [Status("The API", WORKING, "it answers")]
    for check, part in CHECK_NAMES.items():
        value = checks.get(check)
        if value == "ok":
            words = _workers_words(ready) if check == "workers" else ""
            parts.append(Status(part, WORKING, words))
        elif value is None:
            parts.append(Status(part, UNKNOWN, "the API did not say"))
        elif check == "workers" and str(value).startswith("not checked"):
            parts.append(Status(part, UNKNOWN, "not asked, as the job queue does not work"))
        else:
            parts.append(Status(part, NOT_WORKING, str(value)))
    # Checks a newer API makes that this page has no words for yet.
    for check, value in checks.items():
        if check not in CHECK_NAMES:
            parts.append(Status(check, WORKING if value == "ok" else NOT_WORKING, str(value)))
    return parts


def summary(parts: Sequence[Status]) -> tuple[str, str]:
    """("ok", "warning" or "error", one sentence) about the whole system."""
    if parts and parts[0].state == NOT_WORKING:
        return "error", (
            "The API does not answer, so nothing can be done in the app until it is back: "
            "is it running?"
        )
    broken = [p.part for p in parts if p.state == NOT_WORKING]
    if broken:
        which = ", ".join(p[0].lower() + p[1:] for p in broken)
        return "error", (
            f"Not everything is working: {which}. Photos sent now are not read until "
            "it is put right."
        )
    unknown = [p.part for p in parts if p.state == UNKNOWN]
    if unknown:
        which = ", ".join(p[0].lower() + p[1:] for p in unknown)
        return (
            "warning",
            f"Everything asked is working, but not everything could be asked: {which}.",
        )
    workers = next((p.words for p in parts if p.part == CHECK_NAMES["workers"]), "")
    return "ok", (
        "Everything is working: the API, the job queue, the photo store and the records "
        f"answer, and {workers or 'the workers answer'}."
    )


def status_line(status: Status) -> str:
    """One part as Markdown: an icon and a word (coloured too), what it is, and why."""
    colour, icon, word = LOOKS[status.state]
    why = f": {ui.plain(status.words)}" if status.words else ""
    return f":{colour}[{icon} **{word}**] · {ui.plain(status.part)}{why}"


def model_words(model: ModelInfo) -> Status:
    """The face model as a part of the system: how many students it can recognise."""
    students = f"{model.students} student{'s' * (model.students != 1)}"
    photos = f"{model.embeddings} photo{'s' * (model.embeddings != 1)}"
    when = f", last updated {model.updated_at:%Y-%m-%d %H:%M} UTC" if model.updated_at else ""
    if model.students:
        words = f"it recognises {students} from {photos}{when}"
    else:
        words = "it recognises nobody yet: students are enrolled on the Enroll page"
    if model.students_to_reembed:
        waiting = model.students_to_reembed
        words += (
            f"; {waiting} more student{'s' * (waiting != 1)} must have their photos read "
            "again before they can be recognised (see Students and model)"
        )
    return Status("The face model", WORKING, words)


def _show_summary(parts: Sequence[Status]) -> None:
    kind, sentence = summary(parts)
    if kind == "ok":
        st.success(sentence, icon=":material/check_circle:")
    elif kind == "warning":
        st.warning(sentence, icon=":material/help:")
    else:
        st.error(sentence, icon=":material/error:")


def _face_model(api: ApiClient) -> Status | None:
    """The face model's state, for a token that may see it; None otherwise."""
    if not api.token:
        return None
    try:
        return model_words(api.model())
    except ApiError:
        return None  # a viewer's token, or an API gone meanwhile: the rest says enough


def _raw_checks(ready: dict) -> None:
    with st.expander("The API's own checks (GET /readyz)"):
        checks = ready.get("checks") or {}
        st.dataframe(
            pd.DataFrame(
                [{"check": k, "status": v} for k, v in checks.items()],
                columns=["check", "status"],
            ),
            hide_index=True,
            width="stretch",
        )
        workers = ready.get("workers") or []
        if workers:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "worker": w.get("name"),
                            "queues": ", ".join(w.get("queues") or []),
                            "device": w.get("device") or "",
                            "engine": w.get("engine") or "",
                        }
                        for w in workers
                    ]
                ),
                hide_index=True,
                width="stretch",
            )


def _health_section(api: ApiClient) -> None:
    st.subheader("How the system is doing")
    try:
        ready: dict | None = api.readiness()
        problem = None
    except ApiError as exc:
        ready, problem = None, exc
    parts = health(ready)
    model = _face_model(api) if ready is not None else None
    _show_summary(parts)
    if problem is not None:
        ui.show_error(problem)
    lines = [*parts, *([model] if model else [])]
    st.markdown("\n".join(f"- {status_line(s)}" for s in lines))
    if ready is not None and model is None:
        st.caption("Log in as a teacher or an administrator to see the face model here too.")
    st.caption(
        "How many jobs are waiting or running is not something the API reports: Flower, "
        "below, shows them."
    )
    if ready is not None:
        _raw_checks(ready)


def _flower_section() -> None:
    st.subheader("Jobs (Flower)")
    flower = ui.flower_url()
    st.markdown(
        "Flower shows every enrollment and recognition job: waiting, running, done or "
        "failed, and which worker ran it."
    )
    st.link_button("Open Flower", flower, icon=":material/open_in_new:", type="primary")
    st.markdown(
        "Flower asks for its own user name and password (not an account of this app): with "
        "`make run` they are in the file `var/flower-credentials` on the machine that runs "
        "the stack, written as `user:password` (made on the first start); with docker "
        "compose they are the `FLOWER_BASIC_AUTH` value (`user:password`) it was started with."
    )
    st.caption(
        f"Flower's address: {ui.plain(flower, links=True)} (the setting ATTENDANCE\\_FLOWER\\_URL)"
    )


def render() -> None:
    st.title("Monitoring")
    api = ui.client()
    _health_section(api)
    _flower_section()
    st.link_button(
        "API documentation", f"{api.base_url}/api/v1/docs", icon=":material/description:"
    )


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
