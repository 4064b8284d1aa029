"""Model-based coding: Tokenizer + Model + Coder -> `.igc` bytes, and back.

The encoder runs the model exactly as the decoder will: one token per step, all tiles of a batch
stepped together, batches in a fixed order. Any other computation (say, one parallel pass over the
whole sequence) rounds differently in the last bits, and a single differing probability derails the
entropy decoder for the rest of the stream. The decoder returns pixels only after their checksum
matches the one the encoder stored.

The pieces are used only through the members of igc/core/protocols.py. A lossy tokenizer (the
palette) either makes a lossy file or, with `residual`, is followed in the same stream by every
subpixel's exact value (igc/codec/residual.py).
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from igc.codec import residual
from igc.codec.lanes import LaneStepper, lane_for, lane_pool
from igc.core import container
from igc.core.palette import combined_fingerprint
from igc.core.protocols import SymbolDecoder, SymbolEncoder, conform
from igc.core.tokenizer import SubpixelTokenizer
from igc.core.types import Geometry, Image, TokenizedImage
from igc.errors import ChecksumError, FormatError, ImageError, ModelMismatchError, UsageError

DEFAULT_BATCH = 256
GPU_BATCH = 4096  # tiles a GPU engine steps at once when encoding (lanes.MAX_GPU_LANE: the same)
REGIONS = 8
# progress(done, total): tokens coded so far and in all, called once before the first step and
# after every step (the CLI draws its progress bar from it; this layer knows nothing of rich)
Progress = Callable[[int, int], None]


@dataclass
class EncodeResult:
    data: bytes
    model_bits: float  # -sum log2 p of everything coded, with the probabilities coded with
    header_bytes: int
    subpixels: int
    token_bits: float = 0.0  # of which the tokens, under the model
    residual_bits: float = 0.0  # of which the exact residuals after a lossy tokenizer's tokens
    approximation: Image | None = None  # a lossy tokenizer's decode of the tokens


def region_checks(tokens: np.ndarray) -> bytes:
    groups = np.array_split(np.arange(len(tokens)), min(REGIONS, len(tokens)))
    return bytes(zlib.crc32(tokens[g].astype(np.uint8).tobytes()) & 0xFF for g in groups)


MISMATCH_HINT = ("decode without --model (igc finds the file's model by its fingerprint) or "
                 "with --model naming the folder that holds")
FOLDER_PLUGINS = ("imagegpt",)  # model plugins whose models are folders of weights


def mismatch_hint(header) -> str:
    """How to decode a file whose model was not the one given: a folder for ImageGPT; for a
    plugin's model, no --model at all (the header names the plugin that rebuilds it)."""
    if header.model_plugin in FOLDER_PLUGINS:
        return f"{MISMATCH_HINT} {header.model_id!r}"
    return (f"decode without --model: the file names its model plugin {header.model_plugin!r}, "
            "which igc loads by that name")


def offered(model, fingerprint: str) -> str:
    """The model a decoder was given, as the user named it (--model) and as it names itself."""
    spec = str(getattr(model, "spec", None) or model.name)
    named = f"model {model.name!r}, " if spec != model.name else ""
    return f"model {spec!r} ({named}fingerprint {fingerprint})"


def pixel_checksum(image: Image) -> int:
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


class _Counter:
    """Tokens done so far, passed on to a progress callback (or nowhere)."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        if progress:
            progress(0, total)

    def add(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


class NeuralCodec:
    """Codes images with a model's next-token distributions.

    `tokenizer` defaults to subpixels tiled to the model's context in `order`; `residual` codes
    exact values after a lossy tokenizer's tokens; `plugin` is the registered name of the model,
    recorded in headers so that decoding can rebuild it (default: the model's name);
    `distributions` the pip packages that registered the tokenizer, coder and model plugins (by
    kind; built-ins absent), recorded so that a machine without them can say what to install.
    """

    def __init__(self, model, coder, order: str = "interleaved", batch: int = DEFAULT_BATCH,
                 lane: int | None = None, *, tokenizer=None, residual: bool = False,
                 plugin: str | None = None, distributions: dict[str, str] | None = None):
        reason = container.unrecordable_model_id(model.name)
        if reason:  # refused before any coding: a file that records it could not be read
            raise UsageError(f"{reason}; rename the model (its folder)")
        self.model = model
        self.coder = coder
        self.tokenizer = tokenizer or SubpixelTokenizer(order=order, model=model)
        self.order = self.tokenizer.order
        self.batch = batch or DEFAULT_BATCH
        self.lane = lane  # tiles per lane; None: igc.codec.lanes.lane_size of the first batch
        self.residual = bool(residual) and not self.tokenizer.lossless
        self.plugin = plugin or model.name
        self.distributions = dict(distributions or {})
        self.fingerprint = combined_fingerprint(model.fingerprint,
                                                getattr(self.tokenizer, "fingerprint", None))

    @property
    def lossless(self) -> bool:
        return self.tokenizer.lossless or self.residual

    @property
    def mode(self) -> str:
        """What the file holds: the tokenizer's name, "+residual" when exact values follow."""
        return self.tokenizer.name + ("+residual" if self.residual else "")

    # -- shared stepping --------------------------------------------------------------------
    def _batches(self, n_tiles: int, batch: int | None = None) -> list[slice]:
        batch = batch or self.batch
        return [slice(i, min(i + batch, n_tiles)) for i in range(0, n_tiles, batch)]

    def batch_for(self, n_tiles: int) -> int:
        """Tiles per batch for encoding an image of `n_tiles` tiles (the header records it):
        the codec's batch, or with a GPU engine every tile of the image (up to GPU_BATCH), which
        is what lets the GPU step them all at once. Numerics 2 computes each tile's frequencies
        independently of its batch, so any decoder reads either."""
        batched = getattr(self.model, "batched_engine", None)
        if self.batch == DEFAULT_BATCH and batched is not None and batched(self.model.numerics):
            return max(self.batch, min(n_tiles, GPU_BATCH))
        return self.batch

    def lane_for(self, n_tiles: int) -> int:
        """Tiles per lane for an image of `n_tiles` tiles (the header records it)."""
        return lane_for(n_tiles, self.batch_for(n_tiles), self.lane)

    def geometry(self, tokens: int) -> Geometry:
        """Where the tokens of a tile of `tokens` positions lie (given to the model's start)."""
        return Geometry(self.tokenizer.tile, self.order, tokens, self.tokenizer.name)

    def _steps(self, layout: TokenizedImage) -> int:
        """Positions to step through: up to the last coded position of any tile."""
        coded_any = layout.coded.any(axis=0)
        return int(np.nonzero(coded_any)[0][-1]) + 1

    # -- encode -----------------------------------------------------------------------------
    def encode_tokens(self, tok: TokenizedImage, encoder, progress: Progress | None = None
                      ) -> float:
        """Range-code the coded positions of every tile; returns the model bits spent.
        `progress(done, total)` is told the tokens coded after every step."""
        bits = 0.0
        steps = self._steps(tok)
        lane = self.lane_for(len(tok.tokens))
        batches = self._batches(len(tok.tokens), self.batch_for(len(tok.tokens)))
        count = _Counter(progress, int(tok.coded.sum()))
        with lane_pool(-(-(batches[0].stop - batches[0].start) // lane)) as pool:
            for sl in batches:
                bits += self._encode_batch(tok.tokens[sl], tok.coded[sl], lane, steps, pool,
                                           encoder, count)
        return bits

    def _encode_batch(self, tokens, coded, lane, steps, pool, encoder, count) -> float:
        bits = 0.0
        stepper = LaneStepper(self.model, len(tokens), lane, steps, pool, self.model.numerics,
                              self.geometry(tokens.shape[1]))
        prev = np.full(len(tokens), self.tokenizer.start_token, dtype=np.int64)
        for t in range(steps):
            probs = stepper.step(prev)
            mask = coded[:, t]
            if mask.any():
                symbols = tokens[mask, t]
                encoder.encode(symbols, probs[mask])
                bits += self.coder.ideal_bits(symbols, probs[mask])
                count.add(len(symbols))
            prev = tokens[:, t]
        return bits

    def encode(self, image: Image, progress: Progress | None = None) -> EncodeResult:
        """The `.igc` file of `image`; `progress(done, total)` follows the tokens coded."""
        container.check_pixels(*image.shape[:2], ImageError)  # a file igc could not read back
        tok = self.tokenizer.encode(image)
        encoder = conform(self.coder.encoder(), SymbolEncoder,
                          f"coder {self.coder.name!r}'s encoder")
        token_bits = self.encode_tokens(tok, encoder, progress)
        approximation, residual_bits = None, 0.0
        if not self.tokenizer.lossless:
            approximation = self.tokenizer.decode(tok.tokens, tok.height, tok.width)
            if self.residual:
                residual_bits = residual.encode(image, approximation, encoder, self.coder)
        payload = encoder.finish()
        header = self._header(image if self.lossless else approximation, tok, len(payload))
        data = container.pack(header, payload)
        return EncodeResult(data, token_bits + residual_bits, len(data) - len(payload),
                            tok.height * tok.width * 3, token_bits, residual_bits, approximation)

    def _header(self, image: Image, tok: TokenizedImage, payload_length: int) -> container.Header:
        return container.Header(
            height=tok.height, width=tok.width, tile=tok.tile,
            model_id=self.model.name, fingerprint=self.fingerprint,
            checksum=pixel_checksum(image), region_checks=region_checks(tok.tokens),
            payload_length=payload_length, batch=self.batch_for(len(tok.tokens)), lane=self.lane_for(len(tok.tokens)),
            tokenizer=self.tokenizer.name, order=self.order, residual=self.residual,
            coder=self.coder.name, precision=self.coder.precision,
            numerics=self.model.numerics, model_plugin=self.plugin,
            distributions=self.distributions,
        )

    # -- estimate ---------------------------------------------------------------------------
    def estimate_bits(self, image: Image) -> float:
        """Model bits from one parallel pass: fast, but not what the coder uses bit for bit (the
        residuals' bits, after a lossy tokenizer, are exact)."""
        tok = self.tokenizer.encode(image)
        bits = self.one_shot_bits(tok)
        if self.residual:
            approximation = self.tokenizer.decode(tok.tokens, tok.height, tok.width)
            bits += residual.ideal_bits(image, approximation, self.coder)
        return bits

    def one_shot_bits(self, tok: TokenizedImage) -> float:
        inputs = np.concatenate(
            [np.full((len(tok.tokens), 1), self.tokenizer.start_token), tok.tokens[:, :-1]], axis=1)
        logp = self.model.log_probs(inputs)
        picked = np.take_along_axis(logp, tok.tokens[..., None], axis=-1)[..., 0]
        return float(-(picked[tok.coded]).astype(np.float64).sum() / math.log(2))

    # -- decode -----------------------------------------------------------------------------
    def check_model(self, header: container.Header) -> None:
        """Refuse a file this composition did not write, before decoding anything."""
        held = header.tokenizer + ("+residual" if header.residual else "")
        if held != self.mode:
            raise FormatError(f"file holds {held} tokens; this codec decodes {self.mode}")
        if header.fingerprint != self.fingerprint:
            if getattr(self.tokenizer, "fingerprint", None):
                raise ModelMismatchError(
                    f"file was encoded with model {header.model_id!r} and its {held} tokenizer's "
                    f"data (fingerprint {header.fingerprint}) but "
                    f"{offered(self.model, self.fingerprint)} with its {self.tokenizer.name} data "
                    f"was given; {MISMATCH_HINT} {header.model_id!r} and the same tokenizer data "
                    "(a palette's preprocessor_config.json)")
            raise ModelMismatchError(
                f"file was encoded with model {header.model_id!r} (fingerprint "
                f"{header.fingerprint}) but {offered(self.model, self.fingerprint)} was "
                f"given; {mismatch_hint(header)}")
        self.check_numerics(header)
        if header.tile != self.tokenizer.tile or header.order != self.order:
            raise FormatError(f"file uses {header.tile}px tiles in {header.order} order; model "
                              f"{self.model.name!r} codes {self.tokenizer.tile}px tiles in "
                              f"{self.order} order")
        if (header.coder, header.precision) != (self.coder.name, self.coder.precision):
            raise FormatError(f"file was coded with coder {header.coder!r} at {header.precision} "
                              f"bits; this codec uses {self.coder.name!r} at "
                              f"{self.coder.precision} bits")

    def check_numerics(self, header: container.Header) -> None:
        """Refuse a file whose probabilities this model cannot recompute bit for bit."""
        supported = self.model.numerics_supported
        if header.numerics not in supported:
            raise FormatError(
                f"file was coded with numerics {header.numerics} (docs/format.md), but model "
                f"{self.model.name!r} computes only {', '.join(map(str, supported))}: "
                "decode it with the igc version or backend that wrote it")

    def decode_tokens(self, header: container.Header, decoder,
                      progress: Progress | None = None) -> np.ndarray:
        """Step the model over the header's tile layout, decoding coded positions and copying
        padding ones; returns the (tiles, L) tokens. `progress` as for `encode_tokens`."""
        layout = self.tokenizer.layout(header.height, header.width)
        tokens = layout.tokens
        steps = self._steps(layout)
        batches = self._batches(len(tokens), header.batch)
        count = _Counter(progress, int(layout.coded.sum()))
        with lane_pool(-(-(batches[0].stop - batches[0].start) // header.lane)) as pool:
            for sl in batches:
                self._decode_batch(tokens[sl], layout.coded[sl], layout.pad_source[sl],
                                   header.lane, steps, pool, decoder, header.numerics, count)
        return tokens

    def _decode_batch(self, block, coded, source, lane, steps, pool, decoder,
                      numerics, count) -> None:
        rows = np.arange(len(block))
        stepper = LaneStepper(self.model, len(block), lane, steps, pool, numerics,
                              self.geometry(block.shape[1]))
        prev = np.full(len(block), self.tokenizer.start_token, dtype=np.int64)
        for t in range(steps):
            probs = stepper.step(prev)
            mask = coded[:, t]
            if mask.any():
                block[mask, t] = decoder.decode(probs[mask])
                count.add(int(mask.sum()))
            pad = ~mask
            if pad.any():
                block[pad, t] = block[rows[pad], source[pad, t]]
            prev = block[:, t]

    def decode_many(self, datas: list[bytes]) -> list[Image]:
        """Several files' pixels. Where numerics 2 lets tiles be grouped freely and every file
        is one batch (as a GPU engine encodes), the tiles of all files are stepped as one batch,
        each file range-decoded from its own stream: one model step serves every image, which is
        what fills a GPU. Otherwise the files are decoded one by one."""
        parsed = [container.unpack(d) for d in datas]
        for header, _ in parsed:
            self.check_model(header)
        layouts = [self.tokenizer.layout(h.height, h.width) for h, _ in parsed]
        together = (len(datas) > 1 and not self.residual
                    and all(h.numerics == 2 and h.batch >= len(lay.tokens)
                            for (h, _), lay in zip(parsed, layouts, strict=True)))
        if not together:
            return [self.decode(d) for d in datas]
        decoders = [conform(self.coder.decoder(payload), SymbolDecoder,
                            f"coder {self.coder.name!r}'s decoder") for _, payload in parsed]
        tokens = np.concatenate([lay.tokens for lay in layouts])
        coded = np.concatenate([lay.coded for lay in layouts])
        source = np.concatenate([lay.pad_source for lay in layouts])
        bounds = np.cumsum([0] + [len(lay.tokens) for lay in layouts])
        files = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        steps = max(self._steps(lay) for lay in layouts)
        rows = np.arange(len(tokens))
        lane = lane_for(len(tokens), len(tokens))
        with lane_pool(-(-len(tokens) // lane)) as pool:
            stepper = LaneStepper(self.model, len(tokens), lane, steps, pool, 2,
                                  self.geometry(tokens.shape[1]))
            prev = np.full(len(tokens), self.tokenizer.start_token, dtype=np.int64)
            for t in range(steps):
                probs = stepper.step(prev)
                for sl, decoder in zip(files, decoders, strict=True):
                    mask = coded[sl, t]
                    if mask.any():
                        tokens[sl][mask, t] = decoder.decode(probs[sl][mask])
                pad = ~coded[:, t]
                if pad.any():
                    tokens[pad, t] = tokens[rows[pad], source[pad, t]]
                prev = tokens[:, t]
        return [self._verified(self.tokenizer.decode(tokens[sl], header.height, header.width),
                               tokens[sl], header)
                for sl, (header, _) in zip(files, parsed, strict=True)]

    @staticmethod
    def _verified(image: Image, tokens: np.ndarray, header: container.Header) -> Image:
        """`image` if it matches the header's checksum, else ChecksumError naming the tile
        regions that differ: a decoder never returns pixels it has not checked."""
        if pixel_checksum(image) != header.checksum:
            regions = region_checks(tokens)
            bad = [i + 1 for i, (a, b) in enumerate(zip(regions, header.region_checks,
                                                        strict=False)) if a != b]
            where = (f" in tile region(s) {', '.join(map(str, bad))} of {len(regions)} (tiles in "
                     "raster order)") if bad else ""
            raise ChecksumError(f"decoded pixels fail the checksum{where}: the file is corrupted "
                                "or was decoded on a machine that computes the model differently")
        return image

    def decode(self, data: bytes, progress: Progress | None = None) -> Image:
        """The pixels of an `.igc` file, checked against its checksum; `progress(done, total)`
        follows the tokens decoded."""
        header, payload = container.unpack(data)
        self.check_model(header)
        decoder = conform(self.coder.decoder(payload), SymbolDecoder,
                          f"coder {self.coder.name!r}'s decoder")
        tokens = self.decode_tokens(header, decoder, progress)
        image = self.tokenizer.decode(tokens, header.height, header.width)
        if self.residual:
            image = residual.decode(image, decoder)
        return self._verified(image, tokens, header)
