"""Where two models' validation bits differ: per channel (R, G, B) and for a tile's border
(first row and column) against its interior, float32, on the validation tiles `igc train` and
scripts/val_compare.py use (BSDS500 test, `--count` tiles, seed 1234).

    python scripts/val_channels.py [MODEL_A] [MODEL_B] [--count 512]

Default: the shipped default against the pixel model in training (docs/design.md, "One
position per pixel").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from igc.models.network import tokens_from_tiles
from igc.training.data import default_val_path, load_validation
from igc.training.model import build_network, load_pretrained

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("models", nargs="*", default=["igc-rgb16-v3", "igc-rgb16-pixel"])
ap.add_argument("--count", type=int, default=512)
args = ap.parse_args()
if len(args.models) != 2:
    ap.error("give two models (or none for the default pair)")
torch.set_num_threads(1)
tiles = load_validation(default_val_path(), 16, args.count)
ids, tgt = tokens_from_tiles(torch.from_numpy(np.asarray(tiles)))
res = {}
for spec in args.models:
    cfg, state, _ = load_pretrained(spec)
    m = build_network(cfg)
    m.load_state_dict(state)
    m.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(ids), 64):
            lp = torch.log_softmax(m(ids[i:i+64]).float(), -1)
            out.append(-lp.gather(-1, tgt[i:i+64, :, None])[..., 0] / np.log(2))
    bits = torch.cat(out).numpy()  # (N, 768)
    ch = bits.reshape(len(bits), 256, 3)
    r, c = np.divmod(np.arange(256), 16)
    border = (r == 0) | (c == 0)
    res[spec] = ch
    print(f"{spec}: all {bits.mean():.4f}; R G B {ch.mean((0, 1)).round(4)}; border "
          f"{ch[:, border].mean():.4f}, interior {ch[:, ~border].mean():.4f}")
a, b = (res[m] for m in args.models)
print("second / first per channel", (b.mean((0, 1)) / a.mean((0, 1))).round(4))
