"""The library API, mirroring the CLI."""

from __future__ import annotations

from typing import Any

from igc.core.types import Image


def list_compressors(check: bool = False) -> list[str] | dict[str, str | None]:
    """Registered compressor names; with check=True, name -> reason it is unavailable (or None)."""
    from igc.plugins.manager import get_registry

    registry = get_registry()
    names = registry.names("compressor")
    if not check:
        return names
    return {n: registry.entry("compressor", n).unavailable_reason() for n in names}


def get_compressor(name: str, **options: Any):
    """Instantiate a registered compressor (e.g. `get_compressor("imagegpt", model=DIR)`)."""
    from igc.plugins.manager import get_registry

    return get_registry().create("compressor", name, **options)


def compress(image: Image, model: str | None = None, order: str = "interleaved",
             mode: str | None = None) -> bytes:
    """RGB uint8 (H, W, 3) -> `.igc` bytes, coded with ImageGPT (default: the packaged model).
    `mode` applies to palette models: "lossless" (default) or "palette" (lossy indices only)."""
    from igc.compressors.model_based import ImageGPTCompressor, UniformCompressor
    from igc.core.image import as_rgb_array

    pixels = as_rgb_array(image)
    if model == "uniform":
        return UniformCompressor(order=order).compress(pixels)
    return ImageGPTCompressor(model=model, order=order, mode=mode).compress(pixels)


def _file_bytes(data: Any, caller: str) -> bytes:
    """`data` as bytes, refusing anything else: `bytes(n)` of an int would allocate n bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    from igc.errors import UsageError

    raise UsageError(f"{caller} expects the bytes of an .igc file, got {type(data).__name__}")


def decompress(data: bytes, model: str | None = None) -> Image:
    """`.igc` bytes -> RGB pixels, verified against the checksum stored in the file."""
    from igc.compressors.model_based import decompress_any

    return decompress_any(_file_bytes(data, "igc.decompress"), model)


def info(data: bytes) -> dict:
    """The header of an `.igc` file as a dict."""
    from igc.core import container

    data = _file_bytes(data, "igc.info")
    header, _ = container.unpack(data)
    d = header.to_dict()
    d["header_bytes"] = len(data) - header.payload_length
    d["file_bytes"] = len(data)
    d["bits_per_subpixel"] = len(data) * 8 / (header.height * header.width * 3)
    return d


def list_models() -> list[dict]:
    """The models shipped inside the package (the default first), as `igc models --json`."""
    from igc.models.catalog import shipped_models

    return [m.to_dict() for m in shipped_models()]


def bench(images, compressors, **options: Any):
    """Run compressors on images; see `igc.benchmark.bench`."""
    from igc.benchmark import bench as run

    return run(images, compressors, **options)
