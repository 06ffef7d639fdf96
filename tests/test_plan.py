"""`hpcrl plan`: parameter counts of real Qwen2.5 configurations to the parameter, the memory arithmetic's
known answers, and the command on a 14B model directory that holds nothing but config.json.

(The prediction against measured peaks: tests/test_perf_cli.py runs `hpcrl perf update --quick`.)"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ops.plan_memory import (
    PROJECTIONS,
    ModelShape,
    UpdateShape,
    largest_micro_batch,
    layer_saved_bytes_per_token,
    server_memory,
    update_memory,
)

REPO = Path(__file__).resolve().parent.parent
QWEN25_CODER_14B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 5120, "intermediate_size": 13824,
    "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8, "vocab_size": 152064,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
"""Qwen/Qwen2.5-Coder-14B-Instruct's config.json (the keys that matter)."""
QWEN25_1_5B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16",
}  # fmt: skip
"""Qwen/Qwen2.5-1.5B's config.json (the keys that matter)."""
UPDATE = UpdateShape(
    micro_batch_size=1, prompt_tokens=1024, completion_tokens=512, logprob_chunk_tokens=1024, lora_rank=16,
    lora_targets=PROJECTIONS, dtype_bytes=2, gradient_checkpointing=True,
)  # fmt: skip
GIB = 2**30


def test_parameter_counts_match_the_published_qwen25_models_exactly() -> None:
    # The safetensors totals of Qwen2.5-14B (untied head, q/k/v biases) and Qwen2.5-1.5B (tied embeddings).
    assert ModelShape.from_config(QWEN25_CODER_14B).parameters() == 14_770_033_664
    assert ModelShape.from_config(QWEN25_1_5B).parameters() == 1_543_714_304


def test_lora_parameters_are_rank_times_in_plus_out_of_every_adapted_projection() -> None:
    shape = ModelShape.from_config(QWEN25_CODER_14B)
    # q, o: 5120 -> 5120; k, v: 5120 -> 8 x 128; gate, up: 5120 -> 13824; down: 13824 -> 5120.
    per_layer = 16 * (2 * 10240 + 2 * (5120 + 1024) + 3 * (5120 + 13824))
    assert shape.adapter_parameters(16, PROJECTIONS) == 48 * per_layer == 68_812_800
    assert shape.adapter_parameters(8, ("q_proj", "v_proj")) == 48 * 8 * (10240 + 6144)
    with pytest.raises(ValueError, match="lm_head"):
        shape.adapter_parameters(16, ("lm_head",))


def test_a_layer_saves_the_counted_tensors_per_token() -> None:
    shape = ModelShape.from_config(QWEN25_1_5B)
    fp32 = replace(UPDATE, dtype_bytes=4)
    h, i, t = 1536, 8960, 1536
    # norm inputs 2H, norm outputs 2H, q/k/v/out/o-input 5H, the mask's T, the MLP's 4I (all float32),
    # the log-sum-exp per head and lora_A's output per projection (float32).
    assert layer_saved_bytes_per_token(shape, fp32) == 4 * (9 * h + t + 4 * i) + 4 * 12 + 4 * 16 * 7
    # bf16: each norm keeps a float32 copy of its input, and each adapted projection a float32 copy of its
    # input for lora_A (peft casts to the adapter's dtype).
    lora_inputs = 4 * (6 * h + i)
    assert (
        layer_saved_bytes_per_token(shape, UPDATE) == 2 * h * 6 + 2 * (7 * h + t + 4 * i) + 4 * 12 + 448 + lora_inputs
    )


def test_checkpointing_keeps_one_hidden_state_per_layer_plus_one_layer() -> None:
    shape = ModelShape.from_config(QWEN25_CODER_14B)
    memory = update_memory(shape, UPDATE)
    tokens, layer = 1536, layer_saved_bytes_per_token(shape, UPDATE)
    final_norm = 4 * 5120
    assert memory.activations_checkpointed_bytes == tokens * (48 * 5120 * 2 + layer + final_norm)
    assert memory.activations_bytes == tokens * (48 * layer + final_norm)
    assert memory.activations_bytes > 10 * memory.activations_checkpointed_bytes


def test_the_logits_chunk_is_four_float32_chunk_by_vocabulary_tensors_capped_by_the_micro_batch() -> None:
    shape = ModelShape.from_config(QWEN25_1_5B)
    assert update_memory(shape, replace(UPDATE, micro_batch_size=4)).logits_chunk_bytes == 4 * 1024 * 151936 * 4
    assert update_memory(shape, replace(UPDATE, completion_tokens=100)).logits_chunk_bytes == 4 * 100 * 151936 * 4


def test_weights_adapter_and_adamw_state_of_a_14b_model() -> None:
    memory = update_memory(ModelShape.from_config(QWEN25_CODER_14B), UPDATE)
    assert memory.weights_bytes == 14_770_033_664 * 2
    assert memory.adapter_bytes == memory.gradients_bytes == 68_812_800 * 4
    assert memory.optimizer_bytes == 2 * memory.adapter_bytes
    assert memory.total_bytes == memory.resident_bytes + memory.update_bytes


def test_the_largest_micro_batch_is_the_last_that_fits() -> None:
    shape = ModelShape.from_config(QWEN25_CODER_14B)
    capacity = 68 * GIB
    largest = largest_micro_batch(shape, UPDATE, capacity, rows=64)
    assert 1 <= largest < 64
    assert update_memory(shape, replace(UPDATE, micro_batch_size=largest)).total_bytes <= capacity
    assert update_memory(shape, replace(UPDATE, micro_batch_size=largest + 1)).total_bytes > capacity
    assert largest_micro_batch(shape, UPDATE, 20 * GIB, rows=64) == 0  # the bf16 weights alone are 27.5 GiB


def test_the_vllm_kv_cache_holds_keys_and_values_of_every_layer_for_every_token() -> None:
    server = server_memory(ModelShape.from_config(QWEN25_CODER_14B), 16, 1536, utilization=0.45)
    assert server.kv_bytes_per_token == 2 * 48 * 8 * 128 * 2  # 192 KiB
    assert server.kv_cache_bytes == server.kv_bytes_per_token * 16 * 1536
    assert server.total_bytes == server.per_gpu_bytes == 14_770_033_664 * 2 + server.kv_cache_bytes
    tensor_parallel = server_memory(ModelShape.from_config(QWEN25_CODER_14B), 16, 1536, utilization=0.9, gpus=4)
    assert tensor_parallel.per_gpu_bytes == server.total_bytes // 4  # weights and KV cache sharded over 4 GPUs


def test_a_config_without_the_decoder_keys_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="intermediate_size"):
        ModelShape.from_config({"hidden_size": 64, "num_attention_heads": 4})


def test_hpcrl_plan_sizes_a_14b_run_on_8_gpus_from_config_json_alone(tmp_path: Path) -> None:
    model = tmp_path / "qwen2.5-coder-14b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(QWEN25_CODER_14B))
    config = tmp_path / "train.toml"
    config.write_text("[trainer]\nprompts_per_step = 8\n[policy]\ngradient_checkpointing = true\n")
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "plan", "--model", str(model), "--gpus", "8", "--gpu-memory-gib", "80",
         "--config", str(config), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout)
    assert found["model"]["parameters"] == 14_770_033_664
    assert found["settings"]["rows_per_step"] == 64 and found["settings"]["rows_per_gpu"] == 8
    per_gpu = found["per_gpu"]
    assert per_gpu["weights_bytes"] == 14_770_033_664 * 2  # DDP replicates the whole base on every GPU
    assert per_gpu["fits"] is True and per_gpu["total_bytes"] <= found["usable_bytes"]
    assert found["largest_micro_batch"]["checkpointing"] > found["largest_micro_batch"]["no_checkpointing"]
    assert found["vllm"]["tokens"] == 64 * (1024 + 512)
    assert found["vllm"]["utilization"] == 0.9 and found["vllm"]["gpus"] == 1  # a vllm_server job's defaults


def test_hpcrl_plan_refuses_a_directory_without_config_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ops.plan import main

    with pytest.raises(SystemExit) as exit_:
        main(["--model", str(tmp_path), "--gpu-memory-gib", "80"])
    assert exit_.value.code == 2
    assert "no config.json" in capsys.readouterr().err
