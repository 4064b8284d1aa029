"""The notes under a bench table, shared by the terminal table and the Markdown report so both
say the same: what was measured (preprocessing, models, estimates), what went wrong (errors,
codecs that expand an image, codecs skipped) and the run itself (images used of those available,
seed, wall time)."""

from __future__ import annotations

from typing import Any

# a note's style on the terminal: "" plain, "warn" yellow, "bad" red
Note = tuple[str, str]


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:04.1f} s"


def model_note(name: str, info: dict, summary: dict | None) -> str:
    """`imagegpt: model igc-rgb16-v2 (fingerprint …, 956,160 parameters, 16×16 tiles); model
    code length 3.614 bits/subpixel, files +0.93% over it (coder alone +0.031%)`."""
    parts = [f"fingerprint {info['fingerprint']}"]
    if info.get("parameters") is not None:
        parts.append(f"{info['parameters']:,} parameters")
    parts.append(f"{info['tile']}×{info['tile']} tiles")
    if info.get("tokenizer") not in (None, "subpixel"):
        parts.append(f"{info['mode']} tokens")
    if info.get("coder") not in (None, "range"):
        parts.append(f"coder {info['coder']}")
    if info.get("numerics") is not None:
        engine = f", engine {info['engine']}" if info.get("engine") else ""
        parts.append(f"numerics {info['numerics']}: {info.get('numerics_name', '')}{engine}")
    if info.get("context"):
        parts.append(f"context {info['context']}")
    text = f"{name}: model {info['model']} ({', '.join(parts)})"
    s = summary or {}
    if s.get("model_bits_per_subpixel") is not None:
        text += f"; model code length {s['model_bits_per_subpixel']:.3f} bits/subpixel"
        if "overhead_percent" in s:
            text += f", files {s['overhead_percent']:+.2f}% over it"
            if "coder_overhead_percent" in s:
                text += f" (the coder alone {s['coder_overhead_percent']:+.3f}%, the rest headers)"
    return text


def run_line(result: Any) -> str:
    """`10 of 24 images (seed 0), 72.3 s wall`: what the run covered and how long it took."""
    env = result.environment
    used = len(result.images) or len({r.image for r in result.results})
    available = max(env.get("images_available") or 0, used)
    text = f"{used} of {available} images"
    if env.get("seed") is not None:
        text += f" (picked with seed {env['seed']})" if available > used else \
            f" (seed {env['seed']})"
    if env.get("wall_seconds") is not None:
        text += f", {seconds(env['wall_seconds'])} wall"
    if env.get("workers"):
        text += f" on {env['workers']} worker processes"
    return text


def notes(result: Any) -> list[Note]:
    """Every note, in the order the reports print them, the run's line last."""
    out: list[Note] = []
    env = result.environment
    summary = result.summary
    out.append((f"preprocessing: {env.get('preprocessing', 'none')}", ""))
    out.append(("bpsp: bits per subpixel (compressed bits / (height × width × 3)); ratio: "
                "original bits / compressed bits, over all images", ""))
    for name, info in env.get("models", {}).items():
        out.append((model_note(name, info, summary.get(name)), ""))
    if any(s.get("estimate") for s in summary.values()):
        out.append(("estimate (≈): the model's code length −Σlog2 p from one parallel pass; no "
                    "file was written or decoded", "warn"))
    for r in result.results:  # the lossy palette mode: quality, classical codecs on its pixels
        extra = getattr(r, "extra", {}) or {}
        if extra.get("psnr") is not None:
            png, jxl = extra.get("png_bits_quantized"), extra.get("jxl_bits_quantized")
            out.append((f"{r.compressor} on {r.image}: lossy, PSNR {extra['psnr']:.2f} dB; same "
                        f"quantized image: png {png or '—'} bits, jxl {jxl or '—'} bits", ""))
    for image in result.images:
        if image.get("note"):
            out.append((f"{image['image']}: {image['note']}", ""))
    for r in result.results:
        if r.error:
            out.append((f"{r.compressor} on {r.image}: error: {r.error}", "bad"))
    for name, s in summary.items():
        if s["below_ratio_1"]:
            out.append((f"{name} expands {len(s['below_ratio_1'])} image(s): "
                        + ", ".join(s["below_ratio_1"]), "bad"))
    for name, reason in result.unavailable.items():
        out.append((f"{name} skipped: {reason}", "warn"))
    out.append((run_line(result), ""))
    return out
