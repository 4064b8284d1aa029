"""Processes working as one: a torch.distributed group from its environment, for a long run.

A rank learns who it is from torch.distributed's environment (`RANK`, `WORLD_SIZE`,
`MASTER_ADDR`, `MASTER_PORT`: the env:// rendezvous), which `torchrun` sets on every node and
`spawn` sets for `--workers N` on this machine, so both run the same code. The group is gloo on
CPUs and nccl where the ranks have GPUs (`IGC_DIST_BACKEND` overrides); its collectives are used
where every rank is ready at once (`all_gather`, `broadcast`, `finish`).

Beside the collectives a long run needs three things the key-value store of the rendezvous gives:

- records streamed to rank 0 as they are made (`send`), so that rank 0 logs every finished row
  and draws one progress bar while the others still work;
- heartbeats: every rank bumps a counter each second, and a rank waiting on others (rank 0 on
  everyone, the others on rank 0) ends with one line (`PeerLost`) when a counter stops for
  `IGC_PEER_TIMEOUT` seconds (default 60) or the store cannot be reached, instead of hanging;
- a finish that waits on the store (with heartbeats) until every rank is done, so the final
  gather never waits on a rank that is still coding.

One process alone (`Group.solo()`) has the same interface and no torch at all.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import pickle
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from igc.errors import IgcError, PeerLost, UsageError
from igc.errors import RankStopped as Stopped

ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_ENV, DEFAULT_TIMEOUT = "IGC_DIST_TIMEOUT", 300.0  # joining the group, collectives
PEER_ENV, DEFAULT_PEER = "IGC_PEER_TIMEOUT", 60.0  # silence after which a rank is lost
BACKEND_ENV = "IGC_DIST_BACKEND"
BEAT = 1.0  # seconds between heartbeats, and between rank 0's collections of records
LOCALHOST = "127.0.0.1"

Handler = Callable[[int, dict], None]
MAX_SECONDS = 10**7  # about 116 days: any real wait, far below timedelta's range


def launched() -> bool:
    """Whether this process is one rank of several (torchrun, srun, or `spawn`)."""
    if not all(os.environ.get(k) for k in ENV):
        return False
    try:
        return int(os.environ["WORLD_SIZE"]) > 1
    except ValueError:
        raise UsageError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def seconds_from(env: str, default: float) -> float:
    raw = os.environ.get(env)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 < value <= MAX_SECONDS:  # nan and inf too: timedelta cannot hold them
        raise UsageError(f"{env}={raw!r}: give a positive number of seconds, at most "
                         f"{MAX_SECONDS:,}")
    return value


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]


class Group:
    """The ranks of one run. Rank 0 collects what the others `send` and hands each record to
    its `handler` (on a background thread; the handler must be thread-safe), in each rank's
    order. Use as a context manager, or `close()`."""

    def __init__(self, rank: int = 0, world: int = 1, store: Any = None,
                 backend: str | None = None, master: str = "") -> None:
        self.rank, self.world, self.backend, self.master = rank, world, backend, master
        self.store = store
        self.error: str | None = None
        self.hosts: list[str] = [socket.gethostname()]
        self._handler: Handler | None = None
        self._lock = threading.RLock()  # store calls, and the handler on rank 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sent = 0
        self._got = [0] * world
        self._done = [False] * world
        self._seen: dict[int, tuple[int, float]] = {}
        self._peer = seconds_from(PEER_ENV, DEFAULT_PEER)
        self._working = False

    # -- making one ---------------------------------------------------------------------------
    @classmethod
    def solo(cls) -> Group:
        return cls()

    @classmethod
    def from_env(cls) -> Group:
        """Join the group torch.distributed's environment describes (env:// rendezvous)."""
        import torch
        import torch.distributed as dist

        try:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        except ValueError:
            raise UsageError(f"RANK={os.environ['RANK']!r} and WORLD_SIZE="
                             f"{os.environ['WORLD_SIZE']!r} must be whole numbers") from None
        if not 0 <= rank < world:
            raise UsageError(f"RANK={rank} is not a rank of WORLD_SIZE={world} (0 to "
                             f"{world - 1})")
        master = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        timeout = seconds_from(TIMEOUT_ENV, DEFAULT_TIMEOUT)
        backend = os.environ.get(BACKEND_ENV) or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend not in ("gloo", "nccl"):
            raise UsageError(f"{BACKEND_ENV}={backend!r}: gloo or nccl")
        try:
            store, rank, world = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))
        except Exception as exc:  # DistStoreError, DistNetworkError, ValueError: one line
            if rank == 0:
                raise PeerLost(f"not every rank joined the group at {master} within "
                               f"{timeout:.0f} s ({world} expected; {_first_line(exc)})") from None
            raise PeerLost(f"rank {rank} of {world} cannot reach the group's master at {master} "
                           f"within {timeout:.0f} s ({_first_line(exc)}); check the master's "
                           "address and port, and that node 0 is running") from None
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        try:
            dist.init_process_group(backend, store=dist.PrefixStore("igc-pg/", store), rank=rank,
                                    world_size=world, timeout=timedelta(seconds=timeout))
        except Exception as exc:
            raise PeerLost(f"rank {rank} of {world} could not form the {backend} group at "
                           f"{master}: {_first_line(exc)}") from None
        group = cls(rank, world, dist.PrefixStore("igc/", store), backend, master)
        group.hosts = group.all_gather(socket.gethostname())
        return group

    # -- describing ---------------------------------------------------------------------------
    def describe(self) -> str:
        hosts = len(set(self.hosts))
        return (f"torch.distributed ({self.backend}), {self.world} ranks on {hosts} "
                f"host{'s' if hosts > 1 else ''}")

    # -- collectives --------------------------------------------------------------------------
    def _collective(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except IgcError:
            raise
        except Exception as exc:  # a rank that died closes its connections: gloo raises
            raise PeerLost(f"rank {self.rank} of {self.world}: a rank left the group during "
                           f"{what} ({_first_line(exc)})") from None

    def all_gather(self, obj: Any) -> list:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.world
        self._collective("the start", lambda: dist.all_gather_object(out, obj))
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        self._collective("the start", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    # -- streaming ----------------------------------------------------------------------------
    def start(self, handler: Handler | None = None) -> None:
        """Begin the work: heartbeats, and on rank 0 the collection of records."""
        self._handler = handler
        self._working = True
        if self.world > 1:
            self._thread = threading.Thread(target=self._pulse, name="igc-group", daemon=True)
            self._thread.start()

    def send(self, record: dict) -> None:
        """Hand a JSON-able record to rank 0's handler (at once on rank 0 itself)."""
        self.check()
        if self.rank == 0:
            if self._handler is not None:
                with self._lock:
                    self._handler(0, record)
            return
        data = json.dumps(record)
        try:
            with self._lock:
                self.store.set(f"rec/{self.rank}/{self._sent}", data)
                self.store.add(f"sent/{self.rank}", 1)
                self._sent += 1
        except Exception as exc:
            raise PeerLost(self._lost_master(exc)) from None

    def check(self) -> None:
        """Raise `PeerLost` when the background thread found a rank gone."""
        if self.error:
            raise PeerLost(self.error)

    def _lost_master(self, exc: BaseException) -> str:
        return (f"rank {self.rank} of {self.world} lost the connection to the group's master at "
                f"{self.master} ({_first_line(exc)}): rank 0 or its node ended")

    def _pulse(self) -> None:
        while not self._stop.wait(BEAT):
            try:
                with self._lock:
                    self.store.add(f"beat/{self.rank}", 1)
                    if self.rank == 0:
                        self._collect()
                self._watch()
            except IgcError as exc:  # a rank lost, or the handler refused (the log's disk)
                self._fail(str(exc))
                return
            except Exception as exc:
                self._fail(self._lost_master(exc) if self.rank else
                           f"rank 0 of {self.world}: the group's store failed "
                           f"({_first_line(exc)})")
                return

    def _collect(self) -> None:
        """Rank 0: every record sent since the last call, to the handler, in order."""
        for r in range(1, self.world):
            count = self.store.add(f"sent/{r}", 0)
            while self._got[r] < count:
                key = f"rec/{r}/{self._got[r]}"
                record = json.loads(self.store.get(key))
                self.store.delete_key(key)
                self._got[r] += 1
                if self._handler is not None:
                    self._handler(r, record)

    def _watch(self) -> None:
        """Raise PeerLost for a watched rank whose heartbeat stopped for the peer timeout."""
        now = time.monotonic()
        watched = [r for r in range(1, self.world) if not self._done[r]] if self.rank == 0 else [0]
        for r in watched:
            with self._lock:
                beats = self.store.add(f"beat/{r}", 0)
                if self.rank == 0 and self.store.check([f"done/{r}"]):
                    self._done[r] = True
                    continue
            last = self._seen.get(r)
            if last is None or beats != last[0]:
                self._seen[r] = (beats, now)
            elif now - last[1] > self._peer:
                raise PeerLost(f"rank {r} of {self.world} stopped answering (no heartbeat for "
                               f"{self._peer:.0f} s): its process or its node ended")

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            if self._working:
                _thread.interrupt_main()  # the main thread may be deep in a long image

    def interrupted(self) -> IgcError | None:
        """After a KeyboardInterrupt: the PeerLost that caused it, if one did."""
        return PeerLost(self.error) if self.error else None

    # -- the end ------------------------------------------------------------------------------
    def finish(self, obj: Any = None) -> list | None:
        """Wait until every rank is done (heartbeats watched meanwhile), then gather `obj` from
        every rank to rank 0: the list in rank order there, None elsewhere."""
        self.check()
        if self.world == 1:
            self._working = False
            return [obj]
        import torch.distributed as dist

        try:
            with self._lock:
                self.store.set(f"done/{self.rank}", "1")
            if self.rank == 0:
                while True:
                    with self._lock:
                        if self.store.check([f"done/{r}" for r in range(1, self.world)]):
                            self._collect()
                            break
                    self._wait()
                with self._lock:
                    self.store.set("go", "1")
            else:
                while True:
                    with self._lock:
                        if self.store.check(["go"]):
                            break
                    self._wait()
        except IgcError:
            raise
        except Exception as exc:
            raise PeerLost(self._lost_master(exc)) from None
        self._working = False
        self._stop_pulse()
        out: list | None = [None] * self.world if self.rank == 0 else None
        self._collective("the final gather", lambda: dist.gather_object(obj, out, dst=0))
        self._collective("the final gather", dist.barrier)
        return out

    def _wait(self) -> None:
        time.sleep(0.05 if self.error is None else 0)
        self.check()
        time.sleep(0.15)

    def drain(self) -> None:
        """Rank 0, on the way out (interrupted, a peer lost): hand over what has arrived from
        the others, if the store still answers."""
        if self.rank != 0 or self.world == 1:
            return
        try:
            with self._lock:
                self._collect()
        except Exception:  # the store is gone: nothing more can arrive
            return

    def _stop_pulse(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def close(self) -> None:
        self._working = False
        self._stop_pulse()
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                with contextlib.suppress(Exception):
                    dist.destroy_process_group()

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def join() -> Group:
    """This process's group: from the environment when launched as a rank, else alone."""
    return Group.from_env() if launched() else Group.solo()


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile (in the main thread), so that a run ended by
    `kill` or by torchrun puts what it finished in the log, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- --workers N: ranks on this machine -----------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _child(rank: int, world: int, port: int, threads: int | None, fn: Callable, args: tuple,
           folder: str) -> None:
    """One spawned rank: the environment torchrun would give, then `fn(*args)`; rank 0's value
    and any rank's error go back to the parent through files in `folder`."""
    os.environ.update({
        "MASTER_ADDR": LOCALHOST, "MASTER_PORT": str(port), "RANK": str(rank),
        "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
        "GLOO_SOCKET_IFNAME": "lo",
    })
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")  # igc's one line, not C++ tracebacks
    os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    parent = os.getppid()

    def orphaned() -> None:  # the parent was killed: no rank outlives the command
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    code = 0
    try:
        value = fn(*args)
        if rank == 0:
            Path(folder, "result.pickle").write_bytes(pickle.dumps(value))
    except Stopped:
        code = 1
    except IgcError as exc:
        Path(folder, f"error-{rank}.pickle").write_bytes(pickle.dumps(exc))
        code = 1
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # the parent says what it was, in one line
        Path(folder, f"error-{rank}.pickle").write_bytes(pickle.dumps(
            IgcError(f"rank {rank}: unexpected {type(exc).__name__}: {_first_line(exc)}")))
        code = 1
    os._exit(code)  # no atexit hooks of torch or the OpenMP pool: the value is written


def spawn(workers: int, fn: Callable, args: tuple = (), *, threads: int | None = None) -> Any:
    """Run `fn(*args)` on `workers` fresh processes of this machine forming one group (the
    environment of a torchrun launch on 127.0.0.1); rank 0's return value. A rank's IgcError is
    raised here (rank 0's first); when one rank fails, the others are ended after a grace
    period. Processes are spawned, not forked: a fork of a process whose OpenMP pool has run can
    hang."""
    import multiprocessing

    for env, default in ((TIMEOUT_ENV, DEFAULT_TIMEOUT), (PEER_ENV, DEFAULT_PEER)):
        seconds_from(env, default)  # refused here once, not by every rank
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="igc-ranks-") as folder, terminated_as_interrupt():
        port = _free_port()
        procs = [ctx.Process(target=_child, args=(r, workers, port, threads, fn, args, folder),
                             name=f"igc-rank-{r}", daemon=False) for r in range(workers)]
        for p in procs:
            p.start()
        try:
            failed_at = None
            while any(p.is_alive() for p in procs):
                time.sleep(0.1)
                if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
                    failed_at = time.monotonic()
                if failed_at is not None and time.monotonic() - failed_at > 10:
                    for p in procs:
                        if p.is_alive():
                            p.terminate()
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:  # SIGTERM, which a rank takes as an interrupt (SIGINT may be
                if p.is_alive():  # ignored: a background job's children inherit that)
                    p.terminate()
            deadline = time.monotonic() + 10  # let them put their finished rows in the log
            for p in procs:
                p.join(timeout=max(0.1, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
            raise
        errors = sorted(Path(folder).glob("error-*.pickle"),
                        key=lambda f: int(f.stem.split("-")[1]))
        if errors:
            raise pickle.loads(errors[0].read_bytes())
        if any(p.exitcode == 130 for p in procs):
            raise KeyboardInterrupt
        result = Path(folder, "result.pickle")
        if not result.exists():
            codes = ", ".join(f"rank {r}: {p.exitcode}" for r, p in enumerate(procs))
            raise PeerLost(f"the worker processes ended without a result ({codes})")
        return pickle.loads(result.read_bytes())
