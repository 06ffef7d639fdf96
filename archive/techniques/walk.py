"""The walk from the entry points: every statement of every function body they reach, recording facts.

Calls to the file's own helpers are inlined: the helper's body is walked where it is called, inside the
caller's loops, with its parameters bound to the arguments' origins, so a loop in `kernel_6x8` nests inside
the loops of `dgemm` that call it. A body walked again for another call is another `Instance`.
"""

from __future__ import annotations

import bisect
from typing import Final

from archive.techniques.expressions import address_of, origins_of, products_in, products_of_term, variable_origins
from archive.techniques.facts import NO_ORIGINS, Copy, Facts, Instance, Loop, MultiplyAccumulate, Origins
from archive.techniques.loops import is_unrolled, loop_control, trip_count, walks_records
from archive.techniques.scope import PREFETCH_CALLS, FileScope, is_vector_intrinsic
from archive.techniques.syntax import Node, TooComplex, field_of, first_named, operator_of, strip

MAX_INLINE_DEPTH: Final = 6
"""How deep calls to the file's own helpers are followed."""
MAX_INSTANCES: Final = 256
"""How many function bodies (entry points plus inlined helper calls) one analysis walks."""
MAX_LOOP_DEPTH: Final = 64
"""Loops nested deeper than this (counting inlined helpers) are not analysed."""
REGISTER_ARRAY_MAX_ELEMENTS: Final = 256
"""A local array up to this many elements can be an array of register accumulators."""

_COPY_CALLS: Final = frozenset({"memcpy", "memmove", "__builtin_memcpy", "__builtin_memmove"})
_BLOCKS: Final = frozenset(
    {
        "compound_statement",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "labeled_statement",
        "case_statement",
        "else_clause",
    }
)


def walk(scope: FileScope) -> Facts:
    """The facts of the code reachable from the entry points."""
    walker = _Walker(scope)
    for entry in scope.entries:
        walker.instantiate(entry, None, (), (scope.function_name(entry),))
    return walker.facts


class _Walker:
    """The facts recorded so far, and the bounds on how much more may be walked."""

    def __init__(self, scope: FileScope) -> None:
        self.scope = scope
        self.facts = Facts()
        self.instances = 0
        """Function bodies walked so far, up to `MAX_INSTANCES`."""
        self.unroll_checked: set[int] = set()
        """Loops (node ids) already looked at for manual unrolling: a helper's loop once, however often inlined."""

    def instantiate(
        self,
        definition: Node,
        arguments: list[Origins] | None,
        loops: tuple[Loop, ...],
        names: tuple[str, ...],
    ) -> None:
        """Walk a function body inside `loops`: an entry point (no `arguments`: its pointer parameters are the
        inputs and outputs) or a helper, its parameters bound to the origins of the call's arguments."""
        body = field_of(definition, "body")
        if body is None or self.instances >= MAX_INSTANCES:
            return
        self.instances += 1
        instance = Instance(self.instances, names)
        self.facts.reached.add(definition.id)
        declarator = self.scope.function_declarator(definition)
        parameters = field_of(declarator, "parameters") if declarator is not None else None
        declarations = [p for p in parameters.named_children if p.type == "parameter_declaration"] if parameters else []
        for index, parameter in enumerate(declarations):
            inner = field_of(parameter, "declarator")
            if inner is None:
                continue
            name, kind, elements = self.scope.declared_name(inner, self.scope.base_kind(field_of(parameter, "type")))
            if not name:
                continue
            if kind == "array":
                kind, elements = "pointer", None
            instance.kinds[name] = (kind, elements)
            self._vector_use(field_of(parameter, "type"))
            if arguments is not None:
                instance.env[name] = arguments[index] if index < len(arguments) else NO_ORIGINS
            elif kind == "pointer":
                instance.env[name] = frozenset({("in:" if self.scope.is_const(parameter) else "out:") + name})
        self._statements(body, instance, loops)

    def _statements(self, body: Node, instance: Instance, loops: tuple[Loop, ...]) -> None:
        work: list[tuple[Node, Instance, tuple[Loop, ...]]] = [(body, instance, loops)]
        while work:
            node, instance, loops = work.pop()
            self.scope.budget.tick()
            kind = node.type
            pending: list[tuple[Node, Instance, tuple[Loop, ...]]] = []
            if kind in _BLOCKS or (kind == "preproc_if" and not self.scope.is_if_zero(node)):
                pending = [(child, instance, loops) for child in node.named_children]
            elif kind == "preproc_if":
                alternative = field_of(node, "alternative")
                pending = [(alternative, instance, loops)] if alternative is not None else []
            elif kind == "for_statement":
                loop = self._for_loop(node, instance, loops)
                inner = field_of(node, "body")
                if inner is not None:
                    pending = [(inner, instance, (*loops, loop))]
            elif kind in ("while_statement", "do_statement"):
                condition = field_of(node, "condition")
                loop = self._loop(None, None, False, None, NO_ORIGINS, NO_ORIGINS, instance, loops)
                if condition is not None:
                    self._expression(condition, instance, (*loops, loop))
                inner = field_of(node, "body")
                if inner is not None:
                    pending = [(inner, instance, (*loops, loop))]
            elif kind in ("if_statement", "switch_statement"):
                condition = field_of(node, "condition")
                if condition is not None:
                    self._expression(condition, instance, loops)
                pending = [
                    (child, instance, loops)
                    for name in ("consequence", "alternative", "body")
                    if (child := field_of(node, name)) is not None
                ]
            elif kind in ("expression_statement", "return_statement"):
                expression = first_named(node)
                if expression is not None:
                    self._expression(expression, instance, loops)
            elif kind == "declaration":
                if (type_node := field_of(node, "type")) is not None and type_node.type == "enum_specifier":
                    self.scope.enumerators(node)
                self._declaration(node, instance, loops)
            elif kind == "preproc_def":
                self.scope.define(node)
            elif kind == "type_definition":
                self.scope.type_definition(node)
            work.extend(reversed(pending))

    # -- loops --

    def _loop(
        self,
        var: str | None,
        step: int | None,
        has_step: bool,
        trips: int | None,
        start: Origins,
        bound: Origins,
        instance: Instance,
        loops: tuple[Loop, ...],
    ) -> Loop:
        if len(loops) >= MAX_LOOP_DEPTH:
            raise TooComplex(f"loops nested deeper than {MAX_LOOP_DEPTH}")
        loop = Loop(len(self.facts.loops) + 1, var, step, has_step, trips, start, bound, instance.id, loops)
        self.facts.loops.append(loop)
        return loop

    def _for_loop(
        self,
        node: Node,
        instance: Instance,
        loops: tuple[Loop, ...],
    ) -> Loop:
        initializer, condition, update = (field_of(node, name) for name in ("initializer", "condition", "update"))
        start_value: Node | None = None
        if initializer is not None:
            if initializer.type == "declaration":
                self._declaration(initializer, instance, loops)
            else:
                self._expression(initializer, instance, loops)
        var, step, has_step = loop_control(self.scope, initializer, condition, update)
        if initializer is not None and var is not None:
            for candidate in self.scope.budget.walk(initializer, frozenset({"call_expression"})):
                if candidate.type == "init_declarator" and self.scope.text(field_of(candidate, "declarator")) == var:
                    start_value = field_of(candidate, "value")
                elif candidate.type == "assignment_expression" and self.scope.text(field_of(candidate, "left")) == var:
                    start_value = field_of(candidate, "right")
        if start_value is not None:
            start = origins_of(self.scope, start_value, instance, loops)
        elif var is not None:
            start = variable_origins(self.scope, var, instance, loops)
        else:
            start = NO_ORIGINS
        loop = self._loop(var, step, has_step, None, start, NO_ORIGINS, instance, loops)
        inside = (*loops, loop)
        if condition is not None:
            loop.bound = origins_of(self.scope, condition, instance, inside)
            self._expression(condition, instance, inside)
        if update is not None:
            self._expression(update, instance, inside)
        loop.trips = trip_count(self.scope, var, step, start_value, condition)
        loop.walks_records = walks_records(self.scope, var, step, condition)
        if (
            step is not None
            and step >= 2
            and not loop.walks_records
            and node.id not in self.unroll_checked
            and (body := field_of(node, "body")) is not None
        ):
            self.unroll_checked.add(node.id)
            if var is not None and is_unrolled(self.scope, body, var, step):
                self.facts.labels.add("unrolling")
        return loop

    # -- declarations, assignments and calls --

    def _declaration(self, node: Node, instance: Instance, loops: tuple[Loop, ...]) -> None:
        self._vector_use(field_of(node, "type"))
        if self.scope.has_vector_attribute(node):
            self.facts.labels.add("simd_intrinsics")
        for name, kind, elements, value in self.scope.declarators(node):
            origins = origins_of(self.scope, value, instance, loops) if value is not None else NO_ORIGINS
            if kind in ("pointer", "array"):
                origins |= {f"m:{instance.id}:{name}"}
            if value is not None and value.type != "initializer_list":
                products = products_in(self.scope, value, instance)
                if products:
                    instance.products[name] = products
            instance.env[name] = instance.env.get(name, NO_ORIGINS) | origins
            instance.kinds[name] = (kind, elements)
            if value is not None:
                self._calls(value, instance, loops)

    def _vector_use(self, type_node: Node | None) -> None:
        if type_node is not None and self.scope.is_vector_type(self.scope.text(type_node)):
            self.facts.labels.add("simd_intrinsics")

    def _expression(
        self,
        expression: Node,
        instance: Instance,
        loops: tuple[Loop, ...],
    ) -> None:
        stack = [expression]
        while stack:
            node = stack.pop()
            kind = node.type
            if kind in ("comma_expression", "parenthesized_expression"):
                stack.extend(reversed(node.named_children))
            elif kind == "assignment_expression":
                self._assignment(node, instance, loops)
            elif kind == "update_expression":
                self._bump(field_of(node, "argument"), instance, loops)
        self._calls(expression, instance, loops)

    def _bump(self, target: Node | None, instance: Instance, loops: tuple[Loop, ...]) -> None:
        """A pointer moved inside a loop depends on that loop (`Ap += MR`, `*cp++`)."""
        if target is None or target.type != "identifier" or not loops:
            return
        name = self.scope.text(target)
        kind = instance.kinds.get(name) or self.scope.global_kinds.get(name)
        if kind is not None and kind[0] == "pointer":
            self._assign(name, frozenset({loops[-1].token}), instance)

    def _assign(self, name: str, origins: Origins, instance: Instance) -> None:
        if name not in instance.kinds and name in self.scope.globals:
            self.scope.globals[name] = self.scope.globals[name] | origins
        else:
            instance.env[name] = instance.env.get(name, NO_ORIGINS) | origins

    def _assignment(self, node: Node, instance: Instance, loops: tuple[Loop, ...]) -> None:
        left, right, operator = field_of(node, "left"), field_of(node, "right"), operator_of(node)
        if left is None or right is None:
            return
        value = origins_of(self.scope, right, instance, loops)
        destination = address_of(self.scope, left, instance, loops)
        if left.type == "identifier":
            name = self.scope.text(left)
            self._assign(name, value, instance)
            if operator != "=":
                self._bump(left, instance, loops)
            elif (products := products_in(self.scope, right, instance)) and name in instance.kinds:
                instance.products[name] = products
        for target in self.scope.budget.walk(left):
            if target.type == "update_expression":
                self._bump(field_of(target, "argument"), instance, loops)
        if self._accumulation(left, operator, right, destination, instance, loops):
            self.facts.computations.append((loops, value))
            return
        if operator == "=" and left.type in ("subscript_expression", "pointer_expression"):
            source = strip(right)
            if source.type in ("subscript_expression", "pointer_expression") or (
                source.type == "call_expression" and "load" in self.scope.text(field_of(source, "function"))
            ):
                self._copy(loops, destination, value)
        if any(token.startswith("out:") for token in destination):
            self.facts.computations.append((loops, value))

    def _copy(self, loops: tuple[Loop, ...], destination: Origins, source: Origins) -> None:
        into_buffer = not any(t.startswith(("in:", "out:")) for t in destination)
        if into_buffer and any(t.startswith("in:") for t in source):
            self.facts.copies.append(Copy(loops, destination, source))

    def _accumulation(
        self,
        left: Node,
        operator: str,
        right: Node,
        destination: Origins,
        instance: Instance,
        loops: tuple[Loop, ...],
    ) -> bool:
        if operator not in ("+=", "-=", "="):
            return False
        if operator == "=":
            target = self.scope.compact(left)
            if target not in self.scope.compact(right) or not any(
                node.type == left.type and self.scope.compact(node) == target for node in self.scope.budget.walk(right)
            ):
                return False
        if operator == "=" and right.type == "identifier":
            return False
        products = (
            products_in(self.scope, right, instance)
            if operator == "="
            else products_of_term(self.scope, right, instance)
        )
        if not products:
            return False
        accumulator: str | None = None
        base = left
        while base.type == "subscript_expression":
            argument = field_of(base, "argument")
            if argument is None:
                break
            base = argument
        if base.type != "identifier":
            pass
        elif (kind := instance.kinds.get(self.scope.text(base))) is not None:
            if left.type == "identifier" and kind[0] in ("int", "pointer"):
                return False
            if (left.type == "identifier" and kind[0] == "float") or (
                left.type == "subscript_expression"
                and kind[0] == "array"
                and kind[1] is not None
                and kind[1] <= REGISTER_ARRAY_MAX_ELEMENTS
            ):
                accumulator = f"{instance.id}:{self.scope.compact(left)}"
        elif left.type == "identifier" and (self.scope.global_kinds.get(self.scope.text(base)) or ("float", None))[
            0
        ] in (
            "int",
            "pointer",
        ):
            return False
        self._record(loops, destination, accumulator, products, instance)
        return True

    def _record(
        self,
        loops: tuple[Loop, ...],
        destination: Origins,
        accumulator: str | None,
        products: list[tuple[Node, Node]],
        instance: Instance,
    ) -> None:
        operands = [
            (self.scope.compact(node), origins_of(self.scope, node, instance, loops))
            for pair in products
            for node in pair
        ]
        self.facts.accumulations.append(MultiplyAccumulate(loops, destination, accumulator, operands))

    def _calls(
        self,
        expression: Node,
        instance: Instance,
        loops: tuple[Loop, ...],
    ) -> None:
        calls: list[tuple[str, list[Origins]]] = []
        first = bisect.bisect_left(self.scope.call_starts, expression.start_byte)
        last = bisect.bisect_left(self.scope.call_starts, expression.end_byte)
        for node in self.scope.call_nodes[first:last]:
            if node.type == "cast_expression":
                type_descriptor = field_of(node, "type")
                self._vector_use(field_of(type_descriptor, "type") if type_descriptor is not None else None)
            if node.type != "call_expression":
                continue
            name = self.scope.text(field_of(node, "function"))
            arguments_node = field_of(node, "arguments")
            arguments = arguments_node.named_children if arguments_node is not None else []
            called = self.scope.macro_calls.get(name, name)
            if called in PREFETCH_CALLS:
                self.facts.labels.add("prefetch")
            elif is_vector_intrinsic(called):
                self.facts.labels.add("simd_intrinsics")
            if name in _COPY_CALLS and len(arguments) >= 2:
                self._copy(
                    loops,
                    origins_of(self.scope, arguments[0], instance, loops),
                    origins_of(self.scope, arguments[1], instance, loops),
                )
            elif ("store" in name or "stream" in name) and len(arguments) >= 2:
                address, value = arguments[0], strip(arguments[-1])
                destination = origins_of(self.scope, address, instance, loops)
                products = products_in(self.scope, value, instance)
                if value.type == "call_expression" and "load" in self.scope.text(field_of(value, "function")):
                    self._copy(loops, destination, origins_of(self.scope, value, instance, loops))
                elif products and self._reloads(value, address):
                    # `store(p, fmadd(a, b, load(p)))`: a multiply-accumulate into memory.
                    self._record(loops, destination, None, products, instance)
                    self.facts.computations.append((loops, origins_of(self.scope, value, instance, loops)))
                elif any(t.startswith("out:") for t in destination):
                    self.facts.computations.append((loops, origins_of(self.scope, value, instance, loops)))
            elif name == "posix_memalign" and arguments:
                target = strip(arguments[0])
                if target.type == "pointer_expression" and (pointee := field_of(target, "argument")) is not None:
                    self._assign(self.scope.text(pointee), frozenset({f"m:alloc:{node.id}"}), instance)
            if name in self.scope.functions and name not in instance.names and len(instance.names) < MAX_INLINE_DEPTH:
                bound = [origins_of(self.scope, argument, instance, loops) for argument in arguments]
                calls.append((name, bound))
        # The helpers run where they are called: before the statements that follow this one.
        for name, bound in calls:
            for definition in self.scope.functions[name]:
                self.instantiate(definition, bound, loops, (*instance.names, name))

    def _reloads(self, value: Node, address: Node) -> bool:
        """Whether `value` loads from `address` (the same text), as a read-modify-write store does."""
        target = self.scope.compact(address)
        for node in self.scope.budget.walk(value):
            if node.type == "call_expression" and "load" in self.scope.text(field_of(node, "function")):
                arguments = field_of(node, "arguments")
                if arguments is not None and arguments.named_child_count:
                    if self.scope.compact(arguments.named_children[0]) == target:
                        return True
        return False
