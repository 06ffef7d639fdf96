"""Review of issue 12: a failure of one rank's update must not leave the job waiting in mismatched collectives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ops.processes import free_port
from tests.conftest import REPO


def test_a_non_finite_loss_on_rank_0s_shard_alone_ends_every_rank_promptly(tiny_model: Path, tmp_path: Path) -> None:
    """Rank 0 raised FloatingPointError before its backward while rank 1 waited in DDP's all-reduce; rank 0's
    Stop broadcast then met rank 1's all-reduce and both sat until the collective timeout (40 s here, 3600 s by
    default), and rank 0's log showed a gloo error instead of the FloatingPointError."""
    out = tmp_path / "ended"
    rank_script = Path(__file__).with_name("ddp_nonfinite_rank.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-addr=127.0.0.1",
               f"--master-port={free_port()}", str(rank_script), str(tiny_model), str(out)]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    subprocess.run(command, env=env, capture_output=True, text=True, timeout=200)
    ended = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in (0, 1)]
    assert ended[0]["outcome"].startswith("FloatingPointError"), ended
    assert ended[1]["outcome"] == "returned", ended
    assert all(e["seconds"] < 20 for e in ended), ended
