"""`igc compress`: images to `.igc` files, one or many (igc/cli/files.py says how)."""

from __future__ import annotations

from pathlib import Path

import typer

from igc.cli.base import CONTEXT, STRIP_ROWS
from igc.cli.errors import handle_errors
from igc.cli.files import (
    ENGINE,
    FORCE,
    QUIET,
    STDIN,
    THREADS,
    WORKERS,
    Job,
    Output,
    begin,
    bits_per_subpixel,
    check_outputs,
    plan,
    run,
    shown,
    workers_for,
    write,
)


def default_output(source: Path) -> Path:
    """a.png -> a.png.igc, beside the input (or in --out-dir)."""
    return source.with_name(source.name + ".igc")


@handle_errors
def compress(
    sources: list[str] = typer.Argument(..., metavar="IMAGE",
                                        help="Images (PNG, JPEG, ...), folders of images, or - "
                                             "for standard input.", show_default=False),
    output: Path = typer.Option(None, "--output", "-o", metavar="FILE",
                                help="Output file for one image; - for standard output "
                                     "(default: IMAGE.igc beside the image)."),
    out_dir: Path = typer.Option(None, "--out-dir", "-d", metavar="DIR",
                                 help="Write every output into this folder (created if "
                                      "missing) as NAME.igc."),
    model: str = typer.Option(None, "--model", "-m", metavar="NAME",
                              help="A model: a shipped one's name (see `igc models`), a registered "
                                   "model plugin's name (see `igc plugins`), or an ImageGPT "
                                   "folder or hub id. Default: the shipped default, whose "
                                   "photo model codes images of 768×512 pixels and up "
                                   "(`igc models` marks it)."),
    tokenizer: str = typer.Option(None, "--tokenizer", metavar="NAME",
                                  help="Registered tokenizer (default: the model's own)."),
    coder: str = typer.Option(None, "--coder", metavar="NAME",
                              help="Registered coder (default: range)."),
    order: str = typer.Option("interleaved", "--order", help="interleaved or channel."),
    force: bool = FORCE,
    mode: str = typer.Option(None, "--mode",
                             help="Palette models: 'lossless' (default) or 'palette' (lossy: "
                                  "nearest-cluster colours only)."),
    paper_size: bool = typer.Option(False, "--paper-size",
                                    help="Resize the image to 32×32 first (ImageGPT paper "
                                         "setting; the file holds the resized image)."),
    context: int = CONTEXT,
    strip_rows: int = STRIP_ROWS,
    threads: int = THREADS,
    engine: str = ENGINE,
    quiet: bool = QUIET,
    workers: int = WORKERS,
) -> None:
    """Compress images into .igc files (lossless unless --mode palette).

    Prints one line per file (size, bits per subpixel, time) and, on a terminal, a progress bar with an ETA while the model codes.
    """
    params = dict(locals())  # the command again, on each --workers process
    from igc import api

    jobs = plan(sources, output=output, out_dir=out_dir, default_output=default_output,
                folder_files=api.folder_images,
                looked_for=", ".join(f"*{e}" for e in api.image_extensions()))
    workers = workers_for(jobs, workers)

    started = begin(jobs, compress, params, workers=workers, out_dir=out_dir, threads=threads,
                    engine=engine, quiet=quiet,
                    check=lambda: check_outputs(jobs, force=force, out_dir=out_dir,
                                                binary="an .igc file"))
    if started is None:
        return
    reporter, group = started
    comp = None
    if any(not j.error for j in jobs):
        with reporter.status("loading the model"):
            comp = api.compressor(model, order=order, mode=mode, tokenizer=tokenizer,
                                  coder=coder, context=context, strip_rows=strip_rows)

    def work(job: Job, report: Output) -> list[str]:
        loaded = _load(job)
        if paper_size:
            loaded = _paper_size(loaded)
        result = comp.compress_with_stats(loaded.pixels, report.tokens(_name(job)))
        write(job.output, result.data, force)
        h, w = loaded.pixels.shape[:2]
        note = f" ({loaded.note})" if loaded.note else ""
        lines = [f"{job.label} -> {shown(job.output)}: {w}×{h}{note}, {len(result.data):,} "
                 f"bytes, {bits_per_subpixel(len(result.data), h, w)}, ratio "
                 f"{h * w * 24 / (len(result.data) * 8):.3f}"]
        for key, value in api.report_fields(comp, result, loaded.pixels).items():
            if key == "psnr":
                lines.append(f"  lossy palette mode: PSNR {value:.2f} dB against the input")
            elif key.endswith("_bits"):
                lines.append(f"  {key.replace('_', ' ')}: {value:,.0f}")
        return lines

    run(jobs, work, reporter, verb="compressed", group=group)


def _load(job: Job):
    from igc.core.image import load_image, load_image_data, read_image_stream

    if job.source is None:
        data = read_image_stream(typer.get_binary_stream("stdin"), label=STDIN)
        return load_image_data(data, strict=True, label=STDIN)
    return load_image(job.source, strict=True)


def _paper_size(loaded):
    from igc.core.palette import PAPER_SIZE, resize_to_paper

    h, w = loaded.pixels.shape[:2]
    loaded.pixels = resize_to_paper(loaded.pixels)
    loaded.note = ", ".join(filter(None, [loaded.note, f"resized from {w}×{h} to "
                                          f"{PAPER_SIZE}×{PAPER_SIZE} (--paper-size)"]))
    return loaded


def _name(job: Job) -> str:
    return job.label if job.source is None else job.source.name
