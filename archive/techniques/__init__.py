"""Technique detection: which optimisation techniques a candidate's C source uses, by static analysis.

The archive stores these labels with every solution; they describe *how* a kernel is written, never how fast
it is. `analyze(source)` parses the source with tree-sitter's C grammar and walks the functions reachable from
the entry point (every function without `static`: `dgemm`, `jacobi2d`, `dgemv`, ...), inlining calls to the
file's own helpers with their arguments bound to the parameters, so a loop in `kernel_6x8` nests inside the
loops of `dgemm` that call it. The labels speak of loop nests and memory access, never of the names `A`, `B`, `C`.

Why tree-sitter and not libclang: it is a wheel with no system library, parses a candidate in well under a
millisecond, needs neither headers nor a preprocessor (so nothing a candidate `#include`s is ever read), and
gives a concrete syntax tree even for code that does not compile. Regular expressions do only lexical work:
finding `#pragma` lines and `__attribute__((...))` and blanking them (same length, so byte offsets and lines
stay true) before parsing, because tree-sitter-c 0.24 rejects an attribute after an array declarator and
splits a loop from its body when a `#pragma` line sits between them (`for (...)` / `#pragma GCC unroll 4` /
`for (...)`).

The modules, in the order `analyze` uses them: `lexical` (pragmas and attributes read and blanked), `syntax`
(tree-sitter, node helpers, the step budget), `scope` (what the file declares; `constants` evaluates integer
constant expressions), `walk` (the walk from the entry points, helpers inlined; `loops` reads loop headers,
`expressions` what a value depends on and what it multiplies), `facts` (what the walk records), and `labels`
(the rules below, over those facts).

Words used below. A *multiply-accumulate* is an assignment `X += E`, `X -= E`, or `X = E` with `X` inside
`E`, where `E` multiplies: a binary `*` or a call whose name has `mul`/`fma`/`fmadd` (`_mm256_fmadd_pd(a, b,
c)`, `fma(a, b, s)`), looked for outside array subscripts and outside calls that are not arithmetic (a load,
a broadcast), or through a temporary (`t = a * b; c[j] += t`); `X` is not an integer or pointer variable
(that is index arithmetic). A vector store whose value multiplies and reloads the stored address
(`_mm256_storeu_pd(p, _mm256_fmadd_pd(a, b, _mm256_loadu_pd(p)))`) is one too. *Computation* means the
multiply-accumulates and the stores to an output. A *register accumulator* is
an `X` that is a local scalar or vector variable, or an element of a local array of constant size (at most 256
elements). A *register loop* has a constant trip count of at most 16 (`for (r = 0; r < MR; r++)`): inside
the reduction loop the compiler unrolls it fully, so it is not a level of the loop order. An *input* is a
`const`-qualified pointer parameter of the entry point, an *output* a pointer parameter without `const`; a
*buffer* is any other memory (a local or static array, a pointer from `malloc`/`aligned_alloc`/`_mm_malloc`,
a static pointer). "Depends on" follows variables through assignments and helper parameters (`i1 = min(i0 +
BS, n)` depends on `i0`).

Labels (exactly these ten, in `bus.schema.TECHNIQUES` order):

- `loop_order`: some multiply-accumulate's innermost enclosing loop, skipping register loops, has an index that
  the destination's address depends on, while a loop around it, register loop or not, has an index it does not
  depend on: the reduction loop is outside the innermost loop (i-k-j, k-i-j, j-k-i; a convolution's 5 x 5 taps
  outside its sweep along the row). The textbook i-j-k order, and j-i-k, accumulate along the innermost `k`
  into one place; a scalar accumulator is one place whatever the loops. Register-blocked micro-kernels (k
  innermost around a block of accumulators) are not `loop_order`, nor is an elementwise update (`C[t] += x *
  y[t]`, no reduction loop at all).
- `tiling`: a loop T whose step is not 1 (a constant >= 2 or a variable block size), and a loop P nested
  inside it with at least one other loop between them, whose range is a tile of T's index: P starts at a
  value that depends on T's index and its bound depends on it too (`i = i0; i < i0 + BS`), or its bound is a
  min-like expression (a call with `min` in its name, or `?:`) of T's index (`k < kc`, `kc = min(KC, n -
  k0)`). A strip-mined loop alone (P directly inside T) is not tiling: it changes no traversal order; nor is a
  register tile, a P with a constant trip count of at most 8 (`r = i; r < i + 2` at a register block's edge).
- `unrolling`: a `#pragma GCC unroll N` / `#pragma unroll [N]` / `#pragma clang loop unroll...` with N >= 2
  or no N, or `#pragma GCC optimize` naming `unroll-loops`; or a loop with a constant step s >= 2 whose body
  uses its index at two or more constant offsets in [0, s) (`a[k]`, `a[k + 1]`, ...). A step-4 loop that
  touches one vector per iteration (`_mm256_loadu_pd(b + j)`), or one element every s, is not unrolled; nor
  is a loop over records of s elements, whose bound is s times a count (`i < 3 * n; i += 3` over x, y, z).
- `register_blocking`: inside one reduction loop (the innermost non-register loop), multiply-accumulates
  update two or more register accumulators (`c00`, `c01`, ... or `c[r][q]` over register loops) and reuse a
  loaded value across them: one operand is shared by two accumulators, or does not depend on a register loop
  that the accumulator does (`c[r][q] += a * b[q]`); and they are a block of outputs of several iterations:
  of register loops that the accumulators vary along, or of a loop around the reduction loop with a constant
  step from 2 to 16 that does not walk records (`i += 4` over rows). Split sums of one reduction (`s0 += a[k] *
  b[k]; s1 += a[k + 1] * b[k + 1]`) share nothing: that is unrolling, not register blocking; the parts of one
  output (a force's `ax`, `ay`, `az`, a DFT term's real and imaginary sums) are no block.
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
a loop over records is known only by its bound (`i < 3 * n`: one bounded by `i + 2 < m` reads as unrolled);
a block of outputs is known only by loop steps, so the parts of one output inside a tile loop stepping by at
most 16 read as a register block; `typeof`, `_Complex` and case ranges are not parsed by tree-sitter-c 0.24
and make the source unparseable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from archive.techniques.labels import labels
from archive.techniques.lexical import lexical_pass
from archive.techniques.scope import FileScope
from archive.techniques.syntax import MAX_ANALYSIS_STEPS, Budget, TooComplex, first_error, get_parser
from archive.techniques.walk import MAX_INLINE_DEPTH, MAX_INSTANCES, MAX_LOOP_DEPTH, walk
from bus.schema import MAX_SOURCE_BYTES, TECHNIQUES

__all__ = [
    "MAX_ANALYSIS_STEPS",
    "MAX_INLINE_DEPTH",
    "MAX_INSTANCES",
    "MAX_LOOP_DEPTH",
    "PARSE_TIMEOUT_S",
    "TECHNIQUES",
    "Analysis",
    "analyze",
    "main",
]

PARSE_TIMEOUT_S: Final = 0.5
"""Wall-clock limit on tree-sitter's parse; a pathological 256 KiB input takes about a second."""


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
        scope = FileScope(blanked, root, vector_spans, Budget())
        if not scope.functions:
            return Analysis(frozenset(), "no function definition")
        return Analysis(labels(scope, walk(scope), pragmas))
    except TooComplex as error:
        return Analysis(frozenset(), str(error))


def main(argv: list[str]) -> int:
    """`hpcrl techniques FILE.c [--json]`: print the techniques found, one per line, or as one JSON object."""
    parser = argparse.ArgumentParser(
        prog="hpcrl techniques",
        description="Print the optimisation techniques detected in a C file (see archive/techniques/__init__.py for "
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
    names = [name for name in TECHNIQUES if name in analysis.techniques]
    if args.json:
        print(json.dumps({"techniques": names, "parse_error": analysis.parse_error}))
    else:
        for name in names:
            print(name)
        if analysis.parse_error:
            print(f"{parser.prog}: {path}: no techniques: {analysis.parse_error}", file=sys.stderr)
    return 0
