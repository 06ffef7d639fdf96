"""The C syntax tree: tree-sitter's parser and query, node helpers, and the step budget that bounds every walk.

Why tree-sitter and not libclang: see the package docstring. Node text is sliced from the blanked source
(`node_text`), never read through `Node.text`, which would re-read it through the parse callback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import tree_sitter
import tree_sitter_c

MAX_ANALYSIS_STEPS: Final = 200_000
"""Statements, expression nodes and (per 64) bytes searched in one analysis, over all inlined bodies."""

Node = tree_sitter.Node

_parser: tree_sitter.Parser | None = None
_query: tree_sitter.Query | None = None


class TooComplex(Exception):
    """The analysis ran past one of its bounds; `analyze` turns it into a `parse_error`."""


class Budget:
    """The steps one analysis has taken, over the file scope and every inlined body: past the limit it stops."""

    def __init__(self) -> None:
        self.steps = 0

    def tick(self, steps: int = 1) -> None:
        self.steps += steps
        if self.steps > MAX_ANALYSIS_STEPS:
            raise TooComplex(f"too complex to analyse: more than {MAX_ANALYSIS_STEPS} steps")

    def walk(self, node: Node, skip: frozenset[str] = frozenset()) -> Iterator[Node]:
        """Every node under `node` (itself included) in document order, not entering node types in `skip`."""
        stack = [node]
        while stack:
            current = stack.pop()
            self.tick()
            yield current
            if current.type not in skip:
                stack.extend(reversed(current.children))


def get_parser() -> tree_sitter.Parser:
    """One parser per process: building it costs more than parsing a candidate. A tree-sitter parser is not
    thread-safe, so `analyze` runs in one thread per process (the archive's ingest uses a process pool)."""
    global _parser
    if _parser is None:
        _parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_c.language()))
    return _parser


def calls_query() -> tree_sitter.Query:
    """Every call and cast: matched in C, much faster than walking the tree in Python."""
    global _query
    if _query is None:
        language = tree_sitter.Language(tree_sitter_c.language())
        _query = tree_sitter.Query(language, "(call_expression) @call (cast_expression) @cast (preproc_if) @if")
    return _query


def node_text(source: bytes, node: Node | None) -> str:
    """The source text of a node (sliced here: `Node.text` would re-read it through the parse callback)."""
    if node is None:
        return ""
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def field_of(node: Node, name: str) -> Node | None:
    return node.child_by_field_name(name)


def first_named(node: Node) -> Node | None:
    return node.named_children[0] if node.named_child_count else None


def last_named(node: Node) -> Node | None:
    return node.named_children[-1] if node.named_child_count else None


def operator_of(node: Node) -> str:
    token = field_of(node, "operator")
    return token.type if token is not None else ""


def strip(node: Node) -> Node:
    """The expression under any parentheses and casts."""
    while node.type in ("parenthesized_expression", "cast_expression"):
        inner = field_of(node, "value") if node.type == "cast_expression" else first_named(node)
        if inner is None:
            break
        node = inner
    return node


def first_error(source: bytes, root: Node) -> str:
    """The first ERROR or MISSING node of a tree that has one, as `line N: syntax error ...`."""
    node = root
    while not (node.is_error or node.is_missing):
        following = next((child for child in node.children if child.has_error or child.is_missing), None)
        if following is None:
            break
        node = following
    line = node.start_point.row + 1
    if node.is_missing:
        return f"line {line}: syntax error: missing `{node.type}`"
    snippet = "".join(c if c.isprintable() else "?" for c in " ".join(node_text(source, node)[:200].split()))
    snippet = snippet if len(snippet) <= 40 else snippet[:37] + "..."
    return f"line {line}: syntax error at `{snippet}`"
