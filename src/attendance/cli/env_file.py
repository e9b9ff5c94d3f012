"""Where the command-line tools are, and the few settings they need before (or without) the
application's Settings: the environment first, then the ``.env`` of the working directory, read
by python-dotenv as pydantic-settings reads it for the application."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

# Like the app's settings, relative paths (var/, .env) are the working directory's: the stack
# runs from its checkout or its container's /app.
REPO_ROOT = Path.cwd()
VAR_DIR = REPO_ROOT / "var"


def dotenv_value(name: str, root: Path = REPO_ROOT) -> str | None:
    """``name`` in ``root/.env``; None when the file, the name or its value is missing."""
    try:
        # Always an explicit path: without one, python-dotenv searches the parent directories.
        values = dotenv_values(root / ".env")
    except OSError:
        return None
    return values.get(name) or None


def setting(name: str, root: Path = REPO_ROOT) -> str | None:
    """``$name`` if set and not empty, else its value in ``root/.env``, else None."""
    return os.environ.get(name) or dotenv_value(name, root)
