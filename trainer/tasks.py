"""What a run trains on: one problem at one size, or a weighted mix of problems and sizes (`[trainer]
problems`), and which of them each step's prompts come from.

The schedule is deterministic in the step number (a resumed run draws what the lost run would have drawn)
and proportional at every step, not only on average: slot g of the run (step s, prompt j, g = (s - 1) P + j)
goes to the task furthest behind its share, the largest w_t (g + 1) - n_t(g), where n_t(g) counts the earlier
slots of task t (smooth weighted round robin). With weights 2:1 and 2 prompts a step, the three-slot pattern
A B A repeats, so a light problem is never starved for a run of unlucky draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingTask:
    problem: str
    size: int
    weight: float = 1.0
    """Relative share of the prompts (normalised over the mix)."""


def schedule(tasks: Sequence[TrainingTask], step: int, prompts_per_step: int) -> list[TrainingTask]:
    """The task of each prompt of `step` (1-based), in prompt order."""
    if step < 1 or prompts_per_step < 1 or not tasks:
        raise ValueError("schedule needs step >= 1, prompts_per_step >= 1 and at least one task")
    total = sum(task.weight for task in tasks)
    shares = [task.weight / total for task in tasks]
    counts = [0] * len(tasks)
    chosen: list[TrainingTask] = []
    first = (step - 1) * prompts_per_step
    for slot in range(first + prompts_per_step):
        behind = [share * (slot + 1) - count for share, count in zip(shares, counts, strict=True)]
        t = max(range(len(tasks)), key=lambda i: (behind[i], -i))  # ties: the earlier task
        counts[t] += 1
        if slot >= first:
            chosen.append(tasks[t])
    return chosen
