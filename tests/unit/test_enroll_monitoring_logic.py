"""The Enroll and Monitoring pages' pure parts: the class picker's choice, matching the photos an
enrollment rejected to those sent, what is said of one student's enrollment, the health
summary's words, and the Flower address setting."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from attendance.domain.schemas import ModelInfo
from attendance.frontend.settings import FrontendSettings
from attendance.frontend.views import monitoring
from attendance.frontend.views.enroll import (
    ALREADY,
    NEW_CLASS,
    NO_CLASS,
    JobOutcome,
    chosen_class,
    default_class,
    few_usable_photos,
    name_kept_by_the_api,
    reasons_of_no_usable_photo,
    rejected_photo_bytes,
    student_summary,
)


def shown(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What a person reads of (kind, Markdown) lines: the escapes of names undone."""
    return [(kind, re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)) for kind, text in lines]


# --- the class picker ---------------------------------------------------------------------------


def test_the_picker_starts_at_no_class_unless_there_is_one_or_one_was_used():
    assert default_class(["room-1", "room-2"], None) is None
    assert default_class(["room-2"], None) == "room-2"
    assert default_class(["room-1", "room-2"], "room-2") == "room-2"
    # A class used earlier that is gone (or never came to be) is not the default.
    assert default_class(["room-1", "room-2"], "room-9") is None
    assert default_class([], None) is None


def test_a_class_must_be_chosen_and_a_new_one_valid():
    classes = ["room-1", "Room-B"]
    assert chosen_class("room-1", None, classes) == ("room-1", None)
    assert chosen_class(NO_CLASS, None, classes) == (None, None)
    assert chosen_class(NEW_CLASS, "  room-2 ", classes) == ("room-2", None)
    # Typing a class that exists is that class.
    assert chosen_class(NEW_CLASS, "room-1", classes) == ("room-1", None)
    nothing, problem = chosen_class(None, None, classes)
    assert nothing is None and problem.startswith("Choose the student's class")
    assert chosen_class(NEW_CLASS, " ", classes)[1] == "Type the name of the new class."
    for bad in ("room 1", "-room", "a" * 65, "../x", "room/1"):
        class_id, problem = chosen_class(NEW_CLASS, bad, classes)
        assert class_id is None and "cannot be a class name" in problem, bad
    # The same letters in other capitals would be another class: a typo, most likely.
    class_id, problem = chosen_class(NEW_CLASS, "room-b", classes)
    assert class_id is None and "There is a class “Room\\-B” already" in problem


# --- rejected photos ----------------------------------------------------------------------------


def test_the_name_the_api_keeps_of_a_file_name():
    assert name_kept_by_the_api("face.jpg", 0) == "face.jpg"
    assert name_kept_by_the_api("class/s001/face.jpg", 0) == "face.jpg"
    assert name_kept_by_the_api("C:\\photos\\face.jpg", 0) == "face.jpg"
    assert name_kept_by_the_api("", 2) == "photo-3"
    assert name_kept_by_the_api("x" * 300, 0) == "x" * 255


def test_rejected_photos_are_matched_to_those_sent_by_name_then_order():
    sent = [("a.jpg", b"A1"), ("b.jpg", b"B"), ("a.jpg", b"A2"), ("", b"N")]
    rejected = [("a.jpg", "no face found"), ("a.jpg", "2 faces found"), ("photo-4", "blurred")]
    assert rejected_photo_bytes(rejected, sent) == [b"A1", b"A2", b"N"]
    assert rejected_photo_bytes([("gone.jpg", "x")], sent) == [None]


def test_a_failed_enrollments_photos_get_the_reasons_of_its_message():
    sent = [("wall.png", b"w"), ("dir/two.jpg", b"t"), ("odd.jpg", b"o")]
    message = (
        "none of the 3 photos could be used (wall.png: no face found; two.jpg: 2 faces found; "
        "a photo of the same name elsewhere: x)"
    )
    assert reasons_of_no_usable_photo(message, sent) == [
        ("wall.png", "no face found"),
        ("two.jpg", "2 faces found"),
        ("odd.jpg", ""),
    ]


# --- one student's enrollment, in words ---------------------------------------------------------


def outcome(state="succeeded", accepted=2, photos=6, class_id="room-1", added=False):
    return JobOutcome(
        "s1", "Ann", "0" * 32, state, photos, accepted=accepted, class_id=class_id, added=added
    )


def test_fewer_than_three_usable_photos_is_a_warning_saying_how_many_more():
    lines = shown(student_summary([outcome(accepted=2, photos=6)], usable_in_all=2))
    assert lines[0] == (
        "warning",
        "Ann (s1) is enrolled in room-1, and the face model was updated.",
    )
    kind, text = lines[1]
    assert kind == "warning"
    assert text.startswith(
        "Only 2 of 6 photos could be used; add at least 1 more clear photo of the face"
    )


def test_enough_usable_photos_in_a_class_is_a_success():
    assert shown(student_summary([outcome(accepted=3, photos=4)], usable_in_all=3)) == [
        (
            "success",
            "Ann (s1) is enrolled in room-1: 3 of 4 photos could be used, and the face model "
            "was updated.",
        )
    ]


def test_a_student_in_no_class_is_never_a_success():
    lines = shown(student_summary([outcome(accepted=4, photos=4, class_id=None)], 4))
    assert [kind for kind, _ in lines] == ["warning", "warning"]
    assert "enrolled in no class" in lines[0][1]
    assert lines[1][1].startswith("Ann (s1) is in no class, so no register lists them")


def test_photos_added_count_the_students_earlier_ones():
    lines = shown(student_summary([outcome(accepted=1, photos=1, added=True)], 2))
    assert lines[0] == (
        "warning",
        "Photos were added for Ann (s1), and the face model was updated.",
    )
    assert lines[1][1].startswith(
        "Only 1 of 1 photo could be used (Ann (s1) has 2 in all); add at least 1 more clear "
        "photo of the face"
    )
    # Enough with the earlier ones: nothing to add.
    assert [k for k, _ in student_summary([outcome(accepted=1, added=True)], 5)] == ["success"]


def test_nothing_is_said_in_these_words_of_a_failed_or_refused_enrollment():
    assert student_summary([outcome(state="failed", accepted=0)], None) == []
    assert student_summary([outcome(state=ALREADY, accepted=0)], None) == []


def test_students_of_a_class_with_too_few_usable_photos():
    outcomes = [
        outcome(accepted=1, photos=2),  # s1: first part
        outcome(accepted=1, photos=1, added=True),  # s1: the rest of their photos
        JobOutcome("s2", "Bo", "1" * 32, "succeeded", 5, accepted=5),
        JobOutcome("s3", "Cy", "2" * 32, "failed", 2),
        JobOutcome("s4", "Di", None, ALREADY, 2),
    ]
    assert few_usable_photos(outcomes) == [("Ann (s1)", 2, 3)]


# --- the Monitoring page's words ----------------------------------------------------------------

READY = {
    "status": "ready",
    "checks": {"redis": "ok", "blob_store": "ok", "records": "ok", "workers": "ok"},
    "workers": [{"name": "w1@h", "queues": ["cpu"], "device": "cpu", "engine": "openvino"}],
}


def test_a_ready_system_in_words():
    parts = monitoring.health(READY)
    assert [(p.part, p.state) for p in parts] == [
        ("The API", "working"),
        ("The job queue (Redis)", "working"),
        ("The photo store", "working"),
        ("The records (students, registers, accounts)", "working"),
        ("The workers, which read the photos", "working"),
    ]
    assert parts[-1].words == "1 worker answers"
    kind, sentence = monitoring.summary(parts)
    assert kind == "ok" and sentence.startswith("Everything is working") and "1 worker" in sentence


def test_a_part_that_fails_is_named_with_the_apis_reason():
    ready = {
        "status": "not_ready",
        "checks": {
            "redis": "ok",
            "blob_store": "not writable",
            "records": "ok",
            "workers": "no worker answered the ping",
        },
        "workers": [],
    }
    parts = {p.part: p for p in monitoring.health(ready)}
    assert parts["The photo store"].state == "not working"
    assert parts["The photo store"].words == "not writable"
    kind, sentence = monitoring.summary(list(parts.values()))
    assert kind == "error"
    assert "the photo store, the workers, which read the photos" in sentence


def test_redis_down_leaves_the_workers_unknown_and_no_api_leaves_everything_unknown():
    ready = {
        "status": "not_ready",
        "checks": {
            "redis": "unreachable",
            "blob_store": "ok",
            "records": "ok",
            "workers": "not checked: redis is unavailable",
        },
        "workers": [],
    }
    parts = {p.part: p.state for p in monitoring.health(ready)}
    assert parts["The job queue (Redis)"] == "not working"
    assert parts["The workers, which read the photos"] == "unknown"
    down = monitoring.health(None)
    assert down[0].state == "not working"
    assert {p.state for p in down[1:]} == {"unknown"}
    assert monitoring.summary(down)[1].startswith("The API does not answer")


def test_every_status_has_a_word_and_an_icon_not_only_a_colour():
    for state, (colour, icon, word) in monitoring.LOOKS.items():
        line = monitoring.status_line(monitoring.Status("The API", state, "why"))
        assert line.startswith(f":{colour}[{icon} **{word}**]") and word.lower() == state
        assert line.endswith("] · The API: why")


def test_the_face_model_in_plain_words():
    model = ModelInfo(
        version=3,
        model_name="Facenet",
        detector="centerface",
        metric="cosine",
        threshold=0.45,
        students=2,
        embeddings=7,
        pipeline="Facenet/centerface-v1",
        students_to_reembed=1,
    )
    words = monitoring.model_words(model).words
    assert words.startswith("it recognises 2 students from 7 photos")
    assert "1 more student must have their photos read again" in words
    for technical in ("embedding", "gallery", "Facenet", "cosine", "distance", "centerface"):
        assert technical.lower() not in words.lower()


# --- the Flower address setting -----------------------------------------------------------------


def test_the_flower_address_defaults_to_the_local_port(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("ATTENDANCE_FLOWER_URL", "ATTENDANCE_FLOWER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert FrontendSettings().flower_url == "http://127.0.0.1:5555"
    monkeypatch.setenv("ATTENDANCE_FLOWER_PORT", "6555")
    assert FrontendSettings().flower_url == "http://127.0.0.1:6555"
    monkeypatch.setenv("ATTENDANCE_FLOWER_URL", "")  # as docker compose passes an unset one
    assert FrontendSettings().flower_url == "http://127.0.0.1:6555"
    monkeypatch.setenv("ATTENDANCE_FLOWER_URL", "https://ops.school.example:5555/")
    assert FrontendSettings().flower_url == "https://ops.school.example:5555"


@pytest.mark.parametrize(
    "url", ["ops.school.example:5555", "ftp://ops", "http://", "https://ops:secret@ops.example"]
)
def test_a_flower_address_that_is_no_web_address_or_holds_a_password_is_refused(monkeypatch, url):
    monkeypatch.setenv("ATTENDANCE_FLOWER_URL", url)
    with pytest.raises(ValidationError) as refused:
        FrontendSettings()
    assert "flower_url" in str(refused.value)
    assert "secret" not in str(refused.value).split("input_value")[0]


def test_a_face_model_without_students_says_where_they_are_enrolled():
    model = ModelInfo(
        version=0,
        model_name="Facenet",
        detector="centerface",
        metric="cosine",
        threshold=0.45,
        students=0,
        embeddings=0,
        pipeline="Facenet/centerface-v1",
    )
    status = monitoring.model_words(model)
    assert status.words == "it recognises nobody yet: students are enrolled on the Enroll page"
