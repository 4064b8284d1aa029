"""Property-based fuzzing of the `.igc` container parser and decoder.

Every mutated, truncated, spliced or random input must end in one of two ways: an `IgcError`
subclass (library) or a one-line `igc: error:` with a non-zero exit (CLI), or else pixels equal to
an original image. Any other exception, and any other pixels, fail the test. A longer run of the
same idea: `scripts/fuzz_decoder.py --cases N`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from helpers import fuzz_script, recompute_header_crc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from igc import decompress, get_compressor
from igc.cli.app import app
from igc.core import container
from igc.errors import IgcError, WorkerStopped

FUZZ_LIMIT = 4096  # IGC_MAX_PIXELS while fuzzing: a mutated header cannot ask for a large decode
FAST = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def fuzz_environment():
    """Small pixel limit, and no hub lookups for model ids that mutations invent."""
    saved = {k: os.environ.get(k) for k in ("IGC_MAX_PIXELS", "HF_HUB_OFFLINE")}
    os.environ.update(IGC_MAX_PIXELS=str(FUZZ_LIMIT), HF_HUB_OFFLINE="1")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# the uniform model's files: one tile, two tiles in two batches, a 1×1 image, channel-major
# order and three strips of rows (format 6): (size, order, batch, rows per strip)
UNIFORM_CASES = [((5, 7), "interleaved", None, None), ((17, 3), "interleaved", 1, None),
                 ((1, 1), "interleaved", None, None), ((3, 33), "channel", None, None),
                 ((9, 7), "interleaved", None, 4)]
LAST = len(UNIFORM_CASES) - 1


@cache
def uniform_corpus() -> tuple[tuple[np.ndarray, bytes], ...]:
    """(image, file) pairs of UNIFORM_CASES."""
    out = []
    for i, (size, order, batch, rows) in enumerate(UNIFORM_CASES):
        image = _image(*size, seed=i)
        out.append((image, get_compressor("uniform", order=order, batch=batch,
                                          strip_rows=rows).compress(image)))
    return tuple(out)


@pytest.fixture(scope="module")
def tiny_file(tiny_model):
    image = _image(6, 5, seed=9)
    return image, get_compressor("imagegpt", model=tiny_model, batch=3).compress(image)


@pytest.fixture(scope="module")
def tiny_strips_file(tiny_model):
    """Format 6: context mode 3 in three strips, which two threads decode in forked children."""
    image = _image(23, 14, seed=10)
    data = get_compressor("imagegpt", model=tiny_model, batch=3, context=3,
                          strip_rows=8).compress(image)
    assert container.unpack(data)[0].strip_rows == 8
    return image, data


def recrc(data: bytes) -> bytes:
    return recompute_header_crc(data)


def decodes_exactly_or_fails_cleanly(data: bytes, originals, model: str | None = None) -> str:
    """'exact' or 'error'; raises AssertionError on wrong pixels, lets any other exception out."""
    try:
        out = decompress(data, model)
    except IgcError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        assert not isinstance(exc, WorkerStopped), f"a worker process crashed: {exc}"
        return "error"
    assert any(out.shape == o.shape and np.array_equal(out, o) for o in originals), \
        "decoder returned pixels that are not the original image"
    return "exact"


# -- mutations --------------------------------------------------------------------------------

flips = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4)


def apply_flips(data: bytes, changes) -> bytes:
    buf = bytearray(data)
    for pos, xor in changes:
        buf[pos % len(buf)] ^= xor
    return bytes(buf)


@FAST
@given(index=st.integers(0, LAST), cut=st.integers(0, 10_000))
def test_truncated_files_fail_cleanly(index, cut):
    image, data = uniform_corpus()[index]
    cut %= len(data)
    assert decodes_exactly_or_fails_cleanly(data[:cut], [image]) == "error"


@FAST
@given(index=st.integers(0, LAST), changes=flips, fix_crc=st.booleans())
def test_flipped_bytes_fail_cleanly_or_decode_exactly(index, changes, fix_crc):
    image, data = uniform_corpus()[index]
    bad = apply_flips(data, changes)
    if fix_crc:
        bad = recrc(bad)
    decodes_exactly_or_fails_cleanly(bad, [image])


@FAST
@given(a=st.integers(0, LAST), b=st.integers(0, LAST), i=st.integers(0, 10_000),
       j=st.integers(0, 10_000), fix_crc=st.booleans())
def test_spliced_files(a, b, i, j, fix_crc):
    corpus = uniform_corpus()
    first, second = corpus[a][1], corpus[b][1]
    spliced = first[: i % (len(first) + 1)] + second[j % (len(second) + 1):]
    if fix_crc:
        spliced = recrc(spliced)
    decodes_exactly_or_fails_cleanly(spliced, [image for image, _ in corpus])


@FAST
@given(st.binary(max_size=400) | st.binary(max_size=200).map(lambda b: b"IGC\x01" + b))
def test_random_bytes_fail_cleanly(data):
    assert decodes_exactly_or_fails_cleanly(data, []) == "error"


@FAST
@given(index=st.integers(0, LAST), data=st.data())
def test_header_fields_with_valid_crc(index, data):
    """Every header field rewritten (and the file repacked with a correct CRC and length)."""
    image, original = uniform_corpus()[index]
    header, payload = container.unpack(original)
    field = data.draw(st.sampled_from(
        ["height", "width", "tile", "batch", "order", "model_id", "checksum", "region_checks",
         "channels", "precision", "fingerprint", "strip_rows", "payload"]))
    values = {
        "height": st.integers(1, 80), "width": st.integers(1, 80), "tile": st.integers(0, 255),
        "batch": st.integers(0, 1 << 40), "order": st.sampled_from(["interleaved", "channel"]),
        "model_id": st.text(max_size=70), "checksum": st.integers(0, 2**32 - 1),
        "region_checks": st.binary(max_size=12), "channels": st.integers(0, 255),
        "precision": st.integers(0, 255),
        "fingerprint": st.binary(min_size=8, max_size=8).map(bytes.hex),
        "strip_rows": st.integers(0, 40) | st.just(1 << 40),  # format 6 only; dropped by 5
    }
    if field == "payload":
        payload = data.draw(st.binary(max_size=12) | st.just(payload[: len(payload) // 2])
                            | st.just(payload + b"\0\0\0\0"))
    else:
        header = replace(header, **{field: data.draw(values[field])})
    decodes_exactly_or_fails_cleanly(container.pack(header, payload), [image])


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=flips, cut=st.integers(0, 10_000), mode=st.sampled_from(["flip", "cut", "both"]))
def test_tiny_model_files(tiny_model, tiny_file, changes, cut, mode):
    image, data = tiny_file
    bad = data
    if mode in ("flip", "both"):
        bad = recrc(apply_flips(bad, changes))
    if mode in ("cut", "both"):
        bad = bad[: cut % len(bad)]
    result = decodes_exactly_or_fails_cleanly(bad, [image], tiny_model)
    assert result == "error" or mode == "flip"


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=flips, cut=st.integers(0, 10_000), mode=st.sampled_from(["flip", "cut", "both"]),
       rows=st.sampled_from([None, 0, 1, 7, 8, 9, 22, 23, 24, 1 << 20]))
def test_strip_files_fail_cleanly_in_forked_children(tiny_model, tiny_strips_file, two_threads,
                                                    changes, cut, mode, rows):
    """A damaged format-6 file (bytes flipped, cut, or its rows per strip rewritten) decoded
    with strips in forked children gives the pixels or one clean error, never a child's crash."""
    image, data = tiny_strips_file
    bad = data
    if rows is not None:
        header, payload = container.unpack(bad)
        bad = container.pack(replace(header, strip_rows=rows), payload)
    if mode in ("flip", "both"):
        bad = recrc(apply_flips(bad, changes))
    if mode in ("cut", "both"):
        bad = bad[: cut % len(bad)]
    result = decodes_exactly_or_fails_cleanly(bad, [image], tiny_model)
    assert result == "error" or (mode == "flip" and rows in (None, 8))


@pytest.fixture(scope="module")
def tiny_tuned_file(tiny_model):
    """Context mode 4 with changes forced into its block (a small image's tuning moves none),
    and where the block ends in the file."""
    from igc.codec import tuned
    from igc.models import tuning

    image = _image(11, 13, seed=12)
    compressor = get_compressor("imagegpt", model=tiny_model, context=4)
    n = sum(tuning.sizes(compressor.codec.model))
    r = np.random.default_rng(3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tuning, "tune", lambda *_, **__: r.integers(-2, 3, n) * (r.random(n) < 0.2))
        data = compressor.compress(image)
    _, payload = container.unpack(data)
    return image, data, len(data) - len(payload), tuned.unpack_changes(payload, n)[2]


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(changes=flips, cut=st.integers(0, 10_000), mode=st.sampled_from(["flip", "cut", "both"]))
def test_a_damaged_tuned_block_fails_cleanly(tiny_model, tiny_tuned_file, changes, cut, mode):
    """Context mode 4: bytes flipped in the changes' block, or the file cut inside it, give one
    clean error or the pixels (a flip that leaves the block's meaning alone)."""
    image, data, head, block = tiny_tuned_file
    bad = data
    if mode in ("flip", "both"):
        bad = recrc(apply_flips(bad, [(head + pos % block, xor) for pos, xor in changes]))
    if mode in ("cut", "both"):
        bad = bad[: head + cut % block]
    result = decodes_exactly_or_fails_cleanly(bad, [image], tiny_model)
    assert result == "error" or mode == "flip"


# -- the command line -------------------------------------------------------------------------

runner = CliRunner()


def assert_one_line_error(result) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("igc: error:"), result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output, result.output


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, LAST), changes=flips, cut=st.integers(0, 10_000),
       fix_crc=st.booleans())
def test_cli_decompress_and_info(tmp_path_factory, index, changes, cut, fix_crc):
    from PIL import Image

    image, data = uniform_corpus()[index]
    bad = apply_flips(data, changes)[: max(cut % (len(data) + 20), 0)]
    if fix_crc:
        bad = recrc(bad)
    folder = tmp_path_factory.mktemp("cli-fuzz")
    src, out = folder / "in.igc", folder / "out.png"
    src.write_bytes(bad)
    result = runner.invoke(app, ["decompress", str(src), "-o", str(out)])
    if result.exit_code == 0:
        with Image.open(out) as im:
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), image)
    else:
        assert_one_line_error(result)
        assert not out.exists()
    assert sorted(p.name for p in folder.iterdir()) in (["in.igc"], ["in.igc", "out.png"])
    result = runner.invoke(app, ["info", str(src), "--json"])
    if result.exit_code:
        assert_one_line_error(result)


# -- the long run's driver, exercised briefly --------------------------------------------------


def test_fuzz_script_runs(tiny_model, capsys, monkeypatch):
    for name in ("IGC_MAX_PIXELS", "IGC_MAX_DECODE_MEMORY", "HF_HUB_OFFLINE"):
        # main() sets these for its run; setenv records each one's state before the test, so
        # the teardown restores it (delenv of an unset variable would record nothing)
        monkeypatch.setenv(name, os.environ.get(name, ""))
    module = fuzz_script()
    assert module.main(["--cases", "300", "--seed", "3", "--tiny-model", tiny_model,
                        "--tiny-every", "50"]) == 0
    out = capsys.readouterr().out
    assert "cases 300" in out and "crashes 0" in out and "wrong pixels 0" in out
