"""`igc speed`: subpixels per second of igc's runtime and HuggingFace's, in one run."""

from __future__ import annotations

import typer

from igc.cli.errors import handle_errors
from igc.core.numerics import engine_choices

DEFAULT_COUNT = 2
DEFAULT_CROP = 64


@handle_errors
def speed(
    model: str = typer.Option(None, "--model", "-m",
                              help="ImageGPT model: packaged name, local folder or hub id."),
    images: list[str] = typer.Option(None, "--images", "-i",
                                     help="Image files, folders or .npz arrays; repeatable. "
                                          "Default: photos bundled with scikit-image."),
    count: int = typer.Option(DEFAULT_COUNT, "--count", "-n",
                              help="How many images to pick at random."),
    crop: int = typer.Option(DEFAULT_CROP, "--crop",
                             help="Center-crop every image to at most N×N pixels (0 = full)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random pick."),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch."),
    engine: str = typer.Option(None, "--engine", metavar="NAME",
                               help="What computes the integer backend (int): "
                                    f"{engine_choices()}."),
    backend: str = typer.Option(None, "--backend", "-b",
                                help="Comma-separated backends to time: hf (HuggingFace, float32), igc "
                                     "(igc's fused float step, numerics 1), int (igc's integer "
                                     "step, numerics 2: what new files use). Default: all three; "
                                     "int alone for a pixel model."),
    batch: int = typer.Option(None, "--batch", help="Tiles stepped together (codec default)."),
    repeat: int = typer.Option(1, "--repeat", "-r",
                               help="Time everything N times, keep each phase's fastest run "
                                    "(steadier on a busy machine)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Subpixels per second of igc's model runtime against HuggingFace's.

    Times estimate (one parallel pass), encode and decode (round trip checked) for each backend on the same model and images, and prints their ratios.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from igc import api

    names = None if backend is None else [b.strip() for b in backend.split(",") if b.strip()]
    err = Console(stderr=True)
    with err.status("measuring") as status:
        api.set_engine(engine)
        report = api.speed(model, images, count, crop, seed, names, threads=threads,
                           batch=batch, repeat=repeat,
                           progress=lambda what: status.update(f"measuring {what}"))
    results, env, names = report.results, report.environment, report.backends
    failed = [r for r in results if r.roundtrip_ok is False]
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table(title=f"subpixels per second — {env['model']} on {len(env['images'])} "
                            f"image(s), {env['subpixels']} subpixels")
        table.add_column("phase")
        for name in names:
            table.add_column(name, justify="right")
        ratio = report.all_ratios()
        for pair in ratio:
            table.add_column(pair, justify="right")
        by = {(r.backend, r.phase): r for r in results}
        for phase in report.phases:
            cells = []
            for name in names:
                r = by[name, phase]
                mark = " ✗" if r.roundtrip_ok is False else ""
                cells.append(f"{r.subpixels_per_second:,.0f}{mark}")
            cells += [f"{ratio[pair][phase]:.2f}×" for pair in ratio]
            table.add_row(phase, *cells)
        Console().print(table)
        load = env.get("load_average_1min")
        what = {"hf": "hf: numerics 0 (HuggingFace, float32)",
                "igc": "igc: numerics 1 (float32, bfloat16 key/value cache)",
                "int": f"int: numerics 2 on engine {env['engine']}"}
        Console().print(f"device {env['device']} ({env['cpu']}), threads {env['threads']}, "
                        + "; ".join(what[name] for name in names)
                        + f"; lanes {env['lanes']}"
                        + (f", load average {load}" if load else ""))
    if failed:
        raise typer.Exit(3)
