"""Format version 5: the context mode and the plugins' distributions in the layout byte.

igc's own files spend no byte on either (the bits live in the layout byte that version 4 had), a
context mode this igc does not know is refused when the header is read, and version 1-4 files
keep decoding (their fixtures are tested elsewhere)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import igc
from igc.cli.app import app
from igc.core import container
from igc.errors import FormatError

FIXTURE = Path(__file__).parent / "data" / "igc-rgb16-v2-v5.igc"
runner = CliRunner()


def astronaut_crop() -> np.ndarray:
    """The pixels of the fixture: a 17×23 crop, so tiles of 16 leave edge tiles both ways."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[100:117, 200:223])


def _header(**changes) -> container.Header:
    h = container.Header(17, 23, 16, "igc-rgb16-v2", "c862dd8d8d6cbab8", 7, b"\x01\x02", 3, 256)
    for k, v in changes.items():
        setattr(h, k, v)
    return h


def test_the_v5_fixture_decodes_on_any_machine():
    """Numerics 2, so exact on every CPU (the float fixtures are held to less, test_models)."""
    data = FIXTURE.read_bytes()
    header, _ = container.unpack(data)
    assert (header.version, header.numerics, header.context, header.distributions) == (
        5, 2, 0, {})
    assert np.array_equal(igc.decompress(data), astronaut_crop())


def test_igc_writes_version_5_with_no_extra_byte_for_its_own_pieces():
    data = igc.compress(astronaut_crop()[:4, :5])
    header, payload = container.unpack(data)
    assert header.version == container.VERSION == 5
    assert data[4] & 0xEE == 0  # layout: no distribution flag, context mode 0
    v4 = container.pack(_header(**{**vars(header), "version": 4}), payload)
    assert len(v4) == len(data)


@pytest.mark.parametrize("dists", [{}, {"model": "igc-xyz"}, {"tokenizer": "a.b_c-d"},
                                   {"tokenizer": "t1", "coder": "c2", "model": "m3"}])
def test_distributions_round_trip(dists):
    header, payload = container.unpack(container.pack(_header(distributions=dists), b"xyz"))
    assert header.distributions == dists and payload == b"xyz"


def _with_layout_bits(bits: int) -> bytes:
    from helpers import recompute_header_crc

    data = bytearray(container.pack(_header(), b"xyz"))
    data[4] |= bits
    return recompute_header_crc(bytes(data))


@pytest.mark.parametrize("mode", range(5, 8))
def test_an_unknown_context_mode_is_refused_in_one_line(mode, tmp_path):
    data = _with_layout_bits(mode << 5)
    with pytest.raises(FormatError, match=f"context mode {mode}, which this igc does not know"):
        container.unpack(data)
    (tmp_path / "a.igc").write_bytes(data)
    for command in (["decompress", tmp_path / "a.igc", "-o", tmp_path / "a.png"],
                    ["info", tmp_path / "a.igc"]):
        out = runner.invoke(app, [str(a) for a in command])
        assert out.exit_code != 0
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("igc: error: "), out.output
        assert f"context mode {mode}" in lines[0]
    assert not (tmp_path / "a.png").exists()


def test_a_distribution_name_pip_would_not_take_is_refused():
    """The name may end up in a `pip install` hint, so only a packaging name is read."""
    data = container.pack(_header(distributions={"model": "ok"}), b"xyz")
    bad = data.replace(b"\x02ok", b"\x02;x")
    from helpers import recompute_header_crc

    with pytest.raises(FormatError, match="bad model distribution name"):
        container.unpack(recompute_header_crc(bad))
    assert container.recordable_distribution("evil; rm -rf") is None


def test_a_version_4_header_keeps_its_layout_rules():
    """Bits 1-3 and 5-7 of a version-4 layout byte were never written: still refused there."""
    data = bytearray(container.pack(_header(version=4), b"xyz"))
    data[4] |= 0x02
    from helpers import recompute_header_crc

    with pytest.raises(FormatError, match="unknown layout flags"):
        container.unpack(recompute_header_crc(bytes(data)))


def test_info_names_the_context_mode():
    out = runner.invoke(app, ["info", str(FIXTURE)])
    assert out.exit_code == 0, out.output
    assert "mode 0: tiles coded alone" in out.output
