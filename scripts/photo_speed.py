"""A whole photograph through igc and JPEG-XL e9 in one run: the speed issue's ratio.

    python scripts/photo_speed.py [kodim23] [--model igc-rgb16-v2[,igc-rgb16-w256]] [--threads 2]
        [--modes 0,1] [--strips d,0] [--workers processes,threads] [--lanes one,header]
        [--json out.json]

For each context mode asked for, the image is compressed and decompressed by igc's codec (the
real file, its pixels compared), with the batch each mode writes by default (256 tiles in mode 0,
32 in mode 1). JPEG-XL lossless at effort 9 (imagecodecs) encodes and decodes the same pixels in
the same run. Printed: seconds of each, igc's subpixels per second, and igc's time over
JPEG-XL's (encode + decode against encode + decode). With several models (comma-separated), each
codes the image in each mode, one after the other in the same run, and each row also gives its
time over the first row's (the speed issue's "larger model against the default"). `--strips`
gives rows per strip to try (format 6: bands decoded side by side), `d` for the codec's default
cut and `0` for none; each model and mode runs once per value, in the order given. `--workers`
gives what runs the strips side by side (igc/codec/strip_workers.py: forked processes, the
default on Linux, or threads of this process); each strip cut runs once per kind, in the order
given. `--lanes`: `one` steps each group as one lane on a thread that codes alone (the default,
igc.codec.loop.ONE_LANE), `header` in the lanes the file's header records; each kind of worker
runs once per value. `--amx on,off`: the cpu engine's weight products on the AMX units where
this CPU has them, or not (IGC_AMX=0: VNNI or AVX2 pmaddwd); every other choice runs once per
value, and each row names the instructions it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from script_env import KODAK, cpu_model


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("image", nargs="?", default="kodim23")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="0,1")
    ap.add_argument("--strips", default="d")
    ap.add_argument("--workers", default=None)
    ap.add_argument("--lanes", default="one")
    ap.add_argument("--amx", default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import imagecodecs
    from PIL import Image

    from igc.api import set_threads
    from igc.codec import loop, strip_workers
    from igc.core import container
    from igc.engines.integer_cpu import instruction_set
    from igc.plugins.compose import compose

    set_threads(a.threads)
    path = Path(a.image) if Path(a.image).suffix else KODAK / f"{a.image}.png"
    image = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
    subpixels = image.size
    load_before = os.getloadavg()[0]

    jxl, jxl_encode = timed(lambda: imagecodecs.jpegxl_encode(image, lossless=True, effort=9))
    back, jxl_decode = timed(imagecodecs.jpegxl_decode, jxl)
    assert np.array_equal(back, image)
    rows = [{"codec": "jpegxl-e9", "bytes": len(jxl), "encode_s": jxl_encode,
             "decode_s": jxl_decode}]
    print(f"{path.name} {image.shape[1]}x{image.shape[0]}; CPU {cpu_model()}; {a.threads} "
          f"threads; load {load_before:.2f}")
    print(f"  JPEG-XL e9: {len(jxl):,} bytes, encode {jxl_encode:.2f} s, decode "
          f"{jxl_decode:.3f} s")
    kinds = a.workers.split(",") if a.workers else [strip_workers.worker_kind()]
    if set(a.lanes.split(",")) - {"one", "header"}:
        raise SystemExit(f"--lanes takes one and header, not {a.lanes!r}")
    amx_choices = a.amx.split(",") if a.amx else [None]
    if set(amx_choices) - {"on", "off", None}:
        raise SystemExit(f"--amx takes on and off, not {a.amx!r}")
    runs = [(model, int(mode), None if strip == "d" else int(strip), kind, lanes, use_amx)
            for model in (a.model or "").split(",") for mode in a.modes.split(",")
            for strip in a.strips.split(",") for kind in kinds for lanes in a.lanes.split(",")
            for use_amx in amx_choices]
    first = None
    for model, mode, strip_rows, kind, lanes, use_amx in runs:
        os.environ[strip_workers.ENV] = kind
        loop.ONE_LANE = lanes == "one"
        if use_amx is not None:
            os.environ["IGC_AMX"] = "1" if use_amx == "on" else "0"
        codec = compose(model or None, context=mode, strip_rows=strip_rows)
        codec.model.__dict__.pop("_engines", None)  # a fresh engine reads IGC_AMX again
        codec.encode(image[:32, :32])  # compile the kernels outside the timing
        result, encode_s = timed(codec.encode, image)
        header = container.unpack(result.data)[0]
        kernels = instruction_set(codec.model.engine().amx)  # what the engine that coded ran on
        pixels, decode_s = timed(codec.decode, result.data)
        assert np.array_equal(pixels, image)
        total = encode_s + decode_s
        ratio = total / (jxl_encode + jxl_decode)
        first = first or total
        rows.append({"codec": f"igc mode {mode}", "model": codec.model.name,
                     "batch": header.batch, "lane": header.lane,
                     "strip_rows": header.strip_rows,
                     "strip_workers": kind if header.strip_rows else None,
                     "lanes": lanes, "kernels": kernels, "bytes": len(result.data),
                     "bpsp": 8 * len(result.data) / subpixels, "encode_s": encode_s,
                     "decode_s": decode_s, "encode_subpixels_per_s": subpixels / encode_s,
                     "decode_subpixels_per_s": subpixels / decode_s,
                     "time_over_jpegxl": ratio,
                     "time_over_first": total / first})
        strips = (f", strips of {header.strip_rows} rows on {kind}" if header.strip_rows
                  else "")
        lane = f"lanes of {header.lane}" + (", one on a thread that codes alone"
                                             if lanes == "one" else "")
        print(f"  igc {codec.model.name} mode {mode} (batch {header.batch}, {lane}{strips}, "
              f"{kernels}): "
              f"{len(result.data):,} bytes ({8 * len(result.data) / subpixels:.4f} bpsp), "
              f"encode {encode_s:.1f} s ({subpixels / encode_s:,.0f} subpixels/s), decode "
              f"{decode_s:.1f} s ({subpixels / decode_s:,.0f}/s): {ratio:.0f}x JPEG-XL's time, "
              f"{total / first:.2f}x the first row's", flush=True)
    if a.json:
        a.json.write_text(json.dumps({
            "command": "python scripts/photo_speed.py " + " ".join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_model(),
            "threads": a.threads, "load_before": load_before,
            "load_after": os.getloadavg()[0], "image": path.name,
            "subpixels": subpixels, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
