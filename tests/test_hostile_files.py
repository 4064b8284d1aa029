"""Hostile `.igc` files: headers that ask for more memory than a decode may take, crafted
fields, and the budget that bounds a decoder (docs/robustness.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import error_line, invoke

import igc
from igc.codec import memory
from igc.core import container
from igc.errors import FormatError, UsageError

DATA = Path(__file__).parent / "data"
NUMERICS2 = DATA / "igc-rgb16-v2-numerics2.igc"


def forged(path: Path, **fields) -> bytes:
    """The file at `path` with header fields replaced (payload kept, CRC valid)."""
    data = path.read_bytes()
    header, end = container.read_header(data)
    return container.pack(dataclasses.replace(header, **fields), data[end:])


# -- memory: a header cannot make a decoder reserve more than the budget --------------------


def test_header_asking_for_every_tiles_cache_at_once_is_refused_before_any_state(
        tmp_path, monkeypatch):
    from igc.models.imagegpt import ImageGPTModel

    data = forged(NUMERICS2, height=1024, width=1024, batch=4096, lane=4096)

    def no_state(*args, **kwargs):
        raise AssertionError("a model state was made for a file over the budget")

    monkeypatch.setattr(ImageGPTModel, "start", no_state)
    with pytest.raises(FormatError, match=r"1024x1024 file needs about 6\.\d\d GiB \(4096 tiles "
                                          r"stepped together.*budget of 2\.00 GiB \(set "
                                          r"IGC_MAX_DECODE_MEMORY"):
        igc.decompress(data)
    path = tmp_path / "greedy.igc"
    path.write_bytes(data)
    line = error_line(invoke("decompress", path, "-o", tmp_path / "out.png"))
    assert "more than the budget of 2.00 GiB" in line
    assert not (tmp_path / "out.png").exists()


def test_the_budget_is_configurable(monkeypatch):
    monkeypatch.setenv("IGC_MAX_DECODE_MEMORY", "1_048_576")
    assert memory.budget() == 1 << 20
    monkeypatch.setenv("IGC_MAX_DECODE_MEMORY", "1M")
    assert memory.budget() == 1 << 20
    with pytest.raises(FormatError, match=r"budget of 1\.0 MiB"):  # one tile needs 1.6 MiB
        igc.decompress(NUMERICS2.read_bytes())
    for bad in ("lots", "0", "-5", "G"):
        monkeypatch.setenv("IGC_MAX_DECODE_MEMORY", bad)
        with pytest.raises(UsageError, match="IGC_MAX_DECODE_MEMORY must be a positive"):
            memory.budget()


def test_a_huge_claimed_image_is_refused_by_its_token_layout(monkeypatch):
    """The layout too is counted: a 60-byte file cannot make the decoder lay out gigabytes."""
    monkeypatch.setenv("IGC_MAX_PIXELS", str(1 << 30))
    data = container.pack(container.Header(
        height=20000, width=20000, tile=16, model_id="uniform", fingerprint="0" * 16,
        checksum=0, region_checks=b"\0", payload_length=0, batch=256, model_plugin="uniform"),
        b"")
    with pytest.raises(FormatError, match=r"token layout 27\.94 GiB.*budget"):
        igc.decompress(data)


def _arrays(obj) -> int:
    """Bytes of the NumPy arrays and torch tensors a state holds (torch views of NumPy memory,
    the fused state's `t`, are not counted twice)."""
    import torch

    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(map(_arrays, obj))
    if dataclasses.is_dataclass(obj):
        return sum(_arrays(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != "t")
    if hasattr(obj, "__slots__"):
        return sum(_arrays(getattr(obj, k)) for k in obj.__slots__ if k != "engine")
    return 0


@pytest.mark.parametrize(("numerics", "engine"), [(0, None), (1, None), (2, "cpu"),
                                                  (2, "reference")])
def test_state_estimate_matches_what_start_allocates(tiny_model, numerics, engine):
    from igc.models.engines import using_engine
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel(tiny_model)
    for rows, length in [(3, 48), (16, 20)]:
        with using_engine(engine):
            real = _arrays(model.start(rows, length, numerics))
            estimate = model.state_bytes(rows, length, numerics)
        assert real <= estimate <= 1.25 * real + 65536, (rows, length, real, estimate)


def test_shipped_model_estimate_is_tight():
    """Within 2% for full-length tiles of the default model (what the budget is about)."""
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel("igc-rgb16-v2")
    real = _arrays(model.start(3, 768, 2))
    assert real <= model.state_bytes(3, 768, 2, engine="cpu") <= 1.02 * real


def test_encoders_write_no_file_beyond_the_budget(monkeypatch):
    """A GPU engine codes every tile of a batch at once and used to write batch = 4096 for a
    1024x1024 image; the batch is now cut so that a CPU decodes it within the budget."""
    from igc.plugins.compose import model_compressor

    codec = model_compressor("igc-rgb16-v2").codec
    monkeypatch.setattr(type(codec.model), "batched_engine", lambda self, numerics: True)
    assert codec.batch_for(4096) == 4096  # without the image's size: the GPU's batch
    batch = codec.batch_for(4096, (1024, 1024))
    assert 256 < batch < 4096
    header = container.Header(1024, 1024, 16, "igc-rgb16-v2", "0" * 16, 0, b"", 0, batch,
                              numerics=2)
    memory.check_decode(codec.model, codec.tokenizer, header, FormatError,
                        limit=memory.DEFAULT_BUDGET, engine="cpu")
    header.batch = 4096  # what it wrote before
    with pytest.raises(FormatError):
        memory.check_decode(codec.model, codec.tokenizer, header, FormatError,
                            limit=memory.DEFAULT_BUDGET, engine="cpu")


def test_default_batches_are_unchanged_for_ordinary_images():
    """Files of a Kodak-sized image keep their batch of 256 with either shipped model."""
    from igc.plugins.compose import model_compressor

    for name in ("igc-rgb16-v2", "igc-rgb16-w256"):
        codec = model_compressor(name).codec
        assert codec.batch_for(1536, (512, 768)) == 256, name


def test_an_image_whose_decode_cannot_fit_is_refused_by_the_encoder(monkeypatch):
    from igc.errors import ImageError
    from igc.plugins.compose import model_compressor

    monkeypatch.setenv("IGC_MAX_PIXELS", str(1 << 30))
    codec = model_compressor("uniform").codec
    with pytest.raises(ImageError, match="budget"):
        codec.check_memory(20000, 20000)
    codec.check_memory(2000, 2000)
