"""Helpers shared by the tests: running the CLI, reading its one-line errors, forging headers.

Test modules import these (`from helpers import invoke, error_line`) instead of from each other.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from igc.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def invoke(*args, env=None, input=None):
    """Run `igc ARGS` in-process, 80 columns wide; every argument is passed as a string."""
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})},
                         input=input)


def error_line(result) -> str:
    """The single `igc: error:` line of a failed command (asserting that is all it printed)."""
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), result.output
    assert "Traceback" not in result.output and "unexpected" not in lines[0], result.output
    return lines[0]


def error_text(stderr: str) -> str:
    """The single `igc: error:` line of a subprocess's standard error."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error: "), stderr
    assert "Traceback" not in stderr and "unexpected" not in lines[0], stderr
    return lines[0]


@cache
def fuzz_script():
    """scripts/fuzz_decoder.py as a module (the long fuzz run's driver and its mutations)."""
    path = ROOT / "scripts" / "fuzz_decoder.py"
    spec = importlib.util.spec_from_file_location("fuzz_decoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recompute_header_crc(data: bytes) -> bytes:
    """`data` with its header CRC recomputed where the header parses that far: a forged header
    then gets past the CRC and reaches the field checks."""
    return fuzz_script().recompute_header_crc(data)


def rgb(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    """Random uint8 RGB pixels."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int, height: int, depth: int = 8, body: bytes = b"\x00" * 10) -> bytes:
    """A hand-made RGB PNG whose header claims width x height (the data need not match)."""
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(body)) + png_chunk(b"IEND", b""))


def file_fingerprint(path: Path) -> str:
    """The model fingerprint an .igc file's header records."""
    from igc.core import container

    return container.unpack(Path(path).read_bytes())[0].fingerprint


def igc_process(*args, stdout=subprocess.PIPE, stdin=None, env=None, text=False
                ) -> subprocess.Popen:
    """`python -m igc ARGS` in a subprocess of this checkout (real file descriptors and
    signals, which the in-process runner does not have); standard error is a pipe."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "igc", *map(str, args)], stdout=stdout,
                            stderr=subprocess.PIPE, stdin=stdin, env=full_env, text=text,
                            preexec_fn=default_sigint)


def spawn(args, **options) -> subprocess.Popen:
    """`subprocess.Popen` whose child takes SIGINT as a Ctrl-C (see `default_sigint`)."""
    return subprocess.Popen(args, preexec_fn=default_sigint, **options)


def default_sigint() -> None:
    """In the child: SIGINT raises KeyboardInterrupt even when the test run was started in the
    background, where the shell makes every job ignore SIGINT (and Python then keeps it
    ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_args(folder: Path, architecture: bool = True) -> list:
    """`igc train` arguments for a run of 2 steps on 8 random 8x8 images written to `folder`
    (with `architecture`, a 1-layer model of width 16 on 4x4 tiles)."""
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    np.savez(folder / "train.npz", images=images)
    np.savez(folder / "val.npz", images=images[:2])
    return ["train", "--data", folder / "train.npz", "--val", folder / "val.npz",
            "--val-count", "4", "--batch", "2", "--steps", "2", "--device", "cpu",
            *(["--width", "16", "--layers", "1", "--heads", "2", "--tile", "4"]
              if architecture else [])]


def train_error(result) -> str:
    """The one error line of `igc train` (its progress bar is drawn on standard error too)."""
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("igc: error: "), result.output
    assert "Traceback" not in result.output and "unexpected" not in errors[0], result.output
    return errors[0]


# -- models and images the tests build ----------------------------------------------------


def make_tiny_model(folder, *, tile: int = 4, width: int = 32, layers: int = 2, heads: int = 4,
                    seed: int = 0, scale: float = 1.0) -> str:
    import torch
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    torch.manual_seed(seed)
    config = ImageGPTConfig(vocab_size=257, n_positions=tile * tile * 3, n_embd=width,
                            n_layer=layers, n_head=heads)
    model = ImageGPTForCausalImageModeling(config).eval()
    # Spread the random logits so the model is far from uniform, as a trained one is.
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
        if scale != 1.0:  # weights far outside training's range (saturation tests)
            for p in model.parameters():
                p.mul_(scale)
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth gradients plus mild noise, so codecs have something to find."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 3 + y, 128 + 60 * np.sin(x / 7.0), y * 2 + 40], axis=-1)
    return np.clip(base + r.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


def make_palette_model(folder, *, seed: int = 0, cluster_seed: int = 0) -> str:
    import torch
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling, ImageGPTImageProcessor

    torch.manual_seed(seed)
    config = ImageGPTConfig(vocab_size=513, n_positions=1024, n_embd=32, n_layer=2, n_head=4)
    model = ImageGPTForCausalImageModeling(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(10)  # far from uniform, like a trained model
    model.save_pretrained(folder)
    clusters = np.random.default_rng(cluster_seed).uniform(-1, 1, (512, 3)).astype(np.float32)
    ImageGPTImageProcessor(clusters=clusters, size={"height": 32, "width": 32}).save_pretrained(
        folder)
    return str(folder)


def ramp_images(n: int, side: int = 8, seed: int = 0) -> np.ndarray:
    """Predictable images: one of four base colours plus a small horizontal ramp."""
    rng = np.random.default_rng(seed)
    base = rng.choice([10, 60, 120, 200], (n, 1, 1, 3))
    ramp = np.arange(side)[None, None, :, None] * 4
    return np.broadcast_to(base + ramp, (n, side, side, 3)).astype(np.uint8)


def pixel_trainer(out, resume: bool = False, **kw):
    """A Trainer of a tiny pixel model (width 32, 2 layers, 4x4 tiles) on ramp images."""
    from igc.models.network import ModelConfig
    from igc.training.data import TileSource
    from igc.training.trainer import Trainer, TrainSettings

    tiny = ModelConfig(width=32, layers=2, heads=2, tile=4, arch="pixel")
    settings = dict(model=tiny, out=str(out), steps=4, batch=8, warmup=2, threads=1,
                    device="cpu", precision="fp32", eval_every=2, eval_minutes=1000.0)
    settings.update(kw)
    return Trainer(TrainSettings(**settings), source=TileSource(tile=4, stacks=[ramp_images(64)]),
                   val_tiles=ramp_images(16, 4, seed=1), resume=resume, quiet=True)
