"""Composition by name: a model, tokenizer or coder that a plugin registers works everywhere a
built-in does (bench, compress, the API, decompress), files name their pieces, and a file whose
plugin is missing, or a piece that does not fit its protocol, fails with one line that says which."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

import igc
from igc.cli.app import app
from igc.coders.range import RangeCoder
from igc.core import container
from igc.errors import PluginError, UsageError
from igc.plugins import manager
from igc.plugins.compose import file_compressor, model_compressor
from igc.plugins.manager import Registry

FIXTURES = Path(__file__).parent / "data"
runner = CliRunner()


class RepeatModel:
    """Each subpixel repeats the one three positions back (same channel, left pixel) with
    probability 1/2; integer arithmetic, so every machine computes the same floats."""

    name = "repeat-v1"
    vocab_size = 256
    context_length = 4 * 4 * 3
    fingerprint = "5e9ea7000000c0de"
    numerics = 0
    numerics_supported = (0,)

    def start(self, batch, length, numerics):
        return {"seen": np.zeros((batch, self.context_length), np.int64), "t": 0}

    def step(self, state, tokens):
        t = state["t"]
        if t:
            state["seen"][:, t - 1] = tokens
        probs = np.full((len(tokens), 256), 1.0 / 510)
        if t >= 3:
            probs[np.arange(len(tokens)), state["seen"][:, t - 3]] = 0.5 + 1.0 / 510
        state["t"] = t + 1
        return probs

    def log_probs(self, sequences):
        state = self.start(len(sequences), sequences.shape[1], 0)
        return np.log(np.stack([self.step(state, sequences[:, t])
                                for t in range(sequences.shape[1])], axis=1))


class WideRange(RangeCoder):
    """The range coder under another name: a coder plugin as far as files are concerned."""

    name = "wide-range"


class Plugin:
    @igc.hookimpl
    def register_models(self, register):
        register(RepeatModel, name="repeat")

    @igc.hookimpl
    def register_coders(self, register):
        register(WideRange)


def registry_with(*plugins) -> Registry:
    registry = Registry()
    registry.load_builtins()
    for i, plugin in enumerate(plugins):
        registry.add_plugin(plugin, f"plugin-{i}", "1.0", builtin=False)
    return registry


@pytest.fixture
def installed(monkeypatch):
    """The process-wide registry with the test plugin installed, as an entry point would."""
    monkeypatch.setattr(manager, "_registry", registry_with(Plugin()))


def smooth(h=9, w=10):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 9, y * 7, (x + y) * 5], -1).astype(np.uint8)


def test_a_registered_model_is_a_compressor_by_name(installed):
    assert "repeat" in igc.list_compressors()
    image = smooth()
    result = igc.bench([image], ["repeat", "uniform", "png"])
    rows = {r.compressor: r for r in result.results}
    assert rows["repeat"].roundtrip_ok and rows["repeat"].model_bits < rows["uniform"].model_bits
    assert result.environment["models"]["repeat"]["plugin"] == "repeat"


def test_files_name_their_pieces_and_decode_from_the_names(installed, tmp_path):
    image = smooth(6, 11)
    data = igc.compress(image, model="repeat", coder="wide-range")
    header, _ = container.unpack(data)
    assert (header.version, header.model_plugin, header.model_id, header.fingerprint,
            header.tokenizer, header.coder) == (5, "repeat", "repeat-v1", "5e9ea7000000c0de",
                                                "subpixel", "wide-range")
    assert np.array_equal(igc.decompress(data), image)
    # the same through the command line, and `igc info` shows the names
    src = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(image).save(src)
    out = runner.invoke(app, ["compress", str(src), "--model", "repeat", "--coder", "wide-range"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["info", str(src) + ".igc", "--json"])
    assert '"model_plugin": "repeat"' in out.output and '"coder": "wide-range"' in out.output
    out = runner.invoke(app, ["decompress", str(src) + ".igc", "-o", str(tmp_path / "y.png")])
    assert out.exit_code == 0, out.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png")), image)


def test_coder_and_tokenizer_are_selectable(installed, tiny_model, photo_dir):
    comp = igc.get_compressor("imagegpt", model=tiny_model, coder="wide-range")
    image = smooth(5, 7)
    data = comp.compress(image)
    assert container.unpack(data)[0].coder == "wide-range"
    assert np.array_equal(igc.decompress(data, tiny_model), image)
    out = runner.invoke(app, ["bench", "-c", "imagegpt,repeat", "--coder", "wide-range", "--model",
                              tiny_model, "--images", str(photo_dir), "-n", "2", "--json"])
    assert out.exit_code == 0, out.output
    import json

    result = json.loads(out.stdout)
    assert all(r["roundtrip_ok"] for r in result["results"])
    assert {m["coder"] for m in result["environment"]["models"].values()} == {"wide-range"}
    with pytest.raises(UsageError, match=r"unknown coder 'nope'; known: range, wide-range"):
        igc.get_compressor("repeat", coder="nope")
    with pytest.raises(UsageError, match=r"palette tokenizer needs a palette model"):
        igc.compress(image, model="repeat", tokenizer="palette")


def test_missing_plugin_is_one_line_naming_it(installed, tmp_path):
    image = smooth(4, 5)
    data = igc.compress(image, model="repeat", coder="wide-range")
    bare = registry_with()
    with pytest.raises(PluginError, match=r"needs the model plugin 'repeat' \(model 'repeat-v1', "
                                          r"fingerprint 5e9ea7000000c0de\), which is not installed"):
        file_compressor(container.unpack(data)[0], registry=bare)
    coder_only = igc.compress(image, model="uniform", coder="wide-range")
    with pytest.raises(PluginError, match=r"needs the coder plugin 'wide-range'"):
        file_compressor(container.unpack(coder_only)[0], registry=bare)
    path = tmp_path / "x.igc"
    path.write_bytes(data)
    manager._registry = bare  # the fixture restores the registry afterwards
    out = runner.invoke(app, ["decompress", str(path), "-o", str(tmp_path / "x.png")])
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code == 1 and len(lines) == 1, out.output
    assert lines[0].startswith("igc: error: this file needs the model plugin 'repeat'")
    assert not (tmp_path / "x.png").exists()


def test_a_file_of_the_example_plugin_names_it_when_it_is_missing():
    """tests/data/context-ans-v4.igc was coded with examples/igc-context (model `context`, coder
    `ans`); a registry without that package refuses it in one line naming the plugin."""
    data = (FIXTURES / "context-ans-v4.igc").read_bytes()
    header, _ = container.unpack(data)
    assert (header.model_plugin, header.coder, header.version) == ("context", "ans", 4)
    with pytest.raises(PluginError, match=r"needs the model plugin 'context'.*not installed"):
        file_compressor(header, registry=registry_with())


class NoStart(RepeatModel):
    start = None  # not callable: as good as missing


class NoPrecision:
    name = "sloppy"

    def ideal_bits(self, symbols, probs): ...
    def encoder(self): ...
    def decoder(self, data): ...


class NoDecompress:
    name = "half"
    lossless = True

    def compress(self, image):
        return b""


class NoFinish(WideRange):
    name = "no-finish"

    def encoder(self):
        return object()


def test_a_piece_that_does_not_fit_is_refused_naming_what_it_lacks():
    class Broken:
        @igc.hookimpl
        def register_models(self, register):
            register(NoStart, name="nostart")

        @igc.hookimpl
        def register_coders(self, register):
            register(NoPrecision)
            register(NoFinish)

        @igc.hookimpl
        def register_compressors(self, register):
            register(NoDecompress)

    registry = registry_with(Broken())
    with pytest.raises(PluginError, match=r"model 'nostart' does not fit igc's Model protocol: "
                                          r"it lacks start \(see docs/plugins\.md\)"):
        model_compressor("nostart", registry=registry)
    with pytest.raises(PluginError, match=r"coder 'sloppy' does not fit igc's Coder protocol: "
                                          r"it lacks precision"):
        model_compressor("uniform", coder="sloppy", registry=registry)
    with pytest.raises(PluginError, match=r"coder 'no-finish''s encoder does not fit igc's "
                                          r"SymbolEncoder protocol: it lacks encode, finish"):
        model_compressor("uniform", coder="no-finish", registry=registry).compress(smooth(2, 2))
    from igc.plugins.compose import create_compressor

    with pytest.raises(PluginError, match=r"compressor 'half' does not fit igc's Compressor "
                                          r"protocol: it lacks decompress"):
        create_compressor("half", registry=registry)


def test_version_4_fixture_and_older_versions_decode():
    """A committed v4 file (uniform model: machine-independent) and the same header written as
    versions 1-3 all decode to the same pixels."""
    import skimage.data

    pixels = np.ascontiguousarray(skimage.data.astronaut()[100:107, 200:209])
    data = (FIXTURES / "uniform-v4.igc").read_bytes()
    header, payload = container.unpack(data)
    assert (header.version, header.model_plugin, header.tokenizer, header.coder) == (
        4, "uniform", "subpixel", "range")
    assert len(data) - len(payload) == 43  # shipped names cost one byte each
    for version in (4, 3, 2, 1):
        old = container.pack(dataclasses.replace(header, version=version), payload)
        assert container.unpack(old)[0].model_plugin == "uniform"
        assert np.array_equal(igc.decompress(old), pixels), version


def test_names_in_headers_are_checked():
    header = container.Header(2, 2, 16, "m", "0" * 16, 0, b"", 0, 1, model_plugin="my-model",
                              coder="c" * 63, tokenizer="t")
    parsed, _ = container.unpack(container.pack(header, b""))
    assert (parsed.model_plugin, parsed.coder, parsed.tokenizer) == ("my-model", "c" * 63, "t")
    with pytest.raises(ValueError, match="cannot be recorded"):
        container.pack(dataclasses.replace(header, coder="c" * 64), b"")
    with pytest.raises(ValueError, match="cannot be recorded"):
        container.pack(dataclasses.replace(header, coder="two words"), b"")


def test_bench_table_names_a_plugin_model_and_reporters_are_selectable(installed, photo_dir):
    out = runner.invoke(app, ["bench", "-c", "repeat,png", "--coder", "wide-range", "--images",
                              str(photo_dir), "-n", "1"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "repeat: model repeat-v1 (fingerprint 5e9ea7000000c0de, 4×4 tiles, coder wide-range)" \
        in out.output
    out = runner.invoke(app, ["bench", "-c", "png", "--images", str(photo_dir), "--reporter",
                              "markdown"])
    assert out.exit_code == 0 and out.stdout.startswith("| compressor |"), out.output
    out = runner.invoke(app, ["bench", "-c", "png", "--images", str(photo_dir), "-r", "nope"])
    assert out.exit_code == 2 and "unknown reporter 'nope'; known: csv, json" in out.output
    with pytest.raises(PluginError, match="already registered"):
        igc.register_plugin(Plugin(), "plugin-0")


# -- issue 26, §4: what a model factory is given, the geometry, hints that fit plugins ------------
class SpecModel(RepeatModel):
    """RepeatModel that records the spec its factory was given and the geometry of each start."""

    specs: ClassVar[list] = []
    geometries: ClassVar[list] = []

    def __init__(self, spec=None):
        SpecModel.specs.append(spec)

    def start(self, batch, length, numerics, geometry=None):
        SpecModel.geometries.append((length, geometry))
        return super().start(batch, length, numerics)


class SpecPlugin:
    @igc.hookimpl
    def register_models(self, register):
        register(SpecModel, name="probe")


def test_the_spec_a_model_factory_gets_is_the_documented_one(monkeypatch):
    monkeypatch.setattr(manager, "_registry", registry_with(SpecPlugin()))
    monkeypatch.setattr(SpecModel, "specs", [])
    image = smooth(5, 6)
    data = igc.compress(image, model="probe")  # by its registered name: the default model
    assert SpecModel.specs == [None]
    igc.bench([image], ["probe", "png"], model="igc-rgb16-w256")  # bench's --model is imagegpt's
    assert "igc-rgb16-w256" not in SpecModel.specs
    igc.get_compressor("probe", model="mine")  # given explicitly to this model
    assert SpecModel.specs[-1] == "mine"
    assert np.array_equal(igc.decompress(data), image)  # decoding: the header's model id
    assert SpecModel.specs[-1] == "repeat-v1"


def test_a_model_whose_start_takes_geometry_is_told_the_tiles_and_the_order(monkeypatch):
    monkeypatch.setattr(manager, "_registry", registry_with(SpecPlugin()))
    monkeypatch.setattr(SpecModel, "geometries", [])
    image = smooth(1, 6)  # one row of pixels: only the first 18 positions of a 4×4 tile are coded
    for order in ("interleaved", "channel"):
        data = igc.compress(image, model="probe", order=order)
        assert np.array_equal(igc.decompress(data), image)
    lengths = [length for length, _ in SpecModel.geometries]
    geometries = [g for _, g in SpecModel.geometries]
    assert {(g.tile, g.tokens, g.tokenizer, g.channels) for g in geometries} == {
        (4, 48, "subpixel", 3)}
    # two tiles in two lanes of one: two starts to encode, two to decode, per order
    assert [g.order for g in geometries] == ["interleaved"] * 4 + ["channel"] * 4
    # length: exactly the steps to the last coded position of any tile (row 0, columns 0..3)
    assert lengths == [12] * 4 + [36] * 4  # interleaved: 4 pixels × 3; channel: to B of pixel 3
    inter, chan = geometries[0], geometries[-1]
    assert inter.position(5) == (0, 1, 2) and inter.position(12) == (1, 0, 0)
    assert chan.position(5) == (1, 1, 0) and chan.position(17) == (0, 1, 1)


def test_a_plugin_models_file_given_another_model_is_not_sent_to_a_folder(installed):
    data = igc.compress(smooth(), model="repeat")
    with pytest.raises(igc.IgcError) as caught:
        igc.decompress(data, model="uniform")
    message = str(caught.value)
    assert "decode without --model: the file names its model plugin 'repeat'" in message
    assert "folder" not in message


def test_the_palette_tokenizer_reports_the_models_own_classes(installed):
    with pytest.raises(UsageError, match=r"model 'repeat-v1' predicts 256 classes and has no "
                                         r"colour clusters"):
        igc.compress(smooth(), model="repeat", tokenizer="palette")
