"""The generation backend a run samples with (`trainer.backend`), built from its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.adapters import AdapterStore
from trainer.config import TrainerConfig
from trainer.generation import ADAPTERS_KEPT, Backend, HFBackend, VLLMBackend
from trainer.vllm_server import VLLMServerBackend


def backend_for(config: TrainerConfig, model: Any, tokenizer: Any, run_dir: Path) -> Backend:
    """`hf` samples `model` itself; the vLLM backends get its adapter by version through `<run_dir>/adapters`
    (or vllm_server.adapter_dir, which the server must be able to read)."""
    if config.loop.backend == "hf":
        return HFBackend(model, tokenizer, config.loop.generation_chunk_sequences)
    if config.loop.backend == "vllm":
        adapters = AdapterStore(run_dir / "adapters", ADAPTERS_KEPT)
        return VLLMBackend(config.policy.model_dir, config.policy.lora_rank, adapters, config.vllm)
    server = config.vllm_server
    adapters = AdapterStore(
        Path(server.adapter_dir).expanduser() if server.adapter_dir else run_dir / "adapters", server.keep_adapters
    )
    return VLLMServerBackend(server, tokenizer, adapters)
