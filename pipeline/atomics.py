"""Acquire loads, release stores and fences for numba kernels.

numba has no CPU atomics, so these are LLVM intrinsics. On x86-64 the acquire/release
forms compile to plain moves (the hardware already orders them) but still stop the
compiler from reordering; on aarch64 they become ldar/stlr/dmb, which a Raspberry Pi needs.
They work with ``cache=True``.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _u64_pointer(context, builder, aryty, ary, idx, idxty):
    array = context.make_array(aryty)(context, builder, ary)
    index = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, array, [index], wraparound=False)


def _check_u64(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.uint64 and arr.ndim == 1


@intrinsic
def load_acquire(typingctx, arr, idx):
    """``arr[idx]`` (uint64) with acquire ordering: later loads cannot move before it."""
    if not _check_u64(arr) or not isinstance(idx, types.Integer):
        return None
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):
        ptr = _u64_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, arr, idx, value):
    """``arr[idx] = value`` (uint64) with release ordering: earlier stores are visible first."""
    if not _check_u64(arr) or not isinstance(idx, types.Integer):
        return None
    if not isinstance(value, types.Integer):
        return None
    sig = types.void(arr, idx, value)

    def codegen(context, builder, signature, args):
        ptr = _u64_pointer(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        val = context.cast(builder, args[2], signature.args[2], types.uint64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


def _fence(ordering: str):
    @intrinsic
    def fence(typingctx):
        sig = types.void()

        def codegen(context, builder, signature, args):
            builder.fence(ordering)
            return context.get_dummy_value()

        return sig, codegen

    return fence


fence_acquire = _fence("acquire")
"""Earlier loads complete before any later load or store."""
fence_release = _fence("release")
"""Earlier loads and stores complete before any later store."""
