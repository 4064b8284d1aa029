"""The codec loop (igc/codec/loop.py): one driver for encoding and decoding, and the integer
frequency tables a numerics-2 model hands the coder."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")


class FloatsOnly:
    """The range coder with its integer entry points hidden: what a coder plugin written for
    float distributions sees."""

    def __init__(self) -> None:
        from igc.coders.range import RangeCoder

        self.inner = RangeCoder()
        self.name, self.precision = self.inner.name, self.inner.precision

    def ideal_bits(self, symbols, probs):
        return self.inner.ideal_bits(symbols, probs)

    def encoder(self):
        enc = self.inner.encoder()
        return type("Enc", (), {"encode": lambda _, s, p: enc.encode(s, p),
                                "finish": lambda _: enc.finish()})()

    def decoder(self, data):
        dec = self.inner.decoder(data)
        return type("Dec", (), {"decode": lambda _, p: dec.decode(p)})()


@pytest.fixture
def codec(tiny_model):
    from igc.api import get_compressor

    return get_compressor("imagegpt", model=tiny_model).codec


def test_integer_tables_and_their_floats_write_the_same_file(codec, rng):
    """The range coder takes numerics 2's integer tables as they are; a coder that takes only
    floats gets the same tables as exact floats. Both write the same bytes, and each decodes the
    other's file: the integer path changed no file."""
    from igc.codec.neural import NeuralCodec

    assert codec.model.numerics == 2 and codec.model.frequency_bits(2) == 24
    floats = NeuralCodec(codec.model, FloatsOnly(), batch=codec.batch, plugin=codec.plugin)
    image = rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)
    ints, flts = codec.encode(image), floats.encode(image)
    assert ints.data == flts.data and ints.model_bits == flts.model_bits
    np.testing.assert_array_equal(floats.decode(ints.data), image)
    np.testing.assert_array_equal(codec.decode(flts.data), image)


def test_the_integer_tables_are_the_models_frequencies(codec):
    """What the loop hands the coder is the engine's table itself: integers >= 1 summing to
    2**24, whose exact floats are what `step` returns."""
    from igc.codec.loop import Stepper

    stepper = Stepper(codec.model, 3, 3, 4, None, 2)
    dist = stepper.step(np.full(3, 256))
    assert dist.bits == 24 and dist.probs is None and dist.freqs.dtype == np.int64
    assert (dist.freqs.min() >= 1) and set(dist.freqs.sum(axis=1)) == {1 << 24}
    state = codec.model.start(3, 4, 2)
    np.testing.assert_array_equal(codec.model.step(state, np.full(3, 256)), dist.floats())


@pytest.mark.parametrize("numerics", [2, 1])
def test_encode_many_writes_each_images_own_file(tiny_model, numerics, rng):
    """Images that step together as one group (numerics 2, each image one batch), or one by
    one (numerics 1, whose floats depend on the grouping), get exactly the files `encode` gives
    them, and decode_many reads them back."""
    from igc.plugins.compose import compose

    codec = compose(tiny_model, numerics=numerics)
    assert codec.model.numerics == numerics
    images = [rng.integers(0, 256, shape, dtype=np.uint8)
              for shape in [(9, 10, 3), (4, 4, 3), (13, 7, 3)]]
    many = codec.encode_many(images)
    for result, image in zip(many, images, strict=True):
        one = codec.encode(image)
        assert result.data == one.data and result.model_bits == one.model_bits
    for got, image in zip(codec.decode_many([r.data for r in many]), images, strict=True):
        np.testing.assert_array_equal(got, image)


def test_one_images_plan_is_the_batches_its_header_records(codec, rng):
    """The encoder steps an image in the batches and lanes its header names, which is what the
    decoder plans from the header."""
    from igc.codec import loop
    from igc.codec.neural import NeuralCodec
    from igc.core import container

    small = NeuralCodec(codec.model, codec.coder, batch=3, plugin=codec.plugin)
    image = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)  # 4x3 tiles of 4 px
    header, _ = container.unpack(small.encode(image).data)
    assert (header.batch, header.lane) == (3, small.lane_for(12))
    tok = small.tokenizer.encode(image)
    plan = loop.batches(loop.Job(tok.tokens, tok.coded, None), header.batch, header.lane)
    assert [(g.parts[0].rows.start, g.parts[0].rows.stop) for g in plan] == [
        (0, 3), (3, 6), (6, 9), (9, 12)]
    assert {g.steps for g in plan} == {int(np.nonzero(tok.coded.any(0))[0][-1]) + 1}
    np.testing.assert_array_equal(small.decode(small.encode(image).data), image)


def test_the_extras_igc_calls_are_declared_and_igcs_pieces_have_them(tiny_model):
    """ModelCompressor and ImageGPTModel are what the optional protocols declare; a model
    without integer tables (the uniform model) is none of the model capabilities."""
    from igc.api import get_compressor
    from igc.core.protocols import (
        BatchedEngine,
        Described,
        IntegerFrequencies,
        ModelBased,
        Quantized,
        Specified,
    )
    from igc.models.uniform import UniformModel

    comp = get_compressor("imagegpt", model=tiny_model)
    assert isinstance(comp, ModelBased) and isinstance(comp, Described) and comp.model_based
    capabilities = (IntegerFrequencies, BatchedEngine, Quantized, Specified)
    assert all(isinstance(comp.model, p) for p in capabilities)
    assert not any(isinstance(UniformModel(), p) for p in capabilities)


@pytest.mark.parametrize("context", [0, 1, 2])
def test_the_encoders_blocks_write_the_files_of_single_steps(tiny_model, rng, monkeypatch,
                                                             context):
    """The encoder's lanes compute loop.BLOCK known positions per model call; the file and the
    model bits are those of one position per call, in every context mode, and decode."""
    from igc.codec import loop
    from igc.plugins.compose import compose

    codec = compose(tiny_model, context=context)
    image = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    calls = []
    block = codec.model.block_logits if context else codec.model.block_frequencies
    monkeypatch.setattr(codec.model, "block_logits" if context else "block_frequencies",
                        lambda state, tokens: calls.append(tokens.shape) or block(state, tokens))
    blocks = codec.encode(image)
    assert calls and max(shape[1] for shape in calls) == loop.BLOCK
    monkeypatch.setattr(loop, "BLOCK", 1)
    single = codec.encode(image)
    assert blocks.data == single.data and blocks.model_bits == single.model_bits
    if context:  # adapted modes estimate through the encoder's loop (mode 0: a float pass)
        assert codec.estimate_bits(image) == pytest.approx(blocks.model_bits, rel=1e-12)
    np.testing.assert_array_equal(codec.decode(blocks.data), image)


@pytest.mark.parametrize(("context", "batch", "threads"),
                         [(0, 5, 1), (0, 64, 2), (1, 4, 1), (1, 32, 1), (1, 32, 2), (2, 8, 1),
                          (3, 8, 2), (3, 3, 1)])
def test_an_encoder_taking_blocks_of_steps_writes_the_files_of_its_steps(tiny_model, monkeypatch,
                                                                       request, context, batch,
                                                                       threads):
    """An encoder whose inputs are all known takes its steps a block at a time
    (loop._known_blocks): the action codes a block's symbols at once, and an adaptation runs
    the block's steps in one kernel call (OnlineAdaptation.encode_block), on one thread even
    where the model's lanes run on two. The file and its bits are those of the step-by-step
    path (loop.KNOWN_BLOCKS off: a coder call per step; `frequencies`, then `observe`, every
    step, on two threads with the rows split across them), to the last bit of the model bits,
    in every context mode, mode 3's predictor included, and the file decodes."""
    request.getfixturevalue("two_threads" if threads == 2 else "one_thread")
    from helpers import smooth_image

    from igc.codec import loop
    from igc.plugins.compose import compose

    codec = compose(tiny_model, context=context, batch=batch, strip_rows=0)
    image = smooth_image(22, 27, seed=context)
    real, calls = loop._known_blocks, []
    monkeypatch.setattr(loop, "_known_blocks", lambda *a: calls.append(1) or real(*a))
    blocks = codec.encode(image)
    assert calls
    monkeypatch.setattr(loop, "KNOWN_BLOCKS", False)
    calls.clear()
    steps = codec.encode(image)
    # the model bits too: the action sums them step by step, as the step path does
    assert not calls and blocks.data == steps.data and blocks.model_bits == steps.model_bits
    np.testing.assert_array_equal(codec.decode(blocks.data), image)


def test_a_coder_that_does_not_say_any_calls_gets_a_call_per_step(tiny_model, monkeypatch):
    """An encoder that takes blocks of steps hands the block's symbols to the coder in one call
    only where the coder's encoder says its stream does not depend on the calls (`any_calls`,
    igc's range coder); any other gets exactly the calls of the step-by-step path, the calls
    its decoder will make. The file is the same every way."""
    from helpers import smooth_image

    from igc.codec import loop
    from igc.coders.range import RangeEncoder
    from igc.plugins.compose import compose

    codec = compose(tiny_model, context=1, batch=8, strip_rows=0)
    image = smooth_image(13, 21)
    real = RangeEncoder.encode
    runs = {}
    for name, any_calls, blocks in (("blocks", True, True), ("calls", False, True),
                                    ("steps", True, False)):
        sizes = []
        monkeypatch.setattr(RangeEncoder, "any_calls", any_calls)
        monkeypatch.setattr(loop, "KNOWN_BLOCKS", blocks)
        monkeypatch.setattr(RangeEncoder, "encode",
                            lambda self, s, p, sizes=sizes: sizes.append(len(s)) or real(self, s, p))
        runs[name] = (sizes, codec.encode(image).data)
    assert runs["calls"][0] == runs["steps"][0] and max(runs["steps"][0]) <= 8
    assert len(runs["blocks"][0]) < len(runs["steps"][0])
    assert runs["blocks"][1] == runs["calls"][1] == runs["steps"][1]


def test_a_stepper_with_known_inputs_refuses_other_tokens(codec):
    """The blocks are computed from the known inputs: a step fed anything else is a bug in
    the caller, and says so rather than coding with the wrong distributions."""
    from igc.codec.loop import Stepper

    known = np.full((3, 4), 256)
    stepper = Stepper(codec.model, 3, 3, 4, None, 2, known=known)
    stepper.step(known[:, 0])
    with pytest.raises(ValueError, match="step 1: tokens other than the known inputs"):
        stepper.step(np.array([256, 256, 5]))


def test_blocks_are_used_only_where_an_engine_computes_them(codec):
    """The cpu engine computes a block in one call; the reference engine would take it as that
    many steps, so its encoder steps (no block buffered for nothing)."""
    from igc.codec.loop import Stepper
    from igc.engines.engines import using_engine

    known = np.full((2, 5), 256)
    for engine, blocks in (("cpu", True), ("reference", False)):
        with using_engine(engine):
            assert codec.model.block_steps(2) is blocks
            assert codec.model.block_steps(1) is False
            stepper = Stepper(codec.model, 2, 2, 5, None, 2, known=known)
            assert (stepper.known is not None) is blocks


def test_a_block_length_below_one_is_refused_in_one_line():
    """A model naming its own block length (`block_positions`) must name at least one step."""
    from igc.codec.loop import Stepper
    from igc.errors import ModelError

    class Blocky:
        block_positions = 0

        def frequency_bits(self, numerics):
            return 24

        def block_steps(self, numerics):
            return True

        def block_frequencies(self, state, tokens):
            raise AssertionError("never called")

        def block_logits(self, state, tokens):
            raise AssertionError("never called")

        def step_frequencies(self, state, tokens):
            raise AssertionError("never called")

    with pytest.raises(ModelError, match="block_positions must be at least 1, not 0"):
        Stepper(Blocky(), rows=1, lane=1, steps=3, pool=None, numerics=2,
                known=np.zeros((1, 3), np.int64))
