"""Enroll: one student with a few photos, or a whole class from a CSV roster and a zip of photos.

Nothing is enrolled without the student's consent: the one-student form asks who gave it, their
relationship to the student, when, whether the student is a minor, and that a signed form is
held; the roster takes the same as columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from attendance.domain.consent import FIELDS as CONSENT_FIELDS
from attendance.domain.consent import RELATIONSHIPS, latest_today
from attendance.domain.exports import to_csv
from attendance.domain.schemas import EnrollmentResult, JobView
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError, ConsentForm, Photo, parse
from attendance.frontend.api_client import consent_form as make_consent_form
from attendance.frontend.roster import (
    MAX_ROSTER_MB,
    MAX_ZIP_MB,
    classes_of,
    photo_batches,
    plan_bulk_enrollment,
)

SINGLE_KEY = "enroll.single_result"
BULK_KEY = "enroll.bulk_result"
# How many times the one-student form was submitted: part of its widgets' keys, so that every
# submission gets a new, empty form (Streamlit cannot otherwise empty a file uploader).
FORM_GEN_KEY = "enroll.form_generation"
CSV_FIELDS = ["student_id", "name", "class_id", *CONSENT_FIELDS]
CSV_EXAMPLE = to_csv(
    [
        {
            "student_id": "s001",
            "name": "Ada Lovelace",
            "class_id": "room-1",
            "consent_given_by": "Anne Lovelace",
            "consent_relationship": "parent",
            "consent_given_on": "2026-09-01",
            "minor": "true",
        },
        {
            "student_id": "s002",
            "name": "Alan Turing",
            "class_id": "room-1",
            "consent_given_by": "Alan Turing",
            "consent_relationship": "self",
            "consent_given_on": "2026-09-02",
            "minor": "false",
        },
    ],
    CSV_FIELDS,
)


ALREADY = "already_enrolled"
# The last one-student submission whose id was taken: its photos, kept for the choice to add
# them to that student instead.
PENDING_KEY = "enroll.pending_existing"
NOTE_KEY = "enroll.note"
# (student_id, name, class_id, all of the student's photos)
StudentPhotos = tuple[str, str, str | None, Sequence[Photo]]


@dataclass
class JobOutcome:
    """One enrollment request and how it ended, as the results table shows it."""

    student_id: str
    name: str
    job_id: str | None
    state: str  # queued, succeeded, failed, unknown, not_submitted or already_enrolled
    photos: int
    accepted: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    added: bool = False  # photos added to a student enrolled already

    @property
    def label(self) -> str:
        if self.name and self.student_id:
            return f"{self.name} ({self.student_id})"
        return self.name or self.student_id or "(no student id)"


def submit_one(
    api: ApiClient,
    student_id: str,
    name: str,
    class_id: str | None,
    photos: Sequence[Photo],
    *,
    add: bool = False,
    consent: ConsentForm | None = None,
) -> JobOutcome:
    """Queue one request: a new student, or (``add``) photos for an enrolled one, with the
    student's consent (None: one must be on record). A refusal is an outcome, not a stop; an
    id that is taken (409 student_exists) is ``already_enrolled``."""
    extra = {"consent": consent} if consent is not None else {}
    try:
        job = (
            api.add_photos(student_id, photos, class_id, **extra)
            if add
            else api.enroll(student_id, name, class_id, photos, **extra)
        )
    except ApiError as exc:
        state = ALREADY if exc.student_exists and not add else "not_submitted"
        return JobOutcome(student_id, name, None, state, len(photos), error=exc.message, added=add)
    return JobOutcome(student_id, name, job.job_id, "queued", len(photos), added=add)


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


def _follow(api: ApiClient, outcomes: list[JobOutcome]) -> None:
    """A progress bar per queued job until all have ended; then their outcomes filled in."""
    queued = [
        (f"{o.label}, {o.photos} photo{'s' * (o.photos != 1)}", o.job_id)
        for o in outcomes
        if o.state == "queued" and o.job_id
    ]
    settle(outcomes, ui.wait_for_jobs(api, queued) if queued else {})


def run_enrollments(
    api: ApiClient,
    students: Sequence[StudentPhotos],
    max_photos: int,
    max_bytes: int | None = None,
    *,
    add: bool = False,
    consents: Sequence[ConsentForm | None] | None = None,
) -> list[JobOutcome]:
    """Enroll each student (or, with ``add``, add photos to each enrolled one), following every
    job with a progress bar; the outcomes, in order. ``consents`` (one per student, None: on
    record already) goes with each student's first request.

    A student with more photos than one request takes is sent as several requests: the first
    goes with everyone else's; the rest are added to the student (POST .../photos) once that
    first job has succeeded, since only then does the student exist. When it did not succeed
    (or the id is enrolled already), the rest are not sent.
    """
    batches = [photo_batches(photos, max_photos, max_bytes) for *_, photos in students]
    given = list(consents) if consents is not None else [None] * len(students)
    first: list[tuple[int, JobOutcome]] = [
        (i, submit_one(api, sid, name, class_id, batches[i][0], add=add, consent=given[i]))
        for i, (sid, name, class_id, _) in enumerate(students)
        if batches[i]
    ]
    _follow(api, [o for _, o in first])
    outcomes: list[JobOutcome] = []
    later: list[JobOutcome] = []
    for i, outcome in first:
        sid, name, class_id, photos = students[i]
        rest = batches[i][1:]
        outcomes.append(outcome)
        if outcome.state == ALREADY:
            outcome.photos = len(photos)  # none of them was sent
        elif rest and outcome.state != "succeeded":
            left = sum(len(part) for part in rest)
            outcome.error = (
                f"{outcome.error or outcome.state}; the other {left} "
                f"photo{'s' * (left != 1)} were not sent"
            )
        elif rest:
            for part in rest:
                more = submit_one(api, sid, name, class_id, part, add=True)
                outcomes.append(more)
                later.append(more)
    _follow(api, later)
    return outcomes


def show_outcomes(outcomes: list[JobOutcome]) -> None:
    if not outcomes:
        return
    already = [o for o in outcomes if o.state == ALREADY]
    jobs = [o for o in outcomes if o.state != ALREADY]
    ok = sum(o.state == "succeeded" for o in jobs)
    accepted = sum(o.accepted for o in jobs)
    rejected = [(o, f, r) for o in jobs for f, r in o.rejected]
    failed = [o for o in jobs if o.state != "succeeded"]
    if jobs:
        summary = (
            f"{ok} of {len(jobs)} enrollment job{'s' * (len(jobs) != 1)} succeeded: "
            f"{accepted} photo{'s' * (accepted != 1)} accepted, "
            f"{len(rejected)} rejected."
        )
        (st.success if not failed and not rejected else st.warning)(summary)
    if already:
        st.info(
            "Already enrolled, so not changed: "
            + ", ".join(ui.plain(o.label) for o in already)
            + ". Their photos can be added to them on *Students and model*.",
            icon=":material/info:",
        )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "student_id": o.student_id,
                    "name": o.name,
                    "state": "already enrolled" if o.state == ALREADY else o.state,
                    "photos": o.photos,
                    "accepted": o.accepted,
                    "rejected": len(o.rejected),
                    "job_id": o.job_id or "",
                }
                for o in outcomes
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if rejected:
        st.markdown("**Rejected photos**")
        st.dataframe(
            pd.DataFrame(
                [{"student_id": o.student_id, "photo": f, "reason": r} for o, f, r in rejected]
            ),
            hide_index=True,
            width="stretch",
        )
    for o in failed:
        # Names, ids and the API's message (which repeats file names) are shown literally.
        st.error(
            f"{ui.plain(o.label)}: {o.state.replace('_', ' ')}: {ui.plain(o.error)}",
            icon=":material/error:",
        )


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
        consent, problem = _consent_from_form()
        if not files:
            below.warning("Choose at least one photo of the student.", icon=":material/warning:")
        elif problem:
            below.warning(problem, icon=":material/warning:")
        else:
            student_id = (st.session_state.get(form_key("student_id")) or "").strip()
            name = (st.session_state.get(form_key("name")) or "").strip()
            class_id = (st.session_state.get(form_key("class_id")) or "").strip() or None
            photos = [(f.name, f.getvalue()) for f in files]
            st.session_state[FORM_GEN_KEY] = st.session_state.get(FORM_GEN_KEY, 0) + 1
            st.session_state.pop(NOTE_KEY, None)
            with below:
                outcomes = run_enrollments(
                    api,
                    [(student_id, name, class_id, photos)],
                    max_photos,
                    ui.request_bytes(ui.settings()),
                    consents=[consent],
                )
            st.session_state[SINGLE_KEY] = outcomes
            if outcomes and outcomes[0].state == ALREADY:
                # Nothing was sent: keep the photos for an explicit choice to add them.
                st.session_state[PENDING_KEY] = {
                    "student_id": student_id,
                    "name": name,
                    "class_id": class_id,
                    "photos": photos,
                    "consent": consent,
                    "message": outcomes[0].error,
                }
            else:
                st.session_state.pop(PENDING_KEY, None)
    with form:
        c1, c2, c3 = st.columns(3)
        c1.text_input(
            "Student id", key=form_key("student_id"), help="1-64 letters, digits, '.', '_' or '-'"
        )
        c2.text_input("Name", key=form_key("name"))
        c3.text_input(
            "Class",
            key=form_key("class_id"),
            placeholder=f"e.g. {classes[0] if classes else 'room-1'}",
            help="The class the student attends; known classes: "
            + (", ".join(classes) or "none yet"),
        )
        files = st.file_uploader(
            "Photos of the student (one face each; several angles help)",
            type=ui.IMAGE_TYPES,
            accept_multiple_files=True,
            key=form_key("photos"),
            max_upload_size=ui.photo_upload_mb(ui.settings()),
        )
        ui.show_thumbnails([(f.name, f.getvalue()) for f in files or []])
        _consent_fields()
        st.button(
            "Enroll student", type="primary", icon=":material/person_add:", key=form_key("submit")
        )
    with below:
        outcomes = st.session_state.get(SINGLE_KEY, [])
        if st.session_state.get(PENDING_KEY) and outcomes and outcomes[0].state == ALREADY:
            _add_to_existing(api, max_photos)
        else:
            show_outcomes(outcomes)
        note = st.session_state.get(NOTE_KEY)
        if note:
            (st.success if note[0] == "ok" else st.error)(note[1])


def _consent_fields() -> None:
    """The consent widgets of the one-student form: a face is enrolled only with it."""
    st.markdown("**Consent to hold the student's face data**")
    c1, c2, c3 = st.columns(3)
    c1.text_input(
        "Consent given by",
        key=form_key("consent_given_by"),
        help="The name of who signed the consent form",
    )
    c2.selectbox(
        "Their relationship to the student",
        RELATIONSHIPS,
        index=RELATIONSHIPS.index("parent"),
        key=form_key("consent_relationship"),
    )
    c3.date_input(
        "Consent given on",
        value=dt.date.today(),
        max_value=latest_today(),
        key=form_key("consent_given_on"),
    )
    st.checkbox("The student is a minor", value=True, key=form_key("minor"))
    st.checkbox("A signed consent form is held", key=form_key("form_held"))


def _consent_from_form() -> tuple[ConsentForm | None, str | None]:
    """The one-student form's consent, or why it cannot be sent (the API checks it again)."""
    given_by = (st.session_state.get(form_key("consent_given_by")) or "").strip()
    relationship = st.session_state.get(form_key("consent_relationship")) or "parent"
    given_on = st.session_state.get(form_key("consent_given_on")) or dt.date.today()
    minor = bool(st.session_state.get(form_key("minor"), True))
    if not given_by:
        return None, "Say who gave the consent to hold the student's face data."
    if minor and relationship == "self":
        return None, "A minor's consent must be given by a parent or guardian."
    if not st.session_state.get(form_key("form_held")):
        return None, "Tick that a signed consent form is held before enrolling the student."
    return make_consent_form(given_by, relationship, given_on, minor), None


def _add_to_existing(api: ApiClient, max_photos: int) -> None:
    """The API refused a new student because the id is taken: say so in its words, and offer
    to add the photos to that student instead (or to drop them)."""
    pending = st.session_state[PENDING_KEY]
    sid, name, photos = pending["student_id"], pending["name"], pending["photos"]
    try:
        existing = api.student(sid)
    except ApiError:
        existing = None  # e.g. in a class this token may not see: the API's message says enough
    st.warning(ui.plain(pending["message"]), icon=":material/person_alert:")
    with st.container(border=True):
        who = f"{ui.plain(existing.name)} ({ui.plain(sid)})" if existing else ui.plain(sid)
        n = len(photos)
        these = "this photo" if n == 1 else f"these {n} photos"
        st.markdown(f"{who} is enrolled already. Add {these} to them instead?")
        ui.show_thumbnails(photos, "not sent yet")
        rename = False
        if existing is not None and name and existing.name != name:
            rename = st.checkbox(
                f"Also rename them to {ui.plain(name)}", key="enroll.pending_rename"
            )
        c1, c2 = st.columns([1, 1])
        add = c1.button(
            f"Add the photo{'s' * (n != 1)} to {ui.plain(sid)}",
            type="primary",
            icon=":material/add_photo_alternate:",
            key="enroll.pending_add",
        )
        cancel = c2.button("Do not add them", key="enroll.pending_cancel")
    if cancel:
        st.session_state.pop(PENDING_KEY, None)
        st.session_state.pop(SINGLE_KEY, None)
        st.rerun()
    if add:
        st.session_state.pop(PENDING_KEY, None)
        outcomes = run_enrollments(
            api,
            [(sid, name, pending["class_id"], photos)],
            max_photos,
            ui.request_bytes(ui.settings()),
            add=True,
            consents=[pending.get("consent")],
        )
        st.session_state[SINGLE_KEY] = outcomes
        if rename:
            try:
                api.rename(sid, name)
                st.session_state[NOTE_KEY] = ("ok", f"Renamed {ui.plain(sid)} to {ui.plain(name)}.")
            except ApiError as exc:
                st.session_state[NOTE_KEY] = (
                    "error",
                    "Could not rename them: " + ui.plain(exc.message),
                )
        st.rerun()


def _bulk_tab(api: ApiClient, max_photos: int, classes: list[str]) -> None:
    st.markdown(
        "A CSV roster with the columns `student_id,name[,class_id]` (a header row is optional) "
        "and a zip of photos named by student id: `s001.jpg`, `s001_2.jpg` or `s001/any.jpg`.\n\n"
        "Each student's consent to hold their face data goes in the columns after those: "
        "`consent_given_by` (who signed it), `consent_relationship` (`parent`, `guardian`, or "
        "`self` for an adult student), `consent_given_on` (`YYYY-MM-DD`) and `minor` (`true` "
        "or `false`, default `true`: a minor's consent comes from a parent or guardian). A row "
        "without them is enrolled only if the student's consent is on record already "
        "(*Students and model*)."
    )
    st.download_button(
        "Example roster CSV",
        CSV_EXAMPLE,
        file_name="roster-example.csv",
        mime="text/csv",
        icon=":material/download:",
    )
    # Emptied after every submission: the same roster is not sent twice by accident.
    with st.form("enroll_bulk", clear_on_submit=True):
        class_id = st.text_input(
            "Class for rows without a class_id",
            key="bulk.class_id",
            placeholder=f"e.g. {classes[0] if classes else 'room-1'}",
        )
        c1, c2 = st.columns(2)
        roster = c1.file_uploader(
            "Roster (CSV)", type=["csv", "txt"], key="bulk.csv", max_upload_size=MAX_ROSTER_MB
        )
        archive = c2.file_uploader(
            "Photos (zip)", type=["zip"], key="bulk.zip", max_upload_size=MAX_ZIP_MB
        )
        forms_held = st.checkbox(
            "A signed consent form is held for every student whose consent is in the roster",
            key="bulk.forms_held",
        )
        submitted = st.form_submit_button(
            "Enroll class", type="primary", icon=":material/group_add:"
        )
    if not submitted:
        show_outcomes(st.session_state.get(BULK_KEY, []))
        return
    if roster is None or archive is None:
        st.warning("Choose both the roster CSV and the zip of photos.", icon=":material/warning:")
        return
    if not forms_held:
        st.warning(
            "Tick that a signed consent form is held for the students before enrolling them.",
            icon=":material/warning:",
        )
        return
    plan = plan_bulk_enrollment(roster.getvalue(), archive.getvalue(), class_id.strip() or None)
    if plan.problems:
        with st.expander(
            f"{len(plan.problems)} problem(s) in the roster or the zip: these were skipped",
            expanded=True,
        ):
            for problem in plan.problems:
                st.markdown(f"- {ui.plain(problem)}")  # they quote the CSV and file names
    if not plan.entries:
        st.error("Nothing to enroll: no roster row has a matching photo.", icon=":material/error:")
        st.session_state.pop(BULK_KEY, None)
        return
    st.session_state[BULK_KEY] = run_enrollments(
        api,
        [(e.student_id, e.name, e.class_id, e.photos) for e in plan.entries],
        max_photos,
        ui.request_bytes(ui.settings()),
        consents=[e.consent for e in plan.entries],
    )
    show_outcomes(st.session_state[BULK_KEY])


def render() -> None:
    st.title("Enroll")
    api = ui.logged_in_client()
    students = ui.fetch("Could not load the students", api.students)
    classes = classes_of(students)
    max_photos = ui.settings().max_enroll_photos
    st.caption(
        f"Each photo should show only the student's face. More than {max_photos} photos "
        "of one student are sent as several requests."
    )
    single, bulk = st.tabs(["One student", "Whole class (CSV + zip)"])
    with single:
        _single_tab(api, max_photos, classes)
    with bulk:
        _bulk_tab(api, max_photos, classes)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
