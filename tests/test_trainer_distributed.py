"""Data parallelism: an update on 2 gloo ranks (launched by torchrun, through the trainer's own Ranks and
DistributedDataParallel) moves the adapter as the same update in one process; ranks are placed from
torchrun's or srun's environment."""

from __future__ import annotations

import json
import math
from pathlib import Path

from trainer.ddp_check import ddp_agreement, launch_ranks
from trainer.distributed import DEFAULT_MASTER_PORT, Placement

RANKS_TIMEOUT_S = 150.0
"""Bound on a 2-rank check (about 10 s here): below pytest's own timeout, so a hang fails with the ranks killed."""


def test_an_update_on_two_ranks_moves_the_adapter_as_one_process_does(tiny_model: Path) -> None:
    agreement = ddp_agreement(tiny_model, world_size=2, rows=5)  # shards of 3 and 2 rows
    # In float64 rounding is out of the way: a gradient averaged where it should be summed, a row lost or
    # counted twice, or a normaliser of one rank's rows only would each show as a difference of 1e-2 or more.
    assert agreement.change_float64 <= 1e-9, agreement
    assert agreement.weights_float32 <= 1e-5, agreement


def test_a_rank_without_rows_joins_the_update_and_adds_nothing(tiny_model: Path) -> None:
    agreement = ddp_agreement(tiny_model, world_size=2, rows=1, dtypes=("float64",))
    assert agreement.change_float64 <= 1e-9, agreement
    assert math.isnan(agreement.weights_float32)


def test_groups_are_sampled_across_ranks_and_gathered_in_order_with_rank_0s_policy_version(
    tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sampled.json"
    launch_ranks(2, [str(Path(__file__).with_name("ddp_sample_rank.py")), str(tiny_model), str(out)], RANKS_TIMEOUT_S)
    rows = json.loads(out.read_text())
    # Groups 0 and 2 on rank 0, group 1 on rank 1: gathered back in group order, each its own prompt.
    assert [row["group"] for row in rows] == [0, 0, 1, 1, 2, 2]
    assert all(row["prompt_matches"] for row in rows), rows
    assert {row["version"] for row in rows} == {5}, "a follower's samples must carry rank 0's policy version"


def test_ranks_are_placed_from_torchrun_then_srun_then_alone() -> None:
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07", "MASTER_PORT": "29400"}
    assert Placement.from_environment(torchrun) == Placement(3, 8, 1, "gpu07", 29400)
    srun = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_ID": "123",
        "MASTER_ADDR": "gpu01",
    }
    assert Placement.from_environment(srun) == Placement(5, 8, 1, "gpu01", 20123)
    one_task = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "123"}
    assert Placement.from_environment(one_task) == Placement() and Placement().is_main
    assert Placement().master_port == DEFAULT_MASTER_PORT


def test_a_non_finite_loss_on_rank_0s_shard_alone_ends_every_rank_promptly(tiny_model: Path, tmp_path: Path) -> None:
    """Rank 0 raised FloatingPointError before its backward while rank 1 waited in DDP's all-reduce; rank 0's
    Stop broadcast then met rank 1's all-reduce and both sat until the collective timeout (40 s here, 3600 s by
    default), and rank 0's log showed a gloo error instead of the FloatingPointError."""
    out = tmp_path / "ended"
    launch_ranks(
        2, [str(Path(__file__).with_name("ddp_nonfinite_rank.py")), str(tiny_model), str(out)], RANKS_TIMEOUT_S
    )
    ended = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in (0, 1)]
    assert ended[0]["outcome"].startswith("FloatingPointError"), ended
    assert ended[1]["outcome"] == "returned", ended
    assert all(e["seconds"] < 20 for e in ended), ended
