"""The training loop: AdamW, warmup + cosine schedule over steps or wall-clock minutes,
periodic validation, atomic resumable checkpoints, and an HF export of the best weights.

The schedule can be driven by wall-clock time (`minutes`) because on a shared CPU the step rate
is unpredictable; the learning rate then reaches its floor exactly when the time is up.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from igc.core.options import checked_seed, checked_threads
from igc.errors import IgcError, UsageError
from igc.models.network import cpu_has_fast_bf16
from igc.training.checkpoint import atomic_save, load_checkpoint
from igc.training.data import (
    Sampler,
    TileSource,
    jpeg_downscale_problem,
    load_training,
    load_validation,
)
from igc.training.model import (
    ARCHES,
    ModelConfig,
    build_network,
    export_config,
    export_pretrained,
    grow_layers,
    load_pretrained,
    tokens_from_tiles,
)

LN2 = math.log(2.0)


@dataclass
class TrainSettings:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: list[str] = field(default_factory=list)
    val: str = ""
    val_count: int = 1024
    out: str = "runs/igc-rgb16"
    minutes: float | None = None
    steps: int | None = None
    batch: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    small_fraction: float = 0.25
    threads: int = 1
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    eval_every: int = 200
    eval_minutes: float = 5.0
    checkpoint_minutes: float = 3.0
    log_every: int = 10
    init_from: str | None = None  # an exported model (folder or shipped id) to start from
    grow_layers: int = 0  # blocks appended to init_from's, starting as the identity
    compile: bool | None = None  # torch.compile the training step; None: where it pays
    teacher: str | None = None  # an exported model whose distributions the model also learns
    distill: float = 0.8  # weight of the teacher's distribution in the target (with a teacher)
    border_weight: float = 1.0  # loss weight of a tile's first row and column (see position_weights)
    jpeg_downscale: float = 1.0  # JPEG photos (training and validation) shrunk by this first


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {name!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but CUDA is not available")
    return dev


def pick_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise UsageError(f"--precision must be auto, bf16 or fp32, not {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


# `compile=None` compiles a CPU run whose budget reaches either of these: compiling took 1.5 to 3
# minutes on a loaded 2-core machine, and the compiled step was measured 1.07-1.21x faster there
# (docs/training.md, "Speed on a CPU").
COMPILE_MIN_MINUTES = 10.0
COMPILE_MIN_STEPS = 500


def compile_pays(s: TrainSettings, device: torch.device) -> bool:
    """What `compile=None` (auto) decides: compile on a CPU when the budget is long enough."""
    if device.type != "cpu":
        return False  # a GPU gains too, but that was not measured here: --compile asks for it
    return (s.minutes or 0) >= COMPILE_MIN_MINUTES or (s.steps or 0) >= COMPILE_MIN_STEPS


def training_loss(model: torch.nn.Module, ids: torch.Tensor, tgt: torch.Tensor,
                  dtype: torch.dtype | None, soft: torch.Tensor | None = None,
                  distill: float = 0.0,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to minimise, the mean cross entropy of the data) in nats; autocast to `dtype`
    unless None. With a teacher's probabilities `soft`, the target is `distill` of them plus
    the rest on the true symbol: the cross entropy against that mixture is the data's
    cross entropy plus `distill` times the KL divergence from the teacher (up to the teacher's
    constant entropy). `weights` (one per position, `position_weights`) make the loss a
    weighted mean over positions; the second value stays the plain mean, the data's figure.
    The unit that `torch.compile` compiles: the forward pass with the loss, so the cast of the
    logits and the log-softmax fuse with the last layers."""
    with torch.autocast(ids.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(ids)
    logits = logits.float().reshape(-1, 256)
    per_position = F.cross_entropy(logits, tgt.reshape(-1), reduction="none")
    hard = per_position.mean()
    if soft is not None:
        soft_ce = -(soft.reshape(-1, 256) * F.log_softmax(logits, dim=-1)).sum(-1)
        per_position = distill * soft_ce + (1.0 - distill) * per_position
    if weights is None:
        return per_position.mean(), hard
    w = weights.repeat(tgt.shape[0])
    return (per_position * w).sum() / w.sum(), hard


def position_weights(tile: int, border_weight: float) -> torch.Tensor | None:
    """Loss weight of each of a tile's T*T*3 positions: `border_weight` on its first row and
    first column, 1 elsewhere; None when all are 1. In context modes 2 and 3 a window's first
    row and column are its neighbours' last, already decoded, so the codec never asks the
    model for them except along the image's top and left edges: a photograph's model can
    spend less of itself on them. Modes 0 and 1 (small images, CIFAR) code them, so a weight
    below 1 trades those images' bits for photographs'."""
    if border_weight == 1.0:
        return None
    r, c = np.divmod(np.arange(tile * tile), tile)
    w = np.where((r == 0) | (c == 0), border_weight, 1.0).repeat(3)
    return torch.tensor(w, dtype=torch.float32)


def teacher_probs(teacher: torch.nn.Module, ids: torch.Tensor,
                  dtype: torch.dtype | None) -> torch.Tensor:
    """The teacher's next-symbol probabilities, float32, no gradient."""
    with torch.no_grad(), torch.autocast(ids.device.type, dtype=dtype or torch.float32,
                                         enabled=dtype is not None):
        logits = teacher(ids)
    return torch.softmax(logits.float(), dim=-1)


def hardware(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {threads} thread(s)"


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                   fused: bool = False) -> torch.optim.AdamW:
    """Decay matrices only: decaying norm gains, biases or nothing else would only add noise.
    `fused`: one kernel for the whole update (CUDA), instead of a few per parameter group."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.95),
        fused=fused,
    )


def lr_at(s: TrainSettings, step: int, elapsed: float) -> float:
    """Linear warmup over `warmup` steps, then cosine to `min_lr_ratio * lr` as the budget ends."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = budget_progress(s, step, elapsed)
    floor = s.lr * s.min_lr_ratio
    return floor + (s.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def budget_progress(s: TrainSettings, step: int, elapsed: float) -> float:
    parts = []
    if s.steps:
        parts.append(step / s.steps)
    if s.minutes:
        parts.append(elapsed / (60 * s.minutes))
    return max(parts) if parts else 0.0


def evaluate(model, tiles: np.ndarray, device, dtype, chunk: int = 64,
             weights: torch.Tensor | None = None) -> tuple[float, float]:
    """(mean bits per subpixel over `tiles`, their mean weighted by `weights`, one per
    position; the plain mean again when None)."""
    model.eval()
    total, weighted, count, weight_sum = 0.0, 0.0, 0, 0.0
    w = None if weights is None else weights.to(device)
    with torch.no_grad():
        for i in range(0, len(tiles), chunk):
            ids, tgt = tokens_from_tiles(torch.from_numpy(tiles[i : i + chunk]).to(device))
            with torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                logits = model(ids)
            nll = F.cross_entropy(logits.float().transpose(1, 2), tgt, reduction="none")
            total += nll.sum().item()
            count += tgt.numel()
            if w is not None:
                weighted += (nll * w).sum().item()
                weight_sum += w.sum().item() * tgt.shape[0]
    model.train()
    plain = total / count / LN2
    return plain, (plain if w is None else weighted / weight_sum / LN2)


def _recorded(ckpt: dict, key: str, default, kinds: tuple):
    """A run setting as its checkpoint recorded it (`default` for checkpoints older than the
    setting); a value of another type is a damaged checkpoint, refused in one line."""
    value = ckpt["settings"].get(key, default)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise UsageError(f"--resume: the checkpoint's {key!r} is {type(value).__name__}, "
                         "not a setting igc wrote")
    return value


def check_same_teacher(ckpt: dict, s: TrainSettings, provenance: dict | None) -> None:
    """Refuse to resume a run against another target than it trained on: its optimizer state,
    its curve and its `best` belong to that teacher (or none) and that --distill share."""
    was = _recorded(ckpt, "teacher", None, (str,))
    if was is None and s.teacher is None:
        return
    if was is None or s.teacher is None:
        said = f"--teacher {was}" if was else "no --teacher"
        raise UsageError(f"--resume: the run was trained with {said}; give the same")
    known = ckpt.get("teacher")  # checkpoints before 2026-12-06 hold only the path
    if isinstance(known, dict) and isinstance(known.get("fingerprint"), str) and provenance:
        same, what = known["fingerprint"] == provenance["fingerprint"], "model"
    else:
        same, what = Path(was).resolve() == Path(s.teacher).resolve(), "path"
    if not same:
        raise UsageError(f"--resume: --teacher {s.teacher} is not the {what} the run was "
                         f"trained with ({was}); give that one")
    distill = _recorded(ckpt, "distill", 0.8, (int, float))
    if distill != s.distill:
        raise UsageError(f"--resume: the run was trained with --distill {distill:g}; "
                         f"give the same (not {s.distill:g})")


RUN_FILES = ("checkpoint.pt", "log.jsonl", "best", "last")  # what a run leaves in its folder


def check_run_folder(out: Path, resume: bool) -> None:
    """Refuse, before any data is read, a run folder the run could not write or would
    overwrite: a file, a folder under a file or an unwritable place, or another run's folder
    without --resume (its checkpoint, exports and log would be replaced or mixed). Any other
    folder, the current one included, is the run's."""
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out} is a file, not a run folder; give another --out")
        held = [name for name in RUN_FILES if (out / name).exists()] if out.is_dir() else []
        above = next((p for p in out.absolute().parents if p.exists()), None)
    except OSError as exc:
        raise UsageError(f"cannot use the run folder {out}: {exc.strerror or exc}") from None
    if held and not resume:
        how = ("pass --resume to continue it, or give another --out" if "checkpoint.pt" in held
               else "give another --out, or remove them")  # --resume needs the checkpoint
        raise UsageError(f"{out} holds a run already ({', '.join(held)}); {how}")
    if not out.exists() and above is not None and not (above.is_dir() and
                                                        os.access(above, os.W_OK | os.X_OK)):
        raise UsageError(f"cannot create the run folder {out}: {above} is not a writable folder")


class Trainer:
    """Holds the model, optimizer, data and counters; `run()` trains until the budget ends."""

    def __init__(
        self,
        s: TrainSettings,
        source: TileSource | None = None,
        val_tiles: np.ndarray | None = None,
        resume: bool = False,
        quiet: bool = False,
    ):
        if not s.minutes and not s.steps:
            raise UsageError("give a budget: --minutes and/or --steps")
        if (s.minutes or 0) < 0 or (s.steps or 0) < 0:
            raise UsageError(f"the budget must be positive: minutes {s.minutes}, steps {s.steps}")
        checked_seed(s.seed)
        checked_threads(s.threads)
        self.s, self.quiet = s, quiet
        self.out = Path(s.out)
        self.ckpt_path = self.out / "checkpoint.pt"
        check_run_folder(self.out, resume)
        ckpt, init_state, self.init_provenance = None, None, None
        if resume:
            if not self.ckpt_path.exists():
                raise UsageError(f"--resume: no checkpoint at {self.ckpt_path}")
            ckpt = load_checkpoint(self.ckpt_path)
            # The checkpoint's architecture wins: the weights only fit it.
            try:
                s.model = ModelConfig(**ckpt["settings"]["model"])
            except (TypeError, KeyError) as exc:
                raise UsageError(f"--resume: {self.ckpt_path} holds no usable model settings "
                                 f"({exc})") from None
            if s.model.arch not in ARCHES:
                raise UsageError(f"--resume: {self.ckpt_path} holds a model of unknown "
                                 f"architecture {s.model.arch!r}")
            self.init_provenance = ckpt.get("init_from")
            # `best` was chosen on the validation weighted as that run's loss was
            for key, flag in (("border_weight", "--border-weight"),
                              ("jpeg_downscale", "--jpeg-downscale")):
                was, now = _recorded(ckpt, key, 1.0, (int, float)), getattr(s, key)
                if was != now:
                    raise UsageError(f"--resume: the run was trained with {flag} {was:g}; "
                                     f"give the same (not {now:g})")
        elif s.init_from:
            # A warm start: the exported model's weights and architecture, with a fresh
            # optimizer, schedule and counters.
            s.model, init_state, self.init_provenance = load_pretrained(s.init_from)
            if s.grow_layers:
                s.model, init_state = grow_layers(s.model, init_state, s.grow_layers, s.seed)
                self.init_provenance = {**self.init_provenance, "grown_layers": s.grow_layers}
        elif s.grow_layers:
            raise UsageError("--grow-layers adds blocks to the model of --init-from: give one")
        if not 0.0 <= s.distill <= 1.0:
            raise UsageError(f"--distill must be between 0 and 1, got {s.distill}")
        if problem := jpeg_downscale_problem(s.jpeg_downscale):
            raise UsageError(problem)
        if not 0.0 <= s.border_weight <= 1.0:
            raise UsageError(f"--border-weight must be between 0 and 1, got {s.border_weight}")
        teacher_cfg, teacher_state, self.teacher_provenance = None, None, None
        if s.teacher:
            teacher_cfg, teacher_state, self.teacher_provenance = load_pretrained(s.teacher)
            if teacher_cfg.tile != s.model.tile:
                raise UsageError(f"--teacher {s.teacher} reads tiles of {teacher_cfg.tile}, the "
                                 f"model {s.model.tile}: their symbols must be the same")
        if ckpt is not None:
            check_same_teacher(ckpt, s, self.teacher_provenance)
        torch.set_num_threads(s.threads)
        self.device = pick_device(s.device)
        self.dtype = pick_dtype(s.precision, self.device)
        torch.manual_seed(s.seed)
        random.seed(s.seed)
        self.model = build_network(s.model)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.model.to(self.device)
        weights = position_weights(s.model.tile, s.border_weight)
        self.weights = None if weights is None else weights.to(self.device)
        self.opt = make_optimizer(self.model, s.lr, s.weight_decay,
                                  fused=self.device.type in ("cpu", "cuda"))
        # compiled for the training step only; validation and export use the module itself,
        # so checkpoints keep the module's parameter names
        self.compiled = compile_pays(s, self.device) if s.compile is None else s.compile
        self.train_loss = torch.compile(training_loss) if self.compiled else training_loss
        self.teacher = None
        if teacher_cfg is not None:
            self.teacher = build_network(teacher_cfg)
            self.teacher.load_state_dict(teacher_state)
            self.teacher.to(self.device).eval().requires_grad_(False)
        self.teacher_probs = torch.compile(teacher_probs) if self.compiled else teacher_probs
        self._compile_checked = not self.compiled
        self.rng = np.random.default_rng(s.seed)
        self.step, self.tokens, self.elapsed = 0, 0, 0.0
        self.best = float("inf")
        if ckpt is not None:
            try:
                self.model.load_state_dict(ckpt["model"])
                self.opt.load_state_dict(ckpt["optimizer"])
                self.step, self.tokens = ckpt["step"], ckpt["tokens"]
                self.elapsed, self.best = float(ckpt["elapsed"]), float(ckpt["best"])
                self.rng.bit_generator.state = ckpt["numpy_rng"]
                torch.set_rng_state(ckpt["torch_rng"])
                random.setstate(ckpt["python_rng"])
            except (RuntimeError, ValueError, TypeError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise UsageError(f"--resume: {self.ckpt_path} does not fit this run: "
                                 f"{type(exc).__name__} {first[:200]}") from None
        self.source = (source if source is not None
                       else load_training(s.data, s.model.tile, jpeg_downscale=s.jpeg_downscale))
        self.val_tiles = (
            val_tiles
            if val_tiles is not None
            else load_validation(s.val, s.model.tile, s.val_count,
                                 jpeg_downscale=s.jpeg_downscale)
        )
        note = self.source.too_small_note(s.jpeg_downscale)
        if note and not self.quiet:
            print(note, file=sys.stderr)
        self.sampler = Sampler(self.source, self.rng, s.small_fraction)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the run folder {self.out}: "
                             f"{exc.strerror or exc}") from None

    # -- persistence -------------------------------------------------------------------------

    def state(self) -> dict:
        s = asdict(self.s)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "tokens": self.tokens,
            "elapsed": self.elapsed,
            "best": self.best,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "settings": s,
            "init_from": self.init_provenance,
            "teacher": self.teacher_provenance,
        }

    def save_checkpoint(self) -> None:
        atomic_save(self.state(), self.ckpt_path)

    def export_best(self, val_bpsp: float, weighted: float | None = None) -> None:
        self.export("best", val_bpsp, weighted)

    def export(self, name: str, val_bpsp: float, weighted: float | None = None) -> None:
        """The model as it is now, to RUN/NAME: `best` at each better validation, `last` when
        the schedule ends (a validation set unlike the test images can pick a worse step).
        `weighted`: the validation weighted as the loss is (`--border-weight`), which chose it."""
        extra = {} if self.weights is None else {"val_weighted_bpsp": weighted,
                                                 "border_weight": self.s.border_weight}
        export_pretrained(
            self.model,
            export_config(self.s.model),
            self.out / name,
            extra={
                "step": self.step,
                "tokens": self.tokens,
                "elapsed_s": round(self.elapsed, 1),
                "val_bpsp": val_bpsp,
                "val": {"path": str(self.s.val), "tiles": len(self.val_tiles),
                        "jpeg_downscale": self.s.jpeg_downscale},
                "hardware": hardware(self.device, self.s.threads),
                "precision": str(self.dtype or torch.float32),
                "data": {"paths": [str(p) for p in self.s.data], **self.source.description,
                         "jpeg_downscale": self.s.jpeg_downscale},
                "tile": self.s.model.tile,
                "init_from": self.init_provenance,
                "teacher": (None if self.teacher is None
                            else {**self.teacher_provenance, "distill": self.s.distill}),
                "tokenization": "start token 256, then subpixels 0..255, RGB interleaved, raster order",
                **extra,
            },
        )

    def log(self, record: dict) -> None:
        line = json.dumps(record, allow_nan=False)  # strict JSON: NaN never reaches the log
        with open(self.out / "log.jsonl", "a") as f:
            f.write(line + "\n")

    # -- loop --------------------------------------------------------------------------------

    def next_batch(self) -> torch.Tensor:
        tiles = torch.from_numpy(self.sampler.batch(self.s.batch))
        if self.device.type == "cuda":  # copied while the GPU is still busy with earlier steps
            return tiles.pin_memory().to(self.device, non_blocking=True)
        return tiles

    def train_step(self) -> torch.Tensor:
        """One optimizer step; returns the loss as a tensor on the device. Reading it (`.item()`)
        would make the host wait for the GPU every step, so the caller reads it rarely."""
        s = self.s
        for g in self.opt.param_groups:
            g["lr"] = lr_at(s, self.step, self.elapsed)
        ids, tgt = tokens_from_tiles(self.next_batch())
        if self._compile_checked:
            loss, hard = self._loss(ids, tgt)
        else:
            loss, hard = self._first_compiled_loss(ids, tgt)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        self.tokens += tgt.numel()
        return hard.detach()

    def _loss(self, ids: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`training_loss` of the batch, against the teacher's probabilities if there is one."""
        soft = None if self.teacher is None else self.teacher_probs(self.teacher, ids, self.dtype)
        return self.train_loss(self.model, ids, tgt, self.dtype, soft, self.s.distill,
                               self.weights)

    def _first_compiled_loss(self, ids: torch.Tensor,
                             tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first compiled call compiles. If that fails (no C++ compiler, an unsupported
        build), an automatic choice falls back to the eager step with a note; an explicit
        --compile is an error."""
        try:
            out = self._loss(ids, tgt)
        except Exception as exc:  # torch.compile raises many kinds (InductorError, ...)
            lines = str(exc).strip().splitlines()
            reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
            if self.s.compile:
                raise UsageError(f"torch.compile failed ({reason[:200]}); train without "
                                 "--compile") from exc
            if not self.quiet:
                print(f"note: torch.compile failed ({reason[:200]}); training without it",
                      file=sys.stderr)
            self.compiled, self.train_loss = False, training_loss
            self.teacher_probs = teacher_probs
            out = self._loss(ids, tgt)
        self._compile_checked = True
        return out

    def done(self) -> bool:
        return budget_progress(self.s, self.step, self.elapsed) >= 1.0

    def check_finite(self, what: str, value: float | None) -> None:
        """Stop a diverged run (a NaN or infinite loss): its weights are lost, and NaN is not
        JSON, so nothing more is logged, exported or checkpointed."""
        if value is not None and not math.isfinite(value):
            raise IgcError(f"training diverged: the {what} is {value} at step {self.step} (lr "
                           f"{self.s.lr:g}); lower --lr, or resume from the last checkpoint")

    def validate(self, train_bpsp: float | None,
                 tokens_per_s: float | None = None) -> tuple[float, float]:
        """Log the validation and return (plain bpsp, bpsp weighted as the loss is); export
        `best` when the weighted one (the plain one unless --border-weight) is the lowest yet."""
        self.check_finite("training loss", train_bpsp)
        val, weighted = evaluate(self.model, self.val_tiles, self.device, self.dtype,
                                 weights=self.weights)
        self.check_finite("validation loss", weighted)
        rec = {
            "step": self.step,
            "tokens": self.tokens,
            "elapsed_s": round(self.elapsed, 1),
            "train_bpsp": train_bpsp,
            "val_bpsp": round(val, 5),
            "lr": lr_at(self.s, self.step, self.elapsed),
            "train_tokens_per_s": None if tokens_per_s is None else round(tokens_per_s),
        }
        if self.weights is not None:
            rec["val_weighted_bpsp"] = round(weighted, 5)
        if weighted < self.best:
            self.best = weighted
            self.export_best(val, weighted)
            rec["exported"] = True
        self.log(rec)
        return val, weighted

    def run(self) -> float:
        """Train to the end of the budget; returns the best validation bpsp (weighted as the
        loss is, with --border-weight). Interrupted
        (Ctrl-C, SIGINT), it saves a checkpoint first, so `--resume` continues from the last
        step, and raises KeyboardInterrupt."""
        import warnings

        # torch reports a backward pass cut short by Ctrl-C as a warning holding the forward's
        # stack (compiled steps record it); the one line the CLI prints says all that matters
        warnings.filterwarnings("ignore", message=r"Error detected in \w+Backward",
                                category=UserWarning)
        try:
            return self._run()
        except KeyboardInterrupt:
            self.interrupted_at = self.step
            if all(math.isfinite(p.detach().float().sum().item())
                   for p in self.model.parameters()):
                self.save_checkpoint()
                self.saved_on_interrupt = True
            raise

    interrupted_at: int | None = None
    saved_on_interrupt = False

    def _run(self) -> float:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        s = self.s
        # Validate the starting point at once, so a fresh run exports and logs within minutes.
        next_eval_t = self.elapsed if self.step == 0 else self.elapsed + 60 * s.eval_minutes
        next_eval_step = self.step + s.eval_every
        last_ckpt = time.monotonic()
        # `elapsed` is wall-clock (validation and checkpoints included), so a `minutes` budget
        # ends on time. The tokens/s figure leaves out validation and checkpoints; it is read
        # after a loss was read, which waits for the GPU, so queued work is counted too.
        t_start = time.monotonic() - self.elapsed
        t_run, paused = time.monotonic(), 0.0

        def train_time() -> float:
            return max(time.monotonic() - t_run - paused, 1e-9)

        tokens_at_start = self.tokens
        losses: list[torch.Tensor] = []
        val = self.best if self.best < float("inf") else None
        console = Console(stderr=True)
        next_line = 0.0
        progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            disable=self.quiet,
        )
        with progress:
            task = progress.add_task("", total=1.0)
            while True:
                finished = self.done()
                if finished or self.step >= next_eval_step or self.elapsed >= next_eval_t:
                    train_bpsp = (round(torch.stack(losses).mean().item() / LN2, 5)
                                  if losses else None)
                    rate = (self.tokens - tokens_at_start) / train_time() if losses else None
                    t0 = time.monotonic()
                    val, weighted = self.validate(train_bpsp, rate)
                    paused += time.monotonic() - t0
                    self.elapsed = time.monotonic() - t_start
                    losses = []
                    next_eval_step = self.step + s.eval_every
                    next_eval_t = self.elapsed + 60 * s.eval_minutes
                if finished:
                    break
                losses.append(self.train_step())
                self.elapsed = time.monotonic() - t_start
                if time.monotonic() - last_ckpt > 60 * s.checkpoint_minutes:
                    t0 = time.monotonic()
                    self.check_finite("training loss", losses[-1].item())  # no NaN checkpoint
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
                    paused += last_ckpt - t0
                if self.step % s.log_every == 0:
                    loss = losses[-1].item()
                    self.check_finite("training loss", loss)
                    rate = (self.tokens - tokens_at_start) / train_time()
                    line = (
                        f"step {self.step}  loss {loss / LN2:.3f} bpsp  "
                        f"val {val if val is None else f'{val:.4f}'}  {rate:,.0f} tok/s"
                    )
                    progress.update(
                        task,
                        completed=min(budget_progress(s, self.step, self.elapsed), 1.0),
                        description=line,
                    )
                    if not console.is_terminal and not self.quiet and time.monotonic() > next_line:
                        # Rich draws no live bar into a file; background runs get a line a minute.
                        print(f"{self.elapsed:8.0f}s  {line}", file=sys.stderr, flush=True)
                        next_line = time.monotonic() + 60
        self.save_checkpoint()
        self.export("last", val, weighted)
        if not self.quiet:
            what = "best val" if self.weights is None else "best weighted val"
            print(
                f"done: step {self.step}, {what} {self.best:.4f} bpsp, export in "
                f"{self.out / 'best'} (the last step's in {self.out / 'last'})",
                file=sys.stderr,
            )
        return self.best
