"""Shipped models: the catalog, the default, old files decoding, and $IGC_MODEL_PATH."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, recompute_header_crc
from typer.testing import CliRunner

import igc
from igc.core import container
from igc.models.catalog import shipped_models
from igc.models.imagegpt import DEFAULT_MODEL, packaged_models

FIXTURES = Path(__file__).parent / "data"
runner = CliRunner()




# the refusal of a float file decoded where floats differ: the checksum fails, or the stream
# derails first (the range decoder finds it inconsistent); both name the same causes
MACHINE_REFUSAL = ("the file is corrupted or was decoded on a machine that computes the model "
                   "differently",)


def decode_float_fixture(data: bytes, expected: np.ndarray) -> bool:
    """Decode a committed numerics 0/1 (float) file: exact pixels (True), or the one refusal a
    machine that computes floats differently must give (False). Float files decode only on the
    kind of CPU that wrote them, so a fixture can hold this machine to no more than: never wrong
    pixels, never another error."""
    try:
        pixels = igc.decompress(data)
    except igc.IgcError as exc:
        assert all(part in str(exc) for part in MACHINE_REFUSAL), str(exc)
        return False
    assert np.array_equal(pixels, expected)
    return True


def astronaut_crop() -> np.ndarray:
    """The pixels of tests/data/igc-rgb16-v3.igc (made with igc 0.1.0 and the first default,
    igc-rgb16, before igc-rgb16-v2 replaced it): a 24×20 crop, two edge tiles."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[100:120, 200:224])


def test_catalog_matches_the_shipped_weights():
    from igc.models.imagegpt import ImageGPTModel

    models = shipped_models()
    assert {m.id for m in models} == set(packaged_models())
    assert [m.id for m in models if m.default] == [DEFAULT_MODEL] == [models[0].id]
    for m in models:
        loaded = ImageGPTModel(m.id)
        assert (loaded.fingerprint, loaded.parameters) == (m.fingerprint, m.parameters), m.id
        assert m.file_bytes == (m.folder / "model.safetensors").stat().st_size


def test_the_default_model_is_v3_and_headers_name_it_by_code():
    """igc-rgb16-v3 (2026-12-05) is the default; its header code is 0x84, the table's fifth."""
    image = astronaut_crop()[:5, :6]
    data = igc.compress(image)
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint) == ("igc-rgb16-v3", "c62b30186c39f0c8")
    assert container.SHIPPED_MODEL_IDS.index("igc-rgb16-v3") == 4
    assert np.array_equal(igc.decompress(data), image)


def test_a_file_of_the_first_v3_default_decodes_exactly():
    """tests/data/model-igc-rgb16-v3-numerics2.igc: the astronaut crop as the default wrote it
    on the day igc-rgb16-v3 became the default (numerics 2, so on any machine)."""
    data = (FIXTURES / "model-igc-rgb16-v3-numerics2.igc").read_bytes()
    assert container.unpack(data)[0].model_id == "igc-rgb16-v3"
    assert np.array_equal(igc.decompress(data), astronaut_crop())


def test_a_file_of_the_previous_default_still_decodes():
    """The fixtures of igc-rgb16-v2 (numerics 2, every context mode) are held by their own
    tests; here a fresh v2 file decodes beside the new default, found by its header's code."""
    image = astronaut_crop()[:7, :9]
    data = igc.compress(image, model="igc-rgb16-v2")
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint) == ("igc-rgb16-v2", "c862dd8d8d6cbab8")
    assert np.array_equal(igc.decompress(data), image)


def test_a_file_of_the_old_default_is_exact_or_refused_by_machine(tmp_path):
    """tests/data/igc-rgb16-v3.igc is numerics 1 (floats), written on an AMD EPYC: it decodes
    exactly there; elsewhere the checksum refuses it with the machine message, through the API
    and the CLI alike, and no PNG is written."""
    data = (FIXTURES / "igc-rgb16-v3.igc").read_bytes()
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint, header.version, header.numerics) == (
        "igc-rgb16", "c31ec73887b527b1", 3, 1)
    exact = decode_float_fixture(data, astronaut_crop())
    out = invoke("decompress", FIXTURES / "igc-rgb16-v3.igc", "-o", tmp_path / "old.png")
    if exact:
        assert out.exit_code == 0, out.output
        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(tmp_path / "old.png")), astronaut_crop())
    else:
        assert out.exit_code == 1 and all(p in out.output for p in MACHINE_REFUSAL), out.output
        assert out.output.startswith("igc: error: ") and "Traceback" not in out.output
        assert not (tmp_path / "old.png").exists()


@pytest.mark.slow  # a fresh process loading torch
def test_the_old_file_with_other_cpu_kernels_is_exact_or_refused(tmp_path):
    """Decoding the float fixture in a new process held to AVX2 kernels and one thread: the
    same pixels or the machine refusal, never other pixels and never a crash."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2",
               ATEN_CPU_CAPABILITY="avx2", OMP_NUM_THREADS="1")
    out = tmp_path / "old.npy"
    code = ("import sys, numpy as np, igc\n"
            "try:\n"
            "    np.save(sys.argv[2], igc.decompress(open(sys.argv[1], 'rb').read()))\n"
            "except igc.IgcError as exc:\n"
            "    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "igc-rgb16-v3.igc"),
                          str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    if out.exists():
        assert np.array_equal(np.load(out), astronaut_crop())
    else:
        assert all(p in run.stdout for p in MACHINE_REFUSAL), run.stdout + run.stderr


def test_float_files_round_trip_on_the_machine_that_runs_the_tests(tmp_path):
    """Numerics 1 is machine-bound, so its round trip is tested here, coded and decoded on
    this machine (a numerics-1 file of the larger model's kind: a non-quick-GELU model)."""
    import json as _json

    from igc.models.imagegpt import ImageGPTModel

    folder = tmp_path / "gelu"
    shutil.copytree(shipped_models()[0].folder, folder)
    config = _json.loads((folder / "config.json").read_text())
    config["activation_function"] = "gelu_new"
    (folder / "config.json").write_text(_json.dumps(config))
    assert ImageGPTModel(str(folder)).numerics == 1
    image = astronaut_crop()[:9, :13]
    data = igc.compress(image, model=str(folder))
    assert container.unpack(data)[0].numerics == 1
    assert np.array_equal(igc.decompress(data, model=str(folder)), image)


def test_a_file_coded_with_a_copy_of_shipped_weights_finds_them(tmp_path):
    """The fingerprint decides, not the name: a renamed copy of the default codes files that
    decode on a machine that has only the shipped weights."""
    copy = tmp_path / "my-renamed-copy"
    shutil.copytree(shipped_models()[0].folder, copy)
    image = astronaut_crop()[:4, :4]
    data = igc.compress(image, model=str(copy))
    assert container.unpack(data)[0].model_id == "my-renamed-copy"
    shutil.rmtree(copy)
    assert np.array_equal(igc.decompress(data), image)


@pytest.fixture
def coded_with_local_model(tmp_path_factory, tiny_model):
    """A file coded with a model folder that is not shipped, and where that folder lives."""
    image = np.random.default_rng(3).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    home = tmp_path_factory.mktemp("model-home")
    folder = home / "tiny-local"
    shutil.copytree(tiny_model, folder)
    data = igc.compress(image, model=str(folder))
    return image, data, home, folder


def test_model_path_finds_a_local_model(coded_with_local_model, monkeypatch, tmp_path):
    image, data, home, folder = coded_with_local_model
    monkeypatch.delenv("IGC_MODEL_PATH", raising=False)
    with pytest.raises(igc.ModelError, match=r"'tiny-local' \(fingerprint [0-9a-f]{16}\).*"
                                             r"IGC_MODEL_PATH is not set"):
        igc.decompress(data)
    empty = tmp_path / "empty"
    empty.mkdir()
    for entry in (str(home), str(folder), f"{empty}:/no/such/dir:{home}"):
        monkeypatch.setenv("IGC_MODEL_PATH", entry)
        assert np.array_equal(igc.decompress(data), image), entry
    # renamed: found by its fingerprint
    renamed = home / "renamed"
    folder.rename(renamed)
    monkeypatch.setenv("IGC_MODEL_PATH", str(home))
    assert np.array_equal(igc.decompress(data), image)


def test_model_path_ignores_a_namesake_with_other_weights(coded_with_local_model, monkeypatch,
                                                          tmp_path, other_tiny_model):
    _, data, _, _ = coded_with_local_model
    impostor_home = tmp_path / "elsewhere"
    shutil.copytree(other_tiny_model, impostor_home / "tiny-local")
    (impostor_home / "broken").mkdir()
    (impostor_home / "broken" / "config.json").write_text("{}")  # unreadable: skipped
    monkeypatch.setenv("IGC_MODEL_PATH", str(impostor_home))
    with pytest.raises(igc.ModelError, match=f"IGC_MODEL_PATH={impostor_home}"):
        igc.decompress(data)
    out = invoke("decompress", _write(tmp_path, data), "-o", tmp_path / "x.png",
                 env={"IGC_MODEL_PATH": str(impostor_home)})
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert out.exit_code != 0 and len(lines) == 1 and lines[0].startswith("igc: error:")
    assert "needs model 'tiny-local'" in lines[0] and "--model" in lines[0]


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "coded.igc"
    path.write_bytes(data)
    return path


def test_models_command_lists_shipped_models():
    out = invoke("models", "--json")
    assert out.exit_code == 0, out.output
    listed = json.loads(out.stdout)
    assert [m["id"] for m in listed["models"]] == [m.id for m in shipped_models()]
    assert listed["models"][0] == igc.list_models()[0]
    first = listed["models"][0]
    assert first["default"] and first["id"] == DEFAULT_MODEL
    assert first["parameters"] == 956_160 and first["file_bytes"] == 3_828_952
    assert {m["fingerprint"] for m in listed["models"]} >= {"c862dd8d8d6cbab8", "c31ec73887b527b1"}
    out = invoke("models", env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    for m in listed["models"]:
        assert m["fingerprint"] in out.output and f"{m['parameters']:,}" in out.output
        assert f"{m['id']}: {m['purpose'][:20]}" in out.output
    assert max(map(len, out.output.splitlines())) <= 80
    assert "(default)" in out.output and "IGC_MODEL_PATH" in out.output


def test_shipped_model_ids_take_one_header_byte():
    """Version 4 stores a shipped model's id as a one-byte code; every shipped model has one,
    and codes outside the table are refused rather than misread."""
    import dataclasses

    from igc.core.container import SHIPPED_MODEL_IDS

    assert {m.id for m in shipped_models()} <= set(SHIPPED_MODEL_IDS)
    data = igc.compress(astronaut_crop()[:4, :4])
    header, payload = container.unpack(data)
    assert header.model_id == DEFAULT_MODEL
    local = container.pack(dataclasses.replace(header, model_id="x" * len(DEFAULT_MODEL)), payload)
    assert len(local) - len(data) == len(DEFAULT_MODEL)  # length byte + text vs one code byte
    at = data.index(bytes.fromhex(header.fingerprint)) + 8  # the id follows the fingerprint
    assert data[at] == 0x80 + SHIPPED_MODEL_IDS.index(DEFAULT_MODEL)
    forged = bytearray(data)
    forged[at] = 0x80 + len(SHIPPED_MODEL_IDS)
    with pytest.raises(igc.FormatError, match="unknown model id code"):
        container.read_header(recompute_header_crc(bytes(forged)))


def test_model_path_finds_a_palette_model(tmp_path, monkeypatch):
    """A palette file records the weights' fingerprint combined with its clusters'; the lookup
    must compute the same to find the folder."""
    from helpers import make_palette_model

    home = tmp_path / "palettes"
    folder = make_palette_model(home / "pal")
    image = np.random.default_rng(4).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    data = igc.compress(image, model=folder)
    monkeypatch.setenv("IGC_MODEL_PATH", str(home))
    assert np.array_equal(igc.decompress(data), image)


def test_a_model_id_no_file_could_record_is_refused_before_coding(tmp_path, tiny_model):
    """A folder name with a tab would be written into the header, and every reader refuses a
    non-printable id: refused up front, so no unreadable file is ever written."""
    odd = tmp_path / "tab\there"
    shutil.copytree(tiny_model, odd)
    with pytest.raises(igc.UsageError, match=r"non-printable characters.*rename the model"):
        igc.compress(np.zeros((4, 4, 3), np.uint8), model=str(odd))


# -- the optional larger model (issue 18) -----------------------------------------------------

LARGER = "igc-rgb16-w256"
LARGER_V2 = "igc-rgb16-w256-v2"  # the same architecture trained 4 more minutes (2026-12-04)


def test_the_larger_model_is_listed_and_never_the_default():
    out = invoke("models", "--json")
    assert out.exit_code == 0, out.output
    listed = {m["id"]: m for m in json.loads(out.stdout)["models"]}
    larger = listed[LARGER]
    assert not larger["default"] and DEFAULT_MODEL != LARGER
    assert (larger["parameters"], larger["fingerprint"]) == (6_642_176, "1eb7fb01d4945761")
    assert larger["file_bytes"] == 26_577_112
    second = listed[LARGER_V2]  # stored as float16: half the bytes, the same parameters
    assert not second["default"]
    assert (second["parameters"], second["fingerprint"]) == (6_642_176, "9fa2c4a833074d54")
    assert second["file_bytes"] == 13_292_680
    assert [m for m in listed.values() if m["default"]] == [listed[DEFAULT_MODEL]]


@pytest.mark.parametrize("name, fingerprint, code", [(LARGER, "1eb7fb01d4945761", 0x82),
                                                     (LARGER_V2, "9fa2c4a833074d54", 0x83)])
def test_the_larger_model_codes_through_the_cli_and_decodes_without_model(tmp_path, name,
                                                                          fingerprint, code):
    """--model igc-rgb16-w256 writes a file whose header names the model by its one-byte code
    (0x82; 0x83 for igc-rgb16-w256-v2), and decompress finds the weights by the fingerprint
    alone. An 8×8 image: one tile."""
    from PIL import Image

    from igc.core.container import SHIPPED_MODEL_IDS

    image = astronaut_crop()[:8, :8]
    Image.fromarray(image).save(tmp_path / "a.png")
    out = invoke("compress", tmp_path / "a.png", "-o", tmp_path / "a.igc", "--model", name)
    assert out.exit_code == 0, out.output
    data = (tmp_path / "a.igc").read_bytes()
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint) == (name, fingerprint)
    at = data.index(bytes.fromhex(header.fingerprint)) + 8  # the id follows the fingerprint
    assert 0x80 + SHIPPED_MODEL_IDS.index(name) == code and data[at] == code
    out = invoke("decompress", tmp_path / "a.igc", "-o", tmp_path / "b.png")
    assert out.exit_code == 0, out.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), image)


def test_a_file_of_the_larger_model_is_exact_or_refused_by_machine():
    """tests/data/igc-rgb16-w256-v4.igc (159 bytes) was coded with igc-rgb16-w256 when it was
    shipped: astronaut_crop()[:8, :8], numerics 1 on an AMD EPYC. Its weights keep being found;
    the pixels are exact on that kind of CPU and refused with the machine message elsewhere."""
    data = (FIXTURES / "igc-rgb16-w256-v4.igc").read_bytes()
    header, _ = container.unpack(data)
    assert (header.model_id, header.fingerprint, header.version, header.numerics) == (
        LARGER, "1eb7fb01d4945761", 4, 1)
    decode_float_fixture(data, astronaut_crop()[:8, :8])
