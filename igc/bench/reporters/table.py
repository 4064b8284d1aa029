"""Rich tables for the terminal: per-image rows, then one summary line per compressor."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _check(ok: bool | None) -> str:
    return {True: "[green]✓[/]", False: "[red]✗[/]", None: "—"}[ok]


class TableReporter:
    name = "table"
    description = "rich tables on stdout: every image × compressor, then a summary"

    def report(self, result: Any, destination: Any = None) -> None:
        console = destination if isinstance(destination, Console) else Console()
        if not console.is_terminal:  # piped or captured: don't squeeze columns to 80
            console = Console(width=160)
        rows = result.results
        detail = Table(title="Per image", title_justify="left")
        for col, justify in (("image", "left"), ("compressor", "left"), ("size", "right"),
                             ("bits", "right"), ("bpsp", "right"), ("ratio", "right"),
                             ("model bits", "right"), ("overhead", "right"), ("round trip", "center")):
            detail.add_column(col, justify=justify)
        for r in rows:
            if r.error and not r.compressed_bits:  # nothing was measured
                detail.add_row(r.image, r.compressor, f"{r.width}×{r.height}", "—", "—", "—",
                               "—", "—", f"[red]error: {escape(r.error)}[/]")
                continue
            ratio = _fmt(r.ratio)
            if r.ratio is not None and r.ratio < 1:
                ratio = f"[red]{ratio} (<1)[/]"
            bits = f"{r.compressed_bits:,}" + (" (est.)" if r.estimate else "")
            detail.add_row(
                r.image, r.compressor, f"{r.width}×{r.height}", bits, _fmt(r.bits_per_subpixel),
                ratio, "—" if r.model_bits is None else f"{r.model_bits:,.0f}",
                "—" if r.overhead_percent is None else f"{r.overhead_percent:+.2f}%",
                _check(r.roundtrip_ok) + (f" [red]{escape(r.error)}[/]" if r.error else ""))
        console.print(detail)

        summary = Table(title="Summary (ratio = original bits / compressed bits; bpsp = bits per "
                        "subpixel)", title_justify="left")
        for col in ("compressor", "images", "total ratio", "mean ratio", "bpsp", "model bpsp",
                    "overhead", "coder overhead", "encode subpx/s", "decode subpx/s",
                    "lossless ok"):
            summary.add_column(col, justify="left" if col == "compressor" else "right")
        for name, s in sorted(result.summary.items(), key=lambda kv: kv[1]["bits_per_subpixel"]):
            label = name + (" (estimate)" if s.get("estimate") else "")
            summary.add_row(
                label, str(s["images"]), _fmt(s["total_ratio"]), _fmt(s["mean_ratio"]),
                _fmt(s["bits_per_subpixel"]), _fmt(s.get("model_bits_per_subpixel")),
                "—" if "overhead_percent" not in s else f"{s['overhead_percent']:+.3f}%",
                "—" if "coder_overhead_percent" not in s
                else f"{s['coder_overhead_percent']:+.3f}%",
                f"{s['encode_subpixels_per_second']:,.0f}",
                "—" if "decode_subpixels_per_second" not in s
                else f"{s['decode_subpixels_per_second']:,.0f}",
                _check(s["roundtrip_ok"]))
        console.print(summary)
        notes = []
        env = result.environment
        notes.append(f"preprocessing: {env.get('preprocessing', 'none')}")
        if any("coder_overhead_percent" in s for s in result.summary.values()):
            notes.append("overhead: (file bits − model bits) / model bits, header included; coder "
                         "overhead: the same for the payload alone")
        for name, info in env.get("models", {}).items():
            parts = [f"fingerprint {info['fingerprint']}"]
            if info.get("parameters") is not None:
                parts.append(f"{info['parameters']:,} parameters")
            parts.append(f"{info['tile']}×{info['tile']} tiles")
            if info.get("tokenizer") not in (None, "subpixel"):
                parts.append(f"{info['mode']} tokens")
            if info.get("coder") not in (None, "range"):
                parts.append(f"coder {info['coder']}")
            notes.append(f"{name}: model {info['model']} ({', '.join(parts)})")
        for r in rows:  # the lossy palette mode: quality, and classical codecs on the same pixels
            if getattr(r, "extra", {}).get("psnr") is not None:
                png, jxl = r.extra.get("png_bits_quantized"), r.extra.get("jxl_bits_quantized")
                notes.append(f"{r.compressor} on {r.image}: lossy, PSNR {r.extra['psnr']:.2f} dB; "
                             f"same quantized image: png {png or '—'} bits, jxl {jxl or '—'} bits")
        if any(s.get("estimate") for s in result.summary.values()):
            notes.append("(estimate): compressed bits are the model's code length −Σlog2 p; "
                         "no file was written")
        for image in result.images:
            if image.get("note"):
                notes.append(f"{image['image']}: {image['note']}")
        for name, s in result.summary.items():
            if s["below_ratio_1"]:
                notes.append(f"[red]{name} expands {len(s['below_ratio_1'])} image(s)[/]: "
                             + ", ".join(s["below_ratio_1"]))
        for name, reason in result.unavailable.items():
            notes.append(f"[yellow]{name} skipped[/]: {reason}")
        for note in notes:
            console.print(note, highlight=False)
