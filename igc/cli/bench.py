"""`igc bench`: compressors side by side on the same images."""

from __future__ import annotations

from pathlib import Path

import typer

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
                                   "models`), local folder or hub id. Other model plugins "
                                   "are made with their default."),
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
                                       "from one parallel pass instead of writing files (fast)."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for the model."),
    mode: str = typer.Option(None, "--mode",
                             help="Palette (513-token) models: 'lossless' (default: palette "
                                  "indices + exact residuals) or 'palette' (lossy, indices "
                                  "only; PSNR reported). See docs/palette.md."),
    paper_size: bool = typer.Option(False, "--paper-size",
                                    help="Resize every image to 32×32 first (the ImageGPT "
                                         "paper's setting), for all compressors alike."),
    workers: int = typer.Option(1, "--workers",
                                help="Shard the images across N processes (torch.distributed "
                                     "through accelerate, gloo on 127.0.0.1)."),
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    if csv_path or plot_path:
        _check_reports(images, csv_path, plot_path, force)
    if reporter:
        api.check_reporter(reporter)  # an unknown name fails before any work
    threads = threads or None  # 0: leave torch's default
    api.set_threads(threads)
    made_with = {"model": model, "mode": mode, "tokenizer": tokenizer, "coder": coder}
    made, unavailable = api.create_compressors(names, **made_with)  # before reading any image
    loaded, preprocessing = api.load_images(images, count, seed, crop or None,
                                            default_count=DEFAULT_COUNT, paper_size=paper_size)
    options = {"verify": verify, "estimate": estimate, "seed": seed,
               "preprocessing": preprocessing}
    err = Console(stderr=True)
    if workers > 1:
        with err.status(f"benchmarking on {workers} worker processes"):
            result = api.bench(loaded, names, workers=workers, threads=threads, **made_with,
                               **options)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("benchmarking", total=len(loaded) * max(len(made), 1))

            def tick(image: str, compressor: str) -> None:
                bar.update(task, description=f"{compressor} on {image}")
                bar.advance(task)

            result = api.bench(loaded, made, progress=tick, **options)
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


def _check_reports(images: list[str] | None, csv_path: Path | None,
                   plot_path: Path | None, force: bool) -> None:
    """--csv and --plot, checked before the run: writable, never one of the input images, and
    an existing file only with --force."""
    from igc import api
    from igc.cli.outputs import check_report
    from igc.errors import UsageError

    inputs = api.image_files(images)
    for option, path in (("--csv", csv_path), ("--plot", plot_path)):
        if path:
            check_report(path, option, inputs, force=force)
    if csv_path and plot_path and Path(csv_path).resolve() == Path(plot_path).resolve():
        raise UsageError(f"--csv and --plot both name {csv_path}; give them different files")
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
