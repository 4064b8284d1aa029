"""Speed of igc's ImageGPT runtime against HuggingFace's, on the same weights and images.

Three phases, each timed over the whole image set and reported as real subpixels per second
(edge padding is not counted, though the model computes it):

- estimate: the one-shot causal pass (`NeuralCodec.estimate_bits`);
- encode: the full codec, stepping every tile token by token and range coding;
- decode: the full decoder, whose output is compared with the original pixels.

Every backend's codec is made by igc/plugins/compose.py, as the CLI's and the API's are, with the
same tile batch and coder, so the ratio igc/hf is the speed of the model computation plus the
shared overhead (tokenizer, coder) that dilutes it. HuggingFace's model is registered for this in
a registry of the benchmark's own (`imagegpt-hf`; users never see the name). Each backend decodes
its own files: the two compute slightly different floats (see hf_backend.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from igc.benchmark.environment import environment
from igc.codec.neural import DEFAULT_BATCH
from igc.core.numerics import FUSED, INTEGER, TORCH
from igc.errors import IgcError, UsageError
from igc.models.hf_backend import HFImageGPTModel
from igc.models.imagegpt import holds_pixel_model
from igc.plugins.compose import compose
from igc.plugins.manager import Registry

BACKENDS = ("hf", "igc", "int")
# what each backend computes: HuggingFace's float32 step (numerics 0), igc's fused float step
# (numerics 1, the files of versions up to the integer numerics), igc's integer step (numerics 2,
# what new files use) on the engine `--engine` chose
BACKEND_NUMERICS = {"hf": TORCH.number, "igc": FUSED.number, "int": INTEGER.number}
PHASES = ("estimate", "encode", "decode")


@dataclass
class SpeedResult:
    backend: str
    phase: str
    subpixels: int
    seconds: float
    subpixels_per_second: float
    bits: float | None = None  # model bits (estimate, encode) or None
    roundtrip_ok: bool | None = None  # decode only


HF_PLUGIN = "imagegpt-hf"


@lru_cache(maxsize=1)
def backend_registry() -> Registry:
    """igc's built-ins and `imagegpt-hf`: the registry every backend's codec is composed from."""
    registry = Registry()
    registry.load_builtins()
    registry.register("model", HFImageGPTModel, name=HF_PLUGIN, plugin="igc.benchmark.speed")
    return registry


def backend_codec(name: str, spec: str | None, batch: int | None = None):
    """The codec timed as backend `name`, composed like any other (igc/plugins/compose.py).
    Every backend codes in context mode 0, the model alone, so that they do the same work
    (mode 1's adaptation, which only the integer step has, is timed by scripts/photo_speed.py)."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
    plugin = HF_PLUGIN if name == "hf" else "imagegpt"
    registry = backend_registry()
    if (spec and spec not in ("imagegpt", HF_PLUGIN) and registry.has("model", spec)
            and not os.path.exists(spec)):  # a folder of that name is an ImageGPT model
        raise UsageError(f"igc speed times ImageGPT models (a shipped name, a folder or a hub "
                         f"id); {spec!r} is a model plugin of another kind, with no ImageGPT "
                         "runtime to time (igc bench --compressors measures any compressor)")
    if name != "int" and spec and holds_pixel_model(spec):
        raise UsageError(f"{spec!r} is a pixel model: only igc's integer step computes it "
                         "(numerics 2); time it with --backend int")
    codec = compose(spec, plugin=plugin, batch=batch or DEFAULT_BATCH,
                    numerics=FUSED.number if name == "igc" else None, context=0,
                    registry=registry)
    if name == "int" and codec.model.numerics != INTEGER.number:
        raise UsageError(f"model {codec.model.name!r} has no integer numerics (quick-GELU "
                         "models only); time it with --backend hf,igc")
    return codec


def load_backend(name: str, spec: str | None):
    """Backend `name`'s model (igc's runtime for `igc` and `int`, HuggingFace's for `hf`)."""
    return backend_codec(name, spec).model


def _warm_up(codec) -> None:
    """First calls pay one-off costs (kernel selection, lazy imports); keep them out of timings."""
    model = codec.model
    seq = np.zeros((1, model.context_length), dtype=np.int64)  # a tile: the start, then values
    seq[:, 0] = codec.tokenizer.start_token
    model.log_probs(seq)
    state = model.start(2, 4, model.numerics)
    for _ in range(4):
        model.step(state, np.zeros(2, dtype=np.int64))


def _time_backend(name: str, codec, images: Sequence[np.ndarray], subpixels: int,
                  progress: Callable[[str], None] | None) -> list[SpeedResult]:
    """One timing of the three phases of one backend."""
    out = []
    if progress:
        progress(f"{name}: estimate")
    start = time.perf_counter()
    bits = sum(codec.estimate_bits(im) for im in images)
    elapsed = time.perf_counter() - start
    out.append(SpeedResult(name, "estimate", subpixels, elapsed, subpixels / elapsed, bits))
    if progress:
        progress(f"{name}: encode")
    start = time.perf_counter()
    encoded = [codec.encode(im) for im in images]
    elapsed = time.perf_counter() - start
    out.append(SpeedResult(name, "encode", subpixels, elapsed, subpixels / elapsed,
                           sum(e.model_bits for e in encoded)))
    if progress:
        progress(f"{name}: decode")
    ok = True
    start = time.perf_counter()
    for im, enc in zip(images, encoded, strict=True):
        try:
            ok &= bool(np.array_equal(codec.decode(enc.data), im))
        except IgcError:
            ok = False
    elapsed = time.perf_counter() - start
    out.append(SpeedResult(name, "decode", subpixels, elapsed, subpixels / elapsed, None, ok))
    return out


def measure(images: Sequence[np.ndarray], backends: Sequence[str] = BACKENDS,
            model: str | None = None, batch: int | None = None, repeat: int = 1,
            progress: Callable[[str], None] | None = None) -> list[SpeedResult]:
    """Time the three phases for each backend; with `repeat` > 1 keep each phase's fastest run.

    Backends take turns within each repetition, in alternating order, so a change in the load of
    a shared machine hits both alike rather than whichever happened to run second.
    """
    if not images:
        raise UsageError("no images to measure")
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    subpixels = int(sum(im.shape[0] * im.shape[1] * 3 for im in images))
    codecs = {name: backend_codec(name, model, batch) for name in backends}
    for codec in codecs.values():
        _warm_up(codec)
    best: dict[tuple[str, str], SpeedResult] = {}
    for r in range(repeat):
        order = list(backends) if r % 2 == 0 else list(reversed(backends))
        for name in order:
            for res in _time_backend(name, codecs[name], images, subpixels, progress):
                key = (name, res.phase)
                if key not in best or res.seconds < best[key].seconds:
                    if key in best and best[key].roundtrip_ok is False:
                        res.roundtrip_ok = False  # a failure in any repetition is kept
                    best[key] = res
                elif res.roundtrip_ok is False:
                    best[key].roundtrip_ok = False
    return [best[name, phase] for name in backends for phase in PHASES]


def all_ratios(results: Sequence[SpeedResult]) -> dict:
    """'igc/hf', 'int/hf' and 'int/igc' per phase, for the backends measured."""
    names = {r.backend for r in results}
    pairs = [(a, b) for a, b in (("igc", "hf"), ("int", "hf"), ("int", "igc"))
             if a in names and b in names]
    return {f"{a}/{b}": ratios(results, a, b) for a, b in pairs}


def ratios(results: Sequence[SpeedResult], fast: str = "igc", slow: str = "hf") -> dict:
    """Per phase: speed of `fast` over speed of `slow` (where both were measured)."""
    by = {(r.backend, r.phase): r.subpixels_per_second for r in results}
    return {p: by[fast, p] / by[slow, p] for p in PHASES if (fast, p) in by and (slow, p) in by}


def lanes(model, pixels: Sequence[np.ndarray], batch: int | None) -> list[str]:
    """How the codec splits each image's tiles, as 'tiles/tiles per lane' (docs/format.md)."""
    from igc.codec.lanes import lane_for
    from igc.core.tokenizer import SubpixelTokenizer

    grid = SubpixelTokenizer(model=model).grid
    tiles = [math.prod(grid(p.shape[0], p.shape[1])) for p in pixels]
    return [f"{n}/{lane_for(n, batch or DEFAULT_BATCH)}" for n in tiles]


@dataclass
class SpeedReport:
    results: list[SpeedResult]
    environment: dict[str, Any]
    phases: tuple[str, ...] = PHASES

    @property
    def backends(self) -> list[str]:
        """The backends timed, in the order asked for."""
        return list(dict.fromkeys(r.backend for r in self.results))

    def ratios(self) -> dict:
        return ratios(self.results)

    def all_ratios(self) -> dict:
        return all_ratios(self.results)

    def to_dict(self) -> dict:
        return to_dict(self.results, self.environment)


def run(probe, loaded: Sequence[Any], preprocessing: str, backends: Sequence[str] = BACKENDS,
        model: str | None = None, batch: int | None = None, repeat: int = 1,
        progress: Callable[[str], None] | None = None) -> SpeedReport:
    """`measure` on loaded images, with where and on what it ran. `probe`: igc's backend of the
    model, loaded first so that a bad model fails before any image is read."""
    import torch

    from igc.engines.engines import current_engine

    pixels = [item.pixels for item in loaded]
    results = measure(pixels, backends, model=model, batch=batch, repeat=repeat, progress=progress)
    r = probe.runtime
    env = environment(
        threads=torch.get_num_threads(),
        dtype="float32",  # arithmetic; the caches below
        kv_cache={"hf": "float32 (DynamicCache)",
                  "igc": "bfloat16 (numerics 1: igc.engines.kernels)",
                  "int": "int16 (numerics 2: igc.engines.integer)"},
        engine=current_engine(), numerics=BACKEND_NUMERICS,
        model=probe.name, fingerprint=probe.fingerprint, parameters=probe.parameters,
        context=probe.context_length, n_embd=r.n_embd, n_layer=r.n_layer, n_head=r.n_head,
        images=[item.name for item in loaded], preprocessing=preprocessing,
        subpixels=results[0].subpixels, repeat=repeat, lanes=lanes(probe, pixels, batch))
    return SpeedReport(results, env)


def to_dict(results: Sequence[SpeedResult], env: dict) -> dict:
    """The `igc speed --json` document: per backend and phase the (best) timing, the ratios of
    every pair of backends measured ("igc/hf", "int/hf", "int/igc": phase -> ratio), and where
    it was measured."""
    return {"results": [asdict(r) for r in results], "ratios": all_ratios(results),
            "environment": env}
