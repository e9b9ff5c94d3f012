"""The web's parsing helpers, upload checks and OpenAPI document, without Redis or a worker."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict

from attendance.config.settings import Settings
from attendance.domain.errors import InvalidImage, PayloadTooLarge, ValidationFailed
from attendance.domain.schemas import (
    AttendanceRecord,
    Box,
    ErrorBody,
    FaceMatch,
    JobView,
    ModelInfo,
    Progress,
    RegisterRow,
    Student,
    validate_name,
)
from attendance.web.forms import date_range, is_job_id, optional_identifier, parse_date
from attendance.web.uploads import display_name, read_photos, store_photos, upload_key
from tests.unit.test_images import tiny_gif

REPO_ROOT = Path(__file__).resolve().parents[2]


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (48, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, format=fmt)
    return out.getvalue()


def files(*parts: tuple[bytes, str | None]) -> MultiDict:
    return MultiDict(
        [
            ("photos", FileStorage(io.BytesIO(data), filename=name, name="photos"))
            for data, name in parts
        ]
    )


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        REDIS_URL="redis://127.0.0.1:6379/15",
        blob_store_url=f"file://{tmp_path}/store",
        records_url=f"sqlite:///{tmp_path}/db.sqlite",
    )


# --- form fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2024-02-29", "1999-12-31"])
def test_parse_date_accepts_calendar_dates(value):
    assert parse_date(value, "date") == dt.date.fromisoformat(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2023-02-29",
        "2024-13-01",
        "20240101",
        "2024-W01-1",
        "2024-1-1",
        "today",
        "2024-01-01T00:00:00",
        "2024-01-01 ",
    ],
)
def test_parse_date_rejects_everything_else(value):
    with pytest.raises(ValidationFailed) as err:
        parse_date(value, "from")
    assert err.value.code == "invalid_date"
    assert "from" in err.value.message


def test_date_means_from_and_to():
    day = dt.date(2024, 3, 1)
    assert date_range(MultiDict({"date": "2024-03-01"})) == (day, day)
    assert date_range(MultiDict({"from": "2024-03-01"})) == (day, None)
    assert date_range(MultiDict()) == (None, None)


def test_every_date_filter_narrows():
    d = dt.date.fromisoformat
    assert date_range(MultiDict({"date": "2024-03-05", "from": "2024-03-01"})) == (
        d("2024-03-05"),
        d("2024-03-05"),
    )
    # Contradictory filters match nothing rather than being refused.
    lo, hi = date_range(MultiDict({"date": "2024-03-05", "to": "2024-03-01"}))
    assert lo > hi
    assert date_range(MultiDict({"from": "2024-03-02", "to": "2024-03-01"})) == (
        d("2024-03-02"),
        d("2024-03-01"),
    )


def test_optional_identifier():
    assert optional_identifier(MultiDict(), "class_id") is None
    assert optional_identifier(MultiDict({"class_id": "CS-101.a_b"}), "class_id") == "CS-101.a_b"
    for bad in ("", "a b", "../x", "x" * 65, "é"):
        with pytest.raises(ValidationFailed) as err:
            optional_identifier(MultiDict({"class_id": bad}), "class_id")
        assert err.value.code == "invalid_class_id"


def test_job_ids_are_uuid_hex_only():
    assert is_job_id("0123456789abcdef0123456789abcdef")
    for bad in ("", "abc", "0123456789ABCDEF0123456789ABCDEF", "../" + "a" * 29, "g" * 32):
        assert not is_job_id(bad)


# --- uploads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("class.jpg", "class.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\Pictures\\photo.png", "photo.png"),
        ("/abs/path/x.jpg", "x.jpg"),
        ("we\x00ird\nname.jpg", "weirdname.jpg"),
        ("..", "photo-3"),
        ("", "photo-3"),
        (None, "photo-3"),
        ("dir/", "dir"),
    ],
)
def test_display_name_keeps_only_the_last_printable_component(raw, expected):
    assert display_name(raw, 2) == expected


def test_display_name_is_bounded():
    assert len(display_name("a" * 1000 + ".jpg", 0)) == 255


def test_read_photos_detects_format_and_ignores_the_client_extension():
    photos = read_photos(
        files((image_bytes("PNG"), "looks-like.jpg"), (image_bytes("JPEG"), "x.exe")),
        MultiDict(),
        max_count=5,
        max_pixels=10_000_000,
    )
    assert [(p.display_name, p.extension, p.content_type) for p in photos] == [
        ("looks-like.jpg", "png", "image/png"),
        ("x.exe", "jpg", "image/jpeg"),
    ]


def test_read_photos_skips_the_empty_part_of_a_form_with_no_file_chosen():
    with pytest.raises(ValidationFailed) as err:
        read_photos(files((b"", "")), MultiDict(), max_count=5, max_pixels=10_000_000)
    assert err.value.code == "missing_photos"


def test_read_photos_explains_photos_sent_as_text():
    with pytest.raises(ValidationFailed) as err:
        read_photos(MultiDict(), MultiDict({"photos": "a.jpg"}), max_count=5, max_pixels=10_000_000)
    assert err.value.code == "missing_photos"
    assert "as files" in err.value.message


def test_read_photos_counts_before_decoding():
    with pytest.raises(ValidationFailed) as err:
        read_photos(
            files(*[(b"not decoded", f"{i}.jpg") for i in range(3)]),
            MultiDict(),
            max_count=2,
            max_pixels=10_000_000,
        )
    assert err.value.code == "too_many_photos"
    assert "3" in err.value.message and "2" in err.value.message


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty_file"),
        (b"hello, this is text", "not_an_image"),
        (image_bytes("JPEG", (300, 300))[:400], "damaged_image"),
    ],
)
def test_read_photos_names_the_bad_file(data, code):
    with pytest.raises(InvalidImage) as err:
        read_photos(
            files((image_bytes(), "good.jpg"), (data, "dir/bad.jpg")),
            MultiDict(),
            max_count=5,
            max_pixels=10_000_000,
        )
    assert err.value.code == code
    assert err.value.status == 400
    assert "photo 2 (bad.jpg)" in err.value.message


def test_read_photos_rejects_too_many_pixels():
    with pytest.raises(InvalidImage) as err:
        read_photos(
            files((image_bytes("PNG", (1200, 1000)), "big.png")),
            MultiDict(),
            max_count=5,
            max_pixels=1_000_000,
        )
    assert err.value.code == "image_too_large"


def test_read_photos_bounds_the_pixels_of_the_whole_request():
    three = files(*[(image_bytes("PNG", (2000, 1000)), f"{i}.png") for i in range(3)])
    with pytest.raises(PayloadTooLarge) as err:
        read_photos(
            three, MultiDict(), max_count=5, max_pixels=10_000_000, max_request_pixels=5_000_000
        )
    assert (err.value.status, err.value.code) == (413, "request_too_large")
    assert "6 megapixels" in err.value.message and "at most 5 megapixels" in err.value.message
    for storage in three.getlist("photos"):
        storage.stream.seek(0)
    assert (
        len(
            read_photos(
                three, MultiDict(), max_count=5, max_pixels=10_000_000, max_request_pixels=6_000_000
            )
        )
        == 3
    )


def test_the_request_pixel_budget_is_checked_before_anything_is_decoded(monkeypatch):
    import attendance.web.uploads

    def no_decoding(*args, **kwargs):
        raise AssertionError("a photo was decoded")

    monkeypatch.setattr(attendance.web.uploads, "check_image", no_decoding)
    # 34-byte GIFs declaring 7000x7000 each: their pixel data is cut short, so decoding one
    # would fail as damaged; the header check must come first and refuse the request.
    gifs = files(*[(tiny_gif(7000, 7000), f"{i}.gif") for i in range(3)])
    with pytest.raises(PayloadTooLarge) as err:
        read_photos(
            gifs, MultiDict(), max_count=5, max_pixels=50_000_000, max_request_pixels=100_000_000
        )
    assert err.value.code == "request_too_large" and "147 megapixels" in err.value.message


def test_read_photos_takes_the_request_pixel_limit_from_the_app(tmp_path):
    from attendance.web.app import create_app

    app = create_app(settings_for(tmp_path).model_copy(update={"max_request_pixels": 2_000_000}))
    with app.app_context():
        with pytest.raises(PayloadTooLarge):
            read_photos(
                files((image_bytes("PNG", (1500, 1500)), "a.png")),
                MultiDict(),
                max_count=5,
                max_pixels=10_000_000,
            )


def test_max_request_pixels_setting(monkeypatch):
    assert Settings(_env_file=None).max_request_pixels == 250_000_000
    monkeypatch.setenv("ATTENDANCE_MAX_REQUEST_PIXELS", "120000000")
    assert Settings(_env_file=None).max_request_pixels == 120_000_000


def test_read_photos_stores_an_mpo_as_a_jpeg():
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (1, 2, 3)).save(
        out, format="MPO", save_all=True, append_images=[Image.new("RGB", (24, 16))]
    )
    [photo] = read_photos(
        files((out.getvalue(), "IMG_0001.JPG")), MultiDict(), max_count=5, max_pixels=10_000_000
    )
    assert (photo.extension, photo.content_type, photo.data) == (
        "jpg",
        "image/jpeg",
        out.getvalue(),
    )


def test_read_photos_refuses_a_photos_part_that_arrived_as_text():
    # What werkzeug makes of a file part whose filename holds a raw CR or LF: a text field.
    with pytest.raises(ValidationFailed) as err:
        read_photos(
            files((image_bytes(), "a.jpg"), (image_bytes(), "b.jpg")),
            MultiDict({"photos": "\ufffdPNG..."}),
            max_count=5,
            max_pixels=10_000_000,
        )
    assert err.value.code == "photos_part_not_a_file"
    assert "1 of the 3 parts named photos" in err.value.message
    assert "CR or LF" in err.value.message


class FlakyBlobs:
    """Accepts ``ok`` writes, then fails: what a full disk looks like half-way through."""

    def __init__(self, ok: int):
        self.ok = ok
        self.stored: dict[str, bytes] = {}

    def put(self, key, data, content_type="application/octet-stream"):
        if len(self.stored) >= self.ok:
            raise OSError("disk full")
        self.stored[key] = data

    def delete(self, key):
        self.stored.pop(key, None)


def test_store_photos_uses_our_keys_and_cleans_up_after_a_partial_failure():
    photos = read_photos(
        files(*[(image_bytes(), f"../{i}.jpg") for i in range(3)]),
        MultiDict(),
        max_count=5,
        max_pixels=10_000_000,
    )
    job_id = "ab" * 16
    blobs = FlakyBlobs(ok=3)
    uploads = store_photos(blobs, job_id, photos)
    assert [u.key for u in uploads] == [upload_key(job_id, i, "jpg") for i in range(3)]
    assert uploads[0].key == f"uploads/{job_id}/000.jpg"
    assert [u.filename for u in uploads] == ["0.jpg", "1.jpg", "2.jpg"]

    blobs = FlakyBlobs(ok=2)
    with pytest.raises(OSError):
        store_photos(blobs, job_id, photos)
    assert blobs.stored == {}


# --- the app and its OpenAPI document ---------------------------------------------------------


def test_importing_the_web_never_loads_tensorflow_or_deepface(tmp_path):
    code = (
        "import sys\n"
        "from attendance.config.settings import Settings\n"
        "from attendance.web.app import create_app\n"
        f"create_app(Settings(_env_file=None, blob_store_url='file://{tmp_path}/s', "
        f"records_url='sqlite:///{tmp_path}/d.sqlite'))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'deepface', 'tf_keras', 'keras', 'cv2', 'worker'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_openapi_document_is_valid_and_covers_every_route(tmp_path):
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    from attendance.web.app import create_app

    app = create_app(settings_for(tmp_path))
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(spec, cls=OpenAPIV31SpecValidator)
    assert spec["openapi"] == "3.1.0"

    routed = {}
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<int:", "<").replace("<", "{").replace(">", "}")
        routed.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: set(ops) for path, ops in spec["paths"].items()}
    assert documented == routed


def _document(settings: Settings) -> dict:
    """The document of the app's routes, built without stores."""
    from flask import Flask

    from attendance.web.app import BLUEPRINTS
    from attendance.web.openapi import build_spec

    app = Flask(__name__, static_folder=None)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return build_spec(app, settings)


def test_openapi_limits_follow_settings(tmp_path):
    settings = Settings(_env_file=None, max_enroll_photos=7, max_recognition_photos=9)
    spec = _document(settings)
    enroll = spec["paths"]["/api/v1/students"]["post"]["requestBody"]["content"]
    recognise = spec["paths"]["/api/v1/recognitions"]["post"]["requestBody"]["content"]
    assert enroll["multipart/form-data"]["schema"]["properties"]["photos"]["maxItems"] == 7
    assert recognise["multipart/form-data"]["schema"]["properties"]["photos"]["maxItems"] == 9


@pytest.mark.parametrize(
    "name",
    [
        "Ada Lovelace",
        "  Zoë O'Neil  ",
        "李小龍",
        "x" * 200,
        "",
        "   ",
        "Bell\x07",
        "tab\there",
        "nb\u00a0sp",
        "zero\u200bwidth",
        "private\ue000",
        "line\u2028sep",
        "soft\u00adhyphen",
    ],
)
def test_openapi_name_pattern_agrees_with_validate_name(name):
    from attendance.domain.api_shapes import NAME_PATTERN

    try:
        validate_name(name)
        accepted = True
    except ValidationFailed:
        accepted = False
    assert bool(re.match(NAME_PATTERN, name)) == accepted


@pytest.mark.parametrize(
    "component, model",
    [
        ("Student", Student),
        ("AttendanceRecord", AttendanceRecord),
        ("RegisterRow", RegisterRow),
        ("FaceMatch", FaceMatch),
        ("Box", Box),
        ("ModelInfo", ModelInfo),
        ("JobView", JobView),
        ("Progress", Progress),
        ("ErrorBody", ErrorBody),
    ],
)
def test_openapi_components_match_the_shared_schemas(component, model):
    from attendance.web.openapi import REF_TEMPLATE

    schema = _document(Settings(_env_file=None))["components"]["schemas"][component]
    own = model.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    own.pop("$defs", None)
    assert schema == own


def test_openapi_names_every_413_of_the_upload_routes():
    spec = _document(Settings(_env_file=None))
    for path in ("/api/v1/students", "/api/v1/recognitions"):
        responses = spec["paths"][path]["post"]["responses"]
        described = responses["413"]["description"]
        for code in (
            "payload_too_large",
            "request_too_large",
            "form_field_too_large",
            "too_many_form_parts",
        ):
            assert code in described, (path, code)
        assert "photos_part_not_a_file" in responses["400"]["description"]
