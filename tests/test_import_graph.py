"""Packages follow processes: bus imports no other hpcrl package; trainer, bencher and archive
import bus and never each other. Checked on the source, so a lazy import inside a function counts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bus", "trainer", "bencher", "archive", "ops")
ALLOWED = {
    "bus": set(),
    "trainer": {"bus"},
    "bencher": {"bus"},
    "archive": {"bus"},
    "ops": {"bus", "trainer", "bencher", "archive"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_each_package_imports_only_what_its_process_may() -> None:
    violations = {
        package: {other: files for other, files in imported_packages(package).items() if other not in ALLOWED[package]}
        for package in PACKAGES
    }
    assert not {p: v for p, v in violations.items() if v}


def test_the_checker_sees_imports() -> None:
    # Guard against a checker that passes because it finds nothing.
    assert "bus" in imported_packages("tests")


def test_a_bencher_node_never_imports_the_ml_stack() -> None:
    code = (
        "import sys, ops.cli, bus.broker, bus.client, bus.worker, bus.test_worker, bus.cli\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'vllm') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == ""
