"""The real-model path with Qwen's real tokenizer and a random Qwen2 of its vocabulary (no real weights):
chat-template prompts, `<|im_end|>` stops a sample, `<|endoftext|>` padding never counts as completion, code
comes back out of decoded text, and behaviour log-probs equal the update's on a left-padded batch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from trainer.generation import Completion, HFBackend, SamplingSettings, extract_code, render_prompt
from trainer.grpo import GRPOBatch, collate
from trainer.logprobs import token_log_probs
from trainer.policy import PolicyConfig, load_policy
from trainer.random_model import QWEN25_VOCAB_SIZE, TOKENIZER_FILES

IM_END, ENDOFTEXT = 151645, 151643
"""Qwen's `<|im_end|>` (EOS of its chat models) and `<|endoftext|>` (its padding)."""
PROMPTS = ("write dgemm", "Write a C function dgemm(n, a, b, c) that adds a times b to c, row-major, n by n.")
"""Of different lengths, so the batch's shorter prompt is left-padded."""
GROUP_SIZE = 4
MAX_NEW_TOKENS = 12
TEMPERATURE = 0.8
ROUTE_BIAS = 0.5
STOP_BOOST = 3.0
"""<|im_end|>'s weight along the constant direction (`route_to`): about one token in six is <|im_end|>."""


def route_to(model: Any, token: int, boost: float) -> None:
    """Give `token` a steady logit at every position of a random Qwen2, so that sampling reaches it.

    A random model spreads its probability over 151,936 tokens and would never sample one chosen token. A
    value bias passes through attention unchanged (attention weights sum to 1), so layer 0's o_proj(v_bias)
    is added to the residual stream at every position: a constant direction. With the embedding tied to the
    output layer, pointing `token`'s embedding along that direction gives it a logit of about the same
    size at every step, set by `boost`."""
    attention = model.model.layers[0].self_attn
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    head_dim = model.config.hidden_size // heads
    with torch.no_grad():
        attention.v_proj.bias.fill_(ROUTE_BIAS)
        # (kv_heads * head_dim,) -> (heads * head_dim,): each key/value head serves heads // kv_heads heads.
        values = attention.v_proj.bias.view(kv_heads, 1, head_dim).expand(kv_heads, heads // kv_heads, head_dim)
        direction = attention.o_proj.weight @ values.reshape(-1)  # (hidden,)
        model.model.embed_tokens.weight[token] = boost * direction / direction.norm()


def sharpen(model: Any) -> None:
    """A trained model's distributions are peaked and its attention depends on position; a random one at
    init is nearly uniform on both, where neither a padding mistake nor a summation error would show.
    Larger embeddings peak the output (tied) and larger query/key weights make attention position-aware."""
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(10.0)
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(4.0)
            layer.self_attn.k_proj.weight.mul_(4.0)


def edited_copy(source: Path, out: Path, token: int, boost: float) -> Path:
    """The random model of `source`, sharpened and routed to `token`, saved as a model directory in `out`."""
    model = AutoModelForCausalLM.from_pretrained(source)
    sharpen(model)
    route_to(model, token, boost)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(source / name, out / name)
    return out


@pytest.fixture(scope="module")
def policy(qwen_model: Path) -> tuple[Any, Any]:
    """load_policy on the random Qwen2 as saved (one tokenizer load, seconds, for the module)."""
    return load_policy(PolicyConfig(model_dir=str(qwen_model), lora_rank=4, lora_alpha=8))


@pytest.fixture(scope="module")
def stopping_policy(qwen_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """load_policy on a saved random Qwen2 that samples <|im_end|> about one token in six."""
    model_dir = edited_copy(qwen_model, tmp_path_factory.mktemp("qwen-stops"), IM_END, STOP_BOOST)
    return load_policy(PolicyConfig(model_dir=str(model_dir), lora_rank=4, lora_alpha=8))


@pytest.fixture(scope="module")
def samples(stopping_policy: tuple[Any, Any]) -> list[Completion]:
    model, tokenizer = stopping_policy
    torch.manual_seed(0)
    settings = SamplingSettings(max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, top_p=1.0)
    return HFBackend(model, tokenizer).sample([render_prompt(tokenizer, p) for p in PROMPTS], GROUP_SIZE, settings)


@pytest.fixture(scope="module")
def batch(samples: list[Completion]) -> GRPOBatch:
    """The samples as the update takes them: prompts left-padded, completions right-padded."""
    return collate(
        [s.prompt_ids for s in samples],
        [s.completion_ids for s in samples],
        [s.behaviour_logprobs for s in samples],
        [0.0] * len(samples),
        ENDOFTEXT,
    )


def test_the_random_model_is_a_plain_model_directory_of_qwens_vocabulary(qwen_model: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(qwen_model)
    assert model.config.vocab_size == QWEN25_VOCAB_SIZE and model.config.model_type == "qwen2"
    assert (model.generation_config.eos_token_id, model.generation_config.pad_token_id) == (IM_END, ENDOFTEXT)


def test_load_policy_keeps_qwens_padding_and_eos_and_prompts_render_through_its_chat_template(
    policy: tuple[Any, Any],
) -> None:
    _, tokenizer = policy
    assert len(tokenizer) == 151_669
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", IM_END)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", ENDOFTEXT), "not replaced by EOS"
    assert render_prompt(tokenizer, "write dgemm") == "<|im_start|>user\nwrite dgemm<|im_end|>\n<|im_start|>assistant\n"


def test_a_sample_stops_at_im_end_and_nothing_after_it_counts(samples: list[Completion]) -> None:
    lengths = {len(s.completion_ids) for s in samples}
    stopped = [s for s in samples if IM_END in s.completion_ids]
    assert len(lengths) > 2 and 0 < len(stopped) < len(samples), f"the seed should give mixed lengths: {lengths}"
    for sample in samples:
        assert len(sample.behaviour_logprobs) == len(sample.completion_ids)
        assert ENDOFTEXT not in sample.completion_ids, "padding taken for completion"
        if sample in stopped:
            assert sample.completion_ids.index(IM_END) == len(sample.completion_ids) - 1, "a token after EOS"
        else:
            assert len(sample.completion_ids) == MAX_NEW_TOKENS
        assert "<|im_end|>" not in sample.text


def test_collate_masks_exactly_the_completion_tokens_of_samples_of_different_lengths(
    samples: list[Completion], batch: GRPOBatch
) -> None:
    for row, sample in enumerate(samples):
        completion = batch.completion_mask[row].bool()
        assert batch.input_ids[row][completion].tolist() == list(sample.completion_ids)
        assert batch.input_ids[row][~batch.attention_mask[row].bool()].eq(ENDOFTEXT).all()
        attended = batch.input_ids[row][batch.attention_mask[row].bool()].tolist()
        assert attended == [*sample.prompt_ids, *sample.completion_ids], "padding attended to"


def test_behaviour_log_probs_equal_the_updates_on_a_left_padded_batch(
    stopping_policy: tuple[Any, Any], samples: list[Completion], batch: GRPOBatch
) -> None:
    model, _ = stopping_policy
    assert len({len(s.prompt_ids) for s in samples}) == 2, "the shorter prompt must be left-padded"
    with torch.no_grad():
        logp = token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask, TEMPERATURE)
    completion = batch.completion_mask.bool()
    difference = (logp[completion] - batch.old_logp[completion]).abs().max().item()
    assert difference <= 1e-4


def test_a_sampled_endoftext_is_part_of_the_completion_not_padding(
    qwen_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Generation stops only at <|im_end|>: an <|endoftext|> the model samples is a token it wrote (base
    models end documents with it), even though it is also the pad token."""
    model_dir = edited_copy(qwen_model, tmp_path_factory.mktemp("qwen-endoftext"), ENDOFTEXT, boost=10.0)
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(model_dir), lora_rank=4, lora_alpha=8))
    torch.manual_seed(0)
    settings = SamplingSettings(max_new_tokens=4)
    [sample] = HFBackend(model, tokenizer).sample([render_prompt(tokenizer, "write dgemm")], 1, settings)
    assert sample.completion_ids == (ENDOFTEXT,) * 4
    assert len(sample.behaviour_logprobs) == 4


def test_code_comes_back_out_of_a_completion_the_real_tokenizer_decodes(policy: tuple[Any, Any]) -> None:
    _, tokenizer = policy
    code = (
        "#include <stddef.h>\n"
        "// C = C + A*B, row-major, n by n (ü: not ASCII)\n"
        "void dgemm(int n, const double *restrict a, const double *restrict b, double *restrict c) {\n"
        "\tfor (int i = 0; i < n; i++)\n"
        "        for (int k = 0; k < n; k++) {\n"
        "            double aik = a[i * n + k];\n"
        "            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];\n"
        "        }\n"
        "}\n"
    )
    answer = f"Here is a faster loop order:\n\n```c\n{code}```\n\nThe k loop hoists a[i][k]."
    ids = tokenizer.encode(answer + "<|im_end|>", add_special_tokens=False)
    assert ids[-1] == IM_END, "<|im_end|> is one special token"
    # As HFBackend decodes a completion.
    assert extract_code(tokenizer.decode(ids, skip_special_tokens=True)) == code
