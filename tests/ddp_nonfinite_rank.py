"""One rank of a tests/test_trainer_distributed.py check, run by torchrun: a loss that is non-finite on rank 0's
shard only. Rank 0 runs the update as Trainer.run does (the update, then `ranks.stop()` and `ranks.close()` in
a finally); every rank writes how it ended to <out>.<rank>.json."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from trainer.distributed import Placement, Ranks, Update, process_group
from trainer.generation import HFBackend
from trainer.grpo import GRPOConfig, optimizer_for, scheduler_for
from trainer.policy import PolicyConfig, load_policy

TIMEOUT_S = 40.0


def main(model_dir: str, out: str) -> int:
    torch.set_num_threads(1)
    placement = Placement.from_environment()
    started = time.monotonic()
    outcome = "returned"
    try:
        with process_group(placement, torch.device("cpu"), TIMEOUT_S):
            model, tokenizer = load_policy(PolicyConfig(model_dir=model_dir, device="cpu"))
            config = GRPOConfig(micro_batch_size=1)
            optimizer = optimizer_for(model, config)
            ranks = Ranks(placement, model, HFBackend(model, tokenizer), optimizer, scheduler_for(optimizer, config),
                          config, torch.device("cpu"))  # fmt: skip
            started = time.monotonic()
            if not placement.is_main:
                ranks.follow()
                ranks.close()
            else:
                # Row 0 (rank 0's): behaviour log-probs so low that the ratio overflows; rows 1-3 are sound.
                rows = [((5, 6, 7), (8, 9, 10), (-1e30 if i == 0 else -3.0,) * 3, -1.0) for i in range(4)]
                try:
                    ranks.update(Update(rows, int(tokenizer.pad_token_id)))
                finally:
                    ranks.stop()
                    ranks.close()
    except BaseException as error:  # what ended this rank is the result
        outcome = f"{type(error).__name__}: {str(error)[:200]}"
    Path(f"{out}.{placement.rank}.json").write_text(
        json.dumps({"outcome": outcome, "seconds": time.monotonic() - started})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
