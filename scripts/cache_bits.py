"""Bits numerics 2 would spend with an 8-bit key or value cache: a simulation in the reference engine.

    python scripts/cache_bits.py [--model igc-rgb16-v2] [--crop 64] [--configs 16/16,16/8,8/16]
                                 IMAGE...          # gallery names: astronaut coffee ...

A decoder step reads every cached key and value (int16) of its windows, and that traffic bounds
it (docs/speed.md). This measures what storing them in 8 bits would cost in bits, before anyone
builds it as a numerics. A configuration is key bits / value bits, 16 being today's cache:

* keys at 8 bits keep the top 8 of today's 16 (the per-position shift grows by 8); `-8` instead
  takes a static shift per channel from a first pass over the same image (an optimistic
  calibration, KIVI's per-channel keys);
* values at 8 bits take a shift per (row, head, position), KIVI's per-token values.

Stored rounded, then used exactly as numerics 2 uses the cache. Each image is the gallery photo's
centre crop, context mode 0 (tiles alone); bits are -sum log2(f / 2**24) of the frequencies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

from igc.benchmark.sources import gallery
from igc.core.tokenizer import SubpixelTokenizer
from igc.engines import integer as ig
from igc.models.imagegpt import ImageGPTModel


class NarrowCache(ig.ReferenceEngine):
    """The reference step with the cache's keys and values rounded to fewer bits as stored."""

    def __init__(self, model, key_bits: int, value_bits: int, channel_max=None) -> None:
        super().__init__(model)
        self.key_bits, self.value_bits, self.channel_max = key_bits, value_bits, channel_max
        self.seen = [np.zeros(model.n_embd, np.int64) for _ in model.layers]

    def _key(self, i: int, raw: np.ndarray, rows: int):
        self.seen[i] = np.maximum(self.seen[i], np.abs(raw).max(axis=0))
        if self.key_bits < 0:
            shift = np.maximum(ig.bit_length(self.channel_max[i]) + self.key_bits + 1, 0)
            raw = ig.shift_round(raw, shift[None, :], ig.LIM) << shift[None, :]
        k, sk = ig.narrow(raw.reshape(rows, -1))
        if 0 < self.key_bits < 16:
            drop = 16 - self.key_bits
            k, sk = ig.shift_round(k, drop, ig.LIM), sk + drop
        return k, sk

    def _value(self, v: np.ndarray) -> np.ndarray:
        if self.value_bits >= 16:
            return v
        shift = np.maximum(ig.bit_length(np.abs(v).max(axis=-1)) - (self.value_bits - 1), 0)
        return ig.shift_round(v, shift[:, None], ig.LIM) << shift[:, None]

    def step_logits(self, state, ids):
        m, pos = self.m, state.position
        b, c, heads, d = state.batch, m.n_embd, m.n_head, m.head_dim
        x = np.clip(m.wte[ids] + m.wpe[pos], -ig.LIM, ig.LIM)
        for i, lay in enumerate(m.layers):
            qkv = ig.linear(ig.rms_norm(x, m), m.norm_frac, lay.qkv)
            q, sq = ig.narrow(qkv[:, :c].reshape(b * heads, d))
            k, sk = self._key(i, qkv[:, c:2 * c], b * heads)
            v = np.clip(ig.shift_round(qkv[:, 2 * c:], lay.v_shift, ig.LIM), -ig.ACT_MAX,
                        ig.ACT_MAX)
            state.keys[i][:, pos], state.key_shift[i][:, pos] = k, sk
            state.values[i][:, pos] = self._value(v.reshape(b * heads, d))
            dots = np.einsum("nd,ntd->nt", q, state.keys[i][:, :pos + 1])
            scores = ig.shift_round(dots, 2 * ig.FX - ig.SCORE_FRAC - sq[:, None]
                                    - state.key_shift[i][:, :pos + 1], ig.SCORE_LIM)
            e = ig.exp2_neg(scores.max(axis=-1, keepdims=True) - scores) >> (ig.EXP_BITS
                                                                              - ig.ATT_BITS)
            mixed = np.einsum("nt,ntd->nd", e, state.values[i][:, :pos + 1])
            a = ig.round_div(mixed, e.sum(axis=-1, keepdims=True)).reshape(b, c)
            x = np.clip(x + ig.linear(a, 0, lay.proj), -ig.LIM, ig.LIM)
            g, sg = ig.narrow(ig.quick_gelu(ig.linear(ig.rms_norm(x, m), m.norm_frac, lay.fc)))
            x = np.clip(x + ig.linear(g, ig.FX - sg, lay.mlp_proj), -ig.LIM, ig.LIM)
        state.position = pos + 1
        h = ig.rms_norm(x, m)
        return h, ig.linear(h, m.norm_frac, m.head)


def bits_per_subpixel(engine, tok: SubpixelTokenizer, image: np.ndarray) -> float:
    t = tok.encode(image)
    n, length = t.tokens.shape
    state, prev, total = engine.start(n, length), np.full(n, tok.start_token), 0.0
    for p in range(length):
        f = engine.step(state, prev)
        sym = t.tokens[:, p]
        total -= np.log2(f[np.arange(n), sym][t.coded[:, p]] / float(1 << 24)).sum()
        prev = sym
    return total / image.size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default="igc-rgb16-v2")
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--configs", default="16/16,16/8,8/16")
    a = ap.parse_args()
    configs = [tuple(int(x) for x in c.split("/")) for c in a.configs.split(",")]
    m = ImageGPTModel(a.model).integer_model
    tok = SubpixelTokenizer(16)
    refs = {r.name.rsplit(".", 1)[0]: r for r in gallery()}
    total = dict.fromkeys(configs, 0.0)
    for name in a.images:
        img = np.asarray(Image.open(refs[name].path).convert("RGB"))
        y, x = (img.shape[0] - a.crop) // 2, (img.shape[1] - a.crop) // 2
        img = np.ascontiguousarray(img[y:y + a.crop, x:x + a.crop])
        calibration = NarrowCache(m, 16, 16)
        if any(k < 0 for k, _ in configs):
            bits_per_subpixel(calibration, tok, img)
        start, row = time.time(), []
        for kb, vb in configs:
            b = bits_per_subpixel(NarrowCache(m, kb, vb, calibration.seen), tok, img)
            total[kb, vb] += b / len(a.images)
            row.append(f"{kb}/{vb}: {b:.4f}")
        print(name, "  ".join(row), f"({time.time() - start:.0f} s)", flush=True)
    base = total[configs[0]]
    print("mean", "  ".join(f"{k}/{v}: {t:.4f} ({t / base - 1:+.3%})"
                            for (k, v), t in total.items()))


if __name__ == "__main__":
    main()
