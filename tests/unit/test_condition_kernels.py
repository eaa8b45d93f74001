"""The numba kernels of conditions (rtoc.pipeline.condition_kernels) beside their references.

Each kernel is compared with its plain-Python reference on random input (hypothesis), the
trigger and the merge are checked to give the same result however a stream is split into
batches, and the trigger's semantics are spot-checked on streams worked out by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, reject, settings
from hypothesis import strategies as st
from rtoc.pipeline.condition_kernels import (
    BLOCK,
    BOTH,
    FALLING,
    LAST_FIRE,
    MODES,
    PENDING,
    PREV,
    RISING,
    RUN_START,
    STATE_SIZE,
    TRUE,
    _binary,
    compare_const,
    eval_program,
    merge_hold,
    merge_hold_reference,
    new_trigger_state,
    trigger,
    trigger_reference,
)
from rtoc.pipeline.condition_kernels import FALSE as FALSE_MODE

import rtoc.events.language as C
from rtoc.errors import ConditionError
from rtoc.events.language import Program, apply_binary, compile_condition, evaluate

NAN, INF = math.nan, math.inf
BINARY_OPS = [C.ADD, C.SUB, C.MUL, C.DIV, C.MOD, C.POW, C.LT, C.LE, C.GT, C.GE, C.EQ, C.NE,
              C.AND, C.OR, C.MIN2, C.MAX2]
COMPARE_OPS = {C.LT: np.less, C.LE: np.less_equal, C.GT: np.greater, C.GE: np.greater_equal,
               C.EQ: np.equal, C.NE: np.not_equal}
SPECIALS = [
    0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 7.0, -7.0, 0.5, -0.5, 2.5, -2.5, 1 / 3, -1 / 3,
    0.1, INF, -INF, NAN, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300, 1e300,
    -1e300, 1e308, -1e308, 1.7976931348623157e308, 1e16, 9007199254740993.0, 1e22, 1023.0,
    -1024.0, 0.9999999999999999, 1.0000000000000002,
]


def same_float(a: float, b: float) -> bool:
    """Equal (with the sign of zero) or both NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# -- the scalar operators --------------------------------------------------------------

@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary_matches_reference_on_special_values(op):
    bad = []
    for a, b in itertools.product(SPECIALS, SPECIALS):
        ref = apply_binary(op, a, b)
        got = _binary(op, a, b)
        if not same_float(ref, got):
            bad.append((a, b, ref, got))
    assert not bad, f"op {op}: {bad[:10]}"


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(BINARY_OPS), a=st.floats() | st.sampled_from(SPECIALS),
       b=st.floats() | st.sampled_from(SPECIALS))
@example(op=C.POW, a=-8.0, b=1 / 3)     # negative base, fractional exponent: NaN
@example(op=C.POW, a=-0.0, b=-3.0)      # -inf
@example(op=C.POW, a=-0.0, b=-0.5)      # +inf
@example(op=C.POW, a=0.0, b=-INF)
@example(op=C.POW, a=-1.0, b=INF)       # 1.0 in C
@example(op=C.POW, a=NAN, b=0.0)        # 1.0 in C
@example(op=C.POW, a=10.0, b=400.0)     # overflow: inf
@example(op=C.POW, a=-10.0, b=401.0)    # -inf
@example(op=C.MOD, a=-0.0, b=5.0)
@example(op=C.MOD, a=5.0, b=-INF)
@example(op=C.MOD, a=-5.0, b=INF)
@example(op=C.DIV, a=-0.0, b=0.0)
@example(op=C.DIV, a=-1.0, b=-0.0)
def test_binary_matches_reference_random(op, a, b):
    assert same_float(apply_binary(op, a, b), _binary(op, a, b)), (op, a, b)


def test_binary_spot_values():
    assert _binary(C.DIV, 1.0, -0.0) == -INF
    assert math.isnan(_binary(C.DIV, 0.0, 0.0))
    assert _binary(C.MOD, -7.0, 3.0) == 2.0
    assert _binary(C.MOD, 7.0, -3.0) == -2.0
    assert math.isnan(_binary(C.MOD, 1.0, 0.0))
    assert math.isnan(_binary(C.POW, -8.0, 1 / 3))
    assert _binary(C.POW, 0.0, -1.0) == INF
    assert _binary(C.POW, -0.0, -1.0) == -INF
    assert math.isnan(_binary(C.MIN2, 1.0, NAN)) and math.isnan(_binary(C.MAX2, NAN, 1.0))
    assert _binary(C.AND, NAN, 1.0) == 0.0 and _binary(C.OR, NAN, 2.0) == 1.0


# -- the program interpreter -----------------------------------------------------------

_SIGNALS = ["A.x", "B.y", "`C z`.w", "A.x.latest"]
_NUMBERS = ["0", "1", "2", "3", "7", "0.5", "0.0", "1e300", "1e-300", "1e308", "1e999",
            "(1e999 - 1e999)", "1_000", "0x10"]
_BIN = ["+", "-", "*", "/", "%", "**", "<", "<=", ">", ">=", "==", "!=", "and", "or"]
_CMP = ["<", "<=", ">", ">=", "==", "!="]


def _grow(child):
    return st.one_of(
        st.builds(lambda op, a: f"{op}({a})", st.sampled_from(["-", "+", "not ", "abs"]), child),
        st.builds(lambda a, op, b: f"({a} {op} {b})", child, st.sampled_from(_BIN), child),
        st.builds(lambda a, o1, b, o2, c: f"({a} {o1} {b} {o2} {c})", child,
                  st.sampled_from(_CMP), child, st.sampled_from(_CMP), child),
        st.builds(lambda f, args: f"{f}({', '.join(args)})", st.sampled_from(["min", "max"]),
                  st.lists(child, min_size=2, max_size=4)),
    )


CONDITIONS = st.recursive(st.sampled_from(_SIGNALS) | st.sampled_from(_NUMBERS), _grow,
                          max_leaves=10)
_POOL = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 3.0, 7.0, NAN, INF, -INF, 1e308, -1e308,
                  5e-324, 1e-300, 1e300])


def random_columns(seed: int, k: int, m: int) -> np.ndarray:
    """float64[k, m]: special values and ordinary ones, mixed."""
    rng = np.random.default_rng(seed)
    special = rng.choice(_POOL, size=(k, m))
    ordinary = np.where(rng.random((k, m)) < 0.5, rng.integers(-3, 4, (k, m)),
                        rng.normal(0, 10, (k, m)))
    return np.where(rng.random((k, m)) < 0.5, special, ordinary).astype(np.float64)


def kernel_truth(p: Program, cols: np.ndarray, m: int) -> np.ndarray:
    out = np.full(m, 7, np.uint8)  # 7: a value the kernel never writes
    eval_program(np.array(p.ops, np.int64), np.array(p.args, np.int64),
                 np.array(p.consts, np.float64), p.depth, np.ascontiguousarray(cols), out)
    return out


def reference_truth(p: Program, cols: np.ndarray, m: int) -> np.ndarray:
    return np.array([evaluate(p, cols[:, i].tolist()) for i in range(m)], np.uint8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=CONDITIONS, m=st.sampled_from([0, 1, 2, 7, 64, 511, 512, 513, 1030]),
       extra=st.sampled_from([0, 0, 3]), seed=st.integers(0, 2**32 - 1))
@example(text="((A.x / B.y) % `C z`.w) ** 0.5 < max(A.x, 1, B.y)", m=1030, extra=0, seed=1)
@example(text="not (0 < A.x <= B.y != `C z`.w)", m=513, extra=3, seed=2)
def test_eval_program_matches_evaluate(text, m, extra, seed):
    try:
        p = compile_condition(text)
    except ConditionError:  # nested too deep: not what this test is about
        reject()
    if not p.signals and m > 1:  # a constant condition: one sample says it all
        m = 1
    event(f"signals: {len(p.signals)}, m: {m}")
    cols = random_columns(seed, len(p.signals), m + extra)  # wider than out is allowed
    assert np.array_equal(kernel_truth(p, cols, m), reference_truth(p, cols, m))


@pytest.mark.parametrize("m", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 37])
def test_eval_program_block_edges(m):
    p = compile_condition("min(A.x, B.y) ** 2 % 3 < abs(A.x - 1) or not B.y")
    cols = random_columns(m, 2, m)
    expected = reference_truth(p, cols, m)
    assert np.array_equal(kernel_truth(p, cols, m), expected)
    if m > 3:  # not all the same, or the comparison proves little
        assert 0 < expected.sum() < m


def test_eval_program_by_hand():
    p = compile_condition("0 < A.x < B.y")
    cols = np.array([[0.5, 0.5, NAN, -1.0, 2.0], [1.0, 0.5, 1.0, 0.0, INF]])
    assert kernel_truth(p, cols, 5).tolist() == [1, 0, 0, 0, 1]


def test_eval_program_reads_only_the_first_m_columns():
    p = compile_condition("A.x > 0")
    cols = np.array([[1.0, -1.0, 1.0, 1.0, 1.0]])
    assert kernel_truth(p, cols, 3).tolist() == [1, 0, 1]


# -- the fused threshold ---------------------------------------------------------------

@pytest.mark.parametrize("op", sorted(COMPARE_OPS))
@pytest.mark.parametrize("c", [0.0, -0.0, 1.5, -2.0, NAN, INF, -INF, 5e-324])
def test_compare_const_matches_numpy(op, c):
    y = random_columns(op * 100 + 7, 1, 300)[0]
    y[:4] = [c, NAN, -0.0, INF]
    out = np.full(len(y), 7, np.uint8)
    compare_const(y, op, float(c), out)
    with np.errstate(invalid="ignore"):
        expected = COMPARE_OPS[op](y, c).astype(np.uint8)
    assert np.array_equal(out, expected)


def test_compare_const_empty():
    out = np.empty(0, np.uint8)
    compare_const(np.empty(0), C.GT, 1.0, out)
    assert out.shape == (0,)


@settings(max_examples=120, deadline=None)
@given(op=st.sampled_from(_CMP), c=st.sampled_from(["0", "1.5", "1e999", "0.1", "3", "0.0"]),
       flipped=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_fused_threshold_equals_the_program(op, c, flipped, seed):
    """What the engine runs for ``signal <op> constant`` (compare_const with
    Program.threshold()) gives what the general interpreter gives."""
    p = compile_condition(f"{c} {op} A.x" if flipped else f"A.x {op} {c}")
    code, const = p.threshold()
    y = random_columns(seed, 1, 200)
    y[0, :3] = [float(c), NAN, -0.0]
    fused = np.full(200, 7, np.uint8)
    compare_const(y[0], code, const, fused)
    assert np.array_equal(fused, kernel_truth(p, y, 200))


# -- the trigger ----------------------------------------------------------------------

def run_trigger(t, c, mode, hold, cooldown, state=None) -> list[int]:
    state = new_trigger_state() if state is None else state
    t = np.asarray(t, np.float64)
    c = np.asarray(c, np.uint8)
    out = np.full(len(t), -1, np.int64)
    k = trigger(t, c, mode, float(hold), float(cooldown), state, out)
    assert (out[k:] == -1).all()
    return out[:k].tolist()


@st.composite
def trigger_streams(draw, max_runs=12):
    """(t, c): non-decreasing times (repeats too) and truth values in runs."""
    runs = draw(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 6)), max_size=max_runs))
    c = [v for v, n in runs for _ in range(n)]
    steps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 1.7, 3.0]),
                          min_size=len(c), max_size=len(c)))
    t0 = draw(st.sampled_from([0.0, 1.7e9, -5.0]))
    return t0 + np.cumsum(np.array(steps, np.float64)), np.array(c, np.uint8)


_HOLDS = st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0]) | st.floats(0, 6)
_MODES = st.sampled_from(sorted(MODES.values()))


@settings(max_examples=400, deadline=None)
@given(stream=trigger_streams(), mode=_MODES, hold=_HOLDS, cooldown=_HOLDS,
       cuts=st.lists(st.integers(0, 80), max_size=4))
def test_trigger_matches_reference(stream, mode, hold, cooldown, cuts):
    """Batch by batch, same firings and same state (so also from a non-fresh state)."""
    t, c = stream
    bounds = [0, *sorted(min(x, len(t)) for x in cuts), len(t)]
    ks, rs = new_trigger_state(), new_trigger_state()
    for a, b in itertools.pairwise(bounds):
        got = run_trigger(t[a:b], c[a:b], mode, hold, cooldown, ks)
        ref = trigger_reference(t[a:b], c[a:b], mode, hold, cooldown, rs)
        assert got == ref
        assert np.array_equal(ks, rs)


@settings(max_examples=400, deadline=None)
@given(stream=trigger_streams(max_runs=16), mode=_MODES, hold=_HOLDS, cooldown=_HOLDS,
       cuts=st.lists(st.integers(0, 100), max_size=8))
def test_trigger_split_invariance(stream, mode, hold, cooldown, cuts):
    """Any split into batches (empty ones too) gives the same firings as one call."""
    t, c = stream
    whole_state = new_trigger_state()
    whole = run_trigger(t, c, mode, hold, cooldown, whole_state)
    state = new_trigger_state()
    split: list[int] = []
    bounds = [0, *sorted(min(x, len(t)) for x in cuts), len(t)]
    for a, b in itertools.pairwise(bounds):
        split += [a + i for i in run_trigger(t[a:b], c[a:b], mode, hold, cooldown, state)]
    assert split == whole
    assert np.array_equal(state, whole_state)


def test_trigger_modes_and_state_layout():
    assert MODES == {"rising": RISING, "falling": FALLING, "both": BOTH, "true": TRUE,
                     "false": FALSE_MODE}
    s = new_trigger_state()
    assert s.dtype == np.float64 and s.shape == (STATE_SIZE,)
    assert s[PREV] == -1.0 and s[PENDING] == 0.0 and s[LAST_FIRE] == -INF
    assert run_trigger([], [], RISING, 0, 0, s) == []
    assert s[PREV] == -1.0 and s[RUN_START] == 0.0 and s[LAST_FIRE] == -INF


T5 = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize(("mode", "c", "expected"), [
    # rising: the very first sample counts when true
    (RISING, [1, 1, 0, 1], [0, 3]),
    (RISING, [0, 0, 1, 1, 0, 1], [2, 5]),
    (RISING, [0, 0, 0], []),
    # falling needs a real true -> false: a stream starting false does not fire
    (FALLING, [1, 1, 0, 0, 1, 0], [2, 5]),
    (FALLING, [0, 0, 1, 0], [3]),
    (FALLING, [0], []),
    (FALLING, [1, 1, 1], []),
    # both: either edge, the first sample only when true
    (BOTH, [1, 0, 0, 1], [0, 1, 3]),
    (BOTH, [0, 1, 0], [1, 2]),
    # true / false: every sample of that value
    (TRUE, [1, 1, 0, 1], [0, 1, 3]),
    (FALSE_MODE, [1, 0, 0, 1, 0], [1, 2, 4]),
    (FALSE_MODE, [0, 0], [0, 1]),
])
def test_trigger_edges_by_hand(mode, c, expected):
    assert run_trigger(T5[:len(c)], c, mode, 0, 0) == expected
    assert trigger_reference(T5[:len(c)], c, mode, 0.0, 0.0, new_trigger_state()) == expected


@pytest.mark.parametrize(("mode", "t", "c", "hold", "expected"), [
    # fires once, at the first sample at least `hold` after the run began
    (RISING, T5[:5], [1, 1, 1, 1, 1], 2.0, [2]),
    (RISING, [0.0, 1.5, 1.9, 2.0, 2.5], [1, 1, 1, 1, 1], 2.0, [3]),   # exactly 2.0 counts
    (RISING, [0.0, 1.5, 1.9, 2.5, 3.0], [1, 1, 1, 1, 1], 2.0, [3]),   # first one past it
    # never when the run ends first (the false sample at t=2 ends it)
    (RISING, T5[:5], [1, 1, 0, 0, 0], 2.0, []),
    (RISING, T5[:6], [1, 1, 0, 1, 1, 1], 2.0, [5]),                   # the next run, at t=3+2
    # true: every sample of the run from `hold` on
    (TRUE, T5[:5], [1, 1, 1, 1, 1], 2.0, [2, 3, 4]),
    (TRUE, T5[:6], [1, 1, 1, 0, 1, 1], 2.0, [2]),
    # falling: the run of false began at t=1
    (FALLING, T5[:4], [1, 0, 0, 0], 1.5, [3]),
    (BOTH, T5[:7], [1, 1, 1, 0, 0, 0, 0], 2.0, [2, 5]),
])
def test_trigger_hold_by_hand(mode, t, c, hold, expected):
    assert run_trigger(t, c, mode, hold, 0) == expected


@pytest.mark.parametrize(("mode", "t", "c", "hold", "cooldown", "expected"), [
    # an edge during the cooldown is dropped, not deferred to when the cooldown ends
    (RISING, T5[:3], [1, 0, 1], 0.0, 5.0, [0]),
    (RISING, T5, [1, 0, 1, 1, 1, 1, 1, 1], 0.0, 5.0, [0]),
    (RISING, T5, [1, 0, 1, 0, 0, 0, 1, 1], 0.0, 5.0, [0, 6]),        # t=6: 6 - 0 >= 5
    (RISING, T5[:5], [1, 1, 0, 1, 1], 1.0, 10.0, [1]),               # held edge dropped too
    # true: at most one firing per cooldown; the bound is inclusive
    (TRUE, T5[:7], [1] * 7, 0.0, 2.5, [0, 3, 6]),
    (TRUE, T5[:4], [1] * 4, 0.0, 1.0, [0, 1, 2, 3]),
    # repeated times
    (TRUE, [0.0, 0.0, 0.0, 1.0], [1, 1, 1, 1], 0.0, 0.0, [0, 1, 2, 3]),
    (TRUE, [0.0, 0.0, 0.0, 1.0], [1, 1, 1, 1], 0.0, 0.5, [0, 3]),
    (BOTH, [0.0, 0.0, 0.0], [1, 0, 1], 0.0, 0.0, [0, 1, 2]),
    (RISING, [0.0, 0.0, 1.0, 1.0], [1, 1, 1, 1], 1.0, 0.0, [2]),
])
def test_trigger_cooldown_by_hand(mode, t, c, hold, cooldown, expected):
    assert run_trigger(t, c, mode, hold, cooldown) == expected


def test_trigger_state_carries_an_edge_across_batches():
    s = new_trigger_state()
    assert run_trigger([0.0, 1.0], [0, 1], RISING, 0, 0, s) == [1]
    assert run_trigger([2.0, 3.0], [1, 1], RISING, 0, 0, s) == []       # same run: no edge
    assert run_trigger([4.0], [0], RISING, 0, 0, s) == []
    assert run_trigger([5.0], [1], RISING, 0, 0, s) == [0]
    s = new_trigger_state()
    assert run_trigger([0.0, 1.0], [1, 1], RISING, 2.0, 0, s) == []     # hold pending ...
    assert run_trigger([2.0], [1], RISING, 2.0, 0, s) == [0]            # ... fires later


# -- the merge ------------------------------------------------------------------------

_VALUES = st.sampled_from([0.0, -1.0, 2.5, NAN, INF]) | st.floats(-100, 100)


@st.composite
def merge_streams(draw, max_k=4, max_n=10):
    """k signals, each with non-decreasing times on a coarse grid (so that times repeat
    within and across signals), their values, and a held state to start from."""
    k = draw(st.integers(1, max_k))
    streams = []
    for _ in range(k):
        n = draw(st.integers(0, max_n))
        t = sorted(float(x) for x in draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
        y = draw(st.lists(_VALUES, min_size=n, max_size=n))
        streams.append((t, y))
    has = draw(st.lists(st.integers(0, 1), min_size=k, max_size=k))
    held = [v if h else 0.0 for v, h in zip(draw(st.lists(_VALUES, min_size=k, max_size=k)),
                                              has, strict=True)]
    return streams, held, has


def run_merge(streams, held, has, release: bool, heads=None):
    """merge_hold over the streams; returns (cols[:, :r].T rows, times, sources, values,
    heads, held, has) as lists."""
    k = len(streams)
    sizes = [len(t) for t, _ in streams]
    total = sum(sizes)
    offsets = np.zeros(k + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    ts = np.array([x for t, _ in streams for x in t], np.float64)
    ys = np.array([x for _, y in streams for x in y], np.float64)
    heads = np.zeros(k, np.int64) if heads is None else heads
    held_a, has_a = np.array(held, np.float64), np.array(has, np.uint8)
    cols = np.full((k, total), -7.0)
    tm, sy = np.full(total, -7.0), np.full(total, -7.0)
    src = np.full(total, -7, np.int64)
    r = merge_hold(ts, ys, offsets, heads, release, held_a, has_a, cols, tm, src, sy)
    return (cols[:, :r].T.tolist(), tm[:r].tolist(), src[:r].tolist(), sy[:r].tolist(),
            heads.tolist(), held_a.tolist(), has_a.tolist())


def same(a, b) -> bool:
    """Nested lists equal, NaN equal to NaN."""
    return np.array_equal(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64),
                          equal_nan=True)


@settings(max_examples=400, deadline=None)
@given(case=merge_streams(), release=st.booleans())
def test_merge_matches_reference(case, release):
    streams, held, has = case
    rows, times, sources, values, heads, k_held, k_has = run_merge(streams, held, has, release)
    r_held, r_has = list(held), list(has)
    r_rows, r_times, r_sources, r_values, r_heads = merge_hold_reference(streams, r_held, r_has,
                                                                         release)
    assert len(rows) == len(r_rows)
    assert same(rows, r_rows) and times == r_times and sources == r_sources
    assert same(values, r_values) and heads == r_heads
    assert same(k_held, r_held) and k_has == [int(h) for h in r_has]


def test_merge_by_hand():
    s0 = ([1.0, 2.0], [10.0, 20.0])
    s1 = ([1.0, 3.0], [100.0, 300.0])
    # equal times: the lower signal first; no row until both have a value
    rows, times, sources, values, heads, held, has = run_merge([s0, s1], [0, 0], [0, 0], True)
    assert rows == [[10.0, 100.0], [20.0, 100.0], [20.0, 300.0]]
    assert times == [1.0, 2.0, 3.0] and sources == [1, 0, 1] and values == [100.0, 20.0, 300.0]
    assert heads == [2, 2] and held == [20.0, 300.0] and has == [1, 1]
    # without release it stops as soon as a signal has nothing pending
    rows, times, sources, _, heads, held, _ = run_merge([s0, s1], [0, 0], [0, 0], False)
    assert rows == [[10.0, 100.0], [20.0, 100.0]] and sources == [1, 0] and heads == [2, 1]
    assert held == [20.0, 100.0]
    # an empty signal holds everything back, unless released (then its held value is used)
    assert run_merge([s0, ([], [])], [0, 5.0], [0, 1], False)[0] == []
    assert run_merge([s0, ([], [])], [0, 5.0], [0, 1], True)[0] == [[10.0, 5.0], [20.0, 5.0]]


def test_merge_carried_heads():
    """``heads`` says how many were consumed before: those are skipped."""
    s0 = ([1.0, 2.0, 4.0], [10.0, 20.0, 40.0])
    s1 = ([1.0, 3.0], [100.0, 300.0])
    heads = np.array([2, 1], np.int64)
    rows, times, sources, _, heads_after, _, _ = run_merge([s0, s1], [20.0, 100.0], [1, 1],
                                                           True, heads)
    assert rows == [[20.0, 300.0], [40.0, 300.0]] and times == [3.0, 4.0]
    assert heads_after == [3, 2]


@st.composite
def merge_arrivals(draw):
    """Streams and the order their chunks arrive in (per signal in time order, chunks may
    be empty: a feed that brings nothing)."""
    streams, held, has = draw(merge_streams(max_n=12))
    chunks = []
    for j, (t, _) in enumerate(streams):
        cuts = sorted(draw(st.lists(st.integers(0, len(t)), max_size=4)))
        bounds = [0, *cuts, len(t)]
        chunks += [(j, a, b) for a, b in itertools.pairwise(bounds)]
    order = draw(st.permutations(range(len(chunks))))
    # keep each signal's chunks in their order, interleave the signals as drawn
    by_signal: dict[int, list] = {}
    for j, a, b in chunks:
        by_signal.setdefault(j, []).append((a, b))
    arrivals = [(chunks[i][0], by_signal[chunks[i][0]].pop(0)) for i in order]
    return streams, held, has, arrivals


@settings(max_examples=300, deadline=None)
@given(case=merge_arrivals())
def test_merge_split_invariance(case):
    """Feeding the samples in any batches (the engine's way: pending queues, heads from
    zero, the rest kept), releasing only at the end, gives the rows of one call."""
    streams, held, has, arrivals = case
    k = len(streams)
    whole = run_merge(streams, held, has, True)
    pending = [([], []) for _ in range(k)]
    cur_held, cur_has = list(held), list(has)
    got = [[], [], [], []]

    def feed(release: bool):
        nonlocal pending, cur_held, cur_has
        rows, times, sources, values, heads, cur_held, cur_has = run_merge(
            pending, cur_held, cur_has, release)
        for acc, part in zip(got, (rows, times, sources, values), strict=True):
            acc += part
        pending = [(t[h:], y[h:]) for (t, y), h in zip(pending, heads, strict=True)]

    for j, (a, b) in arrivals:
        t, y = streams[j]
        pending[j] = (pending[j][0] + t[a:b], pending[j][1] + y[a:b])
        feed(False)
    feed(True)
    assert all(not t for t, _ in pending)
    assert same(got[0], whole[0]) and got[1] == whole[1] and got[2] == whole[2]
    assert same(got[3], whole[3])
    assert same(cur_held, whole[5]) and cur_has == whole[6]
