"""Model-based compressors: a Tokenizer + Model + Coder behind the `Compressor` interface."""

from __future__ import annotations

from functools import lru_cache

from igc.core import container
from igc.core.types import Image
from igc.errors import ModelError, ModelMismatchError, UsageError
from igc.plugins.markers import hookimpl


@lru_cache(maxsize=4)
def load_model(spec: str | None):
    """Models are large to load and immutable: load each once per process."""
    if spec == "uniform":
        from igc.models.uniform import UniformModel

        return UniformModel()
    from igc.models.imagegpt import ImageGPTModel

    return ImageGPTModel(spec)


class ModelCompressor:
    """Shared behaviour of compressors that code with a model's probabilities."""

    lossless = True
    model_based = True
    model_spec: str | None = None

    def __init__(self, model: str | None = None, order: str = "interleaved",
                 batch: int | None = None, mode: str | None = None,
                 tokenizer: str | None = None) -> None:
        from igc.coders.range import RangeCoder
        from igc.core.palette_codec import make_codec

        self.model = load_model(model or self.model_spec)
        # the model's vocabulary picks subpixel or palette coding (docs/palette.md)
        self.codec = make_codec(self.model, RangeCoder(), mode=mode, tokenizer=tokenizer,
                                order=order, batch=batch)
        self.lossless = getattr(self.codec, "lossless", True)
        if not self.lossless:
            self.name = f"{self.name}-palette"  # lossy rows must not pass for the lossless codec

    @property
    def model_info(self) -> dict:
        return {"model": self.model.name, "fingerprint": self.model.fingerprint,
                "parameters": self.model.parameters, "tile": self.codec.tokenizer.tile,
                "tokenizer": self.codec.tokenizer.name,
                "mode": getattr(self.codec, "mode", "subpixel")}

    def report_fields(self, image: Image, result) -> dict:
        """Extra per-image bench fields (palette models: bit split, PSNR of the lossy mode)."""
        from igc.core.palette_codec import report_fields

        return report_fields(result, image)

    def compress(self, image: Image) -> bytes:
        return self.codec.encode(image).data

    def compress_with_stats(self, image: Image):
        return self.codec.encode(image)

    def estimate_bits(self, image: Image) -> float:
        return self.codec.estimate_bits(image)

    def decompress(self, data: bytes) -> Image:
        return self.codec.decode(data)


class ImageGPTCompressor(ModelCompressor):
    name = "imagegpt"
    description = "ImageGPT next-subpixel probabilities + range coding (default: igc's own model)"

    @classmethod
    def available(cls) -> str | None:
        import importlib.util

        missing = [m for m in ("torch", "safetensors") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)}: pip install 'igc-codec[model]'"
        return None


class UniformCompressor(ModelCompressor):
    name = "uniform"
    description = "every subpixel value equally likely, same tokenizer/coder/container (8 bpsp)"
    model_spec = "uniform"

    def __init__(self, order: str = "interleaved", batch: int | None = None,
                 mode: str | None = None, **_: object):
        super().__init__(model="uniform", order=order, batch=batch, mode=mode)


def _spec_for(header: container.Header) -> str:
    """The model a header names, as something `load_model` can load: the shipped or
    $IGC_MODEL_PATH folder with the header's fingerprint, else the id itself (a hub id)."""
    from igc.models.imagegpt import HUB_ID

    if header.model_id == "uniform":
        return "uniform"
    from igc.models.catalog import locate, search_description

    try:
        found = locate(header.model_id, header.fingerprint)
    except ImportError:  # no torch/safetensors to read candidates: the loader says what to install
        return header.model_id
    if found is not None:
        return str(found)
    if HUB_ID.match(header.model_id) and not header.model_id.startswith((".", "/", "~")):
        return header.model_id  # a hub id: its weights may be in the HuggingFace cache
    raise ModelError(f"this file needs model {header.model_id!r} (fingerprint "
                     f"{header.fingerprint}), which is {search_description()}; pass "
                     f"--model with its folder, or add the folder that holds it to IGC_MODEL_PATH")


def decompress_any(data: bytes, model: str | None = None) -> Image:
    """Decode a `.igc` file with the model its header names (or the one given)."""
    header, _ = container.unpack(data)
    spec = model or _spec_for(header)
    mode = {"palette": "palette", "palette+residual": "lossless"}.get(header.tokenizer)
    try:
        compressor = (UniformCompressor(order=header.order) if spec == "uniform"
                      else ImageGPTCompressor(model=spec, order=header.order, mode=mode,
                                              batch=header.batch))
    except ModelError as exc:
        if model:
            raise
        raise ModelError(f"this file needs model {header.model_id!r}, which cannot be loaded "
                         f"({exc}); pass --model with its folder") from None
    except UsageError as exc:  # e.g. palette tokens offered to a subpixel model
        raise ModelMismatchError(f"file holds {header.tokenizer} tokens coded with model "
                                 f"{header.model_id!r}; model {spec!r} cannot decode them "
                                 f"({exc})") from None
    return compressor.decompress(data)


@hookimpl
def register_compressors(register):
    register(ImageGPTCompressor)
    register(UniformCompressor)
