"""Memory bounded by the micro-batch: accumulated micro-batch gradients equal the one-pass gradient for
every aggregation (mu > 1, beta > 0), log-probs never build (B, T, V) logits, gradient checkpointing
recomputes layers for the same gradients, and the hf backend generates in bounded chunks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.test_trainer_grpo import VOCAB
from tests.test_trainer_grpo import tiny_model as small_qwen2
from trainer.generation import Completion, HFBackend, SamplingSettings
from trainer.grpo import GRPOBatch, GRPOConfig, LossAggregation, collate, update_step
from trainer.logprobs import token_log_probs
from trainer.loop import Batch, Sample, rows_for_update
from trainer.policy import PolicyConfig, load_policy

PROMPTS = [[3, 4, 5, 6], [7, 8], [3, 4, 5, 6], [9, 10, 11], [7, 8], [12, 13, 14, 15, 16]]
COMPLETIONS = [[20, 21, 22, 1], [30, 31, 1], [40, 41, 42, 43, 44, 1], [50, 1], [60, 61, 62, 1], [55, 56, 57, 58, 1]]
ADVANTAGES = [1.2, -0.4, 0.7, -1.5, 0.3, -0.3]


def lora_policy() -> torch.nn.Module:
    model = get_peft_model(small_qwen2(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    torch.manual_seed(1)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # off zero, so the reference (adapter off) differs from the policy
            parameter.data.normal_(0, 0.05)
    return model


def off_policy_batch(model: torch.nn.Module) -> GRPOBatch:
    """Behaviour log-probs a little off the current policy, so ratios and clipping are not trivial."""
    scratch = collate(PROMPTS, COMPLETIONS, [[0.0] * len(c) for c in COMPLETIONS], ADVANTAGES, pad_token_id=0)
    with torch.no_grad():
        logp = token_log_probs(model, scratch.input_ids, scratch.attention_mask, scratch.completion_mask)
    generator = torch.Generator().manual_seed(2)
    noisy = logp + 0.3 * torch.randn(logp.shape, generator=generator)
    behaviour = [row[mask.bool()].tolist() for row, mask in zip(noisy, scratch.completion_mask, strict=True)]
    return collate(PROMPTS, COMPLETIONS, behaviour, ADVANTAGES, pad_token_id=0)


def adapter_after_update(micro_batch_size: int, aggregation: LossAggregation) -> dict[str, torch.Tensor]:
    model = lora_policy()
    batch = off_policy_batch(model)
    config = GRPOConfig(
        mu=2, beta=0.1, loss_aggregation=aggregation, micro_batch_size=micro_batch_size, max_completion_tokens=8,
        max_grad_norm=1e9, epsilon_low=0.1, epsilon_high=0.1,
    )  # fmt: skip
    # Plain SGD: the weight change is the gradient itself (AdamW's first step would hide it behind its sign).
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    update_step(model, optimizer, batch, config)
    return {n: p.detach() - before[n] for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("aggregation", list(LossAggregation))
@pytest.mark.parametrize("micro_batch_size", [1, 4])
def test_accumulated_micro_batches_move_the_adapter_as_one_pass_does(
    aggregation: LossAggregation, micro_batch_size: int
) -> None:
    one_pass = adapter_after_update(len(PROMPTS), aggregation)
    accumulated = adapter_after_update(micro_batch_size, aggregation)
    worst = max(float((accumulated[n] - one_pass[n]).norm() / one_pass[n].norm().clamp(min=1e-30)) for n in one_pass)
    assert all(one_pass[n].norm() > 0 for n in one_pass), "the update moved nothing: the comparison proves nothing"
    assert worst <= 1e-5, f"{aggregation}: micro-batches of {micro_batch_size} differ from one pass by {worst:.2e}"


def test_micro_batches_are_cut_to_the_columns_they_attend() -> None:
    batch = collate([[5, 6, 7], [8]], [[9], [10, 11, 12, 13]], [[0.0], [0.0] * 4], [1.0, -1.0], pad_token_id=0)
    first, second = batch.micro_batches(1)
    assert first.input_ids.tolist() == [[5, 6, 7, 9]]
    assert second.input_ids.tolist() == [[8, 10, 11, 12, 13]]
    assert second.completion_mask.tolist() == [[0, 1, 1, 1, 1]]


def test_log_probs_go_through_the_head_in_chunks_and_never_as_full_logits() -> None:
    model = small_qwen2()
    batch = collate(PROMPTS, COMPLETIONS, [[0.0] * len(c) for c in COMPLETIONS], ADVANTAGES, pad_token_id=0)
    head_inputs: list[tuple[int, ...]] = []
    hook = model.lm_head.register_forward_hook(lambda _m, args, _out: head_inputs.append(tuple(args[0].shape)))
    try:
        chunked = token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask, chunk_tokens=5)
        chunked.sum().backward()  # type: ignore[no-untyped-call]  # the backward recomputes each chunk
    finally:
        hook.remove()
    completion_tokens = sum(len(c) for c in COMPLETIONS)
    assert all(len(shape) == 2 and shape[0] <= 5 for shape in head_inputs), head_inputs
    assert sum(shape[0] for shape in head_inputs) == 2 * completion_tokens  # forward + recompute, nothing else
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=(batch.attention_mask.cumsum(-1) - 1).clamp(min=0)).logits  # fmt: skip
        full = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(chunked.detach()[mask], full[mask[:, 1:].nonzero(as_tuple=True)].flatten())
    assert (chunked[~mask] == 0).all()


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Words w0, w1, ... are ids 2, 3, ... (kept in memory: saved beside a Qwen2 config.json, transformers
    would reload it as a Qwen2Tokenizer, which splits words differently)."""
    words = ["<pad>", "<eos>", *(f"w{i}" for i in range(VOCAB - 2))]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("checkpointing-model")
    word_tokenizer().save_pretrained(path)
    small_qwen2().save_pretrained(path)
    return path


def adapter_gradients(model_dir: Path, checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
    torch.manual_seed(3)  # the same adapter (lora_A is drawn when it is created)
    model, _ = load_policy(PolicyConfig(model_dir=str(model_dir), device="cpu", gradient_checkpointing=checkpointing))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.05)
    layer_runs = [0]
    # A module inside the layer, at its start: transformers checkpoints the layer's forward and keeps the
    # layer's own hooks outside the checkpoint, and torch's recomputation stops once it has what the backward
    # needs, so only the layer's first modules are sure to run again.
    inside_first_layer = model.get_base_model().model.layers[0].input_layernorm
    hook = inside_first_layer.register_forward_hook(lambda *_: layer_runs.__setitem__(0, layer_runs[0] + 1))
    model.train()  # transformers checkpoints only in training mode
    batch = collate(PROMPTS, COMPLETIONS, [[0.0] * len(c) for c in COMPLETIONS], ADVANTAGES, pad_token_id=0)
    logp = token_log_probs(model, batch.input_ids, batch.attention_mask, batch.completion_mask)
    (logp.sum(-1) * batch.advantages).sum().backward()  # type: ignore[no-untyped-call]
    hook.remove()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, layer_runs[0]


def test_gradient_checkpointing_recomputes_each_layer_and_gives_the_same_gradients(model_dir: Path) -> None:
    plain, plain_runs = adapter_gradients(model_dir, checkpointing=False)
    checkpointed, checkpointed_runs = adapter_gradients(model_dir, checkpointing=True)
    assert (plain_runs, checkpointed_runs) == (1, 2), "checkpointing did not run: the layer ran once"
    assert plain.keys() == checkpointed.keys() and plain
    for name, gradient in plain.items():
        torch.testing.assert_close(checkpointed[name], gradient, rtol=1e-5, atol=1e-7)


def test_the_hf_backend_generates_in_chunks_of_at_most_the_configured_sequences(model_dir: Path) -> None:
    model, _ = load_policy(PolicyConfig(model_dir=str(model_dir), device="cpu"))
    calls: list[int] = []
    generate = model.generate

    def counting_generate(**kwargs: object) -> object:
        calls.append(int(kwargs["input_ids"].shape[0]))  # type: ignore[attr-defined]
        return generate(**kwargs)

    model.generate = counting_generate  # type: ignore[method-assign]
    backend = HFBackend(model, word_tokenizer(), chunk_sequences=4)
    torch.manual_seed(0)
    completions = backend.sample(["w1 w2 w3", "w4"], group_size=5, settings=SamplingSettings(max_new_tokens=4))
    assert calls == [4, 4, 2]
    assert [c.group for c in completions] == [0] * 5 + [1] * 5
    assert [c.prompt_ids for c in completions] == [(3, 4, 5)] * 5 + [(6,)] * 5


def test_behaviour_log_probs_are_those_of_the_processed_distribution_without_keeping_every_steps_scores(
    model_dir: Path,
) -> None:
    """Tempered and top-p cut: the same draw as transformers' own sampler (same seed, same tokens), and each
    token's log-prob under its processed scores, which the backend never asks generate to keep."""
    model, _ = load_policy(PolicyConfig(model_dir=str(model_dir), device="cpu"))
    tokenizer = word_tokenizer()
    settings = SamplingSettings(max_new_tokens=6, temperature=0.7, top_p=0.8)
    generate = model.generate
    asked: list[dict[str, object]] = []
    model.generate = lambda **kwargs: asked.append(kwargs) or generate(**kwargs)  # type: ignore[method-assign]
    torch.manual_seed(5)
    ours = HFBackend(model, tokenizer).sample(["w1 w2 w3"], group_size=3, settings=settings)
    assert not any(kwargs.get("output_scores") for kwargs in asked), "every step's (rows, V) scores kept"

    torch.manual_seed(5)
    reference = generate(
        **tokenizer(["w1 w2 w3"] * 3, return_tensors="pt"), do_sample=True, temperature=0.7, top_p=0.8, top_k=0,
        max_new_tokens=6, output_scores=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    for row, completion in enumerate(ours):
        drawn = reference.sequences[row, 3 : 3 + len(completion.completion_ids)]
        assert tuple(drawn.tolist()) == completion.completion_ids
        steps = reference.scores[: len(drawn)]
        expected = torch.stack([torch.log_softmax(s[row].float(), -1)[t] for s, t in zip(steps, drawn, strict=True)])
        torch.testing.assert_close(torch.tensor(completion.behaviour_logprobs), expected, atol=1e-5, rtol=0)


def test_a_micro_batch_without_completion_tokens_still_reaches_the_adapter_with_zeros() -> None:
    """A row of no completion tokens, alone in its micro-batch: the backward must run (DDP needs every rank's)."""
    model = lora_policy()
    batch = collate([[3, 4], [5, 6]], [[7, 8], []], [[-1.0, -2.0], []], [1.0, -1.0], pad_token_id=0)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    metrics = update_step(model, optimizer, batch, GRPOConfig(micro_batch_size=1))
    assert metrics["micro_batches"] == 2.0


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ({}, [1.0, -1.0]),
        ({"beta": 0.1}, [1.0, -1.0, 0.0, 0.0]),
        ({"loss_aggregation": "constant_normalizer"}, [1.0, -1.0, 0.0, 0.0]),
    ],
    ids=["token_mean-drops-ties", "beta-keeps-them-for-the-kl", "constant_normalizer-counts-them"],
)
def test_samples_without_signal_join_the_update_only_where_they_change_it(
    fields: dict[str, object], kept: list[float]
) -> None:
    completions = [
        Completion(group=g, text="", prompt_ids=(1, 2), completion_ids=(3 + i, 4), behaviour_logprobs=(-1.0, -1.0),
                   policy_version=0)
        for g in range(2) for i in range(2)
    ]  # fmt: skip
    batch = Batch(1, 0, [Sample(c, f"id-{i}", "int x;") for i, c in enumerate(completions)], 0.0)
    rows = rows_for_update(batch, [[1.0, -1.0], [0.0, 0.0]], GRPOConfig(**fields))  # type: ignore[arg-type]
    assert [advantage for *_, advantage in rows] == kept
