"""Prompts: a problem's description from the problem registry's data files, plus its current stage.

The trainer reads the registry's TOML files as data (the directory installed with the bencher package,
found without importing it) and never imports the bencher: processes share messages and data, not code.
The stage's permitted techniques come from the archive's `stage.<problem>` events.
"""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path

from trainer import corpus


@dataclass(frozen=True)
class ProblemText:
    id: str
    signature: str
    description: str


def default_problems_dir() -> Path:
    """The registry directory installed with the bencher package (found without importing it)."""
    spec = importlib.util.find_spec("bencher")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the problem registry (bencher/problems/*.toml) is not installed: install hpcrl with `./quickstart setup` "
            "or `pip install -e .`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "problems"


def load_problem_text(problem: str, problems_dir: Path | None = None) -> ProblemText:
    path = (problems_dir or default_problems_dir()) / f"{problem}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no problem file {path}: is {problem!r} a registry problem?") from None
    return ProblemText(data["id"], data["signature"], data["description"].strip())


def build_prompt(problem: ProblemText, permitted: list[str] | None) -> str:
    """The prompt of a problem at a stage, in the one format the policy is trained on
    (`trainer.corpus.build_prompt`): the registry's description, then the permitted techniques."""
    return corpus.build_prompt(problem.description, permitted)
