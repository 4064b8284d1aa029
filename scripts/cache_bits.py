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

from igc.benchmark.sources import center_crop, gallery
from igc.core.tokenizer import SubpixelTokenizer
from igc.engines import integer as ig
from igc.models.imagegpt import ImageGPTModel


class NarrowCache(ig.ReferenceEngine):
    """The reference engine with the cache's keys and values rounded to fewer bits as stored."""

    def __init__(self, model, key_bits: int, value_bits: int, channel_max=None) -> None:
        super().__init__(model)
        self.key_bits, self.value_bits, self.channel_max = key_bits, value_bits, channel_max
        self.seen = [np.zeros(model.n_embd, np.int64) for _ in model.layers]

    def _cached(self, layer: int, qkv: np.ndarray, lay, rows: int):
        k, sk, v = super()._cached(layer, qkv, lay, rows)
        raw = qkv[:, self.m.n_embd : 2 * self.m.n_embd]
        self.seen[layer] = np.maximum(self.seen[layer], np.abs(raw).max(axis=0))
        if self.key_bits < 0:
            shift = np.maximum(ig.bit_length(self.channel_max[layer]) + self.key_bits + 1, 0)
            k, sk = ig.narrow((ig.shift_round(raw, shift[None, :], ig.LIM)
                               << shift[None, :]).reshape(rows, -1))
        elif self.key_bits < 16:
            drop = 16 - self.key_bits
            k, sk = ig.shift_round(k, drop, ig.LIM), sk + drop
        if self.value_bits < 16:
            shift = np.maximum(ig.bit_length(np.abs(v).max(axis=-1)) - (self.value_bits - 1), 0)
            v = ig.shift_round(v, shift[:, None], ig.LIM) << shift[:, None]
        return k, sk, v


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
        img = np.ascontiguousarray(center_crop(img, a.crop))
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
