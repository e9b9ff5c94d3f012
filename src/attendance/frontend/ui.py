"""Streamlit helpers shared by the pages: the API client, logging in, error display, job
progress bars."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import string
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import streamlit as st
from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from attendance.domain.schemas import JobView
from attendance.frontend.api_client import LOGIN_HINT, TERMINAL_STATES, ApiClient, ApiError
from attendance.frontend.settings import FrontendSettings

T = TypeVar("T")

# What the API accepts (attendance.photos.checks), by file extension; HEIC is iPhones' default.
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "heic", "heif"]
POLL_INTERVAL = 0.5
JOB_TIMEOUT = 900.0

# The login lives in st.session_state only: never on disk, never in a widget after it is used.
TOKEN_KEY = "auth.token"  # the token every call carries; None when logged out
ROLE_KEY = "auth.role"  # the role the API says the token has, None while unchecked
SOURCE_KEY = "auth.source"  # "settings" (ATTENDANCE_API_TOKEN), "login" (a typed token), "account"
MESSAGE_KEY = "auth.message"  # why the last login failed
INPUT_KEY = "auth.token_input"  # the password box
NAME_KEY = "auth.name"  # who is logged in (an account's username), None for a token
USERNAME_KEY = "auth.username_input"
PASSWORD_KEY = "auth.password_input"
# A login outlives a reload and opens in a new tab: its session token is kept in a cookie of the
# app's own (SameSite=Strict), which every new Streamlit session reads (st.context.cookies).
# Logging out ends the session in the API and clears the cookie.
SESSION_COOKIE = "attendance_session"
ROLE_VIEWER = "viewer"

THUMBNAIL_PX = 160
# Every ASCII punctuation character may be backslash-escaped in (GitHub-flavoured) Markdown,
# which then shows it as it is; Streamlit's own additions (":red[...]", ":material/x:", "$math$")
# are built from punctuation too.
_MARKDOWN_SPECIALS = re.compile("([" + re.escape(string.punctuation) + "])")
# GitHub-flavoured Markdown also turns bare "http://...", "www.x.y" and "a@b.c" into links, and
# Streamlit does so after the escapes are read; an invisible WORD JOINER (U+2060) right after
# "http"/"https"/"www" and after "@" breaks those patterns without changing what is shown.
WORD_JOINER = "\u2060"
_AUTOLINK_STARTS = re.compile(r"(?i)(https?(?=:)|www(?=\.)|@)")

# Thumbnails of HEIC photos, as the API reads them.
register_heif_opener()


def plain(value: object, *, links: bool = False) -> str:
    """``value`` as Markdown source that shows it literally: for anything a user typed (names,
    class ids, file names) or the API repeats (its error messages) that goes into st.markdown,
    st.caption, st.error and the like, or into a label (metric, button, progress bar, image
    caption), all of which render Markdown. A name like ``**x** [link](http://x)`` or
    ``<b>x</b>`` then shows as typed: no bold, no link, no HTML (a bare web address or e-mail
    address gets an invisible word joiner, so it is not made a link either). ``links=True``
    leaves bare addresses clickable: only for text made from the settings (the API's URL),
    never for anything someone typed."""
    text = " ".join(str(value).splitlines()) if value is not None else ""
    if not links:
        text = _AUTOLINK_STARTS.sub(lambda m: m.group(1) + WORD_JOINER, text)
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def settings() -> FrontendSettings:
    # Read on every run (it is cheap), so a changed ATTENDANCE_API_URL applies without a restart.
    try:
        return FrontendSettings()
    except Exception as exc:  # a bad ATTENDANCE_* variable or .env line: say which, not a trace
        errors = getattr(exc, "errors", None)
        detail = (
            "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors()
            )
            if callable(errors)
            else f"{type(exc).__name__}: {exc}"
        )
        st.error(
            plain(f"The settings (ATTENDANCE_* variables, .env) are invalid: {detail}"),
            icon=":material/settings:",
        )
        st.stop()
        raise


def request_bytes(config: FrontendSettings) -> int:
    """Photo bytes per request: under the API's upload limit, with room for the form's framing."""
    return int(config.max_upload_bytes * 0.9)


def photo_upload_mb(config: FrontendSettings) -> int:
    """The largest photo a photo uploader takes, in MB (what the uploader says): the API's
    limit for a whole request, which a photo is sent in alone when it is that large."""
    return max(1, int(config.max_upload_mb))


def client() -> ApiClient:
    """The API client, carrying the session's token when someone is logged in."""
    return ApiClient(settings().api_url, token=current_token())


def logged_in_client() -> ApiClient:
    """The API client for a page that needs a token; without one, the page says how to log in
    and stops there."""
    api = client()
    if not api.token:
        message = st.session_state.get(MESSAGE_KEY)
        if message:  # why the last login failed (the sidebar says it too)
            st.error(message, icon=":material/key_off:")
        st.info(
            f"{LOGIN_HINT} The login is in the sidebar (on a phone, open it with the arrow at "
            "the top left).",
            icon=":material/key:",
        )
        st.stop()
    return api


# --- logging in ----------------------------------------------------------------------------------


def current_token() -> str | None:
    """The session's token; a new session starts with the login kept in the browser's cookie,
    else ATTENDANCE_API_TOKEN when it is set."""
    if TOKEN_KEY not in st.session_state:
        kept = _kept_login()
        configured = settings().api_token
        st.session_state[TOKEN_KEY] = kept or configured or None
        st.session_state[SOURCE_KEY] = "account" if kept else "settings" if configured else None
        st.session_state[ROLE_KEY] = None
    return st.session_state[TOKEN_KEY]


def _kept_login() -> str | None:
    try:
        value = st.context.cookies.get(SESSION_COOKIE)
    except Exception:  # no browser behind this session (a test's AppTest)
        return None
    return value if isinstance(value, str) and 0 < len(value) < 200 else None


def _keep_login(token: str | None, seconds: int = 0) -> None:
    """Set (or, with None, clear) the login's cookie in the browser: a script in an invisible
    component, whose frame shares the app's origin."""
    value = json.dumps(token or "")
    age = seconds if token else 0
    st.iframe(
        "<script>"
        f"const secure = window.parent.location.protocol === 'https:' ? '; Secure' : '';"
        f"window.parent.document.cookie = '{SESSION_COOKIE}=' + encodeURIComponent({value}) + "
        f"'; Path=/; Max-Age={age}; SameSite=Strict' + secure;"
        "</script>",
        height=1,
    )


def _adopt(token: str, source: str) -> None:
    """Check ``token`` and log in with it, unless the API says it is not valid."""
    api = ApiClient(settings().api_url, token=token)
    name = None
    try:
        # An account's username, or the name the token was created with; the role either way.
        who = api.whoami()
        name, role = who["name"], who["role"]
    except ApiError as exc:
        if exc.unauthorized:
            if source == "account":
                message = (
                    "Your login has ended (it expired, or you logged out elsewhere): log in again."
                )
                st.session_state["auth.clear_cookie"] = True
            else:
                whose = (
                    "The token in ATTENDANCE_API_TOKEN" if source == "settings" else "That token"
                )
                message = (
                    f"{whose} is not valid: the API refused it. Check it, or ask an "
                    "administrator for one, and log in again."
                )
            st.session_state[TOKEN_KEY] = None
            st.session_state[ROLE_KEY] = None
            st.session_state[SOURCE_KEY] = None
            st.session_state[MESSAGE_KEY] = message
            return
        role = None  # the API does not answer: keep the token, check it once it does
    st.session_state[TOKEN_KEY] = token
    st.session_state[ROLE_KEY] = role
    st.session_state[NAME_KEY] = name
    st.session_state[SOURCE_KEY] = source
    st.session_state.pop(MESSAGE_KEY, None)


def _log_in_account() -> None:
    """The username and password form's callback."""
    username = (st.session_state.get(USERNAME_KEY) or "").strip().lower()
    password = st.session_state.get(PASSWORD_KEY) or ""
    st.session_state[PASSWORD_KEY] = ""  # the box never shows the password back
    if not username or not password:
        st.session_state[MESSAGE_KEY] = "Type your username and password first."
        return
    try:
        login = ApiClient(settings().api_url).log_in(username, password)
    except ApiError as exc:
        st.session_state[MESSAGE_KEY] = exc.message
        return
    _start_session(login)


def _start_session(login: dict) -> None:
    """Log in with the API's new session (kept in the cookie for reloads and new tabs)."""
    st.session_state["auth.keep_cookie"] = (login["token"], _seconds_until(login["expires_at"]))
    _adopt(login["token"], "account")


# --- logging in through the school's identity provider -----------------------------------------
# Streamlit's st.login does OpenID Connect in the browser, configured in the app's secrets
# ([auth] and one [auth.<name>] per provider, with expose_tokens = "id"); the API turns the ID
# token into a session of the account with that email (ATTENDANCE_OIDC_PROVIDERS).
PROVIDER_LABELS = {"google": "Google", "microsoft": "Microsoft", "entra": "Microsoft"}


def identity_providers() -> list[str]:
    """The providers the app's secrets configure, by name."""
    try:
        auth = st.secrets.get("auth")
    except Exception:  # no secrets file at all
        return []
    if auth is None or not hasattr(auth, "items"):
        return []
    return sorted(name for name, section in auth.items() if hasattr(section, "items"))


def _provider_label(name: str) -> str:
    return PROVIDER_LABELS.get(name, name.replace("-", " ").title())


def _identity() -> tuple[str, str] | None:
    """The provider and ID token of a person st.login has logged in, else None."""
    try:
        if not st.user.is_logged_in:
            return None
        provider, token = st.user.get("provider"), st.user.tokens.get("id")
    except Exception:  # no [auth] configured, or no browser behind this session
        return None
    if isinstance(provider, str) and isinstance(token, str) and token:
        return provider, token
    return None


def _log_in_with_identity() -> None:
    """Trade the provider's ID token for an API session, once, after st.login came back."""
    identity = _identity()
    if identity is None or st.session_state.get("auth.identity_tried") == identity[1]:
        return
    st.session_state["auth.identity_tried"] = identity[1]  # a refusal is not retried each run
    try:
        login = ApiClient(settings().api_url).log_in_with_identity(*identity)
    except ApiError as exc:
        st.session_state[MESSAGE_KEY] = exc.message
        return
    _start_session(login)


def _identity_buttons() -> None:
    for name in identity_providers():
        st.button(
            f"Log in with {_provider_label(name)}",
            key=f"auth.login.{name}",
            on_click=st.login,
            args=(name,),
            icon=":material/badge:",
            type="primary",
            width="stretch",
        )


def _seconds_until(when: str) -> int:
    try:
        left = dt.datetime.fromisoformat(when) - dt.datetime.now(dt.UTC)
    except (TypeError, ValueError):
        return 3600
    return max(0, int(left.total_seconds()))


def _log_in() -> None:
    """The login form's callback (it runs before the script, so the sidebar shows the result)."""
    token = (st.session_state.get(INPUT_KEY) or "").strip()
    st.session_state[INPUT_KEY] = ""  # the box never shows the token back
    if not token:
        st.session_state[MESSAGE_KEY] = "Paste an API token into the box first."
        return
    _adopt(token, "login")


def _log_out() -> None:
    # Everything the session holds goes (a result taken with the old token too), and the
    # session stays logged out: ATTENDANCE_API_TOKEN is not used again. A login's session ends
    # in the API too, and its cookie goes.
    if st.session_state.get(SOURCE_KEY) == "account" and st.session_state.get(TOKEN_KEY):
        try:
            ApiClient(settings().api_url, token=st.session_state[TOKEN_KEY]).log_out()
        except ApiError:
            pass  # ended already, or the API is down: it expires by itself
    was_account = st.session_state.get(SOURCE_KEY) == "account"
    through_provider = _identity() is not None
    for key in list(st.session_state):
        del st.session_state[key]
    st.session_state[TOKEN_KEY] = None
    st.session_state[ROLE_KEY] = None
    st.session_state[SOURCE_KEY] = None
    if was_account:
        st.session_state["auth.clear_cookie"] = True
    if through_provider:
        st.logout()  # else the provider's login would log the person in again at once


def login_sidebar(api_up: bool) -> None:
    """Who is logged in and a *Log out* button, or the login form, in the sidebar."""
    token = current_token()
    if not token and api_up:
        _log_in_with_identity()
        token = current_token()
    if token and st.session_state.get(ROLE_KEY) is None and api_up:
        _adopt(token, st.session_state.get(SOURCE_KEY) or "login")  # not checked yet
        token = current_token()
    with st.sidebar:
        keep = st.session_state.pop("auth.keep_cookie", None)
        if keep:
            _keep_login(*keep)
        if st.session_state.pop("auth.clear_cookie", False):
            _keep_login(None)
        if token:
            role = st.session_state.get(ROLE_KEY)
            name = st.session_state.get(NAME_KEY)
            source = st.session_state.get(SOURCE_KEY)
            if name and role:
                what = "viewer: may see attendance only" if role == ROLE_VIEWER else role
                st.success(
                    f"Logged in as **{plain(name)}** ({what})",
                    icon=":material/person:" if source == "account" else ":material/key:",
                )
            else:
                st.info(
                    "Logged in (the token is checked once the API answers)", icon=":material/key:"
                )
            if source == "settings":
                st.caption("with the token from ATTENDANCE_API_TOKEN")
            elif source == "login":
                st.caption("with an API token")
            st.button("Log out", key="auth.logout", on_click=_log_out, icon=":material/logout:")
            return
        message = st.session_state.get(MESSAGE_KEY)
        if message:
            st.error(message, icon=":material/key_off:")
        _identity_buttons()
        with st.form("login_account", border=True):
            st.text_input("Username", key=USERNAME_KEY, autocomplete="username")
            st.text_input(
                "Password", type="password", key=PASSWORD_KEY, autocomplete="current-password"
            )
            st.form_submit_button(
                "Log in", on_click=_log_in_account, icon=":material/login:", type="primary"
            )
        st.caption("Or, for a program's or an operator's token:")
        with st.form("login", border=True):
            st.text_input(
                "API token",
                type="password",
                key=INPUT_KEY,
                autocomplete="off",
                placeholder="paste your token",
                help="Ask an administrator for a token. `make run` wrote a local admin token "
                "to var/admin-token.",
            )
            st.form_submit_button("Log in with the token", on_click=_log_in, icon=":material/key:")


def thumbnail(data: bytes, size: int = THUMBNAIL_PX) -> bytes | None:
    """A small JPEG of a photo, turned upright as its EXIF says; None when it cannot be read
    (the API then says why it refuses it)."""
    return _thumbnail(hashlib.sha256(data).hexdigest(), size, data)


@st.cache_data(show_spinner=False, max_entries=512)
def _thumbnail(digest: str, size: int, _data: bytes) -> bytes | None:
    try:
        with Image.open(io.BytesIO(_data)) as opened:
            upright = ImageOps.exif_transpose(opened)
            upright.thumbnail((size, size))
            out = io.BytesIO()
            upright.convert("RGB").save(out, format="JPEG", quality=85)
            return out.getvalue()
    except Exception:  # noqa: BLE001 - any unreadable upload just has no preview
        return None


def show_thumbnails(photos: Sequence[tuple[str, bytes]], what: str = "to be sent") -> None:
    """The photos that will be sent, small, each captioned with its file name (literally) and
    described by it to screen readers."""
    if not photos:
        return
    st.caption(f"{len(photos)} photo{'s' * (len(photos) != 1)} {what}:")
    shown = [(name, thumbnail(data)) for name, data in photos]
    readable = [(name, t) for name, t in shown if t is not None]
    if readable:
        st.image(
            [t for _, t in readable],
            caption=[plain(name) for name, _ in readable],
            width=THUMBNAIL_PX,
            alt=[f"Photo {name}, {what}" for name, _ in readable],
        )
    unreadable = [name for name, t in shown if t is None]
    if unreadable:
        st.caption(
            "No preview (not an image this app can read): "
            + ", ".join(plain(n) for n in unreadable)
        )


def flower_url() -> str:
    """Where a browser opens Flower: ATTENDANCE_FLOWER_URL, else http://127.0.0.1:<flower_port>."""
    return settings().flower_url


def show_error(exc: ApiError, doing: str | None = None) -> None:
    """An ApiError as people read it: what failed, why, and the API's code in small print;
    ``doing`` and the message are shown literally (never as Markdown)."""
    if exc.unreachable:
        # Made from the API's URL (the settings) and the connection's failure only.
        st.error(plain(exc.message, links=True), icon=":material/cloud_off:")
        return
    if exc.unauthorized:
        # The token stopped working (revoked?): check it again on the next run.
        st.session_state[ROLE_KEY] = None
    icon = (
        ":material/lock:"
        if exc.forbidden or exc.unauthorized or exc.register_finalized
        else ":material/error:"
    )
    # Both may carry what someone typed (a file name, a student id the API repeats).
    message = plain(exc.message)
    if exc.register_finalized:
        message = (
            "This register is signed off, so a teacher can no longer change it; ask an "
            f"administrator to correct it. (The API says: {message}.)"
        )
    st.error(f"{plain(doing)}: {message}" if doing else message, icon=icon)
    if exc.code:
        st.caption(
            f"error code: `{exc.code.replace('`', '')}`"
            + (f", HTTP {exc.status}" if exc.status else "")
        )


def fetch(doing: str, call: Callable[..., T], *args, **kwargs) -> T:
    """``call(*args, **kwargs)``, or show why it failed and stop this page's run."""
    try:
        return call(*args, **kwargs)
    except ApiError as exc:
        show_error(exc, doing)
        st.stop()
        raise  # st.stop() raises; this only tells type checkers the call does not fall through


def annotated_image(api: ApiClient, job_id: str, n: int) -> bytes:
    """An annotated photo never changes under its URL, so it is fetched once per token: the
    cache is keyed by a hash of the token (never the token), so one token's photos are never
    served to another."""
    fingerprint = hashlib.sha256(api.token.encode()).hexdigest() if api.token else ""
    return _annotated_image(api.base_url, fingerprint, job_id, n, api)


@st.cache_data(show_spinner=False, max_entries=256)
def _annotated_image(
    api_url: str, token_fingerprint: str, job_id: str, n: int, _api: ApiClient
) -> bytes:
    return _api.annotated(job_id, n)


def face_image(api: ApiClient, job_id: str, photo: int, face: int) -> bytes | None:
    """The crop of one face of a recognition job, cached like the annotated photos (per hash
    of the token); None when the API has none to give (the row then shows no picture)."""
    fingerprint = hashlib.sha256(api.token.encode()).hexdigest() if api.token else ""
    try:
        return _face_image(api.base_url, fingerprint, job_id, photo, face, api)
    except ApiError:
        return None


@st.cache_data(show_spinner=False, max_entries=1024)
def _face_image(
    api_url: str, token_fingerprint: str, job_id: str, photo: int, face: int, _api: ApiClient
) -> bytes:
    return _api.face_image(job_id, photo, face)


def _progress_text(label: str, job: JobView) -> str:
    done, total = job.progress.done, job.progress.total
    state = {
        "queued": "waiting to start (if this lasts, see Monitoring)",
        "running": "running",
        "succeeded": "done",
        "failed": "failed",
    }[job.state]
    return f"{plain(label)}: {state} ({done}/{total} photos)"


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
    # The labels carry names: every text below is Markdown-escaped (see plain()).
    bars = {job_id: st.progress(0.0, text=f"{plain(label)}: submitted") for label, job_id in jobs}
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
                bars[job_id].progress(0.0, text=f"{plain(labels[job_id])}: {plain(exc.message)}")
                continue
            total = max(job.progress.total, 1)
            fraction = 1.0 if job.state == "succeeded" else min(job.progress.done / total, 1.0)
            bars[job_id].progress(fraction, text=_progress_text(labels[job_id], job))
            if job.state in TERMINAL_STATES:
                outcome[job_id] = job
        if len(outcome) < len(jobs):
            if time.monotonic() > deadline:
                for job_id in labels:
                    outcome.setdefault(
                        job_id,
                        ApiError(
                            f"{labels[job_id]}: not finished after {timeout:g} s; the photos "
                            "wait for the recognition service, which may not be running "
                            f"(see Monitoring; job {job_id})",
                            code="job_timeout",
                        ),
                    )
                break
            time.sleep(interval)
    return outcome


def api_status_sidebar() -> bool:
    """The API's address and whether it answers, in the sidebar; True when it does. The address
    links to the API's documentation page (/api/v1/docs), which a browser opens without a token;
    the API's root is a JSON 404."""
    api = client()
    docs = f"{api.base_url}/api/v1/docs"
    try:
        api.health()
    except ApiError as exc:
        if exc.unreachable:
            st.sidebar.error(
                f"API not reachable: {plain(api.base_url, links=True)}", icon=":material/cloud_off:"
            )
        else:
            st.sidebar.error(
                f"API at {plain(api.base_url, links=True)} fails: {plain(exc.message)}",
                icon=":material/error:",
            )
        return False
    st.sidebar.success(
        f"API: [{plain(api.base_url, links=True)}](<{docs}>)",
        icon=":material/cloud_done:",
    )
    return True


# --- photos on screen ----------------------------------------------------------------------------


def photo_label(filename: str | None, number: int) -> str:
    """What a photo is called on screen: the file name it was uploaded under, else "Photo
    ``number``" (its place in the upload, from 1); never a storage key."""
    name = (filename or "").strip()
    return name or f"Photo {number}"


def alt_text(description: str) -> str:
    """An image's alt text: one line of plain text (screen readers read it as it is, no
    Markdown)."""
    return " ".join(description.split()) or "a photo"


def photo_upload_help(config: FrontendSettings) -> str:
    """A photo uploader's help: the API's limit (ATTENDANCE_MAX_UPLOAD_MB), which its "per
    file" line repeats."""
    return (
        f"Each photo up to {photo_upload_mb(config)} MB, the most the API takes in one upload; "
        "many photos are sent a few at a time."
    )
