"""Loading ImageGPT checkpoints (HuggingFace format) as igc `Model`s.

Where a spec's files are and how they are read checked is igc.models.folders (re-exported here for
callers); which weights a file names is igc.models.catalog.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from igc.core.numerics import FUSED, INTEGER, TORCH
from igc.errors import ModelError
from igc.models.catalog import locate, search_description
from igc.models.folders import (
    COMPUTATION_DEFAULTS,
    DEFAULT_MODEL,
    HUB_ID,
    WEIGHTS_DIR,
    allowing_downloads,
    cached_snapshot,
    downloads_allowed,
    fingerprint_of,
    load_checked,
    packaged_models,
    read_config,
    read_tensors,
    resolve,
)
from igc.models.stepping import IntegerState, IntegerStepping

__all__ = [
    "COMPUTATION_DEFAULTS",
    "DEFAULT_MODEL",
    "HUB_ID",
    "WEIGHTS_DIR",
    "ImageGPTModel",
    "IntegerState",
    "allowing_downloads",
    "cached_snapshot",
    "downloads_allowed",
    "fingerprint_of",
    "load_checked",
    "packaged_models",
    "read_config",
    "read_tensors",
    "resolve",
]



# what __init__ sets: everything else is derived from the weights, and a tuned copy derives again
_LOADED = ("name", "folder", "spec", "config", "fingerprint", "context_length", "vocab_size",
           "threads", "_torch")


def holds_pixel_model(spec: str) -> bool:
    """Whether a shipped model's or a local model folder's config.json says it is a pixel model
    (hub ids are ImageGPT checkpoints; a broken folder is left to the loader's errors)."""
    import json
    import os

    shipped = WEIGHTS_DIR / os.fspath(spec) / "config.json"
    # a shipped name wins over a local folder of that name, as in resolve
    path = (os.fspath(shipped) if "/" not in os.fspath(spec) and shipped.is_file()
            else os.path.join(os.path.expanduser(os.fspath(spec)), "config.json"))
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > 1 << 20:
            return False
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError, TypeError, RuntimeError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "igc-pixel"


class ImageGPTModel(IntegerStepping):
    """An ImageGPT checkpoint behind igc's `Model` protocol."""

    description = ("ImageGPT next-token probabilities (default: igc's own model; or a shipped id, "
                   "local folder or hub id)")

    def __new__(cls, spec: str | None = None, threads: int | None = None):
        """A folder holding a pixel model (`igc train --arch pixel`) loads as one
        (igc.models.pixel): the same plugin, headers and catalog serve both kinds."""
        if cls is ImageGPTModel and spec is not None and holds_pixel_model(spec):
            from igc.models.pixel import PixelModel

            return PixelModel(spec, threads)  # not an ImageGPTModel: __init__ is not run again
        return object.__new__(cls)

    def __init__(self, spec: str | None = None, threads: int | None = None) -> None:
        import torch

        from igc.engines.runtime import ImageGPTRuntime

        self.name, self.folder = resolve(spec)
        self.spec = spec or self.name  # as the user gave it, for messages
        self.config, tensors = load_checked(self.folder)
        self.fingerprint = fingerprint_of(tensors, self.config)
        self.tensors = tensors  # as the checkpoint has them: what context mode 4 changes
        self.runtime = ImageGPTRuntime(self.config, tensors)
        self.context_length = self.runtime.n_positions
        self.vocab_size = self.runtime.vocab_size - 1  # the start token is never predicted
        self.threads = threads
        self._torch = torch

    def with_changes(self, changes: dict[str, np.ndarray]) -> ImageGPTModel:
        """This model with `changes` added to some of its float32 tensors (keyed as the
        checkpoint's tensors are), for context mode 4 (igc.models.tuning). Each sum
        is taken in float64 and rounded to float32, and numerics 2 quantizes the result as it
        quantizes any checkpoint, so every machine derives the same integers. The copy keeps
        this model's name and fingerprint: a file names the model it was tuned from."""
        from igc.engines.runtime import ImageGPTRuntime
        from igc.models.tuning import changed

        tensors = changed(self.tensors, changes)
        tuned = object.__new__(type(self))
        tuned.__dict__.update({k: v for k, v in vars(self).items() if k in _LOADED})
        tuned.tensors, tuned.runtime = tensors, ImageGPTRuntime(self.config, tensors)
        return tuned

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)}: pip install 'igc-codec[model]'"
        return None

    # the torch step of format versions 1-2, the fused float step, integers (igc.core.numerics)
    numerics_supported = (TORCH.number, FUSED.number, INTEGER.number)

    @cached_property
    def numerics(self) -> int:
        """What new files record: 2 (integers, igc.engines.integer) for every model it computes
        (quick-GELU ones), else 1 (the fused float step)."""
        return INTEGER.number if self.runtime.act_name == "quick_gelu" else FUSED.number

    @cached_property
    def integer_model(self):
        """The quantized model numerics 2 computes with (derived from the weights at load, the
        same integers on every machine)."""
        from igc.engines.integer import quantize

        return quantize(self.runtime)

    def engine(self, name: str | None = None):
        """The numerics-2 engine `name` (default: the process's, igc.engines.engines), made once."""
        from igc.engines.engines import current_engine, make_engine

        name = name or current_engine()
        cache = self.__dict__.setdefault("_engines", {})
        if name not in cache:
            cache[name] = make_engine(name, self.integer_model)
        return cache[name]

    def batched_engine(self, numerics: int) -> bool:
        """True when one state should hold every tile of a batch (a GPU engine): numerics 2's
        frequencies do not depend on how tiles are grouped, so lanes may be ignored."""
        from igc.engines.engines import current_engine

        return numerics == INTEGER.number and current_engine() == "cuda"

    def state_bytes(self, rows: int, length: int, numerics: int, engine: str | None = None
                    ) -> int:
        """Host memory that `start(rows, length, numerics)` allocates, from the model's sizes
        alone (nothing is allocated; an upper bound within a few percent, tests compare it with
        the arrays `start` makes). `engine`: numerics 2's engine (default: the process's); the
        cuda engine keeps its state on the GPU and counts nothing here."""
        r = self.runtime
        heads, d, c, nl = r.n_head, r.head_dim, r.n_embd, r.n_layer
        inner = r.layers[0].fc_w.shape[1] if r.layers else 4 * c
        vocab = r.vocab_size
        rows_heads = rows * heads
        # plus what every engine adds: a step's float64 probabilities, fixed scratch buffers
        return self._state_bytes(rows, length, numerics, engine, heads, d, c, nl, inner, vocab,
                                 rows_heads) + rows * vocab * 8 + 8 * max(length, inner, vocab)

    @cached_property
    def parameters(self) -> int:
        r = self.runtime
        return sum(t.numel() for t in (r.wte, r.wpe, r.ln_f, r.lm_head)) + sum(
            t.numel() for layer in r.layers for t in vars(layer).values())

    @property
    def tokenizer(self) -> str:
        """The tokenizer its vocabulary calls for: 513 tokens are a palette (OpenAI's
        checkpoints), anything else is coded as subpixels (and refused unless it has 257)."""
        return "palette" if self.runtime.vocab_size == 513 else "subpixel"

    @cached_property
    def clusters(self) -> np.ndarray | None:
        """A palette model's colour clusters (its preprocessor_config.json); None otherwise."""
        if self.tokenizer != "palette":
            return None
        from igc.core.palette import load_clusters

        return load_clusters(self.folder)

    @classmethod
    def spec_for(cls, model_id: str, fingerprint: str) -> str:
        """The spec that loads the model a file names: the shipped or $IGC_MODEL_PATH folder
        with the header's fingerprint, else the id itself if it is a hub id."""
        try:
            found = locate(model_id, fingerprint)
        except ImportError:  # no torch/safetensors to read candidates: the loader says what to add
            return model_id
        if found is not None:
            return str(found)
        if HUB_ID.match(model_id) and not model_id.startswith((".", "/", "~")):
            if downloads_allowed():
                return model_id  # a hub id: from the HuggingFace cache, or downloaded
            cached = cached_snapshot(model_id)  # the cache only: a file cannot make igc
            if cached is not None:               # reach the network unasked
                return str(cached)
            raise ModelError(f"this file needs model {model_id!r} (fingerprint {fingerprint}), "
                             f"which is {search_description()}, nor in the local HuggingFace "
                             "cache; igc downloads a file's model only when asked: pass "
                             f"--allow-download, or --model {model_id} to fetch it")
        raise ModelError(f"this file needs model {model_id!r} (fingerprint {fingerprint}), which "
                         f"is {search_description()}; pass --model with its folder, or add the "
                         "folder that holds it to IGC_MODEL_PATH")

    def log_probs(self, sequences: np.ndarray, chunk: int = 64) -> np.ndarray:
        torch = self._torch
        out = []
        for i in range(0, len(sequences), chunk):
            ids = torch.from_numpy(np.ascontiguousarray(sequences[i : i + chunk]))
            out.append(torch.log_softmax(self.runtime.logits(ids), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, sequences.shape[1], self.vocab_size))

    def start(self, batch: int, length: int | None = None, numerics: int | None = None):
        """`numerics`: which step computes the probabilities (a file's header names it);
        default: what new files use (`numerics`)."""
        numerics = self.numerics if numerics is None else numerics
        if numerics == INTEGER.number:
            engine = self.engine()
            return IntegerState(engine, engine.start(batch, length))
        return self.runtime.start(batch, length, numerics)

    def head_shape(self, numerics: int) -> tuple[int, int, int] | None:
        """(channels, symbols, fraction bits of the head's input) of the integer head that
        `step_logits` exposes (numerics 2), for an adaptation to correct; None otherwise."""
        if numerics != INTEGER.number:
            return None
        m = self.integer_model
        return m.n_embd, m.vocab, m.norm_frac

    def step(self, state, tokens: np.ndarray) -> np.ndarray:
        from igc.engines.runtime import FusedState, one_thread

        if isinstance(state, IntegerState):  # the same frequencies as floats (exact: < 2**53)
            return np.ldexp(self.step_frequencies(state, tokens).astype(np.float64),
                            -INTEGER.frequency_bits)
        if isinstance(state, FusedState):
            return self.runtime.step_probs(state, np.ascontiguousarray(tokens, dtype=np.int64))
        torch = self._torch
        with one_thread():  # the probabilities too must not depend on the thread count
            logits = self.runtime.step(state, torch.from_numpy(np.ascontiguousarray(tokens)))
            return torch.softmax(logits, dim=-1).double().numpy()
