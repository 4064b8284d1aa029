"""`igc bench --log rows.jsonl`: every finished (image, compressor) row, one JSON line each.

A line is the row as `--json` prints it (`Row.to_dict()`), plus what decides whether it can be
reused:

- `image_sha256`: SHA-256 of the pixels the compressor coded (after any crop or resize), with
  their shape;
- `options`: the run's options that can change a row (verify, estimate, preprocessing, model,
  mode, tokenizer, coder, context);
- `model_fingerprint`, `model_numerics`: for a model-based compressor, which weights and which
  integer numerics made the file (None otherwise).

Rerunning the same command with the same log reuses the rows whose image hash and compressor
match and codes only the rest. A log whose rows were made with other options or another model
is refused in one line rather than mixed (a row made with other options is never reused). The
file is appended to, one `write` and flush per row, so a run that is killed loses at most the
rows in flight; a torn last line (a kill in the middle of a write) is ignored with a note and cut
off before anything is appended. Any other line that is not a row refuses the log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from igc.benchmark.run import Row
from igc.core.options import whole_number
from igc.errors import IgcError, UsageError

ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Row) if f.name != "extra")
REQUIRED = tuple(f.name for f in dataclasses.fields(Row)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
LOG_FIELDS = ("image_sha256", "options", "model_fingerprint", "model_numerics")
OPTION_NAMES = ("verify", "estimate", "preprocessing", "model", "mode", "tokenizer", "coder",
                "context")


def image_hash(pixels: np.ndarray) -> str:
    digest = hashlib.sha256(f"{'x'.join(map(str, pixels.shape))}:{pixels.dtype}:".encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def run_options(options: dict, made_with: dict) -> dict:
    """The options recorded with every row (and compared on reuse)."""
    merged = {**options, **made_with}
    return {name: merged.get(name) for name in OPTION_NAMES}


def model_of(compressor: Any) -> dict:
    """A compressor's model fields: fingerprint and numerics (None for classical codecs)."""
    info = getattr(compressor, "model_info", None) or {}
    return {"model_fingerprint": info.get("fingerprint"),
            "model_numerics": info.get("numerics")}


def record(row: Row, sha256: str, options: dict, model: dict) -> dict:
    """The log line of a row (a dict, JSON-able)."""
    return {**row.to_dict(), "image_sha256": sha256, "options": options, **model}


def row_of(line: dict) -> Row:
    """The Row a log line holds (its extra fields back in `extra`)."""
    known = {k: line[k] for k in ROW_FIELDS if k in line}
    extra = {k: v for k, v in line.items() if k not in ROW_FIELDS and k not in LOG_FIELDS}
    return Row(**known, extra=extra)


def _problem(line: Any) -> str | None:
    """Why a parsed line is not a row of this log format (None: it is one)."""
    if not isinstance(line, dict):
        return f"a JSON {type(line).__name__}, not an object"
    missing = [k for k in (*REQUIRED, *LOG_FIELDS) if k not in line]
    if missing:
        return "no " + ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    if not (isinstance(line["image"], str) and isinstance(line["compressor"], str)
            and isinstance(line["image_sha256"], str) and len(line["image_sha256"]) == 64
            and isinstance(line["options"], dict)):
        return "fields of the wrong type"
    return _figures_problem(line)


def _number(value: Any) -> bool:
    """A finite number, never a bool (JSON's true is not a count)."""
    return whole_number(value) or (isinstance(value, float) and math.isfinite(value))


def _figures_problem(line: dict) -> str | None:
    """Why a row's figures cannot be what bench wrote: a reused row is reported as measured, so
    a string, a NaN, a negative size or figures that disagree would be printed as results (or
    fail later as an 'unexpected' error)."""
    h, w, original = line["height"], line["width"], line["original_bits"]
    if not (whole_number(h) and whole_number(w) and h > 0 and w > 0):
        return "height and width must be positive whole numbers"
    if original != h * w * 3 * 8:
        return f"original_bits {original!r} is not {h}×{w}×3×8"
    bits = line["compressed_bits"]
    if bits is None:
        if not (isinstance(line.get("error"), str) and line["error"]):
            return "compressed_bits is null in a row without an error"
    elif not (_number(bits) and bits >= 0):
        return f"compressed_bits {bits!r} is not a size"
    for name in ("bits_per_subpixel", "ratio", "model_bits", "overhead_percent",
                 "coder_overhead_percent", "decode_seconds"):
        value = line.get(name)
        if value is not None and not _number(value):
            return f"{name} {value!r} is not a finite number"
    if not (_number(line.get("encode_seconds", 0.0)) and line.get("encode_seconds", 0.0) >= 0):
        return "encode_seconds is not a duration"
    for name in ("lossless", "estimate"):
        if not isinstance(line.get(name, False), bool):
            return f"{name} is not true or false"
    if line["roundtrip_ok"] is not None and not isinstance(line["roundtrip_ok"], bool):
        return "roundtrip_ok is not true, false or null"
    if bits:  # the derived figures as bench computes them
        for name, want in (("bits_per_subpixel", bits / (h * w * 3)), ("ratio", original / bits)):
            got = line[name]
            if got is None or not math.isclose(got, want, rel_tol=1e-9):
                return f"{name} {got!r} disagrees with compressed_bits {bits!r}"
    return None


def _figures(line: dict) -> dict:
    """What a row measured, without what may differ between two runs of it (the times)."""
    return {k: v for k, v in line.items() if not k.endswith("_seconds")}


class RowLog:
    """An open log: the rows it held when opened (`rows`), and `append` for new ones."""

    def __init__(self, path: Path, options: dict, models: dict[str, dict],
                 note: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.options = options
        self.models = models
        self.rows: dict[tuple[str, str], dict] = {}
        self._note = note or (lambda text: None)
        self._read()
        try:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"--log {self.path}: cannot write: {exc.strerror or exc}") from None

    def _read(self) -> None:
        if self.path.is_dir():
            raise UsageError(f"--log {self.path} is a folder; give a file (rows.jsonl)")
        if not self.path.exists():
            return
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise UsageError(f"--log {self.path}: cannot read: {exc.strerror or exc}") from None
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: b"" unless the last write was cut
        for number, raw in enumerate(lines, 1):
            self._take(number, raw)
        if not tail:
            return
        try:
            json.loads(tail)
        except (ValueError, UnicodeDecodeError):  # cut in the middle of a write
            self._note(f"--log {self.path}: ignoring a torn last line ({len(tail)} bytes, from "
                       "an interrupted write); it is cut off")
            try:
                os.truncate(self.path, len(data) - len(tail))
            except OSError as exc:
                raise UsageError(f"--log {self.path}: cannot cut its torn last line: "
                                 f"{exc.strerror or exc}") from None
            return
        self._take(len(lines) + 1, tail)  # a whole row that lost only its line end
        try:
            with open(self.path, "ab") as fh:
                fh.write(b"\n")
        except OSError as exc:
            raise UsageError(f"--log {self.path}: cannot write: {exc.strerror or exc}") from None

    def _take(self, number: int, raw: bytes) -> None:
        where = f"--log {self.path} line {number}"
        try:
            line = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise UsageError(f"{where} is not JSON: give a JSON Lines file that igc bench --log "
                             "wrote, or a new file") from None
        problem = _problem(line)
        if problem:
            raise UsageError(f"{where} is not a bench row ({problem}): give a file that igc "
                             "bench --log wrote, or a new file")
        for name, ours in self.options.items():
            if name not in line["options"]:  # an earlier igc's log: what made the row is unknown
                raise UsageError(f"{where} does not record {name} (an earlier igc wrote it), so "
                                 "its rows cannot be matched to this run; give a new --log file")
            theirs = line["options"][name]
            if theirs != ours:
                raise UsageError(f"{where} comes from another run: {name} was {theirs!r} there "
                                 f"and is {ours!r} here; give a new --log file for these options")
        model = self.models.get(line["compressor"])
        if model is not None:
            for field in ("model_fingerprint", "model_numerics"):
                if line.get(field) != model[field]:
                    raise UsageError(f"{where} comes from another model: {line['compressor']} "
                                     f"had {field} {line.get(field)!r} there and {model[field]!r}"
                                     " here; give a new --log file for this model")
        key = (line["image_sha256"], line["compressor"])
        first = self.rows.setdefault(key, line)
        if first is not line and _figures(first) != _figures(line):
            raise UsageError(f"{where} repeats the row of {line['image']} × {line['compressor']} "
                             "with other figures; give a log of one run, or a new file")

    def matching(self, hashes: Sequence[str], names: Sequence[str]) -> dict[tuple[str, str], dict]:
        """The logged rows this run can reuse, by (image hash, compressor)."""
        return {(h, n): self.rows[(h, n)] for h in dict.fromkeys(hashes) for n in names
                if (h, n) in self.rows}

    def append(self, line: dict) -> None:
        """One row, written whole and flushed before returning."""
        text = json.dumps(line, separators=(",", ":")) + "\n"
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            raise IgcError(f"--log {self.path}: cannot append a row: {exc.strerror or exc}") \
                from None

    def close(self) -> None:
        self._file.close()
