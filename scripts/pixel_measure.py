"""One position per pixel against ImageGPT's one per subpixel, trained the same way for the same
time on this CPU (issue 25's "fewer positions per pixel", issue 23's models trained here).

    python scripts/pixel_measure.py train --arch pixel --minutes 70 --out /tmp/pix/pixel
    python scripts/pixel_measure.py train --arch subpixel --minutes 70 --out /tmp/pix/subpixel
    python scripts/pixel_measure.py eval /tmp/pix/pixel /tmp/pix/subpixel --images kodim01 ...
    python scripts/pixel_measure.py speed [--threads 1]

Both architectures have igc's default body (width 128, 4 blocks of 4 heads, RMS norms,
quick-GELU) over 16×16 tiles in raster order; they differ in what a position is:

- `subpixel`: igc's ImageGPT (igc.models.network), 768 positions per tile, one symbol each.
- `pixel`: 256 positions per tile. Position i reads pixel i−1 (the sum of one embedding per
  channel; a start symbol at i = 0) and its final hidden state h_i gives three distributions in
  turn: R from h_i, G from h_i plus an embedding of R passed through one residual MLP block, B from
  h_i plus embeddings of R and G through another. A decoder would run the body once per pixel
  and the small heads once per subpixel: per pixel about 2.8× fewer multiply-adds than three
  subpixel steps, and attention over at most 256 positions instead of 768.

`train` runs the trainer's recipe (its data mix `default_train_paths`, its sampler, AdamW with
the trainer's betas and decay, linear warmup then cosine to a tenth, bf16 autocast where the CPU
has it, optionally torch.compile) from scratch for a wall-clock budget, validating on tiles of
BSDS500 test, and saves the weights and a log. `eval` gives float32 bits per subpixel on whole
16×16 tiles of the given photos (mode 0: no context across tiles, no adaptation), the figure
both architectures share. Nothing here is a codec: a pixel model has no integer engine, format
or file yet.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_env import KODAK, cpu_model

from igc.models.network import (
    START_TOKEN,
    Block,
    ImageGPT,
    ModelConfig,
    RMSNorm,
    cpu_has_fast_bf16,
    tokens_from_tiles,
)

LN2 = math.log(2)


class PixelHead(nn.Module):
    """One channel's distribution from the body's state plus the channels already known."""

    def __init__(self, width: int, known: int):
        super().__init__()
        self.embs = nn.ModuleList(nn.Embedding(256, width) for _ in range(known))
        if known:
            self.ln = RMSNorm(width)
            self.fc = nn.Linear(width, 4 * width)
            self.proj = nn.Linear(4 * width, width)
        self.ln_out = RMSNorm(width)
        self.out = nn.Linear(width, 256, bias=False)

    def forward(self, h: torch.Tensor, known: list[torch.Tensor]) -> torch.Tensor:
        u = h
        for emb, values in zip(self.embs, known, strict=True):
            u = u + emb(values)
        if self.embs:
            f = self.fc(self.ln(u))
            u = u + self.proj(f * torch.sigmoid(1.702 * f))
        return self.out(self.ln_out(u))


class PixelGPT(nn.Module):
    """ImageGPT's body over pixels: `forward(pixels)` with pixels (B, N, 3) int64 returns the
    logits (B, N, 3, 256) of every subpixel, each channel conditioned on the earlier ones."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.tile * cfg.tile
        self.wte = nn.ModuleList(nn.Embedding(START_TOKEN + 1, cfg.width) for _ in range(3))
        self.wpe = nn.Embedding(n, cfg.width)
        self.h = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.ln_f = RMSNorm(cfg.width)
        self.heads = nn.ModuleList(PixelHead(cfg.width, c) for c in range(3))
        for name, p in self.named_parameters():  # GPT-2's init, as ImageGPT.reset_parameters
            if "ln" in name.split(".")[-2]:
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.layers))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, n, _ = pixels.shape
        start = torch.full((b, 1, 3), START_TOKEN, dtype=pixels.dtype, device=pixels.device)
        prev = torch.cat([start, pixels[:, :-1]], 1)
        x = sum(self.wte[c](prev[..., c]) for c in range(3)) + self.wpe(
            torch.arange(n, device=pixels.device))
        for block in self.h:
            x = block(x)
        h = self.ln_f(x)
        return torch.stack([head(h, [pixels[..., k] for k in range(c)])
                            for c, head in enumerate(self.heads)], 2)


def make(arch: str) -> nn.Module:
    return PixelGPT(ModelConfig()) if arch == "pixel" else ImageGPT(ModelConfig())


def nats(model: nn.Module, arch: str, tiles: torch.Tensor, dtype) -> torch.Tensor:
    """Mean cross entropy per subpixel (nats) of uint8 tiles (B, T, T, 3)."""
    with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
        if arch == "pixel":
            pixels = tiles.reshape(tiles.shape[0], -1, 3).long()
            logits, tgt = model(pixels), pixels
        else:
            ids, tgt = tokens_from_tiles(tiles)
            logits = model(ids)
    return F.cross_entropy(logits.float().reshape(-1, 256), tgt.reshape(-1))


def bits(model: nn.Module, arch: str, tiles: np.ndarray, dtype=None, chunk: int = 64) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(tiles), chunk):
            part = torch.from_numpy(tiles[i : i + chunk])
            total += nats(model, arch, part, dtype).item() * len(part)
    model.train()
    return total / len(tiles) / LN2


def train(a) -> None:
    from igc.training.data import (
        Sampler,
        default_train_paths,
        default_val_path,
        load_training,
        load_validation,
    )
    from igc.training.trainer import make_optimizer

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    src = load_training(default_train_paths(), 16)
    sampler = Sampler(src, np.random.default_rng(a.seed))
    val = load_validation(default_val_path(), 16, count=a.val_count)
    model = make(a.arch)
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    opt = make_optimizer(model, a.lr, 0.01)
    loss_fn = torch.compile(nats) if a.compile else nats
    log = (a.out / "log.jsonl").open("w")
    meta = {"arch": a.arch, "params": sum(p.numel() for p in model.parameters()),
            "minutes": a.minutes, "batch": a.batch, "lr": a.lr, "warmup": a.warmup,
            "threads": a.threads, "compile": a.compile, "seed": a.seed, "cpu": cpu_model(),
            "data": src.description, "val_tiles": len(val),
            "command": "python scripts/pixel_measure.py " + " ".join(sys.argv[1:])}
    log.write(json.dumps(meta) + "\n")
    start, step, subpixels, next_eval, recent = time.perf_counter(), 0, 0, 0.0, []
    while True:
        elapsed = time.perf_counter() - start
        progress = elapsed / (60 * a.minutes)
        if elapsed >= next_eval or progress >= 1:
            v = bits(model, a.arch, val, dtype)
            rec = {"step": step, "minutes": elapsed / 60, "subpixels": subpixels, "val_bpsp": v,
                   "train_bpsp": float(np.mean(recent)) if recent else None}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            recent, next_eval = [], elapsed + 60 * a.eval_minutes
            if progress >= 1:
                break
        lr = a.lr * (step + 1) / a.warmup if step < a.warmup else (
            a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_fn(model, a.arch, torch.from_numpy(sampler.batch(a.batch)), dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        subpixels += a.batch * 768
        recent.append(loss.item() / LN2)
    torch.save(model.state_dict(), a.out / "model.pt")
    (a.out / "meta.json").write_text(json.dumps({**meta, "steps": step,
                                                 "subpixels": subpixels}, indent=1))


def photo_tiles(path: Path) -> np.ndarray:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    h, w = img.shape[0] // 16 * 16, img.shape[1] // 16 * 16
    t = img[:h, :w].reshape(h // 16, 16, w // 16, 16, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(t.reshape(-1, 16, 16, 3))


def evaluate(a) -> None:
    torch.set_num_threads(a.threads)
    paths = [Path(i) if Path(i).exists() else KODAK / f"{i}.png" for i in a.images]
    report = {"cpu": cpu_model(), "images": [p.name for p in paths], "runs": {},
              "command": "python scripts/pixel_measure.py " + " ".join(sys.argv[1:])}
    for run in a.runs:
        meta = json.loads((run / "meta.json").read_text())
        model = make(meta["arch"])
        model.load_state_dict(torch.load(run / "model.pt"))
        per = {p.stem: bits(model, meta["arch"], photo_tiles(p)) for p in paths}
        report["runs"][str(run)] = {**meta, "bpsp": per, "mean_bpsp": float(np.mean(
            list(per.values())))}
        print(run, meta["arch"], f"{meta['subpixels'] / 1e6:.1f} M subpixels",
              " ".join(f"{k} {v:.4f}" for k, v in per.items()),
              f"mean {report['runs'][str(run)]['mean_bpsp']:.4f}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


def speed(a) -> None:
    """Training steps per second of both architectures, alternating, random tiles."""
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    tiles = torch.randint(0, 256, (a.batch, 16, 16, 3), dtype=torch.uint8)
    for _ in range(a.rounds):
        for arch in ("subpixel", "pixel"):
            model = make(arch)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            for i in range(a.steps + 1):
                if i == 1:
                    t = time.perf_counter()
                loss = nats(model, arch, tiles, dtype)
                opt.zero_grad()
                loss.backward()
                opt.step()
            sec = (time.perf_counter() - t) / a.steps
            print(f"{arch}: {sum(p.numel() for p in model.parameters()):,} parameters, "
                  f"{sec * 1000:.0f} ms a step of {a.batch} tiles, "
                  f"{a.batch * 768 / sec:,.0f} subpixels/s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--arch", choices=("pixel", "subpixel"), required=True)
    t.add_argument("--minutes", type=float, default=70)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--compile", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-count", type=int, default=512)
    t.add_argument("--eval-minutes", type=float, default=10)
    t.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("eval")
    e.add_argument("runs", nargs="+", type=Path)
    e.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim13", "kodim23"])
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--json", type=Path, default=None)
    s = sub.add_parser("speed")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    {"train": train, "eval": evaluate, "speed": speed}[a.cmd](a)


if __name__ == "__main__":
    main()
