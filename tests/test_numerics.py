"""igc/core/numerics.py is the one table of numerics: the docs, the CLI, the container and the
engines read it, and it agrees with the arithmetic that computes each row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from igc.core import container
from igc.core.numerics import FUSED, INTEGER, MAX_NUMERICS, REGISTRY, TORCH, name_of, regroupable

DOCS = Path(__file__).parent.parent / "docs"


def test_the_format_doc_has_one_row_per_numerics_of_the_registry():
    text = (DOCS / "format.md").read_text()
    section = text[text.index("## Numerics"):]
    section = section[: section.index("\n## ", 1)]
    rows = [int(n) for n in re.findall(r"^\| (\d+) \|", section, flags=re.M)]
    assert rows == sorted(REGISTRY)


def test_rows_are_what_their_numbers_say():
    assert [TORCH.number, FUSED.number, INTEGER.number] == [0, 1, 2]
    assert all(number == row.number for number, row in REGISTRY.items())
    assert (regroupable(2), regroupable(1), regroupable(0), regroupable(200)) == (
        True, False, False, False)
    assert (name_of(2), name_of(200)) == ("integer", "plugin")
    assert container.MAX_NUMERICS == MAX_NUMERICS


def test_the_arithmetic_reads_its_constants_from_the_registry():
    """The integer tables sum to the registry's 2**24, which is the range coder's precision;
    the engines and the float kernels carry the registry's names and numbers."""
    pytest.importorskip("numba")
    from igc.coders.range import RangeCoder
    from igc.engines import engines, integer, kernels, runtime

    assert integer.TOTAL_BITS == INTEGER.frequency_bits == RangeCoder.precision
    used = [integer.NUMERICS, kernels.NUMERICS, engines.ENGINES, engines.DEFAULT_ENGINE,
            runtime.NUMERICS]
    assert used == [INTEGER.number, FUSED.number, INTEGER.engines, INTEGER.default_engine,
                    (TORCH.number, FUSED.number)]


@pytest.mark.parametrize("number", [0, 1, 2, 37])
def test_igc_info_explains_every_numerics(number):
    from igc.cli.info import describe

    d = {"height": 2, "width": 3, "channels": 3, "residual": False, "tokenizer": "subpixel",
         "file_bytes": 90, "header_bytes": 60, "payload_length": 30, "bits_per_subpixel": 40.0,
         "model_id": "m", "model_plugin": "p", "fingerprint": "0" * 16, "order": "interleaved",
         "tile": 16, "coder": "range", "precision": 24, "batch": 1, "lane": 1,
         "numerics": number, "checksum": "00000000", "region_checks": "00", "version": 4}
    stepping = dict(describe(d))["stepping"]
    want = REGISTRY[number].explanation if number in REGISTRY else "the model plugin's own"
    assert f"numerics {number} ({want})" in stepping
