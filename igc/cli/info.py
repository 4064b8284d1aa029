"""`igc info`: an `.igc` file's header, explained (`--json`: every field, exact)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from igc.cli.decompress import not_igc, read_file
from igc.cli.errors import handle_errors
from igc.core.container import CONTEXT_MODES
from igc.core.numerics import known
from igc.errors import FormatError


def portability(d: dict) -> str | None:
    """Where an ImageGPT file decodes: numerics 2 anywhere, the float numerics 0 and 1 only on
    the kind of CPU that wrote them (docs/numerics.md). None for a plugin's model, whose own
    arithmetic decides (docs/plugins.md, "Determinism")."""
    if d["model_plugin"] != "imagegpt":
        return None
    if d["numerics"] == 2:
        return ("to the same pixels on any machine, thread count and engine (reference, cpu "
                "or cuda) that computes its model")
    return ("only on the kind of CPU that wrote it: its float arithmetic can differ on another "
            "CPU, and the checksum then refuses the file (numerics 2 files, which igc writes "
            "now, decode anywhere)")


def stepped(d: dict) -> str:
    """What steps together: a batch of tiles, or in context modes 2 to 4 an anti-diagonal's
    windows."""
    if d.get("context") in (2, 3, 4):
        return f"the windows of an anti-diagonal, up to {d['batch']}"
    return f"{d['batch']} tiles"


def describe(d: dict) -> list[tuple[str, str]]:
    """(field, explanation) rows for a header dict (igc.info), numbers rounded for reading."""
    h, w = d["height"], d["width"]
    subpixels = h * w * d["channels"]
    if d["residual"]:
        kind = "lossless: palette indices, then every subpixel's exact value"
    elif d["tokenizer"] == "subpixel":
        kind = "lossless"
    elif d["tokenizer"] == "palette":
        kind = "lossy: palette indices only"
    else:
        kind = f"as the {d['tokenizer']} tokenizer codes them"
    numerics = known(d["numerics"])
    numerics = numerics.explanation if numerics else "the model plugin's own"
    dists = d.get("distributions") or {}

    def source(kind: str) -> str:
        return f" from package {dists[kind]}" if kind in dists else ""

    return [
        ("image", f"{w}×{h} pixels, RGB: {subpixels:,} subpixels"),
        ("size", f"{d['file_bytes']:,} bytes: header {d['header_bytes']:,}, coded payload "
                 f"{d['payload_length']:,}"),
        ("rate", f"{d['bits_per_subpixel']:.3f} bits per subpixel, compression ratio "
                 f"{8 / d['bits_per_subpixel']:.3f} (file bits against 8 per subpixel)"),
        ("model", f"{d['model_id']} (model plugin {d['model_plugin']}{source('model')}, fingerprint "
                  f"{d['fingerprint']}); decoding needs this model"),
        ("tokens", f"{d['tokenizer']}{source('tokenizer')} ({kind}), {d['order']} order, "
                   f"{d['tile']}×{d['tile']}-pixel tiles"),
        ("context", f"mode {d.get('context', 0)}: "
                    f"{CONTEXT_MODES.get(d.get('context', 0), 'unknown')}"),
        *([("strips", f"bands of {d['strip_rows']} rows, each coded on its own (its own "
                      "stream): cores decode them side by side")] if d.get("strip_rows") else []),
        ("coder", f"{d['coder']}{source('coder')}, probabilities of {d['precision']} bits"),
        ("stepping", f"{stepped(d)} at a time in lanes of {d['lane']}; numerics "
                     f"{d['numerics']} ({numerics}): the decoder repeats this computation exactly"),
        *([("decodes", where)] if (where := portability(d)) else []),
        ("checks", f"CRC-32 of the pixels {d['checksum']}, {len(d['region_checks']) // 2} "
                   "region checks: a mismatch is refused, never written"),
        ("format", f"igc file version {d['version']} (docs/format.md)"),
    ]


@handle_errors
def info(
    source: Path = typer.Argument(..., metavar="FILE",
                                  help="An .igc file, or - for standard input."),
    as_json: bool = typer.Option(False, "--json",
                                 help="Print every header field as JSON, exact."),
) -> None:
    """Explain the header of an .igc file: image, size, model, how it was coded."""
    from igc.api import info as read_info
    from igc.core.container import is_igc

    if str(source) == "-":  # as decompress reads it: bounded by the header's payload size
        from igc.core.container import read_stream

        try:
            d = read_info(read_stream(typer.get_binary_stream("stdin")))
        except FormatError as exc:
            raise FormatError(f"-: {exc}") from None
        return _show(source, d, as_json)
    head = b"IGC"  # unless a regular file says otherwise, reading it below says what is wrong
    try:
        if source.is_file():
            with open(source, "rb") as fh:
                head = fh.read(4)
    except OSError:
        pass
    if not is_igc(head):
        raise not_igc(str(source), head)
    try:
        d = read_info(read_file(source))
    except FormatError as exc:
        raise FormatError(f"{source}: {exc}") from None
    _show(source, d, as_json)


def _show(source: Path, d: dict, as_json: bool) -> None:
    """The header's fields, as --json or as the explained list."""
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    import shutil
    import textwrap

    rows = describe(d)
    key_width = max(len(key) for key, _ in rows) + 2
    width = max(shutil.get_terminal_size().columns, 40)
    typer.echo(f"{source}:")
    for key, text in rows:
        typer.echo(textwrap.fill(text, width=width, initial_indent=f"  {key:<{key_width}}",
                                 subsequent_indent=" " * (key_width + 2),
                                 break_long_words=False, break_on_hyphens=False))
    typer.echo("(--json prints every field, exact)")
