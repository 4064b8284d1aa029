"""Loading images into 8-bit RGB, honestly.

igc codes (H, W, 3) uint8 RGB. Anything else is converted, and every conversion is written in
`LoadedImage.note` so a report can say what was measured:

=====================  =============================  ===========================================
source                 strict (igc compress)          non-strict (igc bench)
=====================  =============================  ===========================================
8-bit RGB              as is, note ""                 as is, note ""
L, 1-bit               replicated to 3 channels (exact, noted)
P (palette)            expanded to RGB (exact, noted); with transparency: treated as RGBA
RGBA, LA, PA           opaque alpha: dropped (exact, noted)
  non-opaque alpha     refused                        alpha dropped, noted "alpha dropped (not coded)"
16-bit, 32-bit int     refused                        scaled to 8 bits (high byte), noted
PPM/PGM maxval != 255  refused (read rescaled)        rescaled by Pillow, noted
RGB/L + tRNS key       refused if a pixel matches     key dropped, noted
float (F)              refused                        scaled to 8 bits, noted
CMYK, YCbCr, LAB, HSV  refused (conversion inexact)   converted by Pillow, noted
animated / multi-page  refused                        first frame, noted
=====================  =============================  ===========================================

Empty, unreadable, non-image and zero-size files, and images with more pixels than the cap
(``max_pixels``, else ``$IGC_MAX_PIXELS``, else 2**28; checked from the header before any
decoding) raise `ImageError` with one line naming the file. No Pillow exception or warning escapes.
Pixels are coded as stored: an EXIF orientation and an ICC profile are not applied, and when a file
has one the note says it was dropped (never silently).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from igc.core.files import file_kind
from igc.core.types import Image, LoadedImage
from igc.errors import ImageError, UsageError

MAX_PIXELS_ENV = "IGC_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 2**28

_PIL_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is a module global


def resolve_max_pixels(max_pixels: int | None = None) -> int:
    """The pixel cap: the argument, else ``$IGC_MAX_PIXELS``, else 2**28."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise UsageError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        return max_pixels
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{MAX_PIXELS_ENV} must be a positive integer, got {text!r}")
    return value


# -- arrays from library users ----------------------------------------------------------------


def _describe(arr: Any) -> str:
    return (
        f"{getattr(arr, 'dtype', type(arr).__name__)} array of shape {getattr(arr, 'shape', '?')}"
    )


def require_rgb(pixels: Any) -> Image:
    """`pixels` if it is a uint8 (H, W, 3) array with H, W >= 1 (made C-contiguous), else
    `ImageError`. What every compressor accepts; see `as_rgb_array` to convert other layouts."""
    if not isinstance(pixels, np.ndarray):
        raise ImageError(
            f"expected a numpy uint8 array of shape (H, W, 3), got {type(pixels).__name__}"
        )
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"expected uint8 RGB pixels of shape (H, W, 3), got a {_describe(pixels)}")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ImageError(f"image has zero size: {_describe(pixels)}")
    return np.ascontiguousarray(pixels)


def as_rgb_array(obj: Any) -> Image:
    """Validate an array given by a library user and return it as uint8 (H, W, 3).

    Accepted: uint8 (H, W, 3); (H, W) or (H, W, 1) grayscale, replicated to 3 channels;
    (H, W, 4) whose alpha is all 255, alpha dropped. Anything else (other dtypes, a non-opaque
    alpha, zero size, other shapes) raises `ImageError` naming the shape and dtype. Values are
    never cast or rescaled silently.
    """
    if not isinstance(obj, np.ndarray):
        if hasattr(obj, "__array__") or isinstance(obj, (list, tuple)):
            try:
                obj = np.asarray(obj)
            except Exception as exc:
                raise ImageError(f"cannot read pixels from a {type(obj).__name__}: {exc}") from None
        else:
            raise ImageError(f"expected a uint8 pixel array, got {type(obj).__name__}")
    arr = obj
    if arr.dtype != np.uint8:
        raise ImageError(
            f"expected uint8 pixels, got a {_describe(arr)}; convert to 8 bits per channel first"
        )
    # the size is checked from the shape, before anything is copied: a broadcast view costs
    # nothing to make, and copying one past the pixel limit could take gigabytes
    if arr.ndim in (2, 3) and (arr.ndim == 2 or arr.shape[2] in (1, 3, 4)):
        height, width = arr.shape[:2]
        if height < 1 or width < 1:
            raise ImageError(f"image has zero size: {_describe(obj)}")
        cap = resolve_max_pixels()
        if height * width > cap:
            raise ImageError(f"image of {width}×{height} = {width * height} pixels exceeds the "
                             f"limit of {cap} pixels (set IGC_MAX_PIXELS to raise it)")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        gray = arr.reshape(arr.shape[0], arr.shape[1]) if arr.ndim == 3 else arr
        arr = np.repeat(gray[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        if not bool((arr[:, :, 3] == 255).all()):
            raise ImageError(
                f"the {_describe(arr)} has a non-opaque alpha channel; igc codes RGB only"
            )
        arr = arr[:, :, :3]
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageError(
            f"expected pixels of shape (H, W, 3), (H, W) or (H, W, 4), got a {_describe(arr)}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"image has zero size: {_describe(obj)}")
    return np.ascontiguousarray(arr)


# -- files ------------------------------------------------------------------------------------


@contextmanager
def _pillow_guard():
    """Pillow under our pixel cap, its bomb warning as an error, every other warning muted.

    Pillow's own limit is lifted while the header is read (so our check, with the image's size
    in the message, decides); the caller sets it to its cap before decoding, so that any frame
    or sub-image Pillow checks later is held to the same cap.
    """
    from PIL import Image as PILImage

    with _PIL_LOCK:
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", PILImage.DecompressionBombWarning)
                yield PILImage
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved


def _rawmode(im: Any) -> str:
    try:
        args = im.tile[0][3] if im.tile else None
    except Exception:
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else None
    return args if isinstance(args, str) else ""


def _source_bits(im: Any) -> int:
    """Bits per sample of the file, as far as Pillow tells (it reads 16-bit RGB PNG as 'RGB')."""
    if im.mode.startswith("I;16"):
        return 16
    if im.mode in ("I", "F"):
        return 16 if "16" in _rawmode(im) else 32
    return 16 if ";16" in _rawmode(im) else 8


def _scale_to_8bit(values: np.ndarray, bits: int) -> tuple[np.ndarray, str]:
    """(uint8 array, how) for integer or float samples."""
    if values.dtype.kind == "f":
        finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(finite.min()), float(finite.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.round(finite * 255.0).astype(np.uint8), "float [0, 1] → 8-bit"
        span = hi - lo or 1.0
        return np.round((finite - lo) * (255.0 / span)).astype(np.uint8), (
            f"float [{lo:g}, {hi:g}] → 8-bit (min–max scaled)"
        )
    wide = values.astype(np.int64)
    lo, hi = int(wide.min()), int(wide.max())
    if lo >= 0 and hi <= 65535:
        return (wide >> 8).astype(np.uint8), f"{min(bits, 16)}-bit → 8-bit (high byte)"
    span = hi - lo or 1
    return ((wide - lo) * 255 // span).astype(np.uint8), (
        f"{bits}-bit integer [{lo}, {hi}] → 8-bit (min–max scaled)"
    )


def _maxval(im: Any) -> int | None:
    """A PPM/PGM file's maxval, read before decoding: Pillow rescales any other than 255."""
    if im.format != "PPM" or not im.tile:
        return None
    args = im.tile[0][3]
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], int):
        return args[1]
    return None


def _check_maxval(maxval: int | None, mode: str, strict: bool, label: str,
                  notes: list[str]) -> None:
    """Refuse (strict) or note a maxval other than 255: the values read are not the file's."""
    if maxval is None or maxval == 255:
        return
    if strict:
        if maxval > 255:
            raise ImageError(f"{label}: 16-bit image (maxval {maxval}): igc codes 8-bit RGB only")
        raise ImageError(f"{label}: maxval {maxval}, not 255: the samples are rescaled when "
                         "read, so they cannot be coded as stored; igc codes 8-bit RGB only")
    if maxval < 255:
        notes.append(f"maxval {maxval} → 255 (rescaled)")
    elif mode == "RGB":  # Pillow scaled the samples to 8 bits itself (gray ones: to 16 bits)
        notes.append(f"16-bit (maxval {maxval}) → 8-bit (scaled)")


def _keyed(im: Any, strict: bool, label: str, notes: list[str]) -> np.ndarray:
    """RGB or grayscale with a tRNS colour key: pixels of that colour are transparent."""
    rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
    transparent = int((rgba[:, :, 3] != 255).sum())
    if im.mode != "RGB":
        notes.append("grayscale → RGB (replicated)")
    if not transparent:
        notes.append("transparency key matches no pixel (dropped)")
    elif strict:
        raise ImageError(f"{label} has a transparency key (tRNS) that makes {transparent} "
                         "pixel(s) transparent; igc codes RGB only")
    else:
        notes.append("transparency key dropped (not coded)")
    return rgba[:, :, :3]


def _dropped_metadata(im: Any) -> list[str]:
    """Notes for what igc does not apply: an EXIF orientation and an ICC profile."""
    notes = []
    try:
        orientation = im.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block: nothing we could apply either
        orientation = None
    if orientation not in (None, 1):
        notes.append(f"EXIF orientation {orientation} not applied (pixels coded as stored)")
    profile = im.info.get("icc_profile")
    if profile:
        name = _profile_name(profile)
        notes.append(f"ICC profile{f' {name!r}' if name else ''} dropped (colours coded as "
                     "stored, not converted)")
    return notes


def _profile_name(profile: bytes) -> str:
    """The profile's description ('sRGB IEC61966-2.1'), or "" when it cannot be read."""
    try:
        import io

        from PIL import ImageCms

        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    except Exception:  # no LittleCMS in this Pillow, or a malformed profile
        return ""


def _alpha(rgb: np.ndarray, alpha: np.ndarray, strict: bool, label: str, notes: list[str]):
    if bool((alpha == 255).all()):
        notes.append("opaque alpha dropped")
    elif strict:
        raise ImageError(f"{label} has a non-opaque alpha channel; igc codes RGB only")
    else:
        notes.append("alpha dropped (not coded)")
    return rgb


def _to_rgb(im: Any, bits: int, strict: bool, label: str, notes: list[str]) -> np.ndarray:
    """The loaded Pillow image as uint8 (H, W, 3), appending what was done to `notes`.

    `bits` is `_source_bits` taken before loading (Pillow forgets the raw mode once loaded).
    """
    mode = im.mode
    if bits != 8:
        kind = "float" if mode == "F" else f"{bits}-bit"
        if strict:
            raise ImageError(f"{label}: {kind} image: igc codes 8-bit RGB only")
        if mode.startswith("I") or mode == "F":
            values = np.asarray(im)
            gray, how = _scale_to_8bit(values, bits)
            notes.append(how)
            notes.append("grayscale → RGB (replicated)")
            return np.repeat(gray[:, :, None], 3, axis=2)
        # RGB/RGBA/LA read from 16-bit samples: Pillow already kept the high byte.
        notes.append("16-bit → 8-bit (high byte)")

    if mode in ("RGB", "L") and "transparency" in im.info:
        return _keyed(im, strict, label, notes)
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode == "RGBX":
        notes.append("padding channel dropped")
        return np.asarray(im, dtype=np.uint8)[:, :, :3]
    if mode in ("L", "1"):
        gray = np.asarray(im.convert("L") if mode == "1" else im, dtype=np.uint8)
        notes.append(
            "1-bit → RGB (0/255, replicated)" if mode == "1" else "grayscale → RGB (replicated)"
        )
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" not in im.info:
        notes.append("palette → RGB (exact)")
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode in ("P", "PA", "RGBA"):
        if mode != "RGBA":
            notes.append("palette → RGBA (exact)")
        rgba = np.asarray(im.convert("RGBA") if mode != "RGBA" else im, dtype=np.uint8)
        return _alpha(rgba[:, :, :3], rgba[:, :, 3], strict, label, notes)
    if mode == "LA":
        la = np.asarray(im, dtype=np.uint8)
        gray = _alpha(la[:, :, 0], la[:, :, 1], strict, label, notes)
        notes.append("grayscale → RGB (replicated)")
        return np.repeat(gray[:, :, None], 3, axis=2)
    # CMYK, YCbCr, LAB, HSV, RGBa, La, ...: Pillow's conversion is not exact.
    if strict:
        raise ImageError(
            f"{label}: {mode} image: converting it to RGB is not exact; igc codes 8-bit RGB only"
        )
    try:
        converted = im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"{label}: cannot convert a {mode} image to RGB: {exc}") from None
    notes.append(f"{mode} → RGB (Pillow conversion, not exact)")
    return np.asarray(converted, dtype=np.uint8)


def load_image(
    path: str | os.PathLike,
    *,
    strict: bool,
    max_pixels: int | None = None,
    name: str | None = None,
) -> LoadedImage:
    """Read an image file as 8-bit RGB; see the module docstring for what each mode becomes.

    strict=True (what `igc compress` uses) refuses any conversion that is not exact;
    strict=False (bench) converts and says so in `note`.
    """
    p = Path(path)
    label = str(p)
    cap = resolve_max_pixels(max_pixels)
    if not p.exists():
        raise ImageError(f"{label}: no such file")
    if p.is_dir():
        raise ImageError(f"{label}: is a directory, not an image file")
    try:
        st = p.stat()
        piped = stat.S_ISFIFO(st.st_mode)  # <(cmd), /dev/stdin: read as standard input is
        if piped:
            with open(p, "rb") as fh:
                data = read_image_stream(fh, label=label, max_pixels=cap)
    except OSError as exc:
        raise ImageError(f"{label}: cannot read: {exc.strerror or exc}") from None
    name = name if name is not None else p.name
    if piped:
        if not data:
            raise ImageError(f"{label}: empty input (0 bytes)")
        return _decode(io.BytesIO(data), label, strict, cap, name)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{label}: is {file_kind(st.st_mode)}, not an image file")
    if st.st_size == 0:
        raise ImageError(f"{label}: empty file (0 bytes)")
    return _decode(p, label, strict, cap, name)


def read_image_stream(stream: Any, *, label: str = "-", max_pixels: int | None = None) -> bytes:
    """An image file's bytes from a stream (standard input), read no further than any image igc
    accepts can need: 4 bytes per allowed pixel (uncompressed RGBA) plus 1 MiB of headers and
    metadata. An endless stream (/dev/zero) is refused at that bound, not read until memory ends."""
    limit = 4 * resolve_max_pixels(max_pixels) + (1 << 20)
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{label}: more than {limit:,} bytes, larger than any image within the "
                         "pixel limit (set IGC_MAX_PIXELS to raise it)")
    return data


def load_image_data(data: bytes, *, strict: bool, label: str = "-",
                    max_pixels: int | None = None) -> LoadedImage:
    """`load_image` for an image file's bytes (standard input); `label` names it in messages."""
    if not data:
        raise ImageError(f"{label}: empty input (0 bytes)")
    return _decode(io.BytesIO(data), label, strict, resolve_max_pixels(max_pixels), label)


def _decode(p: Any, label: str, strict: bool, cap: int, name: str) -> LoadedImage:
    """Pillow's decode of a path or binary file object, converted as the module docstring says."""
    try:
        from PIL import Image as _  # noqa: F401
    except Exception as exc:
        raise ImageError(f"{label}: cannot load images: Pillow is not importable ({exc})") from None

    notes: list[str] = []
    with _pillow_guard() as PILImage:
        try:
            with PILImage.open(p) as im:
                w, h = im.size
                if w < 1 or h < 1:
                    raise ImageError(f"{label}: image has zero size ({w}×{h})")
                if w * h > cap:
                    raise ImageError(
                        f"{label}: {w}×{h} = {w * h} pixels exceeds the limit of {cap} "
                        f"(possible decompression bomb; raise it with max_pixels or "
                        f"${MAX_PIXELS_ENV})"
                    )
                frames = int(getattr(im, "n_frames", 1) or 1)
                if frames > 1:
                    if strict:
                        raise ImageError(
                            f"{label}: animated or multi-page image ({frames} frames); "
                            "igc codes a single still image"
                        )
                    im.seek(0)
                    notes.append(f"first of {frames} frames")
                bits = _source_bits(im)
                maxval = _maxval(im)
                if maxval is not None and maxval > 255 and im.mode.startswith("I"):
                    bits = 16  # Pillow widens a 9-16 bit PGM to 16 bits
                _check_maxval(maxval, im.mode, strict, label, notes)
                PILImage.MAX_IMAGE_PIXELS = cap  # frames and sub-images are checked too
                im.load()
                pixels = _to_rgb(im, bits, strict, label, notes)
                notes.extend(_dropped_metadata(im))
        except ImageError:
            raise
        except PILImage.UnidentifiedImageError:
            raise ImageError(
                f"{label}: not an image file (or a format Pillow cannot read)"
            ) from None
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise ImageError(
                f"{label}: more pixels than the limit of {cap} (possible decompression bomb; "
                f"raise it with max_pixels or ${MAX_PIXELS_ENV})"
            ) from None
        except MemoryError:
            raise ImageError(f"{label}: not enough memory to decode this image") from None
        except (
            OSError,
            SyntaxError,
            ValueError,
            TypeError,
            EOFError,
            KeyError,
            IndexError,
            struct.error,
        ) as exc:
            detail = str(exc).strip().splitlines()
            reason = detail[0] if detail else type(exc).__name__
            raise ImageError(f"{label}: unreadable or corrupt image: {reason}") from None

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:  # defensive: a Pillow mode we mishandled
        raise ImageError(f"{label}: decoded to an unexpected {_describe(pixels)}")
    return LoadedImage(
        name=name,
        pixels=pixels,
        note="; ".join(notes),
        source=label,
    )


def encode_png(pixels: Any) -> bytes:
    """Pixels (anything `as_rgb_array` accepts) as the bytes of a lossless 8-bit RGB PNG."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(as_rgb_array(pixels), "RGB").save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


# Lossless formats an output may be written in, by suffix (Pillow's name and save options);
# igc decompress picks one from the output's name, as djxl does.
LOSSLESS_FORMATS = {
    ".png": ("PNG", {"compress_level": 9}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {"compression": "tiff_lzw"}),
    ".tiff": ("TIFF", {"compression": "tiff_lzw"}),
    ".ppm": ("PPM", {}),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "method": 6, "exact": True}),
}
WEBP_MAX_SIDE = 16383  # the WebP format's limit on width and height
# Why some image suffixes are refused; any other image suffix igc does not write is refused too.
NOT_LOSSLESS = {".jpg": "JPEG is lossy", ".jpeg": "JPEG is lossy", ".jpe": "JPEG is lossy",
                ".jfif": "JPEG is lossy", ".gif": "GIF holds 256 colours",
                ".pgm": "PGM holds grey levels only"}
# Image suffixes Pillow may not register here (plugins), refused all the same.
OTHER_IMAGE_SUFFIXES = {".jxl", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".jpx", ".qoi"}


def output_format(path: str | os.PathLike | None) -> str:
    """The format a decoded image named `path` is written in: by its suffix where it names a
    lossless format igc writes, PNG for a name that is not an image's (and for standard
    output, None). Any other image suffix is a usage error, in one line, before any work."""
    from PIL import Image as PILImage
    from PIL import features

    suffix = os.path.splitext(os.fspath(path))[1].lower() if path is not None else ""
    if suffix in LOSSLESS_FORMATS:
        fmt = LOSSLESS_FORMATS[suffix][0]
        if fmt == "WEBP" and not features.check("webp"):
            raise UsageError(f"{os.fspath(path)}: this Pillow was built without WebP; name "
                             "the output .png")
        return fmt
    if suffix in NOT_LOSSLESS or suffix in OTHER_IMAGE_SUFFIXES or (
            suffix and suffix in PILImage.registered_extensions()):
        why = NOT_LOSSLESS.get(suffix, f"igc decompress does not write {suffix[1:].upper()}")
        choices = ", ".join(sorted(LOSSLESS_FORMATS))
        raise UsageError(f"{os.fspath(path)}: {why}, and igc writes the decoded pixels "
                         f"exactly; name the output {choices} (or none: PNG)")
    return "PNG"


def check_output_size(path: str | os.PathLike | None, height: int, width: int) -> None:
    """Refuse, before decoding, an image the output's format cannot hold (WebP: 16383 per
    side)."""
    if output_format(path) == "WEBP" and max(height, width) > WEBP_MAX_SIDE:
        raise UsageError(f"{os.fspath(path)}: WebP holds at most {WEBP_MAX_SIDE} pixels a side, "
                         f"and the image is {width}×{height}; name the output .png")


def encode_image(pixels: Any, path: str | os.PathLike | None = None) -> bytes:
    """Pixels as the bytes of a lossless 8-bit RGB image in `output_format(path)`, read back
    and compared before they are returned. A failure names the output (a usage error: the
    pixels are fine, the format is not)."""
    from PIL import Image as PILImage

    fmt = output_format(path)
    if fmt == "PNG":
        return encode_png(pixels)
    arr = as_rgb_array(pixels)
    check_output_size(path, *arr.shape[:2])
    options = next(opts for name, opts in LOSSLESS_FORMATS.values() if name == fmt)
    buffer = io.BytesIO()
    try:
        PILImage.fromarray(arr, "RGB").save(buffer, format=fmt, **options)
        with PILImage.open(io.BytesIO(buffer.getvalue())) as back:
            same = np.array_equal(np.asarray(back.convert("RGB")), arr)
    except (OSError, KeyError, ValueError) as exc:
        raise UsageError(f"{os.fspath(path)}: cannot write {fmt} here ({exc}); name the "
                         "output .png") from None
    if not same:
        raise UsageError(f"{os.fspath(path)}: {fmt} as written here does not hold these pixels "
                         "exactly; name the output .png")
    return buffer.getvalue()


def save_png(pixels: Any, path: str | os.PathLike) -> None:
    """Write pixels (anything `as_rgb_array` accepts) as a lossless 8-bit RGB PNG."""
    arr = as_rgb_array(pixels)
    from PIL import Image as PILImage

    try:
        PILImage.fromarray(arr, "RGB").save(os.fspath(path), format="PNG", compress_level=9)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write PNG: {exc.strerror or exc}") from None
