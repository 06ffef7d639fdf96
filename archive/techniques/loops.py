"""What a loop header says: its index, its step, its trip count, whether it walks records; and whether its body
is unrolled by hand.

A loop with a constant step s >= 2 is unrolled when its body uses the index at two or more constant offsets
in [0, s) (`a[k]`, `a[k + 1]`, ...): one vector per iteration, or one element every s, is not unrolling; nor
is a loop over records of s elements, whose offsets are a record's fields.
"""

from __future__ import annotations

import re

from archive.techniques.expressions import MAX_EXPRESSION_DEPTH
from archive.techniques.scope import FileScope
from archive.techniques.syntax import Node, field_of, first_named, operator_of, strip


def loop_control(
    scope: FileScope, initializer: Node | None, condition: Node | None, update: Node | None
) -> tuple[str | None, int | None, bool]:
    """(index variable, constant step or None, whether the loop has an update of its index)."""
    in_condition = {scope.text(n) for n in scope.budget.walk(condition)} if condition is not None else set()
    steps: list[tuple[str, int | None]] = []
    stack = [update] if update is not None else []
    while stack:
        node = stack.pop()
        if node.type in ("comma_expression", "parenthesized_expression"):
            stack.extend(reversed(node.named_children))
        elif node.type == "update_expression":
            argument = field_of(node, "argument")
            if argument is not None and argument.type == "identifier":
                steps.append((scope.text(argument), -1 if "--" in operator_of(node) else 1))
        elif node.type == "assignment_expression":
            left, right, operator = field_of(node, "left"), field_of(node, "right"), operator_of(node)
            if left is None or right is None or left.type != "identifier":
                continue
            name = scope.text(left)
            value: int | None = None
            if operator in ("+=", "-="):
                value = scope.constant(scope.text(right))
                value = -value if value is not None and operator == "-=" else value
            elif operator == "=":
                inner = strip(right)
                if inner.type == "binary_expression" and operator_of(inner) in ("+", "-"):
                    terms = [field_of(inner, "left"), field_of(inner, "right")]
                    if terms[0] is not None and scope.text(terms[0]) == name and terms[1] is not None:
                        value = scope.constant(scope.text(terms[1]))
                        value = -value if value is not None and operator_of(inner) == "-" else value
            steps.append((name, value))
    for name, value in steps:
        if name in in_condition:
            return name, value, True
    if steps:
        return steps[0][0], steps[0][1], True
    if initializer is not None:
        for node in scope.budget.walk(initializer, frozenset({"call_expression"})):
            if node.type == "init_declarator":
                return scope.text(field_of(node, "declarator")) or None, None, False
    return None, None, False


def trip_count(
    scope: FileScope, var: str | None, step: int | None, start: Node | None, condition: Node | None
) -> int | None:
    """The constant number of iterations (`r = 0; r < MR`, `r = i; r < i + 2`), or None."""
    if var is None or step is None or step <= 0 or start is None or condition is None:
        return None
    upper = _upper_bound(scope, var, condition)
    if upper is None:
        return None
    right, operator = upper
    low = scope.constant(scope.text(start))
    high = scope.constant(scope.text(right))
    bound = strip(right)
    if (low is None or high is None) and bound.type == "binary_expression" and operator_of(bound) == "+":
        # `r = i; r < i + 2`: a constant count from a variable start.
        base, extra = field_of(bound, "left"), field_of(bound, "right")
        if base is not None and extra is not None and scope.compact(base) == scope.compact(start):
            low, high = 0, scope.constant(scope.text(extra))
    if low is None or high is None:
        return None
    high += 1 if operator == "<=" else 0
    return max(0, -(-(high - low) // step))


def walks_records(scope: FileScope, var: str | None, step: int | None, condition: Node | None) -> bool:
    """Whether the loop walks records of `step` elements (`i < 3 * n; i += 3` over interleaved x, y, z): its
    bound is the step times a count. A bound rounded down to a multiple of the step (`n / 4 * 4`) is not."""
    if var is None or step is None or step < 2 or condition is None:
        return False
    upper = _upper_bound(scope, var, condition)
    bound = strip(upper[0]) if upper is not None else None
    if bound is None or bound.type != "binary_expression" or operator_of(bound) != "*":
        return False
    factors = (field_of(bound, "left"), field_of(bound, "right"))
    for size, count in (factors, factors[::-1]):
        if size is not None and count is not None and scope.constant(scope.text(size)) == step:
            count = strip(count)
            return not (count.type == "binary_expression" and operator_of(count) in ("/", ">>"))
    return False


def _upper_bound(scope: FileScope, var: str, condition: Node) -> tuple[Node, str] | None:
    """(B, operator) for a condition `var < B`, `var <= B` or `var != B` (or `B > var`, `B >= var`)."""
    condition = strip(condition)
    if condition.type != "binary_expression":
        return None
    left, right, operator = field_of(condition, "left"), field_of(condition, "right"), operator_of(condition)
    if left is None or right is None:
        return None
    if scope.text(right) == var and operator in (">", ">="):
        left, right, operator = right, left, "<" if operator == ">" else "<="
    if scope.text(left) != var or operator not in ("<", "<=", "!="):
        return None
    return right, operator


def is_unrolled(scope: FileScope, body: Node, var: str, step: int) -> bool:
    """Whether the body uses `var` at two or more constant offsets in [0, step)."""
    offsets: set[int] = set()
    pattern = re.compile(rb"\b" + re.escape(var.encode()) + rb"\b")
    scope.budget.tick((body.end_byte - body.start_byte) // 64)
    for match in pattern.finditer(scope.source, body.start_byte, body.end_byte):
        scope.budget.tick()
        node = body.descendant_for_byte_range(match.start(), match.end())
        if node is not None and node.type == "identifier" and node.end_byte == match.end():
            offset = _offset(scope, node)
            if offset is not None and 0 <= offset < step:
                offsets.add(offset)
                if len(offsets) >= 2:
                    return True
    return False


def _offset(scope: FileScope, node: Node) -> int | None:
    """The constant added to `node` in the sum it is a term of (`k + 1` -> 1, `j + k + 2` -> 2)."""
    top = node
    for _ in range(MAX_EXPRESSION_DEPTH):
        parent = top.parent
        if parent is None or not (
            parent.type == "parenthesized_expression"
            or (parent.type == "binary_expression" and operator_of(parent) in ("+", "-"))
        ):
            break
        top = parent
    offset, sign_of_node = 0, 0
    stack: list[tuple[Node, int]] = [(top, 1)]
    while stack:
        current, sign = stack.pop()
        scope.budget.tick()
        if current.type == "parenthesized_expression" and (inside := first_named(current)) is not None:
            stack.append((inside, sign))
        elif current.type == "binary_expression" and operator_of(current) in ("+", "-"):
            left, right = field_of(current, "left"), field_of(current, "right")
            if left is not None:
                stack.append((left, sign))
            if right is not None:
                stack.append((right, -sign if operator_of(current) == "-" else sign))
        elif current.id == node.id:
            sign_of_node = sign
        else:
            value = scope.constant(scope.text(current)) if current.type in ("number_literal", "identifier") else None
            offset += sign * value if value is not None else 0
    return offset if sign_of_node == 1 else None
