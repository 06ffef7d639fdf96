"""What an expression reads: the origins its value depends on, and the multiplications it is computed with.

Variables are followed by name and flow-insensitively: a name's origins are everything ever assigned to it
in its function body (or, for a global, anywhere), so `i1 = min(i0 + BS, n)` depends on `i0`'s loop.
"""

from __future__ import annotations

import re
from typing import Final

from archive.techniques.facts import NO_ORIGINS, Instance, Loop, Origins
from archive.techniques.scope import FileScope
from archive.techniques.syntax import Node, field_of, last_named, operator_of

MAX_EXPRESSION_DEPTH: Final = 100
"""Deeper expression subtrees are not looked into (they add no dependencies)."""

_ALLOCATION_CALLS: Final = frozenset(
    {"malloc", "calloc", "realloc", "aligned_alloc", "_mm_malloc", "alloca", "__builtin_alloca", "memalign", "valloc"}
)
_MULTIPLY_CALL = re.compile(r"mul|fma|fnma|fms", re.I)
_FMA_CALL = re.compile(r"fma|fnma|fms", re.I)
_ARITHMETIC_CALL = re.compile(r"add|sub|mul|fma|fnma|fms", re.I)


def variable_origins(scope: FileScope, name: str, instance: Instance, loops: tuple[Loop, ...]) -> Origins:
    """A variable's origins: a loop index's own token and start, a local's or a global's assignments."""
    if name in scope.constants and name not in instance.kinds:
        return NO_ORIGINS
    for loop in reversed(loops):
        if loop.instance == instance.id and loop.var == name:
            return loop.start | {loop.token}
    if name in instance.kinds or name in instance.env:
        return instance.env.get(name, NO_ORIGINS)
    return scope.globals.get(name, NO_ORIGINS)


def origins_of(
    scope: FileScope, node: Node | None, instance: Instance | None, loops: tuple[Loop, ...], depth: int = 0
) -> Origins:
    """What an expression's value depends on: loops (`L`), strided loops (`S`), tile bounds (`N`), memory."""
    if node is None or instance is None or depth > MAX_EXPRESSION_DEPTH:
        return NO_ORIGINS
    scope.budget.tick()
    kind = node.type
    if kind == "identifier":
        return variable_origins(scope, scope.text(node), instance, loops)
    if kind in ("number_literal", "string_literal", "char_literal", "sizeof_expression", "true", "false", "null"):
        return NO_ORIGINS
    if kind == "binary_expression":
        left, right = field_of(node, "left"), field_of(node, "right")
        a = origins_of(scope, left, instance, loops, depth + 1)
        b = origins_of(scope, right, instance, loops, depth + 1)
        operator = operator_of(node)
        if operator in ("*", "<<"):
            a_strided = _strides(a) if right is not None and not _is_unit(scope, right, operator) else NO_ORIGINS
            b_strided = (
                _strides(b) if operator == "*" and left is not None and not _is_unit(scope, left, "*") else NO_ORIGINS
            )
            return a | b | a_strided | b_strided
        return a | b
    if kind == "subscript_expression":
        argument = field_of(node, "argument")
        result = origins_of(scope, argument, instance, loops, depth + 1) | origins_of(
            scope, field_of(node, "index"), instance, loops, depth + 1
        )
        if argument is not None and argument.type == "subscript_expression":
            result |= _strides(origins_of(scope, field_of(argument, "index"), instance, loops, depth + 1))
        return result
    if kind == "call_expression":
        name = scope.text(field_of(node, "function"))
        if name in _ALLOCATION_CALLS:
            return frozenset({f"m:alloc:{node.id}"})
        arguments = field_of(node, "arguments")
        result = NO_ORIGINS
        for argument in arguments.named_children if arguments is not None else []:
            result |= origins_of(scope, argument, instance, loops, depth + 1)
        return _tile_bounds(result) if "min" in name.lower() else result
    if kind == "conditional_expression":
        result = NO_ORIGINS
        for child in node.named_children:
            result |= origins_of(scope, child, instance, loops, depth + 1)
        return _tile_bounds(result)
    if kind == "field_expression":
        return origins_of(scope, field_of(node, "argument"), instance, loops, depth + 1)
    if kind == "cast_expression":
        return origins_of(scope, field_of(node, "value"), instance, loops, depth + 1)
    if kind == "assignment_expression":
        return origins_of(scope, field_of(node, "right"), instance, loops, depth + 1)
    result = NO_ORIGINS
    for child in node.named_children:
        result |= origins_of(scope, child, instance, loops, depth + 1)
    return result


def address_of(scope: FileScope, target: Node, instance: Instance, loops: tuple[Loop, ...]) -> Origins:
    """What the location an assignment writes depends on: nothing for a scalar variable, which is one place."""
    if target.type == "identifier":
        return NO_ORIGINS
    return origins_of(scope, target, instance, loops)


def _is_unit(scope: FileScope, node: Node, operator: str) -> bool:
    value = scope.constant(scope.text(node))
    return value is not None and (value in (1, -1) if operator == "*" else value == 0)


def _strides(found: Origins) -> Origins:
    return frozenset("S" + t[1:] for t in found if t[0] == "L")


def _tile_bounds(found: Origins) -> Origins:
    return found | frozenset("N" + t[1:] for t in found if t[0] == "L")


def products_in(scope: FileScope, expression: Node, instance: Instance) -> list[tuple[Node, Node]]:
    """The multiplications in an expression, as operand pairs (`a * b`, `fma(a, b, c)`, `_mm_mul_pd(a, b)`)."""
    found: list[tuple[Node, Node]] = []
    stack = [(expression, 0)]
    while stack:
        node, depth = stack.pop()
        scope.budget.tick()
        if depth > MAX_EXPRESSION_DEPTH:
            continue
        kind = node.type
        if kind == "binary_expression":
            left, right = field_of(node, "left"), field_of(node, "right")
            if left is not None and right is not None:
                if operator_of(node) == "*":
                    found.append((left, right))
                stack.extend([(left, depth + 1), (right, depth + 1)])
        elif kind == "call_expression":
            name = scope.text(field_of(node, "function"))
            arguments = field_of(node, "arguments")
            arguments_list = arguments.named_children if arguments is not None else []
            if _MULTIPLY_CALL.search(name) and len(arguments_list) >= 2:
                found.append((arguments_list[0], arguments_list[1]))
            if _ARITHMETIC_CALL.search(name):
                start = 2 if _FMA_CALL.search(name) else 0
                stack.extend((argument, depth + 1) for argument in arguments_list[start:])
        elif kind in ("parenthesized_expression", "cast_expression", "unary_expression"):
            inner = field_of(node, "value") if kind == "cast_expression" else last_named(node)
            if inner is not None:
                stack.append((inner, depth + 1))
        elif kind == "identifier" and depth > 0:
            found.extend(instance.products.get(scope.text(node), []))
    return found


def products_of_term(scope: FileScope, right: Node, instance: Instance) -> list[tuple[Node, Node]]:
    """`X += E`: the multiplications in E, or E itself when it names a product (`c += t` after `t = a * b`)."""
    found = products_in(scope, right, instance)
    if not found and right.type == "identifier":
        found = instance.products.get(scope.text(right), [])
    return found
