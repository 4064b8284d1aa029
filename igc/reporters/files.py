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

    def render(self, result: Any) -> str:
        return json.dumps(result.to_dict(), indent=2) + "\n"

    def report(self, result: Any, destination: Any = None) -> None:
        _write(self.render(result), destination)


class CsvReporter:
    name = "csv"
    description = "one CSV row per image × compressor"

    def render(self, result: Any) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in result.results:
            writer.writerow(vars(row))
        return buffer.getvalue()

    def report(self, result: Any, destination: Any = None) -> None:
        _write(self.render(result), destination)


class MarkdownReporter:
    name = "markdown"
    description = "a Markdown summary table, ready for a README"

    def report(self, result: Any, destination: Any = None) -> None:
        _write(self.render(result), destination)

    def render(self, result: Any) -> str:
        from igc.reporters.notes import notes

        lines = ["| compressor | images | bits/subpixel | total ratio | mean ratio | round trip |",
                 "|---|---:|---:|---:|---:|:---:|"]
        for name, s in sorted(result.summary.items(), key=lambda kv: kv[1]["bits_per_subpixel"]):
            label = name + (" (estimate)" if s.get("estimate") else "")
            lines.append(f"| {label} | {s['images']} | {s['bits_per_subpixel']:.3f} | "
                         f"{s['total_ratio']:.3f} | {s['mean_ratio']:.3f} | "
                         f"{ {True: 'exact', False: 'FAILED', None: 'not checked'}[s['roundtrip_ok']] } |")
        lines.append("")  # the same notes as under the terminal's table
        lines += [f"- {_markdown_text(text)}" for text, _ in notes(result)]
        return "\n".join(lines) + "\n"


def _markdown_text(text: str) -> str:
    """A note as Markdown text: characters Markdown would read as markup are escaped."""
    for char in "\\`*_[]<>|":
        text = text.replace(char, "\\" + char)
    return text


# past this many images a chart of bars per image is unreadable (300 images made a 32,640-pixel
# PNG): the per-image panel becomes the distribution of the ratios (a box plot per compressor)
MAX_BARS_IMAGES = 30
MAX_WIDTH_INCHES = 16  # 1,920 pixels at the saved 120 dpi
DPI = 120


def _label(name: str, summary: dict) -> str:
    return name + (" (estimate)" if summary.get(name, {}).get("estimate") else "")


def figure(result: Any) -> Any:
    """The plot's matplotlib figure: ratios per image (bars, or their distribution past
    MAX_BARS_IMAGES images) beside each compressor's total ratio, titled with what was measured
    (models, preprocessing, images, seed); estimates are hatched and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from igc.reporters.notes import model_note, run_line

    images = list(dict.fromkeys(r.image for r in result.results))
    names = list(dict.fromkeys(r.compressor for r in result.results))
    summary = result.summary
    many = len(images) > MAX_BARS_IMAGES
    width = min(MAX_WIDTH_INCHES, max(10.0, (4 if many else len(images) * 0.9) + 5))
    fig, (ax, total) = plt.subplots(1, 2, figsize=(width, 5.5), width_ratios=[3, 1],
                                    layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hatch = {n: "//" if summary.get(n, {}).get("estimate") else None for n in names}
    if many:
        data = [[r.ratio for r in result.results if r.compressor == n and r.ratio]
                for n in names]
        box = ax.boxplot(data, patch_artist=True, tick_labels=[_label(n, summary) for n in names])
        for k, patch in enumerate(box["boxes"]):
            patch.set(facecolor=colours[k % len(colours)], alpha=0.6, hatch=hatch[names[k]])
        ax.set_title(f"Ratio per image: distribution over {len(images)} images", fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    else:
        bar = 0.8 / max(len(names), 1)
        x = np.arange(len(images))
        for k, name in enumerate(names):
            ratios = {r.image: r.ratio or 0 for r in result.results if r.compressor == name}
            ax.bar(x + (k - (len(names) - 1) / 2) * bar, [ratios.get(i, 0) for i in images], bar,
                   label=_label(name, summary), color=colours[k % len(colours)],
                   hatch=hatch[name])
        ax.set_xticks(x, images, rotation=30, ha="right", fontsize=7 if len(images) > 12 else 8)
        ax.set_title("Ratio per image", fontsize=10)
        ax.legend(fontsize=8, ncols=min(len(names), 3))
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_ylabel("compression ratio (original / compressed; 1 = no gain)")
    ordered = sorted((n for n in names if n in summary),
                     key=lambda n: -summary[n]["total_ratio"])
    bars = total.bar(range(len(ordered)), [summary[n]["total_ratio"] for n in ordered],
                     color=[colours[names.index(n) % len(colours)] for n in ordered])
    for rect, name in zip(bars, ordered, strict=True):
        rect.set_hatch(hatch[name])
        total.annotate(f"{summary[name]['total_ratio']:.3f}",
                       (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                       ha="center", va="bottom", fontsize=7)
    total.set_xticks(range(len(ordered)),
                     [f"{_label(n, summary)}\n{summary[n]['bits_per_subpixel']:.3f} bpsp"
                      for n in ordered], rotation=30, ha="right", fontsize=7)
    total.axhline(1.0, color="black", linestyle="--", linewidth=1)
    total.set_title("Total ratio", fontsize=10)
    total.margins(y=0.2)
    env = result.environment
    lines = [f"preprocessing: {env.get('preprocessing', 'none')}", run_line(result)]
    lines += [model_note(n, info, None) for n, info in env.get("models", {}).items()]
    if any(s.get("estimate") for s in summary.values()):
        lines.append("hatched, (estimate): the model's code length −Σlog2 p, no file written")
    fig.suptitle("Lossless compression ratio\n" + "\n".join(lines), fontsize=8)
    return fig


class PlotReporter:
    name = "plot"
    description = ("chart of the ratio per image (a distribution past 30 images) and per "
                   "compressor, titled with models, preprocessing and images (PNG)")

    def report(self, result: Any, destination: Any = None) -> None:
        if destination is None:
            raise UsageError("the plot reporter needs an output file, e.g. --plot ratios.png")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'igc-codec[plot]'") from None
        import matplotlib.pyplot as plt

        fig = figure(result)
        # the format named, so that a name without a suffix is a PNG under that very name
        # (matplotlib would add '.png' to it) and a temporary name draws what its suffix says
        fmt = Path(destination).suffix.lstrip(".").lower() or "png"
        fig.savefig(destination, dpi=DPI, format=fmt)
        plt.close(fig)
