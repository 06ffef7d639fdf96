"""Generation: code extraction, prompts, and the hf backend's samples and behaviour log-probs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from trainer.adapters import AdapterStore
from trainer.generation import HFBackend, SamplingSettings, VLLMBackend, VLLMEngineConfig, extract_code, render_prompt

VOCAB = ["<pad>", "<eos>", "<bos>", "void", "dgemm", "(", ")", "{", "}", "for", "int", "i", "n", ";", "=", "+", "*"]


@pytest.fixture(scope="module")
def tiny() -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    return Qwen2ForCausalLM(config), tokenizer


@pytest.mark.parametrize(
    ("completion", "code"),
    [
        ("Here:\n```c\nvoid dgemm() {}\n```\nDone.", "void dgemm() {}\n"),
        ("```\nint x;\n```", "int x;\n"),
        ("```cpp\nint a;\n```\n```c\nint b;\n```", "int a;\n"),
        ("void dgemm() {} /* no fence */", None),
        ("```c\n   \n```", None),
        ("```c\nunterminated", None),
    ],
)
def test_the_first_fenced_block_is_the_code_and_a_completion_without_one_has_none(
    completion: str, code: str | None
) -> None:
    assert extract_code(completion) == code


def test_prompts_use_the_chat_template_when_the_tokenizer_has_one(tiny: tuple[object, PreTrainedTokenizerFast]) -> None:
    _, tokenizer = tiny
    assert render_prompt(tokenizer, "write dgemm") == "write dgemm"
    tokenizer.chat_template = "{% for m in messages %}<bos> {{ m['content'] }}{% endfor %} assistant:"
    try:
        assert render_prompt(tokenizer, "write dgemm") == "<bos> write dgemm assistant:"
    finally:
        tokenizer.chat_template = None


def test_the_hf_backend_samples_g_completions_per_prompt_with_their_sampling_log_probs(
    tiny: tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast],
) -> None:
    model, tokenizer = tiny
    backend = HFBackend(model, tokenizer)
    backend.load_policy(model, version=7)
    torch.manual_seed(1)
    completions = backend.sample(
        ["void dgemm (", "for int i"], group_size=3, settings=SamplingSettings(max_new_tokens=6)
    )
    assert [c.group for c in completions] == [0, 0, 0, 1, 1, 1]
    assert all(c.policy_version == 7 for c in completions)
    for completion in completions:
        assert 1 <= len(completion.completion_ids) <= 6
        assert len(completion.behaviour_logprobs) == len(completion.completion_ids)
        assert all(lp <= 0 for lp in completion.behaviour_logprobs)
        # At temperature 1 and top-p 1 the sampling distribution is the model's: a forward pass agrees.
        ids = torch.tensor([completion.prompt_ids + completion.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(completion.prompt_ids) - 1 : -1]  # (T, V)
        expected = torch.log_softmax(logits.float(), -1).gather(1, ids[0, len(completion.prompt_ids) :, None])[:, 0]
        torch.testing.assert_close(torch.tensor(completion.behaviour_logprobs), expected, atol=1e-4, rtol=1e-4)


def test_the_vllm_backend_says_how_to_get_vllm_when_it_is_missing(tmp_path: Path) -> None:
    try:
        import vllm  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"hpcrl\[gpu\].*backend = 'hf'"):
            VLLMBackend("/nonexistent", 8, AdapterStore(tmp_path, 2), VLLMEngineConfig())
    else:  # pragma: no cover (a GPU node)
        pytest.skip("vLLM is installed here")


def test_the_vllm_engine_share_must_leave_room_for_the_training_copy() -> None:
    assert VLLMEngineConfig().gpu_memory_utilization < 0.9  # vLLM's own default would starve the update
    with pytest.raises(ValueError, match=r"gpu_memory_utilization = 1.0: .*room for the training copy"):
        VLLMEngineConfig(gpu_memory_utilization=1.0)


def test_adapter_versions_are_written_whole_and_pruned_to_the_newest(
    tiny: tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast], tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    # A copy: peft wraps the model it is given in place, and the fixture is shared.
    model = get_peft_model(copy.deepcopy(tiny[0]), LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    store = AdapterStore(tmp_path, keep=2)
    for version in (1, 2, 3):
        assert store.save(model, version) == tmp_path / f"policy-v{version}"
        store.prune(version)
    assert store.save(model, 3) == tmp_path / "policy-v3"  # a resumed run writes a version again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy-v2", "policy-v3"]
    assert (tmp_path / "policy-v3" / "adapter_config.json").is_file()
