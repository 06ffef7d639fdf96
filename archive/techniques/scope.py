"""What a name means: the file's declarations (read before the walk), and the compiler's own vocabulary.

The file scope holds the constants (`#define`, `enum`, `const int`), the functions and which of them are
entry points, the global variables, the vector types and the function-like macros that wrap an intrinsic. The
walk adds what a function body declares (a local `#define`, `enum`, `const int` or vector typedef) as it
meets it: macros know no scopes, and the file is read top to bottom.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import tree_sitter

from archive.techniques.constants import constant
from archive.techniques.facts import NO_ORIGINS, Origins
from archive.techniques.syntax import Budget, Node, calls_query, field_of, first_named, node_text

_INTEGER_TYPE = re.compile(
    r"^(?:(?:const|volatile|static|register|unsigned|signed|short|long|int|char|_Bool|bool)\s*)+$"
    r"|^(?:size_t|ssize_t|ptrdiff_t|u?int(?:8|16|32|64|ptr|max)?_t|off_t)$"
)
_VECTOR_TYPE = re.compile(r"^__m(?:64|128|256|512)[a-z]*$")
_SIMD_CALL = re.compile(r"^(?:_mm\d*_|__builtin_ia32_)")
_NOT_SIMD_CALLS: Final = frozenset(
    {
        "_mm_malloc",
        "_mm_free",
        "_mm_prefetch",
        "_mm_pause",
        "_mm_sfence",
        "_mm_lfence",
        "_mm_mfence",
        "_mm_clflush",
        "_mm_clflushopt",
        "_mm_getcsr",
        "_mm_setcsr",
        "_mm_monitor",
        "_mm_mwait",
    }
)
_MACRO_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_COMMENT = re.compile(r"/\*.*?\*/|//.*", re.S)
PREFETCH_CALLS: Final = frozenset({"__builtin_prefetch", "_mm_prefetch", "_m_prefetch", "_m_prefetchw"})


def is_vector_intrinsic(name: str) -> bool:
    """`_mm256_fmadd_pd`, `__builtin_ia32_...`: not `_mm_malloc`, `_mm_prefetch` and the other non-vector ones."""
    return _SIMD_CALL.match(name) is not None and name not in _NOT_SIMD_CALLS


class FileScope:
    """The blanked source, its file-scope declarations, and the step budget every walk over it counts against."""

    def __init__(self, source: bytes, root: Node, vector_spans: list[tuple[int, int]], budget: Budget) -> None:
        self.source = source
        self.budget = budget
        self.vector_spans = vector_spans
        """`__attribute__((vector_size(N)))` spans found by the lexical pass."""
        # Every call and cast, in document order: the walk looks up those inside an expression by offset.
        captures = tree_sitter.QueryCursor(calls_query()).captures(root)
        self.call_nodes = sorted(
            (node for name in ("call", "cast") for node in captures.get(name, [])), key=lambda node: node.start_byte
        )
        self.call_starts = [node.start_byte for node in self.call_nodes]
        self.dead_spans: list[tuple[int, int]] = []
        """`#if 0` blocks (up to their `#else`): pragmas there do not count."""
        for node in captures.get("if", []):
            if self.is_if_zero(node):
                alternative = field_of(node, "alternative")
                self.dead_spans.append((node.start_byte, alternative.start_byte if alternative else node.end_byte))
        self.constants: dict[str, int] = {}
        self.functions: dict[str, list[Node]] = {}
        self.entries: list[Node] = []
        """The functions without `static` (all of them if every one is `static`): where the walk starts."""
        self.globals: dict[str, Origins] = {}
        self.global_kinds: dict[str, tuple[str, int | None]] = {}
        self.vector_types: set[str] = set()
        self.macro_calls: dict[str, str] = {}
        """Function-like macro -> the intrinsic or prefetch builtin its body calls."""
        self._read(root)

    def text(self, node: Node | None) -> str:
        return node_text(self.source, node)

    def compact(self, node: Node | None) -> str:
        """The node's text without white space, to compare two expressions."""
        return "".join(self.text(node).split())

    def constant(self, text: str) -> int | None:
        return constant(text, self.constants)

    def is_if_zero(self, node: Node) -> bool:
        return node.type == "preproc_if" and self.compact(field_of(node, "condition")) == "0"

    def is_const(self, node: Node) -> bool:
        """Whether a declaration or parameter is `const`-qualified."""
        return any(c.type == "type_qualifier" and self.text(c) == "const" for c in node.children)

    def is_vector_type(self, name: str) -> bool:
        return _VECTOR_TYPE.match(name) is not None or name in self.vector_types

    def has_vector_attribute(self, node: Node) -> bool:
        return any(node.start_byte <= start and end <= node.end_byte for start, end in self.vector_spans)

    # -- the file scope --

    def _read(self, root: Node) -> None:
        definitions: list[Node] = []
        stack = list(reversed(root.children))
        while stack:
            node = stack.pop()
            kind = node.type
            if kind == "function_definition":
                definitions.append(node)
            elif self.is_if_zero(node):
                alternative = field_of(node, "alternative")
                if alternative is not None:
                    stack.append(alternative)
            elif kind in ("preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"):
                stack.extend(reversed(node.children))
            elif kind == "preproc_def":
                self.define(node)
            elif kind == "preproc_function_def":
                self._function_macro(node)
            elif kind in ("declaration", "type_definition"):
                if (type_node := field_of(node, "type")) is not None and type_node.type == "enum_specifier":
                    self.enumerators(type_node)
                if kind == "declaration":
                    self._global_declaration(node)
                else:
                    self.type_definition(node)
            elif kind == "enum_specifier":
                self.enumerators(node)
        for definition in definitions:
            name = self.function_name(definition)
            if not name:
                continue
            self.functions.setdefault(name, []).append(definition)
            if not any(c.type == "storage_class_specifier" and self.text(c) == "static" for c in definition.children):
                self.entries.append(definition)
        if not self.entries:
            self.entries = definitions

    def _global_declaration(self, node: Node) -> None:
        for name, kind, elements, _ in self.declarators(node):
            self.globals[name] = frozenset({f"m:g:{name}"}) if kind in ("pointer", "array") else NO_ORIGINS
            self.global_kinds[name] = (kind, elements)

    def _function_macro(self, node: Node) -> None:
        """`#define FMA(a, b, c) _mm256_fmadd_pd(a, b, c)`: calls to FMA count as calls to what it expands to."""
        name, body = self.text(field_of(node, "name")), self.text(field_of(node, "value"))
        for call in _MACRO_CALL.findall(body):
            if call in PREFETCH_CALLS or is_vector_intrinsic(call):
                self.macro_calls[name] = call

    # -- declarations, at file scope or in a body --

    def define(self, node: Node) -> None:
        name, value = self.text(field_of(node, "name")), field_of(node, "value")
        number = self.constant(_COMMENT.sub(" ", self.text(value))) if value else None
        if name and number is not None:
            self.constants[name] = number

    def enumerators(self, node: Node) -> None:
        following = 0
        for enumerator in self.budget.walk(node):
            if enumerator.type != "enumerator":
                continue
            value = field_of(enumerator, "value")
            number = self.constant(self.text(value)) if value is not None else following
            if number is not None:
                self.constants[self.text(field_of(enumerator, "name"))] = number
                following = number + 1

    def type_definition(self, node: Node) -> None:
        vector = _VECTOR_TYPE.match(self.text(field_of(node, "type"))) is not None or self.has_vector_attribute(node)
        if vector:
            for declarator in node.children_by_field_name("declarator"):
                self.vector_types.add(self.text(declarator).lstrip("*( ").rstrip(") "))

    def declarators(self, node: Node) -> Iterator[tuple[str, str, int | None, Node | None]]:
        """(name, kind, elements, initial value) of each variable a declaration declares; a `const` integer
        initialised with a constant expression becomes a constant."""
        base = self.base_kind(field_of(node, "type"))
        const = self.is_const(node)
        for declarator in node.children_by_field_name("declarator"):
            value: Node | None = None
            if declarator.type == "init_declarator":
                value = field_of(declarator, "value")
                inner = field_of(declarator, "declarator")
                if inner is None:
                    continue
                declarator = inner
            name, kind, elements = self.declared_name(declarator, base)
            if not name:
                continue
            if const and kind == "int" and value is not None and value.type != "initializer_list":
                number = self.constant(self.text(value))
                if number is not None:
                    self.constants[name] = number
            yield name, kind, elements, value

    def declared_name(self, declarator: Node, base_kind: str) -> tuple[str, str, int | None]:
        """(name, kind, elements) for a declarator; name is empty for an abstract or unusual declarator."""
        kind = base_kind
        elements: int | None = 1
        node: Node | None = declarator
        while node is not None:
            if node.type == "pointer_declarator":
                kind = "pointer" if kind != "array" else kind
                node = field_of(node, "declarator")
            elif node.type == "array_declarator":
                if kind != "pointer":
                    kind = "array"
                    size = self.constant(self.text(field_of(node, "size")))
                    elements = elements * size if elements is not None and size is not None else None
                node = field_of(node, "declarator")
            elif node.type in ("parenthesized_declarator", "attributed_declarator"):
                node = first_named(node)
            else:
                break
        if node is None or node.type != "identifier":
            return "", kind, None
        return self.text(node), kind, (elements if kind == "array" else None)

    def base_kind(self, type_node: Node | None) -> str:
        """`int` for an integer type (index arithmetic); `float` for anything else (floating point, vectors)."""
        return "int" if _INTEGER_TYPE.match(" ".join(self.text(type_node).split())) else "float"

    # -- functions --

    @staticmethod
    def function_declarator(definition: Node) -> Node | None:
        declarator = field_of(definition, "declarator")
        while declarator is not None and declarator.type != "function_declarator":
            declarator = field_of(declarator, "declarator")
        return declarator

    def function_name(self, definition: Node) -> str:
        declarator = self.function_declarator(definition)
        return self.text(field_of(declarator, "declarator")) if declarator is not None else ""
