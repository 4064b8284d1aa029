"""What mixing two models' distributions would save: float32 model bits of each model alone and
of fixed mixes of the two, on the same tiles, one parallel pass each (as scripts/eval_bits.py).

    python scripts/pair_measure.py MODEL_A MODEL_B IMAGES... [--weights 0.3,0.4,0.5,0.6,0.7]

For each weight w of A: the geometric mix (softmax of w·logp_A + (1−w)·logp_B, renormalised) and
the linear mix (w·p_A + (1−w)·p_B), in total and per channel (R, G, B). The weights are fixed for
the whole set, so the figures bound from below what a mix learned per image would save, less what
the codec's context modes already take (they adapt one model's distribution to the image).
Both models must take the same ids (a subpixel and a pixel model do); tiles are cut as igc's
codec cuts them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from eval_bits import images_of

from igc.core.tokenizer import SubpixelTokenizer
from igc.training.model import build_network, load_pretrained


def load(spec: str) -> tuple[torch.nn.Module, int]:
    cfg, state, _ = load_pretrained(spec)
    model = build_network(cfg)
    model.load_state_dict(state, strict=False)
    return model.eval(), cfg.tile


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_a")
    ap.add_argument("model_b")
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--chunk", type=int, default=128)
    a = ap.parse_args()
    weights = [float(w) for w in a.weights.split(",")]
    (ma, tile), (mb, tile_b) = load(a.model_a), load(a.model_b)
    if tile != tile_b:
        ap.error(f"the models' tiles differ ({tile} and {tile_b})")
    tok = SubpixelTokenizer(tile)
    names = ["A", "B"] + [f"geo {w}" for w in weights] + [f"lin {w}" for w in weights]
    bits = np.zeros((len(names), 3))  # per channel
    count = np.zeros(3)
    channel = torch.arange(tile * tile * 3) % 3
    for path in a.images:
        for name, im in images_of(path):
            t = tok.encode(im)
            tokens = torch.from_numpy(t.tokens)
            coded = torch.from_numpy(t.coded)
            inputs = torch.cat([torch.full_like(tokens[:, :1], tok.start_token), tokens[:, :-1]], 1)
            before = bits.sum()
            for i in range(0, len(tokens), a.chunk):
                x, y, m = inputs[i:i + a.chunk], tokens[i:i + a.chunk, :, None], coded[i:i + a.chunk]
                la = torch.log_softmax(ma(x).float()[..., :256], -1)
                lb = torch.log_softmax(mb(x).float()[..., :256], -1)
                rows = [la, lb]
                rows += [torch.log_softmax(w * la + (1 - w) * lb, -1) for w in weights]
                rows += [torch.logaddexp(la + math.log(w), lb + math.log(1 - w)) for w in weights]
                for r, lp in enumerate(rows):
                    picked = -lp.gather(-1, y)[..., 0].double() / math.log(2)
                    for c in range(3):
                        mc = m & (channel == c)
                        bits[r, c] += float(picked[mc].sum())
                for c in range(3):
                    count[c] += int((m & (channel == c)).sum())
            print(f"{name} done ({(bits.sum() - before) / len(names) / im.size:.4f} mean bpsp)",
                  flush=True)
    total = count.sum()
    base = bits[0].sum() / total
    print(f"\n{'mix':<10} {'bpsp':>8} {'vs A':>8}   R        G        B")
    for r, n in enumerate(names):
        bpsp = bits[r].sum() / total
        per = "  ".join(f"{bits[r, c] / count[c]:.4f}" for c in range(3))
        print(f"{n:<10} {bpsp:8.4f} {100 * (bpsp / base - 1):+7.2f}%   {per}")


if __name__ == "__main__":
    main()
