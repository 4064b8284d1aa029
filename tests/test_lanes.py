"""Lanes: tiles of a batch stepped on several threads must give the floats one thread gives."""

import dataclasses

import numpy as np
import pytest

from igc import get_compressor
from igc.codec.lanes import LaneStepper, lane_pool, lane_size, split
from igc.core import container
from igc.errors import FormatError


@pytest.mark.parametrize(("tiles", "lane"), [(1, 1), (2, 1), (5, 3), (16, 8), (31, 16),
                                             (256, 16)])
def test_lane_size_gives_two_lanes_or_more_of_at_most_16(tiles, lane):
    assert lane_size(tiles) == lane
    lanes = split(tiles, lane)
    assert sum(s.stop - s.start for s in lanes) == tiles
    assert len(lanes) >= min(2, tiles)


def test_threaded_lanes_step_bit_identically_to_sequential(tiny_model):
    torch = pytest.importorskip("torch")
    from igc.models.imagegpt import ImageGPTModel

    model = ImageGPTModel(tiny_model)
    tokens = np.random.default_rng(3).integers(0, 256, (7, 20))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for threaded in (False, True):
            with lane_pool(3 if threaded else 1) as pool:
                assert (pool is not None) == threaded
                assert torch.get_num_threads() == 1  # every operation on one thread meanwhile
                stepper = LaneStepper(model, 7, 3, 20, pool)
                runs.append(np.stack([stepper.step(tokens[:, t]) for t in range(20)]))
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(runs[0], runs[1])


def test_header_records_the_lane_and_decodes_it(tiny_model, rng):
    comp = get_compressor("imagegpt", model=tiny_model, batch=5)
    comp.codec.lane = 2
    image = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)  # 12 tiles: batches 5, 5, 2
    data = comp.compress(image)
    header = container.unpack(data)[0]
    assert (header.version, header.batch, header.lane, header.numerics) == (5, 5, 2, 2)
    np.testing.assert_array_equal(get_compressor("imagegpt", model=tiny_model).decompress(data), image)


def test_version_1_files_step_the_whole_batch_as_one_lane(tiny_model, rng, monkeypatch):
    comp = get_compressor("imagegpt", model=tiny_model, batch=6)
    comp.codec.lane = 6
    image = rng.integers(0, 256, (9, 10, 3), dtype=np.uint8)
    with monkeypatch.context() as m:  # loaded models are shared: undo before the decode
        m.setattr(comp.codec.model, "numerics", 0, raising=False)  # as version 1 files
        header, payload = container.unpack(comp.compress(image))
    old = container.pack(dataclasses.replace(header, version=1), payload)
    v3 = container.pack(dataclasses.replace(header, version=3), payload)
    assert len(old) == len(v3) - 2  # no lane, no numerics
    parsed = container.unpack(old)[0]
    assert (parsed.version, parsed.lane) == (1, 6)
    np.testing.assert_array_equal(get_compressor("imagegpt", model=tiny_model).decompress(old), image)


def test_lane_larger_than_batch_is_refused(tiny_model, rng):
    comp = get_compressor("imagegpt", model=tiny_model)
    header, payload = container.unpack(comp.compress(rng.integers(0, 256, (8, 8, 3), np.uint8)))
    bad = container.pack(dataclasses.replace(header, lane=header.batch + 1), payload)
    with pytest.raises(FormatError, match=r"corrupted header.*lane"):
        get_compressor("imagegpt", model=tiny_model).decompress(bad)
