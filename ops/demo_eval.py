"""The demo's before-and-after: `hpcrl eval` of the base model and of the trained adapter on the trained
problem and size plus held-out tasks (the `demo_heldout` suite: another size, and a problem the demo does
not train on), through the run's own bus and benchers, once training has ended.

The archive is stopped first: it stores every result it sees, and the evaluations' programs are not the
training run's. Each evaluation writes its directory (`eval-base/`, `eval-trained/`: eval.json, eval.md,
PNGs, samples.jsonl) in the run directory; summary.json gets their `overall` objects.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

from bus.problems import load_registry
from ops.processes import HPCRL, Children

HELDOUT_SUITE: Final = "demo_heldout"
EVAL_TIMEOUT_S: Final = 900.0
"""One evaluation's bound: sampling a dozen completions and measuring them takes about a minute on 2 cores."""


def evaluate_before_and_after(
    children: Children,
    config: Path,
    model_dir: Path,
    adapter: Path | None,
    trained: list[str],
    samples: int,
    cpus: tuple[int, ...],
) -> dict[str, Any]:
    """`eval_base` and `eval_trained` (the `overall` objects) and `eval_comparison` (the printed table) on the
    `trained` tasks (id@size) and the held-out ones, or `eval_error` saying what failed."""
    if adapter is None:
        return {"eval_error": "the trainer left no checkpoint to evaluate"}
    children.stop(["archive"], 30.0)
    heldout = [f"{t.problem}@{t.size}" for t in load_registry().suite(HELDOUT_SUITE)]
    problems = ",".join([*trained, *(t for t in heldout if t not in trained)])
    k = 1  # pass@1 and fast_p@1: what one sample is worth, which training moves before it moves best-of-k
    outputs: dict[str, Path] = {}
    for name, extra in (("base", ()), ("trained", ("--adapter", str(adapter)))):
        out = children.run_dir / f"eval-{name}"
        pin = ["taskset", "--cpu-list", ",".join(map(str, cpus))] if shutil.which("taskset") else []
        command = [*pin, *HPCRL, "eval", "--config", str(config), "--model", str(model_dir), *extra]
        command += ["--problems", problems, "--k", str(k), "--samples", str(samples), "--out", str(out)]
        print(f"  evaluating the {name} model on {problems} ({samples} samples each, k = {k}) ...")
        with open(children.log(f"eval-{name}"), "wb") as log:
            try:
                done = subprocess.run(
                    command, env=children.env, stdout=log, stderr=subprocess.STDOUT, timeout=EVAL_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                return {"eval_error": f"the {name} evaluation took longer than {EVAL_TIMEOUT_S:.0f} s"}
        if done.returncode != 0 or not (out / "eval.json").is_file():
            log_path = children.log(f"eval-{name}")
            return {"eval_error": f"the {name} evaluation failed (exit {done.returncode}); see {log_path}"}
        outputs[name] = out / "eval.json"
    from trainer.evaluation.report import compare_files

    return {
        "eval_tasks": problems.split(","),
        "eval_base": json.loads(outputs["base"].read_text())["overall"],
        "eval_trained": json.loads(outputs["trained"].read_text())["overall"],
        "eval_comparison": compare_files(outputs["base"], outputs["trained"]),
    }
