"""A composed codec (Tokenizer + Model + Coder) behind the `Compressor` interface.

The pieces are chosen by name in igc/plugins/compose.py; this wrapper only adds what bench and the
CLI read: a name, a lossless flag, file statistics and the model's description.
"""

from __future__ import annotations

from igc.codec.neural import EncodeResult, NeuralCodec, Progress
from igc.core.numerics import INTEGER, name_of
from igc.core.protocols import Quantized
from igc.core.types import Image


class ModelCompressor:
    """Codes with a model's probabilities; `name` is what bench rows and `-c` call it. A
    `Compressor` with the `ModelBased` and `Described` extras bench reads
    (igc/core/protocols.py)."""

    model_based = True

    def __init__(self, codec: NeuralCodec, name: str) -> None:
        self.codec = codec
        self.model = codec.model
        self.lossless = codec.lossless
        # a lossy composition must not pass for the lossless one in a bench table
        self.name = name if self.lossless else f"{name}-{codec.tokenizer.name}"

    @property
    def model_info(self) -> dict:
        return {"model": self.model.name, "fingerprint": self.model.fingerprint,
                "parameters": getattr(self.model, "parameters", None),
                "tile": self.codec.tokenizer.tile, "tokenizer": self.codec.tokenizer.name,
                "mode": self.codec.mode, "plugin": self.codec.plugin,
                "coder": self.codec.coder.name, "context": self.codec.context_choice,
                **numerics_info(self.model)}

    def compress(self, image: Image) -> bytes:
        return self.codec.encode(image).data

    def compress_with_stats(self, image: Image, progress: Progress | None = None
                            ) -> EncodeResult:
        """The file and what it cost; `progress(done, total)` follows the tokens coded."""
        return self.codec.encode(image, progress)

    def estimate_bits(self, image: Image) -> float:
        return self.codec.estimate_bits(image)

    def decompress(self, data: bytes, progress: Progress | None = None) -> Image:
        return self.codec.decode(data, progress)



def numerics_info(model) -> dict:
    """Which numerics codes this model's files (and, for numerics 2, which engine computes it):
    a bench row says how its bits were computed."""
    numerics = getattr(model, "numerics", None)
    if numerics is None or (len(getattr(model, "numerics_supported", ())) < 2
                            and not isinstance(model, Quantized)):
        return {}  # a model with one float step (a plugin's, HuggingFace's): nothing to choose
    out = {"numerics": numerics, "numerics_name": name_of(numerics)}
    if numerics == INTEGER.number and isinstance(model, Quantized):
        from igc.engines.engines import current_engine

        out["engine"] = current_engine()
    return out
