"""Hostile `.igc` files and streams: crafted headers (sizes, model ids), declared payloads, endless
and oversized standard input, and the decode memory budget that bounds what a header can ask
for (docs/robustness.md)."""

from __future__ import annotations

import dataclasses
import os
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import error_line, invoke, rgb

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
    """Bytes of the NumPy arrays and torch tensors a state holds (views, the fused state's
    torch tensors `t` and the cpu engine's `views` of its row buffers, are not counted twice)."""
    import torch

    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (list, tuple)):
        return sum(map(_arrays, obj))
    if isinstance(obj, dict):  # the cpu engine's row buffers
        return sum(map(_arrays, obj.values()))
    if dataclasses.is_dataclass(obj):
        return sum(_arrays(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                   if f.name not in ("t", "views"))
    if hasattr(obj, "__slots__"):
        return sum(_arrays(getattr(obj, k)) for k in obj.__slots__ if k != "engine")
    return 0


@pytest.mark.parametrize(("numerics", "engine"), [(0, None), (1, None), (2, "cpu"),
                                                  (2, "reference")])
def test_state_estimate_matches_what_start_allocates(tiny_model, numerics, engine):
    from igc.engines.engines import using_engine
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

    codec = model_compressor("igc-rgb16-v2", context=0).codec  # mode 1 batches small anyway
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
    """Files of a Kodak-sized image keep their batch of 256 in context mode 0 with either
    shipped model, and 32 tiles in mode 1; mode 3, the default there, steps anti-diagonals in
    batches of 8 windows as mode 2 does (measured fastest, docs/speed.md), one lane per batch."""
    from igc.plugins.compose import model_compressor

    for name in ("igc-rgb16-v2", "igc-rgb16-w256"):
        codec = model_compressor(name, context=0).codec
        assert codec.batch_for(1536, (512, 768)) == 256, name
        assert model_compressor(name, context=1).codec.batch_for(1536, (512, 768)) == 32, name
        default = model_compressor(name).codec
        assert default.context_for(1536, (512, 768)) == 3, name
        assert (default.batch_for(1536, (512, 768)), default.lane_for(1536, (512, 768))) == (8, 8)


def test_an_image_whose_decode_cannot_fit_is_refused_by_the_encoder(monkeypatch):
    from igc.errors import ImageError
    from igc.plugins.compose import model_compressor

    monkeypatch.setenv("IGC_MAX_PIXELS", str(1 << 30))
    codec = model_compressor("uniform").codec
    with pytest.raises(ImageError, match="budget"):
        codec.check_memory(20000, 20000)
    codec.check_memory(2000, 2000)


def _header(height: int, width: int, **fields) -> container.Header:
    base = dict(height=height, width=width, tile=16, model_id="uniform",
                fingerprint="0" * 16, checksum=0, region_checks=b"\0", payload_length=0,
                batch=256)
    return container.Header(**{**base, **fields})


def test_igc_header_claiming_huge_image_is_refused_before_allocating(tmp_path):
    data = container.pack(_header(100_000, 100_000), b"\0" * 8)
    with pytest.raises(FormatError):  # warm up: imports are not the allocation measured
        igc.decompress(data)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"100000×100000 = 10000000000 pixels exceeds the limit of "
                                              r"268435456 pixels \(set IGC_MAX_PIXELS"):
            igc.decompress(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    path = tmp_path / "huge.igc"
    path.write_bytes(data)
    for command in (["decompress", path, "-o", tmp_path / "out.png"], ["info", path]):
        assert "exceeds the limit of 268435456 pixels" in error_line(invoke(*command))
    assert not (tmp_path / "out.png").exists()


def test_igc_pixel_limit_is_configurable(tmp_path, monkeypatch):
    image = rgb(10, 10)
    data = igc.compress(image, model="uniform")
    monkeypatch.setenv("IGC_MAX_PIXELS", "99")
    with pytest.raises(FormatError, match="10×10 = 100 pixels exceeds the limit of 99"):
        igc.decompress(data)
    monkeypatch.setenv("IGC_MAX_PIXELS", "100")
    np.testing.assert_array_equal(igc.decompress(data), image)
    monkeypatch.setenv("IGC_MAX_PIXELS", "many")
    path = tmp_path / "x.igc"
    path.write_bytes(data)
    assert "IGC_MAX_PIXELS must be a positive integer" in error_line(invoke("info", path))


def test_long_invalid_model_id_in_a_valid_header(tmp_path):
    """Regression: a header (with a correct CRC) holding a 255-byte non-UTF-8 model id used to
    reach the model loader and end in OSError 'File name too long'. Version 3 reads a length
    byte up to 255; version 4 reads a byte >= 0x80 as a shipped model's code instead."""
    for version, message in ((3, "corrupted header: bad model id"),
                             (4, "unknown model id code 255")):
        data = bytearray(container.pack(_header(2, 2, model_id="M" * 64, version=version), b""))
        start = data.index(b"M" * 64)
        data[start - 1 : start + 64] = bytes([255]) + b"\xff" * 255
        end = len(data) - 2
        data[end:] = (zlib.crc32(bytes(data[:end])) & 0xFFFF).to_bytes(2, "little")
        with pytest.raises(FormatError, match=message):
            igc.decompress(bytes(data))
        path = tmp_path / "id.igc"
        path.write_bytes(bytes(data))
        assert message in error_line(invoke("decompress", path, "-o", tmp_path / "x.png",
                                            "--force"))


def test_model_id_naming_an_unknown_home_directory(small_png):
    data = container.pack(_header(2, 2, model_id="~niform"), b"")
    with pytest.raises(igc.IgcError):
        igc.decompress(data)
    line = error_line(invoke("compress", small_png, "--model", "~igc-no-such-user/model"))
    assert "not found" in line


def _header_file(payload: bytes, declared: int | None = None) -> bytes:
    """A 2×2 uniform-model header declaring `declared` payload bytes (default: the payload's
    length), with a valid CRC, followed by `payload`."""
    import zlib

    from igc.core import container

    header = container.Header(height=2, width=2, tile=16, model_id="uniform",
                              fingerprint="0" * 16, checksum=0, region_checks=b"\0",
                              payload_length=0, batch=256)
    head = container.pack(header, b"")[:-3]  # drop the payload length (0) and the CRC
    head += container.encode_varint(len(payload) if declared is None else declared)
    return head + (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little") + payload


def test_igc_reads_stop_at_the_declared_payload(tmp_path):
    import tracemalloc

    from igc.core import container
    from igc.errors import FormatError

    path = tmp_path / "padded.igc"
    path.write_bytes(_header_file(b"\0" * 8) + b"\0" * (32 << 20))
    message = f"corrupted file: {32 << 20} extra bytes after the payload"
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=message):
            container.read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert error_line(invoke("info", path)) == f"igc: error: {path}: {message}"
    assert error_line(invoke("decompress", path, "-o", tmp_path / "x.png")) == (
        f"igc: error: {path}: {message}")  # named, as info and several files name it


def test_igc_reads_from_an_endless_stream_are_bounded(tmp_path):
    """A FIFO fed more than igc may read: the reader stops after header + payload + 1 byte,
    so the writer gets a broken pipe long before it has written everything."""
    import threading

    fifo = tmp_path / "stream.igc"
    os.mkfifo(fifo)
    head = _header_file(b"\0" * 8)
    written = []

    def feed():
        sent = 0
        try:
            with open(fifo, "wb") as fh:
                fh.write(head)
                for _ in range(256):  # 64 MiB if nobody stops reading
                    fh.write(b"\0" * (256 << 10))
                    sent += 256 << 10
        except BrokenPipeError:
            pass
        written.append(sent)

    writer = threading.Thread(target=feed)
    writer.start()
    line = error_line(invoke("info", fifo))
    writer.join(timeout=60)
    assert line == f"igc: error: {fifo}: corrupted file: extra bytes after the payload"
    assert written and written[0] < 4 << 20


def test_declared_payload_larger_than_any_encoder_writes(tmp_path):
    path = tmp_path / "claims.igc"
    path.write_bytes(_header_file(b"", declared=10**12))
    line = error_line(invoke("info", path))
    assert line == (f"igc: error: {path}: corrupted header: a payload of 1000000000000 bytes "
                    "for 2x2 pixels (at most 320)")


@pytest.mark.parametrize(("data", "kind"), [(10**12, "int"), ("IGC", "str"), (None, "NoneType"),
                                            (np.zeros(4, np.uint8), "ndarray")])
def test_decompress_and_info_take_bytes_only(data, kind):
    for function in (igc.decompress, igc.info):
        with pytest.raises(igc.UsageError) as caught:
            function(data)
        assert str(caught.value) == (f"igc.{function.__name__} expects the bytes of an .igc "
                                     f"file, got {kind}")
    good = igc.compress(rgb(4, 5, 7), model="uniform")
    for wrapped in (bytearray(good), memoryview(good)):
        np.testing.assert_array_equal(igc.decompress(wrapped), rgb(4, 5, 7))



def test_standard_input_is_read_no_further_than_an_image_can_need(monkeypatch):
    """`igc compress -` stops reading at 4 bytes per allowed pixel plus 1 MiB, so an endless
    stream (/dev/zero) is refused instead of filling memory."""
    import io

    from igc.core.image import read_image_stream
    from igc.errors import ImageError

    monkeypatch.setenv("IGC_MAX_PIXELS", "1000")
    limit = 4 * 1000 + (1 << 20)
    stream = io.BytesIO(bytes(limit + 10_000))
    with pytest.raises(ImageError, match=f"more than {limit:,} bytes"):
        read_image_stream(stream, label="standard input")
    assert stream.tell() == limit + 1  # not a byte further
    assert read_image_stream(io.BytesIO(b"x" * limit)) == b"x" * limit


# -- what held in issue 22's attack round, kept tested ---------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (1, 5000), (5000, 1)])
def test_cpu_engine_files_decode_exactly_with_the_reference_engine_and_one_thread(tiny_model,
                                                                                  size):
    import torch

    image = rgb(*size, seed=3)
    data = igc.compress(image, model=tiny_model, engine="cpu")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for engine in ("reference", "cpu"):
            decoded = igc.decompress(data, model=tiny_model, engine=engine)
            np.testing.assert_array_equal(decoded, image)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("side", "batch"), [(16384, 256), (2048, 4096), (16384, 1 << 40)])
def test_large_claims_in_small_files_are_refused_before_allocating(side, batch, tmp_path):
    """A few hundred bytes claiming 16384² (at the pixel limit) or 2048² with every tile in one
    batch: refused by the memory budget, one line, before the layout or any state is made."""
    data = forged(NUMERICS2, height=side, width=side, batch=batch, lane=min(batch, 16))
    igc.decompress(NUMERICS2.read_bytes())  # imports and the model's load are not measured
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=rf"decoding this {side}x{side} file needs about "):
            igc.decompress(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    path = tmp_path / "claim.igc"
    path.write_bytes(data)
    assert "more than the budget" in error_line(invoke("decompress", path, "-o",
                                                       tmp_path / "out.png"))
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("command", ["compress", "decompress"])
@pytest.mark.parametrize("data", [b"", b"garbage that is no image\n" * 10])
def test_empty_or_garbage_standard_input_is_one_line(command, data, tmp_path):
    out = tmp_path / "out"
    line = error_line(invoke(command, "-", "-o", out, "--model", "uniform", input=data))
    assert "standard input" in line
    assert not out.exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_compress_leaves_no_partial_output(tmp_path, sig):
    import signal
    import time

    from helpers import igc_process
    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(rgb(160, 160, seed=4)).save(source)
    out = tmp_path / "out.igc"
    proc = igc_process("compress", source, "-o", out, stdout=None,
                       env={"OMP_NUM_THREADS": "1"})
    time.sleep(4)  # imports, the model's load, and into the coding of 100 tiles
    if proc.poll() is not None:
        pytest.skip("the compression ended before the signal (a very fast machine)")
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=60)
    assert proc.returncode in (130, -signal.SIGTERM), proc.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_the_hf_backend_estimate_bounds_its_cache(tiny_model):
    import torch

    from igc.models.hf_backend import HFImageGPTModel

    model = HFImageGPTModel(tiny_model)
    rows, length = 3, 48
    state = model.start(rows, length)
    for _ in range(length):
        model.step(state, np.zeros(rows, np.int64))
    held = sum(t.numel() * t.element_size() for layer in state.cache.layers
               for t in vars(layer).values() if torch.is_tensor(t))
    assert 0 < held <= model.state_bytes(rows, length) <= 1.5 * held + 65536
