"""Conditions: a small, safe expression language over signals, compiled to a program.

::

    Generator.Sine > 0.9
    0 < Thermo.T < 30 and not Pump.Error
    abs(A.x - B.y) > 2 or max(A.x, B.y) >= 10
    `Heat pump`.`Flow temp. (C)` > 55      # names with spaces or dots: backticks

The language: signal references ``Device.Signal`` (``Device.Signal.latest`` means the
same), numbers, ``+ - * / % **``, unary ``-``/``+``, comparisons (chains such as
``0 < x < 1`` too), ``and or not``, parentheses, ``abs(x)``, ``min(a, b, ...)`` and
``max(a, b, ...)``. A device or signal part that is not a Python identifier is written in
backticks, each part on its own (a backtick cannot occur inside a name).

It is parsed with :mod:`ast` and every node is checked against a whitelist; anything else
(other names or attributes, calls of other functions, subscripts, lambdas,
comprehensions, strings, dunder names ...) raises :class:`ConditionError` naming the part
and its column. Nothing is ever evaluated by Python: the result is a postfix
:class:`Program` (op codes and operands) that the engine's numba kernel runs over whole
batches, and :func:`evaluate` here is the plain-Python reference of that kernel.

Semantics, shared by kernel and reference: every value is a float64 and arithmetic follows
IEEE 754 (``x / 0`` is ±inf or NaN, never an error; ``%`` has the sign of the divisor as in
Python; ``**`` is C ``pow``); comparisons, ``and``, ``or`` and ``not`` give 1.0 or 0.0;
a value counts as true when it is non-zero and not NaN; ``min``/``max`` propagate NaN.
"""

from __future__ import annotations

import ast
import math
import re
import string
import unicodedata
from dataclasses import dataclass

from rtoc.errors import ConditionError

MAX_LENGTH = 1000     # characters of condition text
MAX_DEPTH = 40        # nesting of operations
MAX_SIGNALS = 16      # distinct signals one condition may reference

# op codes of the postfix program (the kernel in rtoc.pipeline.condition_kernels uses them)
LOAD, CONST, NEG, NOT, ABS = 0, 1, 2, 3, 4
ADD, SUB, MUL, DIV, MOD, POW = 10, 11, 12, 13, 14, 15
LT, LE, GT, GE, EQ, NE = 20, 21, 22, 23, 24, 25
AND, OR, MIN2, MAX2 = 30, 31, 32, 33
UNARY = (NEG, NOT, ABS)
COMPARE = (LT, LE, GT, GE, EQ, NE)

_BINOPS = {ast.Add: ADD, ast.Sub: SUB, ast.Mult: MUL, ast.Div: DIV, ast.Mod: MOD, ast.Pow: POW}
_CMPOPS = {ast.Lt: LT, ast.LtE: LE, ast.Gt: GT, ast.GtE: GE, ast.Eq: EQ, ast.NotEq: NE}
_FUNCS = {"abs": (ABS, 1, 1), "min": (MIN2, 2, MAX_SIGNALS), "max": (MAX2, 2, MAX_SIGNALS)}
_NAMES = {  # what an unsupported node is called in an error message
    ast.Call: "function call", ast.Subscript: "subscript", ast.Lambda: "lambda",
    ast.ListComp: "comprehension", ast.SetComp: "comprehension", ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension", ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment", ast.Starred: "starred expression", ast.JoinedStr: "f-string",
    ast.List: "list", ast.Tuple: "tuple", ast.Set: "set", ast.Dict: "dict", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "slice",
}
_BACKTICK = re.compile(r"`([^`]*)`")
_LEADS = string.ascii_letters


@dataclass(frozen=True)
class Program:
    """A compiled condition: postfix ``ops`` with one operand each in ``args`` (the column
    of a LOAD, the constant index of a CONST, else 0), ``consts`` (float), the referenced
    ``signals`` (full names, column order) and the stack ``depth`` it needs."""

    text: str
    ops: tuple[int, ...]
    args: tuple[int, ...]
    consts: tuple[float, ...]
    signals: tuple[str, ...]
    depth: int

    def threshold(self) -> tuple[int, float] | None:
        """``(compare op, constant)`` when the program is ``signal <op> constant`` (or the
        constant first, turned around): the shape the engine runs with a fused kernel."""
        if len(self.ops) != 3 or self.ops[2] not in COMPARE:
            return None
        if self.ops[:2] == (LOAD, CONST):
            return self.ops[2], self.consts[self.args[1]]
        if self.ops[:2] == (CONST, LOAD):
            flipped = {LT: GT, LE: GE, GT: LT, GE: LE, EQ: EQ, NE: NE}[self.ops[2]]
            return flipped, self.consts[self.args[0]]
        return None


def compile_condition(text: str) -> Program:
    """Parse and check ``text``; raise :class:`ConditionError` naming what is wrong."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition must be text, got {type(text).__name__}")
    if not text.strip():
        raise ConditionError("the condition is empty", text=text)
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is longer than {MAX_LENGTH} characters", text=text)
    if "\x00" in text or "\n" in text or "\r" in text:
        raise ConditionError("a condition is one line of text (no NUL or line breaks)", text=text)
    source, quoted = _unquote(text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        col = (exc.offset or 1) + (len(source) - len(source.lstrip()))
        raise ConditionError(f"syntax error: {exc.msg}", text=text, column=col) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
        raise ConditionError(f"cannot parse: {type(exc).__name__}", text=text) from None
    return _Compiler(text, source, quoted).program(tree.body)


def evaluate(program: Program, values: list[float] | tuple[float, ...]) -> bool:
    """The plain-Python reference: the condition's truth for one value per signal."""
    stack: list[float] = []
    for op, arg in zip(program.ops, program.args, strict=True):
        if op == LOAD:
            stack.append(float(values[arg]))
        elif op == CONST:
            stack.append(program.consts[arg])
        elif op in UNARY:
            stack.append(apply_unary(op, stack.pop()))
        else:
            b = stack.pop()
            stack.append(apply_binary(op, stack.pop(), b))
    return truth(stack.pop())


def truth(x: float) -> bool:
    return x == x and x != 0.0


def apply_unary(op: int, a: float) -> float:
    if op == NEG:
        return -a
    if op == NOT:
        return 0.0 if truth(a) else 1.0
    return abs(a)


def apply_binary(op: int, a: float, b: float) -> float:  # noqa: C901 - one branch per op
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        return ieee_div(a, b)
    if op == MOD:
        return py_mod(a, b)
    if op == POW:
        return c_pow(a, b)
    if op == LT:
        return 1.0 if a < b else 0.0
    if op == LE:
        return 1.0 if a <= b else 0.0
    if op == GT:
        return 1.0 if a > b else 0.0
    if op == GE:
        return 1.0 if a >= b else 0.0
    if op == EQ:
        return 1.0 if a == b else 0.0
    if op == NE:
        return 1.0 if a != b else 0.0
    if op == AND:
        return 1.0 if truth(a) and truth(b) else 0.0
    if op == OR:
        return 1.0 if truth(a) or truth(b) else 0.0
    if op == MIN2:
        return a if a != a or a < b else b
    return a if a != a or a > b else b


def ieee_div(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a != a or a == 0.0:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def py_mod(a: float, b: float) -> float:
    """Python's float ``%`` (sign of the divisor), NaN where Python would raise."""
    if b == 0.0 or a != a or b != b or math.isinf(a):
        return math.nan
    if math.isinf(b):
        return a if a == 0.0 or (a > 0) == (b > 0) else b
    return a % b


def c_pow(a: float, b: float) -> float:
    """C ``pow``: NaN for a negative base with a fractional exponent, inf on overflow."""
    try:
        r = a ** b
    except ZeroDivisionError:  # 0 ** negative
        odd = not math.isinf(b) and b == math.floor(b) and b % 2.0 != 0.0
        return math.copysign(math.inf, a) if odd else math.inf
    except OverflowError:
        if a > 0:
            return math.inf
        if b != math.floor(b):
            return math.nan
        return math.inf if b % 2.0 == 0.0 else -math.inf
    return math.nan if isinstance(r, complex) else float(r)


def _unquote(text: str) -> tuple[str, dict[str, str]]:
    """Replace each backtick-quoted part by a placeholder identifier of exactly its length
    (so columns stay right); returns the new text and placeholder -> name."""
    quoted: dict[str, str] = {}
    if text.count("`") % 2:
        raise ConditionError("unmatched backtick", text=text, column=text.rfind("`") + 1)

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if not name.strip():
            raise ConditionError("empty name in backticks", text=text, column=m.start() + 1)
        for at in (m.start() - 1, m.end()):  # `a`b would read as one other name
            if 0 <= at < len(text) and (text[at].isalnum() or text[at] in "_`"):
                raise ConditionError("a quoted part must stand alone: put '.' or a space next to "
                                     "the backticks", text=text, column=at + 1, part=text[at])
        width = len(m.group(0)) - 1  # >= 2: room for the index in base 36
        index = _base36(len(quoted)).rjust(width, "0")
        for lead in _LEADS:  # a first letter that makes it an identifier nobody wrote
            ident = lead + index
            if ident not in text and ident not in quoted:
                quoted[ident] = name
                return ident
        raise ConditionError("cannot quote this name", text=text, column=m.start() + 1)

    source = _BACKTICK.sub(repl, text)
    for i, ch in enumerate(source):
        if ch == "#":
            raise ConditionError("'#' is not part of the language (there are no comments)",
                                 text=text, column=i + 1, part="#")
        if ord(ch) > 127 and not ch.isspace() and unicodedata.normalize("NFKC", ch) != ch:
            # Python would read an identifier with it as another one (µ -> μ, ﬁ -> fi)
            raise ConditionError(f"{ch!r} outside backticks would be read as "
                                 f"{unicodedata.normalize('NFKC', ch)!r}: put the name in backticks",
                                 text=text, column=i + 1, part=ch)
    return source, quoted


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


class _Compiler:
    def __init__(self, text: str, source: str, quoted: dict[str, str]):
        self.text, self.source, self.quoted = text, source, quoted
        self.offset = len(source) - len(source.lstrip())
        self.ops: list[int] = []
        self.args: list[int] = []
        self.consts: list[float] = []
        self.signals: list[str] = []
        self.depth = self.max_depth = 0

    def program(self, node: ast.expr) -> Program:
        self._check_depth(node)
        self._emit(node)
        return Program(self.text, tuple(self.ops), tuple(self.args), tuple(self.consts),
                       tuple(self.signals), self.max_depth)

    def fail(self, message: str, node: ast.AST) -> ConditionError:
        col = getattr(node, "col_offset", None)
        if col is not None:  # ast columns are UTF-8 byte offsets
            stripped = self.source.strip().encode()
            col = len(stripped[:col].decode(errors="replace")) + self.offset + 1
        part = ""
        end = getattr(node, "end_col_offset", None)
        if col is not None and end is not None:
            part = self.source.strip().encode()[node.col_offset:end].decode(errors="replace")
        if self.quoted:  # show names as written, not their placeholders
            idents = re.compile(r"\b(" + "|".join(map(re.escape, self.quoted)) + r")\b")
            part = idents.sub(lambda m: f"`{self.quoted[m.group(1)]}`", part)
            message = idents.sub(lambda m: f"`{self.quoted[m.group(1)]}`", message)
        return ConditionError(message, text=self.text, column=col, part=part)

    def _check_depth(self, root: ast.AST) -> None:
        todo = [(root, 1)]
        while todo:
            node, depth = todo.pop()
            if depth > MAX_DEPTH:
                raise self.fail(f"nested more than {MAX_DEPTH} levels deep", node)
            todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node)
                        if isinstance(child, ast.expr))  # not operators or contexts: no column

    def _push(self, op: int, arg: int = 0, delta: int = 0) -> None:
        self.ops.append(op)
        self.args.append(arg)
        self.depth += delta
        self.max_depth = max(self.max_depth, self.depth)

    def _emit(self, node: ast.AST) -> None:  # noqa: C901 - one branch per node type
        if isinstance(node, ast.Constant):
            self._constant(node)
        elif isinstance(node, ast.Attribute):
            self._signal(node)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant):
            self._constant(node.operand, -1.0)  # -2 is a constant (keeps `S > -2` a threshold)
        elif isinstance(node, ast.UnaryOp):
            self._emit(node.operand)
            if isinstance(node.op, ast.USub):
                self._push(NEG)
            elif isinstance(node.op, ast.Not):
                self._push(NOT)
            elif not isinstance(node.op, ast.UAdd):
                raise self.fail("operator '~' is not supported", node)
        elif isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.fail(f"operator {_op_text(node.op)} is not supported "
                                "(use + - * / % **)", node)
            self._emit(node.left)
            self._emit(node.right)
            self._push(op, delta=-1)
        elif isinstance(node, ast.BoolOp):
            op = AND if isinstance(node.op, ast.And) else OR
            self._emit(node.values[0])
            for value in node.values[1:]:
                self._emit(value)
                self._push(op, delta=-1)
        elif isinstance(node, ast.Compare):
            self._compare(node)
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Name):
            raise self.fail(f"{node.id!r} is not a signal: write Device.Signal "
                            "(backticks around parts with spaces or dots)", node)
        else:
            what = _NAMES.get(type(node), type(node).__name__)
            raise self.fail(f"{what} is not allowed in a condition", node)

    def _constant(self, node: ast.Constant, sign: float = 1.0) -> None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "string" if isinstance(value, (str, bytes)) else type(value).__name__
            raise self.fail(f"{kind} constants are not allowed (only numbers)", node)
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float64, like 1e999: infinity
            number = math.inf
        self.consts.append(sign * number)
        self._push(CONST, len(self.consts) - 1, 1)

    def _signal(self, node: ast.Attribute) -> None:
        parts: list[str] = []
        cur: ast.AST = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not isinstance(cur, ast.Name):
            raise self.fail("only Device.Signal references may use '.'", node)
        parts.append(cur.id)
        parts.reverse()
        for p in parts:
            if p.startswith("__"):
                raise self.fail(f"dunder name {p!r} is not allowed", node)
        if len(parts) == 3 and parts[2] == "latest":
            parts.pop()
        if len(parts) != 2:
            raise self.fail("a signal reference is Device.Signal (or Device.Signal.latest); "
                            "put parts with dots in backticks", node)
        device, signal = (self.quoted.get(p, p) for p in parts)
        name = f"{device}.{signal}"
        if name not in self.signals:
            if len(self.signals) >= MAX_SIGNALS:
                raise self.fail(f"more than {MAX_SIGNALS} different signals", node)
            self.signals.append(name)
        self._push(LOAD, self.signals.index(name), 1)

    def _compare(self, node: ast.Compare) -> None:
        # a < b < c  ->  (a < b) and (b < c); b is evaluated twice, which is harmless
        left = node.left
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            code = _CMPOPS.get(type(op))
            if code is None:
                raise self.fail(f"comparison {_op_text(op)} is not supported "
                                "(use < <= > >= == !=)", node)
            self._emit(left)
            self._emit(right)
            self._push(code, delta=-1)
            if i:
                self._push(AND, delta=-1)
            left = right

    def _call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCS:
            shown = name or ast.unparse(node.func)
            raise self.fail(f"function {shown!r} is not allowed (only abs, min, max)", node)
        if node.keywords:
            raise self.fail(f"{name}() takes no keyword arguments", node)
        op, least, most = _FUNCS[name]
        if not least <= len(node.args) <= most:
            raise self.fail(f"{name}() takes {least if least == most else f'{least} to {most}'} "
                            f"argument{'s' if least > 1 else ''}, got {len(node.args)}", node)
        self._emit(node.args[0])
        if op == ABS:
            self._push(ABS)
        for arg in node.args[1:]:
            self._emit(arg)
            self._push(op, delta=-1)


def _op_text(op: ast.AST) -> str:
    return {ast.FloorDiv: "'//'", ast.BitAnd: "'&'", ast.BitOr: "'|'", ast.BitXor: "'^'",
            ast.LShift: "'<<'", ast.RShift: "'>>'", ast.MatMult: "'@'", ast.Is: "'is'",
            ast.IsNot: "'is not'", ast.In: "'in'", ast.NotIn: "'not in'",
            ast.Invert: "'~'"}.get(type(op), type(op).__name__)
