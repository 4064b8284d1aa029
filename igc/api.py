"""The library API, mirroring the CLI."""

from __future__ import annotations

from typing import Any

from igc.core.types import Image


def list_compressors(check: bool = False) -> list[str] | dict[str, str | None]:
    """Names `get_compressor` and `igc bench -c` accept: registered compressors and models; with
    check=True, name -> reason it is unavailable (or None)."""
    from igc.plugins.compose import compressor_names, unavailable_reason

    names = compressor_names()
    if not check:
        return names
    return {n: unavailable_reason(n) for n in names}


def get_compressor(name: str, **options: Any):
    """A registered compressor, or a registered model composed with a tokenizer and a coder:
    `get_compressor("imagegpt", model=DIR)`, `get_compressor("imagegpt", coder="ans")`,
    `get_compressor("mymodel")`."""
    from igc.plugins.compose import create_compressor

    return create_compressor(name, **options)


def compress(image: Image, model: str | None = None, order: str = "interleaved",
             mode: str | None = None, tokenizer: str | None = None,
             coder: str | None = None) -> bytes:
    """RGB uint8 (H, W, 3) -> `.igc` bytes. `model`: a registered model's name, or an ImageGPT
    spec (default: the packaged model); `tokenizer`, `coder`: registered names (default: the
    model's tokenizer, the range coder). `mode` applies to palette models: "lossless" (default)
    or "palette" (lossy indices only)."""
    from igc.core.image import as_rgb_array

    pixels = as_rgb_array(image)
    return compressor(model, order=order, mode=mode, tokenizer=tokenizer,
                      coder=coder).compress(pixels)


def compressor(model: str | None = None, **options: Any):
    """The compressor `compress` uses, for repeated use or `compress_with_stats`."""
    from igc.plugins.compose import model_compressor

    return model_compressor(model, **options)


def decompress(data: bytes, model: str | None = None) -> Image:
    """`.igc` bytes -> RGB pixels, verified against the checksum stored in the file. The model,
    tokenizer and coder are the ones the header names (or `model`)."""
    from igc.plugins.compose import decompress as decode

    return decode(bytes(data), model)


def info(data: bytes) -> dict:
    """The header of an `.igc` file as a dict."""
    from igc.core import container

    header, _ = container.unpack(bytes(data))
    d = header.to_dict()
    d["header_bytes"] = len(data) - header.payload_length
    d["file_bytes"] = len(data)
    d["bits_per_subpixel"] = len(data) * 8 / (header.height * header.width * 3)
    return d


def list_models() -> list[dict]:
    """The models shipped inside the package (the default first), as `igc models --json`."""
    from igc.models.catalog import shipped_models

    return [m.to_dict() for m in shipped_models()]


def report(result, reporter: str = "table", destination: Any = None) -> None:
    """Hand a bench result to a registered reporter ("table", "json", "csv", a plugin's...)."""
    from igc.plugins.manager import get_registry

    get_registry().create("reporter", reporter).report(result, destination)


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin object (a module or an instance with `@igc.hookimpl` hooks) in this
    process, as an installed package's entry point is: for scripts, notebooks and tests."""
    from igc.errors import PluginError
    from igc.plugins.manager import get_registry

    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    registry = get_registry()
    if name in registry.plugins:
        raise PluginError(f"a plugin named {name!r} is already registered")
    registry.add_plugin(plugin, name, "0", builtin=False)
    error = registry.plugins[name].error
    if error:
        raise PluginError(f"plugin {name!r}: {error}")


def bench(images, compressors, **options: Any):
    """Run compressors on images; see `igc.benchmark.bench`."""
    from igc.benchmark import bench as run

    return run(images, compressors, **options)
