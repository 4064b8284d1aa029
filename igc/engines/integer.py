"""Numerics 2: ImageGPT's step in integer arithmetic, so a file decodes on any machine.

A range decoder fails on the first probability that differs from the encoder's by one unit, and
float products round differently across CPU generations, BLAS kernels and GPUs. Here everything
between the weights and the coder's frequencies is an integer computed by rules that leave no
choice to the hardware (docs/numerics.md writes each one down):

* weights are quantized once, at load, from the float checkpoint by correctly rounded IEEE
  operations (multiply, divide, `rint`, `frexp`, max: no sums, no libm), so every machine derives
  the same integers;
* activations are int16 with power-of-two scales chosen per row from the integers themselves
  (no calibration data, no stored scales) or, for the cached values, per channel from a bound
  the weights prove (Cauchy-Schwarz), so they cannot overflow;
* products accumulate exactly (every partial sum stays below 2**53, so float64 BLAS and GPU
  products of these integers are exact in any order: the fast engines rely on that);
* requantization is an integer multiply and a rounding shift; the RMS norm uses an exact integer
  square root; exponentials and quick-GELU are tables built with `decimal` (correctly rounded,
  reproducible anywhere);
* the output is integer frequencies summing to 2**24 with every symbol at least 1.

This module holds the quantized model (`IntModel`), the shared tables and rounding rules, and the
*reference* engine: plain NumPy int64, written to be read, not to be fast. The fast engines
(igc.engines.integer_cpu, igc.engines.integer_torch) must agree with it bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import lru_cache
from pathlib import Path

import numpy as np

from igc.core.numerics import INTEGER
from igc.errors import ModelError

NUMERICS = INTEGER.number

FX = 16  # fraction bits of the residual stream and of every linear layer's output ("Q16")
ACT_MAX = 32767  # int16 activations are clamped to ±ACT_MAX
W_MAX = 127  # int8 weights
MANT_BITS = 16  # per-output-channel weight scales are m * 2**-e with m < 2**MANT_BITS
MAX_E = 48  # larger exponents (scales below 2**-32) are zero columns: shifts stay below 63
LIM = 1 << 40  # every Q16 value (residual stream, linear outputs) saturates at ±2**40
SCORE_FRAC = 12  # attention scores and logits enter the exponential in Q12 log2 units
SCORE_LIM = 1 << 30
EXP_BITS = 30  # the exponential table is Q30; attention weights keep its top 20 bits
ATT_BITS = 20
GELU_FRAC = 10  # quick-GELU's table is indexed by its input in Q10 over [-8, 8)
GELU_HALF = 8 << GELU_FRAC
SIG_BITS = 15
TOTAL_BITS = INTEGER.frequency_bits  # frequencies sum to 2**24 (igc.core.numerics)
LOG2E = 1.4426950408889634  # float64 nearest log2(e), folded into queries and the output head
NORM_EPS_SHIFTS = range(-14, 49)  # the per-row shifts the integer RMS norm can use


# -- tables --------------------------------------------------------------------------------
TABLES = Path(__file__).with_name("integer_tables.npz")  # the two tables below, precomputed


@lru_cache(maxsize=1)
def exp_table() -> np.ndarray:
    """EXP[f] = round(2**30 * 2**(-f/4096)), f = 0..4095, by correctly rounded decimals
    (`compute_exp_table`; read from `TABLES`, which a test holds equal to it)."""
    return _shipped("exp", compute_exp_table)


@lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """SIG[i] = round(2**15 * sigmoid(1.702 * (i - 8192) / 1024)), i = 0..16383
    (`compute_sigmoid_table`; read from `TABLES`, which a test holds equal to it)."""
    return _shipped("sigmoid", compute_sigmoid_table)


def _shipped(name: str, compute) -> np.ndarray:
    """A table from the file shipped beside this module (computing the 20,480 decimals takes
    about a second at every start), or computed where the file is missing."""
    try:
        with np.load(TABLES) as tables:
            return np.array(tables[name], np.int64)
    except (OSError, KeyError, ValueError):
        return compute()


def compute_exp_table() -> np.ndarray:
    with localcontext() as ctx:
        ctx.prec = 40
        two = Decimal(2)
        return np.array([int((two ** (Decimal(-f) / 4096) * (1 << EXP_BITS)).to_integral_value())
                         for f in range(1 << SCORE_FRAC)], np.int64)


def compute_sigmoid_table() -> np.ndarray:
    with localcontext() as ctx:
        ctx.prec = 40
        k, one = Decimal("1.702"), Decimal(1)
        return np.array([int((one / (one + (-k * Decimal(i - GELU_HALF) / (1 << GELU_FRAC)).exp())
                              * (1 << SIG_BITS)).to_integral_value())
                         for i in range(2 * GELU_HALF)], np.int64)


def write_tables(path: Path = TABLES) -> None:
    """Write `TABLES` from the decimal definitions (run once when the tables' rules change)."""
    np.savez_compressed(path, exp=compute_exp_table(), sigmoid=compute_sigmoid_table())


def tables_digest() -> str:
    h = hashlib.sha256(exp_table().tobytes())
    h.update(sigmoid_table().tobytes())
    return h.hexdigest()[:16]


# -- rounding rules (NumPy int64, elementwise) ---------------------------------------------
def shift_round(v: np.ndarray, s, lim: int) -> np.ndarray:
    """v * 2**-s rounded half up (s > 0), or v * 2**-s exactly (s <= 0), saturated at ±lim.
    `s` may be an array broadcasting against `v`."""
    v = np.asarray(v, np.int64)
    s = np.broadcast_to(np.asarray(s, np.int64), v.shape)
    right = np.maximum(s, 1)
    down = (v + (np.int64(1) << (right - 1))) >> right
    left = np.minimum(np.maximum(-s, 0), 62)
    bound = np.int64(lim) >> left
    up = np.clip(v, -bound, bound) << left
    return np.clip(np.where(s > 0, down, up), -lim, lim)


def round_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b rounded half up, for b > 0 (floor of (2a + b) / 2b)."""
    return (2 * a + b) // (2 * b)


def bit_length(v: np.ndarray) -> np.ndarray:
    """Bits of |v| (0 for 0), exactly, for |v| < 2**62."""
    v = np.abs(np.asarray(v, np.int64))
    n = np.zeros(v.shape, np.int64)
    for b in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << b)
        n = np.where(big, n + b, n)
        v = np.where(big, v >> b, v)
    return n + (v > 0)


def narrow(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q16 rows (..., n) -> (int16-range values, shift per row): values * 2**shift ≈ v, the
    shift chosen so that the row's largest magnitude has 15 bits (rows of zeros: shift 0)."""
    top = np.abs(v).max(axis=-1)
    shift = np.where(top > 0, bit_length(top) - 15, 0)
    return np.clip(shift_round(v, shift[..., None], LIM), -ACT_MAX, ACT_MAX), shift


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) of each n >= 0 (< 2**62), exactly."""
    return np.array([math.isqrt(int(x)) for x in np.ravel(n)], np.int64).reshape(np.shape(n))


def exp2_neg(z: np.ndarray) -> np.ndarray:
    """2**(-z / 4096) in Q30 for z >= 0 (Q12): the table's fraction, shifted by the integer
    part (0 once it passes 62)."""
    k = z >> SCORE_FRAC
    return np.where(k < 63, exp_table()[z & ((1 << SCORE_FRAC) - 1)] >> np.minimum(k, 62), 0)


# -- the quantized model -------------------------------------------------------------------
@dataclass
class Linear:
    """y = x @ W + b with int8 W (in, out), the scale of output channel j being m[j] * 2**-e[j],
    and b in Q16."""

    w: np.ndarray  # (in, out) int64 holding int8 values
    m: np.ndarray  # (out,) int64
    e: np.ndarray  # (out,) int64
    b: np.ndarray  # (out,) int64, Q16


@dataclass
class IntLayer:
    qkv: Linear  # ln_1's gain folded in; queries also scaled by log2(e)/sqrt(head size)
    v_shift: np.ndarray  # (C,) per value channel: cached values are Q16 * 2**-v_shift
    proj: Linear  # rows scaled by 2**(v_shift - 16): its input is the int16 attention output
    fc: Linear  # ln_2's gain folded in
    mlp_proj: Linear


@dataclass
class IntModel:
    n_embd: int
    n_head: int
    head_dim: int
    n_positions: int
    vocab: int  # symbols predicted (vocab_size - 1)
    norm_frac: int  # fraction bits of the RMS norm's int16 output
    eps: np.ndarray  # eps * C in the squared units of each row shift (NORM_EPS_SHIFTS)
    wte: np.ndarray  # (vocab_size, C) Q16
    wpe: np.ndarray  # (n_positions, C) Q16
    layers: list[IntLayer]
    head: Linear  # ln_f's gain and log2(e) folded in, no bias
    digest: str = field(default="")


def quantize_linear(w: np.ndarray, b: np.ndarray | None) -> Linear:
    """Per-output-channel int8 quantization of float64 weights (in, out); deterministic: max,
    frexp, rint, and one correctly rounded division per weight."""
    top = np.abs(w).max(axis=0)
    scale = top / W_MAX
    frac, exp = np.frexp(scale)  # scale = frac * 2**exp, frac in [0.5, 1)
    m = np.rint(np.ldexp(frac, MANT_BITS)).astype(np.int64)
    e = (MANT_BITS - exp).astype(np.int64)
    # a column whose scale is below 2**-(MAX_E - 16) (no trained model has one) counts as zero,
    # so that every requantization shift stays within 62 bits (`shift_round` needs that)
    rounded = np.where(e <= MAX_E, np.ldexp(m.astype(np.float64), -e), 0.0)
    safe = np.where(rounded > 0, rounded, 1.0)
    q = np.clip(np.rint(w / safe), -W_MAX, W_MAX).astype(np.int64)
    q[:, rounded == 0] = 0
    m = np.where(rounded > 0, m, 0)
    bias = np.zeros(w.shape[1]) if b is None else b
    return Linear(q, m, np.where(rounded > 0, e, 0), q16(bias))


def q16(v: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.ldexp(np.asarray(v, np.float64), FX)), -LIM, LIM).astype(np.int64)


def norm_frac_for(c: int) -> int:
    """Fraction bits of a normed row: each |value| is at most sqrt(C), which must fit 15 bits."""
    return 15 - math.ceil(math.log2(math.isqrt(c) + 1))


def value_shift(lin: Linear, cols: slice, c: int, norm_frac: int) -> np.ndarray:
    """Per value channel, the power-of-two scale under which the cached values fit int16,
    proven from the weights: a normed row has sum of squares <= C * 2**(2 * norm_frac) (1%
    margin for rounding), so |x @ w_j| <= sqrt(that) * ||w_j|| by Cauchy-Schwarz."""
    w = lin.w[:, cols]
    sq = (w * w).sum(axis=0)  # exact integers
    row = math.sqrt(c * 1.01) * 2.0 ** norm_frac
    acc = np.ceil(row * np.sqrt(sq.astype(np.float64)))  # bound on |x @ w_j| (exact inputs)
    bound = np.ceil(acc * np.ldexp(lin.m[cols].astype(np.float64),
                                   (FX - lin.e[cols] - norm_frac)).astype(np.float64))
    bound = np.minimum(bound, LIM).astype(np.int64) + np.abs(lin.b[cols]) + 1
    return np.maximum(bit_length(bound) - 15, -30)


def quantize(runtime) -> IntModel:
    """The integer model of an `ImageGPTRuntime` (whose query weights already carry
    1/sqrt(head size)). Raises ModelError for what numerics 2 does not compute."""
    if runtime.act_name != "quick_gelu":
        raise ModelError(f"numerics 2 computes quick-GELU models only, not {runtime.act_name!r}")
    c, heads = runtime.n_embd, runtime.n_head
    nf = norm_frac_for(c)

    def f64(t) -> np.ndarray:
        return t.detach().double().numpy()

    layers = []
    for layer in runtime.layers:
        w = f64(layer.c_attn_w) * f64(layer.ln_1)[:, None]
        b = f64(layer.c_attn_b).copy()
        w[:, :c] *= LOG2E
        b[:c] *= LOG2E
        qkv = quantize_linear(w, b)
        vs = value_shift(qkv, slice(2 * c, 3 * c), c, nf)
        proj = quantize_linear(np.ldexp(f64(layer.c_proj_w), (vs - FX)[:, None]),
                               f64(layer.c_proj_b))
        fc = quantize_linear(f64(layer.fc_w) * f64(layer.ln_2)[:, None], f64(layer.fc_b))
        mlp = quantize_linear(f64(layer.mlp_proj_w), f64(layer.mlp_proj_b))
        layers.append(IntLayer(qkv, vs, proj, fc, mlp))
    head = quantize_linear(f64(runtime.lm_head_t) * f64(runtime.ln_f)[:, None] * LOG2E, None)
    eps = np.array([min(np.rint(runtime.eps * c * 2.0 ** (2 * (FX - k))), 2.0 ** 62)
                    for k in NORM_EPS_SHIFTS]).astype(np.int64)
    model = IntModel(c, heads, c // heads, runtime.n_positions, runtime.vocab_size - 1, nf, eps,
                     q16(f64(runtime.wte)), q16(f64(runtime.wpe)), layers, head)
    model.digest = digest_of(model)
    return model


def digest_of(model: IntModel) -> str:
    """sha256 of every integer the model computes with (tests pin it for shipped models)."""
    h = hashlib.sha256()
    parts = [model.eps, model.wte, model.wpe]
    for lay in model.layers:
        for lin in (lay.qkv, lay.proj, lay.fc, lay.mlp_proj):
            parts += [lin.w, lin.m, lin.e, lin.b]
        parts.append(lay.v_shift)
    parts += [model.head.w, model.head.m, model.head.e, model.head.b]
    for p in parts:
        h.update(np.ascontiguousarray(p, np.int64).tobytes())
    return h.hexdigest()[:16]


# -- the reference engine ------------------------------------------------------------------
def rms_norm(x: np.ndarray, model: IntModel) -> np.ndarray:
    """(B, C) Q16 -> (B, C) int16-range values with `norm_frac` fraction bits."""
    c = x.shape[-1]
    top = np.abs(x).max(axis=-1)
    k = np.where(top > 0, bit_length(top) - 15, 0)
    u = shift_round(x, k[:, None], LIM)
    den = (u * u).sum(axis=-1) + model.eps[k - NORM_EPS_SHIFTS.start]
    j = np.maximum(bit_length(den) - 41, 0) // 2  # keep den << 20 below 2**62 (tiny rows only)
    r = isqrt(((den >> (2 * j)) << 20) // c) << j  # rms(u) * 2**10
    y = round_div(u << (model.norm_frac + 10), np.maximum(r, 1)[:, None])
    return np.clip(y, -ACT_MAX, ACT_MAX)


def linear(h: np.ndarray, frac, lin: Linear) -> np.ndarray:
    """(B, in) int16-range values with `frac` fraction bits (scalar or per row) -> Q16."""
    acc = h @ lin.w  # exact int64
    s = lin.e[None, :] + np.asarray(frac, np.int64).reshape(-1, 1) - FX
    return np.clip(shift_round(acc * lin.m, s, LIM) + lin.b, -LIM, LIM)


def quick_gelu(f: np.ndarray) -> np.ndarray:
    """Q16 -> Q16: f * sigmoid(1.702 f) by table (f in Q10 over [-8, 8); f above: f; below: 0)."""
    i = shift_round(f, FX - GELU_FRAC, LIM)
    inside = (i >= -GELU_HALF) & (i < GELU_HALF)
    sig = sigmoid_table()[np.clip(i + GELU_HALF, 0, 2 * GELU_HALF - 1)]
    g = shift_round(f * sig, SIG_BITS, LIM)
    return np.where(inside, g, np.where(i >= GELU_HALF, f, 0))


def frequencies(logits: np.ndarray) -> np.ndarray:
    """(B, V) Q16 log2-unit logits -> (B, V) int64 frequencies, each >= 1, summing to 2**24."""
    z = shift_round(logits.max(axis=-1, keepdims=True) - logits, FX - SCORE_FRAC, SCORE_LIM)
    e = exp2_neg(z)
    total = e.sum(axis=-1, keepdims=True)
    v = logits.shape[-1]
    f = 1 + (e * ((1 << TOTAL_BITS) - v)) // total
    rows = np.arange(len(f))
    f[rows, e.argmax(axis=-1)] += (1 << TOTAL_BITS) - f.sum(axis=-1)
    return f


@dataclass
class IntState:
    """One batch's key/value cache: keys int16 with a shift per (row*head, position), values
    int16 under the layer's per-channel shifts."""

    keys: list[np.ndarray]  # (B*H, L, D)
    key_shift: list[np.ndarray]  # (B*H, L)
    values: list[np.ndarray]  # (B*H, L, D)
    position: int
    batch: int


class ReferenceEngine:
    """Plain NumPy integers, one operation per rule: the definition the fast engines match."""

    name = "reference"

    def __init__(self, model: IntModel) -> None:
        self.m = model

    def start(self, batch: int, length: int | None = None) -> IntState:
        length = length or self.m.n_positions
        bh, d = batch * self.m.n_head, self.m.head_dim
        n = len(self.m.layers)
        return IntState([np.zeros((bh, length, d), np.int64) for _ in range(n)],
                        [np.zeros((bh, length), np.int64) for _ in range(n)],
                        [np.zeros((bh, length, d), np.int64) for _ in range(n)], 0, batch)

    def step(self, state: IntState, ids: np.ndarray) -> np.ndarray:
        """One token per sequence -> (B, V) int64 frequencies of the next token."""
        return frequencies(self.step_logits(state, ids)[1])

    def step_logits(self, state: IntState, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One token per sequence -> the output head's input `h` ((B, C) int16-range values
        with `norm_frac` fraction bits) and its Q16 log2-unit logits (B, V): what `step` turns
        into frequencies, for an adaptation that corrects them first (igc.codec.adapt)."""
        m, pos = self.m, state.position
        if pos >= state.keys[0].shape[1]:
            raise ModelError(f"sequence longer than the model's context of {m.n_positions}")
        if len(ids) != state.batch:
            raise ModelError(f"step got {len(ids)} tokens for a cache of batch {state.batch}")
        x = self.blocks(state, np.clip(m.wte[ids] + m.wpe[pos], -LIM, LIM))
        h = rms_norm(x, m)
        return h, linear(h, m.norm_frac, m.head)

    def blocks(self, state: IntState, x: np.ndarray) -> np.ndarray:
        """The transformer blocks on one position's embedded input x ((B, C) Q16), caching its
        keys and values at `state.position` and advancing it: the final residual stream."""
        m, pos = self.m, state.position
        b, c, heads, d = state.batch, m.n_embd, m.n_head, m.head_dim
        for i, lay in enumerate(m.layers):
            qkv = linear(rms_norm(x, m), m.norm_frac, lay.qkv)  # (B, 3C) Q16
            q, sq = narrow(qkv[:, :c].reshape(b * heads, d))
            k, sk, v = self._cached(i, qkv, lay, b * heads)
            state.keys[i][:, pos], state.key_shift[i][:, pos] = k, sk
            state.values[i][:, pos] = v
            keys = state.keys[i][:, : pos + 1]
            dots = np.einsum("nd,ntd->nt", q, keys)  # exact
            scores = shift_round(dots, 2 * FX - SCORE_FRAC - sq[:, None]
                                 - state.key_shift[i][:, : pos + 1], SCORE_LIM)
            z = scores.max(axis=-1, keepdims=True) - scores
            e = exp2_neg(z) >> (EXP_BITS - ATT_BITS)
            mixed = np.einsum("nt,ntd->nd", e, state.values[i][:, : pos + 1])
            a = round_div(mixed, e.sum(axis=-1, keepdims=True)).reshape(b, c)
            x = np.clip(x + linear(a, 0, lay.proj), -LIM, LIM)
            f = quick_gelu(linear(rms_norm(x, m), m.norm_frac, lay.fc))
            g, sg = narrow(f)
            x = np.clip(x + linear(g, FX - sg, lay.mlp_proj), -LIM, LIM)
        state.position = pos + 1
        return x

    def _cached(self, layer: int, qkv: np.ndarray, lay, rows: int):
        """A step's key (int16-range, with its shift per row and head) and value (int16-range
        under the layer's per-channel shifts), as the cache stores them, (rows*heads, d) each.
        One place, so that a measurement can store them otherwise (scripts/cache_bits.py)."""
        c = self.m.n_embd
        k, sk = narrow(qkv[:, c : 2 * c].reshape(rows, -1))
        v = np.clip(shift_round(qkv[:, 2 * c :], lay.v_shift, LIM), -ACT_MAX, ACT_MAX)
        return k, sk, v.reshape(rows, -1)
