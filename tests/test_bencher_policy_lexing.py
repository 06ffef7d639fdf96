"""Spellings that walked around the text checks (issue 11): the source checks read C as gcc lexes it
or refuse the spelling with a reason, and the object gcc produced is judged whatever the text said.

Objects are built by the real gcc, readelf and objdump: on the host for the object checks alone (the
sources are ours), and through the Builder's sandbox for the verdicts a candidate gets."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bencher import policy
from bencher.build import CANDIDATE_FLAGS, Builder
from bencher.sandbox import Sandbox
from bus.problems import get_problem
from bus.schema import Verdict
from tests.bencher_support import CORPUS, LADDER, fast_config

pytestmark = pytest.mark.timeout(300)
NAIVE = (LADDER / "naive_ijk.c").read_text()
DGEMM = get_problem("dgemm")
KERNEL = """
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = A[i] + B[i];
}
"""
# A raw string literal holding one `"`: a scanner that takes it for a plain string then sees the
# assembly as the inside of a string. gcc (GNU C) sees a raw string, then the assembly.
RAW_STRING_ASM = (
    'static const char *tag = R"x(")x"; static void raw(void) { __asm__ volatile("syscall"); } '
    'static const char *end = "(";\n' + KERNEL
)
IFUNC_TEMPLATE = """
typedef void kernel_fn(int, const double *, const double *, double *);
static void plain(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n * n; i++)
        C[i] = A[i] + B[i];
}
static kernel_fn *pick(void) { return plain; }
ATTRIBUTE static void kernel(int n, const double *A, const double *B, double *C);
void dgemm(int n, const double *A, const double *B, double *C) { kernel(n, A, B, C); }
"""
# Assembly built by token pasting, which only the check of the preprocessed text can see...
PASTED_ASM = '#define CAT(a, b) a##b\nstatic void hidden(void) { CAT(__as, m__) volatile("syscall"); }\n'
# ...hidden from it by a GNU line marker, after which gcc calls the rest of the file a system header
# (and so did that check). The form feed kept the marker from the old source check.
FORM_FEED_LINE_MARKER = '#include <stdio.h>\n\f# 1 "/usr/include/stdio.h" 1 3\n' + PASTED_ASM + KERNEL
# `#define E #`: an expansion at the start of a line prints as a line marker in gcc's own
# preprocessed output, which gcc then obeys.
HASH_MACRO_LINE_MARKER = '#include <stdio.h>\n#define E #\nE 1 "/usr/include/stdio.h" 1 3\n' + PASTED_ASM + KERNEL


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (RAW_STRING_ASM, "raw string"),
        ('\f#include "/etc/passwd"\n' + KERNEL, "form feed"),
        ('#\f include "/dev/zero"\n' + KERNEL, "form feed"),
        ('\v#include "/etc/passwd"\n' + KERNEL, "vertical tab"),
        ('x;\r#include "/etc/passwd"\n' + KERNEL, "carriage return"),
        ('??=include "/etc/passwd"\n' + KERNEL, "trigraph"),
        (FORM_FEED_LINE_MARKER, "form feed"),
        (HASH_MACRO_LINE_MARKER, "object-like macro"),
        ('#define E %:\nE 1 "/usr/include/stdio.h" 1 3\n' + KERNEL, "object-like macro"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '[[gnu::ifunc("pick")]]'), "[[gnu"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '[[__gnu__::__ifunc__("pick")]]'), "[[__gnu__"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '<:<:gnu::ifunc("pick"):>:>'), "[[gnu"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '[ [ gnu :: ifunc("pick") ] ]'), "[[gnu"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '__attribute__( (ifunc("pick")))'), "ifunc"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '__attribute__ /**/ ((__ifunc__("pick")))'), "ifunc"),
        (IFUNC_TEMPLATE.replace("ATTRIBUTE", '__attribute__((\\\n ifunc("pick")))'), "ifunc"),
        ('__attribute__((target_clones("avx2", "default")))\n' + KERNEL, "target_clones"),
        ('#if __has_include("/etc/shadow")\n#endif\n' + KERNEL, "__has_include"),
        ("static int big = 1'000;\n" + KERNEL, "digit separators"),
        ("static int \\u00e9t\\u00e9;\n" + KERNEL, "backslash"),
        ("#include <stdio.h> x\n" + KERNEL, "#include <name.h>"),
        ("#include <std/**/io.h>\n" + KERNEL, "#include <name.h>"),
        ('static const char *s = "unterminated;\n' + KERNEL, "not closed"),
        ("/* never closed\n" + KERNEL, "not closed"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, str) and len(value) > 40 else None,
)
def test_spellings_that_hide_code_or_includes_are_refused_with_a_reason(source: str, reason: str) -> None:
    found = policy.check_source(source)
    assert found is not None and reason in found, found


@pytest.mark.parametrize("path", sorted(LADDER.glob("*.c")) + sorted(CORPUS.glob("ok_*.c")), ids=lambda p: p.stem)
def test_honest_kernels_pass_the_source_check(path: Path) -> None:
    assert policy.check_source(path.read_text()) is None


@pytest.mark.parametrize(
    "source",
    [
        "[[maybe_unused]] static int unused;\n" + KERNEL,
        "[[__nodiscard__]] static int f(void) { return 1; }\n" + KERNEL,
        "static double row[4] __attribute__ ( ( aligned ( 32 ) ) );\n" + KERNEL,
        "#define ALIGNED __attribute__((aligned(32)))\n#define STR(x) #x\n#define CAT(a, b) a##b\n" + KERNEL,
        "/* form feeds and \\ in comments are comments */ // don't mind the quote\n" + KERNEL,
        'static const char *s = "R\\"(\\"??";  /* \u00e9 */\n' + KERNEL,
        "#include <stdio.h>\r\n#include <immintrin.h>\r\n" + KERNEL.replace("\n", "\r\n"),
    ],
)
def test_what_kernels_write_passes(source: str) -> None:
    assert policy.check_source(source) is None


def test_the_preprocessed_check_reads_tokens_not_text() -> None:
    main = '# 1 "cand.c"\n'
    assert "raw string" in (policy.check_preprocessed(main + RAW_STRING_ASM) or "")
    assert "inline assembly" in (policy.check_preprocessed(main + 'void f(void) { __asm__ ( "nop" ); }') or "")
    spaced = main + 'static void k(void) __attribute__( (ifunc("pick")));'
    assert "ifunc" in (policy.check_preprocessed(spaced) or "")
    # A marker that claims to enter a header from the main file's own name is still the main file.
    entered = main + '# 1 "cand.c" 1 3\nvoid f(void) { __asm__("nop"); }\n'
    assert "inline assembly" in (policy.check_preprocessed(entered) or "")
    # A `#` that gcc printed off the start of a line is not a marker, and not code either.
    stray = main + ' # 1 "/usr/include/stdio.h" 1 3\nvoid f(void) {}\n'
    assert "stray #" in (policy.check_preprocessed(stray) or "")


# ------------------------------------------------------------------ the object gcc produced


def inspect(tmp_path: Path, source: str) -> dict[str, str]:
    """Compile `source` with the candidate flags on the host and list it as the build's sandbox does."""
    (tmp_path / "cand.c").write_text(source)
    flags = shlex.join(DGEMM.flags + CANDIDATE_FLAGS)
    script = (
        f"gcc {flags} -c cand.c -o cand.o && readelf -SW cand.o > sections.txt && readelf -sW cand.o > symbols.txt"
        " && readelf -rW cand.o > relocations.txt && objdump -d -w cand.o > disassembly.txt"
    )
    subprocess.run(["/bin/sh", "-c", script], cwd=tmp_path, check=True, timeout=120, capture_output=True)
    return {
        name: (tmp_path / f"{name}.txt").read_text() for name in ("sections", "symbols", "relocations", "disassembly")
    }


def object_reason(listing: dict[str, str]) -> str | None:
    symbols = policy.parse_symbols(listing["symbols"])
    return (
        policy.check_sections(listing["sections"], symbols)
        or policy.check_symbols(symbols, "dgemm")
        or policy.check_relocations(listing["relocations"])
        or policy.check_instructions(listing["disassembly"])
    )


@pytest.mark.parametrize(
    "attribute", ['[[gnu::ifunc("pick")]]', '__attribute__( (ifunc("pick")))', '[[__gnu__::__ifunc__("pick")]]']
)
def test_an_ifunc_is_rejected_in_the_object_whatever_its_spelling(tmp_path: Path, attribute: str) -> None:
    listing = inspect(tmp_path, IFUNC_TEMPLATE.replace("ATTRIBUTE", attribute))
    assert "IFUNC" in (object_reason(listing) or "")


def test_target_clones_make_an_ifunc_and_are_rejected_in_the_object(tmp_path: Path) -> None:
    listing = inspect(tmp_path, '__attribute__((target_clones("avx2", "default")))' + KERNEL)
    assert "IFUNC" in (object_reason(listing) or "")


@pytest.mark.parametrize("instruction", ["syscall", "sysenter", "int $0x80"], ids=["syscall", "sysenter", "int_0x80"])
def test_system_call_instructions_are_rejected_in_the_object(tmp_path: Path, instruction: str) -> None:
    source = KERNEL.replace("{\n", f'{{\n    __asm__ volatile("{instruction}");\n', 1)
    assert "system call instruction" in (object_reason(inspect(tmp_path, source)) or "")


def test_a_syscall_hidden_inside_another_instruction_is_rejected(tmp_path: Path) -> None:
    # `movl $0xc3050f, ...` holds 0f 05 c3: entered one byte in, it runs `syscall; ret`.
    source = KERNEL.replace("{\n", "{\n    volatile int gadget = 0xc3050f;\n    (void)gadget;\n", 1)
    listing = inspect(tmp_path, source)
    assert "syscall" not in listing["disassembly"].split("<dgemm>:")[1], "the listing alone does not show it"
    assert "bytes of a syscall" in (object_reason(listing) or "")


def test_code_outside_text_sections_is_rejected(tmp_path: Path) -> None:
    placed = '__attribute__((section(".fast"), noinline)) static void fast(double *C) { C[0] = 1.0; }\n'
    source = placed + KERNEL.replace("{\n", "{\n    fast(C);\n", 1)
    assert "only .text sections" in (object_reason(inspect(tmp_path, source)) or "")
    # A section name that smuggles its own flags into the assembler: writable and executable.
    writable = source.replace('".fast"', '".wx,\\"awx\\",@progbits#"')
    assert "writable and executable" in (object_reason(inspect(tmp_path, writable)) or "")


def test_relocation_types_outside_the_allowlist_are_rejected() -> None:
    table = """
Relocation section '.rela.text' at offset 0x1200 contains 2 entries:
    Offset             Info             Type               Symbol's Value  Symbol's Name + Addend
00000000000002ea  0000000b00000004 R_X86_64_PLT32         0000000000000000 omp_get_thread_num - 4
00000000000002fd  0000000300000025 R_X86_64_IRELATIVE     0000000000000000 .text + 1c
"""
    assert "R_X86_64_IRELATIVE" in (policy.check_relocations(table) or "")
    assert "could not be read" in (policy.check_relocations(table.replace("2 entries", "3 entries")) or "")
    assert policy.check_relocations(table.replace("R_X86_64_IRELATIVE", "R_X86_64_PC32     ")) is None


@pytest.mark.parametrize("path", sorted(LADDER.glob("*.c")) + sorted(CORPUS.glob("ok_*.c")), ids=lambda p: p.stem)
def test_honest_objects_pass_the_object_checks(tmp_path: Path, path: Path) -> None:
    assert object_reason(inspect(tmp_path, path.read_text())) is None


# ------------------------------------------------------------------ verdicts through the sandbox


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builder]:
    config = fast_config(tmp_path_factory.mktemp("builds"))
    yield Builder(config, Sandbox(uid=config.sandbox_uid if os.geteuid() == 0 else None))


@pytest.mark.parametrize(
    "source",
    [
        RAW_STRING_ASM,
        FORM_FEED_LINE_MARKER,
        HASH_MACRO_LINE_MARKER,
        IFUNC_TEMPLATE.replace("ATTRIBUTE", '[[gnu::ifunc("pick")]]'),
        IFUNC_TEMPLATE.replace("ATTRIBUTE", '__attribute__( (ifunc("pick")))'),
    ],
    ids=["raw_string_asm", "form_feed_line_marker", "hash_macro_line_marker", "c2x_gnu_ifunc", "spaced_attribute"],
)
def test_the_attacks_are_rejected_by_the_build(builder: Builder, source: str) -> None:
    build = builder.build(DGEMM, source)
    assert build.verdict is Verdict.REJECTED, build.detail


def test_a_form_feed_include_of_etc_passwd_leaks_nothing(builder: Builder) -> None:
    build = builder.build(DGEMM, '\f#include "/etc/passwd"\n' + NAIVE)
    assert build.verdict is Verdict.REJECTED
    lines = [line for line in Path("/etc/passwd").read_text().splitlines() if line]
    assert not [line for line in lines if line in build.detail], "a line of /etc/passwd came back in the detail"
    assert "passwd" not in build.detail  # the operand itself is not echoed either


def test_the_ladder_builds_through_every_check(builder: Builder) -> None:
    for path in sorted(LADDER.glob("*.c")):
        build = builder.build(DGEMM, path.read_text())
        assert build.verdict is Verdict.OK, f"{path.name}: {build.detail}"
