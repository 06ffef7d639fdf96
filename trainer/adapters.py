"""Versioned adapter directories `<root>/policy-v<N>`: how a generator outside the training copy (a vLLM
engine, a vLLM server) gets each policy version. Written atomically, pruned to the newest few.

Version 0 is the base model (a fresh LoRA adapter is the identity), so it has no directory: generators
sample the base model for it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from trainer.policy import save_adapter

_NAME = re.compile(r"policy-v(\d+)")


def adapter_name(version: int) -> str:
    """The name a generator serves `version` under (vLLM's `lora_name`, the directory's name)."""
    return f"policy-v{version}"


def version_of(name: str) -> int | None:
    """The version an adapter name stands for, or None when the name is not one of ours."""
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match else None


class AdapterStore:
    """The adapters of one run under `root`, the newest `keep` of them on disk."""

    def __init__(self, root: Path, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"AdapterStore keeps at least the adapter being served, not {keep}")
        self.root = root
        self.keep = keep

    def save(self, model: Any, version: int) -> Path:
        """`model`'s adapter as `<root>/policy-v<version>`. A reader never sees a half-written directory:
        it is written beside it and renamed into place (a resumed run may write a version again)."""
        final = self.root / adapter_name(version)
        partial = self.root / f".{final.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        save_adapter(model, partial)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(partial, final)
        return final

    def prune(self, newest: int) -> None:
        """Delete every version older than the newest `keep` up to `newest` (a long run writes thousands)."""
        for path in self.root.glob("policy-v*"):
            version = version_of(path.name)
            if version is not None and version <= newest - self.keep:
                shutil.rmtree(path, ignore_errors=True)
