"""Palette ImageGPT (OpenAI's checkpoint format) without downloads: a tiny random 513-token model
with n_positions 1024 and 512 random clusters, saved the way HuggingFace saves the real ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import make_palette_model, smooth_image

from igc import decompress, get_compressor
from igc.benchmark.run import report_fields
from igc.core import container
from igc.core.palette import PaletteTokenizer, load_clusters, psnr, quantize
from igc.errors import FormatError, ModelError, ModelMismatchError, UsageError


@pytest.fixture(scope="module")
def palette_model(tmp_path_factory) -> str:
    return make_palette_model(tmp_path_factory.mktemp("palette-imagegpt"))


@pytest.fixture(autouse=True)
def one_thread():
    """One model thread: the 1024-step tiles are latency-bound, and spare cores may be busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tokens_equal_huggingface_processor(palette_model):
    """Independent reference: HF's ImageGPTImageProcessor on a 32×32 image (resize = identity)."""
    from transformers import ImageGPTImageProcessor

    processor = ImageGPTImageProcessor.from_pretrained(palette_model)
    clusters = load_clusters(palette_model)
    tokenizer = PaletteTokenizer(clusters, tile=32)
    rng = np.random.default_rng(7)
    for image in (rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), smooth_image(32, 32)):
        reference = np.asarray(processor(image, return_tensors="np")["input_ids"]).reshape(-1)
        tok = tokenizer.encode(image)
        assert tok.tokens.shape == (1, 1024) and tok.coded.all()
        np.testing.assert_array_equal(tok.tokens[0], reference)


def test_quantize_is_nearest_centre():
    rng = np.random.default_rng(3)
    clusters = rng.uniform(-1, 1, (40, 3)).astype(np.float32)
    pixels = rng.integers(0, 256, (50, 3), dtype=np.uint8)
    x = pixels / 127.5 - 1
    brute = np.argmin(((x[:, None, :] - clusters[None].astype(np.float64)) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(quantize(pixels, clusters), brute)


def test_edge_padding_copies_earlier_positions():
    tok = PaletteTokenizer(np.zeros((4, 3), np.float32), tile=4)
    layout = tok.layout(5, 6)  # 2×2 tiles, the last one holds 1×2 real pixels
    assert layout.coded.sum() == 30
    src = layout.pad_source[3]
    pos = np.nonzero(~layout.coded[3])[0]
    assert (src[pos] < pos).all() and layout.coded[3, src[pos]].all()


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (33, 45)])
def test_lossless_round_trip_odd_sizes(palette_model, size, rng):
    comp = get_compressor("imagegpt", model=palette_model)  # the vocabulary picks palette, lossless
    assert comp.lossless and comp.codec.tokenizer.tile == 32
    image = smooth_image(*size) if size[0] > 1 else rng.integers(0, 256, (*size, 3), np.uint8)
    result = comp.compress_with_stats(image)
    header, _ = container.unpack(result.data)
    assert (header.tokenizer, header.residual, header.tile) == ("palette", True, 32)
    np.testing.assert_array_equal(decompress(result.data, palette_model), image)
    payload_bits = (len(result.data) - result.header_bytes) * 8
    assert result.model_bits == pytest.approx(result.token_bits + result.residual_bits)
    assert payload_bits <= result.model_bits * 1.001 + 64
    fields = report_fields(comp.codec, result, image)
    assert fields["residual_bits"] > 0 and fields["index_bits"] > 0 and "psnr" not in fields


def test_lossy_mode_psnr_and_flags(palette_model):
    comp = get_compressor("imagegpt", model=palette_model, mode="palette")
    assert not comp.lossless and comp.name == "imagegpt-palette"
    image = smooth_image(20, 36)
    result = comp.compress_with_stats(image)
    header = container.unpack(result.data)[0]
    assert (header.tokenizer, header.residual) == ("palette", False)
    decoded = decompress(result.data, palette_model)
    np.testing.assert_array_equal(decoded, result.approximation)
    fields = report_fields(comp.codec, result, image)
    assert fields["psnr"] == pytest.approx(psnr(image, decoded))
    assert 10 < fields["psnr"] < 60
    assert fields["residual_bits"] == 0 and fields["png_bits_quantized"] > 0


def test_bench_reports_lossy_fields(palette_model):
    from igc import bench

    result = bench([smooth_image(8, 9)], ["imagegpt"], model=palette_model, mode="palette")
    row = result.to_dict()["results"][0]
    assert row["lossless"] is False and row["roundtrip_ok"] is None
    assert row["compressor"] == "imagegpt-palette" and row["psnr"] > 0
    assert "png_bits_quantized" in row and "jxl_bits_quantized" in row


def test_other_clusters_are_refused(palette_model, tmp_path):
    image = smooth_image(6, 6)
    data = get_compressor("imagegpt", model=palette_model).compress(image)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(palette_model) / name, other / name)
    config = json.loads((Path(palette_model) / "preprocessor_config.json").read_text())
    config["clusters"][0][0] = -config["clusters"][0][0]
    (other / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelMismatchError, match="palette"):
        decompress(data, str(other))


def test_mode_errors(tiny_model, palette_model, tmp_path):
    with pytest.raises(UsageError, match="--mode palette needs a palette"):
        get_compressor("imagegpt", model=tiny_model, mode="palette")
    with pytest.raises(UsageError, match="palette tokenizer needs"):
        get_compressor("imagegpt", model=tiny_model, tokenizer="palette")
    with pytest.raises(UsageError, match="unknown mode"):
        get_compressor("imagegpt", model=palette_model, mode="jpeg")
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(palette_model) / name, bare / name)
    with pytest.raises(ModelError, match=r"preprocessor_config\.json"):
        get_compressor("imagegpt", model=str(bare))


def test_cli_paper_size_and_modes(palette_model, tiny_model, photo_dir, tmp_path):
    from typer.testing import CliRunner

    from igc.cli.app import app

    runner = CliRunner()
    out = runner.invoke(app, ["bench", "-c", "imagegpt,png", "--images", str(photo_dir),
                              "--count", "1", "--model", palette_model, "--paper-size",
                              "--mode", "palette", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert "resized to 32x32" in result["environment"]["preprocessing"]
    row = next(r for r in result["results"] if r["compressor"] == "imagegpt-palette")
    assert (row["height"], row["width"]) == (32, 32) and row["lossless"] is False
    assert row["psnr"] > 0
    image = next(photo_dir.iterdir())
    out = runner.invoke(app, ["compress", str(image), "-o", str(tmp_path / "a.igc"),
                              "--model", tiny_model, "--mode", "palette"])
    assert out.exit_code == 2 and "--mode palette needs a palette" in out.output


def test_files_need_their_kind_of_model(palette_model, tiny_model):
    palette_file = get_compressor("imagegpt", model=palette_model, mode="palette").compress(
        smooth_image(3, 4))
    with pytest.raises(ModelMismatchError, match="palette tokens"):
        decompress(palette_file, tiny_model)
    subpixel_file = get_compressor("imagegpt", model=tiny_model).compress(smooth_image(3, 4))
    with pytest.raises(FormatError, match="subpixel tokens"):
        decompress(subpixel_file, palette_model)


def test_palette_files_decode_together_with_their_residuals(palette_model, rng):
    """decode_many steps several palette files as one group (numerics 2), then reads each
    file's exact residuals from its own stream: the same pixels as decoding one by one."""
    comp = get_compressor("imagegpt", model=palette_model)
    assert comp.codec.residual and comp.model.numerics == 2
    images = [smooth_image(5, 7), rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)]
    datas = [comp.compress(im) for im in images]
    for got, im in zip(comp.codec.decode_many(datas), images, strict=True):
        np.testing.assert_array_equal(got, im)


def test_the_torch_engines_one_pass_starts_a_palette_model_from_its_own_start_token(
        palette_model):
    """A palette model's start token is 512, not the subpixel models' 256: `frequencies_all`
    gives what stepping from the tokenizer's start token gives."""
    from igc.engines import integer as I
    from igc.engines import integer_torch as T
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel(palette_model)
    q, start = model.integer_model, PaletteTokenizer(model=model).start_token
    assert start == 512
    tokens = np.random.default_rng(1).integers(0, 512, (2, 6))
    ref = I.ReferenceEngine(q)
    state, ids, want = ref.start(2, 6), np.full(2, start), []
    for p in range(6):
        want.append(ref.step(state, ids))
        ids = tokens[:, p]
    np.testing.assert_array_equal(T.TorchEngine(q, "cpu").frequencies_all(tokens),
                                  np.stack(want, 1))
