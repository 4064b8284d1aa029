"""Per-image online adaptation of the model's distributions, measured in float.

docs/design.md, "Per-image adaptation: measured", holds the figures and the commands.

    python scripts/adapt_measure.py cache --hidden --model igc-rgb16-v2 --crop 256 --out /tmp/adapt/v2 [kodim01 ...]
    python scripts/adapt_measure.py measure /tmp/adapt/v2 [--schemes every] [--images kodim01,...]
    python scripts/adapt_measure.py measure /tmp/adapt/v2 --list

`cache` computes the model's log-probabilities for every position of every tile of a centre crop
(`--crop 0`: the whole image) of each Kodak image (one parallel pass in float32, as
`igc bench --estimate`; tiling and tokens by igc's own SubpixelTokenizer) and stores them as
float16 with the tokens; `--hidden` also stores the LM head's input, which the online-head
schemes need (a 256x256 crop of the default model: about 150 MB). `measure` then replays
each image in the codec's coding order -- batches of 256 tiles (igc.codec.neural.DEFAULT_BATCH),
in each batch step t codes position t of every tile, batches one after another -- and runs each
adaptation scheme on top of the model: a scheme predicts every symbol of step t from state
updated only with symbols of earlier steps, which is an order a decoder can reproduce (it decodes
all of step t before step t+1). It prints model bits per subpixel of the model alone and of each
scheme. Kodak is evaluation data: nothing here is trained on it beyond the per-image online state
a decoder would rebuild.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from script_env import KODAK, cpu_model

BATCH = 256  # igc.codec.neural.DEFAULT_BATCH: tiles stepped together (not imported: no torch)


def load_crop(name: str, crop: int) -> np.ndarray:
    from PIL import Image

    path = Path(name) if Path(name).suffix else KODAK / f"{name}.png"
    im = np.asarray(Image.open(path).convert("RGB"))
    if crop <= 0:
        return im
    h, w = im.shape[:2]
    sh, sw = min(crop, h), min(crop, w)
    return np.ascontiguousarray(im[(h - sh) // 2 : (h - sh) // 2 + sh,
                                   (w - sw) // 2 : (w - sw) // 2 + sw])


# -- cache: the model's log-probabilities ----------------------------------------------------------
def hidden_and_logp(runtime, ids):
    """The final normed hidden state (the LM head's input) and the log-probabilities of a
    one-shot pass: ImageGPTRuntime.logits, stopped before the head."""
    import torch
    import torch.nn.functional as F

    b, n = ids.shape
    c, heads, d = runtime.n_embd, runtime.n_head, runtime.head_dim
    with torch.no_grad():
        x = (runtime.wte[ids] + runtime.wpe[:n]).view(b * n, c)
        for layer in runtime.layers:
            qkv = torch.addmm(layer.c_attn_b, runtime._norm(x, layer.ln_1), layer.c_attn_w)
            q, k, v = qkv.view(b, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
            x.add_(torch.addmm(layer.c_proj_b, att.transpose(1, 2).reshape(b * n, c),
                               layer.c_proj_w))
            runtime._mlp_(x, layer)
        h = runtime._norm(x, runtime.ln_f)
        logp = torch.log_softmax(h @ runtime.lm_head_t, dim=-1)
    return h.view(b, n, c).numpy(), logp.view(b, n, -1).numpy()


def cache(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    from igc.core.tokenizer import SubpixelTokenizer
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel(a.model)
    tok = SubpixelTokenizer(model=model)
    a.out.mkdir(parents=True, exist_ok=True)
    for name in a.images:
        target = a.out / f"{Path(name).stem}.npz"
        if target.exists() and (not a.hidden or "hidden" in np.load(target).files):
            print(f"{target} exists, skipped", flush=True)
            continue
        start = time.time()
        im = load_crop(name, a.crop)
        t = tok.encode(im)
        inputs = np.concatenate([np.full((len(t.tokens), 1), tok.start_token), t.tokens[:, :-1]],
                                axis=1)
        logp = np.empty((*t.tokens.shape, model.vocab_size), dtype=np.float16)
        hidden = np.empty((*t.tokens.shape, model.runtime.n_embd), dtype=np.float16)
        bits = 0.0
        for i in range(0, len(inputs), a.chunk):
            h, lp = hidden_and_logp(model.runtime, torch.from_numpy(inputs[i : i + a.chunk]))
            hidden[i : i + a.chunk] = h
            picked = np.take_along_axis(lp, t.tokens[i : i + a.chunk, :, None], axis=-1)[..., 0]
            bits -= float(picked[t.coded[i : i + a.chunk]].astype(np.float64).sum()) / math.log(2)
            logp[i : i + a.chunk] = lp
        extra = {"hidden": hidden} if a.hidden else {}
        np.savez(target, logp=logp, **extra, tokens=t.tokens.astype(np.uint8), coded=t.coded,
                 height=t.height, width=t.width, tile=t.tile)
        meta = {"image": Path(name).stem, "model": model.name, "fingerprint": model.fingerprint,
                "crop": a.crop, "height": int(t.height), "width": int(t.width),
                "float32_bits": bits, "subpixels": int(im.size), "seconds": time.time() - start,
                "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
        target.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        print(f"{target.stem}: {bits / im.size:.4f} bpsp float32, {time.time() - start:.0f} s",
              flush=True)


# -- the schemes -------------------------------------------------------------------------------
# Every scheme is an online correction of the model's log-probabilities lp(k) for one symbol:
#   s(k) = (1 + a[c]) lp(k) + g_c(lp(k)) + b[c, k or k - mean] + beta[c] lq(k)
#   p'(k) = exp(s(k)) / sum exp(s),  then optionally p''(k) = (1 - lam[c]) p'(k) + lam[c] q(k)
# a: temperature; g_c: a piecewise-linear calibration curve of lp (an SSE / APM table indexed by
# the quantized model probability, interpolated between knots); b: a logit bias per symbol value
# or per offset from the model's mean; lq: log of a classical predictor's distribution (MED /
# LOCO-I, a two-sided geometric around the MED prediction whose width follows the recent errors
# of its activity context), mixed geometrically (beta) or linearly (lam). c is the context class:
# the channel, optionally times a bucket of the model distribution's entropy. The weights are
# trained online by SGD on the code length; the gradients of one step (all tiles' position t)
# are averaged and applied after the step, so every prediction depends only on symbols of
# earlier steps: the order a decoder reproduces.
KNOTS = 13  # calibration knots at lp = 0, -1, ..., -12 nats (clamped beyond)
ENT_EDGES = (1.0, 2.0, 3.0)  # entropy buckets (nats) for context mode 1
OFFSET = 24  # offset bias: k - mean clipped to [-OFFSET, OFFSET]
ACT_BUCKETS = 8


def _kernel():
    import numba

    @numba.njit(cache=False, fastmath=True)
    def run(logp, tokens, coded, tile, ctx_mode, temp, calib, bias, med, lrs, state, out,
            hidden, head, head_w, head_norm):
        """Replay one image (tiles in coding order); `state` carries weights across images only
        if the caller passes the same arrays (it does not: state is per image). Returns nothing;
        out[0] += bits of the scheme, out[1] += bits of the model alone, out[2] += symbols."""
        n_tiles, length, vocab = logp.shape
        a_w, g_w, b_w, m_w, med_a, med_n = state
        lr_a, lr_g, lr_b, lr_m, lr_h = lrs[0], lrs[1], lrs[2], lrs[3], lrs[4]
        gh = np.zeros_like(head_w)
        hcnt = np.zeros(head_w.shape[0])
        dim = hidden.shape[2]
        hv = np.empty(dim)
        hc = 0
        ga = np.zeros_like(a_w)
        gg = np.zeros_like(g_w)
        gb = np.zeros_like(b_w)
        gm = np.zeros_like(m_w)
        lp = np.empty(vocab)
        sc = np.empty(vocab)
        pp = np.empty(vocab)
        lq = np.empty(vocab)
        q = np.empty(vocab)
        phi_i = np.empty(vocab, dtype=np.int64)
        phi_f = np.empty(vocab)
        cnt = np.zeros(a_w.shape[0])
        errs = np.zeros((ACT_BUCKETS * 3, 2))
        ln2 = math.log(2.0)
        for b0 in range(0, n_tiles, BATCH):
            b1 = min(n_tiles, b0 + BATCH)
            for t in range(length):
                ch = t % 3
                pix = t // 3
                r = pix // tile
                cc = pix % tile
                ga[:] = 0.0
                gg[:] = 0.0
                gb[:] = 0.0
                gm[:] = 0.0
                if head:
                    gh[:] = 0.0
                    hcnt[:] = 0.0
                cnt[:] = 0.0
                errs[:] = 0.0
                for i in range(b0, b1):
                    if not coded[i, t]:
                        continue
                    x = tokens[i, t]
                    mx = -1e30
                    for k in range(vocab):
                        lp[k] = logp[i, t, k]
                    # model's own normalisation (float16 storage)
                    z = 0.0
                    for k in range(vocab):
                        if lp[k] > mx:
                            mx = lp[k]
                    for k in range(vocab):
                        z += math.exp(lp[k] - mx)
                    lz = mx + math.log(z)
                    mean = 0.0
                    ent = 0.0
                    for k in range(vocab):
                        lp[k] -= lz
                        e = math.exp(lp[k])
                        mean += e * k
                        ent -= e * lp[k]
                    out[1] -= lp[x] / ln2
                    out[2] += 1
                    c = ch
                    if ctx_mode == 1:
                        eb = 0
                        for edge in ENT_EDGES:
                            if ent > edge:
                                eb += 1
                        c = ch * (len(ENT_EDGES) + 1) + eb
                    cnt[c] += 1
                    m_int = int(mean + 0.5)
                    # classical predictor: MED on the same channel inside the tile
                    pred = 0.0
                    actb = 0
                    if med != 0:
                        base = i
                        wv = tokens[base, t - 3] if cc > 0 else -1
                        nv = tokens[base, t - 3 * tile] if r > 0 else -1
                        if cc > 0 and r > 0:
                            nw = tokens[base, t - 3 * tile - 3]
                            if nw >= max(wv, nv):
                                pred = min(wv, nv)
                            elif nw <= min(wv, nv):
                                pred = max(wv, nv)
                            else:
                                pred = wv + nv - nw
                            act = abs(wv - nw) + abs(nv - nw)
                        elif cc > 0:
                            pred = wv
                            act = 16
                        elif r > 0:
                            pred = nv
                            act = 16
                        else:
                            pred = 128.0 if ch == 0 else float(tokens[base, t - 1])
                            act = 64
                        if ch > 0 and (cc > 0 or r > 0):
                            # inter-channel: add the previous channel's MED residual, halved
                            pc = t - 1
                            wv2 = tokens[base, pc - 3] if cc > 0 else -1
                            nv2 = tokens[base, pc - 3 * tile] if r > 0 else -1
                            p2 = 0.0
                            if cc > 0 and r > 0:
                                nw2 = tokens[base, pc - 3 * tile - 3]
                                if nw2 >= max(wv2, nv2):
                                    p2 = min(wv2, nv2)
                                elif nw2 <= min(wv2, nv2):
                                    p2 = max(wv2, nv2)
                                else:
                                    p2 = wv2 + nv2 - nw2
                            elif cc > 0:
                                p2 = wv2
                            else:
                                p2 = nv2
                            pred += 0.5 * (tokens[base, pc] - p2)
                        pred = min(255.0, max(0.0, pred))
                        while act > 0 and actb < ACT_BUCKETS - 1:
                            act >>= 1
                            actb += 1
                        ai = ch * ACT_BUCKETS + actb
                        scale = (med_a[ai] + 2.0) / (med_n[ai] + 1.0)  # mean |error|, primed
                        zq = 0.0
                        for k in range(vocab):
                            lq[k] = -abs(k - pred) / scale
                            zq += math.exp(lq[k])
                        lzq = math.log(zq)
                        for k in range(vocab):
                            lq[k] -= lzq
                            q[k] = math.exp(lq[k])
                        errs[ai, 0] += abs(x - pred)
                        errs[ai, 1] += 1
                    # score
                    for k in range(vocab):
                        s = lp[k]
                        if temp:
                            s += a_w[c] * lp[k]
                        if calib:
                            u = -lp[k]
                            if u > KNOTS - 1.0:
                                u = KNOTS - 1.0
                            j = int(u)
                            if j > KNOTS - 2:
                                j = KNOTS - 2
                            f = u - j
                            phi_i[k] = j
                            phi_f[k] = f
                            s += g_w[c, j] * (1.0 - f) + g_w[c, j + 1] * f
                        if bias == 1:
                            s += b_w[c, k]
                        elif bias == 2:
                            o = k - m_int
                            o = min(OFFSET, max(-OFFSET, o))
                            s += b_w[c, o + OFFSET]
                        if med == 1:
                            s += m_w[c] * lq[k]
                        sc[k] = s
                    if head:
                        hc = ch if head == 2 else 0
                        hn = 1.0
                        for j in range(dim):
                            hv[j] = hidden[i, t, j]
                            hn += hv[j] * hv[j]
                        for k in range(vocab):
                            acc = head_w[hc, k, dim]  # a bias per symbol too
                            for j in range(dim):
                                acc += head_w[hc, k, j] * hv[j]
                            sc[k] += acc
                        hcnt[hc] += 1
                    mx = -1e30
                    for k in range(vocab):
                        if sc[k] > mx:
                            mx = sc[k]
                    z = 0.0
                    for k in range(vocab):
                        pp[k] = math.exp(sc[k] - mx)
                        z += pp[k]
                    for k in range(vocab):
                        pp[k] /= z
                    if med == 2:
                        lam = 1.0 / (1.0 + math.exp(-m_w[c]))
                        px = (1.0 - lam) * pp[x] + lam * q[x]
                        out[0] -= math.log(px) / ln2
                        gm[c] += (q[x] - pp[x]) / px * lam * (1.0 - lam)
                        # the log-linear parts see d log p''/d s = (1-lam) p'(x)/p''(x) * (...)
                        wgt = (1.0 - lam) * pp[x] / px
                    else:
                        out[0] -= math.log(pp[x]) / ln2
                        wgt = 1.0
                    # gradients of log p(x): phi(x) - E_p'[phi]
                    if temp:
                        e = 0.0
                        for k in range(vocab):
                            e += pp[k] * lp[k]
                        ga[c] += wgt * (lp[x] - e)
                    if calib:
                        for k in range(vocab):
                            gg[c, phi_i[k]] -= wgt * pp[k] * (1.0 - phi_f[k])
                            gg[c, phi_i[k] + 1] -= wgt * pp[k] * phi_f[k]
                        gg[c, phi_i[x]] += wgt * (1.0 - phi_f[x])
                        gg[c, phi_i[x] + 1] += wgt * phi_f[x]
                    if bias == 1:
                        for k in range(vocab):
                            gb[c, k] -= wgt * pp[k]
                        gb[c, x] += wgt
                    elif bias == 2:
                        for k in range(vocab):
                            o = min(OFFSET, max(-OFFSET, k - m_int))
                            gb[c, o + OFFSET] -= wgt * pp[k]
                        o = min(OFFSET, max(-OFFSET, x - m_int))
                        gb[c, o + OFFSET] += wgt
                    if med == 1:
                        e = 0.0
                        for k in range(vocab):
                            e += pp[k] * lq[k]
                        gm[c] += wgt * (lq[x] - e)
                    if head:
                        hs = 1.0 / hn if head_norm else 1.0  # NLMS: step / |h|^2
                        for k in range(vocab):
                            d = hs * wgt * ((1.0 if k == x else 0.0) - pp[k])
                            for j in range(dim):
                                gh[hc, k, j] += d * hv[j]
                            gh[hc, k, dim] += d
                # apply the step's mean gradient per context
                for c in range(a_w.shape[0]):
                    if cnt[c] == 0:
                        continue
                    inv = 1.0 / cnt[c]
                    a_w[c] += lr_a * ga[c] * inv
                    for j in range(g_w.shape[1]):
                        g_w[c, j] += lr_g * gg[c, j] * inv
                    for j in range(b_w.shape[1]):
                        b_w[c, j] += lr_b * gb[c, j] * inv
                    m_w[c] += lr_m * gm[c] * inv
                if head:
                    for hc2 in range(head_w.shape[0]):
                        if hcnt[hc2] > 0:
                            head_w[hc2] += (lr_h / hcnt[hc2]) * gh[hc2]
                for ai in range(ACT_BUCKETS * 3):
                    if errs[ai, 1] > 0:
                        med_a[ai] += errs[ai, 0]
                        med_n[ai] += errs[ai, 1]
                        if med_n[ai] > 4096:  # forget slowly, as LOCO-I halves its counts
                            med_a[ai] *= 0.5
                            med_n[ai] *= 0.5

    return run


_RUN = None


def simulate(data: dict, scheme: dict) -> tuple[float, float, int]:
    """(scheme bits, model bits, symbols) of one cached image under `scheme` (fresh state)."""
    global _RUN
    if _RUN is None:
        _RUN = _kernel()
    contexts = 3 * (len(ENT_EDGES) + 1) if scheme.get("ctx", 0) == 1 else 3
    bias_width = 256 if scheme.get("bias", 0) == 1 else 2 * OFFSET + 1
    med = scheme.get("med", 0)
    state = (np.zeros(contexts), np.zeros((contexts, KNOTS)), np.zeros((contexts, bias_width)),
             np.full(contexts, -3.0 if med == 2 else 0.0),  # linear mixing starts at lam = 0.05
             np.zeros(ACT_BUCKETS * 3), np.zeros(ACT_BUCKETS * 3))
    lrs = np.array([scheme.get("lr_temp", 0.0), scheme.get("lr_calib", 0.0),
                    scheme.get("lr_bias", 0.0), scheme.get("lr_med", 0.0),
                    scheme.get("lr_head", 0.0)])
    head = scheme.get("head", 0)
    hidden = data.get("hidden32") if head else None
    if hidden is None:
        if head:
            raise SystemExit("the head scheme needs a cache made with --hidden")
        hidden = np.zeros((1, 1, 0), dtype=np.float32)
    head_w = np.zeros(((3 if head == 2 else 1), 256, hidden.shape[2] + 1))
    out = np.zeros(3)
    _RUN(data["logp32"], data["tokens"].astype(np.int64), data["coded"], int(data["tile"]), scheme.get("ctx", 0),
         bool(scheme.get("temp")), bool(scheme.get("calib")), scheme.get("bias", 0), med, lrs,
         state, out, hidden, head, head_w,
         bool(scheme.get("norm", 0)))
    return out[0], out[1], int(out[2])


def builtin_schemes() -> dict[str, dict]:
    s: dict[str, dict] = {}
    for lr in (0.01, 0.03, 0.1):
        s[f"temp-ch-{lr}"] = {"temp": 1, "lr_temp": lr}
        s[f"temp-chent-{lr}"] = {"temp": 1, "ctx": 1, "lr_temp": lr}
    for lr in (0.03, 0.1, 0.3):
        s[f"calib-ch-{lr}"] = {"calib": 1, "lr_calib": lr}
        s[f"calib-chent-{lr}"] = {"calib": 1, "ctx": 1, "lr_calib": lr}
        s[f"bias-abs-{lr}"] = {"bias": 1, "lr_bias": lr}
        s[f"bias-off-{lr}"] = {"bias": 2, "lr_bias": lr}
    for lr in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
        s[f"head-{lr}"] = {"head": 1, "lr_head": lr}
        s[f"head-ch-{lr}"] = {"head": 2, "lr_head": lr}
    for lr in (0.3, 1.0, 3.0, 10.0):
        s[f"head-nlms-{lr}"] = {"head": 2, "norm": 1, "lr_head": lr}
    for lr in (0.001, 0.003, 0.01, 0.03, 0.1):
        s[f"med-geo-{lr}"] = {"med": 1, "lr_med": lr}
        s[f"med-lin-{lr}"] = {"med": 2, "lr_med": lr * 10}
    s["calib-chent-0.3"] = {"calib": 1, "ctx": 1, "lr_calib": 0.3}
    # combinations: every part learns from the same code length, each with its own rate
    s["head+temp+calib"] = {"head": 2, "norm": 1, "lr_head": 3.0, "temp": 1, "lr_temp": 0.03,
                            "calib": 1, "lr_calib": 0.1}
    s["all"] = {"head": 2, "norm": 1, "lr_head": 3.0, "temp": 1, "ctx": 1, "lr_temp": 0.03,
                "calib": 1, "lr_calib": 0.3, "bias": 2, "lr_bias": 0.3, "med": 2, "lr_med": 0.1}
    s["all-but-head"] = {k: v for k, v in s["all"].items() if k not in ("head", "norm", "lr_head")}
    return s


def measure(a) -> None:
    global BATCH
    BATCH = a.batch  # read by the kernel when it compiles (numba freezes globals)
    schemes = builtin_schemes()
    if a.list:
        for name, sc in schemes.items():
            print(name, json.dumps(sc))
        return
    chosen = {n: schemes[n] for n in (schemes if a.schemes == "every" else
                                      [x for x in a.schemes.split(",") if x])}
    for extra in a.scheme:
        sc = json.loads(extra)
        chosen[sc.pop("name", extra)] = sc
    files = sorted(a.cache.glob("*.npz"))
    if a.images:
        wanted = set(a.images.split(","))
        files = [f for f in files if f.stem in wanted]
    metas = [json.loads(f.with_suffix(".json").read_text()) for f in files]
    print(f"{len(files)} images from {a.cache} (model {metas[0]['model']}, crop "
          f"{metas[0]['crop']}, batch {BATCH}); CPU {cpu_model()}; load {os.getloadavg()[0]:.2f}", flush=True)
    totals = {n: [0.0, 0.0, 0] for n in chosen}
    per_image: dict[str, dict[str, float]] = {n: {} for n in chosen}
    f32 = sum(m["float32_bits"] for m in metas) / sum(m["subpixels"] for m in metas)
    for f in files:
        with np.load(f) as z:
            data = {k: z[k] for k in z.files}
        data["logp32"] = data.pop("logp").astype(np.float32)  # numba has no float16
        if "hidden" in data and any(sc.get("head") for sc in chosen.values()):
            data["hidden32"] = data.pop("hidden").astype(np.float32)
        start = time.time()
        for n, sc in chosen.items():
            bits, model_bits, symbols = simulate(data, sc)
            t = totals[n]
            t[0], t[1], t[2] = t[0] + bits, t[1] + model_bits, t[2] + symbols
            per_image[n][f.stem] = bits / symbols
        print(f"  {f.stem}: model {model_bits / symbols:.4f}, {time.time() - start:.0f} s",
              flush=True)
    print(f"model alone (float32 pass): {f32:.4f} bpsp")
    print(f"{'scheme':24} {'bpsp':>8} {'model':>8} {'change':>8}")
    for n, (bits, model_bits, symbols) in totals.items():
        print(f"{n:24} {bits / symbols:8.4f} {model_bits / symbols:8.4f} "
              f"{100 * (bits / model_bits - 1):+7.2f}%")
    if a.json:
        a.json.write_text(json.dumps({
            "cache": str(a.cache), "images": [f.stem for f in files], "meta": metas,
            "model_float32_bpsp": f32, "batch": BATCH, "cpu": cpu_model(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "schemes": {n: {"params": chosen[n], "bpsp": t[0] / t[2], "model_bpsp": t[1] / t[2],
                            "per_image": per_image[n]} for n, t in totals.items()}}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="store the model's log-probabilities of Kodak crops")
    c.add_argument("images", nargs="*", default=[f"kodim{i:02d}" for i in range(1, 25)])
    c.add_argument("--model", default="igc-rgb16-v2")
    c.add_argument("--crop", type=int, default=256, help="centre crop side (0: whole image)")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--chunk", type=int, default=16, help="tiles per forward pass")
    c.add_argument("--hidden", action="store_true",
                   help="also store the LM head's input (for the online head scheme)")
    m = sub.add_parser("measure", help="replay cached images under each scheme")
    m.add_argument("cache", type=Path, help="folder written by `cache`")
    m.add_argument("--schemes", default="every",
                   help="comma-separated names from the list printed by --list, or 'every'")
    m.add_argument("--scheme", action="append", default=[],
                   help='extra scheme as JSON, e.g. \'{"name": "t", "temp": 1, "lr_temp": 0.1}\'')
    m.add_argument("--list", action="store_true", help="print the built-in schemes and exit")
    m.add_argument("--images", default=None, help="comma-separated image names (default: all)")
    m.add_argument("--json", type=Path, default=None)
    m.add_argument("--batch", type=int, default=BATCH,
                   help="tiles per batch, stepped together (the header's batch; default %(default)s)")
    a = ap.parse_args()
    if a.command == "cache":
        cache(a)
    else:
        measure(a)


if __name__ == "__main__":
    main()
