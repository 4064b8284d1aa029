"""Classical lossless codecs, each at its strongest standard lossless setting.

They are the baselines the model-based compressor is measured against, so each one is set up to
compress as well as its library allows (a weak baseline would flatter the model):

==========  ==================================================================================
png         Pillow, ``optimize=True`` (zlib level 9; Pillow picks each row's filter adaptively)
zstd        raw pixels, zstandard level 19, behind a 4+ byte header (magic + H, W varints)
lzma        raw pixels, LZMA2 preset ``9 | PRESET_EXTREME`` (raw stream), same kind of header
webp        imagecodecs WebP lossless, ``level=100`` (quality 100 = maximum effort), ``method=6``
jxl         imagecodecs JPEG-XL lossless (``distance=0``, ``lossless=True``), ``effort=9``
jpeg2000    imagecodecs (OpenJPEG) J2K codestream, reversible 5/3 wavelet + reversible colour
            transform (RCT, ``mct=True``), no rate limit
jpegls      imagecodecs (CharLS) JPEG-LS, ``near=0``, after the HP1 colour transform
            (R-G, G, B-G mod 256) that CharLS offers but imagecodecs does not expose
==========  ==================================================================================

Every byte a decoder needs is counted: the zstd/lzma header that restores the shape is part of
the compressed size. Codec libraries are imported inside the methods, so importing this module
(which listing plugins does) costs nothing.
"""

from __future__ import annotations

import io
import warnings
from typing import ClassVar

import numpy as np

from igc.core.container import encode_varint
from igc.core.image import require_rgb
from igc.core.types import Image
from igc.errors import CodecUnavailable, FormatError, IgcError, ImageError

_INSTALL = "pip install imagecodecs"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _imagecodecs_reason(attr: str, label: str) -> str | None:
    """None when imagecodecs is importable and has `attr` (e.g. "WEBP") available."""
    try:
        import imagecodecs
    except Exception as exc:  # not installed, or a broken binary wheel
        return f"imagecodecs is not importable ({_first_line(exc)}): {_INSTALL}"
    codec = getattr(imagecodecs, attr, None)
    if codec is None or not getattr(codec, "available", False):
        return f"imagecodecs has no {label} support: {_INSTALL}"
    return None


class _Classical:
    """Shared plumbing: availability at construction, input checks, error translation."""

    name: ClassVar[str]
    label: ClassVar[str]  # human name used in messages
    lossless: ClassVar[bool] = True
    description: ClassVar[str]

    def __init__(self) -> None:
        reason = self.available()
        if reason:
            raise CodecUnavailable(f"compressor {self.name!r} is unavailable: {reason}")

    @classmethod
    def available(cls) -> str | None:
        return None

    def compress(self, image: Image) -> bytes:
        pixels = require_rgb(image)
        try:
            return bytes(self._encode(pixels))
        except IgcError:
            raise
        except Exception as exc:  # a codec limit (WebP's 16383 px side, ...), not a crash
            h, w = pixels.shape[:2]
            raise ImageError(
                f"{self.label} cannot code this {w}×{h} image: {_first_line(exc)}"
            ) from exc

    def decompress(self, data: bytes) -> Image:
        data = bytes(data)
        if not data:
            raise FormatError(f"not a {self.label} stream: no data")
        try:
            out = self._decode(data)
        except IgcError:
            raise
        except Exception as exc:
            raise FormatError(
                f"corrupt or truncated {self.label} stream: {_first_line(exc)}"
            ) from exc
        out = np.asarray(out)
        if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3:
            raise FormatError(
                f"{self.label} stream decoded to a {out.dtype} array of shape {out.shape}, "
                "not 8-bit RGB"
            )
        return np.ascontiguousarray(out)

    def _encode(self, pixels: Image) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes) -> Image:
        raise NotImplementedError


class PngCompressor(_Classical):
    """PNG via Pillow with ``optimize=True`` (zlib level 9, per-row adaptive filter choice)."""

    name = "png"
    label = "PNG"
    description = "PNG (Pillow, optimize=True: zlib level 9, adaptive row filters)"

    @classmethod
    def available(cls) -> str | None:
        try:
            from PIL import Image as _  # noqa: F401
        except Exception as exc:
            return f"Pillow is not importable ({_first_line(exc)}): pip install pillow"
        return None

    def _encode(self, pixels: Image) -> bytes:
        from PIL import Image as PILImage

        buffer = io.BytesIO()
        PILImage.fromarray(pixels, "RGB").save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def _decode(self, data: bytes) -> Image:
        from PIL import Image as PILImage

        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise FormatError("not a PNG stream: bad signature")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(io.BytesIO(data), formats=["PNG"]) as im:
                im.load()
                if im.mode != "RGB":
                    raise FormatError(f"PNG stream holds a {im.mode} image, not 8-bit RGB")
                return np.asarray(im, dtype=np.uint8).copy()


# -- raw pixels + general-purpose compressor --------------------------------------------------


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 35:  # at most 5 bytes: a 32-bit side
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    raise ValueError("bad or truncated size field")


def _raw_header(magic: bytes, pixels: Image) -> bytes:
    """2-byte magic + height + width as LEB128 varints: 4 bytes up to 127×127, 6 up to 16383²."""
    h, w = pixels.shape[:2]
    return magic + encode_varint(h) + encode_varint(w)


def _read_raw_header(magic: bytes, label: str, data: bytes) -> tuple[int, int, bytes]:
    if data[: len(magic)] != magic:
        raise FormatError(f"not a {label} stream: bad magic {data[: len(magic)]!r}")
    try:
        h, pos = _read_uvarint(data, len(magic))
        w, pos = _read_uvarint(data, pos)
    except ValueError:
        raise FormatError(f"corrupt or truncated {label} stream: bad header") from None
    if h < 1 or w < 1:
        raise FormatError(f"corrupt {label} stream: header gives a {w}×{h} image")
    return h, w, data[pos:]


class ZstdCompressor(_Classical):
    """Raw RGB bytes (row-major, interleaved) compressed by zstandard at level 19.

    A small header (magic ``Iz``, then height and width as LEB128 varints: 4 bytes up to 127×127)
    restores the shape; it is counted in the size.
    """

    name = "zstd"
    label = "zstd"
    description = "raw pixels, zstd level 19 (zstandard) + varint shape header"
    level = 19
    magic = b"Iz"

    @classmethod
    def available(cls) -> str | None:
        try:
            import zstandard  # noqa: F401
        except Exception as exc:
            return f"zstandard is not importable ({_first_line(exc)}): pip install zstandard"
        return None

    def _encode(self, pixels: Image) -> bytes:
        import zstandard

        body = zstandard.ZstdCompressor(level=self.level).compress(pixels.tobytes())
        return _raw_header(self.magic, pixels) + body

    def _decode(self, data: bytes) -> Image:
        import zstandard

        h, w, body = _read_raw_header(self.magic, self.label, data)
        expected = h * w * 3
        declared = zstandard.frame_content_size(body)
        if declared != expected:  # checked before anything is allocated
            raise FormatError(
                f"corrupt zstd stream: frame holds {declared} bytes, header says {w}×{h}×3"
            )
        raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=expected)
        if len(raw) != expected:
            raise FormatError(f"truncated zstd stream: {len(raw)} of {expected} bytes")
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()


def _lzma_filters(n_bytes: int) -> list[dict]:
    """LZMA2 preset 9e, its 64 MiB dictionary shrunk to the input size.

    A dictionary larger than the input cannot find more matches, so the output is the same as
    with the full preset, but a small image no longer makes liblzma allocate ~700 MB. Encoder and
    decoder derive the same value from the image size.
    """
    import lzma

    preset_dict = 64 << 20
    dict_size = max(4096, 1 << max(0, n_bytes - 1).bit_length())
    return [
        {
            "id": lzma.FILTER_LZMA2,
            "preset": 9 | lzma.PRESET_EXTREME,
            "dict_size": min(dict_size, preset_dict),
        }
    ]


class LzmaCompressor(_Classical):
    """Raw RGB bytes compressed by LZMA2 at preset ``9 | PRESET_EXTREME`` (stdlib `lzma`).

    Written as a raw LZMA2 stream (no .xz container, whose index and checksum would only add
    bytes) behind the same kind of shape header as zstd (magic ``Il``).
    """

    name = "lzma"
    label = "LZMA"
    description = "raw pixels, LZMA2 preset 9e (raw stream) + varint shape header"
    magic = b"Il"

    @classmethod
    def available(cls) -> str | None:
        try:
            import lzma  # noqa: F401
        except Exception as exc:  # Python built without liblzma
            return f"this Python has no lzma module ({_first_line(exc)})"
        return None

    def _encode(self, pixels: Image) -> bytes:
        import lzma

        raw = pixels.tobytes()
        body = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(raw)))
        return _raw_header(self.magic, pixels) + body

    def _decode(self, data: bytes) -> Image:
        import lzma

        h, w, body = _read_raw_header(self.magic, self.label, data)
        expected = h * w * 3
        decoder = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_lzma_filters(expected))
        raw = decoder.decompress(body, max_length=expected + 1)
        if len(raw) != expected or not decoder.eof:
            raise FormatError(
                f"corrupt or truncated LZMA stream: {len(raw)} bytes decoded, expected {expected}"
            )
        return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()


# -- image codecs through imagecodecs ---------------------------------------------------------


class WebpCompressor(_Classical):
    """WebP lossless (libwebp via imagecodecs) at maximum effort: quality 100, method 6."""

    name = "webp"
    label = "WebP"
    description = "WebP lossless (imagecodecs/libwebp), level=100, method=6 (maximum effort)"

    @classmethod
    def available(cls) -> str | None:
        return _imagecodecs_reason("WEBP", "WebP")

    def _encode(self, pixels: Image) -> bytes:
        import imagecodecs

        return imagecodecs.webp_encode(pixels, level=100, lossless=True, method=6)

    def _decode(self, data: bytes) -> Image:
        import imagecodecs

        return imagecodecs.webp_decode(data, hasalpha=False)


class JxlCompressor(_Classical):
    """JPEG-XL lossless (libjxl via imagecodecs): ``distance=0``, ``lossless=True``, effort 9."""

    name = "jxl"
    label = "JPEG-XL"
    description = "JPEG-XL lossless (imagecodecs/libjxl), distance=0, effort=9"

    @classmethod
    def available(cls) -> str | None:
        return _imagecodecs_reason("JPEGXL", "JPEG-XL")

    def _encode(self, pixels: Image) -> bytes:
        import imagecodecs

        return imagecodecs.jpegxl_encode(pixels, effort=9, distance=0, lossless=True)

    def _decode(self, data: bytes) -> Image:
        import imagecodecs

        return imagecodecs.jpegxl_decode(data)


class Jpeg2000Compressor(_Classical):
    """JPEG 2000 lossless (OpenJPEG via imagecodecs) as a bare J2K codestream.

    Reversible 5/3 integer wavelet (``reversible=True``) with the reversible colour transform
    (``mct=True``), no rate limit (``level=0``). The codestream is used rather than the JP2
    container, whose boxes carry no pixel information.
    """

    name = "jpeg2000"
    label = "JPEG 2000"
    description = "JPEG 2000 lossless J2K codestream (imagecodecs/OpenJPEG), reversible 5/3 + RCT"

    @classmethod
    def available(cls) -> str | None:
        return _imagecodecs_reason("JPEG2K", "JPEG 2000")

    def _encode(self, pixels: Image) -> bytes:
        import imagecodecs

        return imagecodecs.jpeg2k_encode(
            pixels, level=0, codecformat="J2K", reversible=True, mct=True
        )

    def _decode(self, data: bytes) -> Image:
        import imagecodecs

        return imagecodecs.jpeg2k_decode(data)


def _hp1_forward(pixels: Image) -> Image:
    out = pixels.copy()
    out[..., 0] -= pixels[..., 1]  # uint8 arithmetic wraps: mod 256
    out[..., 2] -= pixels[..., 1]
    return out


def _hp1_inverse(coded: Image) -> Image:
    out = coded.copy()
    out[..., 0] += coded[..., 1]
    out[..., 2] += coded[..., 1]
    return out


class JpeglsCompressor(_Classical):
    """JPEG-LS lossless (CharLS via imagecodecs), ``near=0``, with the HP1 colour transform.

    imagecodecs codes the three RGB components without any decorrelation, which leaves JPEG-LS
    far behind (≈ 4.4 bits/subpixel on Kodak, worse than PNG). CharLS's standard remedy is the
    HP1 transform, (R-G, G, B-G) mod 256; imagecodecs does not expose it, so it is applied here
    before coding and undone after decoding (exact, integer). ≈ 3.3 bits/subpixel on Kodak.
    """

    name = "jpegls"
    label = "JPEG-LS"
    description = (
        "JPEG-LS lossless (imagecodecs/CharLS), near=0, HP1 colour transform (R-G, G, B-G)"
    )

    @classmethod
    def available(cls) -> str | None:
        return _imagecodecs_reason("JPEGLS", "JPEG-LS")

    def _encode(self, pixels: Image) -> bytes:
        import imagecodecs

        return imagecodecs.jpegls_encode(_hp1_forward(pixels), level=0)

    def _decode(self, data: bytes) -> Image:
        import imagecodecs

        coded = np.asarray(imagecodecs.jpegls_decode(data))
        if coded.dtype != np.uint8 or coded.ndim != 3 or coded.shape[2] != 3:
            raise FormatError(f"JPEG-LS stream holds a {coded.dtype} {coded.shape} array, not RGB")
        return _hp1_inverse(coded)


COMPRESSORS = (
    PngCompressor,
    WebpCompressor,
    JxlCompressor,
    Jpeg2000Compressor,
    JpeglsCompressor,
    ZstdCompressor,
    LzmaCompressor,
)

