"""Technique detection: which optimisation techniques a candidate's C source uses, by static analysis.

The archive stores these labels with every solution; they describe *how* a kernel is written, never how fast
it is. `analyze(source)` parses the source with tree-sitter's C grammar and walks the functions reachable from
the entry point (every function without `static`: `dgemm`, `jacobi2d`), inlining calls to the file's own
helpers with their arguments bound to the parameters, so a loop in `kernel_6x8` nests inside the loops of
`dgemm` that call it. The labels speak of loop nests and memory access, never of the names `A`, `B`, `C`.

Why tree-sitter and not libclang: it is a wheel with no system library, parses a candidate in well under a
millisecond, needs neither headers nor a preprocessor (so nothing a candidate `#include`s is ever read), and
gives a concrete syntax tree even for code that does not compile. Regular expressions do only lexical work:
finding `#pragma` lines and `__attribute__((...))` and blanking them (same length, so byte offsets and lines
stay true) before parsing, because tree-sitter-c 0.24 rejects an attribute after an array declarator and
splits a loop from its body when a `#pragma` line sits between them (`for (...)` / `#pragma GCC unroll 4` /
`for (...)`).

Words used below. A *multiply-accumulate* is an assignment `X += E`, `X -= E`, or `X = E` with `X` inside
`E`, where `E` multiplies: a binary `*` or a call whose name has `mul`/`fma`/`fmadd` (`_mm256_fmadd_pd(a, b,
c)`, `fma(a, b, s)`), looked for outside array subscripts and outside calls that are not arithmetic (a load,
a broadcast), or through a temporary (`t = a * b; c[j] += t`); `X` is not an integer or pointer variable
(that is index arithmetic). A vector store whose value multiplies and reloads the stored address
(`_mm256_storeu_pd(p, _mm256_fmadd_pd(a, b, _mm256_loadu_pd(p)))`) is one too. *Computation* means the
multiply-accumulates and the stores to an output. A *register accumulator* is
an `X` that is a local scalar or vector variable, or an element of a local array of constant size (at most 256
elements). A *register loop* has a constant trip count of at most 16 (`for (r = 0; r < MR; r++)`): the
compiler unrolls it fully, so it is not a level of the loop order. An *input* is a `const`-qualified pointer
parameter of the entry point, an *output* a pointer parameter without `const`; a *buffer* is any other memory
(a local or static array, a pointer from `malloc`/`aligned_alloc`/`_mm_malloc`, a static pointer). "Depends
on" follows variables through assignments and helper parameters (`i1 = min(i0 + BS, n)` depends on `i0`).

Labels (exactly these ten, in `bus.schema.TECHNIQUES` order):

- `loop_order`: some multiply-accumulate's innermost enclosing loop, skipping register loops, has an index that
  the destination's address depends on, while an enclosing loop's index is one it does not depend on: the
  reduction loop is outside the innermost loop (i-k-j, k-i-j, j-k-i). The textbook i-j-k order, and j-i-k,
  accumulate along the innermost `k` into one place; a scalar accumulator is one place whatever the loops.
  Register-blocked micro-kernels (k innermost around a block of accumulators) are not `loop_order`, nor is an
  elementwise update (`C[t] += x * y[t]`, no reduction loop at all).
- `tiling`: a loop T whose step is not 1 (a constant >= 2 or a variable block size), and a loop P nested
  inside it with at least one other loop between them, whose range is a tile of T's index: P starts at a
  value that depends on T's index and its bound depends on it too (`i = i0; i < i0 + BS`), or its bound is a
  min-like expression (a call with `min` in its name, or `?:`) of T's index (`k < kc`, `kc = min(KC, n -
  k0)`). A strip-mined loop alone (P directly inside T) is not tiling: it changes no traversal order; nor is a
  register tile, a P with a constant trip count of at most 8 (`r = i; r < i + 2` at a register block's edge).
- `unrolling`: a `#pragma GCC unroll N` / `#pragma unroll [N]` / `#pragma clang loop unroll...` with N >= 2
  or no N, or `#pragma GCC optimize` naming `unroll-loops`; or a loop with a constant step s >= 2 whose body
  uses its index at two or more constant offsets in [0, s) (`a[k]`, `a[k + 1]`, ...). A step-4 loop that
  touches one vector per iteration (`_mm256_loadu_pd(b + j)`), or one element every s, is not unrolled.
- `register_blocking`: inside one reduction loop (the innermost non-register loop), multiply-accumulates
  update two or more register accumulators (`c00`, `c01`, ... or `c[r][q]` over register loops) and reuse a
  loaded value across them: one operand is shared by two accumulators, or does not depend on a register loop
  that the accumulator does (`c[r][q] += a * b[q]`). Split sums of one reduction (`s0 += a[k] * b[k]; s1 +=
  a[k + 1] * b[k + 1]`) share nothing: that is unrolling, not register blocking.
- `simd_intrinsics`: a call to `_mm*_...` or `__builtin_ia32_...` other than the non-vector ones
  (`_mm_malloc`, `_mm_free`, `_mm_prefetch`, `_mm_pause`, fences, `_mm_getcsr`/`_mm_setcsr`, ...), or a
  variable, parameter or cast of a vector type: `__m128d`/`__m256d`/`__m512d`/... or a type declared with
  `__attribute__((vector_size(N)))`. A call to a function-like macro whose body calls an intrinsic counts
  (`#define FMA(a, b, c) _mm256_fmadd_pd(a, b, c)`). Including `<immintrin.h>` alone is not.
- `simd_pragma`: `#pragma omp simd` in any form (`omp for simd`, `omp declare simd`), `#pragma GCC ivdep`,
  `#pragma ivdep`, `#pragma vector`, `#pragma clang loop vectorize(...)`.
- `openmp`: an `omp` pragma with a directive that distributes work over threads: `parallel`, `for`, `do`,
  `sections`, `single`, `task`, `taskloop`, `teams`, `distribute`, `loop`, `target`, `workshare` (`omp simd`
  and `omp declare simd` alone are not).
- `packing`: a copy (`buf[...] = in[...]`, `memcpy`, a vector store of a vector load) from an input into a
  buffer that (1) gathers a two-dimensional block: the source moves by a stride along one of the copy's own
  loops (loops around the copy that enclose no computation); (2) is blocked: it runs inside a loop that also
  encloses computation (repacked per block), or one of its own loops has a step other than 1; and (3) feeds
  the computation: a multiply-accumulate or a store to the output reads from the buffer. A whole-matrix copy
  before computing, a contiguous row copy, or a copy that nothing reads is not packing.
- `transpose`: a copy from an input into a buffer whose two subscripts swap two loops' roles: the
  destination moves by one along loop u and by a stride along loop v, the source the other way round
  (`bt[j * n + k] = B[k * n + j]`, `t[j][i] = in[i][j]`). Pointer bumps (`Ap += MR`) are not strides, so
  BLIS-style micro-panel packing counts as packing only.
- `prefetch`: a call to `__builtin_prefetch`, `_mm_prefetch`, `_m_prefetch` or `_m_prefetchw` (or to a
  function-like macro whose body calls one).

Everything counts only in code reachable from an entry point; a pragma counts inside a reachable function or
at file scope, not inside `#if 0`.

Parse errors. The source is unparseable, and gets no labels and a `parse_error` that names the line, when
tree-sitter's tree has any ERROR or MISSING node (after the blanking above), when it is larger than
`MAX_SOURCE_BYTES`, when parsing takes longer than `PARSE_TIMEOUT_S`, or when it defines no function. Error
recovery splices tokens in unpredictable ways (a dropped `for` body, a missing `;` that changes nesting), so a
label read from a recovered tree could be wrong either way; no labels is the honest answer, and the bencher's
compiler, not this module, decides whether the code runs.

Macros are not expanded (tree-sitter does not preprocess). Object-like macros and enumerators with an
integer value (`#define BS 64`, `enum { MR = 6 }`), and `const` integer variables, are constants wherever a
step, bound or offset is read. Function-like macros used as expressions (`MIN(a, b)`) parse as calls and
work; macros that expand to statements, types or qualifiers (`FOR(i, n) {...}`, `double *RESTRICT p`) make
the source unparseable.

Bounded work. The analysis counts its steps (statements, expression nodes, bytes searched); past
`MAX_ANALYSIS_STEPS`, or with loops nested deeper than `MAX_LOOP_DEPTH`, it gives no labels and says so in
`parse_error`, like an unparseable source. The largest kernel of the bencher's ladder takes 1,400 steps.

Known weaknesses: variables are followed by name and flow-insensitively; calls through function pointers are
not followed; helpers are inlined at most `MAX_INLINE_DEPTH` deep and `MAX_INSTANCES` times (further calls are
not followed); manual unrolling written with a bumped pointer (`p[0]`, `p[1]`, `p += 4`) is not seen;
`typeof`, `_Complex` and case ranges are not parsed by tree-sitter-c 0.24 and make the source unparseable.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import tree_sitter

from archive.techniques.constants import constant
from archive.techniques.lexical import Pragma, lexical_pass
from archive.techniques.syntax import (
    Budget,
    Node,
    TooComplex,
    calls_query,
    field_of,
    first_error,
    first_named,
    get_parser,
    last_named,
    node_text,
    operator_of,
    strip,
)
from bus.schema import MAX_SOURCE_BYTES, TECHNIQUES

PARSE_TIMEOUT_S: Final = 0.5
"""Wall-clock limit on tree-sitter's parse; a pathological 256 KiB input takes about a second."""
MAX_INLINE_DEPTH: Final = 6
"""How deep calls to the file's own helpers are followed."""
MAX_INSTANCES: Final = 256
"""How many function bodies (entry points plus inlined helper calls) one analysis walks."""
MAX_LOOP_DEPTH: Final = 64
"""Loops nested deeper than this (counting inlined helpers) are not analysed."""
MAX_EXPRESSION_DEPTH: Final = 100
"""Deeper expression subtrees are not looked into (they add no dependencies)."""
REGISTER_LOOP_MAX_TRIPS: Final = 16
"""A loop with a constant trip count up to this is fully unrolled by the compiler: a register loop."""
REGISTER_TILE_MAX_TRIPS: Final = 8
"""A point loop with a constant trip count up to this (`r = i; r < i + 4`) is a register tile, not tiling."""
REGISTER_ARRAY_MAX_ELEMENTS: Final = 256
"""A local array up to this many elements can be an array of register accumulators."""


@dataclass(frozen=True)
class Analysis:
    """The techniques found in one source, or why none could be looked for."""

    techniques: frozenset[str]
    """Labels from `TECHNIQUES`; empty when `parse_error` is set."""
    parse_error: str = ""
    """Empty when the source parsed; otherwise why no labels were given (with a line number if any)."""

    @property
    def ok(self) -> bool:
        return not self.parse_error


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans covering the same bytes."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


Origins = frozenset[str]
_NONE: Final[Origins] = frozenset()
_PARENS = re.compile(r"\([^()]*\)")
_COMMENT_STR = re.compile(r"/\*.*?\*/|//.*", re.S)


# --- names -------------------------------------------------------------------------------------------------

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
_PREFETCH_CALLS: Final = frozenset({"__builtin_prefetch", "_mm_prefetch", "_m_prefetch", "_m_prefetchw"})
_ALLOCATION_CALLS: Final = frozenset(
    {"malloc", "calloc", "realloc", "aligned_alloc", "_mm_malloc", "alloca", "__builtin_alloca", "memalign", "valloc"}
)
_COPY_CALLS: Final = frozenset({"memcpy", "memmove", "__builtin_memcpy", "__builtin_memmove"})
_MULTIPLY_CALL = re.compile(r"mul|fma|fnma|fms", re.I)
_FMA_CALL = re.compile(r"fma|fnma|fms", re.I)
_ARITHMETIC_CALL = re.compile(r"add|sub|mul|fma|fnma|fms", re.I)
_OPENMP_WORK: Final = frozenset(
    {"parallel", "for", "do", "sections", "single", "task", "taskloop", "teams", "distribute", "loop", "target"}
    | {"workshare"}
)
_BLOCKS: Final = frozenset(
    {
        "compound_statement",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "labeled_statement",
        "case_statement",
        "else_clause",
    }
)


# --- analysis state ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Loop:
    id: int
    var: str | None
    step: int | None
    """The constant step, or None when it is not a constant (a variable block size)."""
    has_step: bool
    """False for while/do loops and for loops without an update: they are never tile loops."""
    trips: int | None
    start: Origins
    bound: Origins
    instance: int
    enclosing: tuple[_Loop, ...]

    @property
    def token(self) -> str:
        return f"L{self.id}"

    @property
    def is_register_loop(self) -> bool:
        return self.trips is not None and self.trips <= REGISTER_LOOP_MAX_TRIPS


@dataclass(eq=False)
class _MultiplyAccumulate:
    loops: tuple[_Loop, ...]
    destination: Origins
    accumulator: str | None
    """`instance:text` of a register accumulator's destination; None for memory."""
    operands: list[tuple[str, Origins]]


@dataclass(eq=False)
class _Copy:
    loops: tuple[_Loop, ...]
    destination: Origins
    source: Origins


@dataclass(eq=False)
class _Instance:
    """One walk of one function body: an entry point, or a helper inlined at one call site."""

    id: int
    names: tuple[str, ...]
    """The functions being inlined down to this one (outermost first): no recursion."""
    env: dict[str, Origins] = field(default_factory=dict)
    kinds: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    """Local name -> (`int`, `float`, `pointer` or `array`, element count of an array if constant)."""
    products: dict[str, list[tuple[Node, Node]]] = field(default_factory=dict)
    """Local name -> the multiplications its value was computed with (`t = a * b; c += t`)."""


def _declared_name(
    source: bytes, declarator: Node, base_kind: str, constants: dict[str, int]
) -> tuple[str, str, int | None]:
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
                size = constant(node_text(source, field_of(node, "size")), constants)
                elements = elements * size if elements is not None and size is not None else None
            node = field_of(node, "declarator")
        elif node.type in ("parenthesized_declarator", "attributed_declarator"):
            node = first_named(node)
        else:
            break
    if node is None or node.type != "identifier":
        return "", kind, None
    return node_text(source, node), kind, (elements if kind == "array" else None)


def _base_kind(source: bytes, type_node: Node | None) -> str:
    text = " ".join(node_text(source, type_node).split())
    return "int" if _INTEGER_TYPE.match(text) else "float"


class _Analyzer:
    """One analysis: the file scope, then the walk from the entry points, then `labels()`."""

    def __init__(self, source: bytes, root: Node, pragmas: list[Pragma], vector_spans: list[tuple[int, int]]) -> None:
        self.source = source
        # Every call and cast, in document order: `_calls` looks up those inside an expression by offset.
        captures = tree_sitter.QueryCursor(calls_query()).captures(root)
        self.call_nodes = sorted(
            (node for name in ("call", "cast") for node in captures.get(name, [])), key=lambda node: node.start_byte
        )
        self.dead_spans: list[tuple[int, int]] = []
        """`#if 0` blocks (up to their `#else`): pragmas there do not count."""
        for node in captures.get("if", []):
            if self._is_zero_condition(node):
                alternative = field_of(node, "alternative")
                self.dead_spans.append((node.start_byte, alternative.start_byte if alternative else node.end_byte))
        self.call_starts = [node.start_byte for node in self.call_nodes]
        self.pragmas = pragmas
        self.vector_spans = vector_spans
        self.constants: dict[str, int] = {}
        self.functions: dict[str, list[Node]] = {}
        self.entries: list[Node] = []
        self.globals: dict[str, Origins] = {}
        self.global_kinds: dict[str, tuple[str, int | None]] = {}
        self.vector_types: set[str] = set()
        self.macro_calls: dict[str, str] = {}
        """Function-like macro -> the intrinsic or prefetch builtin its body calls."""
        self.found: set[str] = set()
        self.loops: list[_Loop] = []
        self.accumulations: list[_MultiplyAccumulate] = []
        self.copies: list[_Copy] = []
        self.computations: list[tuple[tuple[_Loop, ...], Origins]] = []
        self.reached: set[int] = set()
        """Function definitions (node ids) walked at least once: pragmas in the others do not count."""
        self.unroll_checked: set[int] = set()
        self.instances = 0
        self.budget = Budget()
        self._file_scope(root)

    def _text(self, node: Node | None) -> str:
        return node_text(self.source, node)

    def _compact(self, node: Node | None) -> str:
        return "".join(self._text(node).split())

    def _is_zero_condition(self, node: Node) -> bool:
        return node.type == "preproc_if" and self._compact(field_of(node, "condition")) == "0"

    # -- file scope --

    def _file_scope(self, root: Node) -> None:
        definitions: list[Node] = []
        stack = list(reversed(root.children))
        while stack:
            node = stack.pop()
            kind = node.type
            if kind == "function_definition":
                definitions.append(node)
            elif self._is_zero_condition(node):
                alternative = field_of(node, "alternative")
                if alternative is not None:
                    stack.append(alternative)
            elif kind in ("preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"):
                stack.extend(reversed(node.children))
            elif kind == "preproc_def":
                self._define(node)
            elif kind == "preproc_function_def":
                self._function_macro(node)
            elif kind in ("declaration", "type_definition"):
                if (type_node := field_of(node, "type")) is not None and type_node.type == "enum_specifier":
                    self._enumerators(type_node)
                if kind == "declaration":
                    self._declaration(node, None, ())
                else:
                    self._type_definition(node)
            elif kind == "enum_specifier":
                self._enumerators(node)
        for definition in definitions:
            name = self._function_name(definition)
            if not name:
                continue
            self.functions.setdefault(name, []).append(definition)
            if not any(c.type == "storage_class_specifier" and self._text(c) == "static" for c in definition.children):
                self.entries.append(definition)
        if not self.entries:
            self.entries = definitions

    def _function_name(self, definition: Node) -> str:
        declarator = field_of(definition, "declarator")
        while declarator is not None and declarator.type != "function_declarator":
            declarator = field_of(declarator, "declarator")
        return self._text(field_of(declarator, "declarator")) if declarator is not None else ""

    def _function_macro(self, node: Node) -> None:
        """`#define FMA(a, b, c) _mm256_fmadd_pd(a, b, c)`: calls to FMA count as calls to what it expands to."""
        name, body = self._text(field_of(node, "name")), self._text(field_of(node, "value"))
        for call in _MACRO_CALL.findall(body):
            if call in _PREFETCH_CALLS or (_SIMD_CALL.match(call) and call not in _NOT_SIMD_CALLS):
                self.macro_calls[name] = call

    def _define(self, node: Node) -> None:
        name, value = self._text(field_of(node, "name")), field_of(node, "value")
        number = constant(_COMMENT_STR.sub(" ", self._text(value)), self.constants) if value else None
        if name and number is not None:
            self.constants[name] = number

    def _enumerators(self, node: Node) -> None:
        following = 0
        for enumerator in self.budget.walk(node):
            if enumerator.type != "enumerator":
                continue
            value = field_of(enumerator, "value")
            number = constant(self._text(value), self.constants) if value is not None else following
            if number is not None:
                self.constants[self._text(field_of(enumerator, "name"))] = number
                following = number + 1

    def _type_definition(self, node: Node) -> None:
        vector = _VECTOR_TYPE.match(self._text(field_of(node, "type"))) is not None or any(
            node.start_byte <= start and end <= node.end_byte for start, end in self.vector_spans
        )
        if vector:
            for declarator in node.children_by_field_name("declarator"):
                self.vector_types.add(self._text(declarator).lstrip("*( ").rstrip(") "))

    # -- the walk --

    def run(self) -> None:
        for entry in self.entries:
            self._instantiate(entry, None, (), (self._function_name(entry),))

    def _instantiate(
        self,
        definition: Node,
        arguments: list[Origins] | None,
        loops: tuple[_Loop, ...],
        names: tuple[str, ...],
    ) -> None:
        body = field_of(definition, "body")
        if body is None or self.instances >= MAX_INSTANCES:
            return
        self.instances += 1
        instance = _Instance(self.instances, names)
        self.reached.add(definition.id)
        declarator = field_of(definition, "declarator")
        while declarator is not None and declarator.type != "function_declarator":
            declarator = field_of(declarator, "declarator")
        parameters = field_of(declarator, "parameters") if declarator is not None else None
        declarations = [p for p in parameters.named_children if p.type == "parameter_declaration"] if parameters else []
        for index, parameter in enumerate(declarations):
            inner = field_of(parameter, "declarator")
            if inner is None:
                continue
            name, kind, elements = _declared_name(
                self.source, inner, _base_kind(self.source, field_of(parameter, "type")), self.constants
            )
            if not name:
                continue
            if kind == "array":
                kind, elements = "pointer", None
            instance.kinds[name] = (kind, elements)
            self._vector_use(field_of(parameter, "type"))
            if arguments is not None:
                instance.env[name] = arguments[index] if index < len(arguments) else _NONE
            elif kind == "pointer":
                const = any(c.type == "type_qualifier" and self._text(c) == "const" for c in parameter.children)
                instance.env[name] = frozenset({("in:" if const else "out:") + name})
        self._statements(body, instance, loops)

    def _statements(self, body: Node, instance: _Instance, loops: tuple[_Loop, ...]) -> None:
        work: list[tuple[Node, _Instance, tuple[_Loop, ...]]] = [(body, instance, loops)]
        while work:
            node, instance, loops = work.pop()
            self.budget.tick()
            kind = node.type
            pending: list[tuple[Node, _Instance, tuple[_Loop, ...]]] = []
            if kind in _BLOCKS or (kind == "preproc_if" and not self._is_zero_condition(node)):
                pending = [(child, instance, loops) for child in node.named_children]
            elif kind == "preproc_if":
                alternative = field_of(node, "alternative")
                pending = [(alternative, instance, loops)] if alternative is not None else []
            elif kind == "for_statement":
                loop = self._for_loop(node, instance, loops)
                inner = field_of(node, "body")
                if inner is not None:
                    pending = [(inner, instance, (*loops, loop))]
            elif kind in ("while_statement", "do_statement"):
                condition = field_of(node, "condition")
                loop = self._loop(None, None, False, None, _NONE, _NONE, instance, loops)
                if condition is not None:
                    self._expression(condition, instance, (*loops, loop))
                inner = field_of(node, "body")
                if inner is not None:
                    pending = [(inner, instance, (*loops, loop))]
            elif kind in ("if_statement", "switch_statement"):
                condition = field_of(node, "condition")
                if condition is not None:
                    self._expression(condition, instance, loops)
                pending = [
                    (child, instance, loops)
                    for name in ("consequence", "alternative", "body")
                    if (child := field_of(node, name)) is not None
                ]
            elif kind in ("expression_statement", "return_statement"):
                expression = first_named(node)
                if expression is not None:
                    self._expression(expression, instance, loops)
            elif kind == "declaration":
                if (type_node := field_of(node, "type")) is not None and type_node.type == "enum_specifier":
                    self._enumerators(node)
                self._declaration(node, instance, loops)
            elif kind == "preproc_def":
                self._define(node)
            elif kind == "type_definition":
                self._type_definition(node)
            work.extend(reversed(pending))

    # -- loops --

    def _loop(
        self,
        var: str | None,
        step: int | None,
        has_step: bool,
        trips: int | None,
        start: Origins,
        bound: Origins,
        instance: _Instance,
        loops: tuple[_Loop, ...],
    ) -> _Loop:
        if len(loops) >= MAX_LOOP_DEPTH:
            raise TooComplex(f"loops nested deeper than {MAX_LOOP_DEPTH}")
        loop = _Loop(len(self.loops) + 1, var, step, has_step, trips, start, bound, instance.id, loops)
        self.loops.append(loop)
        return loop

    def _for_loop(
        self,
        node: Node,
        instance: _Instance,
        loops: tuple[_Loop, ...],
    ) -> _Loop:
        initializer, condition, update = (field_of(node, name) for name in ("initializer", "condition", "update"))
        start_value: Node | None = None
        if initializer is not None:
            if initializer.type == "declaration":
                self._declaration(initializer, instance, loops)
            else:
                self._expression(initializer, instance, loops)
        var, step, has_step = self._control(initializer, condition, update)
        if initializer is not None and var is not None:
            for candidate in self.budget.walk(initializer, frozenset({"call_expression"})):
                if candidate.type == "init_declarator" and self._text(field_of(candidate, "declarator")) == var:
                    start_value = field_of(candidate, "value")
                elif candidate.type == "assignment_expression" and self._text(field_of(candidate, "left")) == var:
                    start_value = field_of(candidate, "right")
        if start_value is not None:
            start = self._origins(start_value, instance, loops, 0)
        elif var is not None:
            start = self._name(var, instance, loops)
        else:
            start = _NONE
        loop = self._loop(var, step, has_step, None, start, _NONE, instance, loops)
        inside = (*loops, loop)
        if condition is not None:
            loop.bound = self._origins(condition, instance, inside, 0)
            self._expression(condition, instance, inside)
        if update is not None:
            self._expression(update, instance, inside)
        loop.trips = self._trips(var, step, start_value, condition)
        if (
            step is not None
            and step >= 2
            and node.id not in self.unroll_checked
            and (body := field_of(node, "body")) is not None
        ):
            self.unroll_checked.add(node.id)
            if var is not None and self._unrolled(body, var, step):
                self.found.add("unrolling")
        return loop

    def _control(
        self, initializer: Node | None, condition: Node | None, update: Node | None
    ) -> tuple[str | None, int | None, bool]:
        """(index variable, constant step or None, whether the loop has an update of its index)."""
        in_condition = {self._text(n) for n in self.budget.walk(condition)} if condition is not None else set()
        steps: list[tuple[str, int | None]] = []
        stack = [update] if update is not None else []
        while stack:
            node = stack.pop()
            if node.type in ("comma_expression", "parenthesized_expression"):
                stack.extend(reversed(node.named_children))
            elif node.type == "update_expression":
                argument = field_of(node, "argument")
                if argument is not None and argument.type == "identifier":
                    steps.append((self._text(argument), -1 if "--" in operator_of(node) else 1))
            elif node.type == "assignment_expression":
                left, right, operator = field_of(node, "left"), field_of(node, "right"), operator_of(node)
                if left is None or right is None or left.type != "identifier":
                    continue
                name = self._text(left)
                value: int | None = None
                if operator in ("+=", "-="):
                    value = constant(self._text(right), self.constants)
                    value = -value if value is not None and operator == "-=" else value
                elif operator == "=":
                    inner = strip(right)
                    if inner.type == "binary_expression" and operator_of(inner) in ("+", "-"):
                        terms = [field_of(inner, "left"), field_of(inner, "right")]
                        if terms[0] is not None and self._text(terms[0]) == name and terms[1] is not None:
                            value = constant(self._text(terms[1]), self.constants)
                            value = -value if value is not None and operator_of(inner) == "-" else value
                steps.append((name, value))
        for name, value in steps:
            if name in in_condition:
                return name, value, True
        if steps:
            return steps[0][0], steps[0][1], True
        if initializer is not None:
            for node in self.budget.walk(initializer, frozenset({"call_expression"})):
                if node.type == "init_declarator":
                    return self._text(field_of(node, "declarator")) or None, None, False
        return None, None, False

    def _trips(self, var: str | None, step: int | None, start: Node | None, condition: Node | None) -> int | None:
        if var is None or step is None or step <= 0 or start is None or condition is None:
            return None
        condition = strip(condition)
        if condition.type != "binary_expression":
            return None
        left, right, operator = field_of(condition, "left"), field_of(condition, "right"), operator_of(condition)
        if left is None or right is None:
            return None
        if self._text(right) == var and operator in (">", ">="):
            left, right, operator = right, left, "<" if operator == ">" else "<="
        if self._text(left) != var or operator not in ("<", "<=", "!="):
            return None
        low = constant(self._text(start), self.constants)
        high = constant(self._text(right), self.constants)
        bound = strip(right)
        if (low is None or high is None) and bound.type == "binary_expression" and operator_of(bound) == "+":
            # `r = i; r < i + 2`: a constant count from a variable start.
            base, extra = field_of(bound, "left"), field_of(bound, "right")
            if base is not None and extra is not None and self._compact(base) == self._compact(start):
                low, high = 0, constant(self._text(extra), self.constants)
        if low is None or high is None:
            return None
        high += 1 if operator == "<=" else 0
        return max(0, -(-(high - low) // step))

    def _unrolled(self, body: Node, var: str, step: int) -> bool:
        """Whether the body uses `var` at two or more constant offsets in [0, step)."""
        offsets: set[int] = set()
        pattern = re.compile(rb"\b" + re.escape(var.encode()) + rb"\b")
        self.budget.tick((body.end_byte - body.start_byte) // 64)
        for match in pattern.finditer(self.source, body.start_byte, body.end_byte):
            self.budget.tick()
            node = body.descendant_for_byte_range(match.start(), match.end())
            if node is not None and node.type == "identifier" and node.end_byte == match.end():
                offset = self._offset(node)
                if offset is not None and 0 <= offset < step:
                    offsets.add(offset)
                    if len(offsets) >= 2:
                        return True
        return False

    def _offset(self, node: Node) -> int | None:
        """The constant added to `node` in the sum it is a term of (`k + 1` -> 1, `j + k + 2` -> 2)."""
        top = node
        for _ in range(MAX_EXPRESSION_DEPTH):
            parent = top.parent
            if parent is None or not (
                parent.type == "parenthesized_expression"
                or (parent.type == "binary_expression" and operator_of(parent) in ("+", "-"))
            ):
                break
            top = parent
        offset, sign_of_node = 0, 0
        stack: list[tuple[Node, int]] = [(top, 1)]
        while stack:
            current, sign = stack.pop()
            self.budget.tick()
            if current.type == "parenthesized_expression" and (inside := first_named(current)) is not None:
                stack.append((inside, sign))
            elif current.type == "binary_expression" and operator_of(current) in ("+", "-"):
                left, right = field_of(current, "left"), field_of(current, "right")
                if left is not None:
                    stack.append((left, sign))
                if right is not None:
                    stack.append((right, -sign if operator_of(current) == "-" else sign))
            elif current.id == node.id:
                sign_of_node = sign
            else:
                value = (
                    constant(self._text(current), self.constants)
                    if current.type in ("number_literal", "identifier")
                    else None
                )
                offset += sign * value if value is not None else 0
        return offset if sign_of_node == 1 else None

    # -- declarations and expressions --

    def _declaration(
        self,
        node: Node,
        instance: _Instance | None,
        loops: tuple[_Loop, ...],
    ) -> None:
        type_node = field_of(node, "type")
        base = _base_kind(self.source, type_node)
        const = any(c.type == "type_qualifier" and self._text(c) == "const" for c in node.children)
        if instance is not None:
            self._vector_use(type_node)
            if any(node.start_byte <= start and end <= node.end_byte for start, end in self.vector_spans):
                self.found.add("simd_intrinsics")
        for declarator in node.children_by_field_name("declarator"):
            value: Node | None = None
            if declarator.type == "init_declarator":
                value = field_of(declarator, "value")
                inner = field_of(declarator, "declarator")
                if inner is None:
                    continue
                declarator = inner
            name, kind, elements = _declared_name(self.source, declarator, base, self.constants)
            if not name:
                continue
            origins = self._origins(value, instance, loops, 0) if value is not None and instance else _NONE
            if kind in ("pointer", "array"):
                origins |= {f"m:{instance.id if instance else 'g'}:{name}"}
            if value is not None and value.type != "initializer_list":
                if const and kind == "int":
                    number = constant(self._text(value), self.constants)
                    if number is not None:
                        self.constants[name] = number
                if instance is not None:
                    products = self._products(value, instance)
                    if products:
                        instance.products[name] = products
            if instance is None:
                self.globals[name] = origins
                self.global_kinds[name] = (kind, elements)
            else:
                instance.env[name] = instance.env.get(name, _NONE) | origins
                instance.kinds[name] = (kind, elements)
            if value is not None and instance is not None:
                self._calls(value, instance, loops)

    def _vector_use(self, type_node: Node | None) -> None:
        if type_node is not None:
            name = self._text(type_node)
            if _VECTOR_TYPE.match(name) or name in self.vector_types:
                self.found.add("simd_intrinsics")

    def _expression(
        self,
        expression: Node,
        instance: _Instance,
        loops: tuple[_Loop, ...],
    ) -> None:
        stack = [expression]
        while stack:
            node = stack.pop()
            kind = node.type
            if kind in ("comma_expression", "parenthesized_expression"):
                stack.extend(reversed(node.named_children))
            elif kind == "assignment_expression":
                self._assignment(node, instance, loops)
            elif kind == "update_expression":
                self._bump(field_of(node, "argument"), instance, loops)
        self._calls(expression, instance, loops)

    def _bump(self, target: Node | None, instance: _Instance, loops: tuple[_Loop, ...]) -> None:
        """A pointer moved inside a loop depends on that loop (`Ap += MR`, `*cp++`)."""
        if target is None or target.type != "identifier" or not loops:
            return
        name = self._text(target)
        kind = instance.kinds.get(name) or self.global_kinds.get(name)
        if kind is not None and kind[0] == "pointer":
            self._assign(name, frozenset({loops[-1].token}), instance)

    def _assign(self, name: str, origins: Origins, instance: _Instance) -> None:
        if name not in instance.kinds and name in self.globals:
            self.globals[name] = self.globals[name] | origins
        else:
            instance.env[name] = instance.env.get(name, _NONE) | origins

    def _assignment(self, node: Node, instance: _Instance, loops: tuple[_Loop, ...]) -> None:
        left, right, operator = field_of(node, "left"), field_of(node, "right"), operator_of(node)
        if left is None or right is None:
            return
        value = self._origins(right, instance, loops, 0)
        destination = self._address(left, instance, loops)
        if left.type == "identifier":
            name = self._text(left)
            self._assign(name, value, instance)
            if operator != "=":
                self._bump(left, instance, loops)
            elif (products := self._products(right, instance)) and name in instance.kinds:
                instance.products[name] = products
        for target in self.budget.walk(left):
            if target.type == "update_expression":
                self._bump(field_of(target, "argument"), instance, loops)
        if self._accumulation(left, operator, right, destination, instance, loops):
            self.computations.append((loops, value))
            return
        if operator == "=" and left.type in ("subscript_expression", "pointer_expression"):
            source = strip(right)
            if source.type in ("subscript_expression", "pointer_expression") or (
                source.type == "call_expression" and "load" in self._text(field_of(source, "function"))
            ):
                self._copy(loops, destination, value)
        if any(token.startswith("out:") for token in destination):
            self.computations.append((loops, value))

    def _copy(self, loops: tuple[_Loop, ...], destination: Origins, source: Origins) -> None:
        into_buffer = not any(t.startswith(("in:", "out:")) for t in destination)
        if into_buffer and any(t.startswith("in:") for t in source):
            self.copies.append(_Copy(loops, destination, source))

    def _products(self, expression: Node, instance: _Instance) -> list[tuple[Node, Node]]:
        """The multiplications in an expression, as operand pairs (`a * b`, `fma(a, b, c)`, `_mm_mul_pd(a, b)`)."""
        products: list[tuple[Node, Node]] = []
        stack = [(expression, 0)]
        while stack:
            node, depth = stack.pop()
            self.budget.tick()
            if depth > MAX_EXPRESSION_DEPTH:
                continue
            kind = node.type
            if kind == "binary_expression":
                left, right = field_of(node, "left"), field_of(node, "right")
                if left is not None and right is not None:
                    if operator_of(node) == "*":
                        products.append((left, right))
                    stack.extend([(left, depth + 1), (right, depth + 1)])
            elif kind == "call_expression":
                name = self._text(field_of(node, "function"))
                arguments = field_of(node, "arguments")
                arguments_list = arguments.named_children if arguments is not None else []
                if _MULTIPLY_CALL.search(name) and len(arguments_list) >= 2:
                    products.append((arguments_list[0], arguments_list[1]))
                if _ARITHMETIC_CALL.search(name):
                    start = 2 if _FMA_CALL.search(name) else 0
                    stack.extend((argument, depth + 1) for argument in arguments_list[start:])
            elif kind in ("parenthesized_expression", "cast_expression", "unary_expression"):
                inner = field_of(node, "value") if kind == "cast_expression" else last_named(node)
                if inner is not None:
                    stack.append((inner, depth + 1))
            elif kind == "identifier" and depth > 0:
                products.extend(instance.products.get(self._text(node), []))
        return products

    def _accumulation(
        self,
        left: Node,
        operator: str,
        right: Node,
        destination: Origins,
        instance: _Instance,
        loops: tuple[_Loop, ...],
    ) -> bool:
        if operator not in ("+=", "-=", "="):
            return False
        if operator == "=":
            target = self._compact(left)
            if target not in self._compact(right) or not any(
                node.type == left.type and self._compact(node) == target for node in self.budget.walk(right)
            ):
                return False
        if operator == "=" and right.type == "identifier":
            return False
        products = self._products(right, instance) if operator == "=" else self._products_of_term(right, instance)
        if not products:
            return False
        accumulator: str | None = None
        base = left
        while base.type == "subscript_expression":
            argument = field_of(base, "argument")
            if argument is None:
                break
            base = argument
        if base.type != "identifier":
            pass
        elif (kind := instance.kinds.get(self._text(base))) is not None:
            if left.type == "identifier" and kind[0] in ("int", "pointer"):
                return False
            if (left.type == "identifier" and kind[0] == "float") or (
                left.type == "subscript_expression"
                and kind[0] == "array"
                and kind[1] is not None
                and kind[1] <= REGISTER_ARRAY_MAX_ELEMENTS
            ):
                accumulator = f"{instance.id}:{self._compact(left)}"
        elif left.type == "identifier" and (self.global_kinds.get(self._text(base)) or ("float", None))[0] in (
            "int",
            "pointer",
        ):
            return False
        self._record(loops, destination, accumulator, products, instance)
        return True

    def _record(
        self,
        loops: tuple[_Loop, ...],
        destination: Origins,
        accumulator: str | None,
        products: list[tuple[Node, Node]],
        instance: _Instance,
    ) -> None:
        operands = [
            (self._compact(node), self._origins(node, instance, loops, 0)) for pair in products for node in pair
        ]
        self.accumulations.append(_MultiplyAccumulate(loops, destination, accumulator, operands))

    def _products_of_term(self, right: Node, instance: _Instance) -> list[tuple[Node, Node]]:
        """`X += E`: the multiplications in E, or E itself when it names a product (`c += t` after `t = a * b`)."""
        products = self._products(right, instance)
        if not products and right.type == "identifier":
            products = instance.products.get(self._text(right), [])
        return products

    def _calls(
        self,
        expression: Node,
        instance: _Instance,
        loops: tuple[_Loop, ...],
    ) -> None:
        calls: list[tuple[str, list[Origins]]] = []
        first = bisect.bisect_left(self.call_starts, expression.start_byte)
        last = bisect.bisect_left(self.call_starts, expression.end_byte)
        for node in self.call_nodes[first:last]:
            if node.type == "cast_expression":
                type_descriptor = field_of(node, "type")
                self._vector_use(field_of(type_descriptor, "type") if type_descriptor is not None else None)
            if node.type != "call_expression":
                continue
            name = self._text(field_of(node, "function"))
            arguments_node = field_of(node, "arguments")
            arguments = arguments_node.named_children if arguments_node is not None else []
            called = self.macro_calls.get(name, name)
            if called in _PREFETCH_CALLS:
                self.found.add("prefetch")
            elif _SIMD_CALL.match(called) and called not in _NOT_SIMD_CALLS:
                self.found.add("simd_intrinsics")
            if name in _COPY_CALLS and len(arguments) >= 2:
                self._copy(
                    loops,
                    self._origins(arguments[0], instance, loops, 0),
                    self._origins(arguments[1], instance, loops, 0),
                )
            elif ("store" in name or "stream" in name) and len(arguments) >= 2:
                address, value = arguments[0], strip(arguments[-1])
                destination = self._origins(address, instance, loops, 0)
                products = self._products(value, instance)
                if value.type == "call_expression" and "load" in self._text(field_of(value, "function")):
                    self._copy(loops, destination, self._origins(value, instance, loops, 0))
                elif products and self._reloads(value, address):
                    # `store(p, fmadd(a, b, load(p)))`: a multiply-accumulate into memory.
                    self._record(loops, destination, None, products, instance)
                    self.computations.append((loops, self._origins(value, instance, loops, 0)))
                elif any(t.startswith("out:") for t in destination):
                    self.computations.append((loops, self._origins(value, instance, loops, 0)))
            elif name == "posix_memalign" and arguments:
                target = strip(arguments[0])
                if target.type == "pointer_expression" and (pointee := field_of(target, "argument")) is not None:
                    self._assign(self._text(pointee), frozenset({f"m:alloc:{node.id}"}), instance)
            if name in self.functions and name not in instance.names and len(instance.names) < MAX_INLINE_DEPTH:
                bound = [self._origins(argument, instance, loops, 0) for argument in arguments]
                calls.append((name, bound))
        # The helpers run where they are called: before the statements that follow this one.
        for name, bound in calls:
            for definition in self.functions[name]:
                self._instantiate(definition, bound, loops, (*instance.names, name))

    def _reloads(self, value: Node, address: Node) -> bool:
        """Whether `value` loads from `address` (the same text), as a read-modify-write store does."""
        target = self._compact(address)
        for node in self.budget.walk(value):
            if node.type == "call_expression" and "load" in self._text(field_of(node, "function")):
                arguments = field_of(node, "arguments")
                if arguments is not None and arguments.named_child_count:
                    if self._compact(arguments.named_children[0]) == target:
                        return True
        return False

    def _name(self, name: str, instance: _Instance, loops: tuple[_Loop, ...]) -> Origins:
        if name in self.constants and name not in instance.kinds:
            return _NONE
        for loop in reversed(loops):
            if loop.instance == instance.id and loop.var == name:
                return loop.start | {loop.token}
        if name in instance.kinds or name in instance.env:
            return instance.env.get(name, _NONE)
        return self.globals.get(name, _NONE)

    def _origins(self, node: Node | None, instance: _Instance | None, loops: tuple[_Loop, ...], depth: int) -> Origins:
        """What an expression's value depends on: loops (`L`), strided loops (`S`), tile bounds (`N`), memory."""
        if node is None or instance is None or depth > MAX_EXPRESSION_DEPTH:
            return _NONE
        self.budget.tick()
        kind = node.type
        if kind == "identifier":
            return self._name(self._text(node), instance, loops)
        if kind in ("number_literal", "string_literal", "char_literal", "sizeof_expression", "true", "false", "null"):
            return _NONE
        if kind == "binary_expression":
            left, right = field_of(node, "left"), field_of(node, "right")
            a = self._origins(left, instance, loops, depth + 1)
            b = self._origins(right, instance, loops, depth + 1)
            operator = operator_of(node)
            if operator in ("*", "<<"):
                a_strided = self._strides(a) if right is not None and not self._is_unit(right, operator) else _NONE
                b_strided = (
                    self._strides(b) if operator == "*" and left is not None and not self._is_unit(left, "*") else _NONE
                )
                return a | b | a_strided | b_strided
            return a | b
        if kind == "subscript_expression":
            argument = field_of(node, "argument")
            result = self._origins(argument, instance, loops, depth + 1) | self._origins(
                field_of(node, "index"), instance, loops, depth + 1
            )
            if argument is not None and argument.type == "subscript_expression":
                result |= self._strides(self._origins(field_of(argument, "index"), instance, loops, depth + 1))
            return result
        if kind == "call_expression":
            name = self._text(field_of(node, "function"))
            if name in _ALLOCATION_CALLS:
                return frozenset({f"m:alloc:{node.id}"})
            arguments = field_of(node, "arguments")
            result = _NONE
            for argument in arguments.named_children if arguments is not None else []:
                result |= self._origins(argument, instance, loops, depth + 1)
            return self._tile_bounds(result) if "min" in name.lower() else result
        if kind == "conditional_expression":
            result = _NONE
            for child in node.named_children:
                result |= self._origins(child, instance, loops, depth + 1)
            return self._tile_bounds(result)
        if kind == "field_expression":
            return self._origins(field_of(node, "argument"), instance, loops, depth + 1)
        if kind == "cast_expression":
            return self._origins(field_of(node, "value"), instance, loops, depth + 1)
        if kind == "assignment_expression":
            return self._origins(field_of(node, "right"), instance, loops, depth + 1)
        result = _NONE
        for child in node.named_children:
            result |= self._origins(child, instance, loops, depth + 1)
        return result

    def _address(self, target: Node, instance: _Instance, loops: tuple[_Loop, ...]) -> Origins:
        """What the location an assignment writes depends on: nothing for a scalar variable, which is one place."""
        if target.type == "identifier":
            return _NONE
        return self._origins(target, instance, loops, 0)

    def _is_unit(self, node: Node, operator: str) -> bool:
        value = constant(self._text(node), self.constants)
        return value is not None and (value in (1, -1) if operator == "*" else value == 0)

    @staticmethod
    def _strides(origins: Origins) -> Origins:
        return frozenset("S" + t[1:] for t in origins if t[0] == "L")

    @staticmethod
    def _tile_bounds(origins: Origins) -> Origins:
        return origins | frozenset("N" + t[1:] for t in origins if t[0] == "L")

    # -- labels --

    def labels(self) -> frozenset[str]:
        found = set(self.found)
        found.update(self._pragma_labels())
        if self._loop_order():
            found.add("loop_order")
        if self._tiling():
            found.add("tiling")
        if self._register_blocking():
            found.add("register_blocking")
        found.update(self._copy_labels())
        return frozenset(found)

    def _pragma_labels(self) -> set[str]:
        labels: set[str] = set()
        # Function definitions do not overlap, so the one a pragma is in is the last starting before it.
        functions = sorted((d.start_byte, d.end_byte, d.id) for ds in self.functions.values() for d in ds)
        starts = [start for start, _, _ in functions]
        dead = _merge(self.dead_spans)
        dead_starts = [start for start, _ in dead]
        for pragma in self.pragmas:
            index = bisect.bisect_right(dead_starts, pragma.offset) - 1
            if index >= 0 and pragma.offset < dead[index][1]:
                continue
            index = bisect.bisect_right(starts, pragma.offset) - 1
            if index >= 0 and pragma.offset < functions[index][1] and functions[index][2] not in self.reached:
                continue
            labels.update(self._pragma_label(pragma.words))
        return labels

    def _pragma_label(self, words: tuple[str, ...]) -> set[str]:
        if not words:
            return set()
        first = words[0].lower()
        text = " ".join(words)
        lower = text.lower()
        if first == "omp":
            directive = set(_PARENS.sub(" ", " ".join(words[1:])).replace(",", " ").split())
            labels = {"simd_pragma"} if "simd" in directive else set()
            if words[1:2] != ("declare",) and directive & _OPENMP_WORK:
                labels.add("openmp")
            return labels
        if first == "gcc" and len(words) >= 2:
            second = words[1].lower()
            if second == "ivdep":
                return {"simd_pragma"}
            if second == "unroll":
                count = constant(" ".join(words[2:]), self.constants)
                return {"unrolling"} if count is None or count >= 2 else set()
            if second == "optimize" and "unroll-loops" in lower:
                return {"unrolling"}
            return set()
        if first in ("ivdep", "vector", "simd"):
            return {"simd_pragma"}
        if first == "unroll" or lower.startswith("unroll("):
            argument = lower.removeprefix("unroll").strip().strip("()")
            count = constant(argument, self.constants) if argument else None
            return {"unrolling"} if count is None or count >= 2 else set()
        if first == "clang" and "loop" in lower:
            labels = set()
            if "vectorize(enable" in lower.replace(" ", "") or "vectorize_width" in lower:
                labels.add("simd_pragma")
            if re.search(r"unroll(?:_count)?\s*\(\s*(?:enable|full|[2-9]|\d\d)", lower):
                labels.add("unrolling")
            return labels
        return set()

    def _reduction_loop(self, loops: tuple[_Loop, ...]) -> tuple[_Loop | None, tuple[_Loop, ...]]:
        """The innermost loop that is not a register loop, and the register loops inside it."""
        for index in range(len(loops) - 1, -1, -1):
            if not loops[index].is_register_loop:
                return loops[index], loops[index + 1 :]
        return None, loops

    def _loop_order(self) -> bool:
        for accumulation in self.accumulations:
            loop, _ = self._reduction_loop(accumulation.loops)
            if loop is None or loop.var is None or loop.token not in accumulation.destination:
                continue
            # An elementwise update (`C[t] += x * y[t]`) has no reduction at all: one must enclose it.
            if any(
                outer.var is not None and not outer.is_register_loop and outer.token not in accumulation.destination
                for outer in accumulation.loops
            ):
                return True
        return False

    def _tiling(self) -> bool:
        for inner in self.loops:
            if inner.trips is not None and inner.trips <= REGISTER_TILE_MAX_TRIPS:
                continue
            for tile in inner.enclosing[:-1]:
                if not tile.has_step or (tile.step is not None and abs(tile.step) < 2):
                    continue
                if (tile.token in inner.start and tile.token in inner.bound) or f"N{tile.id}" in inner.bound:
                    return True
        return False

    def _register_blocking(self) -> bool:
        groups: dict[int, list[tuple[_MultiplyAccumulate, tuple[_Loop, ...]]]] = {}
        for accumulation in self.accumulations:
            if accumulation.accumulator is None:
                continue
            loop, registers = self._reduction_loop(accumulation.loops)
            if loop is not None:
                groups.setdefault(loop.id, []).append((accumulation, registers))
        for group in groups.values():
            count, seen, reuse = 0, set(), False
            users: dict[str, set[str]] = {}
            for accumulation, registers in group:
                varying = [r for r in registers if r.token in accumulation.destination and (r.trips or 0) >= 2]
                key = accumulation.accumulator or ""
                if key not in seen:
                    seen.add(key)
                    elements = 1
                    for register in varying:
                        elements *= register.trips or 1
                    count += elements
                for register in varying:
                    if any(register.token not in origins for _, origins in accumulation.operands):
                        reuse = True
                for text, _ in accumulation.operands:
                    users.setdefault(text, set()).add(key)
            if count >= 2 and (reuse or any(len(keys) >= 2 for keys in users.values())):
                return True
        return False

    def _copy_labels(self) -> set[str]:
        labels: set[str] = set()
        computing = {loop.id for loops, _ in self.computations for loop in loops}
        computing.update(loop.id for a in self.accumulations for loop in a.loops)
        read = set().union(*(origins for _, origins in self.computations)) if self.computations else set()
        read.update(*(origins for a in self.accumulations for _, origins in a.operands))
        for copy in self.copies:
            if self._transposes(copy):
                labels.add("transpose")
            own = [loop for loop in copy.loops if loop.id not in computing]
            gathers = any(f"S{loop.id}" in copy.source for loop in own)
            blocked = len(own) < len(copy.loops) or any(
                not loop.has_step or loop.step is None or abs(loop.step) >= 2 for loop in own if loop.var is not None
            )
            feeds = any(token.startswith("m:") and token in read for token in copy.destination)
            if gathers and blocked and feeds:
                labels.add("packing")
        return labels

    @staticmethod
    def _transposes(copy: _Copy) -> bool:
        def unit(origins: Origins, loop: _Loop) -> bool:
            return loop.token in origins and f"S{loop.id}" not in origins

        def strided(origins: Origins, loop: _Loop) -> bool:
            return f"S{loop.id}" in origins

        return any(
            unit(copy.destination, u)
            and strided(copy.source, u)
            and strided(copy.destination, v)
            and unit(copy.source, v)
            for u in copy.loops
            for v in copy.loops
            if u is not v
        )


def analyze(source: str) -> Analysis:
    """The techniques `source` uses; never raises, and takes bounded time for any input."""
    data = source.encode("utf-8", errors="replace")
    if len(data) > MAX_SOURCE_BYTES:
        return Analysis(frozenset(), f"source is {len(data)} bytes, over the {MAX_SOURCE_BYTES}-byte limit")
    blanked, pragmas, vector_spans = lexical_pass(data)
    parser = get_parser()
    deadline = time.monotonic() + PARSE_TIMEOUT_S
    try:
        tree = parser.parse(
            lambda offset, _point: blanked[offset : offset + 65536],
            progress_callback=lambda _offset, _has_error: time.monotonic() > deadline,
        )
    except ValueError:  # tree-sitter's answer to a cancelled parse
        parser.reset()
        return Analysis(frozenset(), f"parsing took longer than {PARSE_TIMEOUT_S} s")
    root = tree.root_node
    if root.has_error:
        return Analysis(frozenset(), first_error(blanked, root))
    try:
        analyzer = _Analyzer(blanked, root, pragmas, vector_spans)
        if not analyzer.functions:
            return Analysis(frozenset(), "no function definition")
        analyzer.run()
        return Analysis(analyzer.labels())
    except TooComplex as error:
        return Analysis(frozenset(), str(error))


def main(argv: list[str]) -> int:
    """`hpcrl techniques FILE.c [--json]`: print the techniques found, one per line, or as one JSON object."""
    parser = argparse.ArgumentParser(
        prog="hpcrl techniques",
        description="Print the optimisation techniques detected in a C file (see archive/techniques.py for "
        "what each label means). Exit status 0 for every readable file, parseable or not; 2 for usage errors.",
    )
    parser.add_argument("file", help="C source, e.g. a dgemm candidate")
    parser.add_argument("--json", action="store_true", help='print {"techniques": [...], "parse_error": "..."}')
    args = parser.parse_args(argv)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        print(f"{parser.prog}: cannot read {path}: {error.strerror or error}", file=sys.stderr)
        return 2
    analysis = analyze(data.decode("utf-8", errors="replace"))
    labels = [name for name in TECHNIQUES if name in analysis.techniques]
    if args.json:
        print(json.dumps({"techniques": labels, "parse_error": analysis.parse_error}))
    else:
        for name in labels:
            print(name)
        if analysis.parse_error:
            print(f"{parser.prog}: {path}: no techniques: {analysis.parse_error}", file=sys.stderr)
    return 0
