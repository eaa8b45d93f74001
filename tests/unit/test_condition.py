"""The condition language (rtoc.events.language): what compiles, what it means, what is refused.

Spot values are worked out by hand (never by handing the text to Python's ``eval``);
hypothesis fuzzes arbitrary text, arbitrary Python expression trees and texts that would
have side effects if anything ran them, and checks that the only outcomes are a
well-formed :class:`Program` or a :class:`ConditionError`, and that nothing is executed.
"""

from __future__ import annotations

import ast
import builtins
import math
import sys
import threading
import unicodedata  # imported now: the parser imports it for non-ASCII identifiers
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st

from rtoc.errors import ConditionError, RtocError
from rtoc.events.language import (
    ABS,
    ADD,
    AND,
    CONST,
    DIV,
    EQ,
    GE,
    GT,
    LE,
    LOAD,
    LT,
    MAX2,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_SIGNALS,
    MIN2,
    MOD,
    MUL,
    NE,
    NEG,
    NOT,
    OR,
    POW,
    SUB,
    UNARY,
    Program,
    apply_binary,
    compile_condition,
    evaluate,
)

BINARY = (ADD, SUB, MUL, DIV, MOD, POW, LT, LE, GT, GE, EQ, NE, AND, OR, MIN2, MAX2)
NAN, INF = math.nan, math.inf
ROOT = Path(__file__).resolve().parents[2]  # the repository


def check_well_formed(p: Program) -> None:
    """The postfix program is runnable: operands in range, the stack never underflows and
    ends with one value, ``depth`` is its true peak (the kernel sizes its stack by it), and
    signals are numbered in first-use order, each used."""
    assert isinstance(p, Program)
    assert len(p.ops) == len(p.args) > 0
    sp = peak = 0
    first_use: list[int] = []
    for op, arg in zip(p.ops, p.args, strict=True):
        if op == LOAD:
            assert 0 <= arg < len(p.signals)
            if arg not in first_use:
                first_use.append(arg)
            sp += 1
        elif op == CONST:
            assert 0 <= arg < len(p.consts)
            sp += 1
        elif op in UNARY:
            assert sp >= 1 and arg == 0
        else:
            assert op in BINARY and sp >= 2 and arg == 0
            sp -= 1
        peak = max(peak, sp)
    assert sp == 1
    assert p.depth == peak
    assert first_use == list(range(len(p.signals)))
    assert len(set(p.signals)) == len(p.signals) <= MAX_SIGNALS
    assert all(isinstance(c, float) for c in p.consts)


def rejects(text, column, part, reason) -> ConditionError:
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    e = info.value
    assert reason in e.reason
    assert e.column == column
    assert e.part == part
    assert e.text == (text if isinstance(text, str) else "")
    return e


# -- what compiles, and what it means -------------------------------------------------------

@pytest.mark.parametrize(("text", "values", "expected"), [
    # arithmetic, worked out by hand
    ("A.x + 1 > 2", [1.5], True),
    ("A.x + 1 > 2", [1.0], False),
    ("A.x - B.y == 1", [3.0, 2.0], True),
    ("A.x * 2 == 6", [3.0], True),
    ("A.x / 4 == 0.75", [3.0], True),
    ("A.x / 0 > 1e308", [1.0], True),           # +inf
    ("A.x / 0 < -1e308", [-1.0], True),         # -inf
    ("A.x / 0 < -1e308", [1.0], False),
    ("1 / A.x < 0", [-0.0], True),              # 1 / -0.0 is -inf
    ("A.x / 0 != A.x / 0", [0.0], True),        # 0 / 0 is NaN
    ("-7 % 3 == 2", [], True),                  # sign of the divisor, as in Python
    ("7 % -3 == -2", [], True),
    ("A.x % 0 != A.x % 0", [5.0], True),        # NaN where Python raises
    ("A.x % 2 == 1.5", [-0.5], True),
    ("2 ** 10 == 1024", [], True),
    ("2 ** 3 ** 2 == 512", [], True),           # right-associative
    ("-A.x ** 2 == -4", [2.0], True),           # -(x ** 2)
    ("2 ** -1 == 0.5", [], True),
    ("A.x ** (1 / 3) != A.x ** (1 / 3)", [-8.0], True),   # C pow: NaN, not complex
    ("0 ** -1 > 1e308", [], True),              # C pow: +inf, not ZeroDivisionError
    ("(-0.0) ** -1 < -1e308", [], True),        # -inf for an odd exponent
    ("10 ** 400 > 1e308", [], True),            # overflow is inf
    ("(-10) ** 401 < -1e308", [], True),
    ("+A.x == A.x", [2.5], True),
    ("abs(A.x) == 3", [-3.0], True),
    ("abs(A.x - B.y) > 2", [1.0, 4.5], True),
    ("abs(A.x - B.y) > 2", [1.0, 2.5], False),
    # truth: non-zero and not NaN
    ("A.x", [0.0], False),
    ("A.x", [-0.0], False),
    ("A.x", [NAN], False),
    ("A.x", [INF], True),
    ("A.x", [-1e-300], True),
    ("not A.x", [NAN], True),
    ("not A.x", [2.0], False),
    ("A.x and B.y", [1.0, NAN], False),
    ("A.x or B.y", [0.0, NAN], False),
    ("A.x or B.y", [0.0, -3.0], True),
    ("(A.x > 1) + (B.y > 1) == 2", [2.0, 3.0], True),   # comparisons are 1.0 / 0.0
    ("(A.x > 1) + (B.y > 1) == 1", [2.0, 0.0], True),
    ("(A.x and B.y) == 1", [5.0, 7.0], True),           # and/or give 1.0, not an operand
    ("(A.x or B.y) == 1", [0.0, 7.0], True),
    ("A.x > 1 and B.y < 2 or not C.z", [0.0, 0.0, 0.0], True),
    ("A.x > 1 and (B.y < 2 or not C.z)", [0.0, 0.0, 0.0], False),
    # min / max propagate NaN from either side
    ("min(A.x, 5) != min(A.x, 5)", [NAN], True),
    ("max(1, A.x) != max(1, A.x)", [NAN], True),
    ("min(A.x, B.y) == -2", [-2.0, 3.0], True),
    ("max(A.x, B.y, C.z) == 7", [1.0, 7.0, -3.0], True),
    ("min(A.x, B.y, C.z, 0) == -3", [1.0, 7.0, -3.0], True),
    # comparisons with NaN are false except !=
    ("A.x == A.x", [NAN], False),
    ("A.x != A.x", [NAN], True),
    ("A.x <= 1", [NAN], False),
    ("A.x >= 1", [INF], True),
    # chains
    ("0 < A.x < 1", [0.5], True),
    ("0 < A.x < 1", [1.0], False),
    ("0 < A.x < 1", [0.0], False),
    ("0 < A.x < 1", [NAN], False),
    ("0 <= A.x <= 1 != B.y", [1.0, 2.0], True),
    ("0 <= A.x <= 1 != B.y", [1.0, 1.0], False),
    ("1 < 2 < 3", [], True),
    ("3 > 2 > 2", [], False),
    # numbers in other spellings
    ("A.x == 0x10", [16.0], True),
    ("A.x == 1_000", [1000.0], True),
    ("A.x == 1e3", [1000.0], True),
    ("A.x == .5", [0.5], True),
    ("A.x < 1e999", [1e308], True),             # 1e999 is +inf (see test_1e999_is_inf)
    # .latest and backticks
    ("A.x.latest > 1", [2.0], True),
    ("`Heat pump`.`Flow temp. (C)` > 55", [56.0], True),
    ("`Käse ü`.`温度` >= -1", [-1.0], True),
])
def test_spot_values(text, values, expected):
    p = compile_condition(text)
    check_well_formed(p)
    assert len(p.signals) == len(values)
    assert evaluate(p, values) is expected


def test_program_of_a_threshold_by_hand():
    p = compile_condition("A.x > 1")
    assert (p.ops, p.args, p.consts, p.signals, p.depth) == ((LOAD, CONST, GT), (0, 0, 0),
                                                             (1.0,), ("A.x",), 2)
    assert p.text == "A.x > 1"


def test_program_of_functions_by_hand():
    p = compile_condition("max(A.x, -B.y, 2) > abs(A.x)")
    assert p.ops == (LOAD, LOAD, NEG, MAX2, CONST, MAX2, LOAD, ABS, GT)
    assert p.args == (0, 1, 0, 0, 0, 0, 0, 0, 0)
    assert p.consts == (2.0,)
    assert p.signals == ("A.x", "B.y")
    assert p.depth == 2


def test_chain_compiles_to_and_of_comparisons():
    p = compile_condition("0 < A.x <= 1")
    assert p.ops == (CONST, LOAD, LT, LOAD, CONST, LE, AND)
    assert p.consts == (0.0, 1.0)
    assert p.depth == 3


def test_bool_ops_and_not_by_hand():
    p = compile_condition("not A.x or B.y and C.z")
    assert p.ops == (LOAD, NOT, LOAD, LOAD, AND, OR)
    assert p.args == (0, 0, 1, 2, 0, 0)


@pytest.mark.parametrize(("text", "signals", "loads"), [
    ("B.y + A.x + B.y > C.z", ("B.y", "A.x", "C.z"), [0, 1, 0, 2]),
    ("A.x > A.x", ("A.x",), [0, 0]),
    ("`A`.x + A.x", ("A.x",), [0, 0]),                  # quoting an identifier changes nothing
    ("`A`.`x` + A.x.latest", ("A.x",), [0, 0]),
    ("C.z < B.y < A.x < B.y", ("C.z", "B.y", "A.x"), [0, 1, 1, 2, 2, 1]),
    ("min(D.d, C.c, D.d, A.a)", ("D.d", "C.c", "A.a"), [0, 1, 0, 2]),
])
def test_signals_in_first_use_order_duplicates_share_a_column(text, signals, loads):
    p = compile_condition(text)
    check_well_formed(p)
    assert p.signals == signals
    assert [a for o, a in zip(p.ops, p.args, strict=True) if o == LOAD] == loads


def test_signal_values_go_to_their_column():
    p = compile_condition("B.y - A.x == 5")
    assert p.signals == ("B.y", "A.x")
    assert evaluate(p, [7.0, 2.0]) is True
    assert evaluate(p, [2.0, 7.0]) is False


@pytest.mark.parametrize(("plain", "latest"), [
    ("A.x > 1", "A.x.latest > 1"),
    ("A.x", "A.x.latest"),
    ("abs(A.x - B.y) > 2", "abs(A.x.latest - B.y) > 2"),
    ("`a b`.`c.d` < 0", "`a b`.`c.d`.latest < 0"),
    ("A.latest > 1", "A.latest.latest > 1"),            # a signal called 'latest'
])
def test_latest_is_a_synonym(plain, latest):
    a, b = compile_condition(plain), compile_condition(latest)
    assert (a.ops, a.args, a.consts, a.signals, a.depth) == (b.ops, b.args, b.consts,
                                                             b.signals, b.depth)


def test_quoted_latest_is_a_name_not_the_synonym():
    # `latest` in backticks is a literal part, so this is a three-part reference
    rejects("`A`.x.`latest`", 1, "`A`.x.`latest`", "Device.Signal")
    assert compile_condition("A.`latest`").signals == ("A.latest",)


@pytest.mark.parametrize(("text", "signals"), [
    ("`Heat pump`.`Flow temp. (C)` > 55", ("Heat pump.Flow temp. (C)",)),
    ("`a.b`.c + A.`x.y`", ("a.b.c", "A.x.y")),
    ("`A.x`.y", ("A.x.y",)),
    ("`Käse ü`.`温度` > 1", ("Käse ü.温度",)),
    ("`if`.`for` > 1", ("if.for",)),                    # keywords are fine in backticks
    ("`__class__`.`__dict__` > 1", ("__class__.__dict__",)),   # only names, never looked up
    ("` a`.`b ` > 1", (" a.b ",)),                      # spaces inside are kept
    ("`µ`.x + `1`.`2`", ("µ.x", "1.2")),
    # placeholder collisions: the text itself uses what the placeholders look like
    ("q0_.x + `a b`.c + qq0_.y + qqq.z > 1", ("q0_.x", "a b.c", "qq0_.y", "qqq.z")),
    ("`q0_`.x + `a`.b", ("q0_.x", "a.b")),
    ("`qq0_`.`q0_` + q0__.q1_", ("qq0_.q0_", "q0__.q1_")),
    ("".join(f"`s {i}`.v + " for i in range(12)) + "Z.z",
     tuple(f"s {i}.v" for i in range(12)) + ("Z.z",)),
])
def test_backticks(text, signals):
    p = compile_condition(text)
    check_well_formed(p)
    assert p.signals == signals


@pytest.mark.parametrize("text", [
    "`a b`.c + (D.e // 2)",
    "`a`.`b` + (D.e // 2)",
    "`é`.x + (D.e // 2)",
    "`ééé ü`.`温度` + (D.e // 2)",
    "q0_.x + `long name`.y + (D.e // 2)",
    "é.x + (D.e // 2)",                                  # columns are characters, not bytes
    "温度.x + `温 度`.y + (D.e // 2)",
    "   `a b`.c + (D.e // 2)",                           # leading blanks are counted
    "\t `a b`.c + (D.e // 2)",
])
def test_columns_right_after_quoting(text):
    rejects(text, text.index("D.e // 2") + 1, "D.e // 2", "'//'")


@pytest.mark.parametrize("text", ["`a b`.c > ;", "é.x > ;", "  A.x > 1; import os"])
def test_syntax_error_column(text):
    e = rejects(text, text.index(";") + 1, "", "syntax error")
    assert str(e).startswith(f"column {e.column}: ")


@pytest.mark.parametrize(("text", "expected"), [
    ("A.x > 1.5", (GT, 1.5)),
    ("A.x >= 1.5", (GE, 1.5)),
    ("A.x < 0", (LT, 0.0)),
    ("A.x <= 0", (LE, 0.0)),
    ("A.x == 2", (EQ, 2.0)),
    ("A.x != 2", (NE, 2.0)),
    ("A.x.latest > 1e999", (GT, INF)),
    ("`a b`.`c d` < 3", (LT, 3.0)),
    ("1.5 < A.x", (GT, 1.5)),       # the constant first: turned around
    ("1.5 <= A.x", (GE, 1.5)),
    ("1.5 > A.x", (LT, 1.5)),
    ("1.5 >= A.x", (LE, 1.5)),
    ("2 == A.x", (EQ, 2.0)),
    ("2 != A.x", (NE, 2.0)),
])
def test_threshold(text, expected):
    assert compile_condition(text).threshold() == expected


@pytest.mark.parametrize("text", [
    "A.x > B.y", "1 > 2", "A.x + 1", "A.x", "not A.x", "0 < A.x < 1", "abs(A.x) > 1",
    "A.x > 1 and B.y > 1", "A.x + 1 > 2", "min(A.x, 1)", "A.x > A.x",
])
def test_no_threshold(text):
    assert compile_condition(text).threshold() is None


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
       c=st.sampled_from(["0", "1.5", "1e999", "0.1", "3"]),
       flipped=st.booleans(),
       y=st.one_of(st.floats(), st.sampled_from([0.0, 1.5, 0.1, 3.0, INF, NAN])))
def test_threshold_means_what_the_program_means(op, c, flipped, y):
    """The engine runs ``y <op> c`` (a fused kernel) instead of the program: same truth."""
    p = compile_condition(f"{c} {op} A.x" if flipped else f"A.x {op} {c}")
    code, const = p.threshold()
    assert (apply_binary(code, y, const) == 1.0) is evaluate(p, [y])


# -- rejections: each names the part and its column -----------------------------------------

@pytest.mark.parametrize(("text", "column", "part", "reason"), [
    # attributes beyond Device.Signal, dunder names
    ("A.x.y > 1", 1, "A.x.y", "Device.Signal"),
    ("A.x.y.z.w", 1, "A.x.y.z.w", "Device.Signal"),
    ("A.x.latest.latest", 1, "A.x.latest.latest", "Device.Signal"),
    ("(A.x).y", 1, "(A.x).y", "Device.Signal"),
    ("A(1).x", 1, "A(1).x", "only Device.Signal"),
    ("A.__class__", 1, "A.__class__", "dunder name '__class__'"),
    ("1 < A.__class__", 5, "A.__class__", "dunder"),
    ("A.x.__dict__ > 1", 1, "A.x.__dict__", "dunder name '__dict__'"),
    ("__builtins__.x > 1", 1, "__builtins__.x", "dunder"),
    ("A.x + B.__globals__.y", 7, "B.__globals__.y", "dunder"),
    # calls of other functions
    ("__import__('os')", 1, "__import__('os')", "function '__import__' is not allowed"),
    ("__import__('os').system('true')", 1, "__import__('os').system('true')", "not allowed"),
    ("open('/etc/passwd')", 1, "open('/etc/passwd')", "function 'open'"),
    ("A.x.foo() > 1", 1, "A.x.foo()", "function 'A.x.foo'"),
    ("A.x(1)", 1, "A.x(1)", "function 'A.x'"),
    ("eval('1')", 1, "eval('1')", "function 'eval'"),
    ("A.x > 1 and exec('x')", 13, "exec('x')", "function 'exec'"),
    ("abs(A.x)(1)", 1, "abs(A.x)(1)", "function 'abs(A.x)'"),
    ("(lambda: 1)() > 0", 1, "(lambda: 1)()", "not allowed"),
    ("sum(A.x, B.y)", 1, "sum(A.x, B.y)", "only abs, min, max"),
    # other node types
    ("A.x[0] > 1", 1, "A.x[0]", "subscript"),
    ("A.x[1:2]", 1, "A.x[1:2]", "subscript"),
    ("A.x > (lambda: 1)", 8, "lambda: 1", "lambda"),
    ("[v for v in A.x]", 1, "[v for v in A.x]", "comprehension"),
    ("{v for v in A.x}", 1, "{v for v in A.x}", "comprehension"),
    ("{v: 1 for v in A.x}", 1, "{v: 1 for v in A.x}", "comprehension"),
    ("A.x > min((v for v in B.y), 1)", 11, "(v for v in B.y)", "comprehension"),
    ("f'{A.x}' > 1", 1, "f'{A.x}'", "f-string"),
    ("A.x > 'a'", 7, "'a'", "string constants"),
    ("A.x > b'a'", 7, "b'a'", "string constants"),
    ("A.x > 1j", 7, "1j", "complex constants"),
    ("A.x > True", 7, "True", "bool constants"),
    ("False", 1, "False", "bool constants"),
    ("A.x == None", 8, "None", "NoneType constants"),
    ("A.x > ...", 7, "...", "ellipsis constants"),
    ("(y := A.x) > 1", 2, "y := A.x", "assignment"),
    ("1 if A.x else 0", 1, "1 if A.x else 0", "conditional expression"),
    ("(1, 2)", 1, "(1, 2)", "tuple"),
    ("A.x > [1]", 7, "[1]", "list"),
    ("A.x > {1}", 7, "{1}", "set"),
    ("A.x > {}", 7, "{}", "dict"),
    ("await A.x", 1, "await A.x", "await"),
    ("(yield A.x)", 2, "yield A.x", "yield"),
    ("max(A.x, *B.y)", 10, "*B.y", "starred"),
    # operators outside the language
    ("A.x // 2", 1, "A.x // 2", "operator '//'"),
    ("1 + A.x & 1", 1, "1 + A.x & 1", "operator '&'"),
    ("A.x | 1", 1, "A.x | 1", "operator '|'"),
    ("A.x ^ 1", 1, "A.x ^ 1", "operator '^'"),
    ("A.x << 1", 1, "A.x << 1", "operator '<<'"),
    ("A.x >> 1", 1, "A.x >> 1", "operator '>>'"),
    ("A.x @ B.y", 1, "A.x @ B.y", "operator '@'"),
    ("2 * ~A.x", 5, "~A.x", "operator '~'"),
    ("A.x is B.y", 1, "A.x is B.y", "comparison 'is'"),
    ("A.x is not B.y", 1, "A.x is not B.y", "comparison 'is not'"),
    ("A.x in B.y", 1, "A.x in B.y", "comparison 'in'"),
    ("A.x not in B.y", 1, "A.x not in B.y", "comparison 'not in'"),
    ("0 < A.x in B.y", 1, "0 < A.x in B.y", "comparison 'in'"),
    # keyword arguments, wrong arity
    ("min(A.x, B.y, key=1)", 1, "min(A.x, B.y, key=1)", "no keyword arguments"),
    ("max(A.x, **B.y)", 1, "max(A.x, **B.y)", "no keyword arguments"),
    ("abs(A.x, B.y)", 1, "abs(A.x, B.y)", "abs() takes 1 argument, got 2"),
    ("1 < abs()", 5, "abs()", "abs() takes 1 argument, got 0"),
    ("min(A.x)", 1, "min(A.x)", "min() takes 2 to 16 arguments, got 1"),
    ("A.x > max()", 7, "max()", "max() takes 2 to 16 arguments, got 0"),
    ("A.x > min(v for v in B.y)", 7, "min(v for v in B.y)", "got 1"),
    # bare names
    ("x > 1", 1, "x", "'x' is not a signal"),
    ("A.x > y", 7, "y", "'y' is not a signal"),
    ("abs", 1, "abs", "'abs' is not a signal"),
    # text-level problems
    ("A.x > `B", 7, "", "unmatched backtick"),
    ("`A.x > 1", 1, "", "unmatched backtick"),
    ("`a`.`b` > `c", 11, "", "unmatched backtick"),
    ("``.x > 1", 1, "", "empty name in backticks"),
    ("A.x + ` `.y", 7, "", "empty name in backticks"),
    ("import os", 1, "", "syntax error"),
    ("A.x > > 1", 7, "", "syntax error"),
    ("A.x ) > 1", 5, "", "unmatched ')'"),
    ("(A.x > 1", 1, "", "'(' was never closed"),
    ("A.x > 1 and", 1, "", "syntax error"),   # at the end of the text Python reports column 1
    ("((" * 101 + "1" + "))" * 101, 201, "", "too many nested parentheses"),
])
def test_rejections(text, column, part, reason):
    e = rejects(text, column, part, reason)
    assert isinstance(e, ValueError) and isinstance(e, RtocError)
    assert str(e).startswith(f"column {column}: ")
    if part and "`" not in part:
        assert text[column - 1:].startswith(part)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("\t", "empty"),
    ("A.x > " + "1" * (MAX_LENGTH - 5), f"longer than {MAX_LENGTH}"),
    ("A.x\n> 1", "no NUL or line breaks"),
    ("A.x\r> 1", "no NUL or line breaks"),
    ("A.x > 1\x00", "no NUL or line breaks"),
    ("A.x >\\\n1", "no NUL or line breaks"),     # no line continuations either
    ("A.x > '\ud800'", "cannot parse"),          # a lone surrogate cannot be UTF-8
])
def test_whole_text_rejections(text, reason):
    e = rejects(text, None, "", reason)
    assert not str(e).startswith("column")


def test_longest_text_is_allowed():
    text = "A.x > " + "1" * (MAX_LENGTH - 8) + ".0"
    assert len(text) == MAX_LENGTH
    assert compile_condition(text).consts == (float("1" * (MAX_LENGTH - 8)),)


@pytest.mark.parametrize("value", [None, 1, 1.5, b"A.x > 1", bytearray(b"A.x"), ["A.x > 1"],
                                   ("A.x",), object()])
def test_non_str_input(value):
    with pytest.raises(ConditionError) as info:
        compile_condition(value)
    assert "must be text" in info.value.reason
    assert type(value).__name__ in info.value.reason
    assert info.value.column is None


def test_too_deep_nesting():
    ok = compile_condition("-" * (MAX_DEPTH - 1) + "1")   # depth 40 (the constant)
    assert ok.ops == (CONST,) + (NEG,) * (MAX_DEPTH - 2)  # the innermost -1 is one constant
    assert evaluate(ok, []) is True
    # the 40th minus puts the constant on level 41: the error points at it
    rejects("-" * MAX_DEPTH + "1", MAX_DEPTH + 1, "1", f"more than {MAX_DEPTH} levels")
    rejects("not " * 41 + "A.x", 161, "not A.x", "levels deep")
    # parentheses are not nodes: 50 pairs around a number are fine
    assert compile_condition("(" * 50 + "1" + ")" * 50).ops == (CONST,)


def test_too_many_signals():
    text = " + ".join(f"D.s{i}" for i in range(MAX_SIGNALS + 1))
    rejects(text, text.index(f"D.s{MAX_SIGNALS}") + 1, f"D.s{MAX_SIGNALS}",
            f"more than {MAX_SIGNALS} different signals")
    ok = compile_condition(" + ".join(f"D.s{i}" for i in range(MAX_SIGNALS)) + " + D.s0")
    assert len(ok.signals) == MAX_SIGNALS
    check_well_formed(ok)


@pytest.mark.parametrize("digits", [309, 400, MAX_LENGTH - 6])
def test_huge_integer_literal(digits):
    # beyond float64, like 1e999: +inf (and -inf with a minus)
    assert compile_condition("A.x > " + "9" * digits).consts == (math.inf,)
    assert compile_condition("A.x > -" + "9" * min(digits, MAX_LENGTH - 7)).threshold() == (GT, -math.inf)


def test_huge_integer_beyond_python_digit_limit():
    # more than 4300 digits would make int() raise ValueError; the length limit comes first
    rejects("9" * 5000, None, "", f"longer than {MAX_LENGTH}")
    assert compile_condition("0x" + "f" * (MAX_LENGTH - 2)).consts == (math.inf,)


def test_1e999_is_inf():
    """An overflowing float literal is +inf (Python's own parsing), unlike an overflowing
    integer literal, which is refused (test_huge_integer_literal)."""
    assert compile_condition("1e999").consts == (INF,)
    assert compile_condition("A.x < " + "1" * 400 + ".0").consts == (INF,)
    p = compile_condition("A.x < 1e999")
    assert evaluate(p, [1e308]) is True
    assert evaluate(p, [INF]) is False
    assert evaluate(compile_condition("-1e999 < A.x"), [-1e308]) is True


def test_bool_constants_are_rejected_but_comparisons_are_numbers():
    """``True``/``False`` are not numbers of the language (documented: only numbers), while
    a comparison's result is 1.0 or 0.0 and may be used in arithmetic."""
    rejects("True", 1, "True", "bool constants")
    rejects("A.x == (B.y > 1) == False", 21, "False", "bool constants")
    assert evaluate(compile_condition("(A.x > 1) * 2 == 2"), [5.0]) is True


def test_constant_conditions_compile():
    """A condition need not reference a signal (it is then constantly true or false)."""
    p = compile_condition("1 < 2")
    assert p.signals == ()
    assert evaluate(p, []) is True


def test_blank_around_the_text_is_ignored():
    for text in ["  A.x > 1  ", "\tA.x > 1", "\xa0A.x > 1", "A.x > 1\x0c"]:
        assert compile_condition(text).ops == (LOAD, CONST, GT)


# -- bugs found, documented as strict xfails -----------------------------------------------

@settings(max_examples=100, deadline=None)
@example(before="Aq.x + ", names=["a"])
@example(before="", names=list("abcdefghijkl"))
@example(before="q.x + ", names=["a"])
@given(before=st.sampled_from(["", "A.x + ", "Aq.x + ", "qq.x + ", "Freq.x + ", "é.q + "]),
       names=st.lists(st.text(st.sampled_from("abé µ.q温"), min_size=1, max_size=4)
                       .filter(str.strip), min_size=1, max_size=12))
def test_columns_after_any_quoted_names(before, names):
    text = before + "".join(f"`{n}`.v + " for n in names) + "(D.e // 2)"
    rejects(text, text.index("D.e // 2") + 1, "D.e // 2", "'//'")


def test_syntax_error_column_after_short_quoted_name():
    text = "q.x + `a`.x > ;"
    rejects(text, text.index(";") + 1, "", "syntax error")


@pytest.mark.parametrize("text", ["-" * 39 + "A.x", "not " * 39 + "A.x", "-" * 45 + "A.x"])
def test_too_deep_error_names_a_part(text):
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    e = info.value
    assert "levels deep" in e.reason
    assert e.column is not None and e.part
    assert text[e.column - 1:].startswith(e.part)


@pytest.mark.parametrize("text", ["`a b` > 1", "`abs`(A.x)", "A.x > 1 and `b c`.d(1)"])
def test_messages_show_quoted_names(text):
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    assert "q0_" not in str(info.value) and "q1_" not in str(info.value)


def test_min_max_arity_message_states_the_upper_limit():
    text = "min(" + ", ".join(["1"] * (MAX_SIGNALS + 1)) + ")"
    with pytest.raises(ConditionError) as info:
        compile_condition(text)
    assert str(MAX_SIGNALS) in info.value.reason


@pytest.mark.parametrize("text", ["Meter.µV > 1", "Ａ.x > 1", "A.ﬁeld > 1"])
def test_unquoted_names_are_taken_literally(text):
    # Python would NFKC-normalise the identifier (µ -> μ): refused, and backticks keep it
    written = text.split(" ")[0]
    assert unicodedata.normalize("NFKC", written) != written
    with pytest.raises(ConditionError, match="put the name in backticks"):
        compile_condition(text)
    device, signal = written.split(".")
    assert compile_condition(f"`{device}`.`{signal}` > 1").signals == (written,)


@pytest.mark.parametrize("text", ["Pump.Flow#2 > 5", "A.x > 1 # and B.y > 2"])
def test_hash_is_not_a_silent_comment(text):
    with pytest.raises(ConditionError):
        compile_condition(text)


# -- fuzzing: a Program or a ConditionError, nothing else ----------------------------------

_ALPHABET = ("AxBy.`() +-*/%<>=!~&|^@,:;'\"#\\[]{}0123456789eEjq_ \t\x00\n\r\x0c\x0b"
             "éµﬁ温Ａ\u2028\xa0\x85")
_TOKENS = ["A.x", "B.y", "`a b`", "`", "``", "abs(", "min(", "max(", ")", "(", " and ", " or ",
           "not ", "lambda:", "__import__", "__class__", ".latest", "1e999", "0x", "q0_", "qq0_",
           "1j", " if ", " else ", " for ", " in ", " is ", "True", "None", "'", "f'", "b'",
           ":=", "**", "//", ",", "*", "#", "1", "0.5", "-", "<", "<=", "==", "!=", "A.x.y",
           "open(", "eval(", "yield ", "await ", "{", "}", "[", "]", ".", "9" * 400]
_OPEN = {"(": ")", "abs(": ")", "-(": ")", "[": "]", "min(1,": ")", "{": "}", "f'{": "}'",
         "-": "", "+": "", "not ": "", "~": "", "lambda:": "", "A.x if 1 else ": "",
         "A.x ** ": "", "A.x < ": "", "`": "`"}

_soup = st.lists(st.sampled_from(_TOKENS + list(_ALPHABET)), max_size=60).map("".join)
_chars = st.one_of(st.characters(), st.characters(categories=["Cs"]),
                   st.sampled_from(_ALPHABET))
_nested = st.builds(lambda n, pre, core: pre * n + core + _OPEN[pre] * n,
                    st.integers(0, 1200), st.sampled_from(sorted(_OPEN)),
                    st.sampled_from(["1", "A.x", "A.x > 1", "", "x", "`a b`.c"]) | _soup)
_digits = st.builds(lambda pre, d, n, tail: pre + d * n + tail,
                    st.sampled_from(["", "A.x > ", "-", "0x", "1."]),
                    st.sampled_from(["1", "9", "0", "f"]), st.integers(290, 5000),
                    st.sampled_from(["", ".0", "e5", "e-400", " > A.x", "j", "_1"]))
TEXTS = st.one_of(st.text(max_size=80), st.text(_chars, max_size=200), _soup, _nested, _digits)


def outcome(text) -> Program | ConditionError:
    """compile_condition's result, or the ConditionError it raised; anything else escapes."""
    try:
        p = compile_condition(text)
    except ConditionError as e:
        assert isinstance(e.reason, str) and e.reason
        assert e.column is None or (isinstance(e.column, int) and e.column >= 1)
        assert isinstance(e.part, str)
        return e
    check_well_formed(p)
    # and it runs: truth of every signal at a few values
    for v in (0.0, 1.0, NAN, -INF):
        assert evaluate(p, [v] * len(p.signals)) in (True, False)
    return p


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("(" * 1200 + ")" * 1200)
@example("-" * 999 + "1")
@example("not " * 249 + "1")
@example("A.x<" * 199 + "1")
@example("[" * 999)
@example("9" * 999)
@example("9" * 4400)
@example("1" * 400 + ".0")
@example("`" * 999)
@example("``" * 500)
@example("q" * 990 + "`a`.b")
@example("f'{" * 100 + "}'" * 100)
@example("lambda:" * 140 + "1")
@example("\ud800")
@example("`\ud800`.x > 1")
@example("`\ud800` > 1")
@given(TEXTS)
def test_fuzz_text(text):
    event(type(outcome(text)).__name__)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_decoded_bytes(data):
    outcome(data.decode("utf-8", errors="surrogateescape"))


# -- fuzzing Python expression trees -----------------------------------------------------

_NAMES = ["A", "B", "x", "abs", "min", "max", "open", "eval", "exec", "__import__",
          "__builtins__", "__class__", "q0_", "latest", "print", "getattr", "rtoc_probe"]
_ATTRS = ["x", "y", "latest", "__class__", "__dict__", "__globals__", "foo", "system", "mro",
          "__subclasses__"]
_BINOPS = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow, ast.FloorDiv, ast.MatMult,
           ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift]
_UNOPS = [ast.USub, ast.UAdd, ast.Not, ast.Invert]
_CMPOPS = [ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In,
           ast.NotIn]
_LOAD = ast.Load()


def _name(i: str, ctx=_LOAD) -> ast.Name:
    return ast.Name(id=i, ctx=ctx)


_constants = st.one_of(
    st.integers(-(10**6), 10**6), st.integers(10**300, 10**320), st.floats(),
    st.complex_numbers(allow_nan=False, allow_infinity=False, max_magnitude=1e6),
    st.text(max_size=4), st.binary(max_size=4), st.booleans(), st.none(), st.just(...),
).map(lambda v: ast.Constant(value=v))
_leaves = _constants | st.sampled_from(_NAMES).map(_name)


def _extend(child):
    args = st.lists(child | child.map(lambda c: ast.Starred(value=c, ctx=_LOAD)), max_size=3)
    keywords = st.lists(st.builds(ast.keyword, arg=st.sampled_from([None, "key", "b"]),
                                  value=child), max_size=1)
    comp = st.builds(lambda it: [ast.comprehension(target=_name("v", ast.Store()), iter=it,
                                                   ifs=[], is_async=0)], child)
    no_args = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                            kw_defaults=[], kwarg=None, defaults=[])
    return st.one_of(
        st.builds(ast.Attribute, value=child, attr=st.sampled_from(_ATTRS), ctx=st.just(_LOAD)),
        st.builds(ast.Call, func=child | st.sampled_from(_NAMES).map(_name), args=args,
                  keywords=keywords),
        st.builds(ast.Call, func=st.sampled_from(["abs", "min", "max"]).map(_name),
                  args=st.lists(child, max_size=4), keywords=st.just([])),
        st.builds(ast.Subscript, value=child,
                  slice=child | st.builds(ast.Slice, lower=child, upper=child),
                  ctx=st.just(_LOAD)),
        st.builds(ast.Lambda, args=st.just(no_args), body=child),
        st.builds(ast.BinOp, left=child, op=st.sampled_from(_BINOPS).map(lambda o: o()),
                  right=child),
        st.builds(ast.UnaryOp, op=st.sampled_from(_UNOPS).map(lambda o: o()), operand=child),
        st.builds(ast.BoolOp, op=st.sampled_from([ast.And(), ast.Or()]),
                  values=st.lists(child, min_size=2, max_size=3)),
        st.builds(lambda left, pairs: ast.Compare(left=left, ops=[o() for o, _ in pairs],
                                                  comparators=[c for _, c in pairs]),
                  child, st.lists(st.tuples(st.sampled_from(_CMPOPS), child), min_size=1,
                                  max_size=3)),
        st.builds(ast.IfExp, test=child, body=child, orelse=child),
        st.builds(ast.NamedExpr, target=st.sampled_from(["y", "A"]).map(
            lambda i: _name(i, ast.Store())), value=child),
        st.builds(ast.ListComp, elt=child, generators=comp),
        st.builds(ast.GeneratorExp, elt=child, generators=comp),
        st.builds(ast.SetComp, elt=child, generators=comp),
        st.builds(ast.List, elts=st.lists(child, max_size=2), ctx=st.just(_LOAD)),
        st.builds(ast.Tuple, elts=st.lists(child, max_size=2), ctx=st.just(_LOAD)),
        st.builds(ast.Set, elts=st.lists(child, min_size=1, max_size=2)),
        st.builds(lambda kv: ast.Dict(keys=[k for k, _ in kv], values=[v for _, v in kv]),
                  st.lists(st.tuples(child, child), max_size=2)),
        st.builds(lambda v: ast.JoinedStr(values=[ast.Constant("a"), ast.FormattedValue(
            value=v, conversion=-1, format_spec=None)]), child),
        st.builds(ast.Await, value=child),
        st.builds(ast.Yield, value=child),
    )


EXPRS = st.recursive(_leaves, _extend, max_leaves=12)
# signal-like pieces so that a good share of the trees are in (or close to) the language
_in_lang_leaves = st.one_of(
    st.integers(0, 1000).map(lambda v: ast.Constant(v)),
    st.floats(0, 1e6).map(lambda v: ast.Constant(v)),
    st.sampled_from([("A", "x"), ("B", "y"), ("A", "latest"), ("A", "x", "latest")]).map(
        lambda parts: _attr_chain(parts)),
)


def _extend_lang(child):
    """Constructs of the language only."""
    return st.one_of(
        st.builds(ast.BinOp, left=child, right=child, op=st.sampled_from(
            [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow]).map(lambda o: o())),
        st.builds(ast.UnaryOp, operand=child, op=st.sampled_from(
            [ast.USub, ast.UAdd, ast.Not]).map(lambda o: o())),
        st.builds(ast.BoolOp, op=st.sampled_from([ast.And(), ast.Or()]),
                  values=st.lists(child, min_size=2, max_size=3)),
        st.builds(lambda left, pairs: ast.Compare(left=left, ops=[o() for o, _ in pairs],
                                                  comparators=[c for _, c in pairs]),
                  child, st.lists(st.tuples(st.sampled_from(_CMPOPS[:6]), child), min_size=1,
                                  max_size=3)),
        st.builds(lambda a: ast.Call(func=_name("abs"), args=[a], keywords=[]), child),
        st.builds(lambda f, args: ast.Call(func=_name(f), args=args, keywords=[]),
                  st.sampled_from(["min", "max"]), st.lists(child, min_size=2, max_size=4)),
    )


class _Replace(ast.NodeTransformer):
    """Replace the k-th expression node (in visiting order, k modulo their number)."""

    def __init__(self, k: int, new: ast.expr):
        self.k, self.new, self.seen = k, new, 0

    def visit(self, node):
        if isinstance(node, ast.expr):
            self.seen += 1
            if self.seen - 1 == self.k:
                return self.new
        return self.generic_visit(node)


def _corrupt(tree: ast.expr, k: int, bad: ast.expr) -> ast.expr:
    count = sum(isinstance(n, ast.expr) for n in ast.walk(tree))
    return _Replace(k % count, bad).visit(tree)


LANG_EXPRS = st.recursive(_in_lang_leaves, _extend_lang, max_leaves=8)
# a tree of the language, or one with a single node swapped for anything at all
NEAR_EXPRS = LANG_EXPRS | st.builds(_corrupt, LANG_EXPRS, st.integers(0, 50), EXPRS)


def _attr_chain(parts):
    node: ast.expr = _name(parts[0])
    for p in parts[1:]:
        node = ast.Attribute(value=node, attr=p, ctx=_LOAD)
    return node


def in_language(node: ast.AST) -> bool:  # noqa: C901 - one branch per construct
    """An independent statement of the whitelist (the module docstring's language)."""
    match node:
        case ast.Constant(value=v):
            return type(v) in (int, float)
        case ast.Attribute():
            parts, cur = [], node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if not isinstance(cur, ast.Name):
                return False
            parts.append(cur.id)
            parts.reverse()
            if len(parts) == 3 and parts[2] == "latest":
                parts.pop()
            return len(parts) == 2 and not any(p.startswith("__") for p in parts)
        case ast.UnaryOp(op=op, operand=a):
            return isinstance(op, (ast.USub, ast.UAdd, ast.Not)) and in_language(a)
        case ast.BinOp(left=a, op=op, right=b):
            ok = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow)
            return isinstance(op, ok) and in_language(a) and in_language(b)
        case ast.BoolOp(values=vs):
            return all(in_language(v) for v in vs)
        case ast.Compare(left=a, ops=ops, comparators=cs):
            ok = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
            return all(isinstance(o, ok) for o in ops) and all(in_language(c) for c in [a, *cs])
        case ast.Call(func=ast.Name(id=f), args=args, keywords=[]):
            arity = {"abs": (1, 1), "min": (2, MAX_SIGNALS), "max": (2, MAX_SIGNALS)}.get(f)
            return (arity is not None and arity[0] <= len(args) <= arity[1]
                    and all(in_language(a) for a in args))
    return False


_LIMIT_REASONS = ("levels deep", "different signals", "longer than", "too large")


def check_tree(tree: ast.expr) -> None:
    try:
        text = ast.unparse(ast.fix_missing_locations(tree))
    except ValueError:  # ast.unparse cannot write some strings inside f-strings (3.11)
        reject()
    result = outcome(text)
    event(type(result).__name__)
    try:
        parsed = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError):
        assert isinstance(result, ConditionError)
        return
    if isinstance(result, Program):
        assert in_language(parsed), text          # nothing outside the whitelist compiles
    elif in_language(parsed) and "\n" not in text:
        assert any(r in result.reason for r in _LIMIT_REASONS), (text, result)


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRS)
def test_fuzz_python_trees(tree):
    check_tree(tree)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NEAR_EXPRS)
def test_fuzz_trees_near_the_language(tree):
    check_tree(tree)


# -- nothing is ever executed ------------------------------------------------------------

_AUDIT: dict[str, object] = {"thread": None, "events": []}
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    # 'compile' is ast.parse itself (compile(..., PyCF_ONLY_AST)); anything else recorded
    # while armed (exec, import, open, os.system, subprocess.Popen ...) means code ran
    if _AUDIT["thread"] == threading.get_ident() and event != "compile":
        _AUDIT["events"].append(event)


class _Recorder:
    """Stands in for builtins and sentinel names; records any use."""

    def __init__(self, log: list[str], name: str):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        self._log.append(f"{self._name}()")

    def __getattribute__(self, attr):
        if attr not in ("_log", "_name", "__call__", "__class__"):
            object.__getattribute__(self, "_log").append(f"{object.__getattribute__(self, '_name')}.{attr}")
        return object.__getattribute__(self, attr)


def compile_guarded(text: str) -> tuple[Program | ConditionError, list[str], list[str]]:
    """Compile with every dangerous builtin and two sentinel names replaced by recorders
    and an audit hook armed; returns (outcome, recorded uses, audit events)."""
    if not _HOOKED:
        sys.addaudithook(_audit)  # cannot be removed; it only records while armed
        _HOOKED.append(True)
    log: list[str] = []
    # (not getattr: compile_condition itself reads optional ast fields with it)
    names = ("__import__", "open", "eval", "exec", "breakpoint", "input", "exit", "quit",
             "print", "globals", "vars", "setattr", "delattr", "rtoc_probe", "Sentinel")
    saved = {n: builtins.__dict__[n] for n in names if n in builtins.__dict__}
    builtins.__dict__.update({n: _Recorder(log, n) for n in names})
    _AUDIT["events"] = events = []
    _AUDIT["thread"] = threading.get_ident()
    try:
        try:
            result: Program | ConditionError = compile_condition(text)
        except ConditionError as e:
            result = e
    finally:
        _AUDIT["thread"] = None
        for n in names:
            if n in saved:
                builtins.__dict__[n] = saved[n]
            else:
                del builtins.__dict__[n]
    return result, log, events


_EFFECTS = [
    "rtoc_probe()", "rtoc_probe(A.x)", "__import__('os').system('touch /tmp/rtoc-probe')",
    "open('/tmp/rtoc-probe', 'w')", "exec('rtoc_probe()')", "eval('rtoc_probe()')",
    "breakpoint()", "input()", "exit()", "A.x.__class__.__subclasses__()",
    "(lambda: rtoc_probe())()", "[rtoc_probe() for _ in A.x]", "rtoc_probe.__call__()",
    "getattr(rtoc_probe, 'x')", "Sentinel.__class__", "f'{rtoc_probe()}'",
    "(rtoc_probe := 1)", "{rtoc_probe(): 1}", "rtoc_probe() if A.x else 1", "Sentinel.x()",
    "Sentinel.x.y", "Sentinel[0]", "print(1)", "globals()", "vars()", "min(rtoc_probe(), 1)",
    "abs(__import__('os'))", "max(A.x, open('x'))", "`a b`.c(rtoc_probe())",
    "(yield rtoc_probe())", "A.x + ~rtoc_probe()", "A.x // rtoc_probe()",
]
_CONTEXTS = [("", ""), ("A.x > 1 and ", ""), ("not ", ""), ("abs(", ")"), ("-", ""),
             ("min(1, ", ")"), ("0 < ", " < 1"), ("", " > 0"), ("`a b`.c + ", ""),
             ("1 if ", " else 0"), ("(", ") or B.y")]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_EFFECTS), st.sampled_from(_CONTEXTS))
def test_fuzz_never_executes(effect, context):
    text = context[0] + effect + context[1]
    result, log, events = compile_guarded(text)
    assert isinstance(result, ConditionError), text
    assert log == [] and events == [], (text, log, events)


@pytest.mark.parametrize("text", ["Sentinel.x > 1", "rtoc_probe.latest < Sentinel.y",
                                  "abs(Sentinel.x - rtoc_probe.y) > 2", "`Sentinel`.x"])
def test_valid_condition_never_touches_like_named_objects(text):
    """A signal whose device is called like a live object compiles to a Program without the
    object being looked up."""
    result, log, events = compile_guarded(text)
    assert isinstance(result, Program)
    assert log == [] and events == []


def test_guard_detects_execution():
    """The recorders and the audit hook do see code running (so the tests above can fail)."""
    _, log, events = compile_guarded("A.x")
    assert log == [] and events == []
    log = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builtins, "rtoc_probe", _Recorder(log, "rtoc_probe"), raising=False)
        exec_ = builtins.exec
        _AUDIT["events"] = events = []
        _AUDIT["thread"] = threading.get_ident()
        try:
            exec_("rtoc_probe()")  # what compile_condition must never do
        finally:
            _AUDIT["thread"] = None
    assert log == ["rtoc_probe()"] and "exec" in events


_DANGEROUS_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "globals", "locals",
                    "vars", "getattr", "setattr", "delattr"}
_ALLOWED_ATTR_CALLS = {("re", "compile")}  # a regular expression, not Python code


@pytest.mark.parametrize("rel", ["rtoc/events/language.py", "pipeline/condition_kernels.py",
                                 "pipeline/evaluator.py"])
def test_no_code_execution_in_source(rel):
    """A cheap guard: none of the condition modules calls eval/exec/compile (or imports a
    way around them)."""
    source = (ROOT / rel).read_text()
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls, "no calls found: wrong file?"
    for n in calls:
        f = n.func
        if isinstance(f, ast.Name):
            # condition.py's one getattr reads an ast node's optional column (a constant name)
            if f.id == "getattr" and isinstance(n.args[1], ast.Constant):
                continue
            assert f.id not in _DANGEROUS_CALLS, f"{rel}:{n.lineno} calls {f.id}"
        elif isinstance(f, ast.Attribute) and f.attr in _DANGEROUS_CALLS:
            owner = f.value.id if isinstance(f.value, ast.Name) else ""
            assert (owner, f.attr) in _ALLOWED_ATTR_CALLS, f"{rel}:{n.lineno} calls .{f.attr}"
    imported = {a.name.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"builtins", "importlib", "pickle", "marshal", "types", "code",
                           "codeop", "runpy", "subprocess", "os"}
