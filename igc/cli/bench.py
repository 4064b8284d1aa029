"""`igc bench`: compressors side by side on the same images."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from igc.cli.base import CONTEXT
from igc.cli.errors import handle_errors

DEFAULT_COMPRESSORS = "imagegpt,png,zstd,webp,jxl"
GALLERY_CROP = 64
DEFAULT_COUNT = 10


@handle_errors
def bench(
    compressors: str = typer.Option(DEFAULT_COMPRESSORS, "--compressors", "-c",
                                    help="Comma-separated compressor names (see `igc plugins`)."),
    images: list[str] = typer.Option(None, "--images", "-i",
                                     help="Image files, folders or .npz arrays; repeatable. "
                                          "Default: photos bundled with scikit-image."),
    count: int = typer.Option(None, "--count", "-n",
                              help="How many images to pick at random (default: 10, or all if "
                                   "the source has fewer)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random pick."),
    model: str = typer.Option(None, "--model", "-m",
                              help="The imagegpt compressor's model: a shipped name (see `igc "
                                   "models`), local folder or hub id (default: the shipped "
                                   "default, with its photo model on images of 768×512 "
                                   "pixels and up). Other model plugins are made with their "
                                   "default."),
    tokenizer: str = typer.Option(None, "--tokenizer",
                                  help="Registered tokenizer for the model-based compressors "
                                       "(default: each model's own)."),
    coder: str = typer.Option(None, "--coder",
                              help="Registered coder for the model-based compressors (default: "
                                   "range)."),
    crop: int = typer.Option(None, "--crop",
                             help=f"Center-crop every image to at most N×N pixels before coding "
                                  f"(all compressors alike). Default: {GALLERY_CROP} for the "
                                  "bundled gallery, none for --images; 0 = full resolution."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Decode lossless outputs and compare pixels."),
    estimate: bool = typer.Option(False, "--estimate",
                                  help="Model-based compressors: report the model's code length "
                                       "instead of writing files: from one parallel pass (fast), "
                                       "or in context modes 1-4 from the encoder's steps."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for the model."),
    context: int = CONTEXT,
    mode: str = typer.Option(None, "--mode",
                             help="Palette (513-token) models: 'lossless' (default: palette "
                                  "indices + exact residuals) or 'palette' (lossy, indices "
                                  "only; PSNR reported). See docs/palette.md."),
    paper_size: bool = typer.Option(False, "--paper-size",
                                    help="Resize every image to 32×32 first (the ImageGPT "
                                         "paper's setting), for all compressors alike."),
    workers: int = typer.Option(1, "--workers",
                                help="Shard the images across N processes of this machine "
                                     "(torch.distributed, gloo on 127.0.0.1). Across machines: "
                                     "torchrun, see docs/scale.md."),
    log: Path = typer.Option(None, "--log", "--row-log",
                             help="Append every finished row to this JSON Lines file; rerun "
                                  "the same command with it to reuse its rows and code only "
                                  "what is missing (under torchrun spell it --row-log: torchrun "
                                  "reads --log as its own --log-dir)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    reporter: str = typer.Option(None, "--reporter", "-r",
                                 help="Print the result with this registered reporter (table, "
                                      "json, markdown, csv or a plugin's; see `igc plugins`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result dict as JSON."),
    markdown: bool = typer.Option(False, "--markdown",
                                  help="Print a Markdown summary table and its notes."),
    wide: bool = typer.Option(False, "--wide",
                              help="Table: add bits, model bits, overheads, times and the mean "
                                   "ratio (wider than 80 columns)."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write per-image rows to this CSV."),
    plot_path: Path = typer.Option(None, "--plot", help="Also draw a bar chart to this PNG."),
    force: bool = typer.Option(False, "--force", "-f",
                               help="Overwrite existing --csv and --plot files."),
) -> None:
    """Compare compressors on the same images: sizes, ratios, speed, round trips.

    Every lossless output is decoded and compared with the original pixel for pixel.
    """
    import time

    from rich.console import Console

    from igc import api
    from igc.errors import UsageError

    started = time.perf_counter()
    chosen = [flag for flag, given in (("--json", as_json), ("--markdown", markdown),
                                       (f"--reporter {reporter}", reporter)) if given]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} each choose how the result is printed; give "
                         "one (--csv and --plot can be added to any)")
    if wide and (as_json or markdown or reporter not in (None, "table")):
        raise UsageError("--wide widens the terminal table; JSON and CSV have every field")
    names = [n.strip() for n in compressors.split(",") if n.strip()]
    if not names:
        raise UsageError("--compressors is empty; known: " + ", ".join(api.list_compressors()))
    if count is not None and count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if crop is None and not images and not paper_size:  # the paper resizes the whole image
        crop = GALLERY_CROP
    if crop is not None and crop < 0:
        raise UsageError(f"--crop must be 0 (full resolution) or a positive size, got {crop}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if csv_path or plot_path or log:
        _check_reports(images, csv_path, plot_path, force, log)
    if reporter is not None:
        api.check_reporter(reporter)  # an unknown (or empty) name fails before any work
    threads = threads or None  # 0: leave torch's default
    api.set_threads(threads)
    made_with = {"model": model, "mode": mode, "tokenizer": tokenizer, "coder": coder,
                 "context": context}
    made, unavailable = api.create_compressors(names, **made_with)  # before reading any image
    loaded, preprocessing = api.load_images(images, count, seed, crop or None,
                                            default_count=DEFAULT_COUNT, paper_size=paper_size)
    options = {"verify": verify, "estimate": estimate, "seed": seed,
               "preprocessing": preprocessing}
    result = api.bench(loaded, made if workers == 1 else names, workers=workers,
                       threads=threads, log=log, show_progress=not quiet, note=_note,
                       **made_with, **options)
    if result is None:  # a rank other than 0 of a torchrun launch: rank 0 reports
        return
    err = Console(stderr=True)
    result.unavailable.update(unavailable)
    result.environment["wall_seconds"] = time.perf_counter() - started  # the whole command's
    api.report(result, reporter or ("json" if as_json else "markdown" if markdown else "table"),
               "-", wide=wide)
    for option, path in (("csv", csv_path), ("plot", plot_path)):
        if path:
            api.report(result, option, path)
            err.print(f"wrote the {'CSV' if option == 'csv' else 'plot'} to {path}",
                      highlight=False, soft_wrap=True)
    failed = [r for r in result.results if r.roundtrip_ok is False]
    if failed:
        raise typer.Exit(3)


def _note(text: str) -> None:
    """What the run has to say on the way (reused rows, a torn log line), on standard error."""
    import sys

    sys.stderr.write(f"igc: note: {text}\n")


def _check_reports(images: list[str] | None, csv_path: Path | None,
                   plot_path: Path | None, force: bool, log: Path | None = None) -> None:
    """--csv, --plot and --log, checked before the run: writable, never one of the input images
    nor each other, and an existing --csv or --plot only with --force (an existing --log is
    resumed)."""
    from igc import api
    from igc.cli.outputs import check_report
    from igc.errors import UsageError

    inputs = api.image_files(images)
    given = [(o, p) for o, p in (("--csv", csv_path), ("--plot", plot_path), ("--log", log)) if p]
    for option, path in given:
        check_report(path, option, inputs, force=force or option == "--log")
    for k, (option, path) in enumerate(given):
        for other, second in given[k + 1:]:
            if os.path.realpath(path) == os.path.realpath(second):  # resolve raises on a loop
                raise UsageError(f"{option} and {other} both name {path}; give them different "
                                 "files")
    suffix = Path(plot_path).suffix.lower().lstrip(".") if plot_path else ""
    if suffix:
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:  # the plot reporter says what to install
            pass
        else:
            if suffix not in FigureCanvasBase.get_supported_filetypes():
                raise UsageError(f"--plot {plot_path}: matplotlib cannot draw a '.{suffix}' "
                                 "file; name it .png, .svg or .pdf")
