"""The static policy on its own: source, preprocessed text, symbols and sections (no compiler run)."""

from __future__ import annotations

import pytest

from bencher import policy
from bencher.source import lex, split_directives


def test_comments_become_spaces_and_literals_stay_whole() -> None:
    groups = lex('a /* x\ny */ b // z\nputs("/* not a comment */");')
    assert [[t.text for t in group] for group in groups] == [
        ["a", "b"],  # a comment's newline does not end the line, as for gcc's directives
        ["puts", "(", '"/* not a comment */"', ")", ";"],
    ]


def test_line_splices_join_lines_before_anything_else() -> None:
    directives, code = split_directives(lex("#inc\\\nlude <stdio.h>\n// a comment \\\nasm\nx"))
    assert [d.name for d in directives] == ["include"]
    assert [t.text for t in code] == ["x"]  # the spliced line belongs to the comment


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


def symbols(*rows: str) -> list[policy.Symbol]:
    """A symbol table in `readelf -sW` form from `TYPE BIND NDX NAME` rows."""
    table = "\n".join(
        f"    {i}: 0000000000000000     8 {kind:7} {bind:6} DEFAULT {ndx:>4} {name}"
        for i, (kind, bind, ndx, name) in enumerate(row.split() for row in rows)
    )
    return policy.parse_symbols(
        "Symbol table '.symtab' contains 9 entries:\n   Num: Value Size Type Bind Vis Ndx Name\n" + table
    )


def test_the_symbol_table_is_read_from_readelf_output() -> None:
    (symbol,) = symbols("FUNC GLOBAL 1 dgemm")
    assert symbol == policy.Symbol("dgemm", "FUNC", "GLOBAL", "1") and symbol.global_definition
    # Real output starts with a nameless row: its empty name must not swallow the next row.
    real = """
Symbol table '.symtab' contains 3 entries:
   Num:    Value          Size Type    Bind   Vis      Ndx Name
     0: 0000000000000000     0 NOTYPE  LOCAL  DEFAULT  UND
     1: 0000000000000000     0 FILE    LOCAL  DEFAULT  ABS cand.c
     2: 0000000000000000    91 FUNC    GLOBAL DEFAULT    1 dgemm
"""
    table = policy.parse_symbols(real)
    assert [s.name for s in table] == ["", "cand.c", "dgemm"]
    assert not any(s.undefined for s in table) and policy.check_symbols(table, "dgemm") is None


def test_only_the_entry_may_be_defined_globally() -> None:
    ok = symbols(
        "FUNC GLOBAL 1 dgemm", "FUNC LOCAL 1 helper", "NOTYPE GLOBAL UND GOMP_parallel", "NOTYPE GLOBAL UND memset"
    )
    assert policy.check_symbols(ok, "dgemm") is None
    critical = symbols("FUNC GLOBAL 1 dgemm", "OBJECT GLOBAL COM .gomp_critical_user_lock")
    assert policy.check_symbols(critical, "dgemm") is None
    assert "main" in (policy.check_symbols(symbols("FUNC GLOBAL 1 dgemm", "FUNC GLOBAL 1 main"), "dgemm") or "")
    weak_clock = symbols("FUNC GLOBAL 1 dgemm", "FUNC WEAK 1 clock_gettime")
    assert "clock_gettime" in (policy.check_symbols(weak_clock, "dgemm") or "")
    assert "does not define" in (policy.check_symbols(symbols("FUNC LOCAL 1 helper"), "dgemm") or "")
    assert "plain function" in (policy.check_symbols(symbols("OBJECT GLOBAL 3 dgemm"), "dgemm") or "")
    assert "IFUNC" in (policy.check_symbols(symbols("IFUNC GLOBAL 1 dgemm"), "dgemm") or "")
    assert "plain function" in (policy.check_symbols(symbols("FUNC WEAK 1 dgemm"), "dgemm") or "")


@pytest.mark.parametrize(
    "name",
    [
        "fork", "system", "fopen", "socket", "dlopen", "clock_gettime", "omp_get_wtime", "getenv", "environ",
        "cblas_dgemm", "dgemm_", "pthread_create", "exit", "abort", "syscall", "mprotect", "_exit",
        "GOMP_target_ext", "GOMP_teams_reg",
    ],
)  # fmt: skip
def test_references_outside_the_allowlist_are_rejected(name: str) -> None:
    for binding in ("GLOBAL", "WEAK"):  # a weak reference (weakref) is still a reference
        reason = policy.check_symbols(symbols("FUNC GLOBAL 1 dgemm", f"NOTYPE {binding} UND {name}"), "dgemm")
        assert reason is not None and name in reason


SECTIONS = (
    "  [ 1] .text             PROGBITS        0000000000000000 000040 000005 00  AX  0   0 16",
    "  [ 3] .data             PROGBITS        0000000000000000 000045 000000 00  WA  0   0  1",
    "  [ 5] .text.unlikely    PROGBITS        0000000000000000 000048 000008 00  AX  0   0  8",
    "  [ 7] .note.GNU-stack   PROGBITS        0000000000000000 000078 000000 00      0   0  1",
)


def section_table(*rows: str) -> str:
    """`readelf -SW` output with these rows (and the count line the check compares them with)."""
    return "\n".join(
        [
            f"There are {len(rows)} section headers, starting at offset 0x14c0:",
            "  [Nr] Name              Type            Address          Off    Size   ES Flg Lk Inf Al",
            *rows,
        ]
    )


def test_constructor_sections_are_rejected() -> None:
    init = "  [ 8] .init_array       INIT_ARRAY      0000000000000000 000080 000008 08  WA  0   0  8"
    assert ".init_array" in (policy.check_sections(section_table(*SECTIONS, init), []) or "")
    table = symbols("FUNC GLOBAL 1 dgemm", "OBJECT LOCAL 3 table")
    assert policy.check_sections(section_table(*SECTIONS), table) is None


def test_data_in_an_executable_section_is_rejected() -> None:
    reason = policy.check_sections(section_table(*SECTIONS), symbols("FUNC GLOBAL 1 dgemm", "OBJECT LOCAL 5 code"))
    assert reason is not None and "code" in reason and "executable" in reason
