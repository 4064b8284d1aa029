#!/usr/bin/env python
"""Long fuzz run of the `.igc` decoder: a seeded random loop over mutations of real files.

Each case mutates a file of the corpus (truncation, byte flips, flips with the header CRC
recomputed, splices of two files, inserted or deleted bytes, header fields rewritten and
repacked, payload replaced) or is random bytes, and decodes it; the tiny model's cases alternate
between one thread and two, where a file cut into strips (format 6) decodes them in forked
children. The `fields` mutation rewrites one to three header fields *by meaning*, with values
chosen where the decoder's checks are: batch and lane around the tile count and far beyond it,
tile sides, numerics, model ids (shipped, hub ids, paths), model plugin, tokenizer and coder
names (the `context` model plugin and `ans` coder of examples/igc-context when installed),
residual flag, format version, context mode, rows per strip and precision. A case must end in
pixels equal to an original image or in an `igc.IgcError` other than `WorkerStopped` (a worker
process that died); anything else (another exception type, wrong pixels) is a failure: it is
printed, its input saved under --crash-dir, and the exit status is 1.

    OMP_NUM_THREADS=1 python scripts/fuzz_decoder.py --cases 100000

The corpus is coded with the `uniform` model (fast; and the `context` model with both coders
where installed) and, every --tiny-every cases, with a tiny random ImageGPT (4×4 tiles, numerics
2) built in a temporary folder (needs torch and transformers; pass --tiny-model DIR to use an
existing one, or --tiny-model none to skip it). The run sets IGC_MAX_PIXELS=4096 and
IGC_MAX_DECODE_MEMORY=64M, so mutated sizes and batches reach the memory budget, and reports the
peak RSS of the process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

LIMIT = 4096  # IGC_MAX_PIXELS for the run: a mutated header cannot ask for a large decode
MEMORY = "64M"  # IGC_MAX_DECODE_MEMORY for the run: batches and sizes reach the budget's check


def build_tiny_model(folder: Path) -> str:
    """A randomly initialised 4×4-tile ImageGPT saved as safetensors."""
    import torch
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    torch.manual_seed(0)
    config = ImageGPTConfig(vocab_size=257, n_positions=48, n_embd=32, n_layer=2, n_head=4)
    model = ImageGPTForCausalImageModeling(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20)
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder)


def make_corpus(tiny_model: str | None):
    """[(image, file bytes, model to decode with)]: uniform files, then tiny-model files."""
    from igc import get_compressor

    rng = np.random.default_rng(0)
    uniform, tiny = [], []
    specs = [((5, 7), "interleaved", None, None), ((17, 3), "interleaved", 1, None),
             ((1, 1), "interleaved", None, None), ((3, 33), "channel", None, None),
             ((16, 16), "interleaved", None, None), ((20, 18), "interleaved", 2, None),
             ((9, 7), "interleaved", None, 4)]  # format 6: three strips
    for size, order, batch, rows in specs:
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        comp = get_compressor("uniform", order=order, batch=batch, strip_rows=rows)
        uniform.append((image, comp.compress(image), None))
    from igc import list_compressors

    if "context" in list_compressors():  # examples/igc-context: a plugin model and coder
        for size, coder in [((9, 7), "range"), ((5, 18), "ans")]:
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            comp = get_compressor("context", coder=coder)
            uniform.append((image, comp.compress(image), None))
    if tiny_model:
        for size, order, batch, context, rows in [
                ((6, 5), "interleaved", 3, None, None),
                ((4, 9), "channel", None, None, None),
                ((9, 10), "interleaved", 2, 1, None),  # adapted
                ((11, 13), "interleaved", 4, 2, None),  # overlapping
                ((13, 11), "interleaved", 4, 3, 0),  # with the predictor, one strip
                ((23, 14), "interleaved", 3, 3, 8),  # format 6: three strips
                ((10, 21), "interleaved", 2, 2, 4)]:  # format 6: strips of mode 2
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            comp = get_compressor("imagegpt", model=tiny_model, order=order, batch=batch,
                                  context=context, strip_rows=rows)
            tiny.append((image, comp.compress(image), tiny_model))
        from igc.models import tuning

        # mode 4, its block holding changes (a small image's tuning moves none: forced here)
        comp = get_compressor("imagegpt", model=tiny_model, context=4)
        n = sum(tuning.sizes(comp.codec.model))
        tune, tuning.tune = tuning.tune, lambda *_, **__: (
            rng.integers(-2, 3, n) * (rng.random(n) < 0.2))
        try:
            for size, rows in [((12, 9), None), ((17, 10), 6)]:  # one strip; format 6
                image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                comp = get_compressor("imagegpt", model=tiny_model, context=4, strip_rows=rows)
                tiny.append((image, comp.compress(image), tiny_model))
        finally:
            tuning.tune = tune
    return uniform, tiny


def recompute_header_crc(data: bytes) -> bytes:
    """`data` with its header CRC recomputed, where the header still parses that far: a mutated
    header then gets past the CRC and reaches the field checks (tests use it too, through
    tests/helpers.py)."""
    import zlib

    from igc.core import container
    from igc.errors import FormatError

    r = container._Reader(data)
    try:
        version, layout = r.take(5)[3:5]
        flags = layout & 0x0F if version >= 5 else 0  # version 5: distribution names follow

        def name(kind: str) -> None:
            container._read_name(r, kind)
            if flags & container.DISTRIBUTION_FLAGS[kind]:
                container._read_name(r, kind)

        r.varint(), r.varint()  # height, width
        if version >= 4:
            r.take(2)  # channels, tile
            name("tokenizer"), name("coder")
            r.byte()  # precision
        else:
            r.take(4)  # channels, tile, coder, precision
        r.varint()  # batch
        for _ in range(min(version, 3) - 1):  # lane (v2), numerics (v3)
            r.varint()
        if version >= 4:
            name("model")
        r.take(8)  # fingerprint
        container._read_model_id(r, version)
        r.take(4)  # checksum
        r.take(r.byte())  # region checks
        r.varint()  # payload length
    except FormatError:
        return data
    end = r.pos
    if end + 2 > len(data):
        return data
    return data[:end] + (zlib.crc32(data[:end]) & 0xFFFF).to_bytes(2, "little") + data[end + 2:]


recrc = recompute_header_crc


def random_header_field(rng: np.random.Generator, header):
    field = rng.choice(["height", "width", "tile", "batch", "order", "model_id", "checksum",
                        "region_checks", "channels", "precision", "fingerprint"])
    value = {
        "height": lambda: int(rng.integers(1, 80)), "width": lambda: int(rng.integers(1, 80)),
        "tile": lambda: int(rng.integers(0, 256)), "batch": lambda: int(rng.integers(0, 1 << 40)),
        "order": lambda: str(rng.choice(["interleaved", "channel"])),
        "model_id": lambda: rng.choice(["", "uniform", "openai/imagegpt-small", ".", "/",
                                        "x" * 70, "igc-rgb16", "\u00e9" * 40, "a b"]),
        "checksum": lambda: int(rng.integers(0, 2**32)),
        "region_checks": lambda: rng.bytes(int(rng.integers(0, 12))),
        "channels": lambda: int(rng.integers(0, 256)),
        "precision": lambda: int(rng.integers(0, 256)),
        "fingerprint": lambda: rng.bytes(8).hex(),
    }[str(field)]()
    return replace(header, **{str(field): value})


def field_by_meaning(rng: np.random.Generator, header) -> tuple[str, object]:
    """(field, value): a header field and a value where the decoder's checks are."""
    from igc.core import container

    tiles = -(-header.height // max(header.tile, 1)) * -(-header.width // max(header.tile, 1))
    near = [0, 1, 2, 3, tiles - 1, tiles, tiles + 1, 16, 17, 256, 4096, 4097, 1 << 20, 1 << 40,
            (1 << 63) - 1]
    choices = {
        "batch": lambda: max(0, int(rng.choice(near))),
        "lane": lambda: max(0, int(rng.choice([*near, header.batch, header.batch + 1]))),
        "tile": lambda: int(rng.choice([0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 64, 255])),
        "numerics": lambda: int(rng.choice([0, 1, 2, 3, 4, 255, 256, 1 << 40])),
        "model_id": lambda: str(rng.choice(
            ["", "uniform", "context", "igc-rgb16", "igc-rgb16-v2", "igc-rgb16-w256",
             "openai/imagegpt-small", "someone/model", ".", "..", "/", "/dev/zero", "~x/y",
             "x" * 64, "tiny-imagegpt", "a b", "é" * 32])),
        "model_plugin": lambda: str(rng.choice(["imagegpt", "uniform", "context", "nosuch",
                                                "x" * 63])),
        "tokenizer": lambda: str(rng.choice(["subpixel", "palette", "nosuch"])),
        "coder": lambda: str(rng.choice(["range", "ans", "nosuch"])),
        "precision": lambda: int(rng.choice([0, 1, 8, 12, 16, 23, 24, 25, 31, 32, 64, 255])),
        "order": lambda: str(rng.choice(list(container.ORDERS))),
        "residual": lambda: not header.residual,
        "version": lambda: int(rng.choice([1, 2, 3, 4, 5, 6, 7])),
        "context": lambda: int(rng.choice([0, 1, 2, 3, 4, 5, 7])),  # version 5; 0-4 are known
        "strip_rows": lambda: int(rng.choice(  # version 6
            [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, header.height - 1, header.height,
             header.height + 1, 1 << 20, 1 << 40])),
        "distributions": lambda: {str(k): str(rng.choice(["igc-context", "igc-xyz", "a", "x" * 63]))
                                  for k in container.PLUGIN_KINDS if rng.random() < 0.5},
        "height": lambda: int(rng.choice([1, 2, header.height + 1, 63, 64, 65, 4096, 4097])),
        "width": lambda: int(rng.choice([1, 2, header.width + 1, 63, 64, 65, 4096, 4097])),
        "channels": lambda: int(rng.choice([0, 1, 4, 255])),
        "fingerprint": lambda: rng.bytes(8).hex(),
        "checksum": lambda: int(rng.integers(0, 2**32)),
        "region_checks": lambda: rng.bytes(int(rng.integers(0, 12))),
    }
    field = str(rng.choice(sorted(choices)))
    return field, choices[field]()


def mutate_fields(rng: np.random.Generator, header, payload: bytes) -> bytes:
    """The file with one to three header fields rewritten by meaning (CRC valid)."""
    from igc.core import container

    for _ in range(int(rng.integers(1, 4))):
        field, value = field_by_meaning(rng, header)
        header = replace(header, **{field: value})
    try:
        return container.pack(header, payload)
    except (KeyError, ValueError, OverflowError):  # not representable in this version: refuse
        return b"IGC"  # the parser's first check then refuses it (a case like any other)


def mutate(rng: np.random.Generator, data: bytes, other: bytes) -> tuple[str, bytes]:
    """(kind, mutated bytes)."""
    from igc.core import container

    kind = str(rng.choice(["truncate", "flip", "flip+crc", "splice", "splice+crc", "insert",
                           "delete", "header", "fields", "fields", "payload", "random"]))
    n = len(data)
    if kind == "truncate":
        return kind, data[: int(rng.integers(0, n))]
    if kind.startswith("flip"):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            # half the flips land in the header, where the parser lives
            pos = int(rng.integers(0, min(n, 64))) if rng.random() < 0.5 else int(rng.integers(0, n))
            buf[pos] ^= int(rng.integers(1, 256))
        return kind, recrc(bytes(buf)) if kind.endswith("crc") else bytes(buf)
    if kind.startswith("splice"):
        out = data[: int(rng.integers(0, n + 1))] + other[int(rng.integers(0, len(other) + 1)):]
        return kind, recrc(out) if kind.endswith("crc") else out
    if kind == "insert":
        pos = int(rng.integers(0, n + 1))
        return kind, data[:pos] + rng.bytes(int(rng.integers(1, 9))) + data[pos:]
    if kind == "delete":
        pos = int(rng.integers(0, n))
        return kind, data[:pos] + data[pos + int(rng.integers(1, 9)):]
    header, payload = container.unpack(data)
    if kind == "fields":
        return kind, mutate_fields(rng, header, payload)
    if kind == "header":
        return kind, container.pack(random_header_field(rng, header), payload)
    if kind == "payload":
        choice = int(rng.integers(0, 3))
        if choice == 0:
            payload = payload[: int(rng.integers(0, len(payload) + 1))]
        elif choice == 1:
            payload = payload + rng.bytes(int(rng.integers(1, 9)))
        else:
            payload = rng.bytes(int(rng.integers(0, len(payload) + 8)))
        return kind, container.pack(header, payload)
    prefix = b"IGC\x01" if rng.random() < 0.5 else b""
    return kind, prefix + rng.bytes(int(rng.integers(0, 200)))


def run_case(data: bytes, originals, model: str | None) -> str:
    """'exact', an IgcError class name, or raises AssertionError/other exceptions."""
    from igc import decompress
    from igc.errors import IgcError, WorkerStopped

    try:
        out = decompress(data, model)
    except IgcError as exc:
        if not str(exc).strip():
            raise AssertionError(f"{type(exc).__name__} without a message") from None
        if isinstance(exc, WorkerStopped):  # a child's crash, told in one line: still a crash
            raise
        return type(exc).__name__
    if not any(out.shape == o.shape and np.array_equal(out, o) for o in originals):
        raise AssertionError("wrong pixels returned")
    return "exact"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="number of cases to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny-model", default="auto",
                        help="ImageGPT folder for the slow cases; 'auto' builds one, 'none' skips")
    parser.add_argument("--tiny-every", type=int, default=20,
                        help="one case in N uses a tiny-model file")
    parser.add_argument("--crash-dir", default="fuzz-crashes", help="where failing inputs go")
    parser.add_argument("--report-every", type=int, default=10_000)
    args = parser.parse_args(argv)

    os.environ["IGC_MAX_PIXELS"] = str(LIMIT)
    os.environ["IGC_MAX_DECODE_MEMORY"] = MEMORY
    os.environ["HF_HUB_OFFLINE"] = "1"  # mutated model ids must not reach the network
    tmp = None
    tiny = None if args.tiny_model == "none" else args.tiny_model
    if tiny == "auto":
        tmp = tempfile.TemporaryDirectory(prefix="igc-fuzz-")
        tiny = build_tiny_model(Path(tmp.name) / "tiny-imagegpt")
    uniform, tiny_files = make_corpus(tiny)
    import igc.api as api
    from igc.codec.lanes import thread_budget

    # restored at the end (a test calls main() in its process), where torch holds the count
    threads_before = thread_budget() if "torch" in sys.modules else None
    try:
        return _cases(args, uniform, tiny_files)
    finally:
        if threads_before is not None:
            api.set_threads(threads_before)
        if tmp is not None:
            tmp.cleanup()


def _cases(args, uniform, tiny_files) -> int:
    import igc.api as api

    every = [img for img, _, _ in uniform + tiny_files]
    rng = np.random.default_rng(args.seed)
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures = 0
    start = time.time()
    for case in range(1, args.cases + 1):
        pool = tiny_files if tiny_files and case % args.tiny_every == 0 else uniform
        image, data, model = pool[int(rng.integers(0, len(pool)))]
        other = pool[int(rng.integers(0, len(pool)))][1]
        kind, bad = mutate(rng, data, other)
        kinds[kind] += 1
        originals = every if kind.startswith("splice") else [image]
        if model is not None:  # one thread or two: strips on one, in forked children on two
            api.set_threads(1 + case // args.tiny_every % 2)
        try:
            outcome = run_case(bad, originals, model)
        except Exception as exc:
            failures += 1
            outcome = "wrong pixels" if isinstance(exc, AssertionError) else "crash"
            Path(args.crash_dir).mkdir(exist_ok=True)
            saved = Path(args.crash_dir) / f"case{case}-{kind}.igc"
            saved.write_bytes(bad)
            print(f"FAILURE case {case} ({kind}, model {model or 'uniform'}): "
                  f"{type(exc).__name__}: {exc} -> {saved}", file=sys.stderr)
            traceback.print_exc()
        counts[outcome] += 1
        if args.report_every and case % args.report_every == 0:
            print(f"... {case} cases, {time.time() - start:.0f} s", flush=True)
    elapsed = time.time() - start
    errors = sum(v for k, v in counts.items() if k not in ("exact", "crash", "wrong pixels"))
    print(f"cases {args.cases} (seed {args.seed}, {len(uniform)} uniform + {len(tiny_files)} "
          f"tiny-model files, {elapsed:.0f} s, {args.cases / max(elapsed, 1e-9):.0f}/s)")
    print(f"decoded exactly {counts['exact']}, clean errors {errors}, crashes {counts['crash']}, "
          f"wrong pixels {counts['wrong pixels']}")
    print("errors by type: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())
                                         if k not in ("exact", "crash", "wrong pixels")))
    print("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS {peak / 1024:.0f} MiB")
    if failures:
        print(f"FAILED: {failures} case(s), inputs in {args.crash_dir}/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
