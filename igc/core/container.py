"""The `.igc` file format (spec: docs/format.md).

A small self-checking header (magic, version, image size, tokenizer and tile layout, coder, model
plugin, id and weight fingerprint, pixel checksums, payload length, header CRC) followed by the
entropy-coded payload. Everything a decoder needs to refuse a file early, before allocating or
running a model, is in the header. Since version 4 the tokenizer, model plugin and coder are
recorded by their registered names, so a file coded with plugins names the plugins that decode it.
"""

from __future__ import annotations

import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from igc.core.numerics import MAX_NUMERICS
from igc.errors import FormatError

MAGIC = b"IGC"
# what a file without strips is written as; a file cut into strips is STRIPS_VERSION, so every
# file that can be written as version 5 keeps version 5's bytes
VERSION = 5
# version 6: version 5 and a strip-rows field; the image is cut into bands of that many rows,
# each coded as an image of its own with its own stream (igc.codec.strips), which cores decode
# side by side
STRIPS_VERSION = 6
# version 1 had no lane field (its lane is the whole batch); versions 1-2 no numerics (0);
# versions 1-3 a tokenizer code and a coder code instead of names, and no model plugin;
# versions 1-4 no context mode (0) and no distribution names; versions 1-5 no strips
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
DEFAULT_MAX_PIXELS = 1 << 28
MAX_MODEL_ID = 64
MAX_REGIONS = 8
MAX_NAME = 63
# the longest header the parser can read: magic, version, layout, 7 varints (height, width,
# batch, lane, numerics, strip rows, payload length: at most 10 bytes each), 4 layout bytes,
# three names
# (version 4: tokenizer, coder, model plugin; a length byte and up to MAX_NAME bytes each), the
# distributions that register them (version 5, the same way), fingerprint, model id and region
# checks (a length byte and up to 255 bytes each), checksum, CRC
MAX_HEADER_BYTES = 3 + 1 + 1 + 7 * 10 + 4 + 6 * (1 + MAX_NAME) + 8 + 2 * (1 + 255) + 4 + 2
MAX_PAYLOAD_PER_PIXEL = 16
ORDERS = {"interleaved": 0, "channel": 1}
# versions 1-3: (tokenizer, exact residuals follow) <-> layout code; the coder's code
TOKENIZER_CODES = {("subpixel", False): 0, ("palette", False): 1, ("palette", True): 2}
CODERS = {"range": 1}
# version 4: a name is stored as its length (1..63) and UTF-8 bytes, or as one byte 0x80 + i for
# the i-th name igc ships, so the default composition costs 3 header bytes, not 24 (headers weigh
# 2.6% of a 32x32 file)
SHIPPED_NAMES = ("subpixel", "palette", "range", "imagegpt", "uniform")
# version 4: the id of a model igc ships is stored as one byte 0x80 + i (its length byte is at
# most MAX_MODEL_ID otherwise), which takes 12 bytes off a default file: 0.03 bits per subpixel
# on a 32x32 image. Append-only: a file's code must name the same model in every later igc.
SHIPPED_MODEL_IDS = (
    "igc-rgb16", "igc-rgb16-v2", "igc-rgb16-w256", "igc-rgb16-w256-v2", "igc-rgb16-v3",
    "igc-rgb16-pixel", "igc-rgb16-pixel-v2",
)
RESIDUAL_FLAG = 0x01  # layout low nibble (version 4): exact residuals follow the tokens
# version 5: layout bits 1-3 say which of the tokenizer, coder and model plugin names is followed
# by the name of the distribution (the pip package) that registers it, so a decoder without the
# plugin can say what to install; built-ins record none, so igc's own files spend no byte on it
PLUGIN_KINDS = ("tokenizer", "coder", "model")
DISTRIBUTION_FLAGS = {"tokenizer": 0x02, "coder": 0x04, "model": 0x08}
# version 5: layout bits 5-7 hold the context mode, how a tile sees the pixels of the tiles coded
# before it. 0: every tile is coded alone (all that versions 1-4 do). 1: every tile is coded
# alone by the model, whose distributions adapt to the tiles coded before it (igc.codec.adapt;
# numerics 2 only). 2: as 1, and each tile is a window whose first row and column are the last
# ones of the windows above and to its left, decoded before it (igc.core.overlap). 3: as 2, and
# an online predictor over the decoded image adds its opinion (igc.codec.expert). 4: as 3, with
# the model tuned to the image and the changes at the head of the payload (igc.codec.tuned).
# Modes 3 and 4 came after version 5 without a new version: a mode this igc does not know is
# refused in one line when the header is read, before any model is loaded.
CONTEXT_MODES = {0: "tiles coded alone",
                 1: "tiles coded alone, the model adapted to the tiles coded before",
                 2: "windows overlapping their upper and left neighbours by one pixel, "
                    "the model adapted as in mode 1",
                 3: "mode 2, and a classical predictor over the decoded image mixed into the "
                    "adapted distributions",
                 4: "mode 3 with the model's norms and biases tuned to the image, the changes "
                    "sent in the file"}
DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
MAX_CONTEXT_MODE = 7


def max_pixels() -> int:
    """$IGC_MAX_PIXELS (read the same way as for input images), else 2**28."""
    from igc.core.image import resolve_max_pixels

    return resolve_max_pixels()


@dataclass
class Header:
    height: int
    width: int
    tile: int
    model_id: str
    fingerprint: str  # 16 hex digits
    checksum: int  # CRC-32 of the decoded pixels, row-major RGB
    region_checks: bytes  # one CRC-8-like byte per region of tiles, at most 8
    payload_length: int
    batch: int  # tiles stepped together: part of the computation the decoder must repeat
    channels: int = 3
    tokenizer: str = "subpixel"  # registered tokenizer name
    order: str = "interleaved"
    coder: str = "range"  # registered coder name
    precision: int = 24
    version: int = VERSION
    lane: int = 0  # tiles per lane within a batch (0: the whole batch, as in version 1)
    # which arithmetic computed the probabilities; a decoder must compute the same. For ImageGPT:
    # 0 the torch step and 1 igc's fused float kernels (both decode only on the kind of CPU that
    # wrote the file), 2 integers (igc/engines/integer.py: decodes on any machine). A plugin's
    # model numbers its own (0 for a model with one way of computing). docs/format.md
    numerics: int = 0
    model_plugin: str = "imagegpt"  # registered model name (versions 1-3: imagegpt or uniform)
    residual: bool = False  # exact residuals follow the tokens (docs/palette.md)
    # version 5: the distribution (pip package) that registers each plugin the file names, by
    # kind ("tokenizer", "coder", "model"); igc's built-ins are absent
    distributions: dict[str, str] = field(default_factory=dict)
    context: int = 0  # version 5: the context mode (CONTEXT_MODES); earlier versions: 0
    # version 6: rows per strip (the last may have fewer), each strip coded as an image of its
    # own; 0 (versions 1-5): the image is one strip
    strip_rows: int = 0

    def __post_init__(self) -> None:
        if not self.lane:
            self.lane = self.batch

    def to_dict(self) -> dict:
        d = dict(vars(self))
        d["region_checks"] = self.region_checks.hex()
        d["checksum"] = f"{self.checksum:08x}"
        return d


def encode_varint(n: int) -> bytes:
    """LEB128: 7 bits per byte, high bit set while more bytes follow (n >= 0: a negative
    number's shifts never reach 0)."""
    if n < 0:
        raise ValueError(f"a varint holds a count, not {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError("file truncated inside the header")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = shift = 0
        for _ in range(10):
            b = self.byte()
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
        raise FormatError("corrupted header: malformed integer")


def read_varints(data: bytes, count: int) -> tuple[list[int], int]:
    """`count` varints at the start of `data`, and the offset after them (FormatError where
    `data` ends first)."""
    r = _Reader(data)
    values = [r.varint() for _ in range(count)]
    return values, r.pos


def pack(header: Header, payload: bytes) -> bytes:
    """The file's bytes. Packs any header (tests build hostile files with it); the codec refuses
    a model id that `read_header` would refuse before it codes (`unrecordable_model_id`)."""
    # cut to MAX_MODEL_ID bytes on a character boundary, so the id stays valid UTF-8
    model_id = header.model_id.encode()[:MAX_MODEL_ID].decode("utf-8", "ignore").encode()
    head = bytearray(MAGIC)
    head.append(header.version)
    dists = {k: v for k, v in header.distributions.items() if v} if header.version >= 5 else {}
    if header.version >= 5:
        if not 0 <= header.context <= MAX_CONTEXT_MODE:
            raise ValueError(f"context mode {header.context} cannot be recorded (0..7)")
        head.append((RESIDUAL_FLAG if header.residual else 0)
                    | sum(DISTRIBUTION_FLAGS[kind] for kind in dists)
                    | (ORDERS[header.order] << 4) | (header.context << 5))
    elif header.version >= 4:
        head.append((RESIDUAL_FLAG if header.residual else 0) | (ORDERS[header.order] << 4))
    else:
        head.append(TOKENIZER_CODES[header.tokenizer, header.residual] | (ORDERS[header.order] << 4))
    head += encode_varint(header.height) + encode_varint(header.width)
    if header.version >= 4:
        head += bytes([header.channels, header.tile]) + encode_name(header.tokenizer)
        head += _distribution(dists, "tokenizer")
        head += encode_name(header.coder) + _distribution(dists, "coder")
        head += bytes([header.precision])
    else:
        head += bytes([header.channels, header.tile, CODERS[header.coder], header.precision])
    head += encode_varint(header.batch)
    if header.version >= 2:
        head += encode_varint(header.lane)
    if header.version >= 3:
        head += encode_varint(header.numerics)
    if header.version >= STRIPS_VERSION:
        head += encode_varint(header.strip_rows)
    if header.version >= 4:
        head += encode_name(header.model_plugin) + _distribution(dists, "model")
    head += bytes.fromhex(header.fingerprint)
    if header.version >= 4 and header.model_id in SHIPPED_MODEL_IDS:
        head.append(0x80 + SHIPPED_MODEL_IDS.index(header.model_id))
    else:
        head += bytes([len(model_id)]) + model_id
    head += header.checksum.to_bytes(4, "little")
    head += bytes([len(header.region_checks)]) + header.region_checks
    head += encode_varint(len(payload))
    head += (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little")
    return bytes(head) + payload


def _distribution(dists: dict[str, str], kind: str) -> bytes:
    return encode_name(dists[kind]) if kind in dists else b""


def valid_distribution(name: str) -> bool:
    """A distribution name as Python packaging spells one (PEP 508: letters, digits and . _ -,
    starting and ending with a letter or digit), at most MAX_NAME characters: what an error
    message may offer to `pip install`."""
    return len(name) <= MAX_NAME and DISTRIBUTION_NAME.fullmatch(name) is not None


def recordable_distribution(name: str | None) -> str | None:
    """`name` when a header can record it as a distribution, else None (then the file names
    only the plugin, as version 4 did)."""
    return name if name and valid_distribution(name) else None


def _lookup(table: dict, code: int, what: str):
    for name, value in table.items():
        if value == code:
            return name
    raise FormatError(f"corrupted header or newer file: unknown {what} code {code}")


def valid_name(name: str) -> bool:
    """Whether a registered name can be recorded in a header: 1..63 bytes of printable ASCII."""
    return 1 <= len(name) <= MAX_NAME and name.isascii() and name.isprintable() and " " not in name


def encode_name(name: str) -> bytes:
    if name in SHIPPED_NAMES:
        return bytes([0x80 + SHIPPED_NAMES.index(name)])
    if not valid_name(name):
        raise ValueError(f"name {name!r} cannot be recorded in a header: 1 to {MAX_NAME} "
                         "printable ASCII characters without spaces")
    return bytes([len(name)]) + name.encode()


def _read_name(r: _Reader, what: str) -> str:
    first = r.byte()
    if first >= 0x80:
        if first - 0x80 >= len(SHIPPED_NAMES):
            raise FormatError(f"corrupted header or newer file: unknown {what} code {first}")
        return SHIPPED_NAMES[first - 0x80]
    if not 1 <= first <= MAX_NAME:
        raise FormatError(f"corrupted header: bad {what} name length {first}")
    raw = r.take(first)
    name = raw.decode("ascii", "replace")
    if not valid_name(name):
        raise FormatError(f"corrupted header: bad {what} name {raw!r}")
    return name


def _read_model_id(r: _Reader, version: int) -> bytes:
    """The model id's bytes: a length and the UTF-8 text, or (version 4) a shipped model's code."""
    first = r.byte()
    if version >= 4 and first >= 0x80:
        if first - 0x80 >= len(SHIPPED_MODEL_IDS):
            raise FormatError(f"corrupted header or newer file: unknown model id code {first}")
        return SHIPPED_MODEL_IDS[first - 0x80].encode()
    return r.take(first)


def unrecordable_model_id(model_id: str) -> str | None:
    """Why `model_id` cannot go into a header (readers refuse non-printable ids, which become
    paths), or None when it can."""
    if not model_id.isprintable():
        return (f"model id {model_id!r} has non-printable characters, which an igc file cannot "
                "record")
    return None


def _model_id(raw: bytes) -> str:
    """The header's model id; it becomes a model spec (a path or hub id), so it is kept sane."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if len(raw) > MAX_MODEL_ID or not text.isprintable():
        raise FormatError(f"corrupted header: bad model id {raw[:MAX_MODEL_ID]!r}")
    return text


def read_header(data: bytes) -> tuple[Header, int]:
    """Parse and check the header at the start of `data` (which may hold only its first
    MAX_HEADER_BYTES); returns it and its length. Raises FormatError."""
    if len(data) < 4 or data[:3] != MAGIC:
        raise FormatError("not an igc file (bad magic bytes)")
    r = _Reader(data)
    r.take(3)
    version = r.byte()
    if version not in READABLE_VERSIONS:
        raise FormatError(f"igc file version {version} is not supported (this igc reads "
                          f"{', '.join(map(str, READABLE_VERSIONS))})")
    layout = r.byte()
    context, flags = 0, 0
    if version >= 5:
        flags, context = layout & 0x0F, layout >> 5
        order = _lookup(ORDERS, (layout >> 4) & 1, "token order")
        if context not in CONTEXT_MODES:
            raise FormatError(f"this file uses context mode {context}, which this igc does not "
                              f"know (it knows {', '.join(map(str, CONTEXT_MODES))}): a newer "
                              "igc may decode it")
    else:
        order = _lookup(ORDERS, layout >> 4, "token order")
    if version >= 4:
        known = RESIDUAL_FLAG | (sum(DISTRIBUTION_FLAGS.values()) if version >= 5 else 0)
        if layout & 0x0F & ~known:
            raise FormatError(f"corrupted header or newer file: unknown layout flags {layout:#04x}")
        residual = bool(layout & RESIDUAL_FLAG)
    else:
        tokenizer, residual = _lookup(TOKENIZER_CODES, layout & 0x0F, "tokenizer")
    distributions: dict[str, str] = {}

    def read_distribution(kind: str) -> None:
        if flags & DISTRIBUTION_FLAGS[kind]:
            name = _read_name(r, f"{kind} distribution")
            if not valid_distribution(name):
                raise FormatError(f"corrupted header: bad {kind} distribution name {name!r}")
            distributions[kind] = name

    height, width = r.varint(), r.varint()
    if version >= 4:
        channels, tile = r.take(2)
        tokenizer = _read_name(r, "tokenizer")
        read_distribution("tokenizer")
        coder = _read_name(r, "coder")
        read_distribution("coder")
        precision = r.byte()
    else:
        channels, tile, coder_code, precision = r.take(4)
    batch = r.varint()
    lane = r.varint() if version >= 2 else batch
    numerics = r.varint() if version >= 3 else 0
    strip_rows = r.varint() if version >= STRIPS_VERSION else 0
    model_plugin = _read_name(r, "model plugin") if version >= 4 else ""
    if version >= 4:
        read_distribution("model")
    fingerprint = r.take(8).hex()
    raw_id = _read_model_id(r, version)
    checksum = int.from_bytes(r.take(4), "little")
    region_checks = r.take(r.byte())
    payload_length = r.varint()
    end = r.pos
    stored_crc = int.from_bytes(r.take(2), "little")
    if zlib.crc32(data[:end]) & 0xFFFF != stored_crc:
        raise FormatError("corrupted file: header checksum mismatch")
    if version < 4:
        coder = _lookup(CODERS, coder_code, "coder")
    model_id = _model_id(raw_id)
    if version < 4:  # before plugins composed, a file was coded with ImageGPT or the uniform model
        model_plugin = "uniform" if model_id == "uniform" else "imagegpt"
    if len(region_checks) > MAX_REGIONS:
        raise FormatError(f"corrupted header: {len(region_checks)} region checks "
                          f"(at most {MAX_REGIONS})")
    if channels != 3:
        raise FormatError(f"corrupted header: {channels} channels (igc files hold RGB)")
    if height < 1 or width < 1 or tile < 1 or batch < 1 or not 1 <= lane <= batch:
        raise FormatError(f"corrupted header: image {height}x{width}, tile {tile}, batch {batch}, "
                          f"lane {lane}")
    if numerics > MAX_NUMERICS:
        raise FormatError(f"corrupted header: numerics {numerics}")
    if version >= STRIPS_VERSION and not 1 <= strip_rows <= height:
        raise FormatError(f"corrupted header: strips of {strip_rows} rows in an image of "
                          f"{height}")
    check_pixels(height, width, FormatError)
    header = Header(height, width, tile, model_id, fingerprint, checksum, bytes(region_checks),
                    payload_length, batch, channels, tokenizer, order, coder, precision, version,
                    lane, numerics, model_plugin, residual, distributions, context, strip_rows)
    return header, r.pos


def check_pixels(height: int, width: int, error: type[Exception]) -> None:
    """Raise `error` when an image is larger than IGC_MAX_PIXELS: the limit files are read
    under, so it bounds what igc writes too."""
    if height * width > max_pixels():
        raise error(f"image of {width}×{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels()} pixels (set IGC_MAX_PIXELS to raise it)")


def unpack(data: bytes) -> tuple[Header, bytes]:
    """Parse and check a file; raises FormatError for anything that is not a sound igc file."""
    header, end = read_header(data)
    payload_length = header.payload_length
    payload = data[end:]
    if len(payload) < payload_length:
        raise FormatError(f"file truncated: payload has {len(payload)} of {payload_length} bytes")
    if len(payload) > payload_length:
        raise FormatError(f"corrupted file: {len(payload) - payload_length} extra bytes after "
                          "the payload")
    return header, payload


def max_payload(header: Header) -> int:
    """The most payload bytes an igc encoder can write for the header's image: at most 4
    symbols per pixel (palette index + 3 residuals; subpixels: 3), each under 32 bits with
    24-bit probabilities, plus the coder's final words."""
    return MAX_PAYLOAD_PER_PIXEL * header.height * header.width + 256


def read_file(path: str | os.PathLike) -> bytes:
    """An .igc file's bytes, reading no more than its header allows: at most MAX_HEADER_BYTES,
    then the payload it declares (bounded by `max_payload`) and one byte to detect trailing
    data. A hostile file or a device (/dev/zero) cannot make igc read without end.
    Raises FormatError, or OSError for the file itself."""
    with open(path, "rb") as fh:
        return read_stream(fh)


def _read_up_to(fh: BinaryIO, n: int) -> bytes:
    """Up to n bytes: a pipe may hand them over in pieces."""
    parts, got = [], 0
    while got < n:
        part = fh.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_stream(fh: BinaryIO) -> bytes:
    """`read_file` for an open binary stream (a file, or standard input)."""
    head = _read_up_to(fh, MAX_HEADER_BYTES)
    header, end = read_header(head)
    if header.payload_length > max_payload(header):
        raise FormatError(f"corrupted header: a payload of {header.payload_length} bytes for "
                          f"{header.height}x{header.width} pixels (at most "
                          f"{max_payload(header)})")
    wanted = end + header.payload_length + 1 - len(head)
    data = head + (_read_up_to(fh, wanted) if wanted > 0 else b"")
    if len(data) > end + header.payload_length:
        try:
            st = os.fstat(fh.fileno())
            regular = stat.S_ISREG(st.st_mode)
        except (OSError, AttributeError, ValueError):  # no file descriptor (a BytesIO)
            regular = False
        extra = (f"{st.st_size - end - header.payload_length} extra bytes"
                 if regular else "extra bytes")
        raise FormatError(f"corrupted file: {extra} after the payload")
    return data


def is_igc(head: bytes) -> bool:
    """Whether data starting with `head` (4 bytes suffice) claims to be an igc file."""
    return head[:3] == MAGIC


def header_size(data: bytes) -> int:
    return len(data) - unpack(data)[0].payload_length

