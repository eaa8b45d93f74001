"""numba kernels of conditions and triggers, each beside its plain-Python reference.

* :func:`eval_program` runs a compiled :class:`rtoc.events.language.Program` over columns of
  values, a block of samples at a time (its reference is :func:`rtoc.events.language.evaluate`);
  :func:`compare_const` is the fused form of ``signal <op> constant``.
* :func:`merge_hold` merges several signals' pending samples in time order into columns of
  zero-order-held values (reference :func:`merge_hold_reference`).
* :func:`trigger` turns a stream of truth values into firings, with hold and cooldown and
  state carried between calls (reference :func:`trigger_reference`).

There is no ``exec`` and no code generation: one kernel per task, compiled once per
environment (``cache=True``), whatever the condition.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
    MIN2,
    MOD,
    MUL,
    NE,
    NEG,
    NOT,
    OR,
    POW,
    SUB,
)

BLOCK = 512  # samples per block of the program interpreter (its stack stays in L1/L2)
SKIP = 64    # samples per block when a trigger skips a run of unchanged truth values

# trigger modes and the layout of a trigger's state vector (float64[STATE_SIZE])
RISING, FALLING, BOTH, TRUE, FALSE = range(5)
MODES = {"rising": RISING, "falling": FALLING, "both": BOTH, "true": TRUE, "false": FALSE}
PREV, RUN_START, PENDING, LAST_FIRE = range(4)
STATE_SIZE = 4


def new_trigger_state() -> np.ndarray:
    """A trigger that has seen nothing: previous truth unknown (-1), never fired."""
    return np.array([-1.0, 0.0, 0.0, -math.inf])


# -- the program interpreter --------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _truth(x):
    return x == x and x != 0.0


@njit(cache=True, nogil=True)
def _binary(op, a, b):  # noqa: C901
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MUL:
        return a * b
    if op == DIV:
        if b != 0.0:
            return a / b
        if a != a or a == 0.0:
            return np.nan
        return math.copysign(np.inf, a) * math.copysign(1.0, b)
    if op == MOD:
        if b == 0.0 or a != a or b != b or math.isinf(a):
            return np.nan
        if math.isinf(b):
            return a if a == 0.0 or (a > 0) == (b > 0) else b
        return a % b  # numba's float % is Python's
    if op == POW:
        return math.pow(a, b) if not (a == 0.0 and b < 0) else _pow_zero(a, b)
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
        return 1.0 if _truth(a) and _truth(b) else 0.0
    if op == OR:
        return 1.0 if _truth(a) or _truth(b) else 0.0
    if op == MIN2:
        return a if a != a or a < b else b
    return a if a != a or a > b else b  # MAX2


@njit(cache=True, nogil=True)
def _pow_zero(a, b):
    odd = not math.isinf(b) and b == math.floor(b) and b % 2.0 != 0.0
    return math.copysign(np.inf, a) if odd else np.inf


@njit(cache=True, nogil=True)
def eval_program(ops, args, consts, depth, cols, out):
    """Evaluate a program at every sample; ``out[i] = 1`` where the condition holds.

    ``ops``/``args`` int64[p], ``consts`` float64[c]; ``cols`` float64[k, m] (one row per
    referenced signal, C-contiguous, at least m columns); ``out`` uint8[m].
    """
    m = out.shape[0]
    stack = np.empty((max(depth, 1), BLOCK))
    for start in range(0, m, BLOCK):
        nb = min(BLOCK, m - start)
        sp = 0
        for pc in range(ops.shape[0]):
            op = ops[pc]
            if op == LOAD:
                row = cols[args[pc]]
                for j in range(nb):
                    stack[sp, j] = row[start + j]
                sp += 1
            elif op == CONST:
                c = consts[args[pc]]
                for j in range(nb):
                    stack[sp, j] = c
                sp += 1
            elif op == NEG:
                for j in range(nb):
                    stack[sp - 1, j] = -stack[sp - 1, j]
            elif op == NOT:
                for j in range(nb):
                    stack[sp - 1, j] = 0.0 if _truth(stack[sp - 1, j]) else 1.0
            elif op == ABS:
                for j in range(nb):
                    stack[sp - 1, j] = abs(stack[sp - 1, j])
            else:
                sp -= 1
                _binary_block(op, stack[sp - 1], stack[sp], nb)
        top = stack[0]
        for j in range(nb):
            out[start + j] = 1 if _truth(top[j]) else 0


@njit(cache=True, nogil=True)
def _binary_block(op, a, b, nb):  # noqa: C901 - one loop per operator, so each vectorises
    if op == ADD:
        for j in range(nb):
            a[j] = a[j] + b[j]
    elif op == SUB:
        for j in range(nb):
            a[j] = a[j] - b[j]
    elif op == MUL:
        for j in range(nb):
            a[j] = a[j] * b[j]
    elif op == GT:
        for j in range(nb):
            a[j] = 1.0 if a[j] > b[j] else 0.0
    elif op == GE:
        for j in range(nb):
            a[j] = 1.0 if a[j] >= b[j] else 0.0
    elif op == LT:
        for j in range(nb):
            a[j] = 1.0 if a[j] < b[j] else 0.0
    elif op == LE:
        for j in range(nb):
            a[j] = 1.0 if a[j] <= b[j] else 0.0
    elif op == EQ:
        for j in range(nb):
            a[j] = 1.0 if a[j] == b[j] else 0.0
    elif op == NE:
        for j in range(nb):
            a[j] = 1.0 if a[j] != b[j] else 0.0
    elif op == AND:
        for j in range(nb):
            a[j] = 1.0 if _truth(a[j]) and _truth(b[j]) else 0.0
    elif op == OR:
        for j in range(nb):
            a[j] = 1.0 if _truth(a[j]) or _truth(b[j]) else 0.0
    elif op == MIN2:
        for j in range(nb):
            a[j] = a[j] if a[j] != a[j] or a[j] < b[j] else b[j]
    elif op == MAX2:
        for j in range(nb):
            a[j] = a[j] if a[j] != a[j] or a[j] > b[j] else b[j]
    else:  # DIV, MOD, POW: their IEEE/Python special cases need the scalar definition
        for j in range(nb):
            a[j] = _binary(op, a[j], b[j])


@njit(cache=True, nogil=True)
def compare_const(y, op, c, out):
    """``out[i] = y[i] <op> c`` for one compare op code; ``y`` float64[n], ``out`` uint8[n]."""
    n = y.shape[0]
    if op == GT:
        for i in range(n):
            out[i] = y[i] > c
    elif op == GE:
        for i in range(n):
            out[i] = y[i] >= c
    elif op == LT:
        for i in range(n):
            out[i] = y[i] < c
    elif op == LE:
        for i in range(n):
            out[i] = y[i] <= c
    elif op == EQ:
        for i in range(n):
            out[i] = y[i] == c
    else:
        for i in range(n):
            out[i] = y[i] != c


# -- triggers -----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def trigger(t, c, mode, hold, cooldown, state, out):
    """Firings of one trigger over a batch; returns how many indices it wrote to ``out``.

    ``t`` float64[n] unix s, ``c`` uint8[n] truth values, ``state`` float64[STATE_SIZE]
    (updated in place, so batches can be split anywhere), ``out`` int64[n].

    A *run* is a stretch of equal truth values. A run is eligible when its start is what
    the mode fires on (rising: turned true, the very first value counts when true;
    falling: true -> false; both: either; true/false: any run of that value). An eligible
    run fires at its first sample at least ``hold`` s after the run began (edge modes once
    per run; true/false at every such sample), unless the previous firing was less than
    ``cooldown`` s before: then that firing is dropped (an edge is not deferred).
    """
    prev = state[PREV]
    run_start = state[RUN_START]
    pending = state[PENDING] != 0.0
    last = state[LAST_FIRE]
    edge = mode <= BOTH
    k = 0
    n = c.shape[0]
    i = 0
    while i < n:
        if not pending:  # nothing can fire until the truth changes: skip the run,
            p = np.uint8(prev) if prev >= 0 else np.uint8(2)
            while i + SKIP <= n:  # a block at a time (this loop vectorises) ...
                acc = np.uint8(0)
                for j in range(SKIP):
                    acc |= c[i + j] ^ p
                if acc:
                    break
                i += SKIP
            while i < n and c[i] == p:  # ... then a sample at a time
                i += 1
            if i == n:
                break
        ci = c[i]
        if ci != prev:
            if mode == RISING:
                pending = ci == 1
            elif mode == FALLING:
                pending = ci == 0 and prev == 1.0
            elif mode == BOTH:
                pending = ci == 1 or prev == 1.0
            elif mode == TRUE:
                pending = ci == 1
            else:
                pending = ci == 0
            prev = float(ci)
            run_start = t[i]
        # (hold/cooldown 0 fire even for a sample timestamped before the run or last firing)
        if pending and (hold <= 0.0 or t[i] - run_start >= hold):
            if cooldown <= 0.0 or t[i] - last >= cooldown:
                out[k] = i
                k += 1
                last = t[i]
            if edge:
                pending = False
        i += 1
    state[PREV] = prev
    state[RUN_START] = run_start
    state[PENDING] = 1.0 if pending else 0.0
    state[LAST_FIRE] = last
    return k


def trigger_reference(t, c, mode: int, hold: float, cooldown: float, state) -> list[int]:
    """Plain-Python :func:`trigger` (same state vector, updated in place)."""
    prev, run_start, pending, last = state[PREV], state[RUN_START], bool(state[PENDING]), state[LAST_FIRE]
    fired = []
    for i, (ti, ci) in enumerate(zip(t, c, strict=True)):
        ci = int(ci)
        if ci != prev:
            pending = {RISING: ci == 1, FALLING: ci == 0 and prev == 1, BOTH: ci == 1 or prev == 1,
                       TRUE: ci == 1, FALSE: ci == 0}[mode]
            prev, run_start = ci, ti
        if pending and (hold <= 0 or ti - run_start >= hold):
            if cooldown <= 0 or ti - last >= cooldown:
                fired.append(i)
                last = ti
            if mode in (RISING, FALLING, BOTH):
                pending = False
    state[PREV], state[RUN_START], state[PENDING], state[LAST_FIRE] = prev, run_start, float(pending), last
    return fired


# -- merging several signals --------------------------------------------------------------

@njit(cache=True, nogil=True)
def merge_hold(ts, ys, offsets, heads, release, held, has, cols, tm, src, sy):
    """Merge pending samples of k signals in time order; returns how many rows it wrote.

    Signal j's pending samples are ``ts/ys[offsets[j]:offsets[j+1]]`` (float64); ``heads``
    int64[k] is how many of each were consumed before (updated). The head with the
    smallest time goes first (ties: lower j). Merging stops when a signal has nothing
    pending, unless ``release`` (then the others go on with its held value). ``held``
    float64[k] / ``has`` uint8[k] are the zero-order-held values (updated). Each consumed
    sample after every signal has a value writes one row: ``cols[:, r]`` the held values,
    ``tm[r]`` its time, ``src[r]`` its signal, ``sy[r]`` its value.
    """
    k = offsets.shape[0] - 1
    r = 0
    while True:
        best = -1
        best_t = 0.0
        for j in range(k):
            h = offsets[j] + heads[j]
            if h >= offsets[j + 1]:
                if not release:
                    return r
                continue
            if best < 0 or ts[h] < best_t:
                best, best_t = j, ts[h]
        if best < 0:
            return r
        h = offsets[best] + heads[best]
        heads[best] += 1
        held[best] = ys[h]
        has[best] = 1
        ready = True
        for j in range(k):
            if has[j] == 0:
                ready = False
        if ready:
            for j in range(k):
                cols[j, r] = held[j]
            tm[r] = best_t
            src[r] = best
            sy[r] = ys[h]
            r += 1


def merge_hold_reference(streams, held, has, release: bool):
    """Plain-Python :func:`merge_hold` over ``streams`` [(t list, y list)] from their start;
    returns (rows of held values, times, sources, values, consumed per signal)."""
    heads = [0] * len(streams)
    rows, times, sources, values = [], [], [], []
    while True:
        live = [j for j, (t, _) in enumerate(streams) if heads[j] < len(t)]
        if not live or (not release and len(live) < len(streams)):
            return rows, times, sources, values, heads
        j = min(live, key=lambda j: (streams[j][0][heads[j]], j))
        ti, yi = streams[j][0][heads[j]], streams[j][1][heads[j]]
        heads[j] += 1
        held[j], has[j] = yi, 1
        if all(has):
            rows.append(list(held))
            times.append(ti)
            sources.append(j)
            values.append(yi)
