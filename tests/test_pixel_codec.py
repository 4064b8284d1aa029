"""The codec with a pixel model (igc.models.pixel): `--model FOLDER` on a pixel export codes
files that decode to the exact pixels in context modes 0-3, on any shape, with either engine
and the same bytes, and a file finds its pixel model as it finds any (--model, IGC_MODEL_PATH).
What such a model saves is measured in docs/design.md, "One position per pixel", not here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, pixel_trainer, smooth_image
from PIL import Image

import igc
from igc.core import container
from igc.engines.engines import cuda_available, using_engine
from igc.errors import UsageError
from igc.models.imagegpt import ImageGPTModel
from igc.plugins.compose import compose

SHAPES = [(1, 1), (1, 37), (29, 1), (4, 4), (5, 5), (13, 22), (17, 9)]


@pytest.fixture(scope="module")
def pixel(tmp_path_factory) -> str:
    """A tiny pixel export (4×4 tiles) trained a little, so that its heads matter."""
    out = tmp_path_factory.mktemp("pixel") / "run"
    pixel_trainer(out, steps=30, eval_every=1000).run()
    return str(out / "best")


def test_a_pixel_export_loads_as_a_pixel_model(pixel):
    from igc.models.pixel import PixelModel

    model = ImageGPTModel(pixel)
    assert isinstance(model, PixelModel) and model.numerics == 2
    assert model.context_length == 48 and model.vocab_size == 256
    assert type(ImageGPTModel("igc-rgb16-v3")) is ImageGPTModel


@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_context_mode_round_trips_exactly_on_any_shape(pixel, shape, mode):
    codec = compose(pixel, context=mode, batch=3)
    image = smooth_image(*shape, seed=shape[1])
    encoded = codec.encode(image)
    assert container.unpack(encoded.data)[0].context == mode
    np.testing.assert_array_equal(compose(pixel).decode(encoded.data), image)
    estimate = codec.estimate_bits(image)
    if mode >= 2:  # the encoder's own model bits, through the same steps
        assert estimate == encoded.model_bits
    else:  # one float pass (the torch module) against numerics 2's frequencies
        assert estimate == pytest.approx(encoded.model_bits, rel=0.01)


@pytest.mark.parametrize("mode", [0, 1, 3])
def test_both_engines_write_the_same_file(pixel, mode):
    """The reference steps one position at a time; the cpu engine's encoder computes blocks."""
    image = smooth_image(14, 19, seed=4)
    with using_engine("reference"):
        data = compose(pixel, context=mode, batch=2).encode(image).data
    with using_engine("cpu"):
        assert compose(pixel, context=mode, batch=2).encode(image).data == data
        np.testing.assert_array_equal(compose(pixel).decode(data), image)


@pytest.mark.parametrize("mode", [0, 1, 3, 4])
def test_the_cuda_engines_path_writes_the_cpu_engines_file(pixel, mode, monkeypatch):
    """The cuda engine's codec path (every tile of a batch in one state, the torch engine's
    steps), run on torch's CPU: the cpu engine's bytes, and it decodes them."""
    from igc.engines import engines
    from igc.engines.pixel_torch import PixelTorchEngine

    image = smooth_image(14, 19, seed=4)
    with using_engine("cpu"):
        data = compose(pixel, context=mode, batch=2).encode(image).data
    made = []

    def torch_on_cpu(name, model, make=engines.make_engine):
        if name != "cuda":
            return make(name, model)
        made.append(PixelTorchEngine(model, device="cpu"))
        return made[-1]

    monkeypatch.setattr(engines, "make_engine", torch_on_cpu)
    with using_engine("cuda"):
        codec = compose(pixel, context=mode, batch=2)
        cached = codec.model.__dict__.setdefault("_engines", {})  # models are shared: keep
        cached.pop("cuda", None)  # no torch-on-CPU "cuda" engine beyond this test
        try:
            assert codec.model.batched_engine(2)
            assert codec.encode(image).data == data
            np.testing.assert_array_equal(compose(pixel).decode(data), image)
            # the torch engine computed them (mode 4: the encoder's and the decoder's tuned
            # copies each made their own)
            assert len(made) == (2 if mode == 4 else 1)
        finally:
            cached.pop("cuda", None)


def test_a_file_finds_its_pixel_model_and_refuses_another(pixel, tmp_path, monkeypatch):

    image = smooth_image(9, 11, seed=2)
    Image.fromarray(image).save(tmp_path / "img.png")
    out = invoke("compress", str(tmp_path / "img.png"), "--model", pixel,
                 "-o", str(tmp_path / "img.igc"))
    assert out.exit_code == 0, out.output
    out = invoke("decompress", str(tmp_path / "img.igc"), "-o", str(tmp_path / "a.png"))
    assert out.exit_code != 0 and "IGC_MODEL_PATH" in out.output  # not shipped: say where
    monkeypatch.setenv("IGC_MODEL_PATH", str(Path(pixel).parent))
    out = invoke("decompress", str(tmp_path / "img.igc"), "-o", str(tmp_path / "b.png"))
    assert out.exit_code == 0, out.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), image)
    out = invoke("decompress", str(tmp_path / "img.igc"), "--model", "igc-rgb16-v3",
                 "-o", str(tmp_path / "c.png"))
    assert out.exit_code != 0 and "fingerprint" in out.output


def test_what_a_pixel_model_does_not_do_is_refused_in_one_line(pixel, tmp_path):
    image = smooth_image(9, 11, seed=2)
    Image.fromarray(image).save(tmp_path / "img.png")
    if not cuda_available():
        with using_engine(None):  # the CLI's --engine sets the process's engine: restore it
            out = invoke("compress", str(tmp_path / "img.png"), "--model", pixel, "--engine",
                         "cuda", "-o", str(tmp_path / "x.igc"))
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert out.exit_code != 0 and len(lines) == 1, out.output
        assert "no CUDA device is available here" in lines[0]
    with pytest.raises(UsageError, match="computes numerics 2, not 1"):
        compose(pixel, numerics=1)


def test_mode_4_tunes_the_body_and_every_head(pixel):
    """The tuned parameters are the body's norms and biases and each head's (its output norm;
    G's and B's MLP norm and biases); a copy with changes quantizes to other integers, one
    with none to the model's own, and the copy keeps the name and fingerprint a file names."""
    from igc.models import tuning

    model = ImageGPTModel(pixel)
    names = tuning.names_of(model)
    assert names[-9:] == ["heads.0.ln_out.weight",
                          "heads.1.ln.weight", "heads.1.fc.bias", "heads.1.proj.bias",
                          "heads.1.ln_out.weight",
                          "heads.2.ln.weight", "heads.2.fc.bias", "heads.2.proj.bias",
                          "heads.2.ln_out.weight"]
    assert len(names) == 6 * model.cfg.layers + 9 and tuning.tunable(model) is None
    n = sum(tuning.sizes(model))
    zero = tuning.apply(model, np.zeros(n, np.int64))
    assert zero.integer_model.digest == model.integer_model.digest
    moved = tuning.apply(model, np.arange(n, dtype=np.int64) % 7 - 3)
    assert moved.integer_model.digest != model.integer_model.digest
    # the copy computes with its own integers, not with the model's engines
    assert moved.engine("reference").m is moved.integer_model
    assert moved.engine("reference") is not model.engine("reference")
    assert (moved.name, moved.fingerprint) == (model.name, model.fingerprint)
    assert moved.tensors["heads.2.fc.bias"][0] != model.tensors["heads.2.fc.bias"][0]


def test_a_mode_4_file_decodes_only_with_its_pixel_model(pixel, tmp_path):
    image = smooth_image(20, 23, seed=5)
    encoded = compose(pixel, context=4).encode(image)
    assert container.unpack(encoded.data)[0].context == 4
    (tmp_path / "img.igc").write_bytes(encoded.data)
    out = invoke("decompress", str(tmp_path / "img.igc"), "--model", "igc-rgb16-v3",
                 "-o", str(tmp_path / "c.png"))
    assert out.exit_code != 0 and "fingerprint" in out.output
    out = invoke("decompress", str(tmp_path / "img.igc"), "--model", pixel,
                 "-o", str(tmp_path / "d.png"))
    assert out.exit_code == 0, out.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "d.png")), image)


def test_igc_speed_times_a_pixel_model_on_its_integer_step(pixel, tmp_path):
    import json

    np.savez(tmp_path / "imgs.npz", images=np.stack([smooth_image(12, 12, seed=s)
                                                      for s in range(2)]))
    out = invoke("speed", "--model", pixel, "--images", str(tmp_path / "imgs.npz"), "--json")
    assert out.exit_code == 0, out.output  # no --backend: int alone, the one that computes it
    report = json.loads(out.output)
    assert {r["phase"] for r in report["results"]} == {"estimate", "encode", "decode"}
    assert {r["backend"] for r in report["results"]} == {"int"}
    assert all(r["roundtrip_ok"] for r in report["results"] if r["phase"] == "decode")
    for asked in ("hf,int", "igc"):
        out = invoke("speed", "--model", pixel, "--backend", asked, "--images",
                     str(tmp_path / "imgs.npz"))
        lines = [line for line in out.output.splitlines() if line.strip()]
        assert out.exit_code != 0 and len(lines) == 1, out.output
        assert "is a pixel model" in lines[0] and "--backend int" in lines[0], out.output


def test_a_shipped_name_wins_over_a_local_pixel_folder_of_that_name(pixel, tmp_path,
                                                                     monkeypatch):
    """As the loader resolves names: `--model igc-rgb16-v3` is the shipped model even where
    the working folder holds a pixel export called igc-rgb16-v3."""
    import shutil

    shutil.copytree(pixel, tmp_path / "igc-rgb16-v3")
    monkeypatch.chdir(tmp_path)
    assert type(ImageGPTModel("igc-rgb16-v3")) is ImageGPTModel
    assert type(ImageGPTModel("./igc-rgb16-v3")).__name__ == "PixelModel"


def test_a_pixel_model_reads_interleaved_subpixels_only(pixel):
    with pytest.raises(UsageError, match="reads subpixels in interleaved order, not 'channel'"):
        compose(pixel, order="channel")


def test_how_the_width_splits_into_heads_is_in_the_fingerprint(pixel, tmp_path):
    """Weights of the same shapes compute another model with another head count: a file must
    refuse it by fingerprint before decoding, not fail in the range decoder."""
    import json
    import shutil

    other = tmp_path / "one-head"
    shutil.copytree(pixel, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "heads": 1}))
    assert ImageGPTModel(str(other)).fingerprint != ImageGPTModel(pixel).fingerprint


def test_bench_names_a_pixel_models_numerics_and_engine(pixel):
    from igc.compressors.model_based import numerics_info

    assert numerics_info(ImageGPTModel(pixel)) == {"numerics": 2, "numerics_name": "integer",
                                                   "engine": "cpu"}


def test_a_config_that_is_a_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / "m" / "config.json").mkdir(parents=True)
    Image.fromarray(smooth_image(4, 4)).save(tmp_path / "img.png")
    out = invoke("compress", str(tmp_path / "img.png"), "--model", str(tmp_path / "m"),
                 "-o", str(tmp_path / "x.igc"))
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code != 0 and len(lines) == 1 and "not a regular file" in lines[0], out.output


def test_cuda_check_script_checks_a_pixel_model_on_the_cpu(pixel, tmp_path):
    """The prepared GPU check (scripts/cuda_check.py --model PIXEL) runs its pixel path on
    torch's CPU: the engine against the reference and the CPU's steps, then the timing."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "cuda_check.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--model", pixel,
                          "--no-default", "--no-edges", "--width", "12", "--height", "8",
                          "--seconds", "2", "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (m,) = json.loads((tmp_path / "r.json").read_text())["models"]
    assert m["model"]["kind"] == "pixel" and m["reference"]["ok"] and m["cpu"]["ok"], m
    assert m["reference_logits"]["ok"] and m["timing"]["no_graph"]["ok"], m
    assert m["timing"]["no_graph"]["steps"] >= 1 and "graph" not in m["timing"]


# The shipped pixel models (igc/weights/igc-rgb16-pixel*): each one's header code, fingerprint and
# integer digest are what its files record; a change here is a new model, never an edit.
DATA = Path(__file__).parent / "data"
SHIPPED_PIXELS = {  # id: (header code, fingerprint, committed file)
    "igc-rgb16-pixel": (0x85, "def9149fa043a180", DATA / "igc-rgb16-pixel-ctx3-strips-v6.igc"),
    "igc-rgb16-pixel-v2": (0x86, "3d4dd529c0bb0e66",
                           DATA / "igc-rgb16-pixel-v2-ctx3-strips-v6.igc"),
}
SHIPPED_PIXEL = "igc-rgb16-pixel"


@pytest.mark.parametrize("name", SHIPPED_PIXELS)
def test_the_shipped_pixel_model_is_named_by_its_code_and_round_trips(name):
    """Its header stores the id as one byte after the fingerprint; a decoder finds the weights
    by that fingerprint among the shipped models, with no --model."""
    code, fingerprint, _ = SHIPPED_PIXELS[name]
    image = smooth_image(7, 9, seed=2)
    data = compose(name).encode(image).data
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint) == (name, fingerprint)
    at = data.index(bytes.fromhex(header.fingerprint)) + 8  # the id follows the fingerprint
    assert data[at] == code
    assert container.SHIPPED_MODEL_IDS.index(name) == code - 0x80
    assert np.array_equal(igc.decompress(data), image)


def test_a_local_imagegpt_folder_named_like_the_shipped_pixel_model_does_not_shadow_it(
        tiny_model, tmp_path, monkeypatch):
    """A shipped name means the shipped model, as for ImageGPT ids: an ImageGPT folder of that
    name in the working directory is not what --model igc-rgb16-pixel loads."""
    import shutil

    shutil.copytree(tiny_model, tmp_path / SHIPPED_PIXEL)
    monkeypatch.chdir(tmp_path)
    model = ImageGPTModel(SHIPPED_PIXEL)
    assert type(model).__name__ == "PixelModel"
    assert model.fingerprint == SHIPPED_PIXELS[SHIPPED_PIXEL][1]


@pytest.mark.parametrize("name", SHIPPED_PIXELS)
def test_the_committed_shipped_pixel_file_decodes(name):
    """Pins each shipped pixel model's integers and context mode 3 with it: written by
    `python tests/test_pixel_codec.py` (helpers.smooth_image(20, 24, seed=11), context mode 3,
    strips of 16 rows, numerics 2, so it decodes on any machine)."""
    data = SHIPPED_PIXELS[name][2].read_bytes()
    header, _ = container.unpack(data)
    assert (header.model_id, header.context, header.numerics, header.version) == (name, 3, 2, 6)
    assert header.strip_rows == 16
    want = smooth_image(20, 24, seed=11)
    np.testing.assert_array_equal(igc.decompress(data), want)
    with using_engine("reference"):
        np.testing.assert_array_equal(igc.decompress(data), want)


if __name__ == "__main__":  # writes the committed file of each shipped pixel model that has none
    for name, (_, _, path) in SHIPPED_PIXELS.items():  # (python tests/test_pixel_codec.py)
        if not path.exists():
            path.write_bytes(compose(name, context=3, strip_rows=16)
                             .encode(smooth_image(20, 24, seed=11)).data)
