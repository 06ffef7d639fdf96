"""The label rules: the facts of the walk, the file's pragmas and declarations -> the ten labels.

Each label is defined in the package docstring (archive/techniques/__init__.py); a rule here implements
one definition over the facts (facts.py) and reads nothing of the code itself.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

from archive.techniques.facts import REGISTER_LOOP_MAX_TRIPS, Copy, Facts, Loop, MultiplyAccumulate, Origins
from archive.techniques.lexical import Pragma
from archive.techniques.scope import FileScope

REGISTER_TILE_MAX_TRIPS: Final = 8
"""A point loop with a constant trip count up to this (`r = i; r < i + 4`) is a register tile, not tiling."""

_PARENS = re.compile(r"\([^()]*\)")
_OPENMP_WORK: Final = frozenset(
    {"parallel", "for", "do", "sections", "single", "task", "taskloop", "teams", "distribute", "loop", "target"}
    | {"workshare"}
)


def labels(scope: FileScope, facts: Facts, pragmas: list[Pragma]) -> frozenset[str]:
    """The ten labels' rules over what the walk found, the file's declarations and its pragmas."""
    found = set(facts.labels)
    found.update(_pragma_labels(scope, facts, pragmas))
    if _loop_order(facts):
        found.add("loop_order")
    if _tiling(facts):
        found.add("tiling")
    if _register_blocking(facts):
        found.add("register_blocking")
    found.update(_copy_labels(facts))
    return frozenset(found)


def _pragma_labels(scope: FileScope, facts: Facts, pragmas: list[Pragma]) -> set[str]:
    """The labels of the pragmas at file scope or in a reached function, outside `#if 0`."""
    found: set[str] = set()
    # Function definitions do not overlap, so the one a pragma is in is the last starting before it.
    functions = sorted((d.start_byte, d.end_byte, d.id) for ds in scope.functions.values() for d in ds)
    starts = [start for start, _, _ in functions]
    dead = _merge(scope.dead_spans)
    dead_starts = [start for start, _ in dead]
    for pragma in pragmas:
        index = bisect.bisect_right(dead_starts, pragma.offset) - 1
        if index >= 0 and pragma.offset < dead[index][1]:
            continue
        index = bisect.bisect_right(starts, pragma.offset) - 1
        if index >= 0 and pragma.offset < functions[index][1] and functions[index][2] not in facts.reached:
            continue
        found.update(_pragma_label(pragma.words, scope))
    return found


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans covering the same bytes."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _pragma_label(words: tuple[str, ...], scope: FileScope) -> set[str]:
    """`unrolling`, `simd_pragma` and `openmp` from one pragma's words."""
    if not words:
        return set()
    first = words[0].lower()
    text = " ".join(words)
    lower = text.lower()
    if first == "omp":
        directive = set(_PARENS.sub(" ", " ".join(words[1:])).replace(",", " ").split())
        found = {"simd_pragma"} if "simd" in directive else set()
        if words[1:2] != ("declare",) and directive & _OPENMP_WORK:
            found.add("openmp")
        return found
    if first == "gcc" and len(words) >= 2:
        second = words[1].lower()
        if second == "ivdep":
            return {"simd_pragma"}
        if second == "unroll":
            count = scope.constant(" ".join(words[2:]))
            return {"unrolling"} if count is None or count >= 2 else set()
        if second == "optimize" and "unroll-loops" in lower:
            return {"unrolling"}
        return set()
    if first in ("ivdep", "vector", "simd"):
        return {"simd_pragma"}
    if first == "unroll" or lower.startswith("unroll("):
        argument = lower.removeprefix("unroll").strip().strip("()")
        count = scope.constant(argument) if argument else None
        return {"unrolling"} if count is None or count >= 2 else set()
    if first == "clang" and "loop" in lower:
        found = set()
        if "vectorize(enable" in lower.replace(" ", "") or "vectorize_width" in lower:
            found.add("simd_pragma")
        if re.search(r"unroll(?:_count)?\s*\(\s*(?:enable|full|[2-9]|\d\d)", lower):
            found.add("unrolling")
        return found
    return set()


def _reduction_loop(loops: tuple[Loop, ...]) -> tuple[Loop | None, tuple[Loop, ...]]:
    """The innermost loop that is not a register loop, and the register loops inside it."""
    for index in range(len(loops) - 1, -1, -1):
        if not loops[index].is_register_loop:
            return loops[index], loops[index + 1 :]
    return None, loops


def _loop_order(facts: Facts) -> bool:
    """Some multiply-accumulate's innermost (non-register) loop moves its destination, inside a reduction loop."""
    for accumulation in facts.accumulations:
        loop, _ = _reduction_loop(accumulation.loops)
        if loop is None or loop.var is None or loop.token not in accumulation.destination:
            continue
        # An elementwise update (`C[t] += x * y[t]`) has no reduction at all: one must enclose it. A register
        # loop around the sweep is a level of the order too (only inside the reduction loop is one unrolled into
        # registers): a convolution's 5 x 5 taps outside its row sweep are the reduction moved out.
        if any(outer.var is not None and outer.token not in accumulation.destination for outer in loop.enclosing):
            return True
    return False


def _tiling(facts: Facts) -> bool:
    """A loop whose range is a tile of a stepping loop at least two levels out."""
    for inner in facts.loops:
        if inner.trips is not None and inner.trips <= REGISTER_TILE_MAX_TRIPS:
            continue
        for tile in inner.enclosing[:-1]:
            if not tile.has_step or (tile.step is not None and abs(tile.step) < 2):
                continue
            if (tile.token in inner.start and tile.token in inner.bound) or f"N{tile.id}" in inner.bound:
                return True
    return False


def _register_blocking(facts: Facts) -> bool:
    """Two or more register accumulators in one reduction loop, sharing a loaded value, for a block of outputs."""
    groups: dict[int, tuple[Loop, list[tuple[MultiplyAccumulate, tuple[Loop, ...]]]]] = {}
    for accumulation in facts.accumulations:
        if accumulation.accumulator is None:
            continue
        loop, registers = _reduction_loop(accumulation.loops)
        if loop is not None:
            groups.setdefault(loop.id, (loop, []))[1].append((accumulation, registers))
    for loop, group in groups.values():
        # A block holds the outputs of several iterations: of a loop around the reduction that steps over the
        # block (`i += 4`, not a walk over records `i += 3` of x, y, z), or of register loops inside it
        # (`c[r][q]`). Without one, the accumulators are parts of one output (the x, y and z of a force, the real
        # and imaginary sums of a DFT term), however much they share.
        block = any(
            outer.step is not None and 2 <= abs(outer.step) <= REGISTER_LOOP_MAX_TRIPS and not outer.walks_records
            for outer in loop.enclosing
        )
        count, seen, reuse = 0, set(), False
        users: dict[str, set[str]] = {}
        for accumulation, registers in group:
            varying = [r for r in registers if r.token in accumulation.destination and (r.trips or 0) >= 2]
            block = block or bool(varying)
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
        if count >= 2 and block and (reuse or any(len(keys) >= 2 for keys in users.values())):
            return True
    return False


def _copy_labels(facts: Facts) -> set[str]:
    """`transpose` and `packing`: what the copies into buffers do, and whether the computation reads them."""
    found: set[str] = set()
    computing = {loop.id for loops, _ in facts.computations for loop in loops}
    computing.update(loop.id for a in facts.accumulations for loop in a.loops)
    read = set().union(*(origins for _, origins in facts.computations)) if facts.computations else set()
    read.update(*(origins for a in facts.accumulations for _, origins in a.operands))
    for copy in facts.copies:
        if _transposes(copy):
            found.add("transpose")
        own = [loop for loop in copy.loops if loop.id not in computing]
        gathers = any(f"S{loop.id}" in copy.source for loop in own)
        blocked = len(own) < len(copy.loops) or any(
            not loop.has_step or loop.step is None or abs(loop.step) >= 2 for loop in own if loop.var is not None
        )
        feeds = any(token.startswith("m:") and token in read for token in copy.destination)
        if gathers and blocked and feeds:
            found.add("packing")
    return found


def _transposes(copy: Copy) -> bool:
    """The copy's destination and source swap a unit-step loop and a strided loop."""

    def unit(origins: Origins, loop: Loop) -> bool:
        return loop.token in origins and f"S{loop.id}" not in origins

    def strided(origins: Origins, loop: Loop) -> bool:
        return f"S{loop.id}" in origins

    return any(
        unit(copy.destination, u) and strided(copy.source, u) and strided(copy.destination, v) and unit(copy.source, v)
        for u in copy.loops
        for v in copy.loops
        if u is not v
    )
