"""Review of issue 12: what hf generation keeps alive per `generate` call."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer.generation import HFBackend, SamplingSettings
from trainer.policy import PolicyConfig, load_policy


def test_hf_generation_keeps_scores_of_one_step_not_of_every_step(tiny_model: Path) -> None:
    """`output_scores=True` makes generate keep every step's processed logits, T float32 (rows, V) tensors: with
    Qwen's 151,936 tokens, 64 rows (generation_chunk_sequences) x 512 tokens is 19.9 GB, x 2,048 tokens 79.7 GB,
    beside the model and its KV cache. Chunking bounds the rows, not T x V."""
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(tiny_model), device="cpu"))
    held: list[int] = []
    generate = model.generate

    def measuring_generate(**kwargs: object) -> object:
        output = generate(**kwargs)
        scores = getattr(output, "scores", None) or ()
        held.append(sum(s.numel() * s.element_size() for s in scores))
        return output

    model.generate = measuring_generate  # type: ignore[method-assign]
    torch.manual_seed(0)
    rows, new_tokens = 2, 16
    HFBackend(model, tokenizer, chunk_sequences=rows).sample(
        ["write dgemm"], group_size=rows, settings=SamplingSettings(max_new_tokens=new_tokens)
    )
    one_step = rows * int(model.config.vocab_size) * 4
    assert max(held) <= 2 * one_step, f"{max(held) / one_step:.0f} steps of (rows, V) float32 scores held at once"
