"""Strips side by side: in forked processes where the system forks (Linux), else on threads.

Threads share one interpreter, and each strip's step holds the GIL for its Python (the loop, the
adaptation's and predictor's calls, the range coder), about 40% of a decode: two strips on two
threads of one process decode about 1.2x slower than two processes each decoding one image
(docs/speed.md, "Strips"). A forked child starts from the parent's memory, the loaded model and
its compiled kernels among it, so nothing is sent to it and only each strip's result comes back
(pickled, through a pipe). The calling process codes its own share of the strips meanwhile: the
kernels it loads stay loaded for the next image, and it reports every strip's progress, which
the children write into counters in shared memory.

Which processes code which strips changes nothing in a file: every strip is coded by the same
code from the same inputs, whatever runs it. `$IGC_STRIP_WORKERS=threads` keeps strips on threads
(for a host process that must not fork); `processes` is the default where fork exists, for
integer numerics only: their CPU engine is numba kernels, which are safe after a fork, where
torch's OpenMP pool, which the float numerics use, can hang a forked child once it has run.
Other threads of the parent (a progress bar's) are not touched by a child, which writes only its
counters and its pipe, and ends with `os._exit`. A daemonic process (a multiprocessing pool's
worker) may not have children: there, too, strips run on threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from igc.codec.lanes import one_thread_here, thread_budget
from igc.codec.loop import Progress
from igc.errors import UsageError, WorkerStopped

ENV = "IGC_STRIP_WORKERS"
KINDS = ("processes", "threads")
POLL_SECONDS = 0.2  # how often the parent reports its children's progress once its own is done
T = TypeVar("T")
# work(strip, threads, progress): one strip's result
Work = Callable[[int, int, Progress | None], T]


def can_fork() -> bool:
    """Whether strips may run in forked children: Linux only (macOS's system libraries are not
    safe to use after fork, Windows has none)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


def worker_kind() -> str:
    """`processes` or `threads`: $IGC_STRIP_WORKERS, else processes where this process may fork
    children."""
    text = os.environ.get(ENV, "").strip().lower()
    if text and text not in KINDS:
        raise UsageError(f"{ENV} must be 'processes' or 'threads', got {text!r}")
    may_fork = can_fork() and not mp.current_process().daemon
    return "processes" if text != "threads" and may_fork else "threads"


class StripProgress:
    """Every strip's tokens done and to do, in shared memory: a strip reports its own, the
    callback is told the sums. Children only write their counters (`report=False`); the parent
    calls the callback, for its own strips and when it polls."""

    def __init__(self, progress: Progress | None, count: int) -> None:
        self.progress, self.lock = progress, threading.Lock()
        self.done = mp.RawArray("q", count)
        self.total = mp.RawArray("q", count)
        self.last: tuple[int, int] | None = None

    def strip(self, i: int, report: bool = True) -> Progress | None:
        if self.progress is None:
            return None

        def record(done: int, total: int) -> None:
            self.done[i], self.total[i] = done, total
            if report:
                self.report()

        return record

    def report(self) -> None:
        if self.progress is None:
            return
        with self.lock:
            now = (sum(self.done), sum(self.total))
            if now != self.last:
                self.last = now
                self.progress(*now)


def each_strip(work: Work, count: int, progress: Progress | None = None,
               batched: bool = False, forkable: bool = True) -> list[T]:
    """`work(i, threads, progress_i)` for every strip i, in strip order, strips side by side on
    the codec's threads (each strip's lanes get `threads` of them); the error of the first strip
    that failed is raised. `batched`: one strip at a time (a GPU engine, which fills itself).
    `forkable`: whether `work` may run in a forked child (integer numerics: no torch pool)."""
    kind = worker_kind()
    budget = thread_budget()
    workers = 1 if batched else max(1, min(budget, count))
    shared = StripProgress(progress, count)
    if workers == 1:
        return [work(i, budget, shared.strip(i)) for i in range(count)]
    each = max(1, budget // workers)
    if kind == "threads" or not forkable:
        return _on_threads(work, count, workers, each, shared)
    return _on_processes(work, count, workers, each, shared)


def _on_threads(work: Work, count: int, workers: int, each: int,
                shared: StripProgress) -> list[T]:
    with ThreadPoolExecutor(workers, thread_name_prefix="igc-strip",
                            initializer=one_thread_here) as pool:
        futures = [pool.submit(work, i, each, shared.strip(i)) for i in range(count)]
        try:
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.cancel()


class StripWorkerError(RuntimeError):
    """A worker's error that could not cross the pipe as it was: its type and message."""


def _sendable(exc: BaseException, strip: int) -> BaseException:
    """`exc` as it can cross a pipe, with the child's traceback as a note ($IGC_DEBUG shows it)."""
    exc.add_note(f"(strip {strip}, in a worker process:)\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)))
    try:
        pickle.loads(pickle.dumps(exc))  # some pickle and cannot be rebuilt
        return exc
    except Exception:
        plain = StripWorkerError(f"{type(exc).__name__}: {exc}")
        for note in getattr(exc, "__notes__", ()):
            plain.add_note(note)
        return plain


def _child(work: Work, strips: range, threads: int, shared: StripProgress,
           conn: Connection) -> None:
    """A forked worker: its strips in order, then every result at once (a strip's error as soon
    as it happens). Results wait for the end because a pipe holds 64 KiB: a strip's tokens sent
    at once would block this child until the parent, coding its own share, reads them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops its children
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends them so (not as an interrupt)
    code = 0
    try:
        one_thread_here()
        done = []
        for i in strips:
            try:
                done.append((i, True, work(i, threads, shared.strip(i, report=False))))
            except Exception as exc:
                done.append((i, False, _sendable(exc, i)))
                break
        try:
            conn.send(done)
        except Exception as exc:  # a result that does not pickle: say so, not just "stopped"
            conn.send([(strips[0], False, StripWorkerError(
                f"the result of a worker process (strips {list(strips)}) could not be sent: "
                f"{exc}"))])
    except BaseException:
        code = 1
    finally:
        conn.close()
        # no exit handlers: nothing of the parent's (its stdio, its threads' locks) is touched
        os._exit(code)


def _on_processes(work: Work, count: int, workers: int, each: int,
                  shared: StripProgress) -> list[T]:
    """Strips k, k + workers, ... on forked child k (k ≥ 1); the parent codes k = 0's."""
    fork = mp.get_context("fork")
    children: dict[Connection, tuple[Any, range]] = {}
    outcomes: dict[int, tuple[bool, Any]] = {}
    try:
        for k in range(1, workers):
            here, there = fork.Pipe(duplex=False)
            strips = range(k, count, workers)
            child = fork.Process(target=_child, args=(work, strips, each, shared, there),
                                 name=f"igc-strip-{k}", daemon=True)
            child.start()
            there.close()
            children[here] = (child, strips)
        previous = thread_budget()
        one_thread_here()
        try:
            for i in range(0, count, workers):
                try:
                    outcomes[i] = (True, work(i, each, shared.strip(i)))
                except Exception as exc:
                    outcomes[i] = (False, exc)
                    break
        finally:
            _set_threads(previous)
        while children and _first_failure(outcomes, count) is None:
            for conn in wait(list(children), timeout=POLL_SECONDS):
                _receive(conn, children, outcomes)
            shared.report()
    finally:
        for conn, (child, _) in children.items():
            child.terminate()
            conn.close()
        for child, _ in children.values():
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join()
    failed = _first_failure(outcomes, count)
    if failed is not None:
        raise outcomes[failed][1]
    return [outcomes[i][1] for i in range(count)]


def _first_failure(outcomes: dict, count: int) -> int | None:
    """The first strip that failed, once every strip before it is known to have succeeded:
    which strip's error is raised does not depend on which process coded it."""
    for i in range(count):
        if i not in outcomes:
            return None
        if not outcomes[i][0]:
            return i
    return None


def _receive(conn: Connection, children: dict, outcomes: dict) -> None:
    """A child's results (it sends them all at once), or its end without them."""
    child, strips = children.pop(conn)
    try:
        done = conn.recv()
    except EOFError:
        done = []
    except Exception as exc:  # a result that does not unpickle here
        done = [(strips[0], False, StripWorkerError(
            f"the result of a worker process (strips {list(strips)}) could not be read: {exc}"))]
    conn.close()
    child.join()
    for i, ok, value in done:
        outcomes[i] = (ok, value)
    missing = [i for i in strips if i not in outcomes]
    if missing and all(ok for i, (ok, _) in outcomes.items() if i in strips):
        outcomes[missing[0]] = (False, WorkerStopped(
            f"the worker process coding strip {missing[0]} stopped (exit code "
            f"{child.exitcode}) before it finished; IGC_STRIP_WORKERS=threads codes strips "
            "in this process instead"))


def _set_threads(threads: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
