"""Per-image fine-tuning, measured through the codec: what an encoder that tunes a few of the
model's parameters on the image, and sends them, would save (issue 23, "adapt to the image").

    python scripts/tune_measure.py kodim13 kodim23 [--model igc-rgb16-v3] [--subsets norms,biases]
        [--windows] [--lr 1e-2] [--epochs 1] [--l1 0] [--step 0.02[,0.05]] [--threads 1] [--compile]
        [--base-json BENCH.json] [--batch 4] [--out /tmp/tune] [--json out.json]

For each image and parameter subset: the model is fine-tuned on the image's own 16×16 tiles, or
with `--windows` on the overlapping windows of context modes 2 and 3 (their first row and column
read, not trained on): Adam, bf16 autocast, batches of 32 drawn with seed 0, the loss on the
coded subpixels, `--epochs` passes' worth of batches, `--l1` pulling every change towards zero.
The change of every tuned parameter is rounded to a multiple of `--step` (what a file would
carry) and added to the shipped model's float32 values; that model is exported and the codec's
own estimate (`NeuralCodec.estimate_bits`: numerics 2, the default context mode and strips,
adaptation and predictor included) gives its bits, beside the shipped model's on the same image
(estimated here, or read from `--base-json`, a bench of the same model). The side information
is costed as the zero-order entropy of the rounded multiples plus 16 bits per distinct value (its
table): a coder of the values would spend about that.

Subsets: `norms` the RMS norms' gains (ln_1 and ln_2 of every block, ln_f), `biases` those and
every linear layer's bias. Results: docs/design.md, "Tuning the model to the image, sent in the
file: measured".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_env import KODAK, bench_bpsp

SUBSETS = ("norms", "biases")


def pick(name: str, subset: str) -> bool:
    """Whether parameter `name` is tuned in `subset` (ln_1, ln_2 and ln_f hold the norms)."""
    norm = ".ln_" in name
    return norm or (subset == "biases" and name.endswith(".bias"))


def tune(model, tokens, coded, start_token: int, subset: str, lr: float, epochs: float,
         l1: float = 0.0):
    """Fine-tune `model` in place on the image's tiles; returns {name: float32 change}. `l1`
    pulls every change towards zero by lr * l1 a step (soft thresholding), so that only
    parameters the image keeps pushing move, and the changes cost fewer bits to send."""
    import torch

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_(pick(n, subset))
        if p.requires_grad:
            params.append(p)
    opt = torch.optim.Adam(params, lr=lr)
    inputs = torch.cat([torch.full_like(tokens[:, :1], start_token), tokens[:, :-1]], 1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(max(1, int(epochs * len(tokens) / 32))):
        idx = torch.randint(len(tokens), (32,), generator=gen)
        with torch.autocast("cpu", torch.bfloat16):
            logits = model(inputs[idx])
        logp = torch.log_softmax(logits.float(), -1).gather(-1, tokens[idx, :, None])[..., 0]
        mask = coded[idx]
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if l1:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if p.requires_grad:
                        d = p - before[n]
                        p.copy_(before[n] + d.sign() * (d.abs() - lr * l1).clamp(min=0))
    return {n.removeprefix("_orig_mod."): (p.detach() - before[n])  # a compiled module's names
            for n, p in model.named_parameters() if p.requires_grad}


def side_bits(multiples: np.ndarray) -> float:
    """Zero-order entropy of the rounded multiples, plus a 16-bit table entry per value."""
    values, counts = np.unique(multiples, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum()) + 16 * len(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default="igc-rgb16-v3")
    ap.add_argument("--subsets", default="norms,biases")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--step", type=lambda v: [float(x) for x in v.split(",")], default=[0.02],
                    dest="steps", help="rounding step of the changes; several, comma-separated, "
                    "are each measured from one tuning")
    ap.add_argument("--l1", type=float, default=0.0,
                    help="pull each change towards zero by lr * L1 a step (fewer bits to send)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="tune through torch.compile (its first image pays for the compiling)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/tune"))
    ap.add_argument("--windows", action="store_true",
                    help="tune on the windows of context modes 2 and 3 (their first row and column "
                    "read, not trained on) instead of plain tiles")
    ap.add_argument("--base-json", type=Path, default=None,
                    help="take the shipped model's bits from this `igc bench --json` file (rows "
                    "of the same model, images by file name) instead of estimating them again")
    ap.add_argument("--batch", type=int, default=None,
                    help="the codec's batch for both estimates (default: the context mode's)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    subsets = a.subsets.split(",")
    if bad := [s for s in subsets if s not in SUBSETS]:
        ap.error(f"unknown subset {bad[0]!r}; choose from {', '.join(SUBSETS)}")
    if a.batch is not None and a.base_json:
        ap.error("--base-json holds bits at the bench's batch: drop it to estimate at --batch")
    paths = [Path(i) if Path(i).exists() else KODAK / f"{i}.png" for i in a.images]
    if missing := [str(p) for p in paths if not p.exists()]:
        ap.error(f"no image {missing[0]} (give a file, or a Kodak name such as kodim23)")

    import torch
    from PIL import Image

    import igc.api as api
    from igc.core.overlap import OverlapTiling
    from igc.core.tokenizer import SubpixelTokenizer
    from igc.plugins.compose import compose
    from igc.training.model import ImageGPT, export_pretrained, load_pretrained

    torch.set_num_threads(a.threads)
    api.set_threads(a.threads)
    cfg, state, _ = load_pretrained(a.model)
    tok = SubpixelTokenizer(cfg.tile)
    report = {"model": a.model, "batch": a.batch, "windows": a.windows, "lr": a.lr,
              "epochs": a.epochs,
              "l1": a.l1, "compile": a.compile, "steps": a.steps, "images": {}}
    known = bench_bpsp(a.base_json, a.model) if a.base_json else {}
    for path in paths:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        t = (OverlapTiling(tok) if a.windows else tok).encode(pixels)
        tokens, coded = torch.from_numpy(t.tokens), torch.from_numpy(t.coded)
        start = time.perf_counter()
        if path.name in known:
            row = {"base_bpsp": known[path.name], "base_from": str(a.base_json)}
        else:
            base = compose(a.model, batch=a.batch).estimate_bits(pixels)
            row = {"base_bpsp": base / pixels.size, "base_seconds": time.perf_counter() - start}
        for subset in subsets:
            model = ImageGPT(cfg)
            model.load_state_dict(state, strict=False)
            start = time.perf_counter()
            runner = torch.compile(model) if a.compile else model
            change = tune(runner, tokens, coded, tok.start_token, subset, a.lr, a.epochs,
                          a.l1)
            seconds = time.perf_counter() - start
            for step in a.steps:
                multiples = {n: torch.round(d / step) for n, d in change.items()}
                tuned = ImageGPT(cfg)
                tuned.load_state_dict(state, strict=False)
                with torch.no_grad():
                    for n, p in tuned.named_parameters():
                        if n in multiples:
                            p.add_(multiples[n] * step)
                # a folder per model: models are loaded once per path
                folder = a.out / f"{path.stem}-{subset}-{step:g}"
                export_pretrained(tuned, cfg.hf_config(), folder)
                bits = compose(str(folder), batch=a.batch).estimate_bits(pixels)
                flat = np.concatenate([m.numpy().ravel() for m in multiples.values()])
                flat = flat.astype(np.int64)
                side = side_bits(flat)
                key = subset if len(a.steps) == 1 else f"{subset}@{step:g}"
                row[key] = g = {"params": int(flat.size), "nonzero": int((flat != 0).sum()),
                                "tune_seconds": seconds, "bpsp": bits / pixels.size,
                                "side_bits": side, "net_bpsp": (bits + side) / pixels.size}
                print(f"{path.stem} {key}: {flat.size} parameters ({g['nonzero']} moved), "
                      f"{row['base_bpsp']:.4f} -> {g['bpsp']:.4f} "
                      f"({100 * (g['bpsp'] / row['base_bpsp'] - 1):+.2f}%), side "
                      f"{side / 8:.0f} bytes, net "
                      f"{100 * (g['net_bpsp'] / row['base_bpsp'] - 1):+.2f}% "
                      f"(tuning {seconds:.0f} s)", flush=True)
        report["images"][path.stem] = row
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    if len(report["images"]) > 1:
        rows = list(report["images"].values())
        for subset in [k for k in rows[0] if isinstance(rows[0][k], dict)]:
            base = sum(r["base_bpsp"] for r in rows)
            net = sum(r[subset]["net_bpsp"] for r in rows)
            gross = sum(r[subset]["bpsp"] for r in rows)
            print(f"all {len(rows)} ({subset}, mean of images): model bits "
                  f"{100 * (gross / base - 1):+.2f}%, with the side information "
                  f"{100 * (net / base - 1):+.2f}%")


if __name__ == "__main__":
    main()
