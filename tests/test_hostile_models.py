"""Hostile model folders and training runs: config fields and weights validated at load (one line
naming the field or weight), fingerprints, pickles never unpickled (weights or checkpoints),
config files that are deep, huge or not regular files, the network only when asked, and training
settings or interruptions that must not lose a run."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import error_line, file_fingerprint, igc_process, invoke, rgb, train_args

import igc
from igc.core import container
from igc.errors import ModelError, ModelMismatchError

PIXELS = np.random.default_rng(11).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def variant(tiny_model: str, folder: Path, config: dict | None = None, drop=(),
            weights=None) -> Path:
    """A copy of the tiny model with config fields replaced (None: removed) or dropped, and
    `weights(tensors)` applied to its tensors (a dict it may change)."""
    from safetensors.torch import load_file, save_file

    folder.mkdir()
    settings = json.loads((Path(tiny_model) / "config.json").read_text())
    for key, value in (config or {}).items():
        settings[key] = value
    for key in drop:
        settings.pop(key)
    (folder / "config.json").write_text(json.dumps(settings))
    if weights is None:
        shutil.copy(Path(tiny_model) / "model.safetensors", folder)
    else:
        tensors = load_file(Path(tiny_model) / "model.safetensors")
        weights(tensors)
        save_file(tensors, folder / "model.safetensors")
    return folder


def refusal(folder: Path, tmp_path: Path) -> str:
    """The error line of `igc compress` with this model folder (nothing written)."""
    image = tmp_path / "in.png"
    if not image.exists():
        from PIL import Image

        Image.fromarray(PIXELS).save(image)
    out = tmp_path / "out.igc"
    line = error_line(invoke("compress", image, "-o", out, "--model", folder))
    assert not out.exists()
    return line.removeprefix("igc: error: ")


CONFIG_ERRORS = {  # tiny model: n_embd 32, n_head 4, n_layer 2, n_positions 48, vocab 257
    "n_embd as text": ({"n_embd": "32"}, "'n_embd' must be a positive integer, got '32'"),
    "n_head zero": ({"n_head": 0}, "'n_head' must be a positive integer, got 0"),
    "n_head not dividing": ({"n_head": 5}, "'n_embd' 32 is not a multiple of 'n_head' 5"),
    "n_layer bool": ({"n_layer": True}, "'n_layer' must be a positive integer, got True"),
    "n_layer float": ({"n_layer": 2.0}, "'n_layer' must be a positive integer, got 2.0"),
    "vocab_size one": ({"vocab_size": 1}, "'vocab_size' must be an integer of at least 2, got 1"),
    "n_inner zero": ({"n_inner": 0}, "'n_inner' must be null or a positive integer, got 0"),
    "epsilon negative": ({"layer_norm_epsilon": -1e-5},
                         "'layer_norm_epsilon' must be a positive finite number, got -1e-05"),
    "epsilon text": ({"layer_norm_epsilon": "1e-5"},
                     "'layer_norm_epsilon' must be a positive finite number, got '1e-5'"),
    "epsilon nan": ({"layer_norm_epsilon": math.nan},
                    "'layer_norm_epsilon' must be a positive finite number, got nan"),
    "activation": ({"activation_function": "swish"},
                   "'activation_function' must be one of gelu, gelu_new, gelu_pytorch_tanh, "
                   "quick_gelu, relu, got 'swish'"),
    "scale flag": ({"scale_attn_weights": "yes"},
                   "'scale_attn_weights' must be true or false, got 'yes'"),
    "unsupported flag": ({"reorder_and_upcast_attn": True},
                         "'reorder_and_upcast_attn' must be false (igc's runtime does not "
                         "implement it), got True"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_bad_config_field_is_named(tiny_model, tmp_path, case):
    fields, message = CONFIG_ERRORS[case]
    folder = variant(tiny_model, tmp_path / "model", fields)
    assert refusal(folder, tmp_path) == f"{folder}/config.json: {message}"


def test_missing_config_field_and_non_object_config(tiny_model, tmp_path):
    folder = variant(tiny_model, tmp_path / "model", drop=["n_positions"])
    assert refusal(folder, tmp_path) == f"{folder}/config.json lacks 'n_positions'"
    (folder / "config.json").write_text("[1, 2]")
    assert refusal(folder, tmp_path) == f"{folder}/config.json must hold a JSON object, got list"


def _set(key, value):
    def change(tensors):
        tensors[key] = value(tensors[key])

    return change


def _nan_at(key, value):
    def change(tensors):
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[3] = value

    return change


WEIGHT_ERRORS = {
    "n_positions huge": (
        {"n_positions": 10**9}, None,
        "{folder}/config.json: 'n_positions' is 1000000000 but the position embedding "
        "'wpe.weight' has 48 rows"),
    "vocab mismatch": (
        {"vocab_size": 513}, None,
        "{folder}: weight 'wte.weight' has shape (257, 32); the config (vocab_size 513, n_embd "
        "32) needs (513, 32)"),
    "n_inner mismatch": (
        {"n_inner": 64}, None,
        "{folder}: weight 'h.0.mlp.c_fc.weight' has shape (32, 128); the config (n_embd 32, "
        "n_inner 64) needs (32, 64)"),
    "short bias": (
        None, _set("transformer.h.1.attn.c_attn.bias", lambda t: t[:90].clone()),
        "{folder}: weight 'h.1.attn.c_attn.bias' has shape (90,); the config (n_embd 32) "
        "needs (96,)"),
    "layer beyond n_layer": (
        {"n_layer": 1}, None,
        "{folder}: the weights hold layer h.1 but config.json's 'n_layer' is 1"),
    "layer missing": (
        {"n_layer": 3}, None,
        "model weights lack 'h.2.ln_1.weight': not a complete ImageGPT checkpoint"),
    "nan weight": (
        None, _nan_at("transformer.h.1.attn.c_proj.weight", math.nan),
        "{folder}: weight 'h.1.attn.c_proj.weight' holds NaN or infinite values"),
    "inf weight": (
        None, _nan_at("lm_head.weight", -math.inf),
        "{folder}: weight 'lm_head.weight' holds NaN or infinite values"),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_ERRORS))
def test_bad_weights_are_named(tiny_model, tmp_path, case):
    fields, weights, message = WEIGHT_ERRORS[case]
    folder = variant(tiny_model, tmp_path / "model", fields, weights=weights)
    assert refusal(folder, tmp_path) == message.format(folder=folder)


def test_the_hf_backend_checks_the_same(tiny_model, tmp_path):
    from igc.models.hf_backend import HFImageGPTModel

    folder = variant(tiny_model, tmp_path / "model", {"n_positions": 10**9})
    with pytest.raises(ModelError, match="'n_positions' is 1000000000 but the position "):
        HFImageGPTModel(str(folder))


def test_activation_names_match_the_runtime():
    from igc.engines.runtime import ACTIVATIONS
    from igc.models.checks import ACTIVATION_NAMES

    assert sorted(ACTIVATIONS) == list(ACTIVATION_NAMES)


def test_shipped_fingerprints_are_unchanged():
    """Files record these (tests/data/igc-rgb16-v3.igc: c31ec73887b527b1); they must not move."""
    from igc.models.imagegpt import ImageGPTModel, fingerprint_of, load_checked, resolve

    expected = {"igc-rgb16-v2": "c862dd8d8d6cbab8", "igc-rgb16": "c31ec73887b527b1",
                "igc-rgb16-w256": "1eb7fb01d4945761", "igc-rgb16-w256-v2": "9fa2c4a833074d54",
                "igc-rgb16-v3": "c62b30186c39f0c8"}
    pixel = {"igc-rgb16-pixel": "def9149fa043a180",  # igc's own loader only (load_pixel)
             "igc-rgb16-pixel-v2": "3d4dd529c0bb0e66"}
    for name, fingerprint in pixel.items():
        assert ImageGPTModel(name).fingerprint == fingerprint
    for name, fingerprint in expected.items():
        config, tensors = load_checked(resolve(name)[1])
        assert fingerprint_of(tensors, config) == fingerprint_of(tensors) == fingerprint, name
        assert ImageGPTModel(name).fingerprint == fingerprint
    catalog = json.loads((Path(igc.__file__).parent / "weights" / "catalog.json").read_text())
    assert {k: v["fingerprint"] for k, v in catalog.items()} == expected | pixel


def test_config_at_the_defaults_keeps_the_fingerprint(tiny_model, tmp_path):
    from igc.models.imagegpt import ImageGPTModel

    base = ImageGPTModel(tiny_model).fingerprint
    spelled = variant(tiny_model, tmp_path / "spelled", {"layer_norm_epsilon": 0.00001,
                                                         "activation_function": "quick_gelu",
                                                         "scale_attn_weights": True})
    implied = variant(tiny_model, tmp_path / "implied",
                      drop=["layer_norm_epsilon", "activation_function", "scale_attn_weights"])
    assert ImageGPTModel(str(spelled)).fingerprint == base
    assert ImageGPTModel(str(implied)).fingerprint == base


@pytest.mark.parametrize("fields", [{"layer_norm_epsilon": 1e-6}, {"activation_function": "gelu"},
                                    {"scale_attn_weights": False}],
                         ids=["epsilon", "activation", "scale"])
def test_same_weights_other_computation_is_another_model(tiny_model, tmp_path, fields):
    from igc.models.imagegpt import ImageGPTModel

    other = variant(tiny_model, tmp_path / "other", fields)
    model = ImageGPTModel(str(other))
    assert model.fingerprint != ImageGPTModel(tiny_model).fingerprint
    data = igc.compress(PIXELS, model=tiny_model)
    with pytest.raises(ModelMismatchError, match=f"but model '{other}' .*fingerprint "
                                                 f"{model.fingerprint}"):
        igc.decompress(data, model=str(other))
    np.testing.assert_array_equal(igc.decompress(igc.compress(PIXELS, model=str(other)),
                                                 model=str(other)), PIXELS)


class _Planted:
    """Unpickling this creates the file `marker`: what a planted checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_resume_never_runs_code_from_a_planted_checkpoint(tmp_path):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"model": _Planted(marker), "step": 1}, run / "checkpoint.pt")
    line = error_line(invoke(*train_args(tmp_path), "--out", run, "--resume"))
    assert "is not a checkpoint igc can read safely" in line
    assert not marker.exists()
    # a plain pickle (not torch's zip format) is refused the same way
    import pickle

    (run / "checkpoint.pt").write_bytes(pickle.dumps({"model": _Planted(marker)}, protocol=2))
    assert "read safely" in error_line(invoke(*train_args(tmp_path), "--out", run, "--resume"))
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_missing_its_fields(tmp_path):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "step": "x"}, run / "checkpoint.pt")
    line = error_line(invoke(*train_args(tmp_path), "--out", run, "--resume"))
    assert "is not an igc checkpoint" in line


def test_a_saved_checkpoint_resumes_through_the_safe_loader(tmp_path):
    args = train_args(tmp_path)
    run = tmp_path / "run"
    assert invoke(*args, "--out", run).exit_code == 0
    from igc.training.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    args[args.index("--steps") + 1] = "3"
    result = invoke(*args, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 3


def _igc_file(tmp_path: Path, tiny_model: str) -> Path:
    path = tmp_path / "tiny.igc"
    path.write_bytes(igc.compress(PIXELS, model=tiny_model))
    return path


def test_deeply_nested_config_is_one_line_everywhere(tiny_model, tmp_path):
    from igc.errors import IgcError

    folder = variant(tiny_model, tmp_path / "deep")
    (folder / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    expected = f"igc: error: cannot read {folder}/config.json: JSON nested too deeply"
    with pytest.raises(IgcError, match="nested too deeply"):
        igc.compress(PIXELS, model=str(folder))
    assert f"igc: error: {refusal(folder, tmp_path)}" == expected
    decoded = _igc_file(tmp_path, tiny_model)
    # on IGC_MODEL_PATH the folder is skipped as unreadable: the file's model is not found
    line = error_line(invoke("decompress", decoded, "-o", tmp_path / "out.png",
                             env={"IGC_MODEL_PATH": str(tmp_path)}))
    assert "this file needs model" in line
    args = train_args(tmp_path, architecture=False)
    assert error_line(invoke(*args, "--init-from", folder, "--out", tmp_path / "r")) == expected


def test_huge_config_is_refused_without_reading_it(tiny_model, tmp_path):

    folder = variant(tiny_model, tmp_path / "huge")
    with open(folder / "config.json", "r+b") as fh:  # sparse: 1.5 GB that take no disk
        fh.truncate(1_500_000_000)
    tracemalloc.start()
    try:
        assert refusal(folder, tmp_path) == (f"{folder}/config.json is 1,500,000,000 bytes; igc "
                                             "reads JSON files of at most 1,048,576 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


@contextmanager
def _watchdog(fifo: Path, seconds: float = 30.0):
    """Unblock a reader stuck on `fifo` after `seconds` (by opening it for writing and closing
    it), so that a regression fails the test instead of hanging the run. Yields a list that
    holds True if the watchdog had to step in."""
    import threading

    done, fired = threading.Event(), []

    def watch():
        if done.wait(seconds):
            return
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                fired.append(True)
            except OSError:  # no reader yet
                pass
            done.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_fifo_in_a_model_folder_never_blocks(tiny_model, tmp_path, name):

    (tmp_path / "models").mkdir()
    folder = variant(tiny_model, tmp_path / "models" / "fifo")
    (folder / name).unlink()
    os.mkfifo(folder / name)
    link = tmp_path / "link"  # the same folder through symbolic links
    link.mkdir()
    for item in folder.iterdir():
        (link / item.name).symlink_to(item)
    expected = f"{folder}/{name} is a FIFO (named pipe), not a regular file"
    decoded = _igc_file(tmp_path, tiny_model)
    with _watchdog(folder / name) as fired:
        assert refusal(folder, tmp_path) == expected
        assert refusal(link, tmp_path) == (f"{link}/{name} is a FIFO (named pipe), not a "
                                           "regular file")
        # on IGC_MODEL_PATH the folder is passed over; --init-from refuses it
        line = error_line(invoke("decompress", decoded, "-o", tmp_path / "out.png",
                                 env={"IGC_MODEL_PATH": str(tmp_path / "models")}))
        assert "this file needs model" in line
        line = error_line(invoke(*train_args(tmp_path, architecture=False), "--init-from",
                                 folder, "--out", tmp_path / "r"))
        assert line == f"igc: error: {expected}"
    assert not fired


def test_a_header_naming_a_hub_model_downloads_nothing_unless_asked(tiny_model, tmp_path,
                                                                   monkeypatch):
    import dataclasses

    import huggingface_hub


    calls = []

    def fake_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs.get("local_files_only")))
        raise OSError("offline in this test")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    data = igc.compress(PIXELS, model=tiny_model)
    header, end = container.read_header(data)
    data = container.pack(dataclasses.replace(header, model_id="someone/imagegpt-huge"),
                          data[end:])
    with pytest.raises(ModelError, match="igc downloads a file's model only when asked: pass "
                                         "--allow-download, or --model someone/imagegpt-huge"):
        igc.decompress(data)
    assert calls == [("someone/imagegpt-huge", True)]  # the local cache, never the network
    path = tmp_path / "hub.igc"
    path.write_bytes(data)
    line = error_line(invoke("decompress", path, "-o", tmp_path / "out.png"))
    assert "pass --allow-download" in line
    assert all(local for _, local in calls)
    calls.clear()
    line = error_line(invoke("decompress", path, "-o", tmp_path / "out.png", "--allow-download"))
    assert "cannot get model 'someone/imagegpt-huge'" in line
    assert calls == [("someone/imagegpt-huge", False)]  # asked for: the hub may be reached
    calls.clear()
    with pytest.raises(ModelError, match="cannot get model"):
        igc.decompress(data, model="someone/imagegpt-huge")  # named by the user: fetched
    assert calls == [("someone/imagegpt-huge", False)]
    assert igc.decompress(data, model=tiny_model).shape == PIXELS.shape


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--lr", "nan", "--lr must be a positive finite number, got nan"),
    ("--lr", "inf", "--lr must be a positive finite number, got inf"),
    ("--lr", "-0.1", "--lr must be a positive finite number, got -0.1"),
    ("--lr", "0", "--lr must be a positive finite number, got 0.0"),
    ("--minutes", "nan", "--minutes must be positive, got nan"),
    ("--eval-minutes", "inf", "--eval-minutes must be a positive finite number, got inf"),
])
def test_impossible_training_settings_are_usage_errors(tmp_path, option, value, message):
    result = invoke(*train_args(tmp_path), "--out", tmp_path / "run", option, value)
    assert error_line(result) == f"igc: error: {message}"
    assert result.exit_code == 2
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_stops_with_one_line_and_logs_no_nan(tmp_path):
    args = train_args(tmp_path)
    args[args.index("--steps") + 1] = "12"
    result = invoke(*args, "--out", tmp_path / "run", "--lr", "1e30")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("igc: error: training diverged: the "
                                                     "training loss is nan at step "), result.output
    log = tmp_path / "run" / "log.jsonl"
    for line in log.read_text().splitlines() if log.exists() else []:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in log.jsonl"))
    assert not (tmp_path / "run" / "best").exists() or json.loads(
        (tmp_path / "run" / "best" / "training.json").read_text())["step"] == 0


def test_ctrl_c_during_training_saves_a_checkpoint_that_resumes(tmp_path):
    import signal
    import time

    from igc.training.checkpoint import load_checkpoint

    args = [str(a) for a in train_args(tmp_path)]
    args[args.index("--steps") + 1] = "1000000"
    args.append("--no-compile")  # a long budget would compile the step first (minutes on a CPU)
    run = tmp_path / "run"
    proc = igc_process(*args, "--out", run, env={"OMP_NUM_THREADS": "1"}, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "log.jsonl").exists():  # the first validation is at step 0
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(1.0)  # a few steps
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    errors = [line for line in err.splitlines() if line.startswith("igc:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("igc: error: interrupted at step "), err
    assert errors[0].endswith(f"; checkpoint saved in {run / 'checkpoint.pt'}: --resume "
                              "continues"), err
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert step == int(errors[0].split("step ")[1].split(";")[0])
    args[args.index("--steps") + 1] = str(step + 2)
    result = invoke(*args, "--out", run, "--resume")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step + 2


@pytest.fixture
def model_folders(tmp_path, tiny_model):
    """Broken model folders next to each other: name -> path."""
    from safetensors.torch import load_file, save_file

    root = tmp_path / "models"
    root.mkdir()
    partial = root / "partial"
    partial.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", partial)
    tensors = load_file(Path(tiny_model) / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if "h.1." not in k}, partial / "model.safetensors")
    gpt2 = root / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text('{"model_type": "gpt2", "n_embd": 32}')
    shutil.copy(Path(tiny_model) / "model.safetensors", gpt2)
    no_weights = root / "no-weights"
    no_weights.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", no_weights)
    return {"partial": partial, "gpt2": gpt2, "no-weights": no_weights,
            "missing": root / "missing"}


MODEL_ERRORS = {
    "missing": "/models/missing' not found: no such folder",
    "partial": "lack 'h.1.ln_1.weight'",
    "gpt2": "holds a 'gpt2' model; igc needs an ImageGPT checkpoint",
    "no-weights": "has no .safetensors weights",
}


@pytest.mark.parametrize("kind", sorted(MODEL_ERRORS))
def test_bad_model_folders(model_folders, small_png, tmp_path, kind):
    out = tmp_path / "out.igc"
    line = error_line(invoke("compress", small_png, "-o", out, "--model", model_folders[kind]))
    assert MODEL_ERRORS[kind] in line
    assert not out.exists()


def test_bad_model_for_decompress_and_bench(model_folders, tmp_path, photo_dir):
    src = tmp_path / "x.igc"
    src.write_bytes(igc.compress(rgb(), model="uniform"))
    line = error_line(invoke("decompress", src, "-o", tmp_path / "x.png",
                             "--model", model_folders["partial"]))
    assert MODEL_ERRORS["partial"] in line
    line = error_line(invoke("bench", "-c", "imagegpt", "--images", photo_dir,
                             "--model", model_folders["gpt2"]))
    assert MODEL_ERRORS["gpt2"] in line


class _Trap:
    """Unpickling this creates the file `path`: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_pickle_weights_are_never_unpickled(tmp_path, tiny_model, small_png):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(Path(tiny_model) / "config.json", folder)
    marker = tmp_path / "pickle-was-loaded"
    for name in ("pytorch_model.bin", "model.pt"):
        (folder / name).write_bytes(pickle.dumps(_Trap(marker)))
    line = error_line(invoke("compress", small_png, "-o", tmp_path / "o.igc", "--model", folder))
    assert "pickle weights are refused because loading them can run code" in line
    assert "model.pt" in line and "pytorch_model.bin" in line
    assert not marker.exists()


def test_model_mismatch_repeats_the_model_given(tmp_path, tiny_model, other_tiny_model,
                                                monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(other_tiny_model).parent)
    given = f"./{Path(other_tiny_model).name}"
    path = tmp_path / "tiny.igc"
    path.write_bytes(igc.compress(rgb(4, 5, 7), model=tiny_model))
    line = error_line(invoke("decompress", path, "-o", tmp_path / "x.png", "--model", given))
    other = igc.get_compressor("imagegpt", model=other_tiny_model).model
    assert line == (
        f"igc: error: {path}: file was encoded with model {Path(tiny_model).name!r} (fingerprint "
        f"{file_fingerprint(path)}) but model {given!r} (model {other.name!r}, fingerprint "
        f"{other.fingerprint}) was given; decode without --model (igc finds the file's model by "
        f"its fingerprint) or with --model naming the folder that holds "
        f"{Path(tiny_model).name!r}")


def test_hostile_folders_on_the_model_path_are_passed_over(tiny_model, tmp_path):
    """IGC_MODEL_PATH holding a safetensors file whose header lies about its size, weights that
    are /dev/zero (never opened: not a regular file), a symbolic-link loop and 80 folders of
    other models: each is passed over, and the file's own model is found after them."""
    import struct

    data = igc.compress(PIXELS, model=tiny_model)
    home = tmp_path / "models"
    home.mkdir()
    liar = variant(tiny_model, home / "liar")
    (liar / "model.safetensors").write_bytes(struct.pack("<Q", 10**15) + b"{}")
    zero = variant(tiny_model, home / "zero")
    (zero / "model.safetensors").unlink()
    (zero / "model.safetensors").symlink_to("/dev/zero")  # only ever stat()ed
    (home / "loop").symlink_to(home / "loop")
    (home / "loop2").mkdir()
    (home / "loop2" / "config.json").symlink_to(home / "loop2" / "config.json")
    config = (Path(tiny_model) / "config.json").read_text()
    for i in range(80):
        (home / f"m{i:02d}").mkdir()
        (home / f"m{i:02d}" / "config.json").write_text(config)  # no weights
    env = {"IGC_MODEL_PATH": str(home)}
    line = error_line(invoke("decompress", _path(tmp_path, data), "-o", tmp_path / "o.png",
                             env=env))
    assert f"nor in IGC_MODEL_PATH={home}" in line
    shutil.copytree(tiny_model, home / "zz-the-model")
    result = invoke("decompress", _path(tmp_path, data), "-o", tmp_path / "o.png", env=env)
    assert result.exit_code == 0, result.output


def _path(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "file.igc"
    path.write_bytes(data)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_resume_refuses_a_checkpoint_that_is_a_pipe(tmp_path):
    """A FIFO named checkpoint.pt blocked `igc train --resume` forever (torch.load waited for a
    writer); like a model's files, it is refused as not a regular file."""
    import contextlib
    import threading
    import time

    run = tmp_path / "run"
    run.mkdir()
    fifo = run / "checkpoint.pt"
    os.mkfifo(fifo)

    def unblock() -> None:  # should the read block again, end it: the test fails, not hangs
        time.sleep(20)
        with contextlib.suppress(OSError):  # no reader: nothing blocks
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=unblock, daemon=True).start()
    line = error_line(invoke(*train_args(tmp_path), "--out", run, "--resume"))
    assert line == (f"igc: error: --resume: {run / 'checkpoint.pt'} is a FIFO (named pipe), "
                    "not a regular file")

