"""Three more adaptation stages over context mode 3's mix, measured in float (issue 23, item 4).

    python scripts/mix_stages.py DIR/*.npz [--ent] [--hist [--hist-ctx]] [--sse]

Reads what `scripts/mix_measure.py record` wrote (the codec's mode-2 frequencies of every
subpixel, in coding order) and replays mode 3's mix as the codec has it: the codec's weight one
per channel (mode 3's temperature), the NLMS predictor's two-sided geometric expert with a slope
weight per channel and activity context, updated once per coding step. Then, each switchable:

* `--ent`: the expert's weight also per bucket of the codec distribution's entropy (whole bits,
  0..5+), so a confident model and an unsure one trust the predictor differently;
* `--hist`: a third geometric factor, the adaptive histogram of the predictor's rounded residual
  per channel (`--hist-ctx`: and per 4 activity buckets), smoothed by the expert (`--beta`),
  halved past `--limit` counts: the residual's shape where the two-sided geometric is wrong;
* `--sse`: secondary estimation of the mixed distribution, log p corrected by a learned
  piecewise-linear curve of the quantized -log2 p (half-bit knots) per channel (and per entropy
  bucket with `--ent`), renormalised, learned at `--lr-sse`.

Printed: the codec alone, the mix without `--sse`, and with it. Float64, not a codec mode
(docs/design.md, "Three more stages over mode 3: measured").
"""

import argparse
import math

import numpy as np
from mix_measure import CONTEXTS, FEATURES, predict
from numba import njit

ENT = 6  # entropy buckets: whole bits 0..5+


@njit(cache=True)
def _replay(freqs, symbols, order, height, width, lr_lms, lr_mix, ent_on, hist_on, beta,
            limit, lr_hist, hist_ctx, sse_on, lr_sse):
    img = np.zeros((height, width, 3))
    known = np.zeros((height, width, 3), np.bool_)
    err_at = np.zeros((height, width, 3))
    w = np.zeros((3, FEATURES))
    mag, cnt = np.full((3, CONTEXTS), 8.0), np.ones((3, CONTEXTS))
    mixa = np.ones(3)                     # codec weight per channel (mode 3: the temperature)
    mixb = np.zeros((3, CONTEXTS, ENT))   # expert slope weight per channel, activity, entropy
    mixh = np.zeros((3, CONTEXTS, ENT))
    hist = np.zeros((3, 4, 511))
    hn = np.zeros((3, 4))
    sse = np.zeros((3, ENT, 33))  # log-prob correction curve vs quantized mixed lp
    dw, dmag, dcnt = np.zeros_like(w), np.zeros_like(mag), np.zeros_like(cnt)
    dmixa, dmixb, dmixh = np.zeros_like(mixa), np.zeros_like(mixb), np.zeros_like(mixh)
    dhist, dhn, dsse = np.zeros_like(hist), np.zeros_like(hn), np.zeros_like(sse)
    f = np.zeros(FEATURES)
    pm, pl, ph, px = np.zeros(256), np.zeros(256), np.zeros(256), np.zeros(256)
    bits = np.zeros((3, 3))
    step = -1
    for i in range(len(symbols)):
        y, x, c, s = order[i, 0], order[i, 1], order[i, 2], symbols[i]
        if order[i, 3] != step:
            w += dw
            mixa += dmixa
            mixb += dmixb
            mixh += dmixh
            mag += dmag
            cnt += dcnt
            hist += dhist
            hn += dhn
            sse += dsse
            for cc in range(3):
                for b in range(CONTEXTS):
                    if cnt[cc, b] > 256:
                        mag[cc, b] *= 0.5
                        cnt[cc, b] *= 0.5
                for b in range(4):
                    if hn[cc, b] > limit:
                        hist[cc, b] *= 0.5
                        hn[cc, b] *= 0.5
            dw[:] = 0
            dmixa[:] = 0
            dmixb[:] = 0
            dmixh[:] = 0
            dmag[:] = 0
            dcnt[:] = 0
            dhist[:] = 0
            dhn[:] = 0
            dsse[:] = 0
            step = order[i, 3]

        pred, n, norm, b = predict(img, known, err_at, w, f, y, x, c, True)
        hb = min(b // 3, 3) if hist_ctx else 0
        scale = 0.6 * mag[c, b] / cnt[c, b] + 0.3
        total = 0.0
        for v in range(256):
            pl[v] = max(math.exp(-abs(v - pred) / scale), 1e-9)
            total += pl[v]
        ent = 0.0
        for v in range(256):
            pl[v] /= total
            pm[v] = freqs[i, v] / 16777216.0
            ent -= pm[v] * math.log2(pm[v])
        e = 0
        if ent_on:
            e = min(int(ent), ENT - 1)
        rp = int(round(pred))  # noqa: RUF046 (numba types round() as float)
        if hist_on:
            tot = 0.0
            for v in range(256):
                ph[v] = hist[c, hb, v - rp + 255] + beta * pl[v]
                tot += ph[v]
            for v in range(256):
                ph[v] /= tot
        z = 0.0
        for v in range(256):
            t = mixa[c] * math.log(pm[v]) + mixb[c, b, e] * math.log(pl[v])
            if hist_on:
                t += mixh[c, b, e] * math.log(ph[v])
            px[v] = math.exp(t)
            z += px[v]
        mean_m = mean_l = mean_h = 0.0
        for v in range(256):
            px[v] /= z
            mean_m += px[v] * math.log(pm[v])
            mean_l += px[v] * math.log(pl[v])
            if hist_on:
                mean_h += px[v] * math.log(ph[v])
        dmixa[c] += lr_mix * (math.log(pm[s]) - mean_m)
        dmixb[c, b, e] += lr_mix * (math.log(pl[s]) - mean_l)
        if hist_on:
            dmixh[c, b, e] += lr_hist * (math.log(ph[s]) - mean_h)
        ps = px[s]
        if sse_on:
            # correction g(q) of log p, q = quantized -log2 p in 0..32 (half-bit steps), per entropy
            z2 = 0.0
            for v in range(256):
                q = min(-math.log2(max(px[v], 1e-12)) * 2.0, 31.999)
                k = int(q)
                fr = q - k
                g = sse[c, e, k] * (1 - fr) + sse[c, e, k + 1] * fr
                pl[v] = px[v] * math.exp(g)   # reuse pl as buffer
                z2 += pl[v]
            for v in range(256):
                pl[v] /= z2
            # gradient of -log p'(s): d/dg_k = -(1[s]*wk(s)) + sum_v p'(v) wk(v)
            for v in range(256):
                q = min(-math.log2(max(px[v], 1e-12)) * 2.0, 31.999)
                k = int(q)
                fr = q - k
                dsse[c, e, k] -= lr_sse * pl[v] * (1 - fr)
                dsse[c, e, k + 1] -= lr_sse * pl[v] * fr
            q = min(-math.log2(max(px[s], 1e-12)) * 2.0, 31.999)
            k = int(q)
            fr = q - k
            dsse[c, e, k] += lr_sse * (1 - fr)
            dsse[c, e, k + 1] += lr_sse * fr
            ps = pl[s]
        bits[c, 0] -= math.log2(pm[s])
        bits[c, 1] -= math.log2(px[s])
        bits[c, 2] -= math.log2(max(ps, 1e-12))
        error = s - pred
        for k in range(n):
            dw[c, k] += lr_lms * error * f[k] / norm
        dmag[c, b] += abs(error)
        dcnt[c, b] += 1.0
        dhist[c, hb, s - rp + 255] += 1.0
        dhn[c, hb] += 1.0
        err_at[y, x, c] = error
        img[y, x, c] = s
        known[y, x, c] = True
    return bits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--ent", action="store_true")
    ap.add_argument("--hist", action="store_true")
    ap.add_argument("--hist-ctx", action="store_true")
    ap.add_argument("--beta", type=float, default=32.0)
    ap.add_argument("--limit", type=float, default=4096.0)
    ap.add_argument("--lr-hist", type=float, default=0.005)
    ap.add_argument("--sse", action="store_true")
    ap.add_argument("--lr-sse", type=float, default=0.002)
    ap.add_argument("--lr-mix", type=float, default=0.005)
    a = ap.parse_args()
    tot, px = np.zeros((3, 3)), 0
    for p in a.files:
        d = np.load(p)
        h, w = d["image"].shape[:2]
        bits = _replay(d["freqs"], d["symbols"].astype(np.int64), d["order"], h, w, 0.02,
                       a.lr_mix, a.ent, a.hist, a.beta, a.limit, a.lr_hist, a.hist_ctx,
                       a.sse, a.lr_sse)
        tot += bits
        px += d["image"].size
    codec, mixed, final = tot.sum(axis=0) / px
    print(f"{len(a.files)} files: codec {codec:.4f}, mix {mixed:.4f} ({mixed / codec - 1:+.2%}), "
          f"with --sse {final:.4f} ({final / codec - 1:+.2%})")


if __name__ == "__main__":
    main()
