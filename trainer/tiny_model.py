"""`hpcrl tiny-model`: builds a small policy from nothing outside, for machines that cannot download one.

1. corpus: correct C programs from templates (trainer/corpus.py), as (prompt, completion) pairs;
2. tokenizer: a byte-level BPE (with Qwen2's pre-tokenizer, which loading imposes) plus the corpus's common
   whole lines as single tokens, so `    for (int k = 0; k < n; k++)\n` is one token and a program is
   about 28 tokens, not 250: what lets a tiny model write consistent code after minutes on a CPU;
3. model: a small `Qwen2ForCausalLM`, trained supervised on the completions (the prompt is context only);
4. saved as a plain Hugging Face directory (`AutoModelForCausalLM`/`AutoTokenizer.from_pretrained` load it,
   with a chat template) plus `hpcrl_tiny_model.json`: the build config, corpus hash and final loss;
5. a report: samples at temperature 1.0, compiled with gcc and run against a naive reference.

Everything is seeded: the same seed gives the same corpus and, on the same machine and thread count,
the same weights.

Measured (2 cores, defaults, 2026-11-21): about 4.5 minutes; 90-95% of samples at temperature 1.0 compile
and are correct. Most failures are a rare token from the tail of the distribution (`ain#include`) or a
name chosen in one place and misspelt later; sampling with top_p = 0.95 cut them to 0.5% (1 of 192).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast, Qwen2Config
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_PRETOKENIZE_REGEX

from bus.config import ConfigError
from bus.daemon import setup_logging
from bus.schema import DEFAULT_STAGE_LADDER
from trainer import corpus
from trainer.generation import extract_code, render_prompt

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
UNK = "<|endoftext|>"
"""Qwen2Tokenizer's default unknown token: declared here, or loading would append it to the vocabulary."""
ROLES: Final = ("system", "user", "assistant")
"""Chat roles; each has a special token `<|role|>` that opens its message."""
CHAT_TEMPLATE: Final = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] | trim }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""`<|bos|><|user|>\\n{prompt}\\n<|assistant|>\\n{completion}<|eos|>`: exactly the sequences trained on.
(transformers renders templates with trim_blocks, so a newline right after a block tag is written as an
expression.)"""
META_FILE: Final = "hpcrl_tiny_model.json"
LENGTH_GROUP: Final = 8
"""Batches drawn together and sorted by length (see `_length_grouped`)."""


@dataclass(frozen=True)
class TinyModelConfig:
    out: str
    """Output directory (created; existing files of the same name are overwritten)."""
    steps: int = 1600
    """Optimiser steps of supervised training."""
    seed: int = 0
    """Seeds the corpus, the initial weights, the batches and the report's samples."""
    threads: int = 2
    """torch CPU threads."""
    corpus_items: int = 4000
    """(prompt, completion) pairs generated; batches are drawn from them at random."""
    bpe_vocab_size: int = 1024
    """Byte-level BPE vocabulary including the special tokens (the corpus saturates it below 1,000)."""
    line_tokens: int = 3072
    """Most common whole lines of the corpus added as single tokens (at most)."""
    min_line_count: int = 3
    """A line becomes a token only if it occurs this often in the corpus."""
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    """Key/value heads (grouped-query attention, as in Qwen2)."""
    intermediate_size: int = 768
    """Width of the MLP."""
    max_positions: int = 1024
    """Longest prompt + completion the model is built for, in tokens."""
    batch_size: int = 32
    """Sequences per step."""
    learning_rate: float = 2e-3
    """AdamW peak learning rate, reached after warmup_steps, then cosine decay to a tenth of it."""
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    """Global gradient-norm limit."""
    log_every: int = 25
    """Steps between progress lines."""
    samples: int = 20
    """Completions sampled for the report at the end (0: no report)."""
    sample_temperature: float = 1.0
    check_samples: bool = True
    """Compile the report's samples with gcc and run them against a naive reference."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.corpus_items < 1:
            raise ConfigError("tiny-model needs steps, batch_size and corpus_items >= 1")
        if self.hidden_size % self.heads or self.heads % self.kv_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}, "
                f"and heads a multiple of kv_heads {self.kv_heads}"
            )
        if self.bpe_vocab_size < 300:
            raise ConfigError("bpe_vocab_size must be >= 300: 256 byte tokens, the special tokens and some merges")
        if self.threads < 1 or self.samples < 0 or self.sample_temperature <= 0:
            raise ConfigError("threads must be >= 1, samples >= 0 and sample_temperature > 0")


QUICK: Final = {
    "steps": 4,
    "corpus_items": 200,
    "line_tokens": 256,
    "hidden_size": 32,
    "layers": 1,
    "heads": 2,
    "kv_heads": 1,
    "intermediate_size": 64,
    "batch_size": 4,
    "warmup_steps": 1,
    "log_every": 1,
    "samples": 2,
    "check_samples": False,
}
"""`--quick`: a model that only proves the pipeline works (seconds); its samples are noise."""


# ---------------------------------------------------------------------------------------------------------
# Tokenizer.


def train_tokenizer(texts: Sequence[str], bpe_vocab_size: int, line_tokens: int, min_line_count: int) -> Any:
    """Byte-level BPE on Qwen2's pre-tokenizer, plus the corpus's most common whole lines as added tokens,
    with BOS/EOS/PAD, role tokens and the chat template.

    Why lines are added tokens rather than BPE merges: transformers 5 loads any `qwen2` directory with
    `Qwen2Tokenizer`, which keeps tokenizer.json's vocabulary, merges and added tokens but rebuilds the
    normalizer and pre-tokenizer from Qwen's own regex (`MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS`). So a
    line-level pre-tokenizer would not survive `AutoTokenizer.from_pretrained`; added tokens do, and they
    are matched in the raw text before pre-tokenization (longest match first). The BPE part is trained
    with exactly Qwen's normalizer and pre-tokenizer, so the loaded tokenizer is the trained one."""
    specials = [PAD, BOS, EOS, UNK, *(f"<|{role}|>" for role in ROLES)]
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    bpe = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, bpe)
    counts = Counter(line for text in texts for line in text.splitlines(keepends=True))
    # Sorted by count, then text, so that the vocabulary does not depend on dict order.
    common = sorted((line for line, n in counts.items() if n >= min_line_count), key=lambda s: (-counts[s], s))
    backend.add_tokens([AddedToken(line, normalized=False) for line in common[:line_tokens]])
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens=[f"<|{role}|>" for role in ROLES],
        chat_template=CHAT_TEMPLATE,
    )


def encode_item(tokenizer: Any, item: corpus.CorpusItem) -> tuple[list[int], int]:
    """(token ids of prompt + completion + EOS, number of prompt tokens): tokenized the way generation
    sees them, the rendered prompt alone, then the completion."""
    prompt = tokenizer(render_prompt(tokenizer, item.prompt), add_special_tokens=False)["input_ids"]
    completion = tokenizer(item.completion, add_special_tokens=False)["input_ids"]
    return [*prompt, *completion, tokenizer.eos_token_id], len(prompt)


# ---------------------------------------------------------------------------------------------------------
# Training.


def _length_grouped(
    examples: Sequence[tuple[list[int], int]], batch_size: int, rng: random.Random
) -> Iterator[list[tuple[list[int], int]]]:
    """Endless random batches with little padding: LENGTH_GROUP batches' worth of examples are drawn at
    random, sorted by length, cut into batches, and those batches served in random order. Random batches
    of this corpus are 44% padding; these about 10%, and the CPU's time goes to real tokens."""
    while True:
        pool = [examples[rng.randrange(len(examples))] for _ in range(batch_size * LENGTH_GROUP)]
        pool.sort(key=lambda example: len(example[0]))
        batches = [pool[start : start + batch_size] for start in range(0, len(pool), batch_size)]
        rng.shuffle(batches)
        yield from batches


def _batch(examples: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels; labels are -100 on the prompt and padding, so
    the loss counts completion tokens only."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)  # (B, T)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _learning_rate(config: TinyModelConfig, step: int) -> float:
    """Linear warmup to the peak, then cosine decay to a tenth of it at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def model_config(config: TinyModelConfig, tokenizer: Any) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build(config: TinyModelConfig) -> dict[str, Any]:
    """Build, train and save the tiny model into config.out; returns what hpcrl_tiny_model.json records."""
    started = time.monotonic()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    # Corpus and tokenizer; from here on the tokenizer is the one `AutoTokenizer` loads from `out`.
    items = corpus.generate_corpus(config.corpus_items, config.seed)
    digest = corpus.corpus_hash(items)
    texts = [text for item in items for text in (item.prompt, item.completion)]
    trained = train_tokenizer(texts, config.bpe_vocab_size, config.line_tokens, config.min_line_count)
    trained.model_max_length = config.max_positions
    trained.save_pretrained(out)
    model_config(config, trained).save_pretrained(out)  # AutoTokenizer picks its class by the model type
    tokenizer = AutoTokenizer.from_pretrained(out)
    for text in texts[:200]:
        if (
            tokenizer(text, add_special_tokens=False)["input_ids"]
            != trained(text, add_special_tokens=False)["input_ids"]
        ):
            raise RuntimeError(
                f"{type(tokenizer).__name__} loaded from {out} tokenizes differently from the trained one"
            )
    if len(tokenizer) != len(trained):
        raise RuntimeError(f"the loaded tokenizer has {len(tokenizer)} tokens, the trained one {len(trained)}")
    examples = [encode_item(tokenizer, item) for item in items]
    longest = max(len(ids) for ids, _ in examples)
    if longest > config.max_positions:
        raise ConfigError(f"a corpus item has {longest} tokens, over max_positions {config.max_positions}: raise it")
    mean_completion = sum(len(ids) - p for ids, p in examples) / len(examples)
    log.info(
        "event=corpus items=%d distinct=%d hash=%s vocab=%d line_tokens=%d mean_completion_tokens=%.1f longest=%d",
        len(items),
        len({item.completion for item in items}),
        digest[:16],
        len(tokenizer),
        len(tokenizer) - trained.backend_tokenizer.get_vocab_size(with_added_tokens=False),
        mean_completion,
        longest,
    )

    # Model.
    model = AutoModelForCausalLM.from_config(model_config(config, tokenizer))  # type: ignore[no-untyped-call]
    parameters = sum(p.numel() for p in model.parameters())
    log.info("event=model parameters=%d layers=%d hidden=%d", parameters, config.layers, config.hidden_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    # Supervised training on completion tokens.
    model.train()
    loss_value, window_tokens, window_start = math.nan, 0, time.monotonic()
    batches = _length_grouped(examples, config.batch_size, rng)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        batch = _batch(next(batches), tokenizer.pad_token_id)
        loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise RuntimeError(
                f"loss is {loss.item()} at step {step}: lower learning_rate (now {config.learning_rate})"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_value = float(loss.item())
        window_tokens += int(batch["attention_mask"].sum())
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            elapsed = time.monotonic() - window_start
            log.info(
                "event=step step=%d loss=%.4f lr=%.2e tokens_per_s=%.0f",
                step + 1,
                loss_value,
                optimizer.param_groups[0]["lr"],
                window_tokens / max(elapsed, 1e-9),
            )
            window_tokens, window_start = 0, time.monotonic()
    train_s = time.monotonic() - started

    # Save: a plain HF directory, loadable by AutoModelForCausalLM / AutoTokenizer.
    model.eval()
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=1.0,
        top_k=0,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta: dict[str, Any] = {
        "config": asdict(config),
        "corpus_hash": digest,
        "corpus_distinct_completions": len({item.completion for item in items}),
        "final_loss": loss_value,
        "parameters": parameters,
        "vocab_size": len(tokenizer),
        "mean_completion_tokens": mean_completion,
        "train_s": round(train_s, 1),
    }

    # Report: how often samples compile and are correct.
    if config.samples:
        meta["report"] = sample_report(model, tokenizer, config)
    meta["build_s"] = round(time.monotonic() - started, 1)
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    log.info("event=saved out=%s build_s=%.1f final_loss=%.4f", out, meta["build_s"], loss_value)
    return meta


# ---------------------------------------------------------------------------------------------------------
# The cache (the demo builds the model once per machine).

OUTSIDE_CACHE_KEY: Final = frozenset({"out", "threads", "log_every", "samples", "sample_temperature", "check_samples"})
"""Settings that do not shape the weights (the thread count changes only rounding)."""


def cache_path(cache_root: Path, config: TinyModelConfig) -> Path:
    """Where the model `config` builds lives under `cache_root`: named by every setting that shapes its
    weights and by the hash of the corpus it trains on, so a changed corpus template gets a new model."""
    settings = {key: value for key, value in asdict(config).items() if key not in OUTSIDE_CACHE_KEY}
    settings["corpus_hash"] = corpus.corpus_hash(corpus.generate_corpus(config.corpus_items, config.seed))
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root.expanduser() / digest


def is_built(path: Path) -> bool:
    """The build finished: its record is written last, after the weights and the tokenizer."""
    return (path / META_FILE).is_file()


# ---------------------------------------------------------------------------------------------------------
# The report.


def report_prompts(count: int) -> list[tuple[str, tuple[str, ...] | None]]:
    """(problem, permitted) for `count` samples: dgemm three times in four, every rung of the ladder and
    the unrestricted prompt in turn."""
    stages: list[tuple[str, ...] | None] = [None, *DEFAULT_STAGE_LADDER]
    return [("jacobi2d" if index % 4 == 3 else "dgemm", stages[index % len(stages)]) for index in range(count)]


@torch.no_grad()
def sample(model: Any, tokenizer: Any, prompts: Sequence[str], temperature: float, max_new_tokens: int) -> list[str]:
    """One completion per prompt (already rendered), decoded without special tokens."""
    tokenizer.padding_side = "left"
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    output = model.generate(
        **batch,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    width = batch["input_ids"].shape[1]
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in output]


def sample_report(model: Any, tokenizer: Any, config: TinyModelConfig) -> dict[str, Any]:
    """Samples at the configured temperature; the fraction with a fenced block defining the entry point,
    and (check_samples) the fractions that compile with gcc and that match the naive reference."""
    torch.manual_seed(config.seed)
    plan = report_prompts(config.samples)
    prompts = [
        render_prompt(tokenizer, corpus.build_prompt(corpus.PROBLEM_DESCRIPTIONS[p], permitted))
        for p, permitted in plan
    ]
    texts = sample(model, tokenizer, prompts, config.sample_temperature, max_new_tokens=config.max_positions // 2)
    codes = [extract_code(text) for text in texts]
    defines = [
        code is not None and corpus.SIGNATURES[problem] in code for code, (problem, _) in zip(codes, plan, strict=True)
    ]
    report: dict[str, Any] = {
        "samples": len(texts),
        "temperature": config.sample_temperature,
        "defines_entry_ratio": sum(defines) / len(texts),
        "distinct_programs": len({code for code in codes if code}),
    }
    if config.check_samples:
        compiled = correct = 0
        for problem in corpus.SIGNATURES:
            indices = [i for i, (p, _) in enumerate(plan) if p == problem and codes[i] is not None]
            results = corpus.check_sources(problem, [codes[i] or "" for i in indices], jobs=config.threads)
            compiled += sum(r.compiled for r in results)
            correct += sum(r.correct for r in results)
            for index, result in zip(indices, results, strict=True):
                if not result.correct:
                    log.info(
                        "event=sample_failed index=%d problem=%s error=%s", index, problem, json.dumps(result.error)
                    )
        report["compiled_ratio"] = compiled / len(texts)
        report["correct_ratio"] = correct / len(texts)
    log.info("event=report %s", " ".join(f"{key}={value}" for key, value in report.items()))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl tiny-model",
        description="Build a small Qwen2 policy from nothing outside: a corpus of C programs from templates, a "
        "tokenizer and a model trained on it, saved as a Hugging Face directory.",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--steps", type=int, help=f"training steps (default {TinyModelConfig.steps})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--samples", type=int, help=f"samples in the final report (default {TinyModelConfig.samples})")
    parser.add_argument(
        "--quick", action="store_true", help="a toy build in seconds that only proves the pipeline works"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    overrides: dict[str, Any] = dict(QUICK) if args.quick else {}
    overrides.update(seed=args.seed, threads=args.threads)
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.samples is not None:
        overrides["samples"] = args.samples
    try:
        config = replace(TinyModelConfig(out=args.out), **overrides)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    log.info("event=config %s", json.dumps(asdict(config), sort_keys=True))
    meta = build(config)
    print(json.dumps({"out": config.out, **{k: v for k, v in meta.items() if k != "config"}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
