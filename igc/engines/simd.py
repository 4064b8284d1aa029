"""SIMD helpers of numba's CPU engine (igc/engines/integer_cpu.py): pairwise int16 multiply-adds.

pmaddwd multiplies int16 pairs and adds each pair into an int32 lane, exactly. The helpers below
emit it as the AVX-512 or AVX2 intrinsic where numba compiles for such a CPU and as plain vector
IR (exact all the same) elsewhere, inside two kinds of numba intrinsic: `dot_pairs_blocks`
(attention's sums over the int16 key/value caches) and `product_rows` (weight products over int8
weights packed in input pairs, several rows and blocks of 16 output channels at once). Callers bound the number of
pairs per sum so that no int32 lane overflows; lanes are widened to int64 before they are stored.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _vec(t: ir.Type, n: int) -> ir.VectorType:
    return ir.VectorType(t, n)


def target_isa(context) -> str:
    """The instruction set numba compiles for (its cache keys on the same CPU features)."""
    try:
        features = context.codegen()._tm_features.split(",")
    except Exception:  # an unknown codegen: plain vector IR is always correct
        return "generic"
    return "avx512" if "+avx512bw" in features else "avx2" if "+avx2" in features else "generic"


def _shuffle(builder, v, idx):
    return builder.shuffle_vector(v, v, ir.Constant(_vec(_I32, len(idx)), list(idx)))


def _pmadd(builder, isa: str, a, b):
    """<32 x i16> a, b -> <16 x i32> a[2j] * b[2j] + a[2j + 1] * b[2j + 1] (exact for
    operands within +-32767)."""
    if isa == "avx512":
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec(_I32, 16), [_vec(_I16, 32)] * 2),
            "llvm.x86.avx512.pmaddw.d.512")
        return builder.call(fn, [a, b])
    if isa == "avx2":
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_vec(_I32, 8), [_vec(_I16, 16)] * 2),
            "llvm.x86.avx2.pmadd.wd")
        lo = builder.call(fn, [_shuffle(builder, a, range(16)), _shuffle(builder, b, range(16))])
        hi = builder.call(fn, [_shuffle(builder, a, range(16, 32)),
                               _shuffle(builder, b, range(16, 32))])
        return builder.shuffle_vector(lo, hi, ir.Constant(_vec(_I32, 16), list(range(16))))
    even, odd = range(0, 32, 2), range(1, 32, 2)
    v32 = _vec(_I32, 16)
    prod = [builder.mul(builder.sext(_shuffle(builder, a, ix), v32),
                        builder.sext(_shuffle(builder, b, ix), v32)) for ix in (even, odd)]
    return builder.add(*prod)


def _at(context, builder, aryty, ary, index):
    """Pointer to element `index` of a C-contiguous array, counted from its first element."""
    return builder.gep(context.make_array(aryty)(context, builder, ary).data, [index])


def _contiguous(*arrays) -> bool:
    """The intrinsics index arrays as flat memory: they type only for C-contiguous arrays."""
    return all(isinstance(a, types.Array) and a.layout == "C" for a in arrays)


def _load(builder, ptr, ty):
    return builder.load(builder.bitcast(ptr, ty.as_pointer()), align=2)


def _pair32(context, builder, aryty, ary, index):
    """The int16 pair ary[index], ary[index + 1], repeated 16 times: <32 x i16>."""
    return _shuffle(builder, _load(builder, _at(context, builder, aryty, ary, index),
                                   _vec(_I16, 2)), [0, 1] * 16)


def dot_pairs_blocks(blocks: int):
    """An intrinsic for `blocks` groups of 16 lanes sharing one multiplier: for block k and lane
    j, out[off + 16 k + j] += sum over p < count of (H_p << shift) + L_p, where H_p =
    src[s + 2j] * hi[c0 + 2p] + src[s + 2j + 1] * hi[c0 + 2p + 1] with s = base + p * stride +
    k * bstride, L_p likewise with lo. int32 lanes: the caller bounds count so that they cannot
    overflow. Several blocks per pass read a row of the value cache (all of a position pair's
    channels) in one sweep and load each multiplier pair once for all of them."""

    @intrinsic
    def dot(typingctx, src, base, stride, bstride, count, hi, lo, c0, out, off, shift):
        if not _contiguous(src, hi, lo, out):
            return None
        sig = types.void(src, base, stride, bstride, count, hi, lo, c0, out, off, shift)

        def codegen(context, builder, signature, args):
            srct, _, _, _, _, hit, lot, _, outt, _, _ = signature.args
            src_, base_, stride_, bstride_, count_, hi_, lo_, c0_, out_, off_, shift_ = args
            isa = target_isa(context)
            zero = ir.Constant(_vec(_I32, 16), None)
            accs = [(cgutils.alloca_once_value(builder, zero),
                     cgutils.alloca_once_value(builder, zero)) for _ in range(blocks)]
            with cgutils.for_range(builder, count_) as loop:
                p = loop.index
                at = builder.add(base_, builder.mul(p, stride_))
                c = builder.add(c0_, builder.mul(p, ir.Constant(_I64, 2)))
                mult = (_pair32(context, builder, hit, hi_, c),
                        _pair32(context, builder, lot, lo_, c))
                for k, pair in enumerate(accs):
                    a = builder.add(at, builder.mul(bstride_, ir.Constant(_I64, k)))
                    v = _load(builder, _at(context, builder, srct, src_, a), _vec(_I16, 32))
                    for acc, w in zip(pair, mult, strict=True):
                        builder.store(builder.add(builder.load(acc), _pmadd(builder, isa, v, w)),
                                      acc)
            v64 = _vec(_I64, 16)
            sh = builder.insert_element(ir.Constant(v64, None), shift_, ir.Constant(_I32, 0))
            sh = builder.shuffle_vector(sh, sh, ir.Constant(_vec(_I32, 16), [0] * 16))  # splat
            for k, (acc_hi, acc_lo) in enumerate(accs):
                at = builder.add(off_, ir.Constant(_I64, 16 * k))
                ptr = builder.bitcast(_at(context, builder, outt, out_, at), v64.as_pointer())
                add = builder.add(builder.shl(builder.sext(builder.load(acc_hi), v64), sh),
                                  builder.sext(builder.load(acc_lo), v64))
                builder.store(builder.add(builder.load(ptr, align=8), add), ptr, align=8)
            return context.get_dummy_value()

        return sig, codegen

    return dot


def product_rows(rows: int, blocks: int):
    """An intrinsic for `rows` rows x `blocks` blocks of 16 output channels of a weight product:
    for each row r and lane j of block k, out[ob + r * os + 16 k + j] (int64) = [that if add
    else 0] + sum over p < count of x[xb + r * xs + 2p] * w[wb + p * ws + 32 k + 2j] +
    x[xb + r * xs + 2p + 1] * w[... + 32 k + 2j + 1] (w int8, x int16); count <= integer_cpu.PAIRS_MM.
    rows x blocks independent sums keep the multiply-adds' latency hidden."""

    @intrinsic
    def product(typingctx, w, wb, ws, count, x, xb, xs, out, ob, os, add):
        if not _contiguous(w, x, out):
            return None
        sig = types.void(w, wb, ws, count, x, xb, xs, out, ob, os, add)

        def codegen(context, builder, signature, args):
            wt, _, _, _, xt, _, _, ot, _, _, _ = signature.args
            w_, wb_, ws_, count_, x_, xb_, xs_, out_, ob_, os_, add_ = args
            isa = target_isa(context)
            zero = ir.Constant(_vec(_I32, 16), None)
            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(blocks)]
                    for _ in range(rows)]
            with cgutils.for_range(builder, count_) as loop:
                p = loop.index
                at = builder.add(wb_, builder.mul(p, ws_))
                wv = [builder.sext(_load(builder, _at(context, builder, wt, w_, builder.add(
                    at, ir.Constant(_I64, 32 * k))), _vec(_I8, 32)), _vec(_I16, 32))
                      for k in range(blocks)]
                for r in range(rows):
                    xi = builder.add(builder.add(xb_, builder.mul(ir.Constant(_I64, r), xs_)),
                                     builder.mul(p, ir.Constant(_I64, 2)))
                    xv = _pair32(context, builder, xt, x_, xi)
                    for k in range(blocks):
                        acc = accs[r][k]
                        builder.store(builder.add(builder.load(acc),
                                                  _pmadd(builder, isa, wv[k], xv)), acc)
            v64 = _vec(_I64, 16)
            keep = builder.icmp_signed("!=", add_, ir.Constant(add_.type, 0))
            for r in range(rows):
                for k in range(blocks):
                    oi = builder.add(builder.add(ob_, builder.mul(ir.Constant(_I64, r), os_)),
                                     ir.Constant(_I64, 16 * k))
                    ptr = builder.bitcast(_at(context, builder, ot, out_, oi), v64.as_pointer())
                    val = builder.sext(builder.load(accs[r][k]), v64)
                    old = builder.select(keep, builder.load(ptr, align=8), ir.Constant(v64, None))
                    builder.store(builder.add(old, val), ptr, align=8)
            return context.get_dummy_value()

        return sig, codegen

    return product
