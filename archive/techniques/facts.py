"""What the walk from the entry points collects: loops, multiply-accumulates, copies and computations.

The walk (walk.py) records these facts; the label rules (labels.py) read nothing else of the code. Where a
value or an address comes from is an `Origins` set of tokens:

- `L<id>`: loop `id`'s index;
- `S<id>`: loop `id`'s index times something other than 1 (a stride: `k * n`, the row of `B[k][j]`);
- `N<id>`: a min-like expression of loop `id`'s index (`min(i0 + BS, n)`, `?:`): a tile's edge;
- `in:<name>` / `out:<name>`: a `const` / non-`const` pointer parameter of an entry point;
- `m:<instance>:<name>`, `m:g:<name>`, `m:alloc:<node id>`: other memory: a local or global pointer or
  array, an allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from archive.techniques.syntax import Node

REGISTER_LOOP_MAX_TRIPS: Final = 16
"""A loop with a constant trip count up to this is fully unrolled by the compiler: a register loop."""

Origins = frozenset[str]
NO_ORIGINS: Final[Origins] = frozenset()


@dataclass(eq=False)
class Loop:
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
    enclosing: tuple[Loop, ...]
    walks_records: bool = False
    """The loop steps over records of `step` elements (`i < 3 * n; i += 3`): not unrolled, not a block."""

    @property
    def token(self) -> str:
        return f"L{self.id}"

    @property
    def is_register_loop(self) -> bool:
        return self.trips is not None and self.trips <= REGISTER_LOOP_MAX_TRIPS


@dataclass(eq=False)
class MultiplyAccumulate:
    loops: tuple[Loop, ...]
    destination: Origins
    accumulator: str | None
    """`instance:text` of a register accumulator's destination; None for memory."""
    operands: list[tuple[str, Origins]]


@dataclass(eq=False)
class Copy:
    loops: tuple[Loop, ...]
    destination: Origins
    source: Origins


@dataclass(eq=False)
class Instance:
    """One walk of one function body: an entry point, or a helper inlined at one call site."""

    id: int
    names: tuple[str, ...]
    """The functions being inlined down to this one (outermost first): no recursion."""
    env: dict[str, Origins] = field(default_factory=dict)
    kinds: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    """Local name -> (`int`, `float`, `pointer` or `array`, element count of an array if constant)."""
    products: dict[str, list[tuple[Node, Node]]] = field(default_factory=dict)
    """Local name -> the multiplications its value was computed with (`t = a * b; c += t`)."""


@dataclass
class Facts:
    """Everything the walk found in the code reachable from the entry points."""

    labels: set[str] = field(default_factory=set)
    """Labels read straight off the code (an intrinsic, a vector type, a prefetch, a manually unrolled loop)."""
    loops: list[Loop] = field(default_factory=list)
    """Every loop walked, in the order met; a helper's loops once per inlined call."""
    accumulations: list[MultiplyAccumulate] = field(default_factory=list)
    copies: list[Copy] = field(default_factory=list)
    """Copies from an input into a buffer."""
    computations: list[tuple[tuple[Loop, ...], Origins]] = field(default_factory=list)
    """The loops around each multiply-accumulate and store to an output, and what its value reads."""
    reached: set[int] = field(default_factory=set)
    """Function definitions (node ids) walked at least once: pragmas in the others do not count."""
