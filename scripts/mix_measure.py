"""The codec's distributions mixed with an online least-squares predictor's, measured in float.

    python scripts/mix_measure.py record IMAGE... --out DIR [--crop 256] [--model M]
    python scripts/mix_measure.py measure DIR/*.npz [--expert laplace|logistic]
                                  [--mix geometric|linear] [--no-inter] [--per-symbol]
                                  [--shared-codec-weight] [--no-scale [--lr-slope 0.001]]
                                  [--lr-lms 0.02] [--lr-mix 0.005]
                                  [--second DIR2 [--no-expert]]

`record` encodes each image (a gallery name, a Kodak name such as kodim07, or a path; centre
crop) with the default codec (context mode 2, its adaptation, batch 8) and stores the integer
frequencies it coded every subpixel with, the subpixel's image coordinates and the coding step
(about 200 MB per 256x256 crop). It checks that the coordinates it works out from the window
layout give back the coded symbols.

`measure` replays each image in coding order and mixes, per subpixel, the codec's distribution
with a second one (the "expert") centred on a prediction from pixels already coded:

* the prediction is W, N, NW, NE, W + N - NW and MED of the same channel, and for G and B the
  four neighbours moved by the previous channel's difference at this pixel (W + (X' - W'), ...),
  combined by NLMS weights per channel around their mean (the "inter-channel" terms);
* the expert is a two-sided geometric distribution, log p linear in |v - prediction| (laplace),
  or a discretized logistic; its scale is the mean |error| in one of 12 contexts per channel,
  from the local gradient activity and the previous channel's error at this pixel;
* geometric mixing: p ~ p_codec^a * p_expert^b, (a, b) per channel and context, learned online
  by the gradient of the code length (as the codec's temperature is); or linear mixing.
  With the laplace expert, b log p_expert is a slope times |v - prediction|: in the codec's
  log2 scores, one more term per symbol.
* `--second DIR2`: the same crops recorded with another model (`record --model`), whose
  distribution enters the geometric mix as a third factor (an ensemble of two models);
  `--no-expert` leaves the expert out, to see the two models alone.

The learning rates' defaults were chosen on training photographs (McMaster 1 and 9, BSDS500
train 100075), not on the gallery or Kodak.
Every prediction uses only pixels coded before it; the state moves once per coding step, by the
sum of that step's updates (what a decoder can repeat: it decodes a whole step before the
next), or after each symbol with --per-symbol. Float64, not yet a codec mode (docs/design.md,
"Mixing with an online predictor: measured").
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from numba import njit

TILE, STEP, BATCH = 16, 15, 8  # context mode 2's windows and the default batch
FEATURES, CONTEXTS = 10, 12


def coding_order(height: int, width: int, batch: int = BATCH) -> np.ndarray:
    """(y, x, channel, step) of every coded subpixel, in the order context mode 2 codes them:
    the codec's own window layout (igc.core.overlap) and plan (igc.codec.loop.waves)."""
    from igc.codec.loop import Job, waves
    from igc.core.overlap import OverlapTiling
    from igc.core.tokenizer import SubpixelTokenizer

    tiling = OverlapTiling(SubpixelTokenizer(TILE))
    layout = tiling.layout(height, width)
    wi, wj, _ = tiling._order(*tiling.grid(height, width))
    r, c, ch = np.meshgrid(np.arange(TILE), np.arange(TILE), np.arange(3), indexing="ij")
    at = np.empty((TILE * TILE * 3, 3), np.int64)
    at[tiling._index.reshape(-1)] = np.stack([r.ravel(), c.ravel(), ch.ravel()], axis=1)
    job = Job(layout.tokens, layout.coded, action=None)
    out, step = [], 0
    for group in waves(job, layout.groups, batch, lane=batch):
        windows = np.arange(group.parts[0].rows.start, group.parts[0].rows.stop)
        for t in range(group.steps):
            for w in windows[layout.coded[windows, t]]:
                out.append((wi[w] * STEP + at[t, 0], wj[w] * STEP + at[t, 1], at[t, 2], step))
            step += 1
    return np.array(out, np.int64)


def record(a) -> None:
    from PIL import Image
    from script_env import KODAK

    import igc.api as api
    from igc.benchmark.sources import center_crop, gallery
    from igc.codec import loop
    from igc.plugins.compose import compose

    seen = []
    encode = loop.Encoding.__call__

    def spy(self, dist, symbols):
        seen.append((dist.freqs.astype(np.int32), np.array(symbols)))
        return encode(self, dist, symbols)

    loop.Encoding.__call__ = spy
    api.set_threads(a.threads)
    refs = {r.name.rsplit(".", 1)[0]: r.path for r in gallery()}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in a.images:
        path = refs.get(name) or (KODAK / f"{name}.png" if name.startswith("kodim") else name)
        if not Path(path).is_file():
            raise SystemExit(f"{name}: not a gallery photo ({', '.join(sorted(refs))}), a Kodak "
                             f"name found in {KODAK}, or an image file")
        img = np.asarray(Image.open(path).convert("RGB"))
        img = np.ascontiguousarray(center_crop(img, a.crop) if a.crop else img)
        seen.clear()
        data = compose(a.model, context=2, batch=BATCH).encode(img).data
        freqs = np.concatenate([f for f, _ in seen])
        symbols = np.concatenate([s for _, s in seen])
        order = coding_order(*img.shape[:2])
        if not np.array_equal(img[order[:, 0], order[:, 1], order[:, 2]], symbols):
            raise SystemExit(f"{name}: the worked-out coding order does not match the coder's")
        bits = -np.log2(freqs[np.arange(len(symbols)), symbols] / 2.0**24).sum()
        print(f"{name}: {len(data):,} bytes, model bits {bits / img.size:.4f} per subpixel",
              flush=True)
        np.savez(out / f"{Path(str(name)).stem}.npz", freqs=freqs, symbols=symbols,
                 order=order, image=img)


@njit(cache=True)
def _pixel(img, known, yy, xx, ch, fallback):
    """A coded subpixel's value, or `fallback` outside the image or where not yet coded."""
    ok = 0 <= yy < img.shape[0] and 0 <= xx < img.shape[1] and known[yy, xx, ch]
    return img[yy, xx, ch] if ok else fallback


@njit(cache=True)
def predict(img, known, err_at, w, f, y, x, c, inter):
    """The NLMS prediction of subpixel (y, x, c) from the pixels coded so far: (prediction
    clipped to 0..255, features used, 1 + their squared norm, activity context). Leaves the
    centred features in f[:n] for the update; `inter` adds G's and B's colour terms."""
    vw = _pixel(img, known, y, x - 1, c, _pixel(img, known, y - 1, x, c, 128.0))
    vn = _pixel(img, known, y - 1, x, c, vw)
    vnw, vne = _pixel(img, known, y - 1, x - 1, c, vn), _pixel(img, known, y - 1, x + 1, c, vn)
    lo, hi = min(vw, vn), max(vw, vn)
    med = lo if vnw >= hi else hi if vnw <= lo else vw + vn - vnw
    f[0], f[1], f[2], f[3], f[4], f[5] = vw, vn, vnw, vne, vw + vn - vnw, med
    n = 6
    activity = abs(vw - vnw) + abs(vn - vnw) + abs(vn - vne)
    if c > 0 and inter:
        cur = img[y, x, c - 1]
        f[6] = vw + cur - _pixel(img, known, y, x - 1, c - 1, cur)
        f[7] = vn + cur - _pixel(img, known, y - 1, x, c - 1, cur)
        f[8] = vnw + cur - _pixel(img, known, y - 1, x - 1, c - 1, cur)
        f[9] = vne + cur - _pixel(img, known, y - 1, x + 1, c - 1, cur)
        n = 10
        activity += 2.0 * abs(err_at[y, x, c - 1])
    base = 0.0
    for k in range(n):
        base += f[k]
    base /= n
    norm, pred = 1.0, base
    for k in range(n):
        f[k] -= base
        norm += f[k] * f[k]
        pred += w[c, k] * f[k]
    b = 0
    while b < CONTEXTS - 1 and activity > 2.0**b - 1:
        b += 1
    return min(max(pred, 0.0), 255.0), n, norm, b


@njit(cache=True)
def _replay(freqs, symbols, order, height, width, geometric, inter, per_symbol, lr_lms,
            lr_mix, laplace, shared_codec_weight, no_scale, lr_slope, second, use_expert):
    """Bits of the codec alone, the predictor alone and the mix, per channel: (3, 3).

    With a `second` model's frequencies (same coding order; empty for none) the geometric mix
    has a third factor p_second^c, c per channel and context, starting at 0; `use_expert`
    False keeps the expert's weight at 0 (the two models mixed alone)."""
    two = len(second) > 0
    img = np.zeros((height, width, 3))
    known = np.zeros((height, width, 3), np.bool_)
    err_at = np.zeros((height, width, 3))
    w = np.zeros((3, FEATURES))
    mag, cnt = np.full((3, CONTEXTS), 8.0), np.ones((3, CONTEXTS))
    mix = np.zeros((3, CONTEXTS, 3))
    mix[:, :, 0] = 1.0
    lam = np.full((3, CONTEXTS), -3.0)
    dw, dmag, dcnt = np.zeros_like(w), np.zeros_like(mag), np.zeros_like(cnt)
    dmix, dlam = np.zeros_like(mix), np.zeros_like(lam)
    f = np.zeros(FEATURES)
    pm, pl, px, p2 = np.zeros(256), np.zeros(256), np.zeros(256), np.ones(256)
    bits = np.zeros((3, 3))
    step = -1
    for i in range(len(symbols)):
        y, x, c, s = order[i, 0], order[i, 1], order[i, 2], symbols[i]
        if per_symbol or order[i, 3] != step:  # the state moves by the last step's updates
            w += dw
            mix += dmix
            lam += dlam
            mag += dmag
            cnt += dcnt
            for cc in range(3):
                for b in range(CONTEXTS):
                    if cnt[cc, b] > 256:
                        mag[cc, b] *= 0.5
                        cnt[cc, b] *= 0.5
            dw[:] = 0.0
            dmix[:] = 0.0
            dlam[:] = 0.0
            dmag[:] = 0.0
            dcnt[:] = 0.0
            step = order[i, 3]

        pred, n, norm, b = predict(img, known, err_at, w, f, y, x, c, inter)
        scale = 1.0 if no_scale else 0.6 * mag[c, b] / cnt[c, b] + 0.3
        a_at = 0 if shared_codec_weight else b  # the codec's weight: per channel, or context
        total = 0.0
        for v in range(256):  # discretized logistic, its tails folded into 0 and 255
            if laplace:  # or a two-sided geometric: log p linear in |v - pred|
                pl[v] = max(math.exp(-abs(v - pred) / scale), 1e-9)
            else:
                up = 1.0 if v == 255 else 1.0 / (1.0 + math.exp(-(v + 0.5 - pred) / scale))
                down = 0.0 if v == 0 else 1.0 / (1.0 + math.exp(-(v - 0.5 - pred) / scale))
                pl[v] = max(up - down, 1e-9)
            total += pl[v]
        for v in range(256):
            pl[v] /= total
            pm[v] = freqs[i, v] / 16777216.0
            if two:
                p2[v] = second[i, v] / 16777216.0
        if geometric:
            z = 0.0
            for v in range(256):
                px[v] = math.exp(mix[c, a_at, 0] * math.log(pm[v]) + mix[c, b, 1] * math.log(pl[v])
                                 + mix[c, b, 2] * math.log(p2[v]))
                z += px[v]
            mean_m = mean_l = mean_2 = 0.0
            for v in range(256):
                px[v] /= z
                mean_m += px[v] * math.log(pm[v])
                mean_l += px[v] * math.log(pl[v])
                mean_2 += px[v] * math.log(p2[v])
            dmix[c, a_at, 0] += lr_mix * (math.log(pm[s]) - mean_m)
            if use_expert:
                dmix[c, b, 1] += (lr_slope if no_scale else lr_mix) * (math.log(pl[s]) - mean_l)
            if two:
                dmix[c, b, 2] += lr_mix * (math.log(p2[s]) - mean_2)
        else:
            weight = 1.0 / (1.0 + math.exp(-lam[c, b]))
            for v in range(256):
                px[v] = (1.0 - weight) * pm[v] + weight * pl[v]
            dlam[c, b] += lr_mix * (pl[s] - pm[s]) * weight * (1.0 - weight) / px[s]
        bits[c, 0] -= math.log2(pm[s])
        bits[c, 1] -= math.log2(pl[s])
        bits[c, 2] -= math.log2(max(px[s], 1e-12))
        error = s - pred
        for k in range(n):
            dw[c, k] += lr_lms * error * f[k] / norm
        dmag[c, b] += abs(error)
        dcnt[c, b] += 1.0
        err_at[y, x, c] = error
        img[y, x, c] = s
        known[y, x, c] = True
    return bits


def measure(a) -> None:
    totals, pixels = np.zeros((3, 3)), 0
    missing = [f for f in a.files if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)} (write them with `record`)")
    for path in a.files:
        d = np.load(path)
        h, w = d["image"].shape[:2]
        second = np.zeros((0, 256), np.int32)
        if a.second:
            other = np.load(Path(a.second) / Path(path).name)
            if not (np.array_equal(other["symbols"], d["symbols"])
                    and np.array_equal(other["order"], d["order"])):
                raise SystemExit(f"{path}: {a.second} holds another crop or coding order")
            second = other["freqs"]
        bits = _replay(d["freqs"], d["symbols"].astype(np.int64), d["order"], h, w,
                       a.mix == "geometric", not a.no_inter, a.per_symbol, a.lr_lms, a.lr_mix,
                       a.expert == "laplace", a.shared_codec_weight, a.no_scale,
                       a.lr_slope, second, not a.no_expert)
        totals += bits
        pixels += d["image"].size
        codec, lms, mixed = bits.sum(axis=0) / d["image"].size
        print(f"{Path(path).stem}: codec {codec:.4f}, predictor {lms:.4f}, mixed {mixed:.4f} "
              f"({mixed / codec - 1:+.2%})", flush=True)
    codec, lms, mixed = totals.sum(axis=0) / pixels
    print(f"all {len(a.files)}: codec {codec:.4f}, predictor {lms:.4f}, mixed {mixed:.4f} "
          f"({mixed / codec - 1:+.2%}); per channel, codec -> mixed: " + ", ".join(
              f"{'RGB'[c]} {totals[c, 0] * 3 / pixels:.3f} -> {totals[c, 2] * 3 / pixels:.3f}"
              for c in range(3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("record")
    r.add_argument("images", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--crop", type=int, default=256)
    r.add_argument("--model", default=None)
    r.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("measure")
    m.add_argument("files", nargs="+")
    m.add_argument("--mix", choices=["geometric", "linear"], default="geometric")
    m.add_argument("--expert", choices=["laplace", "logistic"], default="laplace")
    m.add_argument("--no-inter", action="store_true")
    m.add_argument("--per-symbol", action="store_true")
    m.add_argument("--shared-codec-weight", action="store_true",
                   help="the codec's weight a per channel only (as the adaptation's temperature)")
    m.add_argument("--no-scale", action="store_true",
                   help="no mean-|error| scale: the expert's weight b alone sets its slope")
    m.add_argument("--lr-slope", type=float, default=0.001, help="b's rate with --no-scale")
    m.add_argument("--lr-lms", type=float, default=0.02)
    m.add_argument("--lr-mix", type=float, default=0.005)
    m.add_argument("--second", default=None,
                   help="a folder of the same crops recorded with another model: mixed in too")
    m.add_argument("--no-expert", action="store_true", help="the expert's weight stays 0")
    a = ap.parse_args()
    record(a) if a.what == "record" else measure(a)


if __name__ == "__main__":
    main()
