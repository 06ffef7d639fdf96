"""What a candidate may contain: checks of the source, the preprocessed source and the object file.

Every check returns None (allowed) or the reason for a `rejected` verdict. The layers, and why each:
- the source: includes only of standard headers by name (`#include "/dev/zero"` or a path could
  read host files or hang the compiler); no `#line`/line-marker directives (they would disguise
  the candidate's own lines as a system header's in the preprocessed text); only optimisation pragmas.
- the preprocessed main file: no inline assembly, even when built by macros (assembly can make
  system calls without any symbol); pragmas produced by `_Pragma` pass the same allowlist.
- the object (its `readelf` section and symbol tables): exactly one global definition, the entry
  point, as a function (so the candidate cannot replace `main`, `clock_gettime`, `omp_get_wtime` or
  the harness); references only to an allowlist of memory, printing, math and OpenMP functions (no
  processes, files, network, dynamic loading, time, environment, threads or BLAS); no constructor
  sections (code run before main would run in the trusted monitor before it forks).
The sandbox is the layer below all of these: a check that misses something still runs inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bencher.source import strip_comments

ALLOWED_HEADERS = frozenset(
    {
        "assert.h",
        "complex.h",
        "float.h",
        "immintrin.h",
        "inttypes.h",
        "limits.h",
        "math.h",
        "omp.h",
        "stdalign.h",
        "stdbool.h",
        "stddef.h",
        "stdint.h",
        "stdio.h",
        "stdlib.h",
        "string.h",
        "x86intrin.h",
    }
)
ALLOWED_DIRECTIVES = frozenset(
    {"include", "define", "undef", "if", "ifdef", "ifndef", "elif", "else", "endif", "pragma", "error", "warning"}
)
# Pragmas that change how code is optimised, never what it may do.
_ALLOWED_PRAGMA = re.compile(
    r"(omp\b|GCC\s+(unroll|ivdep|optimize|push_options|pop_options|target|diagnostic)\b|unroll\b)"
)
_ASM_TOKEN = re.compile(r"\b(asm|__asm__|__asm)\b")
# `%:` is the digraph spelling of `#`.
_DIRECTIVE = re.compile(r"^[ \t]*(?:#|%:)[ \t]*(\w*)(.*)$", re.MULTILINE)
# The preprocessor runs some pragmas itself (GCC dependency reads a file's date) and leaves no
# trace of them in its output, so the operator form is refused in the source; write #pragma.
_PRAGMA_OPERATOR = re.compile(r"\b_Pragma\b")
_ATTRIBUTE = re.compile(r"\b__attribute(?:__)?\s*\(\((.*?)\)\)", re.DOTALL)
# Attributes that place code or data where the checks below do not look, or run it before main.
_FORBIDDEN_ATTRIBUTES = re.compile(
    r"\b_*(section|alias|ifunc|constructor|destructor|naked|symver|weakref|visibility)_*\b"
)
_INCLUDE = re.compile(r"^\s*<([A-Za-z0-9_]+\.h)>\s*$")

ALLOWED_REFERENCES = frozenset(
    {
        # memory
        "malloc",
        "calloc",
        "realloc",
        "free",
        "aligned_alloc",
        "posix_memalign",
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        # printing (never parsed: the result channel is elsewhere)
        "printf",
        "puts",
        "putchar",
        "fprintf",
        "fputs",
        "fputc",
        "fflush",
        "fwrite",
        "putc",
        "stdout",
        "stderr",
        # arithmetic helpers
        "abs",
        "labs",
        "llabs",
        "qsort",
        # OpenMP queries (omp_get_wtime is a clock: not here)
        "omp_get_num_threads",
        "omp_get_thread_num",
        "omp_get_max_threads",
        "omp_get_num_procs",
        "omp_in_parallel",
        "omp_get_level",
        "omp_get_dynamic",
        # stack protector and fortify variants of the above
        "__stack_chk_fail",
        "__printf_chk",
        "__fprintf_chk",
        "__memcpy_chk",
        "__memmove_chk",
        "__memset_chk",
        # referenced whenever code takes the address of a function it calls through the GOT
        "_GLOBAL_OFFSET_TABLE_",
    }
)
MATH_FUNCTIONS = frozenset(
    """sqrt cbrt fabs fma fmin fmax fmod exp exp2 expm1 log log2 log10 log1p pow sin cos tan asin acos atan
    atan2 sinh cosh tanh floor ceil round trunc rint nearbyint lround copysign hypot ldexp frexp""".split()
)
# OpenMP pragmas compile to GOMP_* calls, except offloading (`omp target` could run on a GPU of the
# node, outside every limit); vectorised libm calls are _ZGV*; libgcc's complex arithmetic.
_ALLOWED_REFERENCE_PATTERN = re.compile(r"GOMP_(?!target|offload|teams)\w+|_ZGV\w+|__(mul|div)[sdxt]c3")
# `#pragma omp critical (name)` defines a shared lock variable with this name: harmless.
_ALLOWED_EXTRA_DEFINITION = re.compile(r"\.gomp_critical_user_\w+")
FORBIDDEN_SECTIONS = re.compile(
    r"^\.(init_array|fini_array|preinit_array|ctors|dtors|init|fini|gnu\.offload_\w+|gnu\.offload)(\.|$)"
)


@dataclass(frozen=True)
class Symbol:
    """One row of the object's symbol table (`readelf -sW`)."""

    name: str
    kind: str
    """FUNC, OBJECT, NOTYPE, IFUNC (GNU_IFUNC), TLS, COMMON, SECTION, FILE."""
    binding: str
    """LOCAL, GLOBAL, WEAK or UNIQUE (GNU_UNIQUE)."""
    section: str
    """UND for a reference to another object, ABS, COM, or a section index."""

    @property
    def undefined(self) -> bool:
        return self.section == "UND" and bool(self.name)

    @property
    def global_definition(self) -> bool:
        return self.binding != "LOCAL" and self.section != "UND" and self.kind not in ("FILE", "SECTION")


def check_source(source: str) -> str | None:
    if "\0" in source:
        return "the source contains NUL bytes"
    code = strip_comments(source, blank_literals=False)
    for match in _DIRECTIVE.finditer(code):
        name, rest = match.group(1), match.group(2)
        if not name and not rest.strip():
            continue  # the null directive: a lone `#`
        if name not in ALLOWED_DIRECTIVES:
            shown = name or rest.strip()[:20]
            return f"preprocessor directive #{shown} is not allowed (allowed: {', '.join(sorted(ALLOWED_DIRECTIVES))})"
        if name == "include":
            header = _INCLUDE.match(rest)
            if not header or header.group(1) not in ALLOWED_HEADERS:
                return (
                    f"#include{rest.rstrip()} is not allowed: include standard headers by name only, "
                    f"one of {', '.join(sorted(ALLOWED_HEADERS))}"
                )
        if name == "pragma":
            reason = check_pragma(rest)
            if reason:
                return reason
    return _check_tokens(code)


def check_pragma(text: str) -> str | None:
    if _ALLOWED_PRAGMA.match(text.strip()):
        return None
    return f"#pragma {text.strip()[:60]} is not allowed: only omp, unroll and GCC optimisation pragmas are"


def _check_tokens(code: str) -> str | None:
    code = strip_comments(code, blank_literals=True)
    match = _ASM_TOKEN.search(code)
    if match:
        return f"inline assembly ({match.group(1)}) is not allowed"
    if _PRAGMA_OPERATOR.search(code):
        return "the _Pragma operator is not allowed: write the pragma as a #pragma line"
    for attribute in _ATTRIBUTE.finditer(code):
        forbidden = _FORBIDDEN_ATTRIBUTES.search(attribute.group(1))
        if forbidden:
            return f"__attribute__(({forbidden.group(1)})) is not allowed (it places or runs code outside the checks)"
    return None


def check_preprocessed(text: str) -> str | None:
    """Check the lines of the preprocessed source that come from the candidate's own file.

    Line markers `# N "file" flags` say which file lines come from: flag 1 enters an include,
    flag 2 returns from one. Depth 0 is the candidate's own file whatever name it claims."""
    depth = 0
    own: list[str] = []
    for line in text.splitlines():
        if line.startswith("# ") and line[2:3].isdigit():
            flags = line.rsplit('"', 1)[-1].split()
            if "1" in flags:
                depth += 1
            elif "2" in flags:
                depth = max(0, depth - 1)
            continue
        if depth == 0:
            if line.startswith("#pragma"):
                reason = check_pragma(line[len("#pragma") :])
                if reason:
                    return reason
                continue
            own.append(line)
    return _check_tokens("\n".join(own))


_SYMBOL_ROW = re.compile(
    r"^[ \t]*\d+:[ \t]+\S+[ \t]+\S+[ \t]+(\w+)[ \t]+(\w+)[ \t]+\w+[ \t]+(\w+)[ \t]*(\S*)", re.MULTILINE
)


def parse_symbols(readelf_symbols: str) -> list[Symbol]:
    """Symbols from `readelf -sW` output (`Num: Value Size Type Bind Vis Ndx Name` per row; the name
    can carry a `@version` suffix, which stays part of it)."""
    return [
        Symbol(name, kind, binding, section) for kind, binding, section, name in _SYMBOL_ROW.findall(readelf_symbols)
    ]


def check_symbols(symbols: list[Symbol], entry: str) -> str | None:
    defined = [s for s in symbols if s.global_definition]
    extra = sorted(s.name for s in defined if s.name != entry and not _ALLOWED_EXTRA_DEFINITION.fullmatch(s.name))
    if extra:
        return (
            f"the object defines global symbols other than {entry}: {', '.join(extra[:10])}; "
            "make helpers and variables static"
        )
    entries = [s for s in defined if s.name == entry]
    if not entries:
        return f"the object does not define the entry point {entry} (as a non-static function)"
    if entries[0].kind != "FUNC" or entries[0].binding != "GLOBAL":
        return f"{entry} must be a plain function, not a {entries[0].binding} {entries[0].kind}"
    forbidden = sorted(
        {
            s.name
            for s in symbols
            if s.undefined
            and s.name not in ALLOWED_REFERENCES
            and s.name not in MATH_FUNCTIONS
            and not _ALLOWED_REFERENCE_PATTERN.fullmatch(s.name)
        }
    )
    if forbidden:
        return (
            f"the object uses functions or variables that candidates may not use: {', '.join(forbidden[:10])} "
            "(allowed: memory, printing, math and OpenMP; no processes, files, network, time, threads or libraries)"
        )
    return None


_SECTION_ROW = re.compile(r"^[ \t]*\[[ \t]*(\d+)\][ \t]+(\S+)(?:[ \t]+\S+){5}[ \t]+([A-Z]*)[ \t]", re.MULTILINE)


def check_sections(readelf_sections: str, symbols: list[Symbol]) -> str | None:
    """`readelf -SW` output and the symbols: no sections whose code runs before or after main, and no
    data objects in executable sections (machine code in a const array, called through a pointer)."""
    executable = set()
    for match in _SECTION_ROW.finditer(readelf_sections):
        index, name, flags = match.groups()
        if FORBIDDEN_SECTIONS.match(name):
            return f"the object has a {name} section (constructors/destructors are not allowed)"
        if "X" in flags:
            executable.add(index)
    for symbol in symbols:
        if symbol.kind == "OBJECT" and symbol.section in executable:
            return f"data object {symbol.name} is placed in an executable section (machine code is not allowed)"
    return None
