"""The demo's policy: the tiny model from its cache, or built into it once (`hpcrl tiny-model`).

The build runs as a child process into `<key>.partial-<pid>` beside its cache entry and is renamed into
place only when it finished, so an interrupted or failed build leaves nothing a later run could mistake
for a model. Its progress comes from the build's log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final, TextIO

from ops.demo_progress import Progress
from ops.processes import HPCRL

MODEL_CACHE: Final = "~/.cache/hpcrl/tiny-model"
"""Where `hpcrl demo` and `hpcrl perf trainer` keep the tiny model: one directory per build key."""
BUILD_TIMEOUT_S: Final = 2700.0
"""A build that takes longer than this is stopped. It takes 4.5-6 minutes on 2 Intel AVX-512 cores, 13-20 on
AMD Zen 3 ones, and 33 on one Zen 3 core while the other was busy: stopping it at 30 would waste all of that."""
PROGRESS_LINE: Final = re.compile(r"event=step step=(\d+) loss=([0-9.]+)")
PRINT_EVERY_STEPS: Final = 200
"""Without a terminal, a progress line per this many training steps of the build."""


def ensure_tiny_model(
    cache_root: Path, run_dir: Path, threads: int, interrupted: list[bool], stream: TextIO | None = None
) -> tuple[Path | None, str]:
    """The cached tiny model's directory, building it first if needed (progress on `stream`, default the
    standard output of the moment, not of import time); (None, why) if that failed."""
    stream = stream or sys.stdout
    from trainer.tiny_model import TinyModelConfig, cache_path, is_built

    config = TinyModelConfig(out="")
    path = cache_path(cache_root, config)
    if is_built(path):
        print(f"  model: the tiny model, cached in {path}", file=stream)
        return path, "cached"
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir / "tiny-model.log"
    print(f"  model: building the tiny model once (5-20 minutes on 2 cores), to be cached in {path}", file=stream)
    command = [*HPCRL, "tiny-model", "--out", str(partial), "--threads", str(max(1, threads))]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    progress = Progress(config.steps, "training step", print_every=PRINT_EVERY_STEPS, stream=stream)
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    try:
        while process.poll() is None and not interrupted and time.monotonic() < deadline:
            time.sleep(1.0)
            steps = PROGRESS_LINE.findall(log.read_text(errors="replace"))
            if steps:
                step, loss = steps[-1]
                progress.update(int(step), f"loss {float(loss):.3f}")
    finally:
        progress.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)
    if process.returncode != 0 or not is_built(partial):
        shutil.rmtree(partial, ignore_errors=True)
        if interrupted:
            return None, "interrupted while building the tiny model"
        if time.monotonic() >= deadline:
            return None, f"`hpcrl tiny-model` took over {BUILD_TIMEOUT_S:.0f} s and was stopped; see {log}"
        return None, f"`hpcrl tiny-model` failed (exit status {process.returncode}); see {log}"
    try:
        partial.rename(path)
    except OSError:  # another demo finished the same build first: keep its copy
        shutil.rmtree(partial, ignore_errors=True)
    print(f"  model: built and cached in {path}", file=stream)
    return path, "built"


def benchmark_model(model: Path | None, quick: bool, work: Path, cpus: int) -> Path:
    """The model an `hpcrl perf` benchmark runs: the one given; with `quick`, a toy one built in `work` in
    seconds (figures for smoke tests only); else the demo's cached tiny model, built first if missing."""
    if model is not None:
        return model
    if quick:
        from trainer.tiny_model import TinyModelConfig, build

        model = work / "tiny-model"
        build(TinyModelConfig(out=str(model), steps=40, samples=0, check_samples=False))
        return model
    cached, why = ensure_tiny_model(Path(MODEL_CACHE).expanduser(), work, cpus, [], sys.stderr)
    if cached is None:
        raise RuntimeError(why)
    return cached
