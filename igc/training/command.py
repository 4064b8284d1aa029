"""The `igc train` command: train an ImageGPT model on CPU or GPU and export it for the codec.

It lives with the trainer so that `python -m igc.training` runs it without the CLI; igc/cli/train.py
mounts it on `igc` with the CLI's one-line errors. torch is imported inside the function so that
`igc --help` stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from igc.errors import IgcError, UsageError


def train(
    width: Annotated[int | None, typer.Option(help="Model width (n_embd). Default: 128.")] = None,
    layers: Annotated[
        int | None, typer.Option(help="Number of transformer blocks. Default: 4.")
    ] = None,
    heads: Annotated[
        int | None, typer.Option(help="Attention heads (must divide width). Default: 4.")
    ] = None,
    tile: Annotated[
        int | None, typer.Option(help="Tile side T; the model sees T*T*3 subpixels. Default: 16.")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="subpixel: ImageGPT, one position per subpixel (what the codec codes with). "
            "pixel: one position per pixel, its three subpixels predicted in turn from one "
            "hidden state; about 3x the subpixels a second on a CPU, and codes a photo in "
            "about half the time (numerics 2, every engine, context modes 0-4). Default: "
            "subpixel.",
            show_default=False,
        ),
    ] = None,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--init-from",
            help="Start from an exported model (run folder's best/, a model folder or a shipped "
            "id such as igc-rgb16-v2): its weights and architecture, with a fresh optimizer "
            "and schedule.",
        ),
    ] = None,
    grow_layers: Annotated[
        int,
        typer.Option(
            help="With --init-from: append this many transformer blocks that start as the "
            "identity (zero output projections), so training starts from the model's own loss "
            "with more capacity. Each block adds 1/layers of the model's time.",
        ),
    ] = 0,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Distil: also learn this exported model's distributions (a run folder's best/, "
            "a model folder or a shipped id such as igc-rgb16-w256-v2; same tile). Each step "
            "then runs the teacher's forward pass too.",
        ),
    ] = None,
    distill: Annotated[
        float,
        typer.Option(help="With --teacher: the teacher's share of the target distribution, "
                     "the true symbol's the rest (0 to 1)."),
    ] = 0.8,
    border_weight: Annotated[
        float,
        typer.Option(
            help="Loss weight of a tile's first row and column (0 to 1). Context modes 2 and 3, "
            "the photographs' modes, take them from the neighbouring tiles instead of coding "
            "them (except along the image's top and left), so a photo model can weigh them "
            "less; modes 0 and 1 (small images) code them. Exports are then chosen on the "
            "validation weighted the same way.",
        ),
    ] = 1.0,
    jpeg_downscale: Annotated[
        float,
        typer.Option(
            help="Shrink JPEG photos (training and validation; a camera's MPO too) by this "
            "factor, 1 to 16, before use, then take the usual scales of them. At 2 their 8x8 "
            "blocks and chroma steps are averaged away, so they teach textures without "
            "artifacts that lossless photographs (Kodak) do not have. PNG, WebP and other "
            "files are not touched.",
        ),
    ] = 1.0,
    compile_model: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the training step (forward pass and loss; the backward pass "
            "follows). Default: on for a CPU run of at least 10 minutes or 500 steps, where "
            "it was measured 1.07-1.21x faster; off otherwise. Compiling takes one to three "
            "minutes before the first step; if it fails, the default falls back to the plain "
            "step.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="Training image folder, image file or .npz with `images` (repeatable). "
            "Default: the shared data folder ../shared/data beside the project folder: its "
            "photos/bsds500/train, photos/bsds500/val, photos/sun_hays80, "
            "cifar10/train_first4000.npz, photos/urban100 and photos/mcmaster."
        ),
    ] = None,
    val: Annotated[
        Path | None,
        typer.Option(help="Validation images. Default: photos/bsds500/test in "
                     "../shared/data."),
    ] = None,
    val_count: Annotated[int, typer.Option(help="Number of fixed validation tiles.")] = 1024,
    minutes: Annotated[
        float | None,
        typer.Option(help="Wall-clock budget; the learning-rate schedule ends when it does."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Step budget (with --minutes: whichever ends first).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Tiles per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 3e-3,
    warmup: Annotated[int, typer.Option(help="Linear warmup steps.")] = 100,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CUDA or bf16-capable CPUs), bf16 or fp32.")
    ] = "auto",
    eval_minutes: Annotated[float, typer.Option(help="Validate at least this often.")] = 5.0,
    eval_every: Annotated[int, typer.Option(help="Validate at least every N steps.")] = 200,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/NAME).")] = None,
    name: Annotated[
        str, typer.Option(help="Run name, used when --out is not given.")
    ] = "igc-rgb16",
    resume: Annotated[
        bool, typer.Option(help="Continue from RUN/checkpoint.pt, schedule included.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for init and sampling.")] = 0,
) -> None:
    """Train an ImageGPT model; exports the best weights to RUN/best, the last step's to RUN/last.

    Both are model folders that --model, --init-from and --teacher accept (a subpixel model's are HF-format ImageGPT checkpoints)."""
    from igc.training.data import default_train_paths, default_val_path
    from igc.training.model import ARCHES, ModelConfig
    from igc.training.trainer import Trainer, TrainSettings

    given = {"width": width, "layers": layers, "heads": heads, "tile": tile, "arch": arch}
    if arch is not None and arch not in ARCHES:
        raise UsageError(f"--arch must be one of {', '.join(ARCHES)}, got {arch!r}")
    if init_from is not None:
        if resume:
            raise UsageError("--init-from starts a new run; --resume continues one: pass one")
        shape = _architecture_of(init_from)
        if grow_layers < 0:
            raise UsageError(f"--grow-layers must be at least 0, got {grow_layers}")
        shape["layers"] += grow_layers
        model = "the grown model" if grow_layers else "the model"
        clash = [f"--{k} {v} ({model} has {shape[k]})" for k, v in given.items()
                 if v is not None and v != shape[k]]
        if clash:
            raise UsageError(f"--init-from {init_from} fixes the architecture: " + ", ".join(clash))
    else:
        if grow_layers:
            raise UsageError("--grow-layers adds blocks to the model of --init-from: give one")
        defaults = {"width": 128, "layers": 4, "heads": 4, "tile": 16, "arch": "subpixel"}
        shape = {k: defaults[k] if v is None else v for k, v in given.items()}
    width, layers, heads, tile, arch = (shape[k] for k in given)
    if min(width, layers, heads, tile, batch, threads, val_count) < 1:
        raise UsageError(
            "--width, --layers, --heads, --tile, --batch, --threads, --val-count must be positive"
        )
    if width % heads:
        raise UsageError(f"--width {width} must be divisible by --heads {heads}")
    if not minutes and not steps:
        raise UsageError("give a budget: --minutes and/or --steps")
    for option, value in (("--minutes", minutes), ("--steps", steps)):
        # a budget that never ends would train forever (nan compares false with everything)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option} must be positive, got {value}")
    for option, value in (("--lr", lr), ("--eval-minutes", eval_minutes)):
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{option} must be a positive finite number, got {value}")
    if not 0.0 <= distill <= 1.0:
        raise UsageError(f"--distill must be between 0 and 1, got {distill}")
    if warmup < 0 or eval_every < 1:
        raise UsageError(f"--warmup must be at least 0 and --eval-every at least 1, got "
                         f"{warmup} and {eval_every}")
    if out is None and (not name.strip() or Path(name).name != name or name in (".", "..")):
        raise UsageError(f"--name {name!r} is not a run name (a folder under runs/); give --out "
                         "for a path")
    settings = TrainSettings(
        model=ModelConfig(width, layers, heads, tile, arch),
        data=[str(p) for p in (data or default_train_paths())],
        val=str(val or default_val_path()),
        val_count=val_count,
        out=str(out or Path("runs") / name),
        minutes=minutes,
        steps=steps,
        batch=batch,
        lr=lr,
        warmup=warmup,
        threads=threads,
        device=device,
        precision=precision,
        seed=seed,
        eval_every=eval_every,
        eval_minutes=eval_minutes,
        init_from=init_from,
        grow_layers=grow_layers,
        compile=compile_model,
        teacher=teacher,
        distill=distill,
        border_weight=border_weight,
        jpeg_downscale=jpeg_downscale,
    )
    trainer = Trainer(settings, resume=resume)
    try:
        trainer.run()
    except KeyboardInterrupt:
        saved = (f"checkpoint saved in {trainer.ckpt_path}: --resume continues"
                 if trainer.saved_on_interrupt else "no checkpoint saved")
        raise Interrupted(f"interrupted at step {trainer.interrupted_at}; {saved}") from None


class Interrupted(IgcError):
    """Training stopped by Ctrl-C (SIGINT), after saving its checkpoint."""

    exit_code = 130


def _architecture_of(spec: str) -> dict:
    """Width, layers, heads, tile and architecture of an exported model, from its config (the trainer loads
    and checks the weights once, later)."""
    from igc.training.model import pretrained_architecture

    cfg, _, _ = pretrained_architecture(spec)
    return {"width": cfg.width, "layers": cfg.layers, "heads": cfg.heads, "tile": cfg.tile,
            "arch": cfg.arch}
