"""The quality-diversity grid, in pyribs' vocabulary: solutions, objective, measures, elites, cells.

A cell is (problem, size, technique set): the measures are the techniques a candidate uses, the
objective its verified median GFLOPS, and each cell keeps one elite, the best solution found with
exactly that combination. `add` says per item what it did (`new`, `improve_existing`, `not_added`).

Why not a pyribs archive: its archives are grids over continuous measure spaces held in numpy
arrays of numeric solutions; ours are discrete technique sets whose solutions are C sources and
whose persistence is the SQLite store, so a dict keyed by cell is exact, O(1) and has no numpy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from archive.store import Elite
from bus.schema import TECHNIQUES, AddStatus


def cell_of(problem: str, size: int, techniques: Iterable[str]) -> str:
    """`dgemm/512/loop_order+tiling`; `none` for a candidate that uses no technique."""
    return f"{problem}/{size}/{'+'.join(sorted(techniques)) or 'none'}"


@dataclass(frozen=True)
class ArchiveStats:
    """pyribs' ArchiveStats for one scope (all, a problem, or a problem's stage)."""

    num_elites: int
    coverage: float
    """Share of the scope's possible technique sets that have an elite (at any size)."""
    qd_score: float
    """Sum of the elites' objectives (GFLOPS; the objective is never negative, so no offset)."""
    obj_max: float
    obj_mean: float

    def as_dict(self) -> dict[str, float]:
        return {
            "num_elites": float(self.num_elites),
            "coverage": self.coverage,
            "qd_score": self.qd_score,
            "obj_max": self.obj_max,
            "obj_mean": self.obj_mean,
        }


class Grid:
    def __init__(self, elites: Iterable[Elite] = ()) -> None:
        self.cells: dict[str, Elite] = {e.cell: e for e in elites}

    def status_of(self, cell: str, objective: float) -> AddStatus:
        """What adding a solution with this objective to this cell would do (nothing is changed)."""
        current = self.cells.get(cell)
        if current is None:
            return AddStatus.NEW
        return AddStatus.IMPROVE_EXISTING if objective > current.objective else AddStatus.NOT_ADDED

    def add(self, elite: Elite) -> AddStatus:
        status = self.status_of(elite.cell, elite.objective)
        if status is not AddStatus.NOT_ADDED:
            self.cells[elite.cell] = elite
        return status

    def add_batch(self, elites: Iterable[Elite]) -> list[AddStatus]:
        return [self.add(elite) for elite in elites]

    def best(self, problem: str, size: int) -> float:
        return max((e.objective for e in self.cells.values() if e.problem == problem and e.size == size), default=0.0)

    def elites(self, problem: str | None = None) -> list[Elite]:
        chosen = [e for e in self.cells.values() if problem is None or e.problem == problem]
        return sorted(chosen, key=lambda e: (e.problem, e.size, -e.objective))

    def stats(self, problem: str | None = None, techniques: frozenset[str] | None = None) -> ArchiveStats:
        """Statistics of the elites of `problem` (all problems: None) whose technique sets lie within
        `techniques` (a stage's permitted set; None: any). Coverage counts technique sets, at any size,
        out of the 2^|techniques| possible ones."""
        allowed = frozenset(TECHNIQUES) if techniques is None else techniques
        chosen = [
            e for e in self.cells.values() if (problem is None or e.problem == problem) and set(e.techniques) <= allowed
        ]
        objectives = [e.objective for e in chosen]
        problems = {e.problem for e in chosen} if problem is None else {problem}
        filled = {(e.problem, frozenset(e.techniques)) for e in chosen}
        possible = max(1, len(problems)) * 2 ** len(allowed)
        return ArchiveStats(
            num_elites=len(chosen),
            coverage=len(filled) / possible,
            qd_score=sum(objectives),
            obj_max=max(objectives, default=0.0),
            obj_mean=sum(objectives) / len(objectives) if objectives else 0.0,
        )
