"""The supervised corpus of the tiny model: correct C programs for every registry problem, from templates.

Each corpus item is a (prompt, completion) pair: the prompt is what the trainer gives the policy
(`build_prompt`: the problem statement and the permitted techniques), the completion a fenced ```c block
with one program. The templates span the technique ladder of `dgemm` (naive i-j-k, loop interchange,
transposed B, tiling, unrolling, register blocking, AVX2 intrinsics, simd pragmas, OpenMP) and a few
`jacobi2d` sweeps; names, block sizes, loop orders, casts and braces are drawn at random, modestly, so the
model sees variety without having to learn many spellings of one idea.

Every item declares the techniques it uses, in the archive's vocabulary (`bus.schema.TECHNIQUES`, shared
through the bus schema because the trainer may not import the archive), and its prompt permits a superset
of them: a rung of the default ladder, or no restriction at all. So the policy learns to answer a stage
with code that the stage permits, while an unrestricted prompt still spreads over the whole ladder, slow
and fast, which is the diversity GRPO needs to move probability toward the faster variants.

`check_sources` compiles programs with gcc and runs them against a naive reference in a small C driver:
the corpus test uses it on a sample of every template, and `hpcrl tiny-model` on the model's samples. It
runs the programs unsandboxed (with a wall-clock limit): use it on the corpus and on samples of a model
trained on it, never on candidates from elsewhere (those go to a bencher).
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bus.schema import DEFAULT_STAGE_LADDER, TECHNIQUES

SIGNATURES: Final[dict[str, str]] = {
    "dgemm": "void dgemm(int n, const double *A, const double *B, double *C)",
    "jacobi2d": "void jacobi2d(int n, const double *in, double *out)",
}

PROBLEM_DESCRIPTIONS: Final[dict[str, str]] = {
    "dgemm": (
        "Write one C translation unit that defines exactly\n"
        "    void dgemm(int n, const double *A, const double *B, double *C);\n"
        "computing C = A * B for n x n matrices stored row-major (element (i, j) at index i*n + j).\n"
        "Overwrite C: its previous contents are garbage. Any helper function or variable must be `static`.\n"
        "You may use OpenMP pragmas, AVX2/FMA intrinsics (immintrin.h) and the C standard headers;\n"
        "no BLAS or other libraries, no files, processes, threads other than OpenMP, or timing calls.\n"
        "The code is compiled with gcc -O3 -march=native -fopenmp and rewarded by its measured GFLOPS."
    ),
    "jacobi2d": (
        "Write one C translation unit that defines exactly\n"
        "    void jacobi2d(int n, const double *in, double *out);\n"
        "computing one Jacobi sweep on an n x n grid stored row-major (element (i, j) at index i*n + j):\n"
        "out[i*n+j] = 0.25 * (in[(i-1)*n+j] + in[(i+1)*n+j] + in[i*n+j-1] + in[i*n+j+1]) for 0 < i, j < n-1,\n"
        "and out equals in on the boundary rows and columns. Overwrite out: its previous contents are garbage.\n"
        "Any helper function or variable must be `static`. You may use OpenMP pragmas, AVX2/FMA intrinsics\n"
        "(immintrin.h) and the C standard headers; no libraries, files, processes or timing calls.\n"
        "The code is compiled with gcc -O3 -march=native -fopenmp and rewarded by its measured GFLOPS."
    ),
}
"""Verbatim copies of bencher/problems/*.toml `description` (stripped), the text the trainer's prompts carry;
a test fails when they drift apart. The model learns to recognise the problem from these exact lines."""

DGEMM_SHARE: Final = 0.75
"""Fraction of corpus items that are dgemm programs; the rest are jacobi2d."""
UNRESTRICTED_SHARE: Final = 0.3
"""Fraction of prompts that permit every technique (`permitted_techniques=None`)."""


def build_prompt(problem_description: str, permitted_techniques: Sequence[str] | None) -> str:
    """The prompt for one problem and stage: its statement, then the techniques the stage permits.

    None means no restriction; the list is shown in the archive's order whatever order it comes in."""
    if permitted_techniques is None:
        permitted = "any"
    elif not permitted_techniques:
        permitted = "none (plain loops only)"
    else:
        rank = {name: index for index, name in enumerate(TECHNIQUES)}
        permitted = ", ".join(sorted(set(permitted_techniques), key=lambda t: (rank.get(t, len(rank)), t)))
    return f"{problem_description.strip()}\nPermitted techniques: {permitted}.\n"


def fence(code: str) -> str:
    """A completion: the program in the fenced block the trainer extracts code from."""
    return f"```c\n{code.rstrip()}\n```"


@dataclass(frozen=True)
class CorpusItem:
    problem: str
    """Registry problem id: `dgemm` or `jacobi2d`."""
    template: str
    """The template that produced the program (`dgemm.ikj`, `jacobi2d.rows`, ...)."""
    techniques: tuple[str, ...]
    """Techniques the program uses, in the archive's vocabulary and order."""
    permitted: tuple[str, ...] | None
    """What the prompt permits (a superset of `techniques`); None: anything."""
    prompt: str
    completion: str
    """The program in a fenced ```c block."""

    @property
    def code(self) -> str:
        return self.completion.removeprefix("```c\n").removesuffix("```")


# ---------------------------------------------------------------------------------------------------------
# Writing C: an indenting line writer and the randomised spelling of one program.


@dataclass(frozen=True)
class _Style:
    """The random details of one program that do not change what it computes."""

    i: str
    j: str
    k: str
    cast: bool
    """`(size_t)i * n + k` rather than `i * n + k` in index arithmetic."""
    braces: bool
    """Braces around single-statement loop bodies too."""
    acc: str
    """Name of a scalar accumulator."""
    restrict: bool
    """`double *restrict c` on row pointers."""

    @staticmethod
    def draw(rng: random.Random) -> _Style:
        i, j, k = rng.choices((("i", "j", "k"), ("row", "col", "k"), ("ii", "jj", "kk")), weights=(6, 1, 1))[0]
        return _Style(
            i=i,
            j=j,
            k=k,
            cast=rng.random() < 0.5,
            braces=rng.random() < 0.3,
            acc=rng.choice(("s", "sum", "acc")),
            restrict=rng.random() < 0.3,
        )

    def row(self, index: str) -> str:
        """Offset of row `index`: `(size_t)i * n`."""
        wrapped = f"({index})" if " " in index else index
        return f"(size_t){wrapped} * n" if self.cast else f"{wrapped} * n"

    def at(self, row: str, col: str) -> str:
        """Offset of element (row, col): `(size_t)i * n + k`."""
        return self.row(row) if col == "0" else f"{self.row(row)} + {col}"

    def ptr(self, const: bool = False) -> str:
        """`double *` with the program's qualifiers, for a row pointer."""
        return ("const " if const else "") + ("double *restrict " if self.restrict else "double *")


class _Writer:
    def __init__(self, style: _Style) -> None:
        self.style = style
        self.lines: list[str] = []
        self.depth = 0
        self.includes: set[str] = set()
        self.uses_size_t = False
        self.head: list[str] = []
        """File-scope lines (constants, static helpers) written before the entry point."""

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def pragma(self, text: str) -> None:
        self(f"#pragma {text}")

    @contextmanager
    def block(self, header: str, single: bool = False) -> Iterator[None]:
        """A loop or function body; `single` bodies (exactly one statement) go without braces when the
        style says so."""
        braces = not single or self.style.braces
        self(header + (" {" if braces else ""))
        self.depth += 1
        yield
        self.depth -= 1
        if braces:
            self("}")

    def loop(self, var: str, lo: str, hi: str, step: str = "1", single: bool = False) -> AbstractContextManager[None]:
        increment = f"{var}++" if step == "1" else f"{var} += {step}"
        return self.block(f"for (int {var} = {lo}; {var} < {hi}; {increment})", single)

    def source(self, signature: str, comment: str) -> str:
        includes = sorted(self.includes)
        if (self.style.cast or self.uses_size_t) and not ({"string.h", "stdlib.h", "stddef.h"} & self.includes):
            includes = sorted({*includes, "stddef.h"})
        parts = [f"/* {comment} */"]
        parts += [f"#include <{name}>" for name in includes]
        text = "\n".join(parts)
        for chunk in self.head:
            text += "\n\n" + chunk
        return f"{text}\n\n{self.function(signature)}\n"

    def function(self, signature: str) -> str:
        """A function with the lines written so far as its body."""
        body = "\n".join("    " + line if line else line for line in self.lines)
        return f"{signature}\n{{\n{body}\n}}"


def _omp_for(rng: random.Random) -> str:
    return rng.choices(
        ("omp parallel for", "omp parallel for schedule(static)", "omp parallel for schedule(dynamic)"),
        weights=(3, 1, 1),
    )[0]


def _min_helper(w: _Writer, rng: random.Random) -> Callable[[str, str], str]:
    """Declares a `min` of two ints (function, macro or inline `?:`) and returns how to spell a call."""
    kind = rng.choice(("function", "macro", "ternary"))
    if kind == "function":
        w.head.append("static int min_int(int a, int b)\n{\n    return a < b ? a : b;\n}")
        return lambda a, b: f"min_int({a}, {b})"
    if kind == "macro":
        w.head.append("#define MIN(a, b) ((a) < (b) ? (a) : (b))")
        return lambda a, b: f"MIN({a}, {b})"
    return lambda a, b: f"{a} < {b} ? {a} : {b}"


def _constants(w: _Writer, rng: random.Random, values: dict[str, int]) -> None:
    if rng.random() < 0.5:
        w.head.append("enum { " + ", ".join(f"{name} = {value}" for name, value in values.items()) + " };")
    else:
        w.head.append("\n".join(f"#define {name} {value}" for name, value in values.items()))


# ---------------------------------------------------------------------------------------------------------
# dgemm. Each template writes into `w` and returns its techniques and a one-line description.


def _row_update(w: _Writer, rng: random.Random, kernel: str, lo: str, hi: str, c: str, b: str, a: str) -> None:
    """`c[j] += a * b[j]` for j in [lo, hi), as `kernel`: plain, simd (pragma), unroll (pragma),
    manual (unrolled by hand), avx (AVX2 FMA intrinsics)."""
    s = w.style
    j = s.j
    if kernel == "manual":
        factor = rng.choice((2, 4))
        w(f"int {j} = {lo};")
        with w.block(f"for (; {j} + {factor} <= {hi}; {j} += {factor})"):
            for u in range(factor):
                at = f"{j} + {u}" if u else j
                w(f"{c}[{at}] += {a} * {b}[{at}];")
        with w.block(f"for (; {j} < {hi}; {j}++)", single=True):
            w(f"{c}[{j}] += {a} * {b}[{j}];")
        return
    if kernel == "avx":
        w.includes.add("immintrin.h")
        w(f"const __m256d v{a} = _mm256_set1_pd({a});")
        w(f"int {j} = {lo};")
        with w.block(f"for (; {j} + 4 <= {hi}; {j} += 4)", single=True):
            w(
                f"_mm256_storeu_pd({c} + {j}, _mm256_fmadd_pd(v{a}, _mm256_loadu_pd({b} + {j}), "
                f"_mm256_loadu_pd({c} + {j})));"
            )
        with w.block(f"for (; {j} < {hi}; {j}++)", single=True):
            w(f"{c}[{j}] += {a} * {b}[{j}];")
        return
    if kernel == "simd":
        w.pragma(rng.choice(("omp simd", "omp simd", "GCC ivdep")))
    elif kernel == "unroll":
        w.pragma(f"GCC unroll {rng.choice((4, 8))}")
    with w.loop(j, lo, hi, single=True):
        w(f"{c}[{j}] += {a} * {b}[{j}];")


def _four_rows_update(w: _Writer, k_lo: str, k_hi: str, j_lo: str, j_hi: str, c: str) -> None:
    """Row i of C += A[i, k_lo:k_hi] * B[k_lo:k_hi, j_lo:j_hi], four rows of B folded into each pass over
    the row of C (so C is loaded and stored a quarter as often), then the remaining rows one by one."""
    s = w.style
    i, j, k = s.i, s.j, s.k
    w(f"const double *a = A + {s.row(i)};")
    w(f"int {k} = {k_lo};")
    with w.block(f"for (; {k} + 4 <= {k_hi}; {k} += 4)"):
        w(f"const double a0 = a[{k}], a1 = a[{k} + 1], a2 = a[{k} + 2], a3 = a[{k} + 3];")
        w(f"{s.ptr(const=True)}b0 = B + {s.row(k)};")
        for row in range(1, 4):
            w(f"{s.ptr(const=True)}b{row} = b{row - 1} + n;")
        with w.loop(j, j_lo, j_hi, single=True):
            w(f"{c}[{j}] += a0 * b0[{j}] + a1 * b1[{j}] + a2 * b2[{j}] + a3 * b3[{j}];")
    with w.block(f"for (; {k} < {k_hi}; {k}++)"):
        w(f"const double a0 = a[{k}];")
        w(f"{s.ptr(const=True)}b0 = B + {s.row(k)};")
        with w.loop(j, j_lo, j_hi, single=True):
            w(f"{c}[{j}] += a0 * b0[{j}];")


_KERNEL_PLANS: Final[dict[str, str]] = {
    "k4": "; k loop unrolled by 4, four rows of B per pass",
    "manual": "; inner loop unrolled by hand",
    "unroll": "; unroll pragma on the inner loop",
}
"""What the first-line comment says about an unrolled kernel (see `_PLAN_PHRASES` for the other techniques)."""

_KERNEL_TECHNIQUES: Final[dict[str, tuple[str, ...]]] = {
    "k4": ("unrolling",),
    "plain": (),
    "simd": ("simd_pragma",),
    "unroll": ("unrolling",),
    "manual": ("unrolling",),
    "avx": ("simd_intrinsics",),
}


def _dgemm_naive(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    outer, inner = rng.choice(((s.i, s.j), (s.i, s.j), (s.j, s.i)))
    techniques = set()
    if rng.random() < 0.3:
        w.pragma(_omp_for(rng))
        techniques.add("openmp")
    with w.loop(outer, "0", "n", single=True), w.loop(inner, "0", "n"):
        w(f"double {s.acc} = 0.0;")
        if rng.random() < 0.2:
            w.pragma(f"omp simd reduction(+:{s.acc})")
            techniques.add("simd_pragma")
        with w.loop(s.k, "0", "n", single=True):
            w(f"{s.acc} += A[{s.at(s.i, s.k)}] * B[{s.at(s.k, s.j)}];")
        w(f"C[{s.at(s.i, s.j)}] = {s.acc};")
    return techniques, f"naive {outer}-{inner}-{s.k} triple loop"


def _zero_row(w: _Writer, rng: random.Random, c: str) -> None:
    if rng.random() < 0.6:
        w.includes.add("string.h")
        w(f"memset({c}, 0, (size_t)n * sizeof(double));")
    else:
        with w.loop(w.style.j, "0", "n", single=True):
            w(f"{c}[{w.style.j}] = 0.0;")


def _zero_all(w: _Writer, rng: random.Random) -> None:
    if rng.random() < 0.7:
        w.includes.add("string.h")
        w("memset(C, 0, (size_t)n * n * sizeof(double));")
    else:
        t = w.style.i
        w.uses_size_t = True
        w("const size_t total = (size_t)n * n;")
        with w.block(f"for (size_t {t} = 0; {t} < total; {t}++)", single=True):
            w(f"C[{t}] = 0.0;")


def _dgemm_ikj(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    kernel = rng.choices(("plain", "simd", "unroll", "manual", "avx", "k4"), weights=(5, 2, 1, 2, 2, 2))[0]
    c, b, a = rng.choice((("c", "b", "a"), ("crow", "brow", "aik")))
    techniques = {"loop_order", *_KERNEL_TECHNIQUES[kernel]}
    whole = rng.random() < 0.3
    if whole:
        _zero_all(w, rng)
    if rng.random() < 0.35:
        w.pragma(_omp_for(rng))
        techniques.add("openmp")
    with w.loop(s.i, "0", "n"):
        w(f"{s.ptr()}{c} = C + {s.row(s.i)};")
        if not whole:
            _zero_row(w, rng, c)
        if kernel == "k4":
            _four_rows_update(w, "0", "n", "0", "n", c)
        else:
            with w.loop(s.k, "0", "n"):
                w(f"const double {a} = A[{s.at(s.i, s.k)}];")
                w(f"{s.ptr(const=True)}{b} = B + {s.row(s.k)};")
                _row_update(w, rng, kernel, "0", "n", c, b, a)
    plan = f"loop interchange: {s.i}-{s.k}-{s.j} order, unit-stride inner loop"
    return techniques, plan + _KERNEL_PLANS.get(kernel, "")


def _dgemm_kij(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    _zero_all(w, rng)
    with w.loop(s.k, "0", "n", single=True), w.loop(s.i, "0", "n"):
        w(f"const double a = A[{s.at(s.i, s.k)}];")
        with w.loop(s.j, "0", "n", single=True):
            w(f"C[{s.at(s.i, s.j)}] += a * B[{s.at(s.k, s.j)}];")
    return {"loop_order"}, f"loop interchange: {s.k}-{s.i}-{s.j} order"


def _dgemm_transposed(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    w.includes.add("stdlib.h")
    techniques = {"transpose"}
    cached = rng.random() < 0.4
    if cached:
        w.head.append("static double *bt;\nstatic size_t bt_count;")
        w("const size_t count = (size_t)n * n;")
        with w.block("if (count > bt_count)"):
            w("free(bt);")
            w("bt = malloc(count * sizeof(double));")
            w("bt_count = bt ? count : 0;")
        with w.block("if (!bt)", single=True):
            w("__builtin_trap();")
    else:
        w("double *bt = malloc((size_t)n * n * sizeof(double));")
        with w.block("if (!bt)", single=True):
            w("__builtin_trap();")
    omp = rng.random() < 0.35
    if omp:
        techniques.add("openmp")
        w.pragma(_omp_for(rng))
    with w.loop(s.k, "0", "n", single=True), w.loop(s.j, "0", "n", single=True):
        w(f"bt[{s.at(s.j, s.k)}] = B[{s.at(s.k, s.j)}];")
    if omp:
        w.pragma(_omp_for(rng))
    unrolled = rng.random() < 0.3
    with w.loop(s.i, "0", "n"):
        w(f"const double *a = A + {s.row(s.i)};")
        with w.loop(s.j, "0", "n"):
            w(f"const double *b = bt + {s.row(s.j)};")
            if unrolled:
                techniques.add("unrolling")
                w("double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;")
                w(f"int {s.k} = 0;")
                with w.block(f"for (; {s.k} + 4 <= n; {s.k} += 4)"):
                    for u in range(4):
                        at = f"{s.k} + {u}" if u else s.k
                        w(f"s{u} += a[{at}] * b[{at}];")
                with w.block(f"for (; {s.k} < n; {s.k}++)", single=True):
                    w(f"s0 += a[{s.k}] * b[{s.k}];")
                w(f"C[{s.at(s.i, s.j)}] = s0 + s1 + s2 + s3;")
            else:
                w(f"double {s.acc} = 0.0;")
                if rng.random() < 0.3:
                    techniques.add("simd_pragma")
                    w.pragma(f"omp simd reduction(+:{s.acc})")
                with w.loop(s.k, "0", "n", single=True):
                    w(f"{s.acc} += a[{s.k}] * b[{s.k}];")
                w(f"C[{s.at(s.i, s.j)}] = {s.acc};")
    if not cached:
        w("free(bt);")
    plan = "B transposed first, so every element of C is a unit-stride dot product"
    return techniques, plan + ("; dot product unrolled by 4" if unrolled else "")


def _dgemm_tiled(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    if rng.random() < 0.5:
        size = rng.choice((16, 32, 64, 128))
        _constants(w, rng, {"BS": size})
        bi = bk = bj = "BS"
    else:
        sizes = {"BI": rng.choice((16, 32, 64)), "BK": rng.choice((32, 64, 128)), "BJ": rng.choice((64, 128, 256))}
        _constants(w, rng, sizes)
        bi, bk, bj = sizes
    lesser = _min_helper(w, rng)
    kernel = rng.choices(("plain", "simd", "unroll", "manual", "avx", "k4"), weights=(5, 2, 1, 1, 2, 3))[0]
    techniques = {"tiling", "loop_order", *_KERNEL_TECHNIQUES[kernel]}
    _zero_all(w, rng)
    if rng.random() < 0.4:
        techniques.add("openmp")
        w.pragma(_omp_for(rng))
    tiles = [(s.i, bi), *rng.choice((((s.k, bk), (s.j, bj)), ((s.j, bj), (s.k, bk))))]
    with _tile_loops(w, tiles, lesser):
        with w.loop(s.i, f"{s.i}0", f"{s.i}1"):
            w(f"{s.ptr()}c = C + {s.row(s.i)};")
            if kernel == "k4":
                _four_rows_update(w, f"{s.k}0", f"{s.k}1", f"{s.j}0", f"{s.j}1", "c")
            else:
                with w.loop(s.k, f"{s.k}0", f"{s.k}1"):
                    w(f"const double a = A[{s.at(s.i, s.k)}];")
                    w(f"{s.ptr(const=True)}b = B + {s.row(s.k)};")
                    _row_update(w, rng, kernel, f"{s.j}0", f"{s.j}1", "c", "b", "a")
    plan = f"cache blocking: {bi} x {bk} x {bj} tiles, {s.i}-{s.k}-{s.j} order inside"
    return techniques, plan + _KERNEL_PLANS.get(kernel, "")


@contextmanager
def _tile_loops(w: _Writer, tiles: list[tuple[str, str]], lesser: Callable[[str, str], str]) -> Iterator[None]:
    """Nested tile loops `for (x0 = 0; x0 < n; x0 += BX) { const int x1 = min(x0 + BX, n); ... }`."""
    if not tiles:
        yield
        return
    (var, size), rest = tiles[0], tiles[1:]
    with w.loop(f"{var}0", "0", "n", size):
        w(f"const int {var}1 = {lesser(f'{var}0 + {size}', 'n')};")
        with _tile_loops(w, rest, lesser):
            yield


def _dgemm_register_blocked(w: _Writer, rng: random.Random) -> tuple[set[str], str]:
    s = w.style
    mr, nr = rng.choice(((2, 4), (4, 4), (4, 8), (2, 8)))
    _constants(w, rng, {"MR": mr, "NR": nr})
    i, j, k = s.i, s.j, s.k
    w.head.append(
        "/* C[i0:i1, j0:j1] one element at a time: the edges the register blocks do not cover. */\n"
        "static void edge(int n, int i0, int i1, int j0, int j1, const double *A, const double *B, double *C)\n"
        "{\n"
        "    for (int i = i0; i < i1; i++)\n"
        "        for (int j = j0; j < j1; j++) {\n"
        "            double s = 0.0;\n"
        "            for (int k = 0; k < n; k++)\n"
        f"                s += A[{s.at('i', 'k')}] * B[{s.at('k', 'j')}];\n"
        f"            C[{s.at('i', 'j')}] = s;\n"
        "        }\n"
        "}"
    )
    # The MR x NR block in a helper of its own, so that a pragma can switch gcc's loop vectoriser off for it:
    # it would vectorise the k loop as a reduction instead of the block (about 3x slower at n = 512).
    vectoriser_off = rng.random() < 0.5
    kernel = _Writer(s)
    if rng.random() < 0.5:
        kernel("double c[MR][NR] = {{0.0}};")
    else:
        kernel("double c[MR][NR];")
        with kernel.loop("r", "0", "MR", single=True), kernel.loop("q", "0", "NR", single=True):
            kernel("c[r][q] = 0.0;")
    with kernel.loop(k, "0", "n"):
        kernel(f"const double *b = B + {s.row(k)};")
        with kernel.loop("r", "0", "MR"):
            kernel(f"const double a = A[{s.at('r', k)}];")
            with kernel.loop("q", "0", "NR", single=True):
                kernel("c[r][q] += a * b[q];")
    with kernel.loop("r", "0", "MR", single=True), kernel.loop("q", "0", "NR", single=True):
        kernel(f"C[{s.at('r', 'q')}] = c[r][q];")
    name = "block"
    text = "/* C[0:MR, 0:NR] = A[0:MR, 0:n] * B[0:n, 0:NR], all three with rows of n. */\n"
    text += kernel.function(f"static void {name}(int n, const double *A, const double *B, double *C)")
    if vectoriser_off:
        text = (
            '#pragma GCC push_options\n#pragma GCC optimize("no-tree-loop-vectorize")\n'
            + text
            + "\n#pragma GCC pop_options"
        )
    w.head.append(text)

    techniques = {"register_blocking"}
    w("const int rows = n - n % MR;")
    w("const int cols = n - n % NR;")
    if rng.random() < 0.4:
        techniques.add("openmp")
        w.pragma(_omp_for(rng))
    with w.loop(i, "0", "rows", "MR"):
        with w.loop(j, "0", "cols", "NR", single=True):
            w(f"{name}(n, A + {s.row(i)}, B + {j}, C + {s.at(i, j)});")
        w(f"edge(n, {i}, {i} + MR, cols, n, A, B, C);")
    w("edge(n, rows, n, 0, n, A, B, C);")
    plan = f"{mr}x{nr} register blocks of C kept in accumulators, the edges element by element"
    return techniques, plan + ("; no loop vectoriser in the block" if vectoriser_off else "")


_DGEMM_TEMPLATES: Final[dict[str, tuple[Callable[[_Writer, random.Random], tuple[set[str], str]], float]]] = {
    "naive": (_dgemm_naive, 3.0),
    "ikj": (_dgemm_ikj, 3.0),
    "kij": (_dgemm_kij, 0.5),
    "transposed": (_dgemm_transposed, 1.5),
    "tiled": (_dgemm_tiled, 2.5),
    "register_blocked": (_dgemm_register_blocked, 1.5),
}
"""Template and weight. Slow and fast variants both get a large share: GRPO needs both in its groups."""


# ---------------------------------------------------------------------------------------------------------
# jacobi2d.


def _jacobi(w: _Writer, rng: random.Random) -> tuple[set[str], str, str]:
    s = w.style
    i, j = s.i, s.j
    techniques: set[str] = set()
    boundary = rng.choice(("loops", "rows", "copy"))
    if boundary == "loops":
        with w.loop(j, "0", "n"):
            w(f"out[{j}] = in[{j}];")
            w(f"out[{s.at('n - 1', j)}] = in[{s.at('n - 1', j)}];")
        with w.loop(i, "1", "n - 1"):
            w(f"out[{s.at(i, '0')}] = in[{s.at(i, '0')}];")
            w(f"out[{s.at(i, 'n - 1')}] = in[{s.at(i, 'n - 1')}];")
    elif boundary == "rows":
        w.includes.add("string.h")
        w("memcpy(out, in, (size_t)n * sizeof(double));")
        w(f"memcpy(out + {s.row('n - 1')}, in + {s.row('n - 1')}, (size_t)n * sizeof(double));")
    else:
        w.includes.add("string.h")
        w("memcpy(out, in, (size_t)n * n * sizeof(double));")
    tiled = rng.random() < 0.2
    if rng.random() < 0.4:
        techniques.add("openmp")
        w.pragma(_omp_for(rng))
    pointers = rng.random() < 0.5
    simd = rng.random() < 0.3
    if simd:
        techniques.add("simd_pragma")

    def sweep(lo: str, hi: str) -> None:
        if pointers:
            w(f"const double *up = in + {s.row(f'{i} - 1')};")
            w(f"const double *mid = in + {s.row(i)};")
            w(f"const double *down = in + {s.row(f'{i} + 1')};")
            w(f"double *o = out + {s.row(i)};")
        if simd:
            w.pragma("omp simd")
        with w.loop(j, lo, hi, single=True):
            if pointers:
                w(f"o[{j}] = 0.25 * (up[{j}] + down[{j}] + mid[{j} - 1] + mid[{j} + 1]);")
            else:
                w(
                    f"out[{s.at(i, j)}] = 0.25 * (in[{s.at(f'{i} - 1', j)}] + in[{s.at(f'{i} + 1', j)}] + "
                    f"in[{s.at(i, f'{j} - 1')}] + in[{s.at(i, f'{j} + 1')}]);"
                )

    if tiled and boundary == "rows":
        with w.loop(i, "1", "n - 1"):
            w(f"out[{s.at(i, '0')}] = in[{s.at(i, '0')}];")
            w(f"out[{s.at(i, 'n - 1')}] = in[{s.at(i, 'n - 1')}];")
    if tiled:
        techniques.add("tiling")
        size = rng.choice((64, 128, 256))
        _constants(w, rng, {"BS": size})
        lesser = _min_helper(w, rng)
        with w.loop(f"{j}0", "1", "n - 1", "BS"):
            w(f"const int {j}1 = {lesser(f'{j}0 + BS', 'n - 1')};")
            with w.loop(i, "1", "n - 1"):
                sweep(f"{j}0", f"{j}1")
        what = "column blocks of BS"
    else:
        with w.loop(i, "1", "n - 1"):
            if boundary == "rows":
                w(f"out[{s.at(i, '0')}] = in[{s.at(i, '0')}];")
                w(f"out[{s.at(i, 'n - 1')}] = in[{s.at(i, 'n - 1')}];")
            sweep("1", "n - 1")
        what = "row by row"
    return techniques, f"jacobi2d.{boundary}", f"one 5-point Jacobi sweep, {what}"


# ---------------------------------------------------------------------------------------------------------
# The corpus.


def _ordered(techniques: set[str]) -> tuple[str, ...]:
    return tuple(t for t in TECHNIQUES if t in techniques)


def _permitted(rng: random.Random, techniques: tuple[str, ...]) -> tuple[str, ...] | None:
    """A rung of the ladder that permits `techniques`, or None (anything), for the prompt."""
    if rng.random() < UNRESTRICTED_SHARE:
        return None
    if not techniques and rng.random() < 0.1:
        return ()
    fits = [rung for rung in DEFAULT_STAGE_LADDER if set(techniques) <= set(rung)]
    return rng.choice(fits) if fits else None


_PLAN_PHRASES: Final[dict[str, str]] = {
    "simd_intrinsics": "AVX2 FMA intrinsics",
    "simd_pragma": "simd pragma on the inner loop",
    "openmp": "outer loop shared by OpenMP threads",
}
"""Added to a program's first-line comment, which states its plan: the line the model writes first
decides the rest, so it is the choice GRPO has to move (and what keeps a tiny model consistent)."""


def generate_program(problem: str, rng: random.Random, template: str | None = None) -> tuple[str, str, tuple[str, ...]]:
    """One random program: (template name, source, techniques). `template` picks a dgemm template by name."""
    w = _Writer(_Style.draw(rng))
    if problem == "dgemm":
        names = list(_DGEMM_TEMPLATES)
        name = template or rng.choices(names, weights=[_DGEMM_TEMPLATES[n][1] for n in names])[0]
        techniques, comment = _DGEMM_TEMPLATES[name][0](w, rng)
        name = f"dgemm.{name}"
    elif problem == "jacobi2d":
        techniques, name, comment = _jacobi(w, rng)
    else:
        raise ValueError(f"no templates for problem {problem!r}: use one of {', '.join(SIGNATURES)}")
    extras = [phrase for technique, phrase in _PLAN_PHRASES.items() if technique in techniques]
    plan = "; ".join([comment, *extras])
    return name, w.source(SIGNATURES[problem], plan), _ordered(techniques)


def generate_item(rng: random.Random, problem: str | None = None, template: str | None = None) -> CorpusItem:
    if problem is None:
        problem = "dgemm" if rng.random() < DGEMM_SHARE else "jacobi2d"
    name, code, techniques = generate_program(problem, rng, template)
    permitted = _permitted(rng, techniques)
    prompt = build_prompt(PROBLEM_DESCRIPTIONS[problem], permitted)
    return CorpusItem(problem, name, techniques, permitted, prompt, fence(code))


def generate_corpus(count: int, seed: int) -> list[CorpusItem]:
    """`count` items, the same for the same seed."""
    rng = random.Random(seed)
    return [generate_item(rng) for _ in range(count)]


def dgemm_templates() -> tuple[str, ...]:
    return tuple(_DGEMM_TEMPLATES)


def corpus_hash(items: Sequence[CorpusItem]) -> str:
    """sha256 over every prompt and completion, in order."""
    digest = hashlib.sha256()
    for item in items:
        for part in (item.prompt, item.completion):
            data = part.encode()
            digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Checking programs with gcc: does it compile, and does it compute what the naive reference computes?

CHECK_FLAGS: Final[tuple[str, ...]] = ("-O2", "-fopenmp", "-march=native")
"""Flags of `check_sources` (the bencher uses -O3; -O2 compiles faster and accepts the same programs)."""
CHECK_SIZES: Final[dict[str, tuple[int, ...]]] = {"dgemm": (3, 37, 130), "jacobi2d": (3, 37, 70)}
"""Sizes each program is run at: edges of every block size, and more than one tile of the largest."""
CHECK_TIMEOUT_S: Final = 60.0
"""Wall-clock limit of compiling or running one batch of programs."""

_DRIVER: Final = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>


static double value(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (double)(*state >> 8) / 16777216.0 - 0.5;
}

#ifdef CHECK_dgemm
void candidate(int n, const double *A, const double *B, double *C);

/* 1 when the candidate matches the naive reference at size n; garbage in the output beforehand. */
static int check(int n)
{
    size_t count = (size_t)n * n;
    double *A = malloc(count * sizeof(double)), *B = malloc(count * sizeof(double));
    double *C = malloc(count * sizeof(double)), *R = malloc(count * sizeof(double));
    unsigned state = 12345u + (unsigned)n;
    for (size_t t = 0; t < count; t++) {
        A[t] = value(&state);
        B[t] = value(&state);
        C[t] = 1e300;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += A[(size_t)i * n + k] * B[(size_t)k * n + j];
            R[(size_t)i * n + j] = s;
        }
    candidate(n, A, B, C);
    int ok = 1;
    for (size_t t = 0; t < count; t++)
        if (!(fabs(C[t] - R[t]) <= 1e-9 * (1.0 + fabs(R[t]))))
            ok = 0;
    free(A);
    free(B);
    free(C);
    free(R);
    return ok;
}
#else
void candidate(int n, const double *in, double *out);

static int check(int n)
{
    size_t count = (size_t)n * n;
    double *in = malloc(count * sizeof(double)), *out = malloc(count * sizeof(double));
    unsigned state = 777u + (unsigned)n;
    for (size_t t = 0; t < count; t++) {
        in[t] = value(&state);
        out[t] = 1e300;
    }
    candidate(n, in, out);
    int ok = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            size_t t = (size_t)i * n + j;
            double want = in[t];
            if (i > 0 && j > 0 && i < n - 1 && j < n - 1)
                want = 0.25 * (in[t - n] + in[t + n] + in[t - 1] + in[t + 1]);
            if (!(fabs(out[t] - want) <= 1e-12 * (1.0 + fabs(want))))
                ok = 0;
        }
    free(in);
    free(out);
    return ok;
}
#endif

int main(void)
{
    static const int sizes[] = {%(sizes)s};
    int ok = 1;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
        ok &= check(sizes[s]);
    printf("%%d\n", ok);
    return 0;
}
"""


@dataclass(frozen=True)
class CheckResult:
    compiled: bool
    """`gcc -c` with `CHECK_FLAGS` accepted it."""
    correct: bool
    """It compiled, linked, ran and matched the naive reference at every size of `CHECK_SIZES`."""
    error: str = ""
    """The first lines of the compiler's complaint, or why the run failed; empty when correct."""


def check_sources(
    problem: str, sources: Sequence[str], extra_flags: Sequence[str] = (), jobs: int = 2
) -> list[CheckResult]:
    """Compile each program, link it to a driver that runs it against the naive reference, and run it,
    each in its own process (`jobs` at a time) so that one failure condemns only itself."""
    if problem not in SIGNATURES:
        raise ValueError(f"no reference for problem {problem!r}: use one of {', '.join(SIGNATURES)}")
    with tempfile.TemporaryDirectory(prefix="hpcrl-corpus-check-") as tmp:
        root = Path(tmp)
        (root / "driver.c").write_text(_DRIVER % {"sizes": ", ".join(str(n) for n in CHECK_SIZES[problem])})
        _run(
            ["gcc", "-O1", f"-DCHECK_{problem}", "-c", str(root / "driver.c"), "-o", str(root / "driver.o")], check=True
        )

        def one(index: int) -> CheckResult:
            source, program = root / f"p{index}.c", root / f"p{index}"
            source.write_text(sources[index])
            flags = [*CHECK_FLAGS, *extra_flags, f"-D{problem}=candidate"]
            done = _run(["gcc", *flags, "-c", str(source), "-o", f"{program}.o"])
            if done is None or done.returncode != 0:
                why = "compiler timed out" if done is None else "\n".join(done.stderr.splitlines()[:5])
                return CheckResult(False, False, why)
            done = _run(["gcc", "-fopenmp", str(root / "driver.o"), f"{program}.o", "-lm", "-o", str(program)])
            if done is None or done.returncode != 0:
                return CheckResult(True, False, "link failed" + ("" if done is None else ": " + done.stderr[:300]))
            done = _run([str(program)], env={"OMP_NUM_THREADS": "2"})
            if done is None:
                return CheckResult(True, False, f"timed out after {CHECK_TIMEOUT_S} s")
            if done.returncode != 0:
                return CheckResult(True, False, f"exit status {done.returncode}")
            if done.stdout.strip() != "1":
                return CheckResult(True, False, "wrong result")
            return CheckResult(True, True)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, range(len(sources))))


def _run(
    command: list[str], check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str] | None:
    """The finished process, or None when it ran past `CHECK_TIMEOUT_S`."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, check=check, env=env)
    except subprocess.TimeoutExpired:
        return None
