"""The same `Model` protocol computed by HuggingFace's `ImageGPTForCausalImageModeling`.

It exists as a yardstick: `igc speed` runs it beside igc's own runtime on the same weights and
images, so the speed-up is measured rather than claimed, and the equivalence tests check that the
two give the same distributions. It loads with `from_pretrained(folder)` and steps with
HuggingFace's own key/value cache (`use_cache=True`), i.e. the way a HuggingFace user would run it.

Its probabilities are *not* bit-identical to igc's runtime (different kernels round differently),
so a file must be decoded by the backend that encoded it. Both backends report the same fingerprint,
because the fingerprint identifies the weights, not the arithmetic; the pixel checksum in the header
catches a cross-backend decode.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from igc.errors import ModelError
from igc.models.folders import fingerprint_of, load_checked, resolve


@dataclass
class HFState:
    """HuggingFace's cache object (created by the first step) and the batch it belongs to."""

    batch: int
    length: int
    cache: Any = None
    position: int = 0


class HFImageGPTModel:
    """An ImageGPT checkpoint run by `transformers`, behind igc's `Model` protocol."""

    backend = "hf"

    def __init__(self, spec: str | None = None, threads: int | None = None) -> None:
        import torch

        try:
            from transformers import ImageGPTForCausalImageModeling
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise ModelError("the HuggingFace backend needs transformers "
                             "(pip install 'igc-codec[model]')") from None
        self.name, self.folder = resolve(spec)
        self.spec = spec or self.name  # as the user gave it, for messages
        self.config, tensors = load_checked(self.folder)
        self.fingerprint = fingerprint_of(tensors, self.config)
        del tensors  # transformers loads its own copy
        hf_logging.disable_progress_bar()  # its loading bar would interleave with igc's output
        try:
            # .float(): transformers 5 loads in the checkpoint's dtype by default ("auto").
            self.hf = ImageGPTForCausalImageModeling.from_pretrained(
                str(self.folder), use_safetensors=True).float().eval()
        except Exception as exc:  # transformers raises many types for a bad checkpoint
            raise ModelError(f"transformers cannot load {self.folder}: {exc}") from None
        self.context_length = int(self.config["n_positions"])
        self.vocab_size = int(self.config["vocab_size"]) - 1
        self.threads = threads
        self._torch = torch
        # transformers 5 renamed `past_key_values` to `cache` (the old name is deprecated).
        params = inspect.signature(self.hf.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.hf.parameters())

    numerics = 0  # one step: HuggingFace's
    numerics_supported = (0,)
    tokenizer = "subpixel"

    def log_probs(self, sequences: np.ndarray, chunk: int = 64) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(sequences), chunk):
                ids = torch.from_numpy(np.ascontiguousarray(sequences[i : i + chunk])).long()
                logits = self.hf(ids, use_cache=False).logits
                out.append(torch.log_softmax(logits, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, sequences.shape[1], self.vocab_size))

    def state_bytes(self, rows: int, length: int, numerics: int = 0, engine: str | None = None
                    ) -> int:
        """What `length` steps of `rows` sequences hold at most: transformers' float32 key and
        value cache, and a step's logits and probabilities (igc.codec.memory)."""
        c, layers = int(self.config["n_embd"]), int(self.config["n_layer"])
        return layers * rows * c * length * 2 * 4 + rows * (self.vocab_size + 1) * 16

    def start(self, batch: int, length: int | None = None, numerics: int = 0) -> HFState:
        if numerics != 0:
            raise ModelError(f"the HuggingFace backend computes numerics 0 only, not {numerics}")
        return HFState(batch, length or self.context_length)

    def step(self, state: HFState, tokens: np.ndarray) -> np.ndarray:
        torch = self._torch
        if state.position >= state.length:
            raise ModelError(f"sequence longer than the model's context of {self.context_length}")
        ids = torch.from_numpy(np.ascontiguousarray(tokens)).long().view(-1, 1)
        with torch.inference_mode():
            out = self.hf(ids, use_cache=True, **{self._cache_arg: state.cache})
        state.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        state.position += 1
        return torch.softmax(out.logits[:, -1], dim=-1).double().numpy()
