"""The roster CSV's consent columns (attendance.frontend.roster): checked as the API checks them,
and carried to each student's enrollment request."""

from __future__ import annotations

import io
import zipfile

from attendance.frontend.roster import parse_roster_csv, plan_bulk_enrollment

HEADER = "student_id,name,class_id,consent_given_by,consent_relationship,consent_given_on,minor\n"


def test_consent_columns_become_each_rows_consent():
    parsed = parse_roster_csv(
        HEADER
        + "s001,Ada,c,Anne Lovelace,parent,2026-09-01,\n"
        + "s002,Alan,c,Alan,self,2026-09-02,false\n"
        + "s003,Grace,c,,,,\n",
    )
    assert parsed.errors == []
    ada, alan, grace = parsed.rows
    assert ada.consent == {
        "consent_given_by": "Anne Lovelace",
        "consent_relationship": "parent",
        "consent_given_on": "2026-09-01",
        "minor": "true",
    }
    assert alan.consent is not None and alan.consent["minor"] == "false"
    assert grace.consent is None  # none given: it must be on record already


def test_consent_columns_without_a_header_follow_the_class():
    parsed = parse_roster_csv("s001,Ada,c,A. Parent,guardian,2026-09-01,true\n")
    assert parsed.errors == [] and parsed.rows[0].consent["consent_relationship"] == "guardian"


def test_a_bad_consent_skips_its_row_with_the_reason():
    parsed = parse_roster_csv(
        HEADER
        + "s001,Ada,c,Ada,self,2026-09-01,true\n"  # a minor's own consent
        + "s002,Alan,c,A. Parent,,2026-09-01,\n"  # no relationship
        + "s003,Grace,c,G. Parent,parent,2026-02-30,\n"  # no such day
        + "s004,Kurt,c,K. Parent,uncle,2026-09-01,\n"
        + "s005,Emmy,c,E. Parent,parent,2999-01-01,\n"  # the future
        + "s006,Hedy,c,H. Parent,parent,2026-09-01,maybe\n"
        + "s007,Ok,c,O. Parent,parent,2026-09-01,\n"
    )
    assert [r.student_id for r in parsed.rows] == ["s007"]
    assert [e.split(":")[0] for e in parsed.errors] == [f"line {n}" for n in range(2, 8)]
    assert "parent or guardian" in parsed.errors[0]
    assert "consent_relationship" in parsed.errors[1]
    assert "in the future" in parsed.errors[4]


def test_a_header_naming_an_unknown_column_is_refused():
    parsed = parse_roster_csv("student_id,name,consent\ns001,Ada,yes\n", default_class="c")
    assert parsed.rows == [] and "consent_given_by" in parsed.errors[0]


def test_the_plan_carries_each_students_consent():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("s001.jpg", b"x")
        z.writestr("s002.jpg", b"y")
    plan = plan_bulk_enrollment(
        HEADER + "s001,Ada,c,A. Parent,parent,2026-09-01,\ns002,Alan,c,,,,\n",
        archive.getvalue(),
    )
    assert [(e.student_id, e.consent is not None) for e in plan.entries] == [
        ("s001", True),
        ("s002", False),
    ]
