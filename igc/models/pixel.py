"""A pixel model (`igc train --arch pixel`, igc.models.pixel_network) behind igc's `Model`
protocol, so the codec codes with it as with any ImageGPT: `--model FOLDER` on an export.

`ImageGPTModel(spec)` (igc.models.imagegpt) returns one of these when the spec's folder holds a
pixel model, so the `imagegpt` plugin, file headers (model id and fingerprint) and the catalog
that finds a file's model serve both. It computes numerics 2 only, on all three engines
(igc.engines.pixel_integer, pixel_cpu, pixel_torch); the float estimate (`--estimate`) runs
the torch module. Context modes 0-4 apply as they do to ImageGPT (the adaptation's classes are the
channels, each with its own head; mode 4 tunes the body's and the heads' norms and biases,
igc.models.tuning).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from igc.core.numerics import INTEGER
from igc.errors import ModelError
from igc.models.folders import fingerprint_of, resolve
from igc.models.stepping import IntegerState, IntegerStepping

# what a tuned copy (`with_changes`) shares with its model: everything but the weights and what
# is made from them (the float module, the integer model, its engines)
_LOADED = ("name", "folder", "spec", "cfg", "config", "fingerprint", "context_length",
           "vocab_size", "threads", "_torch")


class PixelModel(IntegerStepping):
    """A pixel export behind the `Model` protocol (see the module docstring)."""

    numerics_supported = (INTEGER.number,)
    token_orders = ("interleaved",)  # its heads read a pixel's channels in turn: R, G, B

    def __init__(self, spec: str | None = None, threads: int | None = None) -> None:
        import torch

        from igc.models.pixel_network import load_pixel

        self.name, self.folder = resolve(spec)
        self.spec = spec or self.name
        self.cfg, self.config, self.tensors = load_pixel(self.folder)
        self.fingerprint = fingerprint_of(self.tensors, self.config)
        self.context_length = 3 * self.cfg.tile * self.cfg.tile
        self.vocab_size = 256
        self.threads = threads
        self._torch = torch

    def with_changes(self, changes: dict[str, np.ndarray]) -> PixelModel:
        """This model with `changes` added to some of its float32 tensors, for context mode 4
        (igc.models.tuning), as `ImageGPTModel.with_changes`: each sum taken in float64 and
        rounded to float32, then quantized by numerics 2 as any export is, so every machine
        derives the same integers. The copy keeps this model's name and fingerprint (a file
        names the model it was tuned from) and makes its own integer model and engines."""
        from igc.models.tuning import changed

        tuned = object.__new__(type(self))
        tuned.__dict__.update({k: v for k, v in vars(self).items() if k in _LOADED})
        tuned.tensors = changed(self.tensors, changes)
        return tuned

    @cached_property
    def net(self):
        """The float module (the estimate's `log_probs`), made when first asked for: a decoder
        of a tuned copy never needs it."""
        import torch

        from igc.models.pixel_network import PixelGPT

        with torch.device("meta"):  # no random init to overwrite
            net = PixelGPT(self.cfg)
        net.load_state_dict(self.tensors, assign=True)
        return net.eval()

    @cached_property
    def runtime(self):
        """The body's float runtime (ImageGPT's, R's head as its head): its sizes describe the
        model (`igc speed`); nothing here computes with it."""
        from igc.engines.pixel_integer import runtime_tensors
        from igc.engines.runtime import ImageGPTRuntime

        return ImageGPTRuntime(*runtime_tensors(self.tensors, self.cfg))

    @cached_property
    def numerics(self) -> int:
        return INTEGER.number

    @cached_property
    def integer_model(self):
        from igc.engines.pixel_integer import quantize_pixel

        return quantize_pixel(self.tensors, self.cfg)

    def engine(self, name: str | None = None):
        from igc.engines.engines import check_engine, current_engine, make_engine

        name = check_engine(name or current_engine())
        cache = self.__dict__.setdefault("_engines", {})
        if name not in cache:
            try:
                cache[name] = make_engine(name, self.integer_model)
            except ModelError as exc:
                raise ModelError(f"model {self.name!r}: {exc}") from None
        return cache[name]

    def start(self, batch: int, length: int | None = None, numerics: int | None = None):
        if numerics not in (None, INTEGER.number):
            raise ModelError(f"model {self.name!r} is a pixel model, which computes numerics "
                             f"{INTEGER.number} only, not {numerics}")
        engine = self.engine()
        return IntegerState(engine, engine.start(batch, length))

    def step(self, state: IntegerState, tokens: np.ndarray) -> np.ndarray:
        """The frequencies of a numerics-2 step as probabilities (exact: below 2**53)."""
        return np.ldexp(self.step_frequencies(state, tokens).astype(np.float64),
                        -INTEGER.frequency_bits)

    @property
    def clusters(self) -> None:
        return None

    def batched_engine(self, numerics: int) -> bool:
        """As ImageGPT's: the cuda engine steps every tile of a batch in one state."""
        from igc.engines.engines import current_engine

        return numerics == INTEGER.number and current_engine() == "cuda"

    def state_bytes(self, rows: int, length: int, numerics: int, engine: str | None = None
                    ) -> int:
        """The body's cache for one position per pixel (an upper bound, as ImageGPT's), plus
        the heads' streams."""
        cfg = self.cfg
        heads, c = cfg.heads, cfg.width
        return (self._state_bytes(rows, -(-length // 3), numerics, engine, heads, c // heads, c,
                                  cfg.layers, 4 * c, 257, rows * heads)
                + rows * 257 * 8 + 8 * max(length, 4 * c, 257) + 3 * rows * c * 8)

    @cached_property
    def parameters(self) -> int:
        return sum(t.numel() for t in self.tensors.values())

    @property
    def tokenizer(self) -> str:
        return "subpixel"

    def log_probs(self, sequences: np.ndarray, chunk: int = 64) -> np.ndarray:
        """The float model's log-probabilities of whole-pixel sequences that start with the
        start symbol, as the subpixel tokenizer makes them."""
        torch = self._torch
        if sequences.size and (sequences.shape[1] % 3 or (sequences[:, 1:] > 255).any()
                               or (sequences < 0).any()):
            raise ModelError(f"model {self.name!r} reads whole pixels of values 0-255 after the "
                             "start symbol")
        out = []
        with torch.inference_mode():
            for i in range(0, len(sequences), chunk):
                ids = torch.from_numpy(np.ascontiguousarray(sequences[i : i + chunk], np.int64))
                out.append(torch.log_softmax(self.net(ids).float(), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, sequences.shape[1], self.vocab_size))

    def head_shape(self, numerics: int) -> tuple[int, int, int] | None:
        if numerics != INTEGER.number:
            return None
        body = self.integer_model.body
        return body.n_embd, 256, body.norm_frac

    # an encoder's block (igc.codec.loop.Stepper): 16 whole pixels per pass of the body, where
    # 16 subpixels (ImageGPT's) give it five or six (kodim23's top 128x128, mode 3, one core:
    # 2.14 s to encode against 2.50 s, the same bytes; scripts/pixel_blocks.py --positions 16,48)
    block_positions = 48
