"""The benchmark over a group of ranks, resumable from a row log.

`bench_group` is what every rank runs, whoever started it: `torchrun ... -m igc bench` on one
or many machines, `--workers N` on this one (`bench_sharded` spawns the ranks), or one process
alone (with `--log` or a progress bar). Every rank loads the same images and makes the same
compressors; rank 0 checks that they agree, opens the `--log` file (igc/benchmark/rowlog.py) and
says which rows it already holds. The images with anything left to code are sharded over the
ranks (contiguous shards); each rank streams every finished row to rank 0, which appends it to
the log at once and moves the one progress bar. At the end rank 0 gathers the rows and builds
the result from the reused and the new ones in the images' and compressors' order, with the
summary recomputed over all of them, so it reports exactly what one process would over the same
images (timings aside); the other ranks return None.

The model codec is CPU-bound and single-stream per image, which is why the images, not the
tokens, are what is spread.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from igc.benchmark import distributed
from igc.benchmark.distributed import Group, Stopped
from igc.benchmark.environment import environment
from igc.benchmark.progress import RunBar
from igc.benchmark.rowlog import RowLog, image_hash, model_of, record, row_of, run_options
from igc.benchmark.run import BenchResult, as_loaded, available_of, run_one, summarise
from igc.core.protocols import Described
from igc.core.types import LoadedImage
from igc.errors import IgcError, PeerLost, UsageError


def shard(items: list, rank: int, world: int) -> list:
    """Contiguous shards, sizes differing by at most one."""
    base, extra = divmod(len(items), world)
    start = rank * base + min(rank, extra)
    return items[start : start + base + (1 if rank < extra else 0)]


def merge(parts: Sequence[BenchResult], names: Sequence[str], extra_env: dict | None = None,
          ) -> BenchResult:
    """One BenchResult from shards in rank order: rows and images concatenated, summary
    recomputed over all rows (averaging per-shard summaries would weight shards wrongly)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        raise UsageError("no shard produced a result")
    rows = [row for p in parts for row in p.results]
    images = [info for p in parts for info in p.images]
    unavailable: dict[str, str] = {}
    for p in parts:
        unavailable.update(p.unavailable)
    present = [n for n in names if any(r.compressor == n for r in rows)]
    env = dict(parts[0].environment)
    env.update(extra_env or {})
    return BenchResult(rows, summarise(rows, present), env, images, unavailable)


def _image_info(item: LoadedImage) -> dict:
    return {"image": item.name, "source": item.source, "height": int(item.pixels.shape[0]),
            "width": int(item.pixels.shape[1]), "note": item.note, **item.meta}


def _disagreement(views: list[dict]) -> str | None:
    """Why the ranks cannot run one benchmark together (None: they agree)."""
    first = views[0]
    for rank, view in enumerate(views[1:], 1):
        for key, what in (("images", "images (names and pixels)"), ("names", "compressors"),
                          ("options", "options"), ("models", "models")):
            if view[key] != first[key]:
                return (f"rank {rank} has other {what} than rank 0: every node must run the same "
                        "command on the same files")
    return None


def bench_group(group: Group, images: Sequence[Any], compressors: Sequence[Any], *,
                verify: bool = True, estimate: bool = False, seed: int | None = None,
                preprocessing: str = "none", made_with: dict | None = None,
                unavailable: dict[str, str] | None = None, log: str | Path | None = None,
                show_progress: bool = False, note: Callable[[str], None] | None = None,
                progress: Callable[[str, str], None] | None = None) -> BenchResult | None:
    """Every rank's part of one benchmark (see the module's docstring): the result on rank 0,
    None elsewhere. `note(text)` receives rank 0's notes (reused rows, a torn log line)."""
    began = time.perf_counter()
    loaded = as_loaded(images)
    if not loaded:
        raise UsageError("no images to benchmark")
    made = list(compressors)
    names = [c.name for c in made]
    options = run_options({"verify": verify, "estimate": estimate,
                           "preprocessing": preprocessing}, made_with or {})
    models = {c.name: model_of(c) for c in made if model_of(c)["model_fingerprint"]}
    hashes = [image_hash(item.pixels) for item in loaded]
    view = {"images": [(i.name, h) for i, h in zip(loaded, hashes, strict=True)],
            "names": names, "options": options, "models": models}
    views = group.all_gather(view)

    rowlog: RowLog | None = None
    plan: dict = {}
    if group.rank == 0:
        try:
            problem = _disagreement(views)
            if problem:
                raise UsageError(problem)
            if log is not None:
                rowlog = RowLog(Path(log), options, models, note=note)
            plan = {"reused": sorted(rowlog.matching(hashes, names)) if rowlog else []}
        except IgcError as exc:
            group.broadcast({"error": str(exc), "exit_code": exc.exit_code})
            raise
    plan = group.broadcast(plan)
    if "error" in plan:
        raise Stopped(plan["error"], exit_code=plan["exit_code"])
    reused = {tuple(key) for key in plan["reused"]}
    todo = [i for i, h in enumerate(hashes) if any((h, n) not in reused for n in names)]
    mine = shard(todo, group.rank, group.world)
    if rowlog is not None and reused and note:
        note(f"--log {rowlog.path}: reusing {len(reused)} of {len(loaded) * len(names)} rows; "
             f"coding {len(todo)} of {len(loaded)} images")

    subpixels = [int(item.pixels.size) for item in loaded]
    bar = RunBar(len(loaded), sum(subpixels), done_images=len(loaded) - len(todo),
                 done_subpixels=sum(subpixels) - sum(subpixels[i] for i in todo),
                 enabled=show_progress and group.rank == 0)

    def handle(rank: int, message: dict) -> None:  # rank 0, any thread
        if message["kind"] == "row" and rowlog is not None:
            rowlog.append(message["row"])
        elif message["kind"] == "image":
            bar.advance(message["subpixels"])

    rows: list[tuple[int, Any]] = []
    try:
        with bar, distributed.terminated_as_interrupt():
            group.start(handle)
            for i in mine:
                item = loaded[i]
                for comp in made:
                    if (hashes[i], comp.name) in reused:
                        continue
                    if progress:
                        progress(item.name, comp.name)
                    row = run_one(comp, item, verify=verify, estimate=estimate)
                    rows.append((i, row))
                    group.send({"kind": "row", "row": record(row, hashes[i], options,
                                                              model_of(comp))})
                group.send({"kind": "image", "subpixels": subpixels[i]})
            parts = group.finish(rows)
    except (KeyboardInterrupt, PeerLost) as exc:
        group.drain()  # what the other ranks finished before the end, into the log
        lost = group.interrupted() if isinstance(exc, KeyboardInterrupt) else None
        if lost is not None:
            raise lost from None
        raise
    finally:
        if rowlog is not None:
            rowlog.close()
    if parts is None:
        return None

    coded = {(i, row.compressor): row for part in parts for i, row in part}
    logged = {} if not reused else {key: row_of(rowlog.rows[key]) for key in reused}
    out = []
    for i, item in enumerate(loaded):
        for name in names:
            row = coded.get((i, name))
            if row is None:
                row = copy.deepcopy(logged[(hashes[i], name)])
                row.image = item.name
            out.append(row)
    env = environment(seed=seed, preprocessing=preprocessing,
                      models={c.name: c.model_info for c in made if isinstance(c, Described)},
                      verify=verify, estimate=estimate, images_available=available_of(images),
                      wall_seconds=time.perf_counter() - began)
    if group.world > 1:
        env.update(workers=group.world, distributed=group.describe())
    if rowlog is not None:
        env["log"] = {"path": str(rowlog.path), "rows_reused": len(out) - len(coded),
                      "rows_coded": len(coded)}
    return BenchResult(out, summarise(out, names), env, [_image_info(i) for i in loaded],
                       dict(unavailable or {}))


def _bench_rank(images: list, names: list, make: Callable, made_with: dict, threads: int,
                options: dict) -> BenchResult | None:
    """One spawned rank of `bench_sharded`: make the compressors, join the group, bench."""
    import torch

    torch.set_num_threads(threads)
    compressors, unavailable = make(names, **made_with)
    with distributed.join() as group:
        return bench_group(group, images, compressors, made_with=made_with,
                           unavailable=unavailable, **options)


def bench_sharded(images: Sequence[Any], names: Sequence[str], *, workers: int, make: Callable,
                  made_with: dict | None = None, threads: int | None = None,
                  engine: str = "auto", **options: Any) -> BenchResult:
    """`bench_group` on `workers` processes of this machine (`distributed.spawn`), each on a
    contiguous shard of the images.

    Each process builds its own compressors (loading its own model copy) with
    `make(names, **made_with) -> (compressors, unavailable)`, a module-level function so that it
    reaches the spawned processes (igc/api.py passes igc's registry lookup); `options` go to
    `bench_group` (verify, estimate, seed, preprocessing, log, show_progress; a `note` callable
    must be picklable). `threads`: torch threads per worker (default: the machine's cores split
    evenly). `engine`: "auto" or "torch", both torch.distributed directly (accelerate is no longer
    needed).
    """
    import os

    if engine not in ("auto", "torch"):
        raise UsageError(f"unknown engine {engine!r}: auto or torch (torch.distributed)")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if names and not isinstance(names[0], str):
        raise UsageError("bench_sharded takes compressor names, not instances")
    loaded = as_loaded(images)
    if not loaded:
        raise UsageError("no images to benchmark")
    workers = min(workers, len(loaded))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    began = time.perf_counter()
    result = distributed.spawn(workers, _bench_rank, (loaded, list(names), make, made_with or {},
                                                      threads, options), threads=threads)
    result.environment.update(images_available=available_of(images), workers=workers,
                              threads_per_worker=threads,
                              wall_seconds=time.perf_counter() - began)
    return result
