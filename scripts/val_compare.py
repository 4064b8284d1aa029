"""Validation bits per subpixel of exported models on the same fixed tiles, in float32.

    python scripts/val_compare.py igc-rgb16 igc-rgb16-v2 [--photos 30] [--count 512]

Training logs validate with the run's own settings (bf16 autocast on a GPU; sometimes a subset of
the validation photos), so their figures are not comparable across runs. This recomputes them
for several models on one tile set: `--count` tiles (seed 1234, as `igc train` picks them) from
the first `--photos` photos of BSDS500 test in name order (default: all of them).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from igc.training.data import default_val_path, image_files, load_validation
from igc.training.model import build_network, load_pretrained
from igc.training.trainer import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="shipped ids or model folders")
    ap.add_argument("--photos", type=int, default=None)
    ap.add_argument("--count", type=int, default=512)
    a = ap.parse_args()
    folder = default_val_path()
    with tempfile.TemporaryDirectory() as tmp:
        if a.photos:  # the first N photos, through links, so the tile picker sees only them
            for f in image_files(folder)[: a.photos]:
                os.symlink(f, Path(tmp) / f.name)
            folder = Path(tmp)
        tiles = load_validation(folder, 16, a.count)
    print(f"{len(tiles)} tiles from {a.photos or 'all'} photos of {default_val_path()}, float32")
    for spec in a.models:
        cfg, state, provenance = load_pretrained(spec)
        model = build_network(cfg)  # a pixel model takes the same ids
        model.load_state_dict(state)
        bpsp, _ = evaluate(model, tiles, torch.device("cpu"), None)
        print(f"{spec} ({provenance['fingerprint']}): {bpsp:.4f} bits per subpixel")


if __name__ == "__main__":
    main()
