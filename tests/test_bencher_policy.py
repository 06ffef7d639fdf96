"""The static policy on its own: source, preprocessed text, symbols and sections (no compiler run)."""

from __future__ import annotations

import pytest

from bencher import policy
from bencher.source import normalize, source_hash, strip_comments


def test_comments_are_stripped_but_literals_and_lines_are_kept() -> None:
    text = 'a /* x\ny */ b // z\nputs("/* not a comment */");'
    stripped = strip_comments(text)
    assert stripped.count("\n") == text.count("\n")
    assert '"/* not a comment */"' in stripped and "x" not in stripped.split("\n")[0]
    assert "not" not in strip_comments(text, blank_literals=True)


def test_equivalent_sources_share_a_hash_and_different_ones_do_not() -> None:
    a = "void f(void) {\n    return;   // done\n}\n"
    b = "/* header */\nvoid f(void) {\n\treturn;\n}"
    assert normalize(a) == normalize(b) and source_hash(a) == source_hash(b)
    assert source_hash(a) != source_hash(a.replace("return", "return ;"))
    assert source_hash('puts("a  b");') != source_hash('puts("a b");')


@pytest.mark.parametrize(
    "source",
    [
        "#include <stdlib.h>\n#include <immintrin.h>\n#pragma omp parallel for\n#pragma GCC unroll 4\nvoid f(void){}",
        '#define S "asm(\\"nop\\")"\nvoid f(void){ const char *s = S; (void)s; }',  # asm inside a string literal
        '// asm("syscall") in a comment\nvoid f(void){}',
        "#\nvoid f(void){}",
    ],
)
def test_allowed_sources_pass(source: str) -> None:
    assert policy.check_source(source) is None


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ('#include "/dev/zero"', "standard headers by name"),
        ("#include </etc/passwd>", "standard headers by name"),
        ("#include <cblas.h>", "standard headers by name"),
        ("#include <unistd.h>", "standard headers by name"),
        ('#line 1 "/usr/include/stdlib.h"', "#line"),
        ('# 1 "/usr/include/stdlib.h" 1 3', "#1"),
        ("#include_next <stdlib.h>", "#include_next"),
        ("#pragma GCC poison x", "pragma"),
        ("#pragma weak clock_gettime", "pragma"),
        ('void f(void){ asm("nop"); }', "inline assembly"),
        ('void f(void){ __asm__ volatile("syscall"); }', "inline assembly"),
        ("void f(void){}\0", "NUL"),
    ],
)
def test_forbidden_sources_are_rejected_with_a_reason(source: str, reason: str) -> None:
    found = policy.check_source(source)
    assert found is not None and reason in found


def test_macro_built_assembly_is_found_in_the_preprocessed_main_file() -> None:
    preprocessed = (
        '# 1 "cand.c"\n# 1 "/usr/include/stdlib.h" 1 3 4\nextern int x __asm__ ("y");\n'
        '# 2 "cand.c" 2\nvoid f(void) { __asm__ ("syscall"); }\n'
    )
    assert "inline assembly" in (policy.check_preprocessed(preprocessed) or "")
    header_only = '# 1 "cand.c"\n# 1 "/usr/include/stdlib.h" 1 3 4\nextern int x __asm__ ("y");\n# 2 "cand.c" 2\n'
    assert policy.check_preprocessed(header_only) is None


def test_a_renamed_main_file_is_still_the_main_file() -> None:
    # A `#line` rename has no enter/return flag: the code stays at depth 0 and is checked.
    renamed = '# 1 "cand.c"\n# 1 "/usr/include/stdlib.h"\nvoid f(void) { asm("nop"); }\n'
    assert policy.check_preprocessed(renamed) is not None


def test_pragmas_made_by_the_pragma_operator_pass_the_same_allowlist() -> None:
    assert policy.check_preprocessed('# 1 "cand.c"\n#pragma omp parallel for\n') is None
    assert "not allowed" in (policy.check_preprocessed('# 1 "cand.c"\n#pragma weak clock_gettime\n') or "")


def symbols(text: str) -> list[policy.Symbol]:
    return policy.parse_nm(text)


def test_only_the_entry_may_be_defined_globally() -> None:
    ok = symbols("dgemm T 0 10\nhelper t 10 5\nGOMP_parallel U\nmemset U\nsqrt U\n")
    assert policy.check_symbols(ok, "dgemm") is None
    assert "main" in (policy.check_symbols(symbols("dgemm T 0 1\nmain T 1 1\n"), "dgemm") or "")
    assert "clock_gettime" in (policy.check_symbols(symbols("dgemm T 0 1\nclock_gettime W 1 1\n"), "dgemm") or "")
    assert "does not define" in (policy.check_symbols(symbols("helper t 0 1\n"), "dgemm") or "")
    assert "plain function" in (policy.check_symbols(symbols("dgemm D 0 8\n"), "dgemm") or "")
    assert "plain function" in (policy.check_symbols(symbols("dgemm i 0 8\n"), "dgemm") or "")


@pytest.mark.parametrize(
    "name",
    [
        "fork",
        "system",
        "fopen",
        "socket",
        "dlopen",
        "clock_gettime",
        "omp_get_wtime",
        "getenv",
        "environ",
        "cblas_dgemm",
        "dgemm_",
        "pthread_create",
        "exit",
        "abort",
        "syscall",
        "mprotect",
        "_exit",
    ],
)
def test_references_outside_the_allowlist_are_rejected(name: str) -> None:
    reason = policy.check_symbols(symbols(f"dgemm T 0 1\n{name} U\n"), "dgemm")
    assert reason is not None and name in reason


def test_constructor_sections_are_rejected() -> None:
    sections = "  [ 1] .text PROGBITS 0 40 10 00 AX 0 0 16\n  [ 5] .init_array INIT_ARRAY 0 0 8 08 WA 0 0 8\n"
    assert ".init_array" in (policy.check_sections(sections) or "")
    assert policy.check_sections("  [ 1] .text PROGBITS 0 40 10 00 AX 0 0 16\n") is None
