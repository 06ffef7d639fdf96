"""C source text handling: comment stripping that respects literals, and the normalized hash used as
cache key (two candidates that differ only in comments or spacing share their build and result)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator


def _segments(source: str) -> Iterator[tuple[str, str]]:
    """Split C source into ("code" | "comment" | "literal", text) pieces, in order."""
    i, start, length = 0, 0, len(source)
    while i < length:
        if source.startswith("//", i) or source.startswith("/*", i):
            if source[i + 1] == "/":
                end = source.find("\n", i)
                end = length if end < 0 else end
            else:
                end = source.find("*/", i + 2)
                end = length if end < 0 else end + 2
            yield "code", source[start:i]
            yield "comment", source[i:end]
            i = start = end
        elif source[i] in "\"'":
            quote, j = source[i], i + 1
            while j < length and source[j] != quote and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            yield "code", source[start:i]
            yield "literal", source[i : j + 1]
            i = start = j + 1
        else:
            i += 1
    yield "code", source[start:]


def strip_comments(source: str, blank_literals: bool = False) -> str:
    """Replace every comment by one space (as the C preprocessor does), keeping newlines so line
    numbers survive. With blank_literals, the contents of string and character literals become
    spaces too, so a scan for keywords cannot be fooled or confused by text inside quotes."""
    out = []
    for kind, text in _segments(source):
        if kind == "comment":
            out.append(" " + "\n" * text.count("\n"))
        elif kind == "literal" and blank_literals and len(text) >= 2:
            out.append(text[0] + " " * (len(text) - 2) + text[-1])
        else:
            out.append(text)
    return "".join(out)


_HORIZONTAL_SPACE = re.compile(r"[ \t\f\v]+")
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n[\s]*")


def normalize(source: str) -> str:
    """Comments removed; outside literals, runs of spaces collapsed and blank lines dropped."""
    out = []
    for kind, text in _segments(strip_comments(source)):
        out.append(text if kind == "literal" else _SPACE_AROUND_NEWLINE.sub("\n", _HORIZONTAL_SPACE.sub(" ", text)))
    return "".join(out).strip()


def source_hash(source: str) -> str:
    return hashlib.sha256(normalize(source).encode()).hexdigest()
