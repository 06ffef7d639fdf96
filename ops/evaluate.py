"""`hpcrl eval`: what a model (with or without a trained adapter) can do on a suite of problems, measured by
the same bus and benchers as training, so it runs on a cluster unchanged; and `hpcrl eval --compare A B`.

Data flow: the suite's tasks (problem @ size) -> one prompt each (the problem's description, no stage: every
technique permitted) -> N completions per task from the configured generation backend (`[trainer] backend`,
`[grpo]` temperature/top_p/max_completion_tokens, as in training) -> candidates on the bus (run `eval-<id>`)
-> results (verdict, rate in the problem's metric, the node's naive and vendor baselines, cached or not) ->
technique labels of each program (the archive's analyser, run here: no archive needs to be up) ->
trainer/evaluation/stats.py (pass@k, fast_p@k, geomean speedup, cells) -> eval.json, eval.md, PNGs.

It lives in ops/ because it joins the trainer's generation and the archive's analyser in one process.
A running archive stores the eval's results too (it stores every result): evaluate after training, or
against a bus whose archive is not the training run's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.cli import add_config_arguments, load_or_exit
from bus.config import ConfigError, HpcrlConfig
from bus.daemon import setup_logging
from bus.problems import ProblemError, Registry, SuiteTask, load_registry, parse_task
from bus.schema import Result, Role, Verdict

if TYPE_CHECKING:  # the trainer's ML stack is imported when an evaluation runs, not for --compare or --help
    from trainer.config import TrainerConfig
    from trainer.evaluation.stats import Sample

log = logging.getLogger(__name__)
RESULT_TIMEOUT_S = 1800.0
"""Default wait for the last result: a cluster's benchers may be busy with a training run."""


@dataclass(frozen=True)
class Drawn:
    """One completion of one task, as submitted."""

    task: SuiteTask
    candidate_id: str
    code: str | None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl eval",
        description="Sample completions for a suite of problems, have the benchers measure them over the bus, and "
        "report pass@k, fast_p@k against the node's naive and vendor baselines, the geometric-mean speedup and "
        "the techniques used (docs/evaluation.md). Or compare two evaluations with --compare.",
    )
    add_config_arguments(parser)
    parser.add_argument("--model", help="local Hugging Face model directory (overrides policy.model_dir)")
    parser.add_argument("--adapter", help="a LoRA adapter directory to evaluate on top of the model (a checkpoint's)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--suite", help="a suite of bencher/problems/suites.toml or of bencher.problem_dirs")
    which.add_argument("--problems", help="comma-separated problems, each id or id@size (e.g. dgemm@256,transpose)")
    which.add_argument("--compare", nargs=2, metavar="EVAL_JSON", help="print two evaluations side by side")
    parser.add_argument("--k", type=int, default=4, help="k of pass@k and fast_p@k (default 4)")
    parser.add_argument("--samples", type=int, help="completions per task, n >= k (default: k)")
    parser.add_argument("--out", help="output directory (default: eval-<UTC time>)")
    parser.add_argument("--result-timeout-s", type=float, default=RESULT_TIMEOUT_S, help="wait for results this long")
    parser.add_argument("--json", action="store_true", help="print eval.json (with its `cost`) instead of the table")
    args = parser.parse_args(argv)
    setup_logging("WARNING" if args.log_level == "INFO" else args.log_level)
    if args.compare:
        from trainer.evaluation.report import EvalFileError, compare_files

        try:
            print(compare_files(*args.compare))
        except EvalFileError as error:
            parser.exit(2, f"{parser.prog}: {error}\n")
        return 0
    if not (args.suite or args.problems):
        parser.error("choose what to evaluate: --suite NAME or --problems a,b,... (or --compare A B)")
    samples = args.samples or args.k
    if args.k < 1 or samples < args.k:
        parser.error(f"need k >= 1 and --samples >= k (got k = {args.k}, samples = {samples})")
    hpcrl = load_or_exit(parser, args.config)

    from trainer.config import load_trainer_config

    env = {**os.environ, **({"HPCRL_POLICY__MODEL_DIR": args.model} if args.model else {})}
    try:
        config: TrainerConfig = load_trainer_config(args.config, env)
        registry = load_registry(config.problem_dirs)
        tasks = registry.suite(args.suite) if args.suite else _tasks(args.problems, registry)
    except (ConfigError, ProblemError) as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    out = Path(args.out or time.strftime("eval-%Y%m%dT%H%M%SZ", time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)
    obj = evaluate(hpcrl, config, registry, tasks, args, samples, out)
    from trainer.evaluation.report import markdown, write_report

    written = write_report(obj, out)
    print(json.dumps(obj, indent=2) if args.json else markdown(obj))
    print(f"\nwritten: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _tasks(text: str, registry: Registry) -> tuple[SuiteTask, ...]:
    return tuple(parse_task(entry.strip(), registry) for entry in text.split(",") if entry.strip())


def evaluate(
    hpcrl: HpcrlConfig,
    config: TrainerConfig,
    registry: Registry,
    tasks: tuple[SuiteTask, ...],
    args: argparse.Namespace,
    samples: int,
    out: Path,
) -> dict[str, Any]:
    """Sample, measure and score; returns the eval.json object (with the run's cost)."""
    from trainer.evaluation.report import eval_object
    from trainer.evaluation.stats import figures_by_problem

    started = time.monotonic()
    drawn, load_s = _sample(config, registry, tasks, args.adapter, samples, out)
    generated = time.monotonic()
    results = _measure(hpcrl, drawn, args.result_timeout_s)
    measured = time.monotonic()
    scored = _samples_of(drawn, results)
    problems = figures_by_problem(scored, args.k)
    obj = eval_object(str(config.policy.model_dir), args.adapter, args.suite, args.k, problems)
    fresh = [r for r in results.values() if not r.cached]
    obj["cost"] = {
        "samples": len(drawn),
        "load_s": round(load_s, 3),
        "generate_s": round(generated - started - load_s, 3),
        "measure_wait_s": round(measured - generated, 3),
        "bencher_s": round(sum(r.compile_s + r.run_s for r in fresh), 3),
        "per_sample_s": round((measured - started - load_s) / max(1, len(drawn)), 3),
        "cached_results": len(results) - len(fresh),
    }
    (out / "samples.jsonl").write_text(
        "".join(json.dumps(_sample_record(d, results.get(d.candidate_id))) + "\n" for d in drawn)
    )
    return obj


def _sample(
    config: TrainerConfig,
    registry: Registry,
    tasks: tuple[SuiteTask, ...],
    adapter: str | None,
    samples: int,
    out: Path,
) -> tuple[list[Drawn], float]:
    """The completions, and the seconds spent loading the model (a fixed cost, not a sample's)."""
    from trainer.backends import backend_for
    from trainer.corpus import build_prompt
    from trainer.distributed import Placement, device_of
    from trainer.generation import extract_code, render_prompt
    from trainer.policy import load_policy

    started = time.monotonic()
    device = device_of(config.policy.torch_device, Placement())
    model, tokenizer = load_policy(config.policy, Path(adapter) if adapter else None, device)
    backend = backend_for(config, model, tokenizer, out)
    backend.load_policy(model, 0)
    load_s = time.monotonic() - started
    prompts = [render_prompt(tokenizer, build_prompt(registry.problem(t.problem).description, None)) for t in tasks]
    completions = backend.sample(prompts, samples, config.sampling)
    # Ids name the run and its start: a second evaluation into the same --out is measured, not answered from
    # the journal; and they stay within the bus limit (200 characters) whatever --out is called.
    run = f"{out.resolve().name[:48]}-{int(time.time())}"
    drawn = []
    for index, completion in enumerate(completions):
        task = tasks[completion.group]
        code = extract_code(completion.text)
        digest = hashlib.sha256((code or completion.text).encode()).hexdigest()[:16]
        drawn.append(Drawn(task, f"eval-{run}-{task.problem}-{task.size}-{index}-{digest}", code))
    log.info("event=sampled tasks=%d completions=%d", len(tasks), len(drawn))
    return drawn, load_s


def _measure(hpcrl: HpcrlConfig, drawn: list[Drawn], timeout_s: float) -> dict[str, Result]:
    from bus.client import BusClient

    with BusClient(hpcrl.bus, hpcrl.client, name=f"eval-{os.getpid()}", role=Role.TRAINER) as client:
        for d in drawn:
            if d.code is not None:
                client.submit(d.task.problem, d.task.size, d.code, run="eval", candidate_id=d.candidate_id)
        waiting = [d.candidate_id for d in drawn if d.code is not None]
        results = client.wait_results(waiting, timeout_s) if waiting else {}
    for cid in set(waiting) - set(results):
        log.warning("event=candidate_lost id=%s (no result within %.0f s; dropped, not charged)", cid, timeout_s)
    return results


def _samples_of(drawn: list[Drawn], results: dict[str, Result]) -> list[Sample]:
    from archive.techniques import analyze
    from trainer.evaluation.stats import Sample
    from trainer.rewards import LOST, NO_CODE

    # A completion without code (or without a result) is still a sample of its task: it takes its task's
    # baselines from the task's results, so the task's references stay known (stats.py reads them per task).
    baselines: dict[SuiteTask, tuple[float, float]] = {}
    for d in drawn:
        result = results.get(d.candidate_id)
        if result is not None and result.naive_rate:
            baselines.setdefault(d.task, (result.naive_rate, result.vendor_rate))
    samples = []
    for d in drawn:
        result = results.get(d.candidate_id)
        naive, vendor = baselines.get(d.task, (0.0, 0.0))
        if d.code is None or result is None:
            verdict = NO_CODE if d.code is None else LOST
            samples.append(Sample(d.task.problem, d.task.size, verdict, naive_rate=naive, vendor_rate=vendor))
            continue
        labels = tuple(sorted(analyze(d.code).techniques)) if result.verdict is Verdict.OK else ()
        samples.append(
            Sample(
                d.task.problem,
                d.task.size,
                result.verdict.value,
                rate=result.rate,
                naive_rate=result.naive_rate or naive,
                vendor_rate=result.vendor_rate or vendor,
                techniques=labels,
                program=hashlib.sha256(d.code.encode()).hexdigest()[:16],
                cached=result.cached,
            )
        )
    return samples


def _sample_record(drawn: Drawn, result: Result | None) -> dict[str, Any]:
    """One line of samples.jsonl: what was asked, what came back (for a reader who wants the programs)."""
    return {
        "candidate_id": drawn.candidate_id,
        "problem": drawn.task.problem,
        "size": drawn.task.size,
        "code": drawn.code,
        "verdict": result.verdict.value if result else None,
        "rate": result.rate if result else None,
        "metric": result.metric if result else None,
        "cached": result.cached if result else None,
        "detail": result.detail[:500] if result else None,
    }
