"""Code length of numerics 2 (integers) against the float32 model, on the same images.

    python scripts/int_bits.py [--model M] [--engine cuda] [--limit N] IMAGES...

IMAGES are folders of images or .npz stacks. For each set it prints the float32 model bits (one
parallel pass, as `igc bench --estimate`) and numerics 2's ideal bits (-Σ log2 f/2**24 of the
integer frequencies the coder is given), both in bits per subpixel, and their ratio. The issue's
bound is numerics 2 <= numerics 1 + 0.5%; numerics 1's bits equal the float32 model's to ~1e-6.
With a torch engine the integer frequencies come from its one-shot pass (`frequencies_all`),
which equals stepping bit for bit (tests); with the reference or cpu engine they are stepped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_bits import image_bits, images_of

from igc.core.tokenizer import SubpixelTokenizer
from igc.models.imagegpt import ImageGPTModel


def integer_bits(engine, tokens: np.ndarray, coded: np.ndarray, chunk: int = 512) -> float:
    """-Σ log2(f/2**24) over the coded positions of (tiles, L) tokens."""
    total = 0.0
    for i in range(0, len(tokens), chunk):
        tk, cd = tokens[i : i + chunk], coded[i : i + chunk]
        if hasattr(engine, "frequencies_all"):
            f = engine.frequencies_all(tk)
            picked = np.take_along_axis(f, tk[..., None], -1)[..., 0]
        else:
            st = engine.start(len(tk), tk.shape[1])
            prev = np.full(len(tk), 256, np.int64)
            picked = np.empty(tk.shape, np.int64)
            for p in range(tk.shape[1]):
                picked[:, p] = engine.step(st, prev)[np.arange(len(tk)), tk[:, p]]
                prev = tk[:, p]
        total -= float(np.log2(picked[cd] / 2.0 ** 24).sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--model", default=None)
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--device", default="cpu", help="torch device of the float32 pass")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    import torch

    from igc.training.model import ImageGPT, load_pretrained

    torch.backends.cuda.matmul.allow_tf32 = False
    model = ImageGPTModel(a.model)
    engine = model.engine(a.engine)
    cfg, state, _ = load_pretrained(a.model or model.name)
    net = ImageGPT(cfg)
    net.load_state_dict(state, strict=False)
    net.to(a.device).eval()
    tok = SubpixelTokenizer(model=model)
    report = {"model": model.name, "engine": a.engine, "sets": {}}
    for path in a.images:
        start, fbits, ibits, sub, n = time.time(), 0.0, 0.0, 0, 0
        for _name, im in images_of(path):
            if a.limit is not None and n >= a.limit:
                break
            t = tok.encode(im)
            fbits += image_bits(net, tok, im, a.device)
            ibits += integer_bits(engine, t.tokens, t.coded)
            sub, n = sub + im.size, n + 1
        row = {"images": n, "float_bpsp": fbits / sub, "integer_bpsp": ibits / sub,
               "relative": ibits / fbits - 1, "seconds": time.time() - start}
        report["sets"][str(path)] = row
        print(f"{model.name} {path}: float {row['float_bpsp']:.4f}, numerics 2 "
              f"{row['integer_bpsp']:.4f} bpsp ({100 * row['relative']:+.3f}%) over {n} images, "
              f"{row['seconds']:.0f} s", flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
