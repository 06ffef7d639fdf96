"""The lexical pass: `#pragma` lines and `__attribute__((...))` read, then blanked out of the parser's way.

tree-sitter-c 0.24 rejects an attribute after an array declarator and splits a loop from its body when a
`#pragma` line sits between them, so both are replaced by spaces before parsing. Blanking keeps every byte
offset and line number true, so positions in the tree still point into the original source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_ATTRIBUTE_BYTES: Final = 4096
"""A longer `__attribute__((...))` is left alone (and will not parse): no real one is that long."""

_LEXICAL = re.compile(
    rb"""
      (?P<comment>/\*.*?(?:\*/|\Z)|//(?:\\\r?\n|[^\n])*)
    | (?P<string>"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)
    | (?P<pragma>^[ \t]*\#[ \t]*pragma\b(?:\\\r?\n|[^\n])*)
    | (?P<attribute>\b__attribute(?:__)?\b)
    """,
    re.S | re.M | re.X,
)
_CONTINUATION = re.compile(rb"\\\r?\n")
_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)|//.*", re.S)


@dataclass(frozen=True)
class Pragma:
    offset: int
    words: tuple[str, ...]
    """The pragma's text after `#pragma`, split on white space, comments removed."""


def _blank(buffer: bytearray, start: int, end: int) -> None:
    for index in range(start, end):
        if buffer[index] not in b"\r\n":
            buffer[index] = 0x20


def _attribute_end(data: bytes, start: int) -> int:
    """The offset just past `((...))` after `__attribute__` at `start`, or -1 if the parentheses do not close."""
    index = start
    while index < len(data) and data[index] in b" \t\r\n":
        index += 1
    if index >= len(data) or data[index] != 0x28:
        return -1
    depth = 0
    limit = min(len(data), index + MAX_ATTRIBUTE_BYTES)
    while index < limit:
        byte = data[index]
        if byte == 0x28:
            depth += 1
        elif byte == 0x29:
            depth -= 1
            if depth == 0:
                return index + 1
        elif byte == 0x22:
            close = data.find(b'"', index + 1, limit)
            if close < 0:
                return -1
            index = close
        index += 1
    return -1


def lexical_pass(data: bytes) -> tuple[bytes, list[Pragma], list[tuple[int, int]]]:
    """Blank `#pragma` lines and `__attribute__((...))`; return the result, the pragmas, and vector_size spans."""
    buffer = bytearray(data)
    pragmas: list[Pragma] = []
    vector_spans: list[tuple[int, int]] = []
    attributes_balanced = True
    for match in _LEXICAL.finditer(data):
        kind = match.lastgroup
        if kind == "pragma":
            text = _COMMENT.sub(b" ", _CONTINUATION.sub(b" ", match.group()))
            words = text.decode("utf-8", "replace").split()
            body = " ".join(words).split("pragma", 1)[-1]
            pragmas.append(Pragma(match.start(), tuple(body.split())))
            _blank(buffer, match.start(), match.end())
        elif kind == "attribute" and attributes_balanced:
            end = _attribute_end(data, match.end())
            if end < 0:
                # Unbalanced: the source will not parse anyway, and scanning on could cost quadratic time.
                attributes_balanced = False
                continue
            if b"vector_size" in data[match.start() : end]:
                vector_spans.append((match.start(), end))
            _blank(buffer, match.start(), end)
    return bytes(buffer), pragmas, vector_spans
