"""The demo's live view: a progress bar on a terminal (tqdm), one line per update otherwise (logs, CI);
and following the training run on the bus until the trainer has made its steps."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Final, TextIO

from bus.client import BusClient
from bus.config import BusConfig
from bus.schema import Event, StageChange, TrainerStep
from ops.processes import Children

START_TIMEOUT_S: Final = 120.0
"""How long the benchers (peak probe and calibration first) and the archive (stage 1) may take to come up."""
FIRST_STEP_TIMEOUT_S: Final = 300.0
"""How long the trainer may take to load the model and make its first step."""
STEP_TIMEOUT_S: Final = 300.0
"""Longest gap between two steps before the demo gives up (a step takes a few seconds here)."""
POLL_S: Final = 0.5
"""Longest wait for events per turn (bounds the reaction to a dead process or Ctrl-C)."""


class Progress:
    """`done` of `total` units with a line of text: a tqdm bar on a terminal, else a printed line per
    update (at most one per `print_every` units, and the last)."""

    def __init__(self, total: int, unit: str, print_every: int = 1, stream: TextIO | None = None) -> None:
        stream = stream or sys.stdout  # looked up now: a caller may have redirected it since import
        self.total, self.unit, self.print_every, self.stream = total, unit, print_every, stream
        self.printed = 0
        self.bar: Any = None
        if stream.isatty():
            from tqdm import tqdm  # type: ignore[import-untyped]

            # A terminal that reports no width (a pty under `script`, some CI runners) gets 100 columns.
            width = shutil.get_terminal_size((100, 24)).columns or 100
            self.bar = tqdm(total=total, unit=unit, file=stream, ncols=width, leave=True)

    def update(self, done: int, text: str) -> None:
        if self.bar is not None and self.bar.disable:
            self.bar = None  # tqdm turns itself off when a write fails: fall back to lines
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()
        elif done - self.printed >= self.print_every or done == self.total:
            self.printed = done
            print(f"    {self.unit} {done:>4}/{self.total}  {text}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A line of its own, above the bar."""
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def step_line(step: TrainerStep) -> str:
    verdicts = " ".join(f"{verdict} {count}" for verdict, count in sorted(step.verdicts.items()))
    return (
        f"stage {step.stage}  reward {step.reward_mean:7.2f}  GFLOPS mean {step.gflops_mean:6.2f} "
        f"max {step.gflops_max:6.2f}  [{verdicts}]  {step.step_s:4.1f} s"
    )


def stage_line(change: StageChange) -> str:
    return (
        f"  stage {change.from_stage} -> {change.to_stage} ({change.reason}); it permits "
        f"{', '.join(change.techniques) or 'nothing'}"
    )


def follow_training(
    bus: BusConfig,
    children: Children,
    config: Path,
    trainer_cpus: tuple[int, ...],
    benchers: int,
    run: str,
    problem: str,
    steps: int,
    interrupted: list[bool],
) -> dict[str, Any]:
    """Wait for `benchers` workers and the archive's first stage, start the trainer on `trainer_cpus`, and
    show its steps until it exits. What went wrong, if anything, under `error`."""
    started = time.monotonic()
    with BusClient(bus, name="demo", subscribe=["trainer.", "stage."]) as client:
        print(f"  waiting for {benchers} bencher(s) (they measure the node first) and the archive's stage 1 ...")
        stage: StageChange | None = None
        deadline = started + START_TIMEOUT_S
        while client.workers_alive < benchers or stage is None:
            problem_now = "interrupted" if interrupted else children.dead()
            if problem_now is None and time.monotonic() > deadline:
                late = "the benchers did not connect" if stage is not None else "the archive announced no stage"
                problem_now = f"{late} within {START_TIMEOUT_S:.0f} s; see the logs in {children.run_dir}"
            if problem_now is not None:
                return {"error": problem_now}
            if stage is None:
                latest = client.latest(["stage."], timeout_s=POLL_S) or []
                stage = next((e for e in latest if isinstance(e, StageChange) and e.problem == problem), None)
            client.pump(0.1)
        print(
            f"  up after {time.monotonic() - started:.1f} s; {problem} is in stage {stage.to_stage}, which permits "
            f"{', '.join(stage.techniques) or 'nothing'}; starting the trainer ({steps} steps)"
        )
        children.start("trainer", "train", "--config", str(config), cpus=trainer_cpus)
        progress = Progress(steps, "step")
        error: str | None = None
        last_step_at, gap = time.monotonic(), FIRST_STEP_TIMEOUT_S
        try:
            while children.running("trainer"):
                error = "interrupted" if interrupted else children.dead(expected_to_exit={"trainer"})
                if error is None and time.monotonic() - last_step_at > gap:
                    error = f"no trainer step for {gap:.0f} s; see {children.log('trainer')}"
                if error is not None:
                    break
                if _show(client.next_events(POLL_S), progress, run, problem):
                    last_step_at, gap = time.monotonic(), STEP_TIMEOUT_S
            _show(client.next_events(POLL_S), progress, run, problem)  # the last step, sent just before the exit
        finally:
            progress.close()
    if error is None:
        error = children.dead(expected_to_exit={"trainer"})
    return {"error": error} if error else {}


def _show(events: list[Event], progress: Progress, run: str, problem: str) -> bool:
    """Show the run's steps and the problem's stage changes; whether a step was among them."""
    stepped = False
    for event in events:
        if isinstance(event, TrainerStep) and event.run == run:
            progress.update(event.step, step_line(event))
            stepped = True
        elif isinstance(event, StageChange) and event.problem == problem:
            progress.note(stage_line(event))
    return stepped
