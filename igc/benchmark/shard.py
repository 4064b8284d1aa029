"""Benchmarking a large image set on several worker processes.

The model codec is CPU-bound and single-stream per image, so a big benchmark is spread across
processes, one shard of images each. The processes form a torch.distributed group (gloo backend,
127.0.0.1 only: nothing listens beyond this machine) that `accelerate` sets up and shards over
(`PartialState.split_between_processes`, `gather_object`); without accelerate installed the same
group is made with torch.distributed directly. Rank 0 merges the gathered rows into one
`BenchResult` and recomputes the summary over all of them, so a sharded run reports exactly what a
single-process run over the same images would (timings aside). Each process makes its own
compressors from their names with the `make` function it is given (igc's registry lives a layer
above the benchmark).

Workers are spawned, not forked: a fork of a process whose OpenMP pool has run can hang.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from igc.benchmark.run import BenchResult, as_loaded, available_of, summarise
from igc.errors import UsageError

LOCALHOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def shard(items: list, rank: int, world: int) -> list:
    """Contiguous shards, sizes differing by at most one (what accelerate's splitter does)."""
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


def _worker(local_rank: int, world: int, port: int, images: list, names: list, make: Callable,
            made_with: dict, options: dict, threads: int, out_path: str,
            engine: str = "auto") -> None:
    """Entry point of one spawned process: join the group, bench its shard, gather to rank 0."""
    os.environ.update({
        "MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(port), "RANK": str(local_rank),
        "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
        "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": str(threads),
    })
    import torch
    import torch.distributed as dist

    from igc.benchmark.run import bench

    torch.set_num_threads(threads)
    compressors, unavailable = make(names, **made_with)
    options = {**options, "unavailable": unavailable}
    PartialState = None
    if engine != "torch":
        try:
            from accelerate import PartialState
            from accelerate.utils import gather_object
        except ImportError:
            if engine == "accelerate":
                raise

    if PartialState is not None:
        state = PartialState(cpu=True, backend="gloo")
        rank = state.process_index
        with state.split_between_processes(list(range(len(images)))) as indices:
            part = [images[i] for i in indices]
        result = bench(part, compressors, **options) if part else None
        gathered = gather_object([result])
        engine = f"accelerate {_version('accelerate')} (torch.distributed, gloo)"
    else:
        dist.init_process_group("gloo", init_method=f"tcp://{LOCALHOST}:{port}",
                                rank=local_rank, world_size=world)
        rank = dist.get_rank()
        part = shard(images, rank, world)
        result = bench(part, compressors, **options) if part else None
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(result, gathered, dst=0)
        engine = "torch.distributed (gloo)"
    if rank == 0:
        merged = merge(gathered, [c.name for c in compressors],
                       {"workers": world, "threads_per_worker": threads, "distributed": engine})
        Path(out_path).write_bytes(pickle.dumps(merged))
    dist.barrier()
    dist.destroy_process_group()


def _version(dist_name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        return "?"


def bench_sharded(images: Sequence[Any], names: Sequence[str], *, workers: int, make: Callable,
                  made_with: dict | None = None, threads: int | None = None,
                  engine: str = "auto", **options: Any) -> BenchResult:
    """`igc.benchmark.run.bench` over `workers` processes, each on a contiguous shard of the images.

    Each process builds its own compressors (loading its own model copy) with
    `make(names, **made_with) -> (compressors, unavailable)`, a module-level function so that it
    reaches the spawned processes (igc/api.py passes igc's registry lookup); `options` go to
    `bench` unchanged (verify, estimate, seed, preprocessing).
    `threads`: torch threads per worker (default: the machine's cores split evenly).
    `engine`: "accelerate", "torch" (torch.distributed directly) or "auto" (accelerate if
    installed).
    """
    import torch.multiprocessing as mp

    if engine not in ("auto", "accelerate", "torch"):
        raise UsageError(f"unknown engine {engine!r}: auto, accelerate or torch")
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
    with tempfile.TemporaryDirectory(prefix="igc-shards-") as tmp:
        out_path = str(Path(tmp) / "result.pickle")
        mp.start_processes(_worker, args=(workers, _free_port(), loaded, list(names), make,
                                          made_with or {}, options, threads, out_path, engine),
                           nprocs=workers, join=True, start_method="spawn")
        result = pickle.loads(Path(out_path).read_bytes())
    result.environment.update(images_available=available_of(images),
                              wall_seconds=time.perf_counter() - began)
    return result
