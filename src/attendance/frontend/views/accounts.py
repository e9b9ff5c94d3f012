"""Accounts (admins): who may log in, with which role and classes; new accounts, a new
password, disabling and enabling. The API audits every change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError

ROLES = ["teacher", "viewer", "admin"]
ROLE_WORDS = {
    "teacher": "teacher: takes attendance for their classes",
    "viewer": "viewer: sees attendance only",
    "admin": "admin: everything, accounts included",
}


def _classes(text: str) -> list[str] | None:
    """Comma-separated classes, or None (every class) when there are none."""
    classes = sorted({c.strip() for c in text.split(",") if c.strip()})
    return classes or None


def _table(accounts: list[dict]) -> None:
    rows = [
        {
            "username": a["username"],
            "role": a["role"],
            "classes": ", ".join(a["classes"]) if a.get("classes") else "every class",
            "status": "✖ disabled" if a.get("disabled") else "✔ active",
            "email": a.get("email") or "",
        }
        for a in accounts
    ]
    st.dataframe(
        pd.DataFrame(rows, columns=["username", "role", "classes", "status", "email"]),
        hide_index=True,
        width="stretch",
    )


def _new_account(api: ApiClient) -> None:
    with st.form("accounts.new", clear_on_submit=True):
        st.subheader("New account")
        left, right = st.columns(2)
        username = left.text_input(
            "Username", key="accounts.new.username", help="Lowercase letters, digits, . _ -"
        )
        role = right.selectbox(
            "Role", ROLES, format_func=ROLE_WORDS.__getitem__, key="accounts.new.role"
        )
        classes = st.text_input(
            "Classes",
            key="accounts.new.classes",
            placeholder="every class",
            help="The classes this account may see, separated by commas; empty: every class.",
        )
        email = st.text_input(
            "Email (school account)",
            key="accounts.new.email",
            help="The address the person logs in with through the school's identity provider "
            "(Google, Microsoft), where one is set up. With an email, the password may stay "
            "empty: then that is the only way in.",
        )
        left, right = st.columns(2)
        password = left.text_input("Password", type="password", key="accounts.new.password")
        again = right.text_input("Password again", type="password", key="accounts.new.again")
        if not st.form_submit_button("Create the account", type="primary", icon=":material/add:"):
            return
    if password != again:
        st.warning("The two passwords differ.", icon=":material/warning:")
        return
    try:
        api.create_account(
            username.strip().lower(),
            password or None,
            role,
            _classes(classes),
            email.strip() or None,
        )
    except ApiError as exc:
        ui.show_error(exc, "The account was not created")
        return
    st.success(f"Created {ui.plain(username.strip().lower())} ({role}).", icon=":material/check:")


def _change(api: ApiClient, accounts: list[dict]) -> None:
    st.subheader("Change an account")
    names = [a["username"] for a in accounts]
    username = st.selectbox("Account", names, key="accounts.change.username")
    account = next(a for a in accounts if a["username"] == username)
    if account.get("disabled"):
        if st.button("Enable", key="accounts.enable", icon=":material/check_circle:"):
            _apply(api, username, "enabled", disabled=False)
    elif st.button("Disable (its logins end)", key="accounts.disable", icon=":material/block:"):
        _apply(api, username, "disabled", disabled=True)
    with st.form("accounts.password", clear_on_submit=True):
        password = st.text_input("New password", type="password", key="accounts.change.password")
        if st.form_submit_button("Set the new password (its logins end)", icon=":material/key:"):
            _apply(api, username, "given a new password", password=password)
    with st.form(f"accounts.email.{username}"):
        email = st.text_input(
            "Email (school account)",
            value=account.get("email") or "",
            key=f"accounts.change.email.{username}",
            help="Empty: no login through the school's identity provider.",
        )
        if st.form_submit_button("Save the email", icon=":material/alternate_email:"):
            _apply(api, username, "changed", email=email.strip())
    with st.form("accounts.role"):
        role = st.selectbox(
            "Role",
            ROLES,
            index=ROLES.index(account["role"]),
            format_func=ROLE_WORDS.__getitem__,
            key=f"accounts.change.role.{username}",
        )
        classes = st.text_input(
            "Classes",
            value=", ".join(account.get("classes") or []),
            placeholder="every class",
            key=f"accounts.change.classes.{username}",
        )
        if st.form_submit_button("Save role and classes", icon=":material/save:"):
            wanted = _classes(classes)
            change = (
                {"role": role, "all_classes": True}
                if wanted is None
                else {
                    "role": role,
                    "classes": wanted,
                }
            )
            _apply(api, username, "changed", **change)


def _apply(api: ApiClient, username: str, what: str, **change) -> None:
    try:
        api.change_account(username, **change)
    except ApiError as exc:
        ui.show_error(exc, f"{username} was not {what}")
        return
    st.session_state["accounts.done"] = f"{username} was {what}."
    st.rerun()


def render() -> None:
    st.title("Accounts")
    st.caption(
        "Who may log in to the app, with which role and for which classes. Programs use API "
        "tokens instead (attendance-tokens on the server)."
    )
    api = ui.logged_in_client()
    accounts = ui.fetch("Could not load the accounts", api.accounts)
    done = st.session_state.pop("accounts.done", None)
    if done:
        st.success(done, icon=":material/check:")
    if accounts:
        _table(accounts)
        _change(api, accounts)
    else:
        st.info("No account yet: create the first below.", icon=":material/info:")
    _new_account(api)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
