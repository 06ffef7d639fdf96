"""C source as gcc lexes it: line splices, comments, literals and tokens (translation phases 1-3), for
the policy's checks.

Why tokens and not text patterns: the compiler reads tokens after joining spliced lines and turning
comments into spaces, and every pattern that does not do the same can be walked around (a form feed
before `#include`, `__attribute__( (ifunc`, `__asm__` inside a raw string literal, which gcc accepts in
GNU C). Where gcc's lexing depends on its mode or version, or where a spelling only serves to confuse
a reader, the source is refused with the reason instead of guessed at, so that the tokens here are the
tokens gcc sees. Refused (a DGEMM author never needs any of them): control characters other than tab
and newline (form feed and vertical tab are whitespace inside directives for gcc, and a lone carriage
return ends a line for gcc), trigraphs (on in the ISO modes), raw string literals, digit separators
(C23), unterminated literals and comments, characters outside ASCII except inside comments and
literals, and stray backslashes (universal character names in identifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class Unlexable(ValueError):
    """The source uses a spelling the policy refuses; the message says which and where."""


@dataclass(frozen=True)
class Token:
    kind: str
    """identifier, number, string, char or punctuator."""
    text: str
    """As written, after line splicing."""
    line: int
    """Physical line of its first character, from 1."""
    space_before: bool
    """Whitespace or a comment separates it from the token before it."""

    @property
    def value(self) -> str:
        """The punctuator a digraph stands for (`<:` is `[`, `%:` is `#`), else the text."""
        return _DIGRAPHS.get(self.text, self.text)


_DIGRAPHS = {"<:": "[", ":>": "]", "<%": "{", "%>": "}", "%:": "#", "%:%:": "##"}
# Longest first, so that `>>=` is one token and not `>` `>=`.
_PUNCTUATORS = sorted(
    """%:%: ... <<= >>= -> ++ -- << >> <= >= == != && || *= /= %= += -= &= ^= |= ## <: :> <% %> %:
    [ ] ( ) { } . & * + - ~ ! / % < > ^ | ? : ; = , #""".split(),
    key=len,
    reverse=True,
)
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# A pp-number; `'` inside one is a C23 digit separator, refused below (gnu17 reads it as a quote).
_NUMBER = re.compile(r"\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*")
_STRING_PREFIXES = ("u8", "L", "u", "U")
_RAW_PREFIXES = frozenset({"R", "LR", "uR", "UR", "u8R"})
# Any control character but tab and newline; a carriage return only as part of CR LF.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRIGRAPH = re.compile(r"\?\?[=/'()!<>\-]")
# gcc joins a backslash and a newline with only spaces or tabs between (it warns about the spaces).
_SPLICE = re.compile(r"\\[ \t]*\n")
_CONTROL_NAMES = {"\x00": "a NUL byte", "\x0b": "a vertical tab", "\x0c": "a form feed", "\r": "a carriage return"}


def lex(source: str) -> list[list[Token]]:
    """The tokens of `source`, grouped by logical line (a newline inside a comment does not end a line,
    as for gcc's directives). Raises Unlexable with the reason for anything the policy refuses."""
    text = source.replace("\r\n", "\n")
    _screen(text)
    logical, lines_of = _splice(text)
    return _tokens(logical, lines_of)


def _screen(text: str) -> None:
    control = _CONTROL.search(text) or re.search("\r", text)
    if control:
        char = control.group()
        name = _CONTROL_NAMES.get(char, f"the control character {ord(char):#04x}")
        raise Unlexable(f"line {_line_at(text, control.start())}: the source contains {name}; use spaces and newlines")
    trigraph = _TRIGRAPH.search(text)
    if trigraph:
        raise Unlexable(
            f"line {_line_at(text, trigraph.start())}: the trigraph {trigraph.group()} is not allowed "
            "(write the character itself; inside a string, escape a question mark as \\?)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Unlexable(f"line {_line_at(text, error.start)}: the source is not valid Unicode text") from None


def _splice(text: str) -> tuple[str, list[int]]:
    """Phase 2: the text with every backslash-newline removed, and the physical line of each character."""
    out: list[str] = []
    lines: list[int] = []
    line, position = 1, 0
    for match in _SPLICE.finditer(text):
        chunk = text[position : match.start()]
        for char in chunk:
            out.append(char)
            lines.append(line)
            line += char == "\n"
        line += 1
        position = match.end()
    for char in text[position:]:
        out.append(char)
        lines.append(line)
        line += char == "\n"
    lines.append(line)  # the end of the text
    return "".join(out), lines


def _tokens(text: str, lines_of: list[int]) -> list[list[Token]]:
    groups: list[list[Token]] = [[]]
    i, length, space = 0, len(text), False
    while i < length:
        char = text[i]
        line = lines_of[i]
        if char == "\n":
            groups.append([])
            i, space = i + 1, False
        elif char in " \t":
            i, space = i + 1, True
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i, space = (length if end < 0 else end), True
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise Unlexable(f"line {line}: the comment is not closed (*/ missing)")
            i, space = end + 2, True
        elif char in "\"'":
            i = _literal(text, i, i, line, groups[-1], space)
            space = False
        elif identifier := _IDENTIFIER.match(text, i):
            word = identifier.group()
            after = i + len(word)
            if after < length and text[after] == '"' and word in _RAW_PREFIXES:
                raise Unlexable(f'line {line}: raw string literals ({word}"...") are not allowed; use a plain string')
            if after < length and text[after] in "\"'" and word in _STRING_PREFIXES:
                i = _literal(text, i, after, line, groups[-1], space)
            else:
                groups[-1].append(Token("identifier", word, line, space))
                i = after
            space = False
        elif pp_number := _NUMBER.match(text, i):
            number = pp_number.group()
            i += len(number)
            if i < length and text[i] == "'":
                raise Unlexable(f"line {line}: digit separators ({number}'...) are not allowed")
            groups[-1].append(Token("number", number, line, space))
            space = False
        else:
            punctuator = next((p for p in _PUNCTUATORS if text.startswith(p, i)), None)
            if punctuator is None:
                shown = "a backslash" if char == "\\" else repr(char)
                raise Unlexable(
                    f"line {line}: {shown} outside comments and string literals is not allowed "
                    "(identifiers are ASCII; a backslash may only end a line)"
                )
            groups[-1].append(Token("punctuator", punctuator, line, space))
            i, space = i + len(punctuator), False
    return groups


def _literal(text: str, start: int, quote_at: int, line: int, group: list[Token], space: bool) -> int:
    """Append the string or character literal whose prefix starts at `start`; return where it ends."""
    quote, j = text[quote_at], quote_at + 1
    while j < len(text) and text[j] != quote and text[j] != "\n":
        j += 2 if text[j] == "\\" else 1
    if j >= len(text) or text[j] != quote:
        what = "string" if quote == '"' else "character"
        raise Unlexable(f"line {line}: the {what} literal is not closed on its line")
    group.append(Token("string" if quote == '"' else "char", text[start : j + 1], line, space))
    return j + 1


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass(frozen=True)
class Directive:
    """A preprocessing directive: `#` (or `%:`), its name and the rest of its logical line."""

    hash: Token
    tokens: list[Token]
    """After the `#`: the name, then its operands."""

    @property
    def name(self) -> str:
        return self.tokens[0].text if self.tokens else ""

    def text(self, start: int = 1) -> str:
        """The tokens from `start` on, spaced as written (comments count as one space)."""
        return "".join((" " if t.space_before and k else "") + t.text for k, t in enumerate(self.tokens[start:]))


def split_directives(groups: list[list[Token]]) -> tuple[list[Directive], list[Token]]:
    """The directives and the other tokens. gcc takes a `#` as a directive only when it starts a line;
    here every `#` outside a directive starts one that runs to the end of its line, so no `#` escapes
    the directive checks however it is placed (anywhere else it is a compile error for gcc anyway)."""
    directives: list[Directive] = []
    code: list[Token] = []
    for group in groups:
        for k, token in enumerate(group):
            if token.value == "#":
                directives.append(Directive(token, group[k + 1 :]))
                break
            code.append(token)
    return directives, code


def source_bytes(source: str) -> bytes:
    """The bytes gcc reads for `source`: its UTF-8 encoding, the cache keys' input. Lone surrogates
    (refused by the checks) are encoded too, so the key of any text can be computed."""
    return source.encode("utf-8", "surrogatepass")
