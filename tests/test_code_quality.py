"""The house style is checked, not hoped for: ruff lint and format on everything, mypy --strict (see
pyproject.toml: bus/, bencher/, archive/, trainer/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_to_lint() -> None:
    done = run(str(TOOLS / "ruff"), "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_ruff_formatted() -> None:
    done = run(str(TOOLS / "ruff"), "format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_passes_on_the_bus_the_bencher_and_the_archive() -> None:
    done = run(str(TOOLS / "mypy"))
    assert done.returncode == 0, done.stdout + done.stderr
