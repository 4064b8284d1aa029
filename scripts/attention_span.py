"""Model bits when attention reads only part of a tile: the first positions plus the latest ones.

    python scripts/attention_span.py [--model igc-rgb16-v2] [--images kodim05,kodim13,...]
                                     [--crop 256] [--spans none,384+0,192+48,...] [--threads 2]

Why: a decoder step reads every cached key and value of its tile, and that traffic is most of a
whole photo's decode (docs/speed.md). A model whose attention sees only `keep` first positions
(the "sink") and the `span` latest ones would read at most keep + span per step. This measures
what such a mask costs a shipped model as it is, with no retraining: one float32 parallel pass
per image over 16x16 tiles (as scripts/eval_bits.py), the causal mask narrowed to
`j >= i - span + 1 or j < keep`. A spec is `SPAN+KEEP`, or `none` for the full causal mask.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from eval_bits import image_bits
from PIL import Image
from script_env import KODAK

from igc.core.tokenizer import SubpixelTokenizer
from igc.training import model as train_model
from igc.training.model import ImageGPT, load_pretrained


def banded_attention(span: int | None, keep: int):
    """An `Attention.forward` whose query i reads keys j <= i with i - j < span or j < keep."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        if span is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
            mask = (j <= i) & ((i - j < span) | (j < keep))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))

    return forward


def parse_spec(spec: str) -> tuple[int | None, int]:
    if spec == "none":
        return None, 0
    span, _, keep = spec.partition("+")
    return int(span), int(keep or 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="igc-rgb16-v2")
    ap.add_argument("--images", default="kodim05,kodim13,kodim20,kodim23")
    ap.add_argument("--crop", type=int, default=256, help="centre crop side; 0 for whole images")
    ap.add_argument("--spans", default="none,384+0,192+0,96+0,384+48,192+48,96+48,192+96,96+96")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, state, _ = load_pretrained(a.model)
    model = ImageGPT(cfg)
    model.load_state_dict(state, strict=False)
    model.eval()
    tok = SubpixelTokenizer(cfg.tile)
    images = []
    for name in a.images.split(","):
        with Image.open(KODAK / f"{name}.png") as im:
            pixels = np.asarray(im.convert("RGB"))
        if a.crop:
            h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
            pixels = pixels[h - a.crop // 2 : h + a.crop // 2, w - a.crop // 2 : w + a.crop // 2]
        images.append(pixels)
    subpixels = sum(im.size for im in images)

    def bits(span: int | None, keep: int) -> float:
        train_model.Attention.forward = banded_attention(span, keep)
        return sum(image_bits(model, tok, im, "cpu")[0] for im in images) / subpixels

    full = bits(None, 0)
    positions = np.arange(cfg.n_positions)
    print(f"{a.model}, {len(images)} images ({a.images}), crop {a.crop or 'none'}; "
          "reads: keys a step reads (most, and mean over a tile's positions)")
    print("span+keep   most read   mean read   bits/subpixel   change")
    for spec in a.spans.split(","):
        span, keep = parse_spec(spec)
        bpsp = full if span is None else bits(span, keep)
        band = positions + 1 if span is None else np.minimum(positions + 1, span + keep)
        print(f"{spec:>9}   {band.max():>9}   {band.mean():9.1f}   {bpsp:13.4f}   "
              f"{100 * (bpsp / full - 1):+.2f}%", flush=True)


if __name__ == "__main__":
    main()
