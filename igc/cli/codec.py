"""`igc compress`, `igc decompress`, `igc info`: the `.igc` codec on files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from igc.cli.errors import handle_errors
from igc.cli.outputs import check_output, write_atomic
from igc.errors import FormatError, UsageError


def read_file(path: Path) -> bytes:
    """An .igc file, read no further than its header allows (igc.core.container.read_file)."""
    from igc.core import container

    try:
        return container.read_file(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an igc file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


@handle_errors
def compress(
    source: Path = typer.Argument(..., help="Image to compress (PNG, JPEG, ...)."),
    output: Path = typer.Option(None, "--output", "-o", help="Output file (default: SOURCE.igc)."),
    model: str = typer.Option(None, "--model", "-m",
                              help="A registered model's name (see `igc plugins`), or an ImageGPT "
                                   "model: packaged name, folder or hub id."),
    tokenizer: str = typer.Option(None, "--tokenizer",
                                  help="Registered tokenizer (default: the model's own)."),
    coder: str = typer.Option(None, "--coder", help="Registered coder (default: range)."),
    order: str = typer.Option("interleaved", "--order", help="interleaved or channel."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
    mode: str = typer.Option(None, "--mode",
                             help="Palette models: 'lossless' (default) or 'palette' (lossy: "
                                  "nearest-cluster colours only)."),
    paper_size: bool = typer.Option(False, "--paper-size",
                                    help="Resize the image to 32×32 first (ImageGPT paper "
                                         "setting; the file holds the resized image)."),
) -> None:
    """Compress an image into an .igc file (lossless unless --mode palette)."""
    from igc.api import compressor, report_fields
    from igc.core.image import load_image

    output = output or source.with_suffix(source.suffix + ".igc")
    if not source.exists():
        raise UsageError(f"{source}: no such file")
    check_output(output, force=force, inputs=[source])
    loaded = load_image(source, strict=True)
    if paper_size:
        from igc.core.palette import PAPER_SIZE, resize_to_paper

        h, w = loaded.pixels.shape[:2]
        loaded.pixels = resize_to_paper(loaded.pixels)
        loaded.note = ", ".join(filter(None, [loaded.note, f"resized from {w}×{h} to "
                                              f"{PAPER_SIZE}×{PAPER_SIZE} (--paper-size)"]))
    comp = compressor(model, order=order, mode=mode, tokenizer=tokenizer, coder=coder)
    result = comp.compress_with_stats(loaded.pixels)
    write_atomic(output, result.data, force)
    h, w = loaded.pixels.shape[:2]
    note = f" ({loaded.note})" if loaded.note else ""
    typer.echo(f"{source} -> {output}: {w}×{h}{note}, {len(result.data):,} bytes, "
               f"{len(result.data) * 8 / (h * w * 3):.3f} bits/subpixel, ratio "
               f"{h * w * 24 / (len(result.data) * 8):.3f}")
    for key, value in report_fields(comp, result, loaded.pixels).items():
        if key == "psnr":
            typer.echo(f"  lossy palette mode: PSNR {value:.2f} dB against the input")
        elif key.endswith("_bits"):
            typer.echo(f"  {key.replace('_', ' ')}: {value:,.0f}")


@handle_errors
def decompress(
    source: Path = typer.Argument(..., help=".igc file to decode."),
    output: Path = typer.Option(None, "--output", "-o", help="Output PNG (default: SOURCE.png)."),
    model: str = typer.Option(None, "--model", "-m",
                              help="Model to decode with (default: the one the header names)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
) -> None:
    """Decode an .igc file to a PNG; the pixels are written only after their checksum matches."""
    from igc.api import decompress as decode
    from igc.core.image import encode_png

    output = output or source.with_suffix(".png")
    check_output(output, force=force, inputs=[source])
    pixels = decode(read_file(source), model)
    write_atomic(output, encode_png(pixels), force)
    typer.echo(f"{source} -> {output}: {pixels.shape[1]}×{pixels.shape[0]}, checksum verified")


@handle_errors
def info(
    source: Path = typer.Argument(..., metavar="FILE", help="An .igc file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the header of an .igc file."""
    from igc.api import info as read_info

    try:
        d = read_info(read_file(source))
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from None
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    width = max(map(len, d))
    for key, value in d.items():
        typer.echo(f"{key:<{width}}  {value}")
