"""The benchmark: every selected compressor on the same images, with honest bookkeeping.

Ratios are original bits / compressed bits where the compressed bits are the full output (headers
included). Every compressor that claims to be lossless is decoded and compared pixel for pixel,
and for model-based compressors the model's own code length (-sum log2 p) is reported beside the
file size, so the coder's overhead is visible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from igc.benchmark.environment import environment
from igc.core.protocols import Described, ModelBased
from igc.core.types import Image, LoadedImage
from igc.errors import IgcError, PluginError, UsageError


@dataclass
class Row:
    image: str
    compressor: str
    height: int
    width: int
    original_bits: int
    compressed_bits: int | None
    bits_per_subpixel: float | None
    ratio: float | None
    lossless: bool
    roundtrip_ok: bool | None  # None: not checked (lossy codec or --no-verify)
    model_bits: float | None = None
    overhead_percent: float | None = None  # (compressed - model bits) / model bits
    header_bits: int | None = None  # container header, for model-based compressors
    coder_overhead_percent: float | None = None  # (payload - model bits) / model bits
    estimate: bool = False  # compressed_bits are model bits, no file was written
    encode_seconds: float = 0.0
    decode_seconds: float | None = None
    error: str | None = None
    # compressor-specific fields, flattened into the JSON row (palette models: index/residual
    # bits; the lossy palette mode: psnr, png_bits_quantized, jxl_bits_quantized)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.model_bits is None:
            for key in ("model_bits", "overhead_percent", "header_bits",
                        "coder_overhead_percent"):
                d.pop(key)
        d.update(d.pop("extra"))
        return d


@dataclass
class BenchResult:
    results: list[Row]
    summary: dict[str, dict]
    environment: dict[str, Any]
    images: list[dict] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "results": [r.to_dict() for r in self.results],
            "summary": self.summary,
            "environment": self.environment,
            "images": self.images,
            "unavailable": self.unavailable,
        }


def summarise(rows: list[Row], names: list[str]) -> dict[str, dict]:
    summary = {}
    for name in names:
        ok = [r for r in rows if r.compressor == name and r.compressed_bits]
        if not ok:
            continue
        original = sum(r.original_bits for r in ok)
        compressed = sum(r.compressed_bits for r in ok)
        entry = {
            "total_ratio": original / compressed,
            "mean_ratio": float(np.mean([r.ratio for r in ok])),
            "bits_per_subpixel": compressed / (original / 8),
            "images": len(ok),
            "errors": sum(1 for r in rows if r.compressor == name and r.error),
            "below_ratio_1": [r.image for r in ok if r.ratio < 1],
            # None when nothing was decoded (--no-verify, --estimate, lossy): not checked, not "ok"
            "roundtrip_ok": None if all(r.roundtrip_ok is None for r in ok) else (
                all(r.roundtrip_ok is not False for r in ok)
                and not any(r.error for r in rows if r.compressor == name)),
            "encode_subpixels_per_second": (original / 8) / max(sum(r.encode_seconds for r in ok),
                                                                  1e-9),
        }
        decoded = [r for r in ok if r.decode_seconds]
        if decoded:
            entry["decode_subpixels_per_second"] = sum(r.original_bits / 8 for r in decoded) / max(
                sum(r.decode_seconds for r in decoded), 1e-9)
        model_rows = [r for r in ok if r.model_bits is not None]
        if model_rows:
            mb = sum(r.model_bits for r in model_rows)
            entry["model_bits"] = mb
            entry["model_bits_per_subpixel"] = mb / sum(r.original_bits / 8 for r in model_rows)
            if not any(r.estimate for r in model_rows):
                entry["overhead_percent"] = 100 * (
                    sum(r.compressed_bits for r in model_rows) - mb) / mb
            coded = [r for r in model_rows if r.header_bits is not None]
            if coded:
                mb_coded = sum(r.model_bits for r in coded)
                payload = sum(r.compressed_bits - r.header_bits for r in coded)
                entry["coder_overhead_percent"] = 100 * (payload - mb_coded) / mb_coded
                entry["max_header_bytes"] = max(r.header_bits for r in coded) // 8
            entry["estimate"] = any(r.estimate for r in model_rows)
        summary[name] = entry
    return summary


def codec_of(comp: Any, image: Image) -> Any:
    """The codec a model-based compressor codes `image` with (the default pair picks one per
    image size, igc.compressors.photo_split); None for a compressor without one."""
    codec_for = getattr(comp, "codec_for", None)
    return codec_for(image) if codec_for is not None else getattr(comp, "codec", None)


def report_fields(codec: Any, result: Any, image: Image) -> dict:
    """Extra bench fields of an encode with a lossy tokenizer (the palette): the bit split, and
    for a lossy file its PSNR and what PNG and JPEG-XL take for the same approximated image (the
    fair comparison)."""
    if result.approximation is None:
        return {}
    from igc.core.palette import psnr

    out = {"tokenizer": codec.tokenizer.name, "mode": codec.mode,
           "index_bits": result.token_bits, "residual_bits": result.residual_bits}
    if not codec.lossless:
        out["psnr"] = psnr(image, result.approximation)
        out["png_bits_quantized"] = _classical_bits("png", result.approximation)
        out["jxl_bits_quantized"] = _classical_bits("jxl", result.approximation)
    return out


def _classical_bits(name: str, image: Image) -> int | None:
    """What the registered compressor `name` takes for `image` (None where it cannot run)."""
    from igc.plugins.compose import create_compressor

    try:
        return len(create_compressor(name).compress(image)) * 8
    except IgcError:
        return None


def as_loaded(images: Sequence[Any]) -> list[LoadedImage]:
    """Bench inputs as LoadedImage: RGB arrays get names image0, image1, ..."""
    from igc.core.image import as_rgb_array

    out = []
    for i, item in enumerate(images):
        if isinstance(item, LoadedImage):
            out.append(item)
        else:
            out.append(LoadedImage(name=f"image{i}", pixels=as_rgb_array(item), note=""))
    return out


class PickedImages(list):
    """`load_images`' images, knowing how many they were picked from (`available`), so that a
    report can say "10 of 24 images"."""

    available: int = 0


def load_images(paths: Sequence[str] | None, count: int | None, seed: int,
                crop: int | None = None, default_count: int | None = None,
                paper_size: bool = False) -> tuple[PickedImages, str]:
    """Pick `count` images (seeded) from paths or the bundled gallery, load, preprocess.
    With no explicit count, `default_count` applies, capped at the size of the pool."""
    from igc.benchmark import sources

    refs = sources.collect(list(paths)) if paths else sources.gallery()
    available = len(refs)
    if count is None and default_count is not None:
        count = min(default_count, len(refs))
    refs = sources.pick(refs, count, seed)
    loaded = PickedImages(ref.load(strict=False) for ref in refs)
    loaded.available = available
    preprocessing = "none (full resolution)"
    if crop:
        for item in loaded:
            h, w = item.pixels.shape[:2]
            item.pixels = sources.center_crop(item.pixels, crop)
            if (h, w) != item.pixels.shape[:2]:
                item.meta["original_size"] = [h, w]
        preprocessing = f"center crop to at most {crop}x{crop} pixels, same for every compressor"
    if paper_size:
        from igc.core.palette import PAPER_SIZE, resize_to_paper

        for item in loaded:
            item.meta.setdefault("original_size", list(item.pixels.shape[:2]))
            item.pixels = resize_to_paper(item.pixels)
        preprocessing = (("" if preprocessing.startswith("none") else preprocessing + ", then ")
                         + f"resized to {PAPER_SIZE}x{PAPER_SIZE} (ImageGPT paper setting, "
                         "bilinear), same for every compressor")
    return loaded, preprocessing


def bench(
    images: Sequence[Any],
    compressors: Sequence[Any],
    *,
    verify: bool = True,
    estimate: bool = False,
    seed: int | None = None,
    preprocessing: str = "none",
    progress: Callable[[str, str], None] | None = None,
    unavailable: dict[str, str] | None = None,
) -> BenchResult:
    """Run every compressor on every image. `images`: LoadedImage objects or RGB arrays;
    `compressors`: instances (igc.bench(), in igc/api.py, also takes names); `unavailable`:
    name -> reason for those that could not be made, carried into the result."""
    loaded = as_loaded(images)
    if not loaded:
        raise UsageError("no images to benchmark")
    made = list(compressors)
    # described first: the default pair loads its photo model here, not in a timed encode
    models = {c.name: c.model_info for c in made if isinstance(c, Described)}
    began = time.perf_counter()
    rows = []
    for item in loaded:
        for comp in made:
            if progress:
                progress(item.name, comp.name)
            rows.append(_run_one(comp, item, verify=verify, estimate=estimate))
    names = [c.name for c in made]
    env = environment(seed=seed, preprocessing=preprocessing, models=models, verify=verify,
                      estimate=estimate, images_available=available_of(images),
                      wall_seconds=time.perf_counter() - began)
    image_info = [{"image": i.name, "source": i.source, "height": int(i.pixels.shape[0]),
                   "width": int(i.pixels.shape[1]), "note": i.note, **i.meta} for i in loaded]
    return BenchResult(rows, summarise(rows, names), env, image_info, dict(unavailable or {}))


def available_of(images: Sequence[Any]) -> int:
    """How many images `images` were picked from (`load_images`), else how many they are."""
    return max(getattr(images, "available", 0), len(images))


def _plugin_of(comp: Any) -> str:
    """The plugin that registered this compressor (the registry stamps its instances), else its
    class's module: messages name who to blame."""
    return getattr(comp, "plugin", None) or type(comp).__module__


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    cls = type(value)
    return "a " + (cls.__name__ if cls.__module__ == "builtins"
                   else f"{cls.__module__}.{cls.__qualname__}")


def _checked_bytes(comp: Any, data: Any, source: str = "compress()") -> bytes:
    """A compressor's output as bytes; anything else would be measured wrongly (len() of a str
    counts characters, of an array its rows), so it is an error naming the plugin."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise PluginError(f"compressor {comp.name!r} (plugin {_plugin_of(comp)!r}) returned "
                      f"{_describe(data)} from {source}, not bytes")


def _failure(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, IgcError) else f"{type(exc).__name__}: {exc}"


def _encode(comp: Any, pixels: np.ndarray, row: Row, estimate: bool) -> bytes | None:
    """Run the compressor, filling the row's sizes; the bytes to verify (None for estimates)."""
    data = None
    start = time.perf_counter()
    model_based = isinstance(comp, ModelBased) and comp.model_based
    if model_based and estimate:
        row.model_bits = comp.estimate_bits(pixels)
        row.compressed_bits = int(np.ceil(row.model_bits))
        row.estimate = True
    elif model_based:
        result = comp.compress_with_stats(pixels)
        data = _checked_bytes(comp, result.data, "compress_with_stats()")
        row.model_bits = result.model_bits
        row.header_bits = result.header_bytes * 8
        row.compressed_bits = len(data) * 8
        codec = codec_of(comp, pixels)
        if codec is not None:
            row.extra.update(report_fields(codec, result, pixels))
    else:
        data = _checked_bytes(comp, comp.compress(pixels))
        row.compressed_bits = len(data) * 8
    row.encode_seconds = time.perf_counter() - start
    if hasattr(comp, "codec_for"):  # the packaged default: a model per image size, named per row
        row.extra["model"] = codec_of(comp, pixels).model.name
    return data


def _verify(comp: Any, data: bytes, pixels: np.ndarray, row: Row) -> None:
    """Decode and compare. A lossless claim fails (✗) when decoding raises or returns anything
    but the (H, W, 3) uint8 pixels, exactly as when the pixels differ."""
    start = time.perf_counter()
    try:
        decoded = comp.decompress(data)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a plugin's SystemExit too: the run goes on
        row.roundtrip_ok, row.error = False, _failure(exc)
        return
    row.decode_seconds = time.perf_counter() - start
    if not (isinstance(decoded, np.ndarray) and decoded.dtype == np.uint8
            and decoded.ndim == 3 and decoded.shape[2] == 3):
        row.roundtrip_ok = False
        row.error = (f"compressor {comp.name!r} (plugin {_plugin_of(comp)!r}) returned "
                     f"{_describe(decoded)} from decompress(), not uint8 (H, W, 3) pixels")
        return
    row.roundtrip_ok = bool(decoded.shape == pixels.shape and np.array_equal(decoded, pixels))


def _run_one(comp: Any, item: LoadedImage, *, verify: bool, estimate: bool) -> Row:
    pixels = item.pixels
    h, w = pixels.shape[:2]
    original = h * w * 3 * 8
    row = Row(item.name, comp.name, h, w, original, None, None, None, bool(comp.lossless), None)
    data = None
    try:
        data = _encode(comp, pixels, row, estimate)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # one codec failing on one image must not end the run
        row.error = _failure(exc)
        row.compressed_bits = None
    if data is not None and verify and comp.lossless:
        _verify(comp, data, pixels, row)
    if row.compressed_bits:
        row.bits_per_subpixel = row.compressed_bits / (h * w * 3)
        row.ratio = original / row.compressed_bits
        if row.model_bits and not row.estimate:
            row.overhead_percent = 100 * (row.compressed_bits - row.model_bits) / row.model_bits
            if row.header_bits is not None:
                row.coder_overhead_percent = 100 * (
                    row.compressed_bits - row.header_bits - row.model_bits) / row.model_bits
    return row


def run_one(comp: Any, item: LoadedImage, *, verify: bool = True, estimate: bool = False) -> Row:
    """One compressor on one image: its row (a failure is recorded in the row, not raised).
    What `bench` does for each pair; igc/benchmark/shard.py runs the pairs a rank still owes."""
    return _run_one(comp, item, verify=verify, estimate=estimate)
