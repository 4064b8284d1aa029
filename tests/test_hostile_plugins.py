"""Hostile plugins (issue 16, items 1-3): what a compressor returns is checked, a lossless claim
is verified whatever decompress does, and no plugin can end the host process.

Plugins are installed as fake `igc.plugins` entry points, so they go through the same loading
path as an installed package.
"""

from __future__ import annotations

import json
import types
from importlib import metadata

import numpy as np
import pytest
from helpers import error_line, invoke

import igc
from igc.plugins import manager


class FakeEntryPoint:
    """An `igc.plugins` entry point of distribution `dist` whose load() calls `load`."""

    def __init__(self, name: str, dist: str, load) -> None:
        self.name = name
        self.dist = types.SimpleNamespace(name=dist, version="0.1")
        self._load = load

    def load(self):
        return self._load()


@pytest.fixture
def install(monkeypatch):
    """install(*entry_points): make them the only third-party plugins, with a fresh registry."""

    def _install(*eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(metadata, "entry_points", lambda group: list(eps))
        monkeypatch.setattr(manager, "_registry", None)

    return _install


def plugin_module(name: str, *compressors, **hooks) -> types.ModuleType:
    """A module registering `compressors`, plus any other hook functions given."""
    module = types.ModuleType(name)
    if compressors:
        def register_compressors(register):
            for factory in compressors:
                register(factory)

        hooks.setdefault("register_compressors", register_compressors)
    for hook, function in hooks.items():
        setattr(module, hook, igc.hookimpl(function))
    return module


def entry(name: str, *compressors, **hooks) -> FakeEntryPoint:
    module = plugin_module(name, *compressors, **hooks)
    return FakeEntryPoint(name, f"igc-{name}", lambda: module)


def raw_codec(name: str, compress=None, decompress=None):
    """A lossless compressor class storing raw pixels; `compress`/`decompress` override."""

    def store(self, image):
        return len(image).to_bytes(4, "little") + image.tobytes()

    def load(self, data):
        h = int.from_bytes(data[:4], "little")
        return np.frombuffer(bytes(data[4:]), np.uint8).reshape(h, -1, 3)

    return type(name, (), {"name": name, "lossless": True, "compress": compress or store,
                           "decompress": decompress or load})


def bench_json(photo_dir, names: str):
    result = invoke("bench", "-c", names, "--images", photo_dir, "--count", "1", "--json")
    return result, json.loads(result.stdout)


@pytest.mark.parametrize(("returned", "described"), [
    (lambda self, image: image.tobytes().decode("latin-1"), "a str"),
    (lambda self, image: image.astype(np.uint64), "a uint64 array of shape"),
    (lambda self, image: None, "a NoneType"),
])
def test_compress_result_that_is_not_bytes_is_an_error_naming_the_plugin(
        install, photo_dir, returned, described):
    install(entry("liar", raw_codec("liar", compress=returned)))
    result, data = bench_json(photo_dir, "liar,png")
    assert result.exit_code == 0, result.output
    row = next(r for r in data["results"] if r["compressor"] == "liar")
    assert row["error"].startswith(f"compressor 'liar' (plugin 'igc-liar') returned {described}")
    assert row["error"].endswith("from compress(), not bytes")
    assert row["compressed_bits"] is None and row["ratio"] is None
    assert "liar" not in data["summary"] and "png" in data["summary"]


def test_model_based_plugin_results_are_checked_too(install, photo_dir):
    stats = types.SimpleNamespace(data="not bytes", model_bits=8.0, header_bytes=0)
    codec = raw_codec("modelish")
    codec.model_based = True
    codec.compress_with_stats = lambda self, image: stats
    install(entry("modelish", codec))
    result, data = bench_json(photo_dir, "modelish")
    assert result.exit_code == 0, result.output
    assert data["results"][0]["error"] == ("compressor 'modelish' (plugin 'igc-modelish') "
                                           "returned a str from compress_with_stats(), not bytes")


def test_bytes_like_results_are_measured_in_bytes(install, photo_dir):
    """A memoryview over uint32 words: len() counts words, the file is 4 times as many bytes."""

    def words(self, image):
        raw = len(image).to_bytes(4, "little") + image.tobytes()
        raw += b"\0" * (-len(raw) % 4)
        return memoryview(np.frombuffer(raw, np.uint32))

    def unpad(self, data):
        h = int.from_bytes(data[:4], "little")
        pixels = np.frombuffer(bytes(data[4:]), np.uint8)
        return pixels[: h * (len(pixels) // (3 * h)) * 3].reshape(h, -1, 3)

    install(entry("words", raw_codec("words", compress=words, decompress=unpad)))
    result, data = bench_json(photo_dir, "words")
    assert result.exit_code == 0, result.output
    (row,) = data["results"]
    h, w = row["height"], row["width"]
    assert row["compressed_bits"] == (4 + h * w * 3 + (-(4 + h * w * 3) % 4)) * 8
    assert row["roundtrip_ok"] is True and row["error"] is None


def _raises(self, data):
    raise RuntimeError("cannot decode")


def _exits(self, data):
    raise SystemExit(0)


@pytest.mark.parametrize(("decompress", "error"), [
    (_raises, "RuntimeError: cannot decode"),
    (_exits, "SystemExit: 0"),
    (lambda self, data: [[0, 0, 0]],
     "compressor 'broken' (plugin 'igc-broken') returned a list from decompress(), "
     "not uint8 (H, W, 3) pixels"),
    (lambda self, data: np.zeros((20, 24, 3)),
     "compressor 'broken' (plugin 'igc-broken') returned a float64 array of shape (20, 24, 3) "
     "from decompress(), not uint8 (H, W, 3) pixels"),
    (lambda self, data: np.zeros((20, 24), np.uint8),
     "compressor 'broken' (plugin 'igc-broken') returned a uint8 array of shape (20, 24) "
     "from decompress(), not uint8 (H, W, 3) pixels"),
])
def test_failed_decode_of_a_lossless_codec_is_a_failed_round_trip(install, photo_dir,
                                                                  decompress, error):
    install(entry("broken", raw_codec("broken", decompress=decompress)))
    result, data = bench_json(photo_dir, "broken,png")
    assert result.exit_code == 3, result.output
    row = next(r for r in data["results"] if r["compressor"] == "broken")
    assert (row["roundtrip_ok"], row["error"]) == (False, error)
    assert data["summary"]["broken"]["roundtrip_ok"] is False
    assert data["summary"]["png"]["roundtrip_ok"] is True


def test_failed_decode_shows_a_cross_in_the_table(install, photo_dir):
    install(entry("broken", raw_codec("broken", decompress=_raises)))
    result = invoke("bench", "-c", "broken", "--images", photo_dir, "--count", "1")
    assert result.exit_code == 3, result.output
    row = next(line for line in result.stdout.splitlines() if "broken" in line and "img" in line)
    assert row.rstrip("│ ").endswith("✗")  # the message is a note: the row stays 80 columns
    assert "broken on img3.png: error: RuntimeError: cannot decode" in result.stdout


class PluginCrash(BaseException):
    """Not an Exception: what a careless plugin might raise."""


def _exit_on_import():
    raise SystemExit(0)


def _crash_on_import():
    raise PluginCrash("boom at import")


@pytest.mark.parametrize(("load", "error"), [(_exit_on_import, "SystemExit: 0"),
                                             (_crash_on_import, "PluginCrash: boom at import")])
def test_plugin_exiting_at_import_is_listed_and_harmless(install, photo_dir, load, error):
    install(FakeEntryPoint("quitter", "igc-quitter", load), entry("fine", raw_codec("fine")))
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["igc-quitter"]["error"] == error
    assert plugins["igc-fine"]["registers"] == {"compressor": ["fine"]}
    table = invoke("plugins")
    assert table.exit_code == 0 and "igc-quitter" in table.stdout
    assert f"failed: {error.split(':')[0]}" in table.stdout  # the table wraps the rest
    assert "fine" in igc.list_compressors() and "png" in igc.list_compressors()
    result, data = bench_json(photo_dir, "fine,png")
    assert result.exit_code == 0 and {r["roundtrip_ok"] for r in data["results"]} == {True}


def _exploding_hook(register):
    register(raw_codec("early"))  # registered, then the hook fails: rolled back
    raise RuntimeError("hook exploded")


def _exiting_hook(register):
    raise SystemExit(2)


@pytest.mark.parametrize(("hook", "error"), [
    (_exploding_hook, "register_compressors raised RuntimeError: hook exploded"),
    (_exiting_hook, "register_compressors raised SystemExit: 2"),
])
def test_hook_that_raises_is_listed_and_named(install, photo_dir, hook, error):
    install(entry("exploder", register_compressors=hook))
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["igc-exploder"]["error"] == error
    assert plugins["igc-exploder"]["registers"] == {}
    assert "early" not in igc.list_compressors()
    assert bench_json(photo_dir, "png")[0].exit_code == 0
    line = error_line(invoke("bench", "-c", "early", "--images", photo_dir))
    assert line.endswith("(plugins that failed to load, see `igc plugins`: igc-exploder)")
    assert "unknown compressor 'early'; known: " in line


def test_two_entry_points_to_one_module_are_one_plugin(install, photo_dir):
    module = plugin_module("twice", raw_codec("twice"))
    install(FakeEntryPoint("a", "igc-twice", lambda: module),
            FakeEntryPoint("b", "igc-twice", lambda: module))
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    plugins = [p for p in json.loads(result.stdout)["plugins"] if p["name"].startswith("igc-tw")]
    assert plugins == [{"name": "igc-twice", "version": "0.1", "builtin": False,
                        "registers": {"compressor": ["twice"]}, "error": None,
                        "unavailable": {}}]
    assert bench_json(photo_dir, "twice")[0].exit_code == 0


def test_one_package_with_two_plugin_modules(install):
    install(FakeEntryPoint("a", "igc-pair", lambda: plugin_module("a", raw_codec("first"))),
            FakeEntryPoint("b", "igc-pair", lambda: plugin_module("b", raw_codec("second"))))
    registry = manager.get_registry()
    assert registry.plugins["igc-pair"].registered == {"compressor": ["first"]}
    assert registry.plugins["igc-pair (b)"].registered == {"compressor": ["second"]}


def test_compressor_that_fails_to_start_names_its_plugin(install, photo_dir):
    def refuse(self):
        raise OSError("no licence file")

    install(entry("moody", type("Moody", (), {"name": "moody", "lossless": True,
                                              "__init__": refuse})))
    line = error_line(invoke("bench", "-c", "moody,png", "--images", photo_dir))
    assert line == ("igc: error: compressor 'moody' of plugin 'igc-moody' failed to start: "
                    "OSError: no licence file")


def test_availability_check_that_exits_marks_the_codec_unavailable(install):
    def available(cls):
        raise SystemExit(1)

    codec = raw_codec("shy")
    codec.available = classmethod(available)
    install(entry("shy", codec))
    assert igc.list_compressors(check=True)["shy"] == "availability check failed: SystemExit: 1"
    result = invoke("plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["igc-shy"]["unavailable"] == {"shy": "availability check failed: SystemExit: 1"}


def test_keyboard_interrupt_in_a_plugin_still_interrupts(install):
    def interrupt():
        raise KeyboardInterrupt

    install(FakeEntryPoint("ctrl-c", "igc-ctrl-c", interrupt))
    with pytest.raises(KeyboardInterrupt):
        igc.list_compressors()


class _FakeEntryPoint:
    """A third-party plugin entry point that registers compressor 'intruder' when loaded."""

    name = "intruder"
    loaded = False

    class dist:  # mimics importlib.metadata's EntryPoint.dist
        name = "igc-intruder"
        version = "0.1"

    def load(self):
        type(self).loaded = True

        class Intruder:
            name = "intruder"
            lossless = True

        class Plugin:
            @igc.hookimpl
            def register_compressors(self, register):
                register(Intruder)

        return Plugin()


def test_disable_plugins_never_imports_third_party_code(monkeypatch):
    import json
    from importlib import metadata

    from igc.plugins import manager

    monkeypatch.setattr(metadata, "entry_points", lambda group: [_FakeEntryPoint()])
    monkeypatch.setattr(manager, "_registry", None)
    result = invoke("plugins", "--json")
    names = {p["name"] for p in json.loads(result.stdout)["plugins"]}
    assert "igc-intruder" in names and _FakeEntryPoint.loaded

    _FakeEntryPoint.loaded = False
    monkeypatch.setenv("IGC_DISABLE_PLUGINS", "1")
    monkeypatch.setattr(manager, "_registry", None)
    result = invoke("plugins", "--json")
    names = {p["name"] for p in json.loads(result.stdout)["plugins"]}
    assert "igc-intruder" not in names and "igc.plugins.builtins" in names
    assert "unknown compressor 'intruder'" in error_line(invoke("bench", "-c", "intruder"))
    assert not _FakeEntryPoint.loaded
    monkeypatch.setattr(manager, "_registry", None)  # the next test builds a clean registry
