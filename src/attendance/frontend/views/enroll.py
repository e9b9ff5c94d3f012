"""Enroll: one student with a few photos, or a whole class from a CSV roster and a zip of photos.

Nothing is enrolled without the student's consent: the one-student form asks who gave it, their
relationship to the student, when, whether the student is a minor, and that a signed form is
held; the roster takes the same as columns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from attendance.domain.consent import FIELDS as CONSENT_FIELDS
from attendance.domain.consent import RELATIONSHIPS, latest_today
from attendance.domain.exports import to_csv
from attendance.domain.schemas import STUDENT_ID_RE, EnrollmentResult, JobView
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError, ConsentForm, Photo, parse
from attendance.frontend.api_client import consent_form as make_consent_form
from attendance.frontend.roster import (
    MAX_ROSTER_MB,
    MAX_ZIP_MB,
    classes_of,
    photo_batches,
    plan_bulk_enrollment,
    roster_class_problems,
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
# The class picker's two choices besides the classes that exist; neither is a valid class id.
NEW_CLASS = "New class…"
NO_CLASS = "No class"
# On the class enrollment: no class for the rows, each names its own.
ROWS_NAME_CLASS = "None: each row names its class"
CLASS_LABELS = {NO_CLASS: "No class (on no register until one is added)"}
# The last class a student was enrolled in during this session: the next form starts with it.
LAST_CLASS_KEY = "enroll.last_class"
# What the API said of the last one-student enrollment's student: their usable photos in all.
USABLE_KEY = "enroll.usable_photos"
# Recognition wants two of a student's photos to agree on a face (ATTENDANCE_MATCH_MIN_PHOTOS):
# with a third, one poor photo does not leave them unrecognisable.
MIN_USABLE_PHOTOS = 3
# The API keeps the last part of a file name, printable, at most this long (web/uploads.py).
MAX_FILE_NAME = 255
_PATH_SEPARATORS = re.compile(r"[/\\]")
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
    class_id: str | None = None
    # The photos of the request until its job has ended; then only the rejected ones' bytes
    # (or None when one cannot be matched), one per entry of ``rejected``, are kept.
    sent: list[Photo] = field(default_factory=list, repr=False)
    rejected_images: list[bytes | None] = field(default_factory=list, repr=False)

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
        return JobOutcome(
            student_id,
            name,
            None,
            state,
            len(photos),
            error=exc.message,
            added=add,
            class_id=class_id,
        )
    return JobOutcome(
        student_id,
        name,
        job.job_id,
        "queued",
        len(photos),
        added=add,
        class_id=class_id,
        sent=list(photos),
    )


def name_kept_by_the_api(file_name: str, position: int) -> str:
    """The name the API gives a photo sent as ``file_name`` at ``position`` in its request: the
    last part of the path, printable, or photo-N when nothing is left."""
    parts = [p for p in _PATH_SEPARATORS.split(file_name) if p not in ("", ".", "..")]
    kept = "".join(ch for ch in (parts[-1] if parts else "") if ch.isprintable()).strip()
    return kept[:MAX_FILE_NAME] or f"photo-{position + 1}"


def rejected_photo_bytes(
    rejected: Sequence[tuple[str, str]], sent: Sequence[Photo]
) -> list[bytes | None]:
    """The bytes of each rejected photo, found among those sent by the name the API kept of
    it; photos of the same name are taken in the order they were sent."""
    taken: set[int] = set()
    found: list[bytes | None] = []
    for filename, _ in rejected:
        match = next(
            (
                i
                for i, (name, _) in enumerate(sent)
                if i not in taken and name_kept_by_the_api(name, i) == filename
            ),
            None,
        )
        if match is not None:
            taken.add(match)
        found.append(None if match is None else sent[match][1])
    return found


def reasons_of_no_usable_photo(message: str, sent: Sequence[Photo]) -> list[tuple[str, str]]:
    """Each photo of a failed enrollment none of whose photos could be used, with the reason
    the API's message gives ("none of the 2 photos could be used (a.jpg: no face found; ...)")
    or, where it cannot be found there, none."""
    listed = message[message.find("(") + 1 :].removesuffix(")").split("; ")
    out = []
    for i, (name, _) in enumerate(sent):
        kept = name_kept_by_the_api(name, i)
        reason = next(
            (item[len(kept) + 2 :] for item in listed if item.startswith(kept + ": ")), ""
        )
        out.append((kept, reason))
    return out


def settle(outcomes: list[JobOutcome], finished: dict[str, JobView | ApiError]) -> None:
    """Fill in each submitted outcome from its finished job (accepted, rejected, error)."""
    for outcome in outcomes:
        if outcome.job_id is not None:
            _settle_one(outcome, finished.get(outcome.job_id))
        if outcome.rejected:
            outcome.rejected_images = rejected_photo_bytes(outcome.rejected, outcome.sent)
        outcome.sent = []  # the session keeps no more photos than it shows


def _settle_one(outcome: JobOutcome, final: JobView | ApiError | None) -> None:
    if isinstance(final, ApiError) or final is None:
        outcome.state = "unknown"
        outcome.error = final.message if final else "not followed"
        return
    outcome.state = final.state
    if final.state == "succeeded" and final.result is not None:
        try:
            result = parse(EnrollmentResult, final.result, "an enrollment result")
        except ApiError as exc:
            outcome.state, outcome.error = "unknown", exc.message
            return
        outcome.accepted = result.accepted_photos
        outcome.rejected = [(r.filename, r.reason) for r in result.rejected]
    elif final.error is not None:
        outcome.error = f"{final.error.message} ({final.error.code})"
        if final.error.code == "no_usable_photo":
            outcome.rejected = reasons_of_no_usable_photo(final.error.message, outcome.sent)


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


def show_outcomes(outcomes: list[JobOutcome], *, summary: bool = True) -> None:
    """The results of some enrollment requests: a line saying how they went (unless the caller
    says it its own way), the table of requests, the photos that could not be used, each
    shown small with why, the students left with too few usable photos, and every failure."""
    if not outcomes:
        return
    already = [o for o in outcomes if o.state == ALREADY]
    jobs = [o for o in outcomes if o.state != ALREADY]
    failed = [o for o in jobs if o.state != "succeeded"]
    if jobs and summary:
        ok = sum(o.state == "succeeded" for o in jobs)
        accepted = sum(o.accepted for o in jobs)
        rejected = sum(len(o.rejected) for o in jobs)
        line = (
            f"{ok} of {len(jobs)} enrollment job{'s' * (len(jobs) != 1)} succeeded: "
            f"{accepted} photo{'s' * (accepted != 1)} accepted, {rejected} rejected."
        )
        fine = not failed and not rejected and not few_usable_photos(outcomes)
        (st.success if fine else st.warning)(line)
    if already:
        st.info(
            "Already enrolled, so not changed: "
            + ", ".join(ui.plain(o.label) for o in already)
            + ". Their photos can be added to them on *Students and model*.",
            icon=":material/info:",
        )
    _results_table(outcomes)
    if summary:
        _too_few_photos_note(outcomes)
    show_rejected_photos(jobs)
    for o in failed:
        # Names, ids and the API's message (which repeats file names) are shown literally.
        st.error(
            f"{ui.plain(o.label)}: {o.state.replace('_', ' ')}: {ui.plain(o.error)}",
            icon=":material/error:",
        )


def _results_table(outcomes: list[JobOutcome]) -> None:
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


def few_usable_photos(outcomes: Sequence[JobOutcome]) -> list[tuple[str, int, int]]:
    """(label, photos used, photos sent) of each newly enrolled student with fewer than
    MIN_USABLE_PHOTOS photos that could be used."""
    used: dict[str, list[int]] = {}
    for o in outcomes:
        if o.state == ALREADY or o.added and o.student_id not in used:
            continue  # photos added to someone enrolled before: their earlier ones count too
        counts = used.setdefault(o.student_id, [0, 0, 0])
        counts[0] += o.accepted
        counts[1] += o.photos
        counts[2] += o.state == "succeeded"
    labels = {o.student_id: o.label for o in outcomes}
    return [
        (labels[sid], accepted, sent)
        for sid, (accepted, sent, succeeded) in used.items()
        if succeeded and accepted < MIN_USABLE_PHOTOS
    ]


def _too_few_photos_note(outcomes: Sequence[JobOutcome]) -> None:
    few = few_usable_photos(outcomes)
    if few:
        st.warning(
            f"Fewer than {MIN_USABLE_PHOTOS} photos could be used, so they may not be recognised "
            "in class photos: "
            + ", ".join(f"{ui.plain(label)}: {used} of {sent}" for label, used, sent in few)
            + ". Add clear photos of their faces on *Students and model*.",
            icon=":material/photo_camera:",
        )


def show_rejected_photos(outcomes: Sequence[JobOutcome]) -> None:
    """Each photo that could not be used, small, with the reason the API gave."""
    shown = [
        (o, name, reason, data)
        for o in outcomes
        for (name, reason), data in zip(o.rejected, o.rejected_images or [None] * len(o.rejected))
    ]
    if not shown:
        return
    several = len({o.student_id for o, *_ in shown}) > 1
    st.markdown(f"**Photo{'s' * (len(shown) != 1)} that could not be used**")
    for o, name, reason, data in shown:
        picture, words = st.columns([1, 4], vertical_alignment="center")
        small = ui.thumbnail(data) if data is not None else None
        if small is not None:
            picture.image(small, width=ui.THUMBNAIL_PX)
        else:
            picture.caption("no preview")
        whose = f" ({ui.plain(o.label)})" if several else ""
        why = ui.plain(reason) if reason else "the reason is in the message below"
        words.markdown(f"**{ui.plain(name)}**{whose}: {why}")


def form_key(name: str) -> str:
    """The key of the one-student form's widget ``name`` in its current generation."""
    return f"enroll.{name}.{st.session_state.get(FORM_GEN_KEY, 0)}"


def default_class(classes: Sequence[str], last: str | None) -> str | None:
    """The class the picker starts at: the one last enrolled into in this session, if it still
    exists, else the only class there is; otherwise none, so that nobody lands in the first
    class of the list by not looking."""
    if last in classes:
        return last
    return classes[0] if len(classes) == 1 else None


def chosen_class(
    choice: str | None, typed: str | None, classes: Sequence[str]
) -> tuple[str | None, str | None]:
    """(the class id, None) from the picker (and the new class typed; None: no class), or
    (None, why the student cannot be sent with it), checked as the API checks a class id."""
    if choice is None:
        return None, f"Choose the student's class, or *{NEW_CLASS}* to make one, or *{NO_CLASS}*."
    if choice == NO_CLASS:
        return None, None
    if choice != NEW_CLASS:
        return choice, None
    name = (typed or "").strip()
    if not name:
        return None, "Type the name of the new class."
    if not STUDENT_ID_RE.fullmatch(name):
        return None, (
            f"“{ui.plain(name)}” cannot be a class name: use 1-64 letters, digits, dots, "
            "dashes or underscores, starting with a letter or a digit (e.g. room-1)."
        )
    if name in classes:
        return name, None
    same = [c for c in classes if c.lower() == name.lower()]
    if same:
        return None, (
            f"There is a class “{ui.plain(same[0])}” already: choose it in the list (capitals "
            "make a different class)."
        )
    return name, None


def _class_picker(classes: list[str]) -> None:
    options = [*classes, NEW_CLASS, NO_CLASS]
    start = default_class(classes, st.session_state.get(LAST_CLASS_KEY))
    choice = st.selectbox(
        "Class",
        options,
        index=None if start is None else options.index(start),
        key=form_key("class_choice"),
        placeholder="Choose a class",
        format_func=lambda option: CLASS_LABELS.get(option, option),
        help="The class the student attends: the register of that class lists them.",
    )
    if choice == NEW_CLASS:
        new_class_box(form_key("new_class"))


def new_class_box(key: str, label: str = "Name of the new class", where=st) -> str:
    """The box a new class's name is typed in, beside a picker's *New class…*."""
    return where.text_input(
        label,
        key=key,
        placeholder="e.g. room-1",
        help="1-64 letters, digits, dots, dashes or underscores",
    )


def _single_tab(api: ApiClient, max_photos: int, classes: list[str]) -> None:
    form, below = st.container(border=True), st.container()
    # The submission is handled before the form is drawn: it then starts a new generation of
    # widgets (new keys), so the form comes back empty and one student's photos can never be
    # sent again with the next student.
    if st.session_state.get(form_key("submit")):
        enrolled_into = _submit_single(api, max_photos, classes, below)
        if enrolled_into and enrolled_into not in classes:
            classes = sorted([*classes, enrolled_into])  # the picker offers it from now on
    with form:
        c1, c2, c3 = st.columns(3)
        c1.text_input(
            "Student id", key=form_key("student_id"), help="1-64 letters, digits, '.', '_' or '-'"
        )
        c2.text_input("Name", key=form_key("name"))
        with c3:
            _class_picker(classes)
        upload_mb = ui.photo_upload_mb(ui.settings())
        files = st.file_uploader(
            "Photos of the student (one face each; several angles help)",
            type=ui.IMAGE_TYPES,
            accept_multiple_files=True,
            key=form_key("photos"),
            max_upload_size=upload_mb,
            help=f"Up to {upload_mb} MB a photo. At least {MIN_USABLE_PHOTOS} clear photos of "
            "the face, facing the camera, help the student be recognised.",
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
            show_student_outcome(outcomes, st.session_state.get(USABLE_KEY))
        note = st.session_state.get(NOTE_KEY)
        if note:
            (st.success if note[0] == "ok" else st.error)(note[1])


def _submit_single(api: ApiClient, max_photos: int, classes: list[str], below) -> str | None:
    """Send the one-student form, unless something is missing (then the form keeps what was
    typed and ``below`` says what); the class the student was enrolled into, if any."""
    files = st.session_state.get(form_key("photos")) or []
    class_id, class_problem = chosen_class(
        st.session_state.get(form_key("class_choice")),
        st.session_state.get(form_key("new_class")),
        classes,
    )
    consent, problem = _consent_from_form()
    if not files:
        problem = "Choose at least one photo of the student."
    elif class_problem:
        problem = class_problem
    if problem:
        below.warning(problem, icon=":material/warning:")
        return None
    student_id = (st.session_state.get(form_key("student_id")) or "").strip()
    name = (st.session_state.get(form_key("name")) or "").strip()
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
    _remember_usable_photos(api, student_id, outcomes)
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
        return None
    st.session_state.pop(PENDING_KEY, None)
    if class_id and any(o.state == "succeeded" for o in outcomes):
        st.session_state[LAST_CLASS_KEY] = class_id
        return class_id
    return None


def _remember_usable_photos(api: ApiClient, student_id: str, outcomes: list[JobOutcome]) -> None:
    """How many usable photos the student has in all, as the API counts them after the jobs."""
    st.session_state.pop(USABLE_KEY, None)
    if any(o.state == "succeeded" for o in outcomes):
        try:
            st.session_state[USABLE_KEY] = api.student(student_id).embeddings
        except ApiError:
            pass  # then this submission's own count is all there is to go on


def student_summary(
    outcomes: Sequence[JobOutcome], usable_in_all: int | None
) -> list[tuple[str, str]]:
    """What people read about one student's enrollment (or photos added to them), as
    ("success" or "warning", Markdown) lines: where they are, how many photos could be used,
    and what to do when they are in no class or have too few usable photos."""
    done = [o for o in outcomes if o.state == "succeeded"]
    if not done:
        return []
    who = ui.plain(done[0].label)
    used = sum(o.accepted for o in done)
    sent = sum(o.photos for o in outcomes if o.state != ALREADY)
    in_all = used if usable_in_all is None else usable_in_all
    added = all(o.added for o in done)
    classless = not added and done[0].class_id is None
    few = in_all < MIN_USABLE_PHOTOS
    # With too few, the warning below gives the count: it is not said twice.
    counted = "" if few else f"{used} of {sent} photo{'s' * (sent != 1)} could be used"
    if added:
        main = f"{counted or 'Photos were added'} for {who}, and the face model was updated."
    else:
        where = f"in {ui.plain(done[0].class_id)}" if done[0].class_id else "in no class"
        said = f": {counted}" if counted else ""
        main = f"{who} is enrolled {where}{said}, and the face model was updated."
    lines = [("warning" if classless or few else "success", main)]
    if classless:
        lines.append(
            (
                "warning",
                f"{who} is in no class, so no register lists them: add them to a class on "
                "*Students and model*.",
            )
        )
    if few:
        more = MIN_USABLE_PHOTOS - in_all
        total = f" ({who} has {in_all} in all)" if in_all != used else ""
        lines.append(
            (
                "warning",
                f"Only {used} of {sent} photo{'s' * (sent != 1)} could be used{total}; add at "
                f"least {more} more clear photo{'s' * (more != 1)} of the face (on *Students "
                "and model*, *Add photos*), or the student may not be recognised.",
            )
        )
    return lines


def show_student_outcome(outcomes: list[JobOutcome], usable_in_all: int | None) -> None:
    """One student's enrollment: said in their terms when it succeeded, else as any other."""
    lines = student_summary(outcomes, usable_in_all)
    for kind, text in lines:
        if kind == "success":
            st.success(text, icon=":material/check_circle:")
        else:
            st.warning(text, icon=":material/warning:")
    show_outcomes(outcomes, summary=not lines)


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
        shown_name = existing.name if existing is not None and not rename else name
        outcomes = run_enrollments(
            api,
            # Named as they are enrolled (the name typed only once they are renamed to it).
            [(sid, shown_name, pending["class_id"], photos)],
            max_photos,
            ui.request_bytes(ui.settings()),
            add=True,
            consents=[pending.get("consent")],
        )
        st.session_state[SINGLE_KEY] = outcomes
        _remember_usable_photos(api, sid, outcomes)
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
        c1, c2 = st.columns(2)
        # A form cannot show the new class's box only once "New class…" is chosen: both are there.
        choice = c1.selectbox(
            "Class for rows without a class_id",
            [ROWS_NAME_CLASS, *classes, NEW_CLASS],
            key="bulk.class_choice",
            help="The class of every student whose row names none.",
        )
        new_class = new_class_box(
            "bulk.new_class", "Name of the new class (with “New class…”)", where=c2
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
        new_allowed = st.checkbox(
            "The roster may create classes that do not exist yet",
            key="bulk.new_allowed",
            help="Left unticked, a class id in the roster that is not a class yet (a typo, "
            "say) stops the enrollment and is named.",
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
    if choice == ROWS_NAME_CLASS:
        class_id, class_problem = None, None
    else:
        class_id, class_problem = chosen_class(choice, new_class, classes)
    if class_problem:
        st.warning(class_problem, icon=":material/warning:")
        return
    plan = plan_bulk_enrollment(roster.getvalue(), archive.getvalue(), class_id)
    # The chosen class, new or not, was chosen on purpose: only the rows' own are checked.
    stopping = roster_class_problems(
        plan.entries, [*classes, *([class_id] if class_id else [])], new_allowed
    )
    if stopping:
        st.warning(
            "Nothing was enrolled: " + " ".join(ui.plain(p) for p in stopping),
            icon=":material/warning:",
        )
        return
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
        f"Each photo should show only the student's face, clear and facing the camera; at "
        f"least {MIN_USABLE_PHOTOS} such photos help them be recognised. More than "
        f"{max_photos} photos of one student are sent in several parts."
    )
    single, bulk = st.tabs(["One student", "Whole class (CSV + zip)"])
    with single:
        _single_tab(api, max_photos, classes)
    with bulk:
        _bulk_tab(api, max_photos, classes)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
