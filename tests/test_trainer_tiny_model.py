"""`hpcrl tiny-model` and its corpus: every template yields a correct program, prompts state what is
permitted, and a build is a Hugging Face directory that the trainer's own loading code can use."""

from __future__ import annotations

import json
import random
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from trainer import corpus

REPO = Path(__file__).resolve().parent.parent
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def template_sample(per_template: int = 6, jacobi: int = 12, seed: int = 11) -> list[tuple[str, str, tuple[str, ...]]]:
    """(template, source, techniques): `per_template` programs of every dgemm template, and jacobi2d ones."""
    rng = random.Random(seed)
    sample = [
        corpus.generate_program("dgemm", rng, name) for name in corpus.dgemm_templates() for _ in range(per_template)
    ]
    return sample + [corpus.generate_program("jacobi2d", rng) for _ in range(jacobi)]


@needs_gcc
def test_every_template_compiles_without_warnings_and_matches_the_naive_reference() -> None:
    for problem in corpus.SIGNATURES:
        programs = [source for template, source, _ in template_sample() if template.startswith(problem + ".")]
        results = corpus.check_sources(problem, programs, extra_flags=("-Wall", "-Wextra", "-Werror"))
        failed = [(result, source) for result, source in zip(results, programs, strict=True) if not result.correct]
        assert not failed, failed[0]


@needs_gcc
def test_the_checker_rejects_wrong_and_broken_programs() -> None:
    good = corpus.generate_program("dgemm", random.Random(0), "naive")[1]
    wrong = good.replace("= 0.0;", "= 1.0;")
    broken = good.replace("for", "fro", 1)
    results = corpus.check_sources("dgemm", [good, wrong, broken])
    assert [(r.compiled, r.correct) for r in results] == [(True, True), (True, False), (False, False)]


def test_declared_techniques_are_the_ones_the_archive_detects() -> None:
    pytest.importorskip("tree_sitter")
    from archive.techniques import analyze

    for template, source, techniques in template_sample():
        found = analyze(source)
        assert not found.parse_error, (template, found.parse_error)
        assert set(found.techniques) == set(techniques), (template, source)


def test_the_bencher_policy_accepts_every_template() -> None:
    from bencher.policy import check_source

    for template, source, _ in template_sample():
        assert check_source(source) is None, (template, check_source(source))


def test_the_templates_span_the_ladder() -> None:
    items = corpus.generate_corpus(600, seed=1)
    templates = {item.template for item in items}
    assert {f"dgemm.{name}" for name in corpus.dgemm_templates()} <= templates
    assert any(t.startswith("jacobi2d.") for t in templates)
    used = {technique for item in items for technique in item.techniques}
    expected = {"loop_order", "tiling", "unrolling", "register_blocking", "simd_intrinsics", "simd_pragma"}
    assert expected | {"openmp", "transpose"} <= used


def test_the_descriptions_are_the_registry_ones() -> None:
    for problem, signature in corpus.SIGNATURES.items():
        data = tomllib.loads((REPO / "bencher" / "problems" / f"{problem}.toml").read_text())
        assert corpus.PROBLEM_DESCRIPTIONS[problem] == data["description"].strip()
        assert data["signature"] == signature + ";"


def test_a_prompt_states_the_problem_and_the_permitted_techniques_in_the_archive_order() -> None:
    description = corpus.PROBLEM_DESCRIPTIONS["dgemm"]
    prompt = corpus.build_prompt(description, ["tiling", "loop_order"])
    assert prompt.startswith(description.strip())
    assert prompt.endswith("Permitted techniques: loop_order, tiling.\n")
    assert "Permitted techniques: any." in corpus.build_prompt(description, None)
    assert "Permitted techniques: none" in corpus.build_prompt(description, [])


def test_every_corpus_prompt_permits_what_its_program_uses() -> None:
    for item in corpus.generate_corpus(300, seed=2):
        assert item.prompt.startswith(corpus.PROBLEM_DESCRIPTIONS[item.problem].strip())
        assert item.completion.startswith("```c\n") and item.completion.endswith("\n```")
        assert corpus.SIGNATURES[item.problem] in item.code
        if item.permitted is not None:
            assert set(item.techniques) <= set(item.permitted)
            assert item.prompt == corpus.build_prompt(corpus.PROBLEM_DESCRIPTIONS[item.problem], item.permitted)


def test_the_corpus_is_the_same_for_the_same_seed() -> None:
    first, again, other = (corpus.generate_corpus(200, seed) for seed in (5, 5, 6))
    assert first == again
    assert corpus.corpus_hash(first) == corpus.corpus_hash(again) != corpus.corpus_hash(other)


# --- the build ------------------------------------------------------------------------------------------


def quick_build(out: Path, seed: int = 0) -> dict[str, Any]:
    pytest.importorskip("transformers")
    from trainer.tiny_model import META_FILE, main

    assert main(["--out", str(out), "--quick", "--seed", str(seed), "--threads", "1"]) == 0
    meta: dict[str, Any] = json.loads((out / META_FILE).read_text())
    return meta


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("tiny") / "model"
    return out, quick_build(out)


def test_a_quick_build_writes_a_directory_the_auto_classes_load_and_generate_from(
    built: tuple[Path, dict[str, Any]],
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, meta = built
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tokenizer)
    assert meta["vocab_size"] == len(tokenizer) and meta["final_loss"] > 0
    assert len(meta["corpus_hash"]) == 64

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": corpus.build_prompt(corpus.PROBLEM_DESCRIPTIONS["dgemm"], None)}],
        tokenize=False,
        add_generation_prompt=True,
    )
    batch = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    output = model.generate(**batch, do_sample=True, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[0] == 1 and batch["input_ids"].shape[1] < output.shape[1] <= batch["input_ids"].shape[1] + 8


def test_the_loaded_tokenizer_round_trips_the_corpus_and_has_a_chat_template(
    built: tuple[Path, dict[str, Any]],
) -> None:
    from transformers import AutoTokenizer

    out, _ = built
    tokenizer = AutoTokenizer.from_pretrained(out)
    for item in corpus.generate_corpus(20, seed=3):
        ids = tokenizer(item.completion, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == item.completion
    messages = [{"role": "user", "content": "Write dgemm.\n"}, {"role": "assistant", "content": "```c\n```"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<|bos|><|user|>\nWrite dgemm.\n<|assistant|>\n```c\n```<|eos|>"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")
    assert {tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token} == {"<|bos|>", "<|eos|>", "<|pad|>"}
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert (
        ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids, skip_special_tokens=True).strip() == "Write dgemm."
    )


def test_the_same_seed_builds_the_same_model(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, first = built
    again = quick_build(tmp_path / "again")
    assert again["corpus_hash"] == first["corpus_hash"]
    assert again["final_loss"] == first["final_loss"]
    other = quick_build(tmp_path / "other", seed=1)
    assert other["corpus_hash"] != first["corpus_hash"]


def test_the_report_compiles_and_runs_the_samples(built: tuple[Path, dict[str, Any]]) -> None:
    from dataclasses import replace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.tiny_model import QUICK, TinyModelConfig, sample_report

    out, _ = built
    config = replace(TinyModelConfig(out=str(out)), **{**QUICK, "samples": 4, "check_samples": True})
    report = sample_report(AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), config)
    assert report["samples"] == 4
    for key in ("defines_entry_ratio", "compiled_ratio", "correct_ratio"):
        assert 0 <= report[key] <= 1


def test_the_directory_holds_the_tokenizer_the_model_was_trained_with(built: tuple[Path, dict[str, Any]]) -> None:
    from transformers import AutoTokenizer

    from trainer.tiny_model import QUICK, train_tokenizer

    out, meta = built
    items = corpus.generate_corpus(int(QUICK["corpus_items"]), seed=0)
    assert corpus.corpus_hash(items) == meta["corpus_hash"]
    texts = [text for item in items for text in (item.prompt, item.completion)]
    trained = train_tokenizer(texts, 1024, int(QUICK["line_tokens"]), 3)
    loaded = AutoTokenizer.from_pretrained(out)
    for text in texts[:40]:
        assert (
            loaded(text, add_special_tokens=False)["input_ids"] == trained(text, add_special_tokens=False)["input_ids"]
        )


def test_common_lines_are_single_tokens_so_a_program_is_a_few_dozen_tokens() -> None:
    pytest.importorskip("transformers")
    from trainer.tiny_model import TinyModelConfig, train_tokenizer

    config = TinyModelConfig(out="unused")
    texts = [text for item in corpus.generate_corpus(1000, seed=0) for text in (item.prompt, item.completion)]
    tokenizer = train_tokenizer(texts, config.bpe_vocab_size, config.line_tokens, config.min_line_count)
    unseen = corpus.generate_corpus(50, seed=1)
    tokens = sum(len(tokenizer(item.completion, add_special_tokens=False)["input_ids"]) for item in unseen)
    lines = sum(item.completion.count("\n") + 1 for item in unseen)
    assert tokens < 1.5 * lines


def test_the_loss_counts_completion_tokens_only() -> None:
    pytest.importorskip("torch")
    from trainer.tiny_model import _batch

    batch = _batch([([5, 6, 7, 8], 2), ([5, 9], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [5, 9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 9, -100, -100]]


def test_batches_are_grouped_by_length_and_seeded() -> None:
    pytest.importorskip("torch")
    from trainer.tiny_model import _length_grouped

    examples = [([1] * length, 1) for length in range(2, 200)]
    first = _length_grouped(examples, 4, random.Random(3))
    again = _length_grouped(examples, 4, random.Random(3))
    batches = [next(first) for _ in range(16)]
    assert batches == [next(again) for _ in range(16)]
    # Sorted within a group, so a batch spans a fraction of the length range.
    assert sum(max(map(len, (ids for ids, _ in b))) - min(map(len, (ids for ids, _ in b))) for b in batches) < 16 * 100


def test_the_report_extracts_the_fenced_program() -> None:
    pytest.importorskip("transformers")
    from trainer.generation import extract_code

    assert extract_code("```c\nint x;\n```") == "int x;\n"
    assert extract_code("no code") is None
    assert extract_code("```c\nunterminated") is None
