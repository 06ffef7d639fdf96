"""Review of issue 12: how trainer.sbatch starts and stops its ranks under a real SLURM, with a stand-in `hpcrl`
(a shell script that records each rank's SLURM_PROCID / SLURM_NTASKS and the signals it gets)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.slurm_support import SlurmCluster
from tests.test_ops_slurm import TRAINER_SBATCH, clean_env, cluster, slurm  # noqa: F401  (fixtures)

pytestmark = pytest.mark.filterwarnings("ignore")

FAKE_HPCRL = """#!/bin/bash
# A rank: announces itself, exits 0 on SIGTERM (as rank 0 does after its checkpoint), records a SIGKILL by absence.
out={out}
echo "start rank=${{SLURM_PROCID:-?}} ntasks=${{SLURM_NTASKS:-?}}" >> "$out"
trap 'echo "term rank=${{SLURM_PROCID:-?}}" >> "$out"; exit 0' TERM
while true; do sleep 0.1; done
"""


def _fake(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "ranks.txt"
    script = tmp_path / "hpcrl"
    script.write_text(FAKE_HPCRL.format(out=out))
    script.chmod(0o755)
    return script, out


def test_ntasks_per_node_as_launch_run_passes_it_starts_that_many_ranks(slurm: SlurmCluster, tmp_path: Path) -> None:
    """launch-run submits `--nodes=N --ntasks-per-node=R`; the script's own `#SBATCH --ntasks=1` takes precedence."""
    script, out = _fake(tmp_path)
    env = {**clean_env(slurm), "HPCRL": str(script)}
    job = slurm.sbatch("--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--gres=gpu:1",
                       f"--output={tmp_path}/job.out", str(TRAINER_SBATCH), env=env)  # fmt: skip
    wait_for(lambda: out.is_file() and out.read_text().count("start") >= 1, 30, "a rank to start")
    time.sleep(2)
    starts = [line for line in out.read_text().splitlines() if line.startswith("start")]
    slurm.run("scancel", job)
    assert len(starts) == 2, f"{starts}\n{(tmp_path / 'job.out').read_text()}"


def test_sigterm_to_the_batch_step_reaches_rank_0_as_sigterm(slurm: SlurmCluster, tmp_path: Path) -> None:
    """--signal=B:TERM and `scancel --batch --signal=TERM` signal the batch shell, which `exec`s srun: rank 0 must
    get SIGTERM (to finish its step and checkpoint), not the SIGKILL srun sends its step on SIGTERM."""
    script, out = _fake(tmp_path)
    env = {**clean_env(slurm), "HPCRL": str(script)}
    job = slurm.sbatch("--ntasks=2", "--cpus-per-task=1", f"--output={tmp_path}/job.out", str(TRAINER_SBATCH),
                       env=env)  # fmt: skip
    wait_for(lambda: out.is_file() and out.read_text().count("start") == 2, 30, "both ranks to start")
    slurm.run("scancel", "--batch", "--signal=TERM", job)
    slurm.wait_states(job, ["COMPLETED", "FAILED", "CANCELLED"], 1, timeout_s=40)
    ranks = out.read_text()
    assert "term rank=0" in ranks, f"{ranks}\n{(tmp_path / 'job.out').read_text()}"
