"""The library API, mirroring the CLI (which is a thin layer over it).

Compressors are made from names through igc/plugins/compose.py, so a plugin's compressor, model,
tokenizer or coder works here exactly as a built-in does. Heavy modules are imported inside the
functions: `import igc` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from igc.core.types import Image
from igc.errors import IgcError, PluginError, UsageError


# -- compressors ----------------------------------------------------------------------------------
def _callable_or_none(value: Any, name: str) -> None:
    """A callback option (progress, note) as the library takes it, refused in words otherwise
    (it would fail mid-run as "'int' object is not callable")."""
    if value is not None and not callable(value):
        raise UsageError(f"{name} must be a function or None, not {value!r}")


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
    from igc.plugins.compose import check_options, create_compressor

    if not isinstance(name, str) or not name:
        raise UsageError(f"a compressor is named by a non-empty string, not {name!r}")
    check_options(name, options)
    return create_compressor(name, **options)


def image_files(paths: Sequence[str] | None) -> list[Path]:
    """The files a bench over `paths` reads (default: the bundled gallery), e.g. so that no
    report is written over one of them."""
    from igc.benchmark import sources

    refs = sources.collect(list(paths)) if paths else sources.gallery()
    return [Path(ref.path) for ref in refs]


def folder_images(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder` (by extension: the ones bench reads), sorted by
    name; hidden files and subfolders are left out."""
    from igc.benchmark.sources import IMAGE_EXTENSIONS

    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def image_extensions() -> tuple[str, ...]:
    """The file extensions igc reads as images, e.g. for a message saying what was looked for."""
    from igc.benchmark.sources import IMAGE_EXTENSIONS

    return tuple(IMAGE_EXTENSIONS)


def create_compressors(names: Sequence[str], **options: Any) -> tuple[list, dict[str, str]]:
    """`get_compressor` for each name; those whose library is missing are returned as
    name -> reason instead of raising. Unknown names fail before anything is made."""
    from igc.plugins.compose import create_compressors as make

    return make(list(names), **options)


def compressor(model: str | None = None, **options: Any):
    """The compressor `compress` uses: `model` is a registered model's name or an ImageGPT spec
    (default: the packaged default, which codes whole photographs, 768×512 pixels and up, with
    its photo model: igc.compressors.photo_split); options: tokenizer, coder, mode, order,
    batch."""
    from igc.plugins.compose import model_compressor

    return model_compressor(model, **options)


# -- files ----------------------------------------------------------------------------------------
def compress(image: Image, model: str | None = None, order: str = "interleaved",
             mode: str | None = None, tokenizer: str | None = None,
             coder: str | None = None,
             progress: Callable[[int, int], None] | None = None,
             engine: str | None = None, context: int | None = None,
             strip_rows: int | None = None) -> bytes:
    """RGB uint8 (H, W, 3) -> `.igc` bytes. `model`: a registered model's name, or an ImageGPT
    spec (default: the packaged default, with its photo model on photographs, see `compressor`);
    `tokenizer`, `coder`: registered names (default: the
    model's tokenizer, the range coder). `mode` applies to palette models: "lossless" (default)
    or "palette" (lossy indices only). `progress(done, total)` is called with the tokens coded
    so far, before the first model step and after each. `engine`: see `set_engine` (for this
    call only). `context`: the file's context mode (0: tiles alone; 1: the model adapted to the
    image; 2: adapted, and tiles overlapping their upper and left neighbours; 3: 2 and an online
    predictor; default: 3 on images of about 227×227 pixels or more, 1 on 16 tiles or more,
    where the model allows it). `strip_rows`: rows per strip, bands coded independently so that
    cores decode them side by side (0: none; default: photos in modes 2 and 3 in the most
    strips, 2, 4, 8, ..., whose windows' anti-diagonals still average 8 windows: a Kodak photo
    in 2 lying, 4 standing).

    A grayscale (H, W) or (H, W, 1) array is coded as RGB with three equal channels, and
    `decompress` returns it as (H, W, 3); an opaque (H, W, 4) array loses its alpha channel.
    Other shapes and dtypes raise `igc.ImageError` naming them."""
    from igc.core.image import as_rgb_array
    from igc.engines.engines import using_engine

    _callable_or_none(progress, "progress")
    pixels = as_rgb_array(image)
    with using_engine(engine):
        made = compressor(model, order=order, mode=mode, tokenizer=tokenizer, coder=coder,
                          context=context, strip_rows=strip_rows)
        return made.compress_with_stats(pixels, progress).data


def _file_bytes(data: Any, caller: str) -> bytes:
    """`data` as bytes, refusing anything else: `bytes(n)` of an int would allocate n bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    from igc.errors import UsageError

    raise UsageError(f"{caller} expects the bytes of an .igc file, got {type(data).__name__}")


def decompress(data: bytes, model: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               engine: str | None = None, allow_download: bool = False) -> Image:
    """`.igc` bytes -> RGB pixels (H, W, 3), verified against the checksum stored in the file.
    The model, tokenizer and coder are the ones the header names (or `model`).
    `progress(done, total)` as for `compress`, with the tokens decoded; `engine` as for
    `compress` (any engine decodes a file any engine wrote). A header naming a HuggingFace hub
    id is looked up in the local cache only, unless `allow_download` (or `model` names it)."""
    from igc.engines.engines import using_engine
    from igc.models.imagegpt import allowing_downloads
    from igc.plugins.compose import decompress as decode

    _callable_or_none(progress, "progress")
    with using_engine(engine), allowing_downloads(allow_download):
        return decode(_file_bytes(data, "igc.decompress"), model, progress=progress)


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


def report_fields(compressor: Any, result: Any, image: Image) -> dict:
    """What bench adds to a model-based row beyond sizes (a palette model's bit split and, for a
    lossy file, its PSNR and what PNG and JPEG-XL take for the same quantized image)."""
    from igc.benchmark.run import codec_of
    from igc.benchmark.run import report_fields as fields

    return fields(codec_of(compressor, image), result, image)


# -- models and plugins ---------------------------------------------------------------------------
def list_models() -> list[dict]:
    """The models shipped inside the package (the default first), as `igc models --json`."""
    from igc.models.catalog import shipped_models

    return [m.to_dict() for m in shipped_models()]


def model_search_path() -> list[str]:
    """The folders of $IGC_MODEL_PATH, where decoding looks for a file's model after the shipped
    ones."""
    from igc.models.catalog import model_path

    return [str(p) for p in model_path()]


def list_plugins() -> list[dict]:
    """Every plugin loaded (built-in and installed): name, version, what it registers, its
    error if it failed to load, and which of its compressors and models are unavailable."""
    from igc.plugins.manager import get_registry

    registry = get_registry()
    out = []
    for plugin in registry.plugins.values():
        entry = {"name": plugin.name, "version": plugin.version, "builtin": plugin.builtin,
                 "registers": plugin.registered, "error": plugin.error}
        entry["unavailable"] = {
            name: reason for kind in ("compressor", "model")
            for name in plugin.registered.get(kind, [])
            if (reason := registry.entry(kind, name).unavailable_reason())}
        out.append(entry)
    return out


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin object (a module or an instance with `@igc.hookimpl` hooks) in this
    process, as an installed package's entry point is: for scripts, notebooks and tests."""
    from igc.plugins.manager import get_registry

    if plugin is None or isinstance(plugin, int | float | str | bytes | bool):
        raise PluginError(f"a plugin is a module or an object with @igc.hookimpl hooks, not "
                          f"{plugin!r}")
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    registry = get_registry()
    if name in registry.plugins:
        raise PluginError(f"a plugin named {name!r} is already registered")
    registry.add_plugin(plugin, name, "0", builtin=False)
    error = registry.plugins[name].error
    if error:
        raise PluginError(f"plugin {name!r}: {error}")


def set_engine(engine: str | None) -> None:
    """Which implementation computes numerics 2 in this process: "reference" (plain NumPy,
    slow), "cpu" (the default) or "cuda". All give the same files, bit for bit, so this is a
    speed choice like the thread count; files do not record it. None: $IGC_ENGINE or "cpu"."""
    from igc.engines.engines import set_engine as choose

    choose(engine)


# -- the benchmark --------------------------------------------------------------------------------
def set_threads(threads: int | None) -> None:
    """torch's CPU thread count for model-based compressors (None: leave it)."""
    if threads is None:
        return
    from igc.core.options import checked_threads

    threads = checked_threads(threads)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:  # torch takes it when it starts: codecs without torch need not import it
        import os

        os.environ["OMP_NUM_THREADS"] = str(threads)


def load_images(paths: Sequence[str] | None = None, count: int | None = None, seed: int = 0,
                crop: int | None = None, default_count: int | None = None,
                paper_size: bool = False):
    """(images, preprocessing): `count` images picked with `seed` from files, folders and .npz
    arrays (default: the bundled gallery), center-cropped to `crop` pixels and/or resized to
    32×32 (`paper_size`); `preprocessing` says what was done."""
    from igc.benchmark.run import load_images as load

    return load(paths, count, seed, crop, default_count=default_count, paper_size=paper_size)


def bench(images: Sequence[Any], compressors: Sequence[Any], *, verify: bool = True,
          estimate: bool = False, seed: int | None = None, model: str | None = None,
          mode: str | None = None, tokenizer: str | None = None, coder: str | None = None,
          context: int | None = None, workers: int = 1, threads: int | None = None, engine: str = "auto",
          preprocessing: str = "none",
          progress: Callable[[str, str], None] | None = None,
          log: str | Path | None = None, show_progress: bool = False,
          note: Callable[[str], None] | None = None):
    """Run compressors on images (RGB arrays or `load_images` results) and return a
    `BenchResult` (`.to_dict()` is what `igc bench --json` prints). `compressors`: names or
    instances; names are made with `model`, `mode`, `tokenizer`, `coder` and `context`. `workers` > 1
    shards the images over processes of this machine (names only), `threads` torch threads
    each. Launched as one rank of several (torchrun: RANK, WORLD_SIZE, MASTER_ADDR and
    MASTER_PORT set), this process benches its shard and returns the merged result on rank 0,
    None on the others. `log`: a JSON Lines file of finished rows, appended to as they finish
    and reused when the same run is repeated (igc/benchmark/rowlog.py). `show_progress`: one bar
    over the run on a terminal. `note(text)`: what rank 0 has to say on the way (reused rows)."""
    from igc.benchmark import distributed
    from igc.benchmark.run import bench as run

    options = {"verify": verify, "estimate": estimate, "seed": seed,
               "preprocessing": preprocessing}
    from igc.core.options import whole_number

    if not whole_number(workers):
        raise UsageError(f"--workers must be a whole number, got {workers!r}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if images is None or isinstance(images, str | bytes):
        raise UsageError("images must be a list of images (arrays or load_images results), "
                         f"not {type(images).__name__}")
    _callable_or_none(progress, "progress")
    _callable_or_none(note, "note")
    if not compressors:  # as `igc bench -c ""` is: an empty result would look like a run
        raise UsageError("no compressors given; known: " + ", ".join(list_compressors()))
    named = isinstance(compressors[0], str)
    made_with = {"model": model, "mode": mode, "tokenizer": tokenizer, "coder": coder,
                 "context": context}
    grouped = {"log": log, "show_progress": show_progress, "note": note, "progress": progress}
    if workers > 1 and distributed.launched():
        raise UsageError("--workers N starts processes on this machine; launched by torchrun, "
                         "give torchrun --nproc-per-node N instead")
    if workers > 1:
        from igc.benchmark.shard import bench_sharded

        if not named:
            raise UsageError("sharding over workers takes compressor names, not instances")
        if progress is not None:
            raise UsageError("progress callbacks do not reach worker processes; use "
                             "show_progress")
        create_compressors(compressors, **made_with)  # fail here, not in every worker
        return bench_sharded(images, list(compressors), workers=workers, threads=threads,
                             engine=engine, make=create_compressors, made_with=made_with,
                             log=log, show_progress=show_progress, note=note, **options)
    set_threads(threads)
    unavailable: dict[str, str] = {}
    if named:
        compressors, unavailable = create_compressors(compressors, **made_with)
    if distributed.launched() or log is not None or show_progress:
        from igc.benchmark.shard import bench_group

        with distributed.join() as group:
            return bench_group(group, images, compressors, made_with=made_with,
                               unavailable=unavailable, **grouped, **options)
    return run(images, compressors, progress=progress, unavailable=unavailable, **options)


def launched() -> bool:
    """Whether this process is one rank of several (torchrun and the like, or `--workers`)."""
    from igc.benchmark.distributed import launched as ranked

    return ranked()


def join_group():
    """This process's group of ranks (`igc.benchmark.distributed.Group`): the one torch.distributed's
    environment describes when launched, else this process alone."""
    from igc.benchmark.distributed import join

    return join()


def spawn_workers(workers: int, fn: Callable, args: tuple = (), threads: int | None = None):
    """`fn(*args)` on `workers` processes of this machine forming one group (what torchrun would
    start on 127.0.0.1); rank 0's return value."""
    from igc.benchmark.distributed import spawn

    return spawn(workers, fn, args, threads=threads)


def report(result, reporter: str = "table", destination: Any = None,
           **options: Any) -> str | None:
    """Hand a bench result to a registered reporter ("table", "json", "csv", "markdown", a
    plugin's...) and return its text: `igc.report(result, "markdown")` prints nothing. With a
    `destination` the report is written there instead ("-": standard output, else a file path)
    and None is returned. `options` go to the reporter's factory where it takes them (the table's
    `wide=True`)."""
    import contextlib
    import io

    from igc.core.protocols import Reporter, conform
    from igc.plugins.manager import get_registry

    if not hasattr(result, "results") or not hasattr(result, "to_dict"):
        raise UsageError(f"igc.report takes the result of igc.bench, not {type(result).__name__}")
    made = conform(get_registry().create("reporter", reporter, **options), Reporter,
                   f"reporter {reporter!r}")
    if destination is None:
        render = getattr(made, "render", None)
        if callable(render):
            return render(result)
        buffer = io.StringIO()  # a reporter without `render` writes to stdout for destination None
        with contextlib.redirect_stdout(buffer):
            made.report(result, None)
        return buffer.getvalue()
    if destination == "-":
        made.report(result, None)
        return None
    from igc.core.writing import replacing

    if Path(destination).is_dir():
        raise UsageError(f"cannot write the report to {destination}: it is a folder")
    with replacing(Path(destination), IgcError) as tmp:  # a link is replaced, never written through
        made.report(result, str(tmp))
        if tmp.stat().st_size == 0:  # a reporter that ignores files must not empty one
            raise UsageError(f"reporter {reporter!r} wrote nothing to {destination} (it "
                             "writes to standard output only)")
    return None


def check_reporter(name: str) -> None:
    """Raise the usage error for an unknown reporter name now, before a long run."""
    from igc.plugins.manager import get_registry

    get_registry().entry("reporter", name)


def speed(model: str | None = None, images: Sequence[str] | None = None, count: int = 2,
          crop: int | None = 64, seed: int = 0, backends: Sequence[str] | None = None,
          threads: int | None = None, batch: int | None = None, repeat: int = 1,
          progress: Callable[[str], None] | None = None):
    """Subpixels per second of igc's ImageGPT runtime and HuggingFace's on the same model and
    images (estimate, encode, decode), as a `SpeedReport` (`.to_dict()`: `igc speed --json`).
    `backends` None: all three, or for a pixel model, which only the integer step computes,
    `int` alone."""
    from igc.benchmark import speed as timing
    from igc.models.imagegpt import holds_pixel_model

    if backends is None:
        backends = ("int",) if model and holds_pixel_model(model) else timing.BACKENDS

    unknown = [b for b in backends if b not in timing.BACKENDS]
    twice = sorted({b for b in backends if list(backends).count(b) > 1})
    if twice:  # two identical columns would read as two measurements
        raise UsageError(f"--backend {twice[0]!r} is named twice")
    if not backends or unknown:
        raise UsageError(f"--backend {','.join(backends)!r}: choose from "
                         f"{', '.join(timing.BACKENDS)}")
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if crop is not None and crop < 0:
        raise UsageError(f"--crop must be 0 (full resolution) or a positive size, got {crop}")
    set_threads(threads)
    # fails early, with igc's message, on a bad model; a model with integer numerics only (a
    # pixel model) is probed through the backend that times it
    probe = timing.load_backend("int" if "int" in backends and "igc" not in backends else "igc",
                                model)
    loaded, preprocessing = load_images(images, count, seed, crop or None)
    return timing.run(probe, loaded, preprocessing, list(backends), model=model, batch=batch,
                      repeat=repeat, progress=progress)
