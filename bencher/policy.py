"""What a candidate may contain: checks of the source, the preprocessed source and the object file.

Every check returns None (allowed) or the reason for a `rejected` verdict. The layers, and why each:
- the source, as gcc's tokens (bencher.source: line splices, comments, literals and digraphs handled as
  gcc handles them, spellings whose lexing is in doubt refused): includes only of standard headers by
  name (`#include "/dev/zero"` or a path could read host files or hang the compiler); no
  `#line`/line-marker directives and no `#` in an object-like macro (they would disguise the
  candidate's own lines as a system header's in the preprocessed text); only optimisation pragmas;
  no inline assembly; no attribute that places code or runs it outside the calls.
- the preprocessed main file: the same token checks after macro expansion, so macro-built `__asm__`
  or attributes are seen; pragmas produced by `_Pragma` pass the same allowlist.
- the object, which is what gcc really produced whatever the text said (`readelf` symbols, sections and
  relocations, `objdump -d`): exactly one global definition, the entry point, as a function (so the
  candidate cannot replace `main`, `clock_gettime`, `omp_get_wtime` or the harness); no IFUNC symbol
  (its resolver runs at load time, before main); references only to an allowlist of memory, printing,
  math and OpenMP functions (no processes, files, network, dynamic loading, time, environment,
  threads or BLAS); relocation types from an allowlist (no IRELATIVE); no constructor sections (code
  run before main would run in the trusted monitor before it forks); code only in `.text*` sections,
  none writable; no system-call instruction, even one hidden inside another instruction's bytes.
The sandbox is the layer below all of these: a check that misses something still runs inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bencher.source import Directive, Token, Unlexable, lex, split_directives

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
ASM_KEYWORDS = frozenset({"asm", "__asm", "__asm__"})
# `__has_include("/etc/shadow")` in an #if tells whether a file exists; no kernel needs it.
FILE_PROBES = frozenset({"__has_include", "__has_include_next", "__has_embed"})
# GNU attributes that place code or data where the checks do not look, or run code outside the calls
# (target_clones builds an IFUNC; copy copies another declaration's attributes). A deny-list, because
# kernels use many harmless ones (aligned, always_inline, target, vector_size...); the object checks
# catch what an attribute missing here would produce.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "section", "alias", "ifunc", "target_clones", "constructor", "destructor", "naked", "symver",
        "weakref", "visibility", "copy", "interrupt",
    }
)  # fmt: skip
# `[[...]]` attributes: an allow-list of the standard ones. A namespace (`gnu::`, `__gnu__::`) is
# refused rather than parsed: GNU attributes have one spelling to check, `__attribute__((...))`.
STANDARD_ATTRIBUTES = frozenset(
    {"deprecated", "fallthrough", "maybe_unused", "nodiscard", "noreturn", "_Noreturn", "unsequenced", "reproducible"}
)
_HEADER = re.compile(r"[A-Za-z0-9_]+\.h")
# gcc's line marker in preprocessed output: `# 12 "file" 1 3` (flags: 1 enter, 2 return, 3 system, 4 extern C).
_LINE_MARKER = re.compile(r'# \d+ "((?:[^"\\]|\\.)*)"((?: [1-4])*)$')

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
_MATH_NAMES = """sqrt cbrt fabs fma fmin fmax fmod exp exp2 expm1 log log2 log10 log1p pow sin cos tan asin acos atan
    atan2 sinh cosh tanh floor ceil round trunc rint nearbyint lround copysign hypot ldexp frexp""".split()
# libm's functions in double and in float (`sqrtf`: conv2d's floats), and `sincos`/`sincosf`, which gcc emits
# by itself for sin(x) and cos(x) of one argument (a DFT's twiddles): refusing them refused honest code.
MATH_FUNCTIONS = frozenset([*_MATH_NAMES, *(f"{name}f" for name in _MATH_NAMES), "sincos", "sincosf"])
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
    """The candidate's file as written: its directives, then its tokens (macro bodies included)."""
    try:
        directives, code = split_directives(lex(source))
    except Unlexable as error:
        return str(error)
    checked = list(code)
    for directive in directives:
        reason = _check_directive(directive)
        if reason:
            return reason
        if directive.name not in ("pragma", "error", "warning"):  # their text is not code
            checked += directive.tokens
    return check_tokens(checked)


def _check_directive(directive: Directive) -> str | None:
    where = f"line {directive.hash.line}: "
    if not directive.tokens:
        return None  # the null directive: a lone `#`
    name = directive.name
    if directive.tokens[0].kind != "identifier" or name not in ALLOWED_DIRECTIVES:
        shown = name if directive.tokens[0].kind == "identifier" else f"{directive.text(0)[:20]} (a line marker)"
        allowed = ", ".join(sorted(ALLOWED_DIRECTIVES))
        return f"{where}preprocessor directive #{shown} is not allowed (allowed: {allowed})"
    if name == "include":
        # `<` name `.` `h` `>` written without spaces or comments inside: then gcc's header name is
        # exactly these characters. Nothing of the operand is echoed (it may name a host file).
        operand = directive.tokens[1:]
        header = "".join(t.text for t in operand)
        together = len(operand) == 5 and not any(t.space_before for t in operand[1:])
        if not (together and header[:1] == "<" and header[-1:] == ">" and header[1:-1] in ALLOWED_HEADERS):
            return (
                f"{where}this #include is not allowed: include standard headers by name only, as "
                f"#include <name.h> with one of {', '.join(sorted(ALLOWED_HEADERS))}"
            )
    if name == "pragma":
        return check_pragma(directive.text())
    if name == "define" and len(directive.tokens) > 1:
        macro = directive.tokens[1]
        after = directive.tokens[2] if len(directive.tokens) > 2 else None
        function_like = after is not None and after.text == "(" and not after.space_before
        # In a function-like macro `#` must stringize a parameter (gcc checks); in an object-like one
        # it is a plain token, and an expansion at the start of a line prints as `# 1 "file" 1 3`: a
        # line marker that gcc then obeys when it compiles its own preprocessed output.
        if not function_like and any(t.value in ("#", "##") for t in directive.tokens[2:]):
            return f"{where}macro {macro.text}: # and ## are not allowed in an object-like macro"
    return None


def check_pragma(text: str) -> str | None:
    if _ALLOWED_PRAGMA.match(text.strip()):
        return None
    return f"#pragma {text.strip()[:60]} is not allowed: only omp, unroll and GCC optimisation pragmas are"


def check_tokens(tokens: list[Token]) -> str | None:
    """No inline assembly, `_Pragma`, file probes or code-placing attributes, in either attribute syntax."""
    for k, token in enumerate(tokens):
        where = f"line {token.line}: "
        if token.kind == "identifier":
            if token.text in ASM_KEYWORDS:
                return f"{where}inline assembly ({token.text}) is not allowed"
            if token.text == "_Pragma":
                return f"{where}the _Pragma operator is not allowed: write the pragma as a #pragma line"
            if token.text in FILE_PROBES:
                return f"{where}{token.text} is not allowed (it probes the file system)"
            if token.text in ("__attribute__", "__attribute"):
                reason = _check_gnu_attribute(tokens, k)
                if reason:
                    return where + reason
        elif token.value == "[" and k + 1 < len(tokens) and tokens[k + 1].value == "[":
            reason = _check_standard_attribute(tokens, k)
            if reason:
                return where + reason
    return None


def _check_gnu_attribute(tokens: list[Token], at: int) -> str | None:
    """`__attribute__ ((list))`: every identifier inside the parentheses, arguments included, is
    checked (`__name__` counts as `name`), so spacing and nesting cannot hide one."""
    if at + 1 >= len(tokens) or tokens[at + 1].value != "(":
        return "__attribute__ must be followed by its parenthesised list (not built by a macro)"
    depth = 0
    for token in tokens[at + 1 :]:
        depth += {"(": 1, ")": -1}.get(token.value, 0)
        if token.kind == "identifier" and _attribute_name(token.text) in FORBIDDEN_ATTRIBUTES:
            return (
                f"__attribute__(({_attribute_name(token.text)})) is not allowed "
                "(it places or runs code outside the checks)"
            )
        if depth == 0:
            return None
    return "__attribute__ without its closing parenthesis"


def _check_standard_attribute(tokens: list[Token], at: int) -> str | None:
    """`[[name, name(args)]]` (or `<:<:...:>:>`): names only from STANDARD_ATTRIBUTES, no namespace."""
    depth = 0
    for k in range(at + 2, len(tokens)):
        token = tokens[k]
        if depth == 0 and token.value == "]" and k + 1 < len(tokens) and tokens[k + 1].value == "]":
            return None
        depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(token.value, 0)
        if depth:
            continue
        unknown = token.kind == "identifier" and _attribute_name(token.text) not in STANDARD_ATTRIBUTES
        if unknown or token.value in (":", "::"):
            return (
                f"the attribute [[{token.text}...]] is not allowed: in [[ ]] only "
                f"{', '.join(sorted(STANDARD_ATTRIBUTES))}; write GNU attributes as __attribute__((...))"
            )
    return "[[ without its closing ]]"


def _attribute_name(name: str) -> str:
    return name[2:-2] if len(name) > 4 and name.startswith("__") and name.endswith("__") else name


def check_preprocessed(text: str) -> str | None:
    """Check the lines of the preprocessed source that come from the candidate's own file.

    Line markers `# N "file" flags` say which file lines come from: flag 1 enters an include,
    flag 2 returns from one. A line is the candidate's when it is at depth 0 (whatever name the file
    claims) or when it claims the main file's name (whatever the flags say)."""
    depth, line_number = 0, 0
    main_name: str | None = None
    current = ""
    own: list[str] = []
    source_lines: list[int] = []
    """The line of the candidate's file that each line of `own` comes from, for the reasons given."""
    for line in text.splitlines():
        marker = _LINE_MARKER.match(line)
        if marker:
            current, flags = marker.group(1), marker.group(2).split()
            line_number = int(line.split()[1])
            main_name = current if main_name is None else main_name
            if "1" in flags:
                depth += 1
            elif "2" in flags:
                depth = max(0, depth - 1)
            continue
        if depth == 0 or current == main_name:
            own.append(line)
            source_lines.append(line_number)
        line_number += 1
    try:
        groups = lex("\n".join(own))
    except Unlexable as error:
        return f"after macro expansion: {error}"
    at_source = [[replace(t, line=source_lines[t.line - 1]) for t in group] for group in groups]
    directives, code = split_directives(at_source)
    for directive in directives:
        # gcc's output keeps only pragmas (and the line markers read above) as directives.
        if directive.name != "pragma":
            return (
                f"after macro expansion, line {directive.hash.line}: "
                f"a stray # ({directive.text(0)[:30]}) is not allowed"
            )
        reason = check_pragma(directive.text())
        if reason:
            return reason
    reason = check_tokens(code)
    return f"after macro expansion: {reason}" if reason else None


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
    ifuncs = sorted(s.name for s in symbols if s.kind == "IFUNC")
    if ifuncs:
        return (
            f"the object has IFUNC symbols ({', '.join(ifuncs[:10])}): their resolver runs at load time, "
            "before main (ifunc and target_clones are not allowed)"
        )
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


_SECTION_ROW = re.compile(r"^[ \t]*\[[ \t]*(\d+)\][ \t]+(\S+)(?:[ \t]+\S+){5}[ \t]+([A-Za-z]*)[ \t]", re.MULTILINE)
_SECTION_COUNT = re.compile(r"There are (\d+) section headers")
# gcc puts code in .text, .text.unlikely, .text.hot, .text.startup...; any other executable section
# was asked for (a section attribute, assembly) and is code the other checks may not look at.
_CODE_SECTION = re.compile(r"\.text(\.[\w.$]+)?")


def check_sections(readelf_sections: str, symbols: list[Symbol]) -> str | None:
    """`readelf -SW` output and the symbols: no sections whose code runs before or after main, code
    only in `.text*` sections and none writable, and no data objects in executable sections (machine
    code in a const array, called through a pointer)."""
    rows = _SECTION_ROW.findall(readelf_sections)
    declared = _SECTION_COUNT.search(readelf_sections)
    if not declared or int(declared.group(1)) != len(rows):
        return "the object's section table could not be read (a section name with spaces?)"
    executable = set()
    for index, name, flags in rows:
        if FORBIDDEN_SECTIONS.match(name):
            return f"the object has a {name} section (constructors/destructors are not allowed)"
        if "X" in flags:
            if "W" in flags:
                return f"section {name} is both writable and executable (self-modifying code is not allowed)"
            if not _CODE_SECTION.fullmatch(name):
                return f"the object has code in section {name}: only .text sections may be executable"
            executable.add(index)
    for symbol in symbols:
        if symbol.kind == "OBJECT" and symbol.section in executable:
            return f"data object {symbol.name} is placed in an executable section (machine code is not allowed)"
    return None


# What gcc -O3 -fopenmp emits for a relocatable x86-64 object, PIE or not, thread-local data included.
# Not IRELATIVE (an ifunc resolved at load time), nor the dynamic linker's own types (COPY, GLOB_DAT,
# JUMP_SLOT, RELATIVE), which have no business in an object file.
ALLOWED_RELOCATIONS = frozenset(
    {
        "R_X86_64_64", "R_X86_64_PC32", "R_X86_64_PLT32", "R_X86_64_32", "R_X86_64_32S", "R_X86_64_PC64",
        "R_X86_64_GOTPCREL", "R_X86_64_GOTPCRELX", "R_X86_64_REX_GOTPCRELX", "R_X86_64_GOTPC32",
        "R_X86_64_TPOFF32", "R_X86_64_GOTTPOFF", "R_X86_64_TLSGD", "R_X86_64_TLSLD", "R_X86_64_DTPOFF32",
    }
)  # fmt: skip
_RELOCATION_ROW = re.compile(r"^[0-9a-f]{8,16}[ \t]+[0-9a-f]{8,16}[ \t]+(\S+)", re.MULTILINE)
_RELOCATION_COUNT = re.compile(r"^Relocation section .* contains (\d+) entr", re.MULTILINE)


def check_relocations(readelf_relocations: str) -> str | None:
    """`readelf -rW` output: every relocation of a type from ALLOWED_RELOCATIONS."""
    types = _RELOCATION_ROW.findall(readelf_relocations)
    declared = sum(int(count) for count in _RELOCATION_COUNT.findall(readelf_relocations))
    if declared != len(types):
        return "the object's relocations could not be read"
    forbidden = sorted(set(types) - ALLOWED_RELOCATIONS)
    if forbidden:
        return f"the object has relocations of types that candidates may not use: {', '.join(forbidden[:5])}"
    return None


# System calls and software interrupts: a kernel has no use for them, and a system call needs no symbol,
# so only the instructions show it. `int3` and `into` too: no compiler-made code of ours contains them.
SYSTEM_CALL_MNEMONICS = frozenset({"syscall", "sysenter", "int", "int1", "int3", "into", "icebp"})
# The bytes of `syscall` (0f 05) and `sysenter` (0f 34) anywhere, even inside another instruction: a
# jump into the middle of `mov $0xc3050f, %eax` runs `syscall; ret`, which a listing never shows.
# (`int $0x80` is `cd 80`, too common a byte pair inside honest instructions to refuse: the sandbox's
# seccomp filter stands behind it.)
_HIDDEN_SYSTEM_CALLS = {b"\x0f\x05": "syscall", b"\x0f\x34": "sysenter"}
_DISASSEMBLED_SECTION = re.compile(r"^Disassembly of section (\S+):")
_INSTRUCTION = re.compile(r"^[ \t]*([0-9a-f]+):\t")
_BYTES = re.compile(r"(?:[0-9a-f]{2} ?)+")


def check_instructions(objdump_disassembly: str) -> str | None:
    """`objdump -d -w` output (`address:<tab>bytes<tab>instruction` rows): no system-call instruction,
    as listed or hidden in the bytes. A row that does not read as one is refused, not skipped."""
    section, code, end = "", bytearray(), -1
    for line in objdump_disassembly.splitlines():
        heading = _DISASSEMBLED_SECTION.match(line)
        if heading:
            reason = _hidden_system_call(section, code)
            if reason:
                return reason
            section, code, end = heading.group(1), bytearray(), -1
            continue
        row = _INSTRUCTION.match(line)
        if not row:
            continue  # headings, labels (`0000000000000000 <dgemm>:`), blank lines, `...` for zeros
        fields = line[row.end() :].split("\t", 1)
        raw, text = fields[0].strip(), fields[1] if len(fields) > 1 else ""
        if not _BYTES.fullmatch(raw):
            return f"the object's disassembly could not be read ({line.strip()[:60]!r})"
        # Every word: prefixes come first (`ds syscall`), and operands never spell a mnemonic.
        found = set(text.replace(",", " ").split()) & SYSTEM_CALL_MNEMONICS
        if found:
            shown = text.strip()[:40]
            return f"the object contains a system call instruction ({shown} in {section}); call functions instead"
        address = int(row.group(1), 16)
        if address != end:
            code += b"\0\0"  # not contiguous: no pair of bytes across the gap
        code += bytes.fromhex(raw.replace(" ", ""))
        end = address + len(raw.replace(" ", "")) // 2
    return _hidden_system_call(section, code)


def _hidden_system_call(section: str, code: bytearray) -> str | None:
    for pattern, name in _HIDDEN_SYSTEM_CALLS.items():
        if pattern in code:
            return (
                f"the bytes of a {name} instruction are inside the code of {section} "
                "(a jump into the middle of an instruction would run it)"
            )
    return None
