"""`igc decompress`: `.igc` files back to PNG images, one or many (igc/cli/files.py says how)."""

from __future__ import annotations

from pathlib import Path

import typer

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
from igc.errors import FormatError, UsageError

SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
              b"BM": "a BMP image", b"PK\x03\x04": "a zip archive (.npz?)"}


def default_output(source: Path) -> Path:
    """a.png.igc -> a.png, a.igc -> a.png, a.jpg.igc -> a.png (the pixels, as PNG), x -> x.png;
    where a.png.igc and a.jpg.igc meet, a.jpg.igc -> a.jpg.png (`settle_clashes`)."""
    from igc.api import image_extensions

    name = source.name
    if len(name) > 4 and name.lower().endswith(".igc"):
        stem = source.with_name(name[:-4])
        suffix = stem.suffix.lower()
        if suffix == ".png":
            return stem
        if suffix in image_extensions():
            return stem.with_suffix(".png")
        return stem.with_name(stem.name + ".png")
    return source.with_name(name + ".png")


def settle_clashes(jobs: list[Job]) -> None:
    """Files igc named that would decode to one PNG (a.png.igc and a.jpg.igc both to a.png):
    the PNG's keeps a.png, the others keep their image name too (a.jpg.png)."""
    from igc.api import image_extensions

    groups: dict[Path, list[Job]] = {}
    for job in jobs:
        if job.output is not None and job.source is not None and not job.error:
            groups.setdefault(job.output.resolve(), []).append(job)
    for group in groups.values():
        if len(group) < 2:
            continue
        for job in group:
            stem = Path(job.source.name[:-4]) if job.source.name.lower().endswith(".igc") else None
            if stem is not None and stem.suffix.lower() in set(image_extensions()) - {".png"}:
                job.output = job.output.with_name(stem.name + ".png")


def igc_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() == ".igc" and not p.name.startswith("."))


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


def not_igc(label: str, head: bytes) -> FormatError:
    kind = next((f" (it is {what})" for sig, what in SIGNATURES.items() if head.startswith(sig)),
                "")
    return FormatError(f"{label} is not an .igc file{kind}; igc decompress reads the files igc "
                       "compress writes")


def check_inputs(jobs: list[Job]) -> None:
    """Say first that a file is not an .igc file, before its output name is even checked."""
    from igc.core.container import is_igc

    for job in jobs:
        if job.error or job.source is None or not job.source.is_file():
            continue
        try:
            with open(job.source, "rb") as fh:
                head = fh.read(4)
        except OSError:
            continue  # reading it later says why
        if not is_igc(head):
            job.error = not_igc(job.label, head)


@handle_errors
def decompress(
    sources: list[str] = typer.Argument(..., metavar="FILE",
                                        help=".igc files, folders of them, or - for standard "
                                             "input.", show_default=False),
    output: Path = typer.Option(None, "--output", "-o", metavar="FILE",
                                help="Output image for one file: PNG, or BMP, TIFF, PPM or "
                                     "lossless WebP by its suffix; - for standard output (PNG; "
                                     "default: the input's name without .igc, as .png: "
                                     "a.png.igc -> a.png)."),
    out_dir: Path = typer.Option(None, "--out-dir", "-d", metavar="DIR",
                                 help="Write every PNG into this folder (created if missing)."),
    model: str = typer.Option(None, "--model", "-m", metavar="NAME",
                              help="Model to decode with (default: the one the header names)."),
    allow_download: bool = typer.Option(
        False, "--allow-download",
        help="Let a header that names a HuggingFace hub model download it (default: the local "
             "cache only; a file's header cannot make igc reach the network unasked)."),
    force: bool = FORCE,
    threads: int = THREADS,
    engine: str = ENGINE,
    quiet: bool = QUIET,
    workers: int = WORKERS,
) -> None:
    """Decode .igc files to PNG images, written only after their checksum matches.

    Prints one line per file (size, bits per subpixel, time) and, on a terminal, a progress bar with an ETA while the model decodes.
    """
    params = dict(locals())  # the command again, on each --workers process
    from igc import api
    from igc.core import container
    from igc.core.image import check_output_size, encode_image, output_format

    if output is not None and str(output) != "-":
        output_format(output)  # a lossy or unknown image suffix: refused before any work

    jobs = plan(sources, output=output, out_dir=out_dir, default_output=default_output,
                folder_files=igc_files, looked_for="*.igc", settle=settle_clashes)
    check_inputs(jobs)
    workers = workers_for(jobs, workers)

    started = begin(jobs, decompress, params, workers=workers, out_dir=out_dir, threads=threads,
                    engine=engine, quiet=quiet,
                    check=lambda: check_outputs(jobs, force=force, out_dir=out_dir,
                                                binary="PNG data"))
    if started is None:
        return
    reporter, group = started

    def work(job: Job, report: Output) -> list[str]:
        data = read_file(job.source) if job.source is not None else _stdin()
        if job.output is not None:  # a size the output's format cannot hold: before decoding
            header = container.read_header(data)[0]
            check_output_size(job.output, header.height, header.width)
        # the bar pulses while the header's model loads, then counts tokens
        pixels = api.decompress(data, model, progress=report.tokens(_name(job)),
                                allow_download=allow_download)
        write(job.output, encode_image(pixels, job.output), force)
        h, w = pixels.shape[:2]
        return [f"{job.label} -> {shown(job.output)}: {w}×{h}, {len(data):,} bytes, "
                f"{bits_per_subpixel(len(data), h, w)}, checksum verified"]

    run(jobs, work, reporter, verb="decompressed", group=group)


def _stdin() -> bytes:
    from igc.core import container

    try:
        return container.read_stream(typer.get_binary_stream("stdin"))
    except FormatError as exc:
        if str(exc).startswith("not an igc file"):
            raise not_igc(STDIN, b"") from None
        raise


def _name(job: Job) -> str:
    return job.label if job.source is None else job.source.name
