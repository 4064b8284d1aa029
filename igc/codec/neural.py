"""Model-based coding: Tokenizer + Model + Coder -> `.igc` bytes, and back.

The encoder runs the model exactly as the decoder will: one token per step, all tiles of a batch
stepped together, batches in a fixed order. Any other computation (say, one parallel pass over the
whole sequence) rounds differently in the last bits, and a single differing probability derails the
entropy decoder for the rest of the stream. Both run the one loop of igc/codec/loop.py; this module
plans it (which tiles step together), writes and reads the container, and checks. The decoder
returns pixels only after their checksum matches the one the encoder stored.

The pieces are used only through the members of igc/core/protocols.py. A lossy tokenizer (the
palette) either makes a lossy file or, with `residual`, is followed in the same stream by every
subpixel's exact value (igc/codec/residual.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from igc.codec import adapt, expert, loop, memory, residual, strips, tuned
from igc.codec.checks import (
    check_composition,
    pixel_checksum,
    region_checks,
    stream_checked,
    verified,
)
from igc.codec.context import (
    ADAPT_MIN_TILES,
    EXPERT,
    OVERLAP_LANE,
    OVERLAPPED,
    PREDICTED,
    TUNED,
    can_overlap,
    default_batch,
    default_mode,
)
from igc.codec.context import plan as context_plan
from igc.codec.context import tiling as context_tiling
from igc.codec.lanes import GPU_TILES, lane_for
from igc.codec.loop import Counter, Decoding, Encoding, Job, Progress
from igc.core import container
from igc.core.numerics import regroupable
from igc.core.options import whole_number
from igc.core.palette import combined_fingerprint
from igc.core.protocols import (
    BatchedEngine,
    SymbolDecoder,
    SymbolEncoder,
    conform,
)
from igc.core.tokenizer import SubpixelTokenizer
from igc.core.types import Geometry, Image, TokenizedImage
from igc.errors import FormatError, ImageError, UsageError

DEFAULT_BATCH = 256
__all__ = ["ADAPT_MIN_TILES", "DEFAULT_BATCH", "EncodeResult", "NeuralCodec", "Progress"]


@dataclass
class EncodeResult:
    data: bytes
    model_bits: float  # -sum log2 p of everything coded, with the probabilities coded with
    header_bytes: int
    subpixels: int
    token_bits: float = 0.0  # of which the tokens, under the model
    residual_bits: float = 0.0  # of which the exact residuals after a lossy tokenizer's tokens
    approximation: Image | None = None  # a lossy tokenizer's decode of the tokens


def _count(name: str, value) -> int | None:
    """A codec option that counts something (batch, lane, strip rows) as the library takes it:
    None (the default) or a whole number >= 0; anything else is refused in one line before any
    coding (a negative count would reach the header's varints)."""
    if value is None:
        return None
    if not whole_number(value):
        raise UsageError(f"{name} must be a whole number, not {value!r}")
    if value < 0:
        raise UsageError(f"{name} must be 0 or more, got {value}")
    return int(value)


class NeuralCodec:
    """Codes images with a model's next-token distributions.

    `tokenizer` defaults to subpixels tiled to the model's context in `order`; `residual` codes
    exact values after a lossy tokenizer's tokens; `plugin` is the registered name of the model,
    recorded in headers so that decoding can rebuild it (default: the model's name);
    `distributions` the pip packages that registered the tokenizer, coder and model plugins (by
    kind; built-ins absent), recorded so that a machine without them can say what to install.
    `context` the context mode of new files (igc.core.container.CONTEXT_MODES); None: what
    igc.codec.context.default_mode picks for each image. `strip_rows`: rows per strip
    (igc.codec.strips; 0: none), None: the default cut of photo-sized images.
    """

    def __init__(self, model, coder, order: str = "interleaved", batch: int | None = None,
                 lane: int | None = None, *, tokenizer=None, residual: bool = False,
                 plugin: str | None = None, distributions: dict[str, str] | None = None,
                 context: int | None = None, strip_rows: int | None = None):
        reason = container.unrecordable_model_id(model.name)
        if reason:  # refused before any coding: a file that records it could not be read
            raise UsageError(f"{reason}; rename the model (its folder)")
        self.model = model
        self.coder = coder
        self.tokenizer = tokenizer or SubpixelTokenizer(order=order, model=model)
        self.order = self.tokenizer.order
        # None: the context mode's (igc.codec.context.default_batch); 0 as None
        self.batch = _count("batch", batch) or None
        # tiles per lane; None: igc.codec.lanes.lane_size of the first batch; 0 as None
        self.lane = _count("lane", lane) or None
        self.residual = bool(residual) and not self.tokenizer.lossless
        self.plugin = plugin or model.name
        self.distributions = dict(distributions or {})
        if context is not None and not (whole_number(context)
                                        and context in container.CONTEXT_MODES):
            raise UsageError(f"unknown context mode {context!r}; this igc codes "
                             f"{', '.join(map(str, container.CONTEXT_MODES))}")
        if context in adapt.ADAPTED and adapt.head_of(model, model.numerics) is None:
            raise UsageError(f"context mode {context} adapts a numerics-2 ImageGPT model's head; "
                             f"model {model.name!r} under numerics {model.numerics} has none")
        symbols = adapt.head_of(model, model.numerics)[1] if context in PREDICTED else None
        if symbols is not None and symbols != expert.VOCAB:
            raise UsageError(f"context mode {context} predicts 8-bit subpixels; model "
                             f"{model.name!r} has {symbols} symbols: use --context 2")
        if context in OVERLAPPED and not can_overlap(self.tokenizer):
            raise UsageError(f"context mode {context} overlaps subpixel tiles of 2 pixels or more; "
                             f"the {self.tokenizer.name} tokenizer's {self.tokenizer.tile}px "
                             "tiles cannot")
        if context == TUNED and (reason := tuned.tuning.tunable(model)):
            raise UsageError(f"context mode {TUNED} tunes the model to the image: {reason}; "
                             "use --context 3")
        self.context = context
        self.strip_rows = strips.check_strips(self, _count("strip rows", strip_rows))
        self.fingerprint = combined_fingerprint(model.fingerprint,
                                                getattr(self.tokenizer, "fingerprint", None))

    @property
    def lossless(self) -> bool:
        return self.tokenizer.lossless or self.residual

    @property
    def mode(self) -> str:
        """What the file holds: the tokenizer's name, "+residual" when exact values follow."""
        return self.tokenizer.name + ("+residual" if self.residual else "")

    # -- planning ---------------------------------------------------------------------------
    def batch_for(self, n_tiles: int, shape: tuple[int, int] | None = None) -> int:
        """Tiles per batch for encoding an image of `n_tiles` tiles (the header records it):
        the codec's batch; by default the context mode's (DEFAULT_BATCH in mode 0), or in
        mode 0 with a GPU engine every tile of the image (up to GPU_TILES), which is what lets
        the GPU step them all at once. Numerics 2 computes each tile's frequencies in mode 0
        independently of its batch, so any decoder reads either. Given the image's (height,
        width), the batch is cut to what a decoder holds within the memory budget
        (igc.codec.memory.fitting_batch)."""
        context = self.context_for(n_tiles, shape)
        adapted = context != 0
        batch = self.batch or default_batch(context, DEFAULT_BATCH)
        if adapted:
            batch = min(batch, adapt.MAX_ROWS)
        if (self.batch is None and not adapted and isinstance(self.model, BatchedEngine)
                and self.model.batched_engine(self.model.numerics)):
            batch = max(batch, min(n_tiles, GPU_TILES))
        if shape is not None:
            batch = memory.fitting_batch(self.model, self.tiling(context), *shape,
                                         self.model.numerics, batch, context)
        return batch

    def lane_for(self, n_tiles: int, shape: tuple[int, int] | None = None) -> int:
        """Tiles per lane for an image of `n_tiles` tiles (the header records it)."""
        overlap = self.context_for(n_tiles, shape) in OVERLAPPED and self.lane is None
        return lane_for(n_tiles, self.batch_for(n_tiles, shape),
                        OVERLAP_LANE if overlap else self.lane)

    def context_for(self, n_tiles: int, shape: tuple[int, int] | None = None) -> int:
        """The context mode of a new file of `n_tiles` tiles, (height, width) `shape` (the
        header records it). Without the shape, modes 2 and 3 are not chosen by default."""
        if self.context is not None:
            return self.context
        if shape is not None:
            return default_mode(self.model, self.tokenizer, *shape)
        adaptable = adapt.head_of(self.model, self.model.numerics) is not None
        return adapt.MODE if adaptable and n_tiles >= ADAPT_MIN_TILES else 0

    def strip_rows_for(self, height: int, width: int) -> int:
        """Rows per strip of a new file of a height x width image; 0: one strip (version 5)."""
        if self.strip_rows is None:
            if not self.tokenizer.lossless or self.residual:
                return 0
            rows = strips.default_strip_rows(height, width, self.context_for(
                self.tiles(height, width), (height, width)), self.tokenizer.tile)
        else:
            rows = self.strip_rows
        return rows if 0 < rows < height else 0

    @property
    def batched_engine(self) -> bool:
        """Whether the model steps a whole batch as one state (a GPU engine)."""
        return isinstance(self.model, BatchedEngine) and self.model.batched_engine(
            self.model.numerics)

    def tiling(self, context: int):
        """What lays out the tokens of a file in `context` mode (the tokenizer's tiles, or modes
        2 and 3's overlapping windows)."""
        return context_tiling(self.tokenizer, context)

    def tiles(self, height: int, width: int) -> int:
        """Tiles of a height x width image as the tokenizer cuts it (what modes are chosen
        by; mode 2's windows are more)."""
        return math.prod(self.tokenizer.grid(height, width))

    @property
    def context_choice(self) -> str | None:
        """How new files pick their context mode, in words (bench rows record it); None for a
        model that has only mode 0 and was not asked for it."""
        strips = (f"; strips of {self.strip_rows} rows" if self.strip_rows else
                  "" if self.strip_rows == 0 else
                  "; in strips (as many as keep 8+ windows per anti-diagonal)")
        if self.context is not None:
            shown = self.strip_rows or self.context in OVERLAPPED
            return f"mode {self.context}{strips if shown else ''}"
        if adapt.head_of(self.model, self.model.numerics) is None:
            return None
        if can_overlap(self.tokenizer):
            return (f"mode 3 on photo-sized images{strips}, mode 1 on images of "
                    f"{ADAPT_MIN_TILES}+ tiles, else 0")
        return f"mode 1 on images of {ADAPT_MIN_TILES}+ tiles, else 0"

    def geometry(self, tokens: int) -> Geometry:
        """Where the tokens of a tile of `tokens` positions lie (given to the model's start)."""
        return Geometry(self.tokenizer.tile, self.order, tokens, self.tokenizer.name)

    @staticmethod
    def _together(numerics: list[int], batches: list[int], jobs: list[Job],
                  contexts: list[int]) -> bool:
        """Whether several files' tiles may step as one group: one numerics for all, one that
        lets tiles be grouped freely, every file one batch (as a GPU engine encodes), and no
        file whose tiles depend on each other (context mode 0)."""
        return (len(jobs) > 1 and len(set(numerics)) == 1 and regroupable(numerics[0])
                and not any(contexts)
                and all(b >= len(job.tokens) for b, job in zip(batches, jobs, strict=True)))

    # -- encode -----------------------------------------------------------------------------
    def _encoder(self):
        return conform(self.coder.encoder(), SymbolEncoder, f"coder {self.coder.name!r}'s encoder")

    def encode_tokens(self, tok: TokenizedImage, encoder, progress: Progress | None = None,
                      threads: int | None = None) -> float:
        """Range-code the coded positions of every tile; returns the model bits spent.
        `progress(done, total)` is told the tokens coded after every step; `threads`: the most
        its lanes take."""
        return self._step_tokens(tok, Encoding(encoder, self.coder), progress, threads)

    def _step_tokens(self, tok: TokenizedImage, action, progress: Progress | None = None,
                     threads: int | None = None) -> float:
        """Step the encoder's plan of `tok`, taking `action` at every coded position."""
        job = Job(tok.tokens, tok.coded, action, groups=tok.groups)
        shape = (tok.height, tok.width)
        n = self.tiles(*shape)
        context = self.context_for(n, shape)
        if (tok.groups is not None) != (context in OVERLAPPED):
            raise UsageError(f"tokens laid out for context mode "
                             f"{'2 or 3' if tok.groups else '0 or 1'}, "
                             f"but this codec codes the image in mode {context}: lay them out "
                             "with NeuralCodec.tiling(mode)")
        loop.run(self.model, self.model.numerics, self.tokenizer.start_token,
                 context_plan(job, self.batch_for(n, shape), self.lane_for(n, shape)),
                 Counter(progress, int(tok.coded.sum())), self.geometry(tok.tokens.shape[1]),
                 self._adaptation(self.model.numerics, context, shape, job.coded), threads)
        return action.bits

    def _tokens(self, image: Image) -> TokenizedImage:
        """The image's tokens as a new file lays them out (its context mode's tiling)."""
        shape = image.shape[:2]
        return self.tiling(self.context_for(self.tiles(*shape), shape)).encode(image)

    def _adaptation(self, numerics: int, context: int, shape: tuple[int, int],
                    coded: np.ndarray):
        """One image's adaptation in context mode `context` (None for mode 0) for an image of
        (height, width) `shape` laid out with `coded` positions: mode 3's predictor reads
        pixels by the windows' layout."""
        pixels = self.tiling(context).pixels(*shape, coded) if context == EXPERT else None
        return adapt.adaptation_for(self.model, numerics, context, pixels, shape)

    def encode(self, image: Image, progress: Progress | None = None) -> EncodeResult:
        """The `.igc` file of `image`; `progress(done, total)` follows the tokens coded."""
        container.check_pixels(*image.shape[:2], ImageError)  # a file igc could not read back
        self.check_memory(*image.shape[:2])  # before mode 4's tuning, which takes minutes
        if self._tuned(image):
            return tuned.encode(self, image, progress)
        if self.strip_rows_for(*image.shape[:2]):
            data, bits, header_bytes = strips.encode(self, image, progress)
            return EncodeResult(data, bits, header_bytes, image[..., :3].size, bits)
        tok = self._tokens(image)
        encoder = self._encoder()
        token_bits = self.encode_tokens(tok, encoder, progress)
        return self._encoded(image, tok, encoder, token_bits)

    def _tuned(self, image: Image) -> bool:
        """Whether a new file of `image` is context mode 4, which igc.codec.tuned codes."""
        return self.context_for(self.tiles(*image.shape[:2]), image.shape[:2]) == TUNED

    def encode_many(self, images: list[Image]) -> list[EncodeResult]:
        """Several images' files, each what `encode` gives it. Where the numerics lets tiles be
        grouped freely and every image is one batch (a GPU engine), the tiles of all images step
        as one group, each image coded into its own stream; otherwise one by one."""
        for image in images:
            container.check_pixels(*image.shape[:2], ImageError)
            self.check_memory(*image.shape[:2])
        if any(self.strip_rows_for(*image.shape[:2]) or self._tuned(image) for image in images):
            return [self.encode(image) for image in images]  # strips run side by side instead
        toks = [self._tokens(image) for image in images]
        encoders = [self._encoder() for _ in images]
        jobs = [Job(tok.tokens, tok.coded, Encoding(enc, self.coder), groups=tok.groups)
                for tok, enc in zip(toks, encoders, strict=True)]
        numerics, start = self.model.numerics, self.tokenizer.start_token
        tiles = [self.tiles(t.height, t.width) for t in toks]
        batches = [self.batch_for(n, (t.height, t.width)) for n, t in zip(tiles, toks, strict=True)]
        geometry = self.geometry(toks[0].tokens.shape[1]) if toks else None
        contexts = [self.context_for(n, (t.height, t.width))
                    for n, t in zip(tiles, toks, strict=True)]
        if (self._together([numerics] * len(jobs), batches, jobs, contexts)
                and self._fit_together(jobs)):
            loop.run(self.model, numerics, start, loop.together(jobs), geometry=geometry)
        else:
            for job, tok, n, batch, context in zip(jobs, toks, tiles, batches, contexts,
                                                   strict=True):
                lane = self.lane_for(n, (tok.height, tok.width))
                loop.run(self.model, numerics, start, context_plan(job, batch, lane),
                         geometry=geometry,
                         adaptation=self._adaptation(numerics, context,
                                                     (tok.height, tok.width), job.coded))
        return [self._encoded(image, tok, enc, job.action.bits)
                for image, tok, enc, job in zip(images, toks, encoders, jobs, strict=True)]

    def _encoded(self, image: Image, tok: TokenizedImage, encoder, token_bits: float
                 ) -> EncodeResult:
        """The file, once the tokens are coded: the residuals after a lossy tokenizer's tokens,
        then the header."""
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
        shape = (tok.height, tok.width)
        n = self.tiles(*shape)
        return container.Header(
            height=tok.height, width=tok.width, tile=tok.tile,
            model_id=self.model.name, fingerprint=self.fingerprint,
            checksum=pixel_checksum(image), region_checks=region_checks(tok.tokens),
            payload_length=payload_length,
            batch=self.batch_for(n, shape), lane=self.lane_for(n, shape),
            tokenizer=self.tokenizer.name, order=self.order, residual=self.residual,
            coder=self.coder.name, precision=self.coder.precision,
            numerics=self.model.numerics, model_plugin=self.plugin,
            distributions=self.distributions, context=self.context_for(n, shape),
        )

    # -- estimate ---------------------------------------------------------------------------
    def estimate_bits(self, image: Image) -> float:
        """Model bits from one parallel pass: fast, but not what the coder uses bit for bit (the
        residuals' bits, after a lossy tokenizer, are exact). In context mode 1 only the stepped
        loop knows the probabilities (modes 1 to 3): the bits are then exactly a file's model
        bits, at the cost of an encode without the coder."""
        if self._tuned(image):
            self.check_memory(*image.shape[:2])
            return tuned.estimate_bits(self, image)
        if self.strip_rows_for(*image.shape[:2]):
            return strips.estimate_bits(self, image)
        tok = self._tokens(image)
        context = self.context_for(self.tiles(tok.height, tok.width), (tok.height, tok.width))
        bits = self.stepped_bits(tok) if context else self.one_shot_bits(tok)
        if self.residual:
            approximation = self.tokenizer.decode(tok.tokens, tok.height, tok.width)
            bits += residual.ideal_bits(image, approximation, self.coder)
        return bits

    def stepped_bits(self, tok: TokenizedImage, threads: int | None = None) -> float:
        """The model bits the encoder would spend on `tok`, through the encoder's own loop."""
        return self._step_tokens(tok, loop.Measuring(self.coder), threads=threads)

    def one_shot_bits(self, tok: TokenizedImage) -> float:
        inputs = np.concatenate(
            [np.full((len(tok.tokens), 1), self.tokenizer.start_token), tok.tokens[:, :-1]], axis=1)
        logp = self.model.log_probs(inputs)
        picked = np.take_along_axis(logp, tok.tokens[..., None], axis=-1)[..., 0]
        return float(-(picked[tok.coded]).astype(np.float64).sum() / math.log(2))

    # -- decode -----------------------------------------------------------------------------
    def check_model(self, header: container.Header) -> None:
        """Refuse a file this composition did not write, before decoding anything."""
        check_composition(self, header)

    def check_memory(self, height: int, width: int) -> None:
        """Refuse to encode an image whose decode would need more than the default memory
        budget even one tile at a time (igc writes no file a default decoder refuses)."""
        n_tiles = self.tiles(height, width)
        context = self.context_for(n_tiles, (height, width))
        probe = container.Header(height, width, self.tokenizer.tile, "", "0" * 16, 0, b"", 0,
                                 self.batch_for(n_tiles, (height, width)),
                                 numerics=self.model.numerics, context=context)
        memory.check_decode(self.model, self.tiling(context), probe, ImageError,
                            limit=memory.DEFAULT_BUDGET, engine=memory.ENCODER_ENGINE)

    def check_numerics(self, header: container.Header) -> None:
        """Refuse a file whose probabilities this model cannot recompute bit for bit."""
        supported = self.model.numerics_supported
        if header.numerics not in supported:
            raise FormatError(
                f"file was coded with numerics {header.numerics} (docs/format.md), but model "
                f"{self.model.name!r} computes only {', '.join(map(str, supported))}: "
                "decode it with the igc version or backend that wrote it")

    def _decoder(self, payload: bytes):
        return conform(self.coder.decoder(payload), SymbolDecoder,
                       f"coder {self.coder.name!r}'s decoder")

    def _job(self, header: container.Header, decoder) -> Job:
        """A file's tiles as the decoder knows them before decoding: its layout."""
        layout = self.tiling(header.context).layout(header.height, header.width)
        return Job(layout.tokens, layout.coded, Decoding(decoder), pad_source=layout.pad_source,
                   context_source=layout.context_source, groups=layout.groups)

    def decode_tokens(self, header: container.Header, decoder,
                      progress: Progress | None = None, threads: int | None = None
                      ) -> np.ndarray:
        """Step the model over the header's tile layout, decoding coded positions and copying
        padding ones; returns the (tiles, L) tokens. `progress`, `threads` as for
        `encode_tokens`."""
        job = self._job(header, decoder)
        loop.run(self.model, header.numerics, self.tokenizer.start_token,
                 context_plan(job, header.batch, header.lane),
                 Counter(progress, int(job.coded.sum())), self.geometry(job.tokens.shape[1]),
                 self._adaptation(header.numerics, header.context,
                                  (header.height, header.width), job.coded), threads)
        return job.tokens

    def decode_many(self, datas: list[bytes]) -> list[Image]:
        """Several files' pixels. Where their numerics lets tiles be grouped freely and every
        file is one batch (as a GPU engine encodes), the tiles of all files step as one group,
        each file decoded from its own stream: one model step serves every image, which is what
        fills a GPU. Otherwise the files are decoded one by one."""
        parsed = [container.unpack(d) for d in datas]
        for header, _ in parsed:
            self.check_model(header)
            if header.context != TUNED:  # its derived model is checked when it is decoded
                memory.check_decode(self.model, self.tiling(header.context), header, FormatError)
        if any(header.strip_rows or header.context == TUNED for header, _ in parsed):
            return [self.decode(data) for data in datas]  # strips run side by side instead
        decoders = [self._decoder(payload) for _, payload in parsed]
        jobs = [self._job(h, dec) for (h, _), dec in zip(parsed, decoders, strict=True)]
        start = self.tokenizer.start_token
        with stream_checked():
            if (self._together([h.numerics for h, _ in parsed], [h.batch for h, _ in parsed],
                               jobs, [h.context for h, _ in parsed])
                    and self._fit_together(jobs)):
                loop.run(self.model, parsed[0][0].numerics, start, loop.together(jobs),
                         geometry=self.geometry(jobs[0].tokens.shape[1]))
            else:
                for (header, _), job in zip(parsed, jobs, strict=True):
                    loop.run(self.model, header.numerics, start,
                             context_plan(job, header.batch, header.lane),
                             geometry=self.geometry(job.tokens.shape[1]),
                             adaptation=self._adaptation(header.numerics, header.context,
                                                         (header.height, header.width),
                                                         job.coded))
            return [self._decoded(header, job.tokens, decoder)
                    for (header, _), job, decoder in zip(parsed, jobs, decoders, strict=True)]

    def _decoded(self, header: container.Header, tokens: np.ndarray, decoder) -> Image:
        """The pixels, once the tokens are decoded: the residuals after a lossy tokenizer's
        tokens, then the checksum."""
        image = self.tiling(header.context).decode(tokens, header.height, header.width)
        if self.residual:
            image = residual.decode(image, decoder)
        return verified(image, tokens, header)

    @staticmethod
    def _steps(job: Job) -> int:
        """Positions to step through: up to the last coded position of any tile."""
        return int(np.nonzero(job.coded.any(axis=0))[0][-1]) + 1

    def _fit_together(self, jobs: list[Job]) -> bool:
        """Whether stepping the tiles of all files as one batch stays within the budget."""
        tiles = sum(len(job.tokens) for job in jobs)
        steps = max(self._steps(job) for job in jobs)
        positions = sum(job.tokens.size for job in jobs)
        need = positions * memory.LAYOUT_BYTES + memory.model_state(self.model, tiles, steps, 2)
        return need <= memory.budget()

    def decode(self, data: bytes, progress: Progress | None = None) -> Image:
        """The pixels of an `.igc` file, checked against its checksum; `progress(done, total)`
        follows the tokens decoded."""
        header, payload = container.unpack(data)
        if header.context == TUNED:
            return tuned.decode(self, header, payload, progress)
        return self.decode_parsed(header, payload, progress)

    def decode_parsed(self, header: container.Header, payload: bytes,
                      progress: Progress | None = None) -> Image:
        """`decode` of a file already split into its header and payload."""
        self.check_model(header)
        memory.check_decode(self.model, self.tiling(header.context), header, FormatError)
        if header.strip_rows:
            return strips.decode(self, header, payload, progress)
        decoder = self._decoder(payload)
        with stream_checked():
            return self._decoded(header, self.decode_tokens(header, decoder, progress), decoder)
