"""Machine-readable reports: JSON (exactly `BenchResult.to_dict()`), CSV, Markdown, a bar chart."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from igc.errors import UsageError

CSV_FIELDS = ("image", "compressor", "height", "width", "original_bits", "compressed_bits",
              "bits_per_subpixel", "ratio", "lossless", "roundtrip_ok", "model_bits",
              "overhead_percent", "estimate", "encode_seconds", "decode_seconds", "error")


def _write(text: str, destination: Any) -> None:
    if destination is None or destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text)


class JsonReporter:
    name = "json"
    description = "the library's result dict as JSON"

    def report(self, result: Any, destination: Any = None) -> None:
        _write(json.dumps(result.to_dict(), indent=2) + "\n", destination)


class CsvReporter:
    name = "csv"
    description = "one CSV row per image × compressor"

    def report(self, result: Any, destination: Any = None) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in result.results:
            writer.writerow(vars(row))
        _write(buffer.getvalue(), destination)


class MarkdownReporter:
    name = "markdown"
    description = "a Markdown summary table, ready for a README"

    def report(self, result: Any, destination: Any = None) -> None:
        lines = ["| compressor | images | total ratio | mean ratio | bits/subpixel | lossless ok |",
                 "|---|---:|---:|---:|---:|:---:|"]
        for name, s in sorted(result.summary.items(), key=lambda kv: kv[1]["bits_per_subpixel"]):
            label = name + (" (estimate)" if s.get("estimate") else "")
            lines.append(f"| {label} | {s['images']} | {s['total_ratio']:.3f} | "
                         f"{s['mean_ratio']:.3f} | {s['bits_per_subpixel']:.3f} | "
                         f"{ {True: 'yes', False: 'NO', None: 'not checked'}[s['roundtrip_ok']] } |")
        _write("\n".join(lines) + "\n", destination)


class PlotReporter:
    name = "plot"
    description = "bar chart of the ratio per image and compressor, with the ratio-1 line (PNG)"

    def report(self, result: Any, destination: Any = None) -> None:
        if destination is None:
            raise UsageError("the plot reporter needs an output file, e.g. --plot ratios.png")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'igc-codec[plot]'") from None
        import numpy as np

        images = list(dict.fromkeys(r.image for r in result.results))
        names = list(dict.fromkeys(r.compressor for r in result.results))
        width = 0.8 / max(len(names), 1)
        fig, ax = plt.subplots(figsize=(max(6, len(images) * 0.9 + 2), 4.5))
        x = np.arange(len(images))
        for k, name in enumerate(names):
            ratios = {r.image: r.ratio or 0 for r in result.results if r.compressor == name}
            ax.bar(x + (k - (len(names) - 1) / 2) * width, [ratios.get(i, 0) for i in images],
                   width, label=name)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="ratio 1")
        ax.set_xticks(x, images, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("compression ratio (original / compressed)")
        ax.set_title("Lossless compression ratio per image")
        ax.legend(fontsize=8, ncols=min(len(names) + 1, 4))
        fig.tight_layout()
        fig.savefig(destination, dpi=120)
        plt.close(fig)
