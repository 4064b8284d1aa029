"""Numerics 2 on a GPU: TorchEngine's frequencies checked bit for bit, then its decode speed timed.

    python scripts/cuda_check.py [--model DIR] [--seconds 120] [--device cuda] [--json out.json]

For the default model and for `--model` (a model folder or shipped name, optional), on a
photo-like image of --width x --height (default 768x512, Kodak's size: 1,536 tiles), or --image:

* `reference`: the first --ref-steps steps of --tiles tiles on the device equal ReferenceEngine's
  (NumPy int64, the definition);
* `cpu`: all steps of those tiles on the device equal TorchEngine's on the CPU;
* `all`: the device's one-shot `frequencies_all` over those tiles equals stepping;
* `edges` (once): tiny random models at the rules' edges (saturation, scores the reference
  zeroes, weight scales that take the int64 rule, a large eps, zero inputs), every position,
  against ReferenceEngine;
* a pixel model (`--model` on an `igc train --arch pixel` export): `reference` and `cpu` as
  above with its engines, `reference_logits` (the head inputs and logits an adaptation reads,
  their own graphs on CUDA), and `timing` of every tile stepped as one batch, graphs and not,
  its checked tiles' frequencies against the CPU's;
* `timing`: every tile of the image stepped as one batch over all positions, with CUDA graphs
  and without (each run stopped after --seconds / 3), and `frequencies_all` over every tile
  (the encoder's pass): seconds per step and subpixels per second (one subpixel per tile per
  step), and the frequencies of the checked tiles in that whole-image batch equal the CPU's.
  With graphs, `first_pass` includes capturing each span's graph on its first step
  (`steady_ms_per_step` leaves those steps out) and `second_pass` steps new sequences on the
  same graphs after `reset`, as a decoder reusing its state would.

On CUDA the device checks run twice, with CUDA graphs (`graph`) and without (`no_graph`), each
recorded apart.

Prints one JSON line (the last line of output); `ok` is true when every check passed. Checks
that fail or raise are recorded and the others still run. `--device cpu` runs it all on the CPU
(CI runs it so, on a tiny image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch


def photo_like(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients, edges and mild noise: a stand-in photo (no image files needed)."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([x * 0.3 + y * 0.1 + 40 * np.sin(y / 23.0),
                     128 + 60 * np.sin(x / 17.0) * np.cos(y / 29.0),
                     y * 0.4 + 40 + 30 * ((x // 64 + y // 64) % 2)], axis=-1)
    return np.clip(base + r.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


# -- tiny random models at numerics 2's edges (tests/test_integer_torch.py uses these too) ----
def saturating(rt) -> None:
    """Activations and products at every limit (LIM, ACT_MAX)."""
    rt.wte.mul_(1e7)
    for lay in rt.layers:
        for w in (lay.c_attn_w, lay.c_attn_b):
            w.mul_(1e6)
        lay.fc_w.mul_(1e3)
        lay.mlp_proj_w.mul_(1e4)
        lay.c_proj_w.mul_(1e4)


def huge_qk(rt) -> None:
    """Queries and keys near 2**40: narrow shifts of 26, scores the reference zeroes."""
    c = rt.n_embd
    for lay in rt.layers:
        lay.c_attn_w[:, : 2 * c].mul_(3e8)
        lay.c_attn_b[: 2 * c].mul_(3e8)


def extreme_scales(rt) -> None:
    """Weight scales outside the float path: the int64 rule (and its shifts) runs instead."""
    for lay in rt.layers:
        lay.mlp_proj_w.mul_(1e-14)  # shifts above 52
        lay.c_proj_w[:, :4].mul_(1e26)  # shifts below -40
        lay.fc_w[:, 3] = 0  # an all-zero column
    rt.lm_head_t[:, :7].mul_(1e-16)


def zero_inputs(rt) -> None:
    rt.wte.zero_()
    rt.wpe.zero_()


EDGES = {  # name: (tweak, layer-norm eps or None)
    "saturating": (saturating, None),
    "huge-qk": (huge_qk, None),
    "extreme-scales": (extreme_scales, None),
    "big-eps": (None, 1e3),
    "zero-inputs": (zero_inputs, 0.0),
}


def tiny_int_model(folder: Path, *, width: int = 32, heads: int = 4, layers: int = 2,
                   tile: int = 4, seed: int = 0, tweak=None, eps: float | None = None):
    """A random ImageGPT saved in HuggingFace format (as tests/conftest.py makes them), then
    loaded by igc, tweaked and quantized: an IntModel."""
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    from igc.engines.integer import quantize
    from igc.models.imagegpt import ImageGPTModel

    torch.manual_seed(seed)
    config = ImageGPTConfig(vocab_size=257, n_positions=tile * tile * 3, n_embd=width,
                            n_layer=layers, n_head=heads)
    hf = ImageGPTForCausalImageModeling(config).eval()
    with torch.no_grad():
        hf.lm_head.weight.mul_(20)
    hf.save_pretrained(folder, safe_serialization=True)
    rt = ImageGPTModel(str(folder)).runtime
    if eps is not None:
        rt.eps = eps
    if tweak is not None:
        with torch.no_grad():
            tweak(rt)
    return quantize(rt)


def check_edges(args) -> dict:
    """Each EDGES model, all positions of 3 random sequences: the device (with graphs and
    without) against ReferenceEngine, and its frequencies_all against that."""
    import tempfile

    from igc.engines.integer import ReferenceEngine
    from igc.engines.integer_torch import TorchEngine

    dev = torch.device(args.device)
    kinds = {"graph": True, "no_graph": False} if dev.type == "cuda" else {"no_graph": False}
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (tweak, eps)) in enumerate(EDGES.items()):
            def one(i=i, name=name, tweak=tweak, eps=eps) -> dict:
                q = tiny_int_model(Path(tmp) / name, seed=20 + i, tweak=tweak, eps=eps)
                tokens = np.random.default_rng(i).integers(0, 256, (3, q.n_positions))
                want = step_all(ReferenceEngine(q), tokens, q.n_positions)
                res: dict = {}
                for k, g in kinds.items():
                    e = TorchEngine(q, dev, graph=g, span_step=16)
                    res[k] = first_difference(step_all(e, tokens, q.n_positions), want)["ok"]
                res["all"] = first_difference(e.frequencies_all(tokens), want)["ok"]
                return {"ok": all(res.values()), **res}

            run_check(out, name, one)
    out["ok"] = all(v["ok"] for v in out.values())
    return out


def load_image(args) -> np.ndarray:
    if args.image:
        from PIL import Image

        with Image.open(args.image) as im:
            return np.asarray(im.convert("RGB"))
    return photo_like(args.height, args.width)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_check(results: dict, name: str, fn) -> None:
    t0 = time.perf_counter()
    try:
        out = fn()
        results[name] = {"ok": bool(out.pop("ok", True)), **out}
    except Exception as exc:  # recorded: the other checks still run
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "trace": traceback.format_exc(limit=4)[-1500:]}
    results[name]["seconds"] = round(time.perf_counter() - t0, 2)


def per_kind(engines: dict, fn) -> dict:
    """fn(engine) for each kind of device engine, each recorded apart (a failure with graphs
    must not hide the eager results)."""
    out: dict = {}
    for k, e in engines.items():
        run_check(out, k, lambda e=e: fn(e))
    out["ok"] = all(v["ok"] for v in out.values())
    return out


def step_all(engine, tiles: np.ndarray, steps: int) -> np.ndarray:
    """(T, steps, V) frequencies of stepping `tiles` from the start token."""
    st = engine.start(len(tiles), tiles.shape[1])
    ids = np.full(len(tiles), 256, np.int64)
    out = []
    for p in range(steps):
        out.append(engine.step(st, ids))
        ids = tiles[:, p]
    return np.stack(out, 1)


def first_difference(a: np.ndarray, b: np.ndarray) -> dict:
    if a.shape != b.shape:
        return {"ok": False, "shapes": [list(a.shape), list(b.shape)]}
    bad = np.argwhere(a != b)
    if len(bad) == 0:
        return {"ok": True}
    return {"ok": False, "differing": len(bad), "first": bad[0].tolist(),
            "max_abs": int(np.abs(a - b).max())}


def time_stepping(engine, tokens: np.ndarray, budget: float, watch: np.ndarray) -> dict:
    """All tiles as one batch, fed on the device (no host copies), until done or out of time:
    a first pass (capturing each span's graph on its first step), then with graphs a second
    pass after `reset` (replays only). The rows `watch` of every step's frequencies are kept,
    to be checked against the small-batch runs."""
    dev = engine.device
    b, length = tokens.shape
    toks = torch.from_numpy(tokens).to(dev)
    first = torch.full((b,), 256, dtype=torch.long, device=dev)
    rows = torch.from_numpy(watch).to(dev)
    sync(dev)
    t0 = time.perf_counter()
    st = engine.start(b, length)
    sync(dev)
    out = {"tiles": b, "of": length, "cache_alloc_s": round(time.perf_counter() - t0, 3)}
    kept = []
    for name in ("first_pass", "second_pass") if engine.graph else ("first_pass",):
        engine.reset(st)
        spans, capture_s, done = set(), 0.0, 0
        t_begin = time.perf_counter()
        for p in range(length):
            span = engine.span(p, length)
            fresh = engine.graph and span not in st.graphs
            t1 = time.perf_counter()
            f = engine.step_tensor(st, first if p == 0 else toks[:, p - 1])
            if name == "first_pass":
                kept.append(f.index_select(0, rows))
            if fresh:
                sync(dev)
                capture_s += time.perf_counter() - t1
                spans.add(span)
            done = p + 1
            if p % 32 == 31 and time.perf_counter() - t_begin > budget:
                break
        sync(dev)
        total = time.perf_counter() - t_begin
        res = {"steps": done, "s": round(total, 3), "ms_per_step": round(1e3 * total / done, 3),
               "subpixels_per_s": round(b * done / total)}
        if spans:
            steady = total - capture_s
            res.update(graphs_captured=len(spans), capture_steps_s=round(capture_s, 3),
                       steady_ms_per_step=round(1e3 * steady / (done - len(spans)), 3)
                       if done > len(spans) else None)
        out[name] = res
        budget = max(budget - total, 0.0)
        if budget == 0.0:
            break
    if dev.type == "cuda":
        out["max_memory_gb"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    out["watched"] = torch.stack(kept, 1).cpu().numpy()  # (len(watch), steps, V)
    del st
    return out


def time_all(engine, tokens: np.ndarray, budget: float) -> dict:
    """frequencies_all over as many rows as the budget allows (chunks the engine picks)."""
    dev = engine.device
    b, length = tokens.shape
    chunk = engine.rows_per_chunk(b, length)
    t0 = time.perf_counter()
    rows = 0
    while rows < b and time.perf_counter() - t0 < budget:
        engine.frequencies_all(tokens[rows : rows + chunk])
        rows = min(b, rows + chunk)
    sync(dev)
    dt = time.perf_counter() - t0
    return {"rows": rows, "of": b, "chunk": chunk, "s": round(dt, 3),
            "subpixels_per_s": round(rows * length / dt)}


def check_pixel_model(model, args, image: np.ndarray, t0: float) -> dict:
    """A pixel model (igc.engines.pixel_torch): the device's steps against the reference's
    (--ref-steps) and the CPU torch engine's (every step) on --tiles tiles, then every tile of
    the image stepped as one batch (host ids, as the codec's cuda path steps), timed."""
    from igc.core.tokenizer import SubpixelTokenizer
    from igc.engines.pixel_integer import PixelReferenceEngine
    from igc.engines.pixel_torch import PixelTorchEngine

    q = model.integer_model
    res: dict = {"model": {"id": model.spec, "kind": "pixel", "n_embd": q.body.n_embd,
                           "n_layer": len(q.body.layers), "digest": q.digest,
                           "load_s": round(time.perf_counter() - t0, 2)}}
    tokens = SubpixelTokenizer(model=model).encode(image).tokens
    length = tokens.shape[1]
    tiles_at = np.unique(np.linspace(0, len(tokens) - 1, min(args.tiles, len(tokens)))
                         .round().astype(int))
    tiles = tokens[tiles_at]
    dev = torch.device(args.device)
    kinds = {"graph": True, "no_graph": False} if dev.type == "cuda" else {"no_graph": False}
    engines = {k: PixelTorchEngine(q, dev, graph=g, span_step=args.span_step)
               for k, g in kinds.items()}
    cpu_f: dict = {}

    def logits_all(engine, n: int) -> np.ndarray:
        """(T, n, C + 256): the head inputs and logits of `n` steps (what the adaptation of
        context modes 1-4 reads: its own graphs on CUDA)."""
        st = engine.start(len(tiles), length)
        ids, out = np.full(len(tiles), 256, np.int64), []
        for p in range(n):
            out.append(np.concatenate(engine.step_logits(st, ids), axis=1))
            ids = tiles[:, p]
        return np.stack(out, 1)

    def reference():
        n = min(args.ref_steps, length)
        ref = step_all(PixelReferenceEngine(q), tiles, n)
        return {"steps": n, "tiles": len(tiles),
                **per_kind(engines, lambda e: first_difference(step_all(e, tiles, n), ref))}

    def reference_logits():
        n = min(args.ref_steps, length)
        ref = logits_all(PixelReferenceEngine(q), n)
        return {"steps": n, "tiles": len(tiles),
                **per_kind(engines, lambda e: first_difference(logits_all(e, n), ref))}

    def cpu():
        cpu_f["f"] = step_all(PixelTorchEngine(q, "cpu", span_step=args.span_step), tiles,
                              length)
        return {"steps": length, "tiles": len(tiles),
                **per_kind(engines, lambda e: first_difference(step_all(e, tiles, length),
                                                               cpu_f["f"]))}

    run_check(res, "reference", reference)
    run_check(res, "reference_logits", reference_logits)
    run_check(res, "cpu", cpu)

    def timing():
        engines.clear()
        out: dict = {}
        for k, g in kinds.items():
            def run(g=g) -> dict:
                e = PixelTorchEngine(q, dev, graph=g, span_step=args.span_step)
                st = e.start(len(tokens), length)
                ids = np.full(len(tokens), 256, np.int64)
                t1, done, watched = time.perf_counter(), 0, []
                for p in range(length):
                    watched.append(e.step(st, ids)[tiles_at])
                    ids, done = tokens[:, p], p + 1
                    if p % 48 == 47 and time.perf_counter() - t1 > args.seconds / 2:
                        break
                dt = time.perf_counter() - t1
                r = {"ok": True, "tiles": len(tokens), "steps": done, "s": round(dt, 3),
                     "subpixels_per_s": round(len(tokens) * done / dt)}
                if "f" in cpu_f:  # the whole image's batch gives the few tiles' frequencies
                    r.update(first_difference(np.stack(watched, 1), cpu_f["f"][:, :done]))
                return r
            run_check(out, k, run)
        out["ok"] = all(v["ok"] for v in out.values())
        return out

    if not args.no_timing:
        run_check(res, "timing", timing)
    res["ok"] = all(v.get("ok", True) for v in res.values() if isinstance(v, dict))
    return res


def check_model(spec: str | None, args, image: np.ndarray) -> dict:
    from igc.core.tokenizer import SubpixelTokenizer
    from igc.engines.integer import ReferenceEngine, quantize
    from igc.engines.integer_torch import TorchEngine
    from igc.models.imagegpt import ImageGPTModel
    from igc.models.pixel import PixelModel

    res: dict = {}
    t0 = time.perf_counter()
    model = ImageGPTModel(spec)
    if isinstance(model, PixelModel):
        return check_pixel_model(model, args, image, t0)
    q = quantize(model.runtime)
    res["model"] = {"id": spec or "default", "n_embd": q.n_embd, "n_head": q.n_head,
                    "n_layer": len(q.layers), "context": q.n_positions, "digest": q.digest,
                    "load_s": round(time.perf_counter() - t0, 2)}
    tokens = SubpixelTokenizer(model=model).encode(image).tokens
    length = tokens.shape[1]
    pick = np.linspace(0, len(tokens) - 1, min(args.tiles, len(tokens))).round().astype(int)
    tiles_at = np.unique(pick)
    tiles = tokens[tiles_at]
    dev = torch.device(args.device)
    kinds = {"graph": True, "no_graph": False} if dev.type == "cuda" else {"no_graph": False}
    engines = {k: TorchEngine(q, dev, graph=g, span_step=args.span_step)
               for k, g in kinds.items()}
    eng = engines["no_graph"]
    res["engine"] = {"name": eng.name, "kinds": list(kinds), "span_step": eng.span_step,
                     "fast_linears": sum(x.fast for lay in eng.layers
                                         for x in (lay.qkv, lay.proj, lay.fc, lay.mlp_proj))
                     + eng.head.fast, "linears": 4 * len(eng.layers) + 1}
    cpu_f: dict = {}

    def reference():
        n = min(args.ref_steps, length)
        ref = step_all(ReferenceEngine(q), tiles, n)
        return {"steps": n, "tiles": len(tiles),
                **per_kind(engines, lambda e: first_difference(step_all(e, tiles, n), ref))}

    def cpu():
        cpu_f["f"] = step_all(TorchEngine(q, "cpu", span_step=args.span_step), tiles, length)
        return {"steps": length, "tiles": len(tiles),
                **per_kind(engines, lambda e: first_difference(step_all(e, tiles, length),
                                                               cpu_f["f"]))}

    def all_():  # the one pass on the device against stepping (the CPU's, equal to the device's)
        want = cpu_f.get("f")
        if want is None:
            want = step_all(eng, tiles, length)
        return {"tiles": len(tiles), **first_difference(eng.frequencies_all(tiles), want)}

    run_check(res, "reference", reference)
    run_check(res, "cpu", cpu)
    run_check(res, "all", all_)

    def timing():
        budget = args.seconds / 3
        engines.clear()  # free what the checks held

        def run(graph: bool) -> dict:
            e = TorchEngine(q, dev, graph=graph, span_step=args.span_step)
            r = time_stepping(e, tokens, budget, tiles_at)
            watched = r.pop("watched")
            if "f" in cpu_f:  # the whole image's batch gives the few tiles' frequencies
                r.update(first_difference(watched, cpu_f["f"][:, : watched.shape[1]]))
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            return r

        out: dict = {}
        for k, g in kinds.items():
            run_check(out, k, lambda g=g: run(g))
        run_check(out, "frequencies_all", lambda: time_all(eng, tokens, budget))
        out["ok"] = all(v["ok"] for v in out.values())
        return out

    if not args.no_timing:
        run_check(res, "timing", timing)
    res["ok"] = all(v.get("ok", True) for v in res.values() if isinstance(v, dict))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a model folder (or shipped name) checked after the default")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=120.0,
                    help="time for each model's timing runs, all three together")
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--image", help="an image file instead of the synthetic photo")
    ap.add_argument("--tiles", type=int, default=4, help="tiles for the bit-for-bit checks")
    ap.add_argument("--ref-steps", type=int, default=12, help="steps checked against NumPy")
    ap.add_argument("--span-step", type=int, default=64)
    ap.add_argument("--no-default", action="store_true", help="check --model only")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-edges", action="store_true", help="skip the tiny edge-case models")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    out: dict = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            out.update(ok=False, error="CUDA is not available")
            print(json.dumps(out))
            return 1
        out["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    image = load_image(args)
    out["image"] = list(image.shape)
    specs = ([] if args.no_default else [None]) + ([args.model] if args.model else [])
    if not args.no_edges:
        run_check(out, "edges", lambda: check_edges(args))
        print(json.dumps({"edges": out["edges"]}), file=sys.stderr, flush=True)
    out["models"] = []
    for spec in specs:
        try:
            res = check_model(spec, args, image)
        except Exception as exc:
            res = {"model": {"id": spec or "default"}, "ok": False,
                   "error": f"{type(exc).__name__}: {exc}",
                   "trace": traceback.format_exc(limit=4)[-1500:]}
        out["models"].append(res)
        print(json.dumps(res), file=sys.stderr, flush=True)  # progress, model by model
    out["ok"] = (bool(out["models"]) and all(m["ok"] for m in out["models"])
                 and out.get("edges", {}).get("ok", True))
    line = json.dumps(out)
    if args.json:
        args.json.write_text(line + "\n")
    print(line, flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
