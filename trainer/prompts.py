"""Prompts: a problem's description from its problem file (bus/problems.py), plus its current stage.

The trainer reads problem files as data, the shipped ones and those of `[bencher] problem_dirs`, and never
imports the bencher: processes share messages and data, not code. The stage's permitted techniques come
from the archive's `stage.<problem>` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bus.problems import get_problem
from trainer import corpus


@dataclass(frozen=True)
class ProblemText:
    id: str
    signature: str
    description: str


def load_problem_text(problem: str, problem_dirs: Sequence[str] = ()) -> ProblemText:
    """The prompt text of a problem; ProblemError (naming the known problems) when there is none."""
    spec = get_problem(problem, problem_dirs)
    return ProblemText(spec.id, spec.signature, spec.description.strip())


def build_prompt(problem: ProblemText, permitted: list[str] | None) -> str:
    """The prompt of a problem at a stage, in the one format the policy is trained on
    (`trainer.corpus.build_prompt`): the registry's description, then the permitted techniques."""
    return corpus.build_prompt(problem.description, permitted)
