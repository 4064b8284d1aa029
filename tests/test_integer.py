"""Numerics 2 (igc/engines/integer.py): its rules, its tables, its closeness to the float model,
and files that decode with another engine in another process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import smooth_image

from igc.engines import integer as I

pytest.importorskip("torch")

# Pinned: every machine must build the same tables and the same integer model from the same
# weights. A change here is a new numerics (a new number), never an edit.
TABLES = "d93d003601b30cd1"
SHIPPED = {"igc-rgb16-v2": "a31f0228c640dfb3", "igc-rgb16": "d4a0a79d018428a1",
           "igc-rgb16-w256": "8f115d0545eb66ad", "igc-rgb16-w256-v2": "412e303a49a28d39",
           "igc-rgb16-v3": "aa23f2cba9192a73", "igc-rgb16-pixel": "a24b961a54b1a3f6",
           "igc-rgb16-pixel-v2": "e57e22f638e49d0c"}


def test_tables_are_the_pinned_ones():
    assert I.tables_digest() == TABLES
    e = I.exp_table()
    assert e[0] == 1 << 30 and np.all(np.diff(e) < 0) and e[-1] == round(2 ** 30 * 2 ** (-4095 / 4096))
    s = I.sigmoid_table()
    assert s[I.GELU_HALF] == 1 << 14  # sigmoid(0) = 1/2
    assert np.all(np.diff(s) >= 0) and s[0] == 0 and s[-1] == 1 << 15


def test_shipped_tables_are_the_decimal_definitions():
    """igc/engines/integer_tables.npz spares every start a second of decimals: it must hold
    exactly what the definitions compute (`python -c "from igc.engines import integer;
    integer.write_tables()"` rewrites it)."""
    with np.load(I.TABLES) as shipped:
        np.testing.assert_array_equal(shipped["exp"], I.compute_exp_table())
        np.testing.assert_array_equal(shipped["sigmoid"], I.compute_sigmoid_table())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_models_quantize_to_the_pinned_integers(name):
    from igc.models.imagegpt import ImageGPTModel

    assert ImageGPTModel(name).integer_model.digest == SHIPPED[name]


def test_shift_round_rounds_half_up_and_saturates():
    v = np.array([5, 6, 7, -5, -6, -7, 0], np.int64)
    assert I.shift_round(v, 2, 1 << 40).tolist() == [1, 2, 2, -1, -1, -2, 0]  # ±1.25, 1.5, 1.75
    assert I.shift_round(v, -3, 1 << 40).tolist() == (v * 8).tolist()
    assert I.shift_round(np.array([1 << 20]), -30, 1 << 40).tolist() == [1 << 40]
    assert I.round_div(np.array([5, -5, 7]), np.array([2, 2, 2])).tolist() == [3, -2, 4]


def test_bit_length_and_isqrt_are_exact():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.integers(0, 1 << 62, 500), np.arange(0, 70),
                           (np.int64(1) << np.arange(62)) - 1, np.int64(1) << np.arange(62)])
    assert I.bit_length(vals).tolist() == [int(v).bit_length() for v in vals]
    assert I.isqrt(vals).tolist() == [math.isqrt(int(v)) for v in vals]


def test_narrow_keeps_15_bits_and_records_the_shift():
    v = np.array([[3 << 30, -(1 << 29), 5], [0, 0, 0], [7, -3, 1]], np.int64)
    q, s = I.narrow(v)
    assert np.abs(q).max() <= I.ACT_MAX
    assert s.tolist() == [17, 0, -12]
    assert q[0, 0] == 3 << 13 and q[2].tolist() == [7 << 12, -3 << 12, 1 << 12]


def test_frequencies_sum_to_the_coder_total_with_every_symbol_possible():
    rng = np.random.default_rng(1)
    logits = rng.integers(-(40 << 16), 40 << 16, (50, 256))
    logits[0] = 0  # all equal
    logits[1, 7] = 1 << 40  # one certain symbol
    f = I.frequencies(logits)
    assert (f.sum(-1) == 1 << 24).all() and f.min() >= 1
    assert len(set(f[0].tolist())) == 1
    assert f[1, 7] == (1 << 24) - 255
    # against the exact softmax (in log2 units): each nonzero frequency within a part in 2**12
    exact = 2.0 ** (logits / 65536.0 - logits.max(-1, keepdims=True) / 65536.0)
    exact /= exact.sum(-1, keepdims=True)
    big = exact > 1e-3
    assert np.abs(f[big] / 2.0 ** 24 / exact[big] - 1).max() < 2 ** -10


def _float_and_integer_bits(model, tiles: np.ndarray) -> tuple[float, float]:
    eng = I.ReferenceEngine(model.integer_model)
    inputs = np.concatenate([np.full((len(tiles), 1), 256), tiles[:, :-1]], axis=1)
    logp = model.log_probs(inputs)
    fbits = -np.take_along_axis(logp, tiles[..., None], -1).sum() / math.log(2)
    st, ibits = eng.start(len(tiles), tiles.shape[1]), 0.0
    prev = np.full(len(tiles), 256)
    for p in range(tiles.shape[1]):
        f = eng.step(st, prev)
        ibits -= np.log2(f[np.arange(len(tiles)), tiles[:, p]] / 2.0 ** 24).sum()
        prev = tiles[:, p]
    return float(fbits), float(ibits)


@pytest.mark.slow
def test_integer_code_length_is_within_half_a_percent_of_float():
    """The issue's bound, on a photo-like 32x32 image (4 tiles of the shipped model)."""
    from igc.core.tokenizer import SubpixelTokenizer
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel()
    tiles = SubpixelTokenizer(16).encode(smooth_image(32, 32)).tokens
    fbits, ibits = _float_and_integer_bits(model, tiles)
    assert abs(ibits / fbits - 1) < 0.005


def test_reference_engine_refuses_overlong_and_misbatched_steps(tiny_model):
    from igc.errors import ModelError
    from igc.models.imagegpt import ImageGPTModel

    eng = I.ReferenceEngine(ImageGPTModel(tiny_model).integer_model)
    st = eng.start(2, 2)
    with pytest.raises(ModelError, match="batch 2"):
        eng.step(st, np.zeros(3, np.int64))
    eng.step(st, np.zeros(2, np.int64))
    eng.step(st, np.zeros(2, np.int64))
    with pytest.raises(ModelError, match="longer than"):
        eng.step(st, np.zeros(2, np.int64))


def test_saturating_weights_still_give_valid_frequencies(tmp_path):
    """Weights far outside what training produces saturate instead of overflowing."""
    from helpers import make_tiny_model

    from igc.models.imagegpt import ImageGPTModel

    folder = make_tiny_model(tmp_path / "huge", seed=3, scale=300.0)
    eng = I.ReferenceEngine(ImageGPTModel(folder).integer_model)
    st = eng.start(3, 48)
    for t in range(48):
        f = eng.step(st, np.full(3, t % 256))
        assert (f.sum(-1) == 1 << 24).all() and f.min() >= 1


def test_unsupported_activation_keeps_the_float_numerics(tmp_path):
    import json

    from helpers import make_tiny_model

    from igc.models.imagegpt import ImageGPTModel

    folder = Path(make_tiny_model(tmp_path / "gelu", seed=4))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["activation_function"] = "gelu"
    (folder / "config.json").write_text(json.dumps(cfg))
    assert ImageGPTModel(str(folder)).numerics == 1


# -- a file from one engine decodes with another, in another process ---------------------------
DECODE = """
import sys, numpy as np, torch, igc
torch.set_num_threads(int(sys.argv[3]))
data = open(sys.argv[1], "rb").read()
pixels = igc.decompress(data, engine=sys.argv[2])
np.save(sys.argv[1] + ".npy", pixels)
"""


def _decode_elsewhere(path: Path, engine: str, threads: int) -> np.ndarray:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", DECODE, str(path), engine, str(threads)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return np.load(str(path) + ".npy")


@pytest.mark.slow  # two processes each, the reference engine's plain NumPy
@pytest.mark.parametrize(("encoder", "decoder"), [("cpu", "reference"), ("reference", "cpu")])
def test_a_file_from_one_engine_decodes_with_another_in_another_process(
        tmp_path, encoder, decoder):
    import torch

    import igc

    image = smooth_image(16, 16)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = igc.compress(image, engine=encoder)
    finally:
        torch.set_num_threads(before)
    assert igc.info(data)["numerics"] == 2
    path = tmp_path / "a.igc"
    path.write_bytes(data)
    np.testing.assert_array_equal(_decode_elsewhere(path, decoder, 2), image)


FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-numerics2.igc"


def test_committed_numerics_2_fixture_decodes_with_every_cpu_engine():
    """A numerics-2 file of the default model, written when numerics 2 was introduced: every
    later igc must decode it (astronaut()[100:116, 200:216])."""
    import igc

    data = FIXTURE.read_bytes()
    assert igc.info(data)["numerics"] == 2
    ref = igc.decompress(data, engine="reference")
    np.testing.assert_array_equal(igc.decompress(data, engine="cpu"), ref)
    assert igc.decompress(data).shape == (16, 16, 3)


def test_several_files_step_as_one_batch_and_decode_exactly(tiny_model, rng):
    """decode_many steps every tile of every file together (what a GPU engine is for); the
    pixels equal each file's own decode, and a corrupted file still fails its checksum."""
    from igc.api import get_compressor
    from igc.engines.engines import using_engine
    from igc.errors import ChecksumError, FormatError

    comp = get_compressor("imagegpt", model=tiny_model)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in
              [(9, 10, 3), (4, 4, 3), (13, 7, 3)]]
    with using_engine("reference"):
        datas = [comp.compress(im) for im in images]
        out = comp.codec.decode_many(datas)
        for got, im in zip(out, images, strict=True):
            np.testing.assert_array_equal(got, im)
        bad = bytearray(datas[2])
        bad[-3] ^= 0x40
        with pytest.raises((ChecksumError, FormatError)):
            comp.codec.decode_many([datas[0], bytes(bad)])


def test_bench_names_the_numerics_and_engine_of_each_model_row(tiny_model, rng):
    import igc
    from igc.reporters.notes import notes

    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    result = igc.bench([image], ["imagegpt", "png"], model=tiny_model)
    info = result.to_dict()["environment"]["models"]["imagegpt"]
    assert (info["numerics"], info["numerics_name"], info["engine"]) == (2, "integer", "cpu")
    assert any("numerics 2: integer, engine cpu" in text for text, _ in notes(result))
