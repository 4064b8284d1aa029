"""How many of numerics 2's softmax weights are exactly zero, and what skipping them would save.

    python scripts/attention_zeros.py count [--model M] [--crop 32] IMAGE...   # gallery names
    python scripts/attention_zeros.py time --against OTHER/igc/engines/integer_cpu.py
                                           [--model M] [--repeat 4]

A weight is zero when a score lies more than about 20 log2 units below its row's maximum (the
exponential's Q30 table keeps its top 20 bits). The cpu engine then need not read that position's
value: it reads values by pairs of positions, so a pair is skipped when both weights are zero.

`count` steps the reference engine over each gallery photo's centre crop (context mode 0) and
reports the share of zero weights, by position and by pair, weighted as the values are read
(a step at position p reads p + 1 values). `time` steps two versions of the cpu engine (this
checkout's and the file given) over the same 8 tiles of kodim23, alternately, on the calling
thread, prints each one's seconds per 768 steps and checks that their frequencies are equal.
Commit 30b91c6 holds a version that skips zero pairs (`git show 30b91c6:igc/engines/
integer_cpu.py > /tmp/skip.py`); it was measured no faster and not kept (docs/speed.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from script_env import KODAK

from igc.benchmark.sources import center_crop, gallery
from igc.core.tokenizer import SubpixelTokenizer
from igc.engines import integer as ig
from igc.engines import integer_cpu
from igc.models.imagegpt import ImageGPTModel

TILE = 16


def count(model, crops: dict[str, np.ndarray]) -> None:
    exp2_neg, seen = ig.exp2_neg, {"positions": [0, 0], "pairs": [0, 0]}

    def spy(z):
        e = exp2_neg(z)
        if z.ndim == 2:  # attention rows (the head's frequencies do not come through here)
            w = (e >> (ig.EXP_BITS - ig.ATT_BITS)) != 0
            pairs = np.pad(w, ((0, 0), (0, w.shape[1] % 2))).reshape(len(w), -1, 2).any(axis=2)
            for key, a in (("positions", w), ("pairs", pairs)):
                seen[key][0] += int((~a).sum())
                seen[key][1] += a.size
        return e

    ig.exp2_neg = spy
    engine, tok = ig.ReferenceEngine(model), SubpixelTokenizer(TILE)
    for name, img in crops.items():
        t = tok.encode(img)
        n, length = t.tokens.shape
        state, prev = engine.start(n, length), np.full(n, tok.start_token)
        for p in range(length):
            engine.step_logits(state, prev)
            prev = t.tokens[:, p]
        print(name, "zero weights: " + ", ".join(
            f"{z / total:.1%} of {key}" for key, (z, total) in seen.items()), flush=True)
        seen = {k: [0, 0] for k in seen}
    ig.exp2_neg = exp2_neg


def time_against(model, other: str, repeat: int) -> None:
    if not Path(other).is_file() or not (KODAK / "kodim23.png").is_file():
        raise SystemExit(f"time needs {other} (another version's integer_cpu.py) and "
                         f"{KODAK / 'kodim23.png'}")
    spec = importlib.util.spec_from_file_location("integer_cpu_other", other)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    img = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[200:232, 300:364]
    tok = SubpixelTokenizer(TILE)
    tokens = tok.encode(np.ascontiguousarray(img)).tokens
    seqs = np.concatenate([np.full((len(tokens), 1), tok.start_token), tokens[:, :-1]], axis=1)
    seconds, results = {"this checkout": [], other: []}, {}
    for mod in (integer_cpu, module):  # compile (or load numba's cache) before timing
        engine = mod.CpuEngine(model)
        engine.step(engine.start(len(seqs), 2), seqs[:, 0])
    for _ in range(repeat):
        for name, mod in (("this checkout", integer_cpu), (other, module)):
            engine = mod.CpuEngine(model)
            state = engine.start(len(seqs), seqs.shape[1])
            start = time.perf_counter()
            out = [engine.step(state, seqs[:, p]) for p in range(seqs.shape[1])]
            seconds[name].append(time.perf_counter() - start)
            results[name] = np.stack(out)
    same = np.array_equal(*results.values())
    for name, s in seconds.items():
        print(f"{name}: " + " ".join(f"{x:.3f}" for x in s) + f" s (fastest {min(s):.3f})")
    print("frequencies identical" if same else "FREQUENCIES DIFFER")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["count", "time"])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--model", default=None)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--against", help="another version's igc/engines/integer_cpu.py (time)")
    ap.add_argument("--repeat", type=int, default=4)
    a = ap.parse_args()
    model = ImageGPTModel(a.model).integer_model
    if a.what == "time":
        if not a.against:
            ap.error("time needs --against")
        time_against(model, a.against, a.repeat)
        return
    refs = {r.name.rsplit(".", 1)[0]: r for r in gallery()}
    unknown = [n for n in a.images if n not in refs]
    if unknown or not a.images:
        raise SystemExit(f"count takes gallery names ({', '.join(sorted(refs))}); "
                         f"not {', '.join(unknown) or 'none'}")
    crops = {n: np.ascontiguousarray(center_crop(
        np.asarray(Image.open(refs[n].path).convert("RGB")), a.crop)) for n in a.images}
    count(model, crops)


if __name__ == "__main__":
    main()
