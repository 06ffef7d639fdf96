"""`[archive]`: configuration of the SQD archive daemon and its commands.

The stage ladder is data: `[[archive.stages]]` tables, each naming every technique its stage permits
(not only the new ones), so cumulative ladders and one-technique-per-stage schedules are both
written in config alone. Each stage may override the transition rule's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.config import ConfigError
from bus.schema import DEFAULT_STAGE_LADDER, TECHNIQUES


@dataclass(frozen=True)
class Stage:
    """One rung of a problem's curriculum and the rule that ends it."""

    number: int
    """1-based."""
    techniques: frozenset[str]
    """Every technique a candidate generated in this stage may use."""
    max_results: int
    """Move on after this many results in the stage, whatever else (0: no limit)."""
    plateau_window: int
    """K: the best objective is compared with its value K results ago."""
    plateau_improvement: float
    """x: less relative improvement than this over the window is a plateau."""
    min_coverage: float
    """c: a plateau ends the stage only once this share of the stage's cells hold an elite."""


@dataclass(frozen=True)
class ArchiveConfig:
    db_path: str = "hpcrl-archive.sqlite"
    """SQLite file of every stored result, the elites, the stages and the bus cursor."""
    name: str = "archive"
    """Sender name on the bus."""
    problems: list[str] = field(default_factory=lambda: ["dgemm"])
    """Problems whose stages this archive runs (it stores results of every problem)."""
    stages: list[dict[str, Any]] = field(default_factory=list)
    """The ladder: `[[archive.stages]]` tables with `techniques` (list) and optional `max_results`,
    `plateau_window`, `plateau_improvement`, `min_coverage`. Empty: the default ladder."""
    max_results: int = 2000
    """Default of each stage's max_results."""
    plateau_window: int = 200
    """Default of each stage's plateau_window (K)."""
    plateau_improvement: float = 0.02
    """Default of each stage's plateau_improvement (x)."""
    min_coverage: float = 0.25
    """Default of each stage's min_coverage (c)."""
    confirm: bool = True
    """Re-measure a result that would become its problem's best before it counts (noisy outliers
    would otherwise become elites); the elite keeps the lower of the two figures."""
    confirm_timeout_s: float = 600.0
    """A confirmation that has not come back by then is sent again (after a restart too)."""
    batch_max: int = 500
    """Results stored per transaction at most."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics endpoint on metrics_address; 0 disables it."""
    metrics_address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if self.max_results < 0 or self.plateau_window < 1:
            raise ConfigError("archive.max_results must be >= 0 (0: no limit) and archive.plateau_window >= 1")
        if self.plateau_improvement < 0 or not 0 <= self.min_coverage <= 1:
            raise ConfigError("archive.plateau_improvement must be >= 0 and archive.min_coverage in [0, 1]")
        if self.batch_max < 1 or self.confirm_timeout_s <= 0:
            raise ConfigError("archive.batch_max must be >= 1 and archive.confirm_timeout_s > 0")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"archive.metrics_port = {self.metrics_port} is not a TCP port (0 disables)")
        self.ladder()  # validates the stage tables now, not at the first transition

    @property
    def db(self) -> Path:
        return Path(self.db_path).expanduser()

    def ladder(self) -> tuple[Stage, ...]:
        tables = self.stages or [{"techniques": list(t)} for t in DEFAULT_STAGE_LADDER]
        ladder = []
        for number, table in enumerate(tables, start=1):
            where = f"archive.stages[{number - 1}]"
            if not isinstance(table, dict):
                raise ConfigError(f"{where} must be a table with `techniques = [...]`")
            unknown = sorted(set(table) - {"techniques", *_STAGE_OVERRIDES})
            if unknown:
                raise ConfigError(
                    f"{where} has unknown keys {unknown}; valid: techniques, {', '.join(_STAGE_OVERRIDES)}"
                )
            techniques = table.get("techniques")
            if not isinstance(techniques, list) or not all(isinstance(t, str) for t in techniques):
                raise ConfigError(f"{where}.techniques must be a list of technique names")
            bad = sorted(set(techniques) - set(TECHNIQUES))
            if bad:
                raise ConfigError(f"{where}.techniques has unknown names {bad}; known: {', '.join(TECHNIQUES)}")
            values = {key: table.get(key, getattr(self, key)) for key in _STAGE_OVERRIDES}
            for key, value in values.items():
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"{where}.{key} = {value!r} must be a number >= 0")
            ladder.append(
                Stage(
                    number=number,
                    techniques=frozenset(techniques),
                    max_results=int(values["max_results"]),
                    plateau_window=max(1, int(values["plateau_window"])),
                    plateau_improvement=float(values["plateau_improvement"]),
                    min_coverage=min(1.0, float(values["min_coverage"])),
                )
            )
        if not ladder:
            raise ConfigError("archive.stages is empty: give at least one stage or leave it out for the default")
        return tuple(ladder)


_STAGE_OVERRIDES = ("max_results", "plateau_window", "plateau_improvement", "min_coverage")
