"""The policy loads from a local HF directory with a LoRA adapter; the reference is the adapter switched off."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from trainer.policy import PolicyConfig, load_policy, reference_policy, save_adapter

WORDS = ["<pad>", "<eos>", "a", "b", "c", "d"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-model")
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>").save_pretrained(path)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def logits_of(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([[2, 3, 4]])).logits  # type: ignore[no-any-return]


def test_a_fresh_adapter_starts_as_the_reference_and_only_it_trains(model_dir: Path) -> None:
    model, tokenizer = load_policy(PolicyConfig(model_dir=str(model_dir), lora_rank=4, lora_alpha=8))
    assert tokenizer.pad_token == "<pad>" and next(model.parameters()).dtype == torch.float32
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    with reference_policy(model):
        reference = logits_of(model)
    torch.testing.assert_close(logits_of(model), reference)  # LoRA's B starts at zero
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.fill_(0.05)
    assert not torch.allclose(logits_of(model), reference)
    with reference_policy(model):
        torch.testing.assert_close(logits_of(model), reference)


def test_a_saved_adapter_loads_back_with_the_same_outputs(model_dir: Path, tmp_path: Path) -> None:
    model, _ = load_policy(PolicyConfig(model_dir=str(model_dir), lora_rank=4, lora_alpha=8))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.1)
    save_adapter(model, tmp_path / "adapter")
    again, _ = load_policy(PolicyConfig(model_dir=str(model_dir)), adapter_dir=tmp_path / "adapter")
    torch.testing.assert_close(logits_of(again), logits_of(model))
    assert any(p.requires_grad for p in again.parameters()), "a resumed adapter keeps training"


def test_a_missing_model_directory_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hpcrl tiny-model"):
        load_policy(PolicyConfig(model_dir=str(tmp_path)))


def test_bad_lora_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="lora_rank"):
        PolicyConfig(lora_rank=0)
    with pytest.raises(ValueError, match="device"):
        PolicyConfig(device="tpu")
