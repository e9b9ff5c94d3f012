"""Enroll: one student with a few photos, or a whole class from a CSV roster and a zip of photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import streamlit as st

from common.exports import to_csv
from common.schemas import EnrollmentResult, JobView
from frontend import ui
from frontend.api_client import ApiClient, ApiError, Photo, parse
from frontend.roster import BulkPlan, classes_of, photo_batches, plan_bulk_enrollment

SINGLE_KEY = "enroll.single_result"
BULK_KEY = "enroll.bulk_result"
# How many times the one-student form was submitted: part of its widgets' keys, so that every
# submission gets a new, empty form (Streamlit cannot otherwise empty a file uploader).
FORM_GEN_KEY = "enroll.form_generation"
CSV_FIELDS = ["student_id", "name", "class_id"]
CSV_EXAMPLE = to_csv([
    {"student_id": "s001", "name": "Ada Lovelace", "class_id": "room-1"},
    {"student_id": "s002", "name": "Alan Turing", "class_id": "room-1"},
], CSV_FIELDS)


@dataclass
class JobOutcome:
    """One enrollment request and how it ended, as the results table shows it."""

    student_id: str
    name: str
    job_id: str | None
    state: str  # succeeded, failed, or not_submitted
    photos: int
    accepted: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        if self.name and self.student_id:
            return f"{self.name} ({self.student_id})"
        return self.name or self.student_id or "(no student id)"


def submit_enrollments(
    api: ApiClient, requests_: Sequence[tuple[str, str, str | None, Sequence[Photo]]]
) -> list[JobOutcome]:
    """Queue each (student_id, name, class_id, photos); a refusal is an outcome, not a stop."""
    outcomes = []
    for student_id, name, class_id, photos in requests_:
        try:
            job_id = api.enroll(student_id, name, class_id, photos).job_id
        except ApiError as exc:
            outcomes.append(JobOutcome(student_id, name, None, "not_submitted", len(photos),
                                       error=exc.message))
            continue
        outcomes.append(JobOutcome(student_id, name, job_id, "queued", len(photos)))
    return outcomes


def settle(outcomes: list[JobOutcome], finished: dict[str, JobView | ApiError]) -> None:
    """Fill in each submitted outcome from its finished job (accepted, rejected, error)."""
    for outcome in outcomes:
        if outcome.job_id is None:
            continue
        final = finished.get(outcome.job_id)
        if isinstance(final, ApiError) or final is None:
            outcome.state = "unknown"
            outcome.error = final.message if final else "not followed"
            continue
        outcome.state = final.state
        if final.state == "succeeded" and final.result is not None:
            try:
                result = parse(EnrollmentResult, final.result, "an enrollment result")
            except ApiError as exc:
                outcome.state, outcome.error = "unknown", exc.message
                continue
            outcome.accepted = result.accepted_photos
            outcome.rejected = [(r.filename, r.reason) for r in result.rejected]
        elif final.error is not None:
            outcome.error = f"{final.error.message} ({final.error.code})"


def run_enrollments(
    api: ApiClient, requests_: Sequence[tuple[str, str, str | None, Sequence[Photo]]]
) -> list[JobOutcome]:
    """Submit, show a progress bar per job until all are done, and return the outcomes."""
    outcomes = submit_enrollments(api, requests_)
    submitted = [(f"{o.label}, {o.photos} photo{'s' * (o.photos != 1)}", o.job_id)
                 for o in outcomes if o.job_id]
    finished = ui.wait_for_jobs(api, submitted) if submitted else {}
    settle(outcomes, finished)
    return outcomes


def single_requests(
    student_id: str, name: str, class_id: str | None, photos: Sequence[Photo], max_photos: int,
    max_bytes: int | None = None,
) -> list[tuple[str, str, str | None, Sequence[Photo]]]:
    return [(student_id, name, class_id, part)
            for part in photo_batches(photos, max_photos, max_bytes)]


def bulk_requests(
    plan: BulkPlan, max_photos: int, max_bytes: int | None = None
) -> list[tuple[str, str, str | None, Sequence[Photo]]]:
    return [(e.student_id, e.name, e.class_id, part)
            for e, part in plan.jobs(max_photos, max_bytes)]


def show_outcomes(outcomes: list[JobOutcome]) -> None:
    if not outcomes:
        return
    ok = sum(o.state == "succeeded" for o in outcomes)
    accepted = sum(o.accepted for o in outcomes)
    rejected = [(o, f, r) for o in outcomes for f, r in o.rejected]
    failed = [o for o in outcomes if o.state != "succeeded"]
    summary = (f"{ok} of {len(outcomes)} enrollment job{'s' * (len(outcomes) != 1)} succeeded: "
               f"{accepted} photo{'s' * (accepted != 1)} accepted, {len(rejected)} rejected.")
    (st.success if not failed and not rejected else st.warning)(summary)
    st.dataframe(
        pd.DataFrame([{
            "student_id": o.student_id, "name": o.name, "state": o.state, "photos": o.photos,
            "accepted": o.accepted, "rejected": len(o.rejected), "job_id": o.job_id or "",
        } for o in outcomes]),
        hide_index=True, width="stretch",
    )
    if rejected:
        st.markdown("**Rejected photos**")
        st.dataframe(
            pd.DataFrame([{"student_id": o.student_id, "photo": f, "reason": r}
                          for o, f, r in rejected]),
            hide_index=True, width="stretch",
        )
    for o in failed:
        # Names, ids and the API's message (which repeats file names) are shown literally.
        st.error(f"{ui.plain(o.label)}: {o.state.replace('_', ' ')}: {ui.plain(o.error)}",
                 icon=":material/error:")


def form_key(name: str) -> str:
    """The key of the one-student form's widget ``name`` in its current generation."""
    return f"enroll.{name}.{st.session_state.get(FORM_GEN_KEY, 0)}"


def _single_tab(api: ApiClient, max_photos: int, classes: list[str]) -> None:
    form, below = st.container(border=True), st.container()
    # The submission is handled before the form is drawn: it then starts a new generation of
    # widgets (new keys), so the form comes back empty and one student's photos can never be
    # sent again with the next student.
    if st.session_state.get(form_key("submit")):
        files = st.session_state.get(form_key("photos")) or []
        if not files:
            below.warning("Choose at least one photo of the student.", icon=":material/warning:")
        else:
            student_id = (st.session_state.get(form_key("student_id")) or "").strip()
            name = (st.session_state.get(form_key("name")) or "").strip()
            class_id = (st.session_state.get(form_key("class_id")) or "").strip() or None
            photos = [(f.name, f.getvalue()) for f in files]
            st.session_state[FORM_GEN_KEY] = st.session_state.get(FORM_GEN_KEY, 0) + 1
            with below:
                st.session_state[SINGLE_KEY] = run_enrollments(api, single_requests(
                    student_id, name, class_id, photos, max_photos,
                    ui.request_bytes(ui.settings()),
                ))
    with form:
        c1, c2, c3 = st.columns(3)
        c1.text_input("Student id", key=form_key("student_id"),
                      help="1-64 letters, digits, '.', '_' or '-'")
        c2.text_input("Name", key=form_key("name"))
        c3.text_input("Class", key=form_key("class_id"),
                      placeholder=f"e.g. {classes[0] if classes else 'room-1'}",
                      help="The class the student attends; known classes: "
                           + (", ".join(classes) or "none yet"))
        files = st.file_uploader(
            "Photos of the student (one face each; several angles help)", type=ui.IMAGE_TYPES,
            accept_multiple_files=True, key=form_key("photos"),
        )
        ui.show_thumbnails([(f.name, f.getvalue()) for f in files or []])
        st.button("Enroll student", type="primary", icon=":material/person_add:",
                  key=form_key("submit"))
    with below:
        show_outcomes(st.session_state.get(SINGLE_KEY, []))


def _bulk_tab(api: ApiClient, max_photos: int, classes: list[str]) -> None:
    st.markdown(
        "A CSV roster with the columns `student_id,name[,class_id]` (a header row is optional) "
        "and a zip of photos named by student id: `s001.jpg`, `s001_2.jpg` or `s001/any.jpg`."
    )
    st.download_button("Example roster CSV", CSV_EXAMPLE, file_name="roster-example.csv",
                       mime="text/csv", icon=":material/download:")
    # Emptied after every submission: the same roster is not sent twice by accident.
    with st.form("enroll_bulk", clear_on_submit=True):
        class_id = st.text_input("Class for rows without a class_id", key="bulk.class_id",
                                 placeholder=f"e.g. {classes[0] if classes else 'room-1'}")
        c1, c2 = st.columns(2)
        roster = c1.file_uploader("Roster (CSV)", type=["csv", "txt"], key="bulk.csv")
        archive = c2.file_uploader("Photos (zip)", type=["zip"], key="bulk.zip")
        submitted = st.form_submit_button("Enroll class", type="primary",
                                          icon=":material/group_add:")
    if not submitted:
        show_outcomes(st.session_state.get(BULK_KEY, []))
        return
    if roster is None or archive is None:
        st.warning("Choose both the roster CSV and the zip of photos.", icon=":material/warning:")
        return
    plan = plan_bulk_enrollment(roster.getvalue(), archive.getvalue(), class_id.strip() or None)
    if plan.problems:
        with st.expander(f"{len(plan.problems)} problem(s) in the roster or the zip: "
                         "these were skipped", expanded=True):
            for problem in plan.problems:
                st.markdown(f"- {ui.plain(problem)}")  # they quote the CSV and file names
    if not plan.entries:
        st.error("Nothing to enroll: no roster row has a matching photo.", icon=":material/error:")
        st.session_state.pop(BULK_KEY, None)
        return
    st.session_state[BULK_KEY] = run_enrollments(
        api, bulk_requests(plan, max_photos, ui.request_bytes(ui.settings())))
    show_outcomes(st.session_state[BULK_KEY])


def render() -> None:
    st.title("Enroll")
    api = ui.logged_in_client()
    students = ui.fetch("Could not load the students", api.students)
    classes = classes_of(students)
    max_photos = ui.settings().max_enroll_photos
    st.caption(f"Each photo should show only the student's face. More than {max_photos} photos "
               "of one student are sent as several requests.")
    single, bulk = st.tabs(["One student", "Whole class (CSV + zip)"])
    with single:
        _single_tab(api, max_photos, classes)
    with bulk:
        _bulk_tab(api, max_photos, classes)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
