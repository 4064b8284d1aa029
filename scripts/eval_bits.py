"""Model bits per subpixel of images, one parallel pass in float32 on any torch device.

    python scripts/eval_bits.py MODEL IMAGES... [--device cuda] [--limit N] [--jpeg-downscale F]
                                                [--json out.json]

IMAGES are folders of images or .npz stacks (`images`, uint8 N×H×W×3). Each image is tiled and
tokenized exactly as igc's codec tiles it (igc.core.tokenizer.SubpixelTokenizer), so the figure
equals `igc bench --estimate`'s model bits for the same model; this script exists to compute it
on a GPU, where a 6.6M-parameter model takes seconds on Kodak instead of CPU-hours.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from igc.core.tokenizer import SubpixelTokenizer
from igc.training.data import image_files, jpeg_downscale_problem, load_rgb
from igc.training.model import build_network, load_pretrained
from igc.training.trainer import position_weights


def images_of(path: Path, jpeg_downscale: float = 1.0):
    """(name, H×W×3 uint8) of every image in a folder or .npz stack; JPEG-coded ones shrunk
    by `jpeg_downscale` as `igc train --jpeg-downscale` shrinks them."""
    if path.suffix == ".npz":
        for i, im in enumerate(np.load(path)["images"]):
            yield f"{path.stem}[{i}]", im
        return
    for f in image_files(path):
        yield f.stem, np.asarray(load_rgb(f, jpeg_downscale), np.uint8)


@torch.no_grad()
def image_bits(model: torch.nn.Module, tok: SubpixelTokenizer, image: np.ndarray, device,
               chunk: int = 256) -> tuple[float, float, int]:
    """(bits of every coded subpixel, bits of those off a tile's first row and column, how
    many of those there are). The second pair is what context modes 2 and 3 ask the model
    for, less the image's top and left edges and the adaptation."""
    t = tok.encode(image)
    tokens = torch.from_numpy(t.tokens).to(device)
    coded = torch.from_numpy(t.coded).to(device)
    inner = (position_weights(tok.tile, 0.0) > 0).to(device)
    inputs = torch.cat([torch.full_like(tokens[:, :1], tok.start_token), tokens[:, :-1]], dim=1)
    total, interior, n_interior = 0.0, 0.0, 0
    for i in range(0, len(tokens), chunk):
        logp = torch.log_softmax(model(inputs[i : i + chunk]).float(), dim=-1)
        picked = logp.gather(-1, tokens[i : i + chunk, :, None])[..., 0]
        mask = coded[i : i + chunk]
        total -= float(picked[mask].double().sum())
        mask = mask & inner
        interior -= float(picked[mask].double().sum())
        n_interior += int(mask.sum())
    return total / math.log(2), interior / math.log(2), n_interior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--jpeg-downscale", type=float, default=1.0,
                    help="shrink JPEG-coded images by this factor first (Lanczos), as "
                    "`igc train --jpeg-downscale` does")
    a = ap.parse_args()
    if problem := jpeg_downscale_problem(a.jpeg_downscale):
        ap.error(problem)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products, as the codec computes
    torch.backends.cudnn.allow_tf32 = False
    cfg, state, provenance = load_pretrained(a.model)
    model = build_network(cfg)  # a pixel model takes the same ids
    model.load_state_dict(state, strict=False)
    model.to(a.device).eval()
    tok = SubpixelTokenizer(cfg.tile)
    report = {"model": a.model, "fingerprint": provenance["fingerprint"],
              "jpeg_downscale": a.jpeg_downscale, "sets": {}}
    for path in a.images:
        start, bits, subpixels, per_image = time.time(), 0.0, 0, {}
        inner_bits, inner_count = 0.0, 0
        for n, (name, im) in enumerate(images_of(path, a.jpeg_downscale)):
            if a.limit is not None and n >= a.limit:
                break
            b, ib, ic = image_bits(model, tok, im, a.device)
            per_image[name] = b / im.size
            bits, subpixels = bits + b, subpixels + im.size
            inner_bits, inner_count = inner_bits + ib, inner_count + ic
        report["sets"][str(path)] = {"bpsp": bits / subpixels, "images": len(per_image),
                                     "interior_bpsp": inner_bits / inner_count,
                                     "per_image": per_image}
        print(f"{a.model} {path}: {bits / subpixels:.4f} bpsp over {len(per_image)} images, "
              f"{inner_bits / inner_count:.4f} off the tiles' first row and column "
              f"({time.time() - start:.1f} s)", flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
