"""How much would neighbouring tiles' pixels save? (docs/design.md, "Tiles")

    python scripts/tile_context.py [--model M] [--crop 192] [kodim01 kodim05 ...]

igc codes each 16×16 tile on its own. A codec could instead slide the model's window by half a
tile, so that part of each window is pixels already decoded (context) and only the rest is coded.
The model was trained on random crops, so the bits it spends on a window's bottom-right quadrant
given the other three are what such a scheme would pay. This script takes every 16×16 window at
stride 8 of a centre crop of each Kodak image (one parallel pass, model bits) and prints the mean
bits per subpixel of each quadrant beside the whole window's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from igc.core.tokenizer import SubpixelTokenizer, tile_side_for_context
from igc.models.imagegpt import ImageGPTModel

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def window_bits(model: ImageGPTModel, tok: SubpixelTokenizer, image: np.ndarray,
                stride: int) -> np.ndarray:
    """(windows, positions) bits of every token of every tile-sized window, one parallel pass."""
    t = tok.tile
    h, w = image.shape[:2]
    windows = np.concatenate([tok.encode(image[r : r + t, c : c + t]).tokens
                              for r in range(0, h - t + 1, stride)
                              for c in range(0, w - t + 1, stride)])
    inputs = np.concatenate([np.full((len(windows), 1), tok.start_token), windows[:, :-1]], axis=1)
    logp = model.log_probs(inputs)
    return -np.take_along_axis(logp, windows[..., None], axis=-1)[..., 0] / np.log(2)


def quadrants(tok: SubpixelTokenizer) -> np.ndarray:
    """Quadrant (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of each token position,
    found by tokenizing an image whose pixels hold their quadrant's number."""
    t, half = tok.tile, tok.tile // 2
    r, c = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
    label = (2 * (r >= half) + (c >= half)).astype(np.uint8)
    return tok.encode(np.repeat(label[..., None], 3, axis=2)).tokens[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="*", default=["kodim01", "kodim05", "kodim13", "kodim23"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--crop", type=int, default=192, help="side of the centre crop")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = ImageGPTModel(a.model)
    tok = SubpixelTokenizer(tile_side_for_context(model.context_length))
    tile, half = tok.tile, tok.tile // 2
    quadrant = quadrants(tok)
    print(f"model {model.name} ({model.fingerprint}), {tile}x{tile} windows at stride {half}, "
          f"centre {a.crop}x{a.crop} crops; mean bits per subpixel")
    print(f"{'image':10} {'whole':>7} {'top-left':>9} {'top-right':>10} {'bottom-left':>12} "
          f"{'bottom-right':>13}")
    rows = []
    for name in a.images:
        path = Path(name) if Path(name).suffix else KODAK / f"{name}.png"
        im = np.asarray(Image.open(path).convert("RGB"))
        h, w = im.shape[:2]
        s = min(a.crop, h, w)
        im = im[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        b = window_bits(model, tok, im, half)
        row = [b.mean(), *(b[:, quadrant == q].mean() for q in range(4))]
        rows.append(row)
        print(f"{path.stem:10} " + " ".join(f"{v:>{n}.3f}" for v, n in zip(row, (7, 9, 10, 12, 13),
                                                                           strict=True)))
    m = np.mean(rows, axis=0)
    print(f"{'mean':10} " + " ".join(f"{v:>{n}.3f}" for v, n in zip(m, (7, 9, 10, 12, 13),
                                                                   strict=True)))
    print(f"bottom-right given the rest saves {100 * (1 - m[4] / m[0]):.1f}% of the whole-window "
          "rate, at 4x the model work per coded subpixel")


if __name__ == "__main__":
    main()
