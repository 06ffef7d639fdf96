"""One rank of tests/test_trainer_distributed.py's sampling check, run by torchrun: rank 0 asks every rank for
its share of 3 groups x 2 samples at policy version 5 and writes what it gathered as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from trainer.distributed import Placement, Ranks, process_group
from trainer.generation import HFBackend, SamplingSettings
from trainer.grpo import GRPOConfig, optimizer_for, scheduler_for
from trainer.policy import PolicyConfig, load_policy


def main(model_dir: str, out: str) -> int:
    torch.set_num_threads(1)
    placement = Placement.from_environment()
    with process_group(placement, torch.device("cpu"), 300):
        model, tokenizer = load_policy(PolicyConfig(model_dir=model_dir, device="cpu"))
        torch.manual_seed(placement.rank)
        config = GRPOConfig()
        optimizer = optimizer_for(model, config)
        backend = HFBackend(model, tokenizer)
        ranks = Ranks(placement, model, backend, optimizer, scheduler_for(optimizer, config), config,
                      torch.device("cpu"))  # fmt: skip
        if not placement.is_main:
            ranks.follow()
            ranks.close()
            return 0
        prompts = [f"prompt {group}: write dgemm" for group in range(3)]
        completions = ranks.sample(prompts, 2, SamplingSettings(max_new_tokens=4), policy_version=5)
        ranks.stop()
        ranks.close()
    prompt_ids = {g: tokenizer(p, add_special_tokens=False)["input_ids"] for g, p in enumerate(prompts)}
    rows = [
        {"group": c.group, "version": c.policy_version, "prompt_matches": list(c.prompt_ids) == prompt_ids[c.group]}
        for c in completions
    ]
    Path(out).write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
