"""Rich tables for the terminal: per-image rows, then the summary, then the notes.

At 80 columns every number is printed whole: the default columns are the ones a reader compares
(size, bits per subpixel, ratio, speed, whether the round trip was exact); only names wrap. The
rest (bits, model bits, overheads, times, mean ratio) come with `wide=True` (`igc bench --wide`),
which widens the table past the terminal rather than cut a number, and are all in JSON and CSV.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from igc.reporters.notes import notes

STYLES = {"": "", "warn": "yellow", "bad": "red"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _check(ok: bool | None, error: bool = False) -> Text:
    if error and ok is not False:
        return Text("error", style="red")
    return {True: Text("✓", style="green"), False: Text("✗", style="red"),
            None: Text("—")}[ok]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _number(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True)


def _name(table: Table, header: str, ratio: int = 1) -> None:
    table.add_column(header, overflow="fold", ratio=ratio)


TEXT_WIDTH = 120  # a table written to a file: no terminal to take the width from


class TableReporter:
    name = "table"
    description = "rich tables on stdout: every image × compressor, then a summary and notes"

    def __init__(self, wide: bool = False) -> None:
        self.wide = wide

    def report(self, result: Any, destination: Any = None) -> None:
        if isinstance(destination, str | os.PathLike):  # a file: the tables as plain text
            with open(destination, "w", encoding="utf-8") as fh:
                self.report(result, Console(file=fh, width=TEXT_WIDTH))
            return
        console = destination if isinstance(destination, Console) else Console()
        detail, summary = self.detail(result), self.summary(result)
        if self.wide:  # wider than the terminal rather than a number cut
            unbounded = console.options.update_width(10_000)
            needed = max(Measurement.get(console, unbounded, t).maximum
                         for t in (detail, summary))
            if needed > console.width:
                console = Console(width=needed, file=console.file)
        console.print(Text(f"Per image: {_count(len(result.images), 'image')} × "
                           f"{_count(len(result.summary), 'compressor')}", style="italic"))
        console.print(detail)
        console.print(Rule("Summary", characters="═"))
        console.print(Text("bpsp and ratio over all images; speeds in subpixels per second",
                           style="italic"))
        console.print(summary)
        for text, style in notes(result):
            console.print(Text(text, style=STYLES[style]))

    def detail(self, result: Any) -> Table:
        table = Table()
        _name(table, "image", ratio=2)
        _name(table, "compressor")
        for header in ("size", "bytes", "bpsp", "ratio"):
            _number(table, header)
        if self.wide:
            for header in ("bits", "model bits", "overhead", "encode s", "decode s"):
                _number(table, header)
        table.add_column("exact", justify="center", no_wrap=True)
        for r in result.results:
            cells: list[Any] = [r.image, r.compressor, f"{r.width}×{r.height}"]
            if not r.compressed_bits:  # nothing was measured
                cells += ["—"] * (4 + 5 * self.wide)
            else:
                size = r.compressed_bits / 8
                cells.append(f"≈{size:,.0f}" if r.estimate else f"{size:,.0f}")
                ratio = Text(_fmt(r.ratio), style="red" if r.ratio < 1 else "")
                cells += [_fmt(r.bits_per_subpixel), ratio]
                if self.wide:
                    cells += [f"{r.compressed_bits:,}",
                              "—" if r.model_bits is None else f"{r.model_bits:,.0f}",
                              "—" if r.overhead_percent is None
                              else f"{r.overhead_percent:+.2f}%",
                              f"{r.encode_seconds:.3f}",
                              "—" if r.decode_seconds is None else f"{r.decode_seconds:.3f}"]
            cells.append(_check(r.roundtrip_ok, bool(r.error)))
            table.add_row(*cells)
        return table

    def summary(self, result: Any) -> Table:
        table = Table()
        _name(table, "compressor")
        for header in ("images", "bpsp", "ratio"):
            _number(table, header)
        if self.wide:
            for header in ("mean ratio", "model bpsp", "overhead", "coder overhead",
                           "header bytes"):
                _number(table, header)
        for header in ("encode/s", "decode/s"):
            _number(table, header)
        table.add_column("exact", justify="center", no_wrap=True)
        for name, s in sorted(result.summary.items(),
                              key=lambda kv: kv[1]["bits_per_subpixel"]):
            label = name + (" (estimate)" if s.get("estimate") else "")
            cells: list[Any] = [label, str(s["images"]), _fmt(s["bits_per_subpixel"]),
                                _fmt(s["total_ratio"])]
            if self.wide:
                cells += [_fmt(s["mean_ratio"]), _fmt(s.get("model_bits_per_subpixel")),
                          "—" if "overhead_percent" not in s
                          else f"{s['overhead_percent']:+.3f}%",
                          "—" if "coder_overhead_percent" not in s
                          else f"{s['coder_overhead_percent']:+.3f}%",
                          str(s.get("max_header_bytes", "—"))]
            cells += [f"{s['encode_subpixels_per_second']:,.0f}",
                      "—" if "decode_subpixels_per_second" not in s
                      else f"{s['decode_subpixels_per_second']:,.0f}",
                      _check(s["roundtrip_ok"], bool(s.get("errors")))]
            table.add_row(*cells)
        return table
