"""Take attendance, Attendance and Students and model as the people who use them see them, in
headless Chromium on the real stack, on a desktop (1280x900), a tablet (820x1180) and a phone
(390x844): what a teacher looks for first (who is absent or present) comes before the class
photos; each face of a photo is listed in words beside its crop; every image has alt text; the
page speaks plain words (no model jargon outside *Technical details*); captions and labels
reach WCAG AA's 4.5:1 contrast; the photo uploaders say the API's limit. Full-page screenshots
go to var/test-artifacts/screenshots/layout-<page>-<size>.png."""

from __future__ import annotations

import re

import pytest

from tests.e2e.test_browser import browser, settle  # noqa: F401 (a fixture)
from tests.e2e.test_enroll_browser import (  # noqa: F401 (a fixture)
    app_url,
    full_screenshot,
    new_page,
)
from tests.e2e.test_register_browser import (  # noqa: F401 (a fixture)
    JOLIE,
    open_session_on_attendance,
    register_class,
    row,
    shown_rows,
    take_attendance,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.timeout(900),
]

SIZES = {"1280x900": (1280, 900), "820x1180": (820, 1180), "390x844": (390, 844)}
# Words of the face model's inner workings: a teacher reads none of them.
JARGON = ("gallery version", "embedding", "cosine", "facenet", "opencv", "distance", "worker")
WCAG_AA = 4.5
# Text whose colour Streamlit fades (captions, image captions, the uploaders' limits) and the
# labels people read the page by.
TEXT = ", ".join(
    f'[data-testid="stMain"] [data-testid="{testid}"]'
    for testid in (
        "stCaptionContainer",
        "stImageCaption",
        "stMetricLabel",
        "stWidgetLabel",
        "stFileUploaderDropzoneInstructions",
        "stMarkdownContainer",
    )
)
# The contrast of each element's text against the first opaque background behind it, as WCAG
# 2 computes it (the text colour's own opacity blended in).
CONTRASTS = """
(selector) => {
  const rgba = (css) => {
    const parts = css.match(/[\\d.]+/g).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgba(getComputedStyle(el).backgroundColor);
      if (c[3] > 0.99) return c;
    }
    return [255, 255, 255, 1];
  };
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  return [...document.querySelectorAll(selector)]
    .filter((el) => el.innerText.trim() && el.getClientRects().length)
    // WCAG sets no contrast for a control that cannot be used (a button not yet enabled).
    .filter((el) => !el.closest("button:disabled, [aria-disabled='true']"))
    .map((el) => {
      const fg = rgba(getComputedStyle(el).color);
      const bg = background(el);
      const shown = [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
      const [hi, lo] = [luminance(shown), luminance(bg)].sort((a, b) => b - a);
      return [el.innerText.trim().slice(0, 60), (hi + 0.05) / (lo + 0.05)];
    });
}
"""


def open_at(browser, size: str):  # noqa: F811
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def main_text(page) -> str:
    """What the page shows as text (a closed expander's content is not shown)."""
    return page.locator('[data-testid="stMain"]').inner_text()


def assert_plain_words(page) -> None:
    text = main_text(page).lower()
    found = [word for word in JARGON if word in text]
    assert not found, (found, text)


def assert_alt_text_on_every_image(page) -> None:
    images = page.locator('[data-testid="stMain"] img')
    alts = [images.nth(i).get_attribute("alt") for i in range(images.count())]
    assert all(alt and alt.strip() for alt in alts), alts


def assert_contrast(page) -> None:
    low = [(text, round(ratio, 2)) for text, ratio in page.evaluate(CONTRASTS, TEXT)]
    low = [(text, ratio) for text, ratio in low if ratio < WCAG_AA]
    assert not low, low


def top(locator) -> float:
    box = locator.bounding_box()
    assert box is not None, locator
    return box["y"]


def annotated_photo(page, name: str):
    return page.locator('[data-testid="stImage"]').filter(has_text=f"{name}:").first


@pytest.mark.parametrize("size", list(SIZES))
def test_take_attendance_shows_who_is_absent_before_the_photos(
    browser, app_url, faces_dir, register_class, size
):
    context, page = open_at(browser, size)
    try:
        take_attendance(page, app_url, faces_dir, f"layout-{size}")
        photo = annotated_photo(page, "couple.jpg")
        photo.locator("img").wait_for()
        summary = page.locator('[class*="st-key-register-summary-"]')
        summary_text = summary.inner_text()
        assert "Present (1): Angelina Jolie" in summary_text, summary_text
        # The counts, who is absent or present and every student's row, then the photos.
        metrics = page.locator('[data-testid="stMetric"]').first
        rows = page.locator('[class*="st-key-register-row-"]')
        assert top(metrics) < top(summary) < top(rows.first) < top(photo)
        assert top(rows.last) < top(photo)
        # Each face of the photo in words, beside its crop, under the photo.
        faces = page.locator('[class*="st-key-photo-faces-"]').first
        faces_text = faces.inner_text()
        assert re.search(r"Face \d+: Angelina Jolie \((strong|borderline) match", faces_text)
        # The face nobody was matched to is counted here; its crop is above, to say who it is.
        assert "1 face with no match (red boxes)" in faces_text, faces_text
        assert top(photo) < top(faces)
        crops = faces.locator("img")
        assert crops.count() == 1
        assert "Angelina Jolie" in crops.first.get_attribute("alt")
        # The caption names the photo by its file name, and the photo is described.
        assert (
            photo.locator('[data-testid="stImageCaption"]').inner_text().startswith("couple.jpg: ")
        )
        assert "Angelina Jolie" in photo.locator("img").get_attribute("alt")
        assert_alt_text_on_every_image(page)
        assert_plain_words(page)
        assert_contrast(page)
        full_screenshot(page, f"layout-take-attendance-{size}")
        # The technical details are there for an administrator, closed.
        page.get_by_text("Technical details").click()
        page.get_by_text("gallery version", exact=False).first.wait_for()
        # Before any photo is chosen, the photo uploader says the API's limit, not Streamlit's.
        page.goto(f"{app_url}/")
        limits = page.locator('[data-testid="stFileUploaderDropzoneInstructions"]').first
        assert "50MB per file" in limits.inner_text() and "200MB" not in limits.inner_text()
    finally:
        context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_attendance_page_reads_plainly(browser, app_url, faces_dir, register_class, size):
    context, page = open_at(browser, size)
    period = f"layout-{size}"
    try:
        take_attendance(page, app_url, faces_dir, period)
        open_session_on_attendance(page, app_url, period)
        summary = page.locator('[class*="st-key-register-summary-"]')
        assert top(summary) < top(page.locator('[class*="st-key-register-row-"]').first)
        assert any("Angelina Jolie" in r for r in shown_rows(page))
        assert row(page, JOLIE).locator("img").first.get_attribute("alt")
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        settle(page)
        assert_alt_text_on_every_image(page)
        assert_plain_words(page)
        assert_contrast(page)
        full_screenshot(page, f"layout-attendance-{size}")
    finally:
        context.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_students_page_reads_plainly(browser, app_url, register_class, size):
    context, page = open_at(browser, size)
    try:
        page.goto(f"{app_url}/students")
        page.get_by_role("heading", name="Students and model", exact=True).wait_for()
        page.get_by_text("The face model was updated on").wait_for()
        settle(page)
        assert_plain_words(page)
        assert_alt_text_on_every_image(page)
        assert_contrast(page)
        limits = page.locator('[data-testid="stFileUploaderDropzoneInstructions"]').first
        assert "50MB per file" in limits.inner_text()
        sidebar = page.locator('[data-testid="stSidebar"]').bounding_box()
        width = SIZES[size][0]
        if width < 768:  # a phone: the sidebar starts closed, the page has the whole screen
            assert sidebar is None or sidebar["x"] + sidebar["width"] <= 1, sidebar
        else:  # a tablet or a desktop: the page keeps more than two thirds of the width
            assert sidebar is not None and sidebar["width"] <= width * 0.31, sidebar
        full_screenshot(page, f"layout-students-{size}")
        page.get_by_text("Technical details").click()
        page.get_by_text("Gallery version:").wait_for()
    finally:
        context.close()


def test_captions_keep_their_contrast_in_the_dark_theme(browser, app_url, register_class):
    """The light theme's text colour is set (.streamlit/config.toml); a device set to dark
    still gets Streamlit's dark theme, whose light text passes as it is."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{app_url}/students")
        page.get_by_text("The face model was updated on").wait_for()
        settle(page)
        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor"
        )
        assert background != "rgb(255, 255, 255)", background  # the dark theme, not the light
        assert_contrast(page)
        full_screenshot(page, "layout-students-dark-1280x900")
    finally:
        context.close()
