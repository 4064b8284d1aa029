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
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from igc.benchmark.run import Row
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
    return None


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
        self.rows.setdefault((line["image_sha256"], line["compressor"]), line)

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
