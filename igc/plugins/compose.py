"""Compressors composed by name: a registered Model, Tokenizer and Coder, and back from a file.

`model_compressor` is the one function that turns a model spec into a compressor; the API, the
CLI (through the API), bench and decompress all call it, so a model, tokenizer or coder that any
plugin registers is usable everywhere by its name, and built-ins get no special path. A file's
header names its three pieces; `file_compressor` rebuilds them from the registry, and says in one
line which plugin is missing when one is.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from igc.codec.neural import NeuralCodec
from igc.core import container
from igc.core.protocols import Coder, Compressor, Model, Tokenizer, conform
from igc.errors import CodecUnavailable, ModelError, ModelMismatchError, PluginError, UsageError
from igc.plugins.manager import Registry, entry_points_disabled, get_registry

DEFAULT_MODEL = "imagegpt"  # the plugin a spec that names no registered model is given to
DEFAULT_TOKENIZER = "subpixel"
DEFAULT_CODER = "range"
MODES = ("lossless", "palette")
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")


def split_spec(spec: str | None, registry: Registry) -> tuple[str, str | None]:
    """A `--model` value -> (registered model name, spec for its factory): a registered model's
    name selects that plugin; anything else (a shipped id, a folder, a hub id) goes to ImageGPT."""
    if spec is not None:
        if not isinstance(spec, str | os.PathLike):
            raise UsageError(f"a model is a name or a folder, not {spec!r}")
        spec = os.fspath(spec)
        if not spec.strip():  # not the default: say what was given
            raise UsageError(f"the model name {spec!r} is empty (an unset variable?); give a "
                             "model, or leave --model out for the default")
    if spec is not None and registry.has("model", spec):
        return spec, None
    return DEFAULT_MODEL, spec


@lru_cache(maxsize=4)
def _load_model(registry: Registry, plugin: str, spec: str | None) -> Any:
    """Models are large to load and immutable: load each once per process."""
    model = conform(registry.create("model", plugin, spec=spec), Model, f"model {plugin!r}")
    if not isinstance(model.fingerprint, str) or not FINGERPRINT.match(model.fingerprint):
        raise PluginError(f"model {plugin!r} has fingerprint {model.fingerprint!r}; it must be 16 "
                          "lowercase hex digits (8 bytes of a digest of what the model computes)")
    return model


def _piece(registry: Registry, kind: str, name: str, protocol: type, **options: Any) -> Any:
    obj = conform(registry.create(kind, name, **options), protocol, f"{kind} {name!r}")
    if obj.name != name:
        raise PluginError(f"{kind} registered as {name!r} calls itself {obj.name!r}; files record "
                          "the name, so it must be the registered one")
    if not container.valid_name(name):
        raise PluginError(f"{kind} name {name!r} cannot be recorded in a file header: 1 to "
                          f"{container.MAX_NAME} printable ASCII characters without spaces")
    return obj


class WithNumerics:
    """A model coding new files with another of the numerics it computes (`numerics`); every
    other member is the model's own. `igc speed` times numerics 1 against 2 this way."""

    def __init__(self, model: Any, numerics: int) -> None:
        if numerics not in model.numerics_supported:
            raise UsageError(f"model {model.name!r} computes numerics "
                             f"{', '.join(map(str, model.numerics_supported))}, not {numerics}")
        self.model, self.numerics = model, numerics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def compose(model: str | None = None, *, plugin: str | None = None, tokenizer: str | None = None,
            coder: str | None = None, mode: str | None = None, order: str = "interleaved",
            batch: int | None = None, lane: int | None = None, residual: bool | None = None,
            numerics: int | None = None, context: int | None = None,
            strip_rows: int | None = None, registry: Registry | None = None) -> NeuralCodec:
    """The codec for a model spec (see `split_spec`; `plugin` forces the model plugin, `model`
    then being its factory's spec), coded with the model's tokenizer (or `tokenizer`) and the
    range coder (or `coder`).

    `mode` applies to lossy tokenizers (the palette): "lossless" (default) adds exact residuals,
    "palette" keeps the file lossy; `residual` forces the choice (decoding a file). `numerics`
    codes new files with another numerics the model computes (default: its own choice);
    `context` their context mode (default: the codec's choice per image, NeuralCodec);
    `strip_rows` the rows of their strips (0: none; default: NeuralCodec's cut of photos).
    """
    registry = registry or get_registry()
    if plugin is None:
        plugin, model = split_spec(model, registry)
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    m = _load_model(registry, plugin, model)
    if order not in getattr(m, "token_orders", (order,)):
        raise UsageError(f"model {m.name!r} reads subpixels in {' or '.join(m.token_orders)} "
                         f"order, not {order!r}")
    if numerics is not None and numerics != m.numerics:
        m = WithNumerics(m, numerics)
    tok_name = tokenizer or getattr(m, "tokenizer", None) or DEFAULT_TOKENIZER
    tok = _piece(registry, "tokenizer", tok_name, Tokenizer, model=m, order=order)
    if tok.vocab_size != m.vocab_size:
        raise UsageError(f"tokenizer {tok_name!r} codes {tok.vocab_size} symbols but model "
                         f"{m.name!r} predicts {m.vocab_size} classes: pass a --tokenizer that "
                         "fits the model")
    if tok.lossless and mode == "palette":
        raise UsageError(f"--mode palette needs a palette ImageGPT (513-token vocabulary with "
                         f"colour clusters, e.g. openai/imagegpt-small); model {m.name!r} codes "
                         f"{tok_name} tokens, which is always lossless")
    if residual is None:
        residual = mode != "palette"
    c = _piece(registry, "coder", coder or DEFAULT_CODER, Coder)
    if not container.valid_name(plugin):
        raise PluginError(f"model name {plugin!r} cannot be recorded in a file header")
    distributions = {kind: dist for kind, name in (("tokenizer", tok_name),
                                                   ("coder", c.name), ("model", plugin))
                     if (dist := container.recordable_distribution(
                         registry.distribution(kind, name)))}
    return NeuralCodec(m, c, order, batch or getattr(tok, "batch", None), lane,
                       tokenizer=tok, residual=residual, plugin=plugin,
                       distributions=distributions, context=context, strip_rows=strip_rows)


def model_compressor(model: str | None = None, *, name: str | None = None, **options: Any):
    """A compressor for a model spec, named `name` (default: its model plugin's name);
    `options` as for `compose`. No spec and the ImageGPT plugin (the packaged default) give
    a PhotoSplitCompressor: photographs are coded with PHOTO_MODEL, other images with
    DEFAULT_MODEL (igc/compressors/photo_split.py)."""
    from igc.compressors.model_based import ModelCompressor

    codec = compose(model, **options)
    made = ModelCompressor(codec, name or codec.plugin)
    if model is None and options.get("plugin") in (None, DEFAULT_MODEL) and made.lossless:
        from igc.compressors.photo_split import PhotoSplitCompressor
        from igc.models.folders import PHOTO_MODEL

        photo = {**options, "plugin": DEFAULT_MODEL}  # the packaged default: a photo model too
        return PhotoSplitCompressor(
            made, lambda: model_compressor(PHOTO_MODEL, name=made.name, **photo))
    return made


def named_model(name: str, registry: Registry) -> tuple[str, str | None]:
    """A `-c` name -> (registered name, model spec): `MODEL:SPEC` (a registered model, a colon,
    then what `--model` takes, e.g. `imagegpt:igc-rgb16-w256`) names that model plugin with its
    own spec, so one bench can set several models of a plugin side by side; any other name is
    itself with no spec."""
    base, sep, spec = name.partition(":")
    if sep and registry.has("model", base):
        if not spec:
            raise UsageError(f"compressor {name!r} names model {base!r} and no spec after the "
                             f"colon (e.g. {base}:igc-rgb16-w256)")
        return base, spec
    return name, None


def compressor_names(registry: Registry | None = None) -> list[str]:
    """Every name `-c` accepts: registered compressors, and every registered model."""
    registry = registry or get_registry()
    return sorted(set(registry.names("compressor")) | set(registry.names("model")))


def unavailable_reason(name: str, registry: Registry | None = None) -> str | None:
    registry = registry or get_registry()
    name = named_model(name, registry)[0]
    kind = "compressor" if registry.has("compressor", name) else "model"
    return registry.entry(kind, name).unavailable_reason()


def check_names(names: list[str], registry: Registry | None = None) -> None:
    """Fail on the first unknown name, listing every known one, before any work starts."""
    registry = registry or get_registry()
    for name in names:
        base = named_model(name, registry)[0]
        if not (registry.has("compressor", base) or registry.has("model", base)):
            why = (f" ({base.partition(':')[0]!r} is not a registered model: MODEL:SPEC "
                   "gives a model plugin its spec)" if ":" in name else "")
            raise UsageError(f"unknown compressor {name!r}{why}; known: "
                             f"{', '.join(compressor_names(registry))}{registry.failed_hint()}")
    twice = next((n for n, k in Counter(names).items() if k > 1), None)
    if twice is not None:
        raise UsageError(f"compressor {twice!r} is named twice")


def create_compressor(name: str, registry: Registry | None = None, **options: Any):
    """A registered compressor, or a registered model composed with its default pieces (or the
    `tokenizer` and `coder` options). `model` is given to the named model plugin's factory as its
    `spec` (None without it); `MODEL:SPEC` (see `named_model`) gives it SPEC instead."""
    registry = registry or get_registry()
    check_names([name], registry)
    if registry.has("compressor", name):
        return conform(registry.create("compressor", name, **options), Compressor,
                       f"compressor {name!r}")
    plugin, spec = named_model(name, registry)
    keep = MODEL_OPTIONS[1:]
    return model_compressor(spec or options.get("model"), plugin=plugin, name=name,
                            registry=registry, **{k: v for k, v in options.items() if k in keep})


MODEL_OPTIONS = ("model", "tokenizer", "coder", "mode", "order", "batch", "lane", "context",
                 "strip_rows")  # what a model composed into a compressor takes


def check_options(name: str, options: dict[str, Any], registry: Registry | None = None) -> None:
    """Refuse options the named compressor does not take, as a direct call gives them (bench
    passes its shared options to every compressor and drops what each does not take; a
    library caller's `modle=` typo must not silently mean the default model)."""
    import inspect

    registry = registry or get_registry()
    check_names([name], registry)
    if registry.has("compressor", name):
        try:
            params = inspect.signature(registry.entry("compressor", name).factory).parameters
        except (TypeError, ValueError):
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        takes = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    else:
        takes = list(MODEL_OPTIONS)
    unknown = [k for k, v in options.items() if v is not None and k not in takes]
    if unknown:
        raise UsageError(f"compressor {name!r} takes no option {unknown[0]!r}; it takes: "
                         + (", ".join(takes) or "none"))


def create_compressors(names: list[str], **options: Any) -> tuple[list, dict[str, str]]:
    """The named compressors (registered compressors or models); unavailable ones are reported
    (name -> reason), not fatal. Unknown names fail before anything is made.

    This is bench's path, where `model` is the ImageGPT model (`igc bench --model`): it goes to
    the `imagegpt` model and to registered compressors, while any other model plugin in the run
    is made with `spec=None`, its default (docs/plugins.md, "What `spec` is")."""
    registry = get_registry()
    check_names(list(names), registry)
    made, unavailable = [], {}
    for name in names:
        takes_model = name == DEFAULT_MODEL or registry.has("compressor", name)  # not MODEL:SPEC
        mine = options if takes_model else {k: v for k, v in options.items() if k != "model"}
        try:
            made.append(create_compressor(name, registry, **mine))
        except CodecUnavailable as exc:
            unavailable[name] = str(exc)
    return made, unavailable


def _require(registry: Registry, kind: str, name: str, header: container.Header) -> None:
    if registry.has(kind, name):
        return
    what = (f"the model plugin {name!r} (model {header.model_id!r}, fingerprint "
            f"{header.fingerprint})" if kind == "model" else f"the {kind} plugin {name!r}")
    hint = (" (IGC_DISABLE_PLUGINS is set: installed plugins are not loaded)"
            if entry_points_disabled() else "")
    dist = header.distributions.get(kind)
    todo = (f"the file names the package {dist!r} as its source (`pip install {dist}`, if you "
            "trust it)" if dist else
            "install the package that registers it (`igc plugins` lists the installed ones)")
    raise PluginError(f"this file needs {what}, which is not installed{hint}: {todo}")


def file_compressor(header: container.Header, model: str | None = None,
                    registry: Registry | None = None):
    """The compressor that decodes a file with this header: its model, tokenizer and coder by
    name from the registry, or the model spec given (`--model`)."""
    registry = registry or get_registry()
    if model is None:
        _require(registry, "model", header.model_plugin, header)
    _require(registry, "tokenizer", header.tokenizer, header)
    _require(registry, "coder", header.coder, header)
    if model is None:
        plugin = header.model_plugin
        locate = getattr(registry.entry("model", plugin).factory, "spec_for", None)
        spec = locate(header.model_id, header.fingerprint) if locate else header.model_id
    else:
        plugin, spec = split_spec(model, registry)
    try:
        return model_compressor(spec, plugin=plugin, tokenizer=header.tokenizer,
                                coder=header.coder, order=header.order, batch=header.batch,
                                residual=header.residual, registry=registry)
    except ModelError as exc:
        if model:
            raise
        raise ModelError(f"this file needs model {header.model_id!r}, which cannot be loaded "
                         f"({exc}); pass --model with its folder") from None
    except UsageError as exc:  # e.g. palette tokens offered to a subpixel model
        held = header.tokenizer + ("+residual" if header.residual else "")
        raise ModelMismatchError(f"file holds {held} tokens coded with model "
                                 f"{header.model_id!r}; model {spec or plugin!r} cannot decode "
                                 f"them ({exc})") from None


def decompress(data: bytes, model: str | None = None, registry: Registry | None = None,
               progress: Any = None):
    """Decode a `.igc` file with the pieces its header names (or the model given);
    `progress(done, total)` follows the tokens decoded."""
    header, _ = container.unpack(data)
    return file_compressor(header, model, registry).decompress(data, progress)
