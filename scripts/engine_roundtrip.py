"""Encode and decode with one numerics-2 engine, timed; or decode a file another engine wrote.

    python scripts/engine_roundtrip.py IMAGE [IMAGE...] --engine cuda [--model M] [--out DIR]
    python scripts/engine_roundtrip.py IMAGE --engine cuda --decode FILE.igc

Prints one JSON line: per image the file size, bits per subpixel, encode and decode seconds and
subpixels per second, and whether the decoded pixels equal the image. With several images it
also decodes all files together (`NeuralCodec.decode_many`: one batch of every tile). With
`--decode` it decodes FILE (written elsewhere, e.g. by the cpu engine on another machine) and
compares it with IMAGE. Timings exclude loading the model; the first coding call is a warm-up
only where `--warm` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--engine", default="cpu")
    ap.add_argument("--model", default=None, help="one model for every image (default: DEFAULT_MODEL)")
    ap.add_argument("--decode", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="folder for the encoded files")
    ap.add_argument("--warm", action="store_true", help="code a 16x16 crop first (warm-up)")
    a = ap.parse_args()

    import igc
    from igc.engines.engines import set_engine

    set_engine(a.engine)
    from igc.models.folders import DEFAULT_MODEL

    # one model for every image (the default pair would send photographs to its photo model,
    # and decode_many below steps one model): --model igc-rgb16-pixel-v2 checks that one
    comp = igc.get_compressor("imagegpt", model=a.model or DEFAULT_MODEL)
    report: dict = {"engine": a.engine, "model": comp.model.name, "images": []}
    pixels = [load(p) for p in a.images]
    if a.warm:
        comp.decompress(comp.compress(pixels[0][:16, :16]))
    if a.decode is not None:
        data = a.decode.read_bytes()
        start = time.perf_counter()
        out = comp.decompress(data)
        took = time.perf_counter() - start
        report["images"].append({"file": str(a.decode), "decode_s": took,
                                 "decode_subpixels_per_s": pixels[0].size / took,
                                 "exact": bool(np.array_equal(out, pixels[0]))})
        print(json.dumps(report), flush=True)
        return
    datas = []
    for path, im in zip(a.images, pixels, strict=True):
        start = time.perf_counter()
        data = comp.compress(im)
        enc = time.perf_counter() - start
        start = time.perf_counter()
        out = comp.decompress(data)
        dec = time.perf_counter() - start
        datas.append(data)
        if a.out is not None:
            a.out.mkdir(parents=True, exist_ok=True)
            (a.out / f"{path.stem}.{a.engine}.igc").write_bytes(data)
        report["images"].append({
            "image": path.name, "bytes": len(data), "bpsp": len(data) * 8 / im.size,
            "encode_s": enc, "decode_s": dec, "encode_subpixels_per_s": im.size / enc,
            "decode_subpixels_per_s": im.size / dec, "exact": bool(np.array_equal(out, im))})
        print(json.dumps(report["images"][-1]), flush=True)
    if len(datas) > 1:
        start = time.perf_counter()
        outs = comp.codec.decode_many(datas)
        took = time.perf_counter() - start
        total = sum(im.size for im in pixels)
        report["decode_many"] = {"images": len(datas), "seconds": took,
                                 "subpixels_per_s": total / took,
                                 "exact": all(np.array_equal(o, im)
                                              for o, im in zip(outs, pixels, strict=True))}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
