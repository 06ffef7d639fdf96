"""C integer constant expressions: `#define BS 64`, `enum { MR = 6 }`, `const int KC = 4 * BS` and a loop's step.

Macros are not expanded (tree-sitter does not preprocess), so a step, bound or offset written with a name is
read by evaluating its text against the constants the file has declared so far.
"""

from __future__ import annotations

import re
from typing import Final

_CONST_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*|([A-Za-z_]\w*)|(<<|>>|[-+*/%()~]))")
_MAX_CONST: Final = 1 << 62


class _ConstantParser:
    """Evaluates a C integer constant expression (literals, known names, + - * / % << >> ~, parentheses)."""

    def __init__(self, text: str, constants: dict[str, int]) -> None:
        self.tokens: list[str | int] = []
        self.position = 0
        self.ok = len(text) <= 200
        index = 0
        while self.ok and index < len(text):
            match = _CONST_TOKEN.match(text, index)
            if match is None:
                if text[index:].strip():
                    self.ok = False
                break
            number, name, operator = match.groups()
            if number is not None:
                octal = len(number) > 1 and number[0] == "0" and number.isdigit()
                if octal and not set(number) <= set("01234567"):
                    self.ok = False  # `08` is not a C constant
                    break
                self.tokens.append(int(number, 8) if octal else int(number, 0))
            elif name is not None:
                if name not in constants:
                    self.ok = False
                else:
                    self.tokens.append(constants[name])
            else:
                self.tokens.append(operator)
            index = match.end()

    def value(self) -> int | None:
        if not self.ok or not self.tokens:
            return None
        result = self._binary(0, 0)
        if result is None or self.position != len(self.tokens) or abs(result) > _MAX_CONST:
            return None
        return result

    _PRECEDENCE: Final = {"<<": 1, ">>": 1, "+": 2, "-": 2, "*": 3, "/": 3, "%": 3}

    def _binary(self, minimum: int, depth: int) -> int | None:
        left = self._unary(depth)
        while left is not None and self.position < len(self.tokens):
            operator = self.tokens[self.position]
            precedence = self._PRECEDENCE.get(operator) if isinstance(operator, str) else None
            if precedence is None or precedence <= minimum:
                break
            self.position += 1
            right = self._binary(precedence, depth + 1)
            if right is None or abs(left) > _MAX_CONST or abs(right) > _MAX_CONST:
                return None
            if operator == "+":
                left += right
            elif operator == "-":
                left -= right
            elif operator == "*":
                left *= right
            elif operator in ("/", "%"):
                if right == 0:
                    return None
                quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
                left = quotient if operator == "/" else left - quotient * right
            elif 0 <= right <= 62:
                left = left << right if operator == "<<" else left >> right
            else:
                return None
        return left

    def _unary(self, depth: int) -> int | None:
        if depth > 32 or self.position >= len(self.tokens):
            return None
        token = self.tokens[self.position]
        self.position += 1
        if isinstance(token, int):
            return token
        if token in ("-", "+", "~"):
            operand = self._unary(depth + 1)
            if operand is None:
                return None
            return -operand if token == "-" else ~operand if token == "~" else operand
        if token == "(":
            inner = self._binary(0, depth + 1)
            if inner is None or self.position >= len(self.tokens) or self.tokens[self.position] != ")":
                return None
            self.position += 1
            return inner
        return None


def constant(text: str, constants: dict[str, int]) -> int | None:
    """The value of `text` as a C integer constant expression, or None if it is not one (or too large)."""
    return _ConstantParser(text, constants).value()
