"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) are kept by
the package, and they do fail when a module imports across a forbidden line or makes a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = [
    c["name"]
    for c in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports over the package under root/src, with root's pyproject.toml.

    import-linter reads the package it checks from the import path, so the altered copy goes
    first on the path of that one subprocess (for the real package, root/src is the venv's own
    editable install and this changes nothing)."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def verdicts(output: str) -> dict[str, str]:
    """{contract name: "KEPT" | "BROKEN"} from lint-imports' summary (names may wrap)."""
    flat = " ".join(output.split())
    out = {}
    for name in CONTRACTS:
        for verdict in ("KEPT", "BROKEN"):
            if f"{name} {verdict}" in flat:
                out[name] = verdict
    return out


def test_the_package_keeps_every_import_contract():
    assert len(CONTRACTS) >= 5
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(verdicts(result.stdout).values()) == {"KEPT"}
    assert set(verdicts(result.stdout)) == set(CONTRACTS)


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_each_contract_fails_on_the_import_it_forbids(tmp_path):
    shutil.copytree(
        REPO / "src" / "attendance",
        tmp_path / "src" / "attendance",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    pkg = tmp_path / "src" / "attendance"
    # config importing the project breaks the layers
    _append(pkg / "config" / "__init__.py", "import attendance.domain.errors")
    # the web reaching the face code
    _append(pkg / "web" / "__init__.py", "import attendance.face.detect")
    # the frontend reaching a store
    _append(pkg / "frontend" / "__init__.py", "import attendance.stores.jobs")
    # a service importing Flask
    _append(pkg / "services" / "__init__.py", "import flask")
    # two modules of one package importing each other
    _append(pkg / "stores" / "jobs.py", "import attendance.stores.gallery")
    _append(pkg / "stores" / "gallery.py", "import attendance.stores.jobs")

    result = lint_imports(tmp_path)
    assert result.returncode != 0
    found = verdicts(result.stdout)
    assert found == {name: "BROKEN" for name in CONTRACTS}, result.stdout[-3000:]
