"""The plugin system: built-ins register like plugins; conflicts and bad plugins are caught."""

import sys

import numpy as np
import pytest

import igc
from igc.errors import PluginError, UsageError
from igc.plugins.manager import Registry


def fresh_registry() -> Registry:
    registry = Registry()
    registry.load_builtins()
    return registry


class Identity:
    name = "identity"
    lossless = True

    def compress(self, image):
        return image.shape[0].to_bytes(4, "little") + image.shape[1].to_bytes(4, "little") + \
            image.tobytes()

    def decompress(self, data):
        h, w = int.from_bytes(data[:4], "little"), int.from_bytes(data[4:8], "little")
        return np.frombuffer(data[8:], np.uint8).reshape(h, w, 3)


class ThirdParty:
    @igc.hookimpl
    def register_compressors(self, register):
        register(Identity)


def test_builtins_are_registered_through_hooks():
    registry = fresh_registry()
    names = registry.names("compressor")
    for expected in ("png", "zstd", "webp", "jxl", "jpeg2000", "jpegls", "lzma"):
        assert expected in names
    assert "range" in registry.names("coder")
    assert {"subpixel", "palette"} <= set(registry.names("tokenizer"))
    assert {"table", "json", "csv", "markdown", "plot"} <= set(registry.names("reporter"))
    assert {"imagegpt", "uniform"} <= set(registry.names("model"))
    owners = {registry.entry(kind, name).plugin for kind, name in
              [("compressor", "png"), ("model", "uniform"), ("coder", "range"),
               ("tokenizer", "palette"), ("reporter", "table")]}
    assert owners == {"igc.plugins.builtins"}  # the one module that lists igc's own pieces
    # models are compressors by name: composed with their tokenizer and the range coder
    from igc.plugins.compose import compressor_names

    assert {"imagegpt", "uniform", "png"} <= set(compressor_names(registry))


def test_listing_imports_no_heavy_library():
    code = ("import sys; import igc; igc.list_compressors(); "
            "heavy = [m for m in ('torch', 'transformers', 'imagecodecs', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_registered_in_a_test_runs_in_bench(rng):
    registry = fresh_registry()
    registry.add_plugin(ThirdParty(), "third-party", "1.0", builtin=False)
    comp = registry.create("compressor", "identity")
    image = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    result = igc.bench([image], [comp, registry.create("compressor", "zstd")])
    rows = {r.compressor: r for r in result.results}
    assert rows["identity"].roundtrip_ok is True
    assert rows["identity"].compressed_bits == (5 * 6 * 3 + 8) * 8


def test_duplicate_name_names_both_plugins():
    registry = fresh_registry()

    class Clash:
        @igc.hookimpl
        def register_compressors(self, register):
            class Png:
                name = "png"

            register(Png)

    with pytest.raises(PluginError, match=r"'png' is registered twice.*igc.plugins.builtins"
                                          r".*'clash'"):
        registry.add_plugin(Clash(), "clash", "0.1", builtin=False)


def test_misspelled_hook_is_reported():
    registry = fresh_registry()

    class Typo:
        @igc.hookimpl
        def register_compresors(self, register):
            pass

    registry.add_plugin(Typo(), "typo", "0.1", builtin=False)
    assert "register_compresors" in registry.plugins["typo"].error
    assert "typo" not in [p.plugin_name for p in registry.pm.hook.register_compressors
                          .get_hookimpls()]


def test_broken_entry_point_is_listed_and_harmless(monkeypatch):
    from importlib import metadata

    class FakeDist:
        name = "igc-broken"
        version = "9.9"

    class FakeEP:
        name = "broken"
        dist = FakeDist()

        def load(self):
            raise ImportError("No module named 'missing_dependency'")

    monkeypatch.setattr(metadata, "entry_points", lambda group: [FakeEP()])
    registry = fresh_registry()
    registry.load_entry_points()
    info = registry.plugins["igc-broken"]
    assert "missing_dependency" in info.error and info.version == "9.9"
    assert "png" in registry.names("compressor")
    monkeypatch.setenv("IGC_DISABLE_PLUGINS", "1")
    registry = fresh_registry()
    registry.load_entry_points()
    assert "igc-broken" not in registry.plugins


def test_unknown_compressor_lists_known():
    with pytest.raises(UsageError, match=r"unknown compressor 'pgn'; known: .*png"):
        igc.get_compressor("pgn")


def test_unavailable_codec_is_reported_not_fatal(monkeypatch, rng):
    from igc.api import create_compressors
    from igc.compressors import classical

    monkeypatch.setattr(classical.JxlCompressor, "available",
                        classmethod(lambda cls: "imagecodecs has no JPEG-XL"))
    made, unavailable = create_compressors(["png", "jxl"])
    assert [c.name for c in made] == ["png"]
    assert "imagecodecs has no JPEG-XL" in unavailable["jxl"]
    assert igc.list_compressors(check=True)["jxl"] == "imagecodecs has no JPEG-XL"



def test_model_with_its_own_spec_sits_beside_the_default(rng):
    """`MODEL:SPEC` in -c: two models of one plugin in one bench, each coding its own files."""
    from igc.api import create_compressors

    made, _ = create_compressors(["imagegpt:igc-rgb16", "imagegpt", "png"], model="igc-rgb16-v2")
    by_name = {c.name: c for c in made}
    assert list(by_name) == ["imagegpt:igc-rgb16", "imagegpt", "png"]
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for name, model_id in (("imagegpt:igc-rgb16", "igc-rgb16"), ("imagegpt", "igc-rgb16-v2")):
        data = by_name[name].compress(image)
        assert igc.info(data)["model_id"] == model_id
        assert np.array_equal(igc.decompress(data), image)


@pytest.mark.parametrize(("names", "message"), [
    (["nosuch:x"], r"unknown compressor 'nosuch:x' \('nosuch' is not a registered model"),
    (["png", "png"], r"compressor 'png' is named twice"),
    (["imagegpt:"], r"names model 'imagegpt' and no spec after the colon"),
])
def test_bad_model_spec_names_fail_in_one_line(names, message):
    from igc.api import create_compressors

    with pytest.raises(UsageError, match=message):
        create_compressors(names)
