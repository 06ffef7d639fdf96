"""Technique detection (archive/techniques/): a labelled corpus of true positives and near misses, the
bencher's ladder, unparseable and hostile input, and the `hpcrl techniques` command."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from archive import techniques
from archive.techniques import TECHNIQUES, Analysis, analyze, main
from bus.schema import MAX_SOURCE_BYTES

TESTS = Path(__file__).resolve().parent
CORPUS = TESTS / "archive_techniques_corpus"
LADDER = TESTS / "bencher_ladder"
CORPUS_FILES = sorted(CORPUS.glob("*.c"))


def header_labels(path: Path, field: str) -> frozenset[str]:
    """The labels after `field:` in the file's header comment (`none` or nothing means no label)."""
    match = re.search(rf"^(?:/\*| \*) {field}:([^\n]*)$", path.read_text(), re.M)
    if match is None:
        return frozenset()
    names = match.group(1).strip()
    return frozenset() if names in ("", "none") else frozenset(name.strip() for name in names.split(","))


def test_there_are_ten_techniques_in_a_fixed_order() -> None:
    assert TECHNIQUES == (
        "loop_order",
        "tiling",
        "unrolling",
        "register_blocking",
        "simd_intrinsics",
        "simd_pragma",
        "openmp",
        "packing",
        "transpose",
        "prefetch",
    )


# --- the labelled corpus ------------------------------------------------------------------------------------


def test_every_corpus_file_declares_known_techniques_and_near_misses() -> None:
    assert len(CORPUS_FILES) >= 20
    for path in CORPUS_FILES:
        assert path.read_text().startswith("/* techniques:"), f"{path.name} has no techniques header"
        labels, near_misses = header_labels(path, "techniques"), header_labels(path, "near miss for")
        assert labels <= set(TECHNIQUES) and near_misses <= set(TECHNIQUES), path.name
        assert not labels & near_misses, f"{path.name} is a near miss for a label it has"


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_every_technique_has_a_true_positive_and_a_near_miss_in_the_corpus(technique: str) -> None:
    positives = [p.name for p in CORPUS_FILES if technique in header_labels(p, "techniques")]
    near_misses = [p.name for p in CORPUS_FILES if technique in header_labels(p, "near miss for")]
    assert positives, f"no corpus file uses {technique}"
    assert near_misses, f"no corpus file is a near miss for {technique}"


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.stem)
def test_each_corpus_file_gets_exactly_the_techniques_in_its_header(path: Path) -> None:
    analysis = analyze(path.read_text())
    assert analysis.parse_error == ""
    assert analysis.techniques == header_labels(path, "techniques")


# --- the bencher's ladder -----------------------------------------------------------------------------------

LADDER_TECHNIQUES = {
    "naive_ijk": frozenset(),
    "interchange_ikj": frozenset({"loop_order"}),
    # B transposed once into a static buffer, then k-innermost dot products: no loop_order, and a
    # whole-matrix transpose is not packing (it is not redone per block).
    "transposed_b": frozenset({"transpose"}),
    # i-k-j inside tiles; the k loop steps by 4 and reads a[k], a[k + 1], ...: manually unrolled.
    "tiled": frozenset({"tiling", "loop_order", "unrolling"}),
    # KC x 8 slices of B memcpy'd into `slice` per block; 4x8 array of accumulators. loop_order comes
    # from block_edge, whose r-k-q order updates C[r][q] along q with the reduction k outside it.
    "tiled_register_blocked": frozenset({"tiling", "register_blocking", "packing", "loop_order"}),
    # BLIS structure: the micro-kernel keeps k innermost around 12 ymm accumulators (no loop_order);
    # pack_a reorders A through pointer bumps (packing, not transpose); the 6x8 block is written with
    # Ap + 0..5, not with loop index offsets (no unrolling).
    "avx2_fma": frozenset({"tiling", "register_blocking", "simd_intrinsics", "packing"}),
    "openmp": frozenset({"tiling", "register_blocking", "simd_intrinsics", "packing", "openmp"}),
}


def test_every_ladder_kernel_has_expected_techniques() -> None:
    assert {path.stem for path in LADDER.glob("*.c")} == set(LADDER_TECHNIQUES)


@pytest.mark.parametrize("name", sorted(LADDER_TECHNIQUES))
def test_each_ladder_kernel_gets_the_techniques_it_really_uses(name: str) -> None:
    analysis = analyze((LADDER / f"{name}.c").read_text())
    assert analysis == Analysis(LADDER_TECHNIQUES[name])


# --- what the parser sees -----------------------------------------------------------------------------------

IKJ = """
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++)
                C[i * n + j] += A[i * n + k] * B[k * n + j];
}
"""


def test_an_attribute_after_an_array_declarator_does_not_make_the_source_unparseable() -> None:
    source = IKJ.replace("{\n", "{\n    double tile[4][8] __attribute__((aligned(32)));\n    (void)tile;\n", 1)
    assert analyze(source) == Analysis(frozenset({"loop_order"}))


def test_a_pragma_between_a_loop_header_and_its_body_is_read_and_the_loop_kept() -> None:
    source = IKJ.replace("for (int j", "\n#pragma omp simd\n            for (int j")
    source = source.replace("for (int k = 0; k < n; k++)\n", "for (int k = 0; k < n; k++)\n#pragma GCC unroll 4\n")
    assert analyze(source).techniques == {"loop_order", "simd_pragma", "unrolling"}


def test_object_like_macros_enums_and_const_ints_are_constants_for_steps_and_bounds() -> None:
    for definition, name in (("#define UNROLL 2", "UNROLL"), ("enum { UNROLL = 2 };", "UNROLL"), ("", "STEP")):
        source = f"""{definition}
void dgemm(int n, const double *A, const double *B, double *C)
{{
    const int STEP = 2;
    for (int i = 0; i < n; i++)
        for (int j = 0; j + 1 < n; j += {name}) {{
            double s0 = 0.0, s1 = 0.0;
            for (int k = 0; k < n; k++) {{
                s0 += A[i * n + k] * B[k * n + j];
                s1 += A[i * n + k] * B[k * n + j + 1];
            }}
            C[i * n + j] = s0;
            C[i * n + j + 1] = s1;
        }}
}}
"""
        assert analyze(source).techniques == {"unrolling", "register_blocking"}, definition or "const int"


def test_a_constant_that_is_not_a_valid_c_integer_is_not_a_constant() -> None:
    for value in ("08", "1 << 99", "1 / 0", "(1", "sizeof(double)", "9" * 300):
        source = f"#define STEP {value}\n" + IKJ.replace("j++", "j += STEP")
        assert analyze(source).techniques == {"loop_order"}, value


def test_a_function_like_macro_wrapping_an_intrinsic_counts_as_the_intrinsic() -> None:
    source = """#define PREFETCH(p) __builtin_prefetch(p, 0, 3)
void dgemm(int n, const double *A, const double *B, double *C)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            PREFETCH(B + (k + 4) * n);
            for (int j = 0; j < n; j++)
                C[i * n + j] += A[i * n + k] * B[k * n + j];
        }
}
"""
    assert analyze(source).techniques == {"loop_order", "prefetch"}


def test_code_only_reached_through_a_static_helper_is_analysed_and_unreached_code_is_not() -> None:
    helper = IKJ.replace("void dgemm(", "static void ikj(")
    called = helper + "void dgemm(int n, const double *A, const double *B, double *C) { ikj(n, A, B, C); }\n"
    unused = helper + "void dgemm(int n, const double *A, const double *B, double *C) { (void)n; }\n"
    assert analyze(called).techniques == {"loop_order"}
    assert analyze(unused).techniques == frozenset()


def test_jacobi_candidates_are_analysed_with_the_same_labels() -> None:
    source = (CORPUS / "jacobi_tiled_openmp.c").read_text()
    assert "jacobi2d" in source and "dgemm" not in source
    assert analyze(source).techniques == {"tiling", "openmp"}


# --- unparseable input --------------------------------------------------------------------------------------


def test_a_syntax_error_gives_no_labels_and_names_its_line() -> None:
    source = IKJ.replace("#pragma", "").replace("+= A", "+= A[0] A")
    analysis = analyze("#pragma omp parallel for\n" + source)
    assert not analysis.ok
    assert analysis.techniques == frozenset()
    assert analysis.parse_error.startswith("line 8: syntax error")


def test_a_missing_semicolon_is_reported_as_missing() -> None:
    source = "void dgemm(int n, const double *A, const double *B, double *C)\n{\n    C[0] = A[0] * B[0]\n}\n"
    assert analyze(source) == Analysis(frozenset(), "line 3: syntax error: missing `;`")


def test_line_numbers_stay_true_after_blanking_multi_line_pragmas_and_attributes() -> None:
    source = (
        "#pragma omp declare \\\n    simd\nstatic double x __attribute__((\n    aligned(64)));\n"
        "void dgemm(int n, const double *A, const double *B, double *C) {\n  C[0] = = 1;\n}\n"
    )
    assert analyze(source).parse_error.startswith("line 6:")


def test_a_macro_used_as_a_statement_makes_the_source_unparseable() -> None:
    source = """#define FOR(i, n) for (int i = 0; i < (n); i++)
void dgemm(int n, const double *A, const double *B, double *C)
{
    FOR(i, n) FOR(k, n) FOR(j, n) C[i * n + j] += A[i * n + k] * B[k * n + j];
}
"""
    analysis = analyze(source)
    assert analysis.techniques == frozenset() and analysis.parse_error.startswith("line 4:")


def test_a_source_without_a_function_definition_gets_a_reason() -> None:
    assert analyze("") == Analysis(frozenset(), "no function definition")
    assert analyze("/* nothing */\nint x;\n") == Analysis(frozenset(), "no function definition")


def test_a_source_over_the_candidate_size_limit_is_not_parsed() -> None:
    analysis = analyze("/*" + "x" * MAX_SOURCE_BYTES + "*/")
    assert analysis.techniques == frozenset() and "limit" in analysis.parse_error


# --- hostile input: never raises, always finishes ---------------------------------------------------------

HOSTILE = {
    "garbage_bytes": random.Random(0).randbytes(60_000).decode("latin-1"),
    "nul_bytes": "\x00" * 4096,
    "lone_surrogates": "\ud800\udfff" * 100 + IKJ,
    "one_megabyte_of_nested_braces": "{" * (1 << 19) + "}" * (1 << 19),
    "nested_braces_under_the_size_limit": "void f(void) {" + "{" * 100_000 + "}" * 100_000 + "}",
    "nested_parentheses": "void f(int n) { int x = " + "(" * 100_000 + "n" + ")" * 100_000 + "; }",
    "loops_nested_a_hundred_deep": "void f(int n) {" + "for (int i = 0; i < n; i += 2)" * 100 + ";}",
    "unclosed_loop_headers": "for(" * 50_000,
    "unclosed_attributes": "__attribute__((" * 15_000,
    "mutual_recursion": (
        "static void g(int n);\nstatic void h(int n) { for (int i = 0; i < n; i += 4) g(i); }\n"
        "static void g(int n) { h(n); g(n); }\nvoid dgemm(int n) { g(n); }\n"
    ),
    "a_helper_called_from_everywhere": (
        "static void z(int n) { static const int t[] = {" + ",".join(["1"] * 30_000) + "}; (void)t; (void)n; }\n"
        "void dgemm(int n) {" + "z(n);" * 300 + "}"
    ),
    "exponential_call_tree": "static void k0(int n) { for (int i = 0; i < n; i++) ; }\n"
    + "".join(f"static void k{d + 1}(int n) {{ {f'k{d}(n); ' * 8}}}\n" for d in range(8))
    + "void dgemm(int n) { k8(n); }\n",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_never_raises_and_finishes(name: str) -> None:
    analysis = analyze(HOSTILE[name])
    assert isinstance(analysis, Analysis)
    assert analysis.ok or analysis.techniques == frozenset()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("one_megabyte_of_nested_braces", "limit"),
        ("loops_nested_a_hundred_deep", "loops nested deeper than"),
        ("a_helper_called_from_everywhere", "too complex to analyse"),
        ("unclosed_attributes", "syntax error"),
    ],
)
def test_input_past_a_bound_gets_a_reason_instead_of_labels(name: str, reason: str) -> None:
    analysis = analyze(HOSTILE[name])
    assert analysis.techniques == frozenset()
    assert reason in analysis.parse_error


def test_a_parse_that_runs_out_of_time_is_reported_and_the_next_parse_is_clean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(techniques, "PARSE_TIMEOUT_S", 0.0)
    assert "parsing took longer" in analyze(IKJ * 200).parse_error
    monkeypatch.undo()
    assert analyze(IKJ) == Analysis(frozenset({"loop_order"}))


def test_parse_error_text_is_printable() -> None:
    assert analyze("\x00\x01\x1b[2J" * 10).parse_error.isprintable()


# --- hpcrl techniques ----------------------------------------------------------------------------------------


def test_main_prints_one_technique_per_line_in_the_fixed_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(LADDER / "openmp.c")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tiling",
        "register_blocking",
        "simd_intrinsics",
        "openmp",
        "packing",
    ]


def test_main_prints_json_with_the_parse_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([str(LADDER / "interchange_ikj.c"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"techniques": ["loop_order"], "parse_error": ""}
    broken = tmp_path / "broken.c"
    broken.write_bytes(b"void dgemm(int n) { n = \xff\xfe; }\n")
    assert main([str(broken), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["techniques"] == [] and report["parse_error"].startswith("line 1:")


def test_main_exits_2_for_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([str(tmp_path / "absent.c")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_main_exits_2_without_a_file() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_every_shipped_problem_has_labelled_examples_in_the_corpus() -> None:
    """Technique detection covers every problem the bencher ships: each entry point is defined by corpus
    files whose labels the test above holds the analyser to."""
    from bus.problems import load_registry

    defined = {path.name: path.read_text() for path in CORPUS_FILES}
    for problem in load_registry().problems.values():
        examples = [name for name, text in defined.items() if f" {problem.entry}(" in text]
        assert examples, f"no corpus file defines {problem.entry}: add labelled examples to {CORPUS.name}/"
