"""AMX-int8 weight products for the cpu engine (igc/engines/integer_cpu.py), exact.

Sapphire Rapids and later Xeons multiply 16x64 int8 tiles by 64x16 int8 tiles into 16x16 int32
tiles in one instruction (TDPBSSD signed x signed, TDPBUSD unsigned x signed). Numerics 2's
products are int16-range activations times int8 weights; an activation splits exactly into a
signed high byte and an unsigned low byte, x = 256 hi + lo, so

    x . w = 256 (hi . w) + (lo . w)

with both sums exact in int32 (|hi . w| <= K * 128 * 127 and |lo . w| <= K * 255 * 127, below
2**31 for K up to 65,536 inputs; longer inputs are summed in int64 by such chunks), combined in
int64. The sums are the ones `_linear`
computes with pmaddwd, so the integers, and the files, do not change.

numba has no AMX intrinsics: the instructions are emitted as inline assembly naming the tile
registers (the tile configuration is loaded at the start of each product and released at its
end, so no other code sees tile state). They are emitted only where numba compiles for a CPU
with `amx-tile` and `amx-int8`; elsewhere the kernel traps, and `usable()` is False, so the
engine never calls it. Linux also requires each process to ask for the tile state
(arch_prctl ARCH_REQ_XCOMP_PERM); a kernel that refuses means no AMX. IGC_AMX=0 turns the path
off, to compare it with the VNNI/AVX2 one on the same machine.
"""

from __future__ import annotations

import functools
import os
import platform

import llvmlite.binding as _llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from igc.engines.kernel_cache import njit
from igc.engines.scalars import OPTS as _OPTS

TILE_ROWS = 16  # rows of an activation tile (and of an output tile)
TILE_K = 64  # int8 inputs per tile row
TILE_N = 16  # int32 output channels per tile
PAIR_N = 2 * TILE_N  # output channels per pass: two tiles share each activation tile
_ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA, _SYS_ARCH_PRCTL = 0x1023, 18, 158
_I8P, _I64 = ir.IntType(8).as_pointer(), ir.IntType(64)
# Inputs per int32 tile sum: the low bytes' sum stays below 2**31 for K * 255 * 127 < 2**31,
# K < 66,311; longer inputs are summed in int64 by chunks of this many.
CHUNK_K = 1024 * TILE_K
# numba does not set up LLVM's assembly parser, and inline assembly needs it: not only when
# this module's kernels compile, but whenever a kernel that inlines them does, which may be in
# a later process that loads them from numba's cache. So at import, before any of that.
_llvm.initialize_native_asmparser()


def _target_has_amx(context) -> bool:
    try:
        features = context.codegen()._tm_features.split(",")
    except Exception:  # an unknown codegen: no AMX
        return False
    return "+amx-tile" in features and "+amx-int8" in features


def _asm(context, builder, text: str, args=(), types_=()):
    """Emit `text` as a side-effecting inline-assembly statement, or a trap where the target
    has no AMX (never reached: `usable()` is False there)."""
    if not _target_has_amx(context):
        trap = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.trap")
        builder.call(trap, [])
        return
    constraint = ",".join(["r"] * len(args) + ["~{memory}"])
    fty = ir.FunctionType(ir.VoidType(), list(types_))
    builder.call(ir.InlineAsm(fty, text, constraint, side_effect=True), list(args))


def _address(context, builder, aryty, ary, index):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [index]), _I8P)


@intrinsic
def _configure(typingctx, cfg):
    """ldtilecfg: load the 64-byte tile configuration `cfg` (`tile_config()`)."""

    def codegen(context, builder, signature, args):
        at = _address(context, builder, signature.args[0], args[0], ir.Constant(_I64, 0))
        _asm(context, builder, "ldtilecfg ($0)", [at], [_I8P])
        return context.get_dummy_value()

    return types.void(cfg), codegen


@intrinsic
def _release(typingctx):
    def codegen(context, builder, signature, args):
        _asm(context, builder, "tilerelease")
        return context.get_dummy_value()

    return types.void(), codegen


def _tile_memory(op: str):
    """tileloadd / tilestored of one tile register at element `index` of an array, `stride`
    bytes between rows."""
    @intrinsic
    def move(typingctx, ary, index, stride):
        def codegen(context, builder, signature, args):
            at = _address(context, builder, signature.args[0], args[0], args[1])
            _asm(context, builder, op, [at, args[2]], [_I8P, _I64])
            return context.get_dummy_value()

        return types.void(ary, index, stride), codegen

    return move


def _tile_op(text: str):
    @intrinsic
    def op(typingctx):
        def codegen(context, builder, signature, args):
            _asm(context, builder, text)
            return context.get_dummy_value()

        return types.void(), codegen

    return op


# Registers: tmm0/tmm1 the high- and low-byte sums of the first 16 channels, tmm2/tmm3 of the
# next 16; tmm4/tmm5 the activations' high and low bytes; tmm6/tmm7 the two weight tiles.
_zero0, _zero1, _zero2, _zero3 = (_tile_op(f"tilezero %tmm{t}") for t in range(4))
_store0, _store1, _store2, _store3 = (_tile_memory(f"tilestored %tmm{t}, ($0,$1,1)")
                                      for t in range(4))
_load_hi = _tile_memory("tileloadd ($0,$1,1), %tmm4")
_load_lo = _tile_memory("tileloadd ($0,$1,1), %tmm5")
_load_w0 = _tile_memory("tileloadd ($0,$1,1), %tmm6")
_load_w1 = _tile_memory("tileloadd ($0,$1,1), %tmm7")
# AT&T order: tdpbssd B, A, C means C += A . B
_hi_w0 = _tile_op("tdpbssd %tmm6, %tmm4, %tmm0")
_lo_w0 = _tile_op("tdpbusd %tmm6, %tmm5, %tmm1")
_hi_w1 = _tile_op("tdpbssd %tmm7, %tmm4, %tmm2")
_lo_w1 = _tile_op("tdpbusd %tmm7, %tmm5, %tmm3")


@intrinsic
def _compiled_for_amx(typingctx):
    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(1), _target_has_amx(context))

    return types.boolean(), codegen


@njit(**_OPTS)
def compiled_for_amx() -> bool:
    """Whether numba compiles the engines' kernels with the AMX instructions on this CPU."""
    return _compiled_for_amx()


def tile_config() -> np.ndarray:
    """The tile configuration every product uses: palette 1, all eight tiles 16 rows of 64
    bytes."""
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    cfg[16:32].view(np.uint16)[:] = TILE_K
    cfg[48:56] = TILE_ROWS
    return cfg


def pack_weights(w: np.ndarray) -> np.ndarray:
    """(K, N) int8-range weights -> (Kp / 4, 4 Np) int8, the tiles' layout: row r holds inputs
    4r .. 4r + 3 of each channel in turn. Kp is K padded to 64, Np N padded to 32, with zeros."""
    k, n = w.shape
    kp, npad = -(-k // TILE_K) * TILE_K, -(-n // PAIR_N) * PAIR_N
    out = np.zeros((kp, npad), np.int8)
    out[:k, :n] = w
    return np.ascontiguousarray(out.reshape(kp // 4, 4, npad).transpose(0, 2, 1)).reshape(
        kp // 4, 4 * npad)


@njit(inline="always", **_OPTS)
def _split(x, r0, m, k, kp, hi, lo):
    """Rows r0 .. r0 + m of x, columns < k, into signed high and unsigned low bytes; the rest
    of the tiles' columns < kp zero."""
    for i in range(TILE_ROWS):
        if i < m:
            for j in range(k):
                v = x[r0 + i, j]
                hi[i, j] = np.int8(v >> 8)
                lo[i, j] = np.uint8(v & 255)
            for j in range(k, kp):
                hi[i, j] = 0
                lo[i, j] = 0
        else:
            for j in range(kp):
                hi[i, j] = 0
                lo[i, j] = 0


@njit(**_OPTS)
def linear(x, k, wa, nout, out, hi, lo, sums, cfg):
    """out[:, :nout] = x[:, :k] @ W exactly (int64), W packed by `pack_weights` into `wa`;
    nout a multiple of 16 within W's padded width, k within x's width. Scratch: hi and lo
    (16, >= Kp) int8 / uint8, sums (1024,) int32; cfg: `tile_config()`. Only after `usable()`
    said True: without the tile state Linux grants, the first tile instruction is SIGILL."""
    kp, w4 = wa.shape[0] * 4, wa.shape[1]
    _configure(cfg)
    for r0 in range(0, x.shape[0], TILE_ROWS):
        m = min(TILE_ROWS, x.shape[0] - r0)
        _split(x, r0, m, k, kp, hi, lo)
        for n0 in range(0, nout, PAIR_N):
            for c0 in range(0, kp, CHUNK_K):
                _zero0()
                _zero1()
                _zero2()
                _zero3()
                for kb in range(c0, min(c0 + CHUNK_K, kp), TILE_K):
                    _load_hi(hi, kb, hi.shape[1])
                    _load_lo(lo, kb, lo.shape[1])
                    _load_w0(wa, (kb // 4) * w4 + 4 * n0, w4)
                    _load_w1(wa, (kb // 4) * w4 + 4 * n0 + 4 * TILE_N, w4)
                    _hi_w0()
                    _lo_w0()
                    _hi_w1()
                    _lo_w1()
                _store0(sums, 0, 64)
                _store1(sums, 256, 64)
                _store2(sums, 512, 64)
                _store3(sums, 768, 64)
                for h in range(2 if nout - n0 > TILE_N else 1):
                    a, o = 512 * h, n0 + TILE_N * h
                    for i in range(m):
                        for j in range(TILE_N):
                            t = ((np.int64(sums[a + 16 * i + j]) << 8)
                                 + np.int64(sums[a + 256 + 16 * i + j]))
                            out[r0 + i, o + j] = t if c0 == 0 else out[r0 + i, o + j] + t
    _release()


def _request_tile_state() -> bool:
    """Ask Linux for this process's AMX tile state; False where it is refused or not Linux
    on x86-64."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


@functools.cache
def _available() -> bool:
    return compiled_for_amx() and _request_tile_state()


def usable() -> bool:
    """Whether the cpu engine multiplies its weights on the AMX units: numba compiles for a
    CPU that has them, Linux grants the tile state, and IGC_AMX is not 0."""
    if os.environ.get("IGC_AMX", "").strip() == "0":
        return False
    return _available()
