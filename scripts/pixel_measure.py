"""One position per pixel against ImageGPT's one per subpixel, trained the same way for the same
time on this CPU (issue 25's "fewer positions per pixel", issue 23's models trained here).

    python scripts/pixel_measure.py train --arch pixel --minutes 70 --out /tmp/pix/pixel
    python scripts/pixel_measure.py train --arch subpixel --minutes 70 --out /tmp/pix/subpixel
    python scripts/pixel_measure.py eval /tmp/pix/pixel /tmp/pix/subpixel --images kodim01 ...
    python scripts/pixel_measure.py export /tmp/pix/pixel experiments/pixel-w128
    python scripts/pixel_measure.py keep runs/pixel2 experiments/pixel-w128 --command "igc train ..."
    python scripts/pixel_measure.py speed [--threads 1]

Both architectures have igc's default body (width 128, 4 blocks of 4 heads, RMS norms,
quick-GELU) over 16×16 tiles in raster order; they differ in what a position is:

- `subpixel`: igc's ImageGPT (igc.models.network), 768 positions per tile, one symbol each.
- `pixel`: igc.models.pixel_network.PixelGPT (what `igc train --arch pixel` trains), 256
  positions per tile. Position i reads pixel i−1 (the sum of one embedding per channel; a start
  symbol at i = 0) and its final hidden state h_i gives three distributions in turn: R from
  h_i, G from h_i plus an embedding of R through one residual MLP block, B from h_i plus
  embeddings of R and G through another. A decoder would run the body once per pixel and the
  small heads once per subpixel: per pixel about 2.8× fewer multiply-adds than three subpixel
  steps, and attention over at most 256 positions instead of 768.

`train` runs the trainer's recipe (its data mix `default_train_paths`, its sampler, AdamW with
the trainer's betas and decay, linear warmup then cosine to a tenth, bf16 autocast where the CPU
has it, optionally torch.compile) for a wall-clock budget, from GPT-2's init, a subpixel model
(`--init-from`: a pixel model then starts from its body, `pixel_from_subpixel`) or a run of this
script (continued with a fresh schedule), optionally distilling a subpixel model (`--teacher`);
it validates on tiles of BSDS500 test and saves the weights (model.safetensors and meta.json, at
each validation, so a run cut short keeps them) and a log. `eval` gives float32 bits per
subpixel on whole 16×16 tiles of the given photos (mode 0: no context across tiles, no
adaptation), the figure both architectures share; `export` makes a run a model folder that
`igc compress --model` codes with. `keep` does it for an `igc train` run's best export (a
continuation, `--init-from` the kept folder): its weights in float16 (half the bytes a lent
GPU's upload must carry beside its data; a continuation starts from them in float32), its
training.json with the run's validation curve, the command, and the folder's earlier
provenance under "previous".
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

from igc.models.network import ModelConfig, cpu_has_fast_bf16, tokens_from_tiles
from igc.training.model import build_network, pixel_from_subpixel

LN2 = math.log(2)


def make(arch: str) -> nn.Module:
    return build_network(ModelConfig(arch=arch))


def nats(model: nn.Module, tiles: torch.Tensor, dtype) -> torch.Tensor:
    """Mean cross entropy per subpixel (nats) of uint8 tiles (B, T, T, 3)."""
    return distilled(model, tiles, dtype)[1]


def distilled(model: nn.Module, tiles: torch.Tensor, dtype, soft: torch.Tensor | None = None,
              distill: float = 0.0):
    """(the loss, the data's mean cross entropy) per subpixel in nats, as the trainer's
    `training_loss`: with a teacher's probabilities `soft` (B, T*T*3, 256), the target is
    `distill` of them plus the rest on the true symbol. Both architectures take the same ids
    and order their logits the same way, so one teacher serves both."""
    ids, tgt = tokens_from_tiles(tiles)
    with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
        logits = model(ids)
    logits = logits.float().reshape(-1, 256)
    hard = F.cross_entropy(logits, tgt.reshape(-1), reduction="none")
    if soft is None:
        return hard.mean(), hard.mean()
    soft_ce = -(soft.reshape(-1, 256) * F.log_softmax(logits, -1)).sum(-1)
    return (distill * soft_ce + (1 - distill) * hard).mean(), hard.mean()


def bits(model: nn.Module, tiles: np.ndarray, dtype=None, chunk: int = 64) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(tiles), chunk):
            part = torch.from_numpy(tiles[i : i + chunk])
            total += nats(model, part, dtype).item() * len(part)
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
    from igc.training.model import load_pretrained
    from igc.training.trainer import make_optimizer, teacher_probs

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    src = load_training(default_train_paths(), 16)
    sampler = Sampler(src, np.random.default_rng(a.seed))
    val = load_validation(default_val_path(), 16, count=a.val_count)
    model, seen_before = make(a.arch), 0
    if a.init_from and (Path(a.init_from) / "meta.json").exists():  # a run of this script
        if json.loads((Path(a.init_from) / "meta.json").read_text())["arch"] != a.arch:
            sys.exit(f"--init-from {a.init_from}: not a {a.arch} run")
        model.load_state_dict(load_weights(Path(a.init_from)))
        before = json.loads((Path(a.init_from) / "meta.json").read_text())
        seen_before = before["subpixels"] + before.get("subpixels_before", 0)
    elif a.init_from:  # an exported model: the same architecture's weights, or a body
        cfg, state, _ = load_pretrained(a.init_from)
        if cfg != ModelConfig(arch=cfg.arch):
            sys.exit(f"--init-from {a.init_from}: not the default shape ({cfg})")
        if cfg.arch == a.arch:
            model.load_state_dict(state)
        elif a.arch == "pixel":
            model.load_state_dict(pixel_from_subpixel(state, model.cfg))
        else:
            sys.exit(f"--init-from {a.init_from}: a pixel model cannot start a subpixel one")
    teacher = None
    if a.teacher:
        cfg, state, _ = load_pretrained(a.teacher)
        if cfg.tile != 16:
            sys.exit(f"--teacher {a.teacher}: tiles of {cfg.tile}, not 16")
        teacher = build_network(cfg)
        teacher.load_state_dict(state)
        teacher.eval().requires_grad_(False)
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    opt = make_optimizer(model, a.lr, 0.01)
    loss_fn = torch.compile(distilled) if a.compile else distilled
    probs = torch.compile(teacher_probs) if a.compile else teacher_probs
    log = (a.out / "log.jsonl").open("w")
    meta = {"arch": a.arch, "params": sum(p.numel() for p in model.parameters()),
            "minutes": a.minutes, "batch": a.batch, "lr": a.lr, "warmup": a.warmup,
            "threads": a.threads, "compile": a.compile, "seed": a.seed, "cpu": cpu_model(),
            "init_from": a.init_from, "subpixels_before": seen_before,
            "teacher": a.teacher, "distill": a.distill,
            "data": src.description, "val_tiles": len(val),
            "command": "python scripts/pixel_measure.py " + " ".join(sys.argv[1:])}
    log.write(json.dumps(meta) + "\n")
    start, step, subpixels, next_eval, recent = time.perf_counter(), 0, 0, 0.0, []
    while True:
        elapsed = time.perf_counter() - start
        progress = elapsed / (60 * a.minutes)
        if elapsed >= next_eval or progress >= 1:
            v = bits(model, val, dtype)
            rec = {"step": step, "minutes": elapsed / 60, "subpixels": subpixels, "val_bpsp": v,
                   "train_bpsp": float(np.mean(recent)) if recent else None}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            recent, next_eval = [], elapsed + 60 * a.eval_minutes
            save_weights(model, a.out)  # each evaluation, so a run cut short keeps its weights
            (a.out / "meta.json").write_text(json.dumps(
                {**meta, "steps": step, "subpixels": subpixels, "val_bpsp": v}, indent=1))
            if progress >= 1:
                break
        lr = a.lr * (step + 1) / a.warmup if step < a.warmup else (
            a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))))
        for g in opt.param_groups:
            g["lr"] = lr
        tiles = torch.from_numpy(sampler.batch(a.batch))
        soft = None if teacher is None else probs(teacher, tokens_from_tiles(tiles)[0], dtype)
        loss, hard = loss_fn(model, tiles, dtype, soft, a.distill)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        subpixels += a.batch * 768
        recent.append(hard.item() / LN2)


def save_weights(model: nn.Module, out: Path) -> None:
    """float32 safetensors, written whole then renamed, so a reader never sees half a file."""
    from safetensors.torch import save_file

    tmp = out / "model.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(out / "model.safetensors")


def load_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


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
        model.load_state_dict(load_weights(run))
        per = {p.stem: bits(model, photo_tiles(p)) for p in paths}
        report["runs"][str(run)] = {**meta, "bpsp": per, "mean_bpsp": float(np.mean(
            list(per.values())))}
        print(run, meta["arch"], f"{meta['subpixels'] / 1e6:.1f} M subpixels",
              " ".join(f"{k} {v:.4f}" for k, v in per.items()),
              f"mean {report['runs'][str(run)]['mean_bpsp']:.4f}", flush=True)
        if a.integer_tiles and meta["arch"] == "pixel":
            tiles = np.concatenate([spaced(photo_tiles(p), a.integer_tiles) for p in paths])
            fbits, ibits = bits(model, tiles), integer_bits(model, tiles)
            report["runs"][str(run)]["integer"] = {"tiles": len(tiles), "float_bpsp": fbits,
                                                   "integer_bpsp": ibits}
            print(f"  numerics 2 (cpu engine) on {len(tiles)} tiles: {ibits:.4f} against float "
                  f"{fbits:.4f} ({100 * (ibits / fbits - 1):+.3f}%)", flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


def spaced(tiles: np.ndarray, n: int) -> np.ndarray:
    """n tiles spread evenly over an image's."""
    return tiles[np.linspace(0, len(tiles) - 1, min(n, len(tiles))).astype(int)]


def integer_bits(model: nn.Module, tiles: np.ndarray) -> float:
    """Bits per subpixel of numerics 2's frequencies (the pixel cpu engine), stepping the
    tiles as a decoder steps a batch of windows."""
    from igc.engines.pixel_cpu import PixelCpuEngine
    from igc.engines.pixel_integer import quantize_pixel

    engine = PixelCpuEngine(quantize_pixel(model.state_dict(), model.cfg))
    ids, tgt = tokens_from_tiles(torch.from_numpy(tiles))
    state, total, rows = engine.start(len(tiles)), 0.0, np.arange(len(tiles))
    for p in range(ids.shape[1]):
        f = engine.step(state, ids[:, p].numpy())
        total -= np.log2(f[rows, tgt[:, p].numpy()] / 2.0 ** 24).sum()
    return total / tgt.numel()


def export(a) -> None:
    """A run of this script as a model folder that `igc train --init-from` continues and
    `scripts/eval_bits.py` scores: config.json, model.safetensors, training.json (the run's
    meta, its validation log and its provenance)."""
    from igc.models.pixel_network import pixel_config
    from igc.training.model import export_config, export_pretrained

    meta = json.loads((a.run / "meta.json").read_text())
    model = make(meta["arch"])
    model.load_state_dict(load_weights(a.run))
    log = [json.loads(line) for line in (a.run / "log.jsonl").read_text().splitlines()[1:]]
    cfg = ModelConfig(arch=meta["arch"])
    config = pixel_config(cfg) if meta["arch"] == "pixel" else export_config(cfg)
    export_pretrained(model, config, a.out, extra={**meta, "curve": log,
                                                   "exported_from": str(a.run)})
    print(f"{a.out}: {meta['arch']} model, {meta['steps']} steps, "
          f"{(meta['subpixels'] + meta.get('subpixels_before', 0)) / 1e6:.1f} M subpixels "
          f"seen, validation {meta['val_bpsp']:.4f}")


def keep(a) -> None:
    """An `igc train` run's best export as a kept experiment folder (see the module docstring)."""
    from safetensors.torch import load_file, save_file

    best = a.run / "best"
    info = json.loads((best / "training.json").read_text())
    previous = json.loads((a.out / "training.json").read_text()) if (
        a.out / "training.json").is_file() else None
    before = 0
    if previous is not None:
        before = previous.get("subpixels_total") or (previous.get("subpixels", 0)
                                                     + previous.get("subpixels_before", 0))
    curve = [json.loads(line) for line in (a.run / "log.jsonl").read_text().splitlines()]
    tensors = {k: v.half().contiguous() for k, v in load_file(best / "model.safetensors").items()}
    a.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, a.out / "model.safetensors", metadata={"format": "pt"})
    (a.out / "config.json").write_text((best / "config.json").read_text())
    info.update(command=a.command, stored="float16 (the run's best export, rounded)",
                subpixels_total=before + info["tokens"], curve=curve, previous=previous)
    (a.out / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{a.out}: step {info['step']}, {info['tokens'] / 1e6:.1f} M subpixels this run, "
          f"{info['subpixels_total'] / 1e6:.1f} M in all, validation {info['val_bpsp']:.4f} "
          "(float32, before rounding to float16)")


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
                loss = nats(model, tiles, dtype)
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
    t.add_argument("--init-from", default=None,
                   help="a shipped or exported subpixel model to start from, or a run of "
                   "this script of the same --arch (its model.safetensors)")
    t.add_argument("--teacher", default=None, help="a subpixel model to distil")
    t.add_argument("--distill", type=float, default=0.8)
    t.add_argument("--out", type=Path, required=True)
    e = sub.add_parser("eval")
    e.add_argument("runs", nargs="+", type=Path)
    e.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim13", "kodim23"])
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--json", type=Path, default=None)
    e.add_argument("--integer-tiles", type=int, default=0,
                   help="a pixel model's numerics-2 bits too, on this many tiles of each image")
    x = sub.add_parser("export")
    x.add_argument("run", type=Path)
    x.add_argument("out", type=Path)
    k = sub.add_parser("keep")
    k.add_argument("run", type=Path)
    k.add_argument("out", type=Path)
    k.add_argument("--command", required=True, help="the igc train command of the run")
    s = sub.add_parser("speed")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    {"train": train, "eval": evaluate, "export": export, "keep": keep, "speed": speed}[a.cmd](a)


if __name__ == "__main__":
    main()
