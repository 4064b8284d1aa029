"""Strips side by side in forked processes or on threads (igc/codec/strip_workers.py).

Whatever runs a strip, the results come back in strip order, a strip's error reaches the caller
as the error it was (the first failed strip's), a worker that dies is reported in one line rather
than waited for, progress counts every strip, and a file's bytes and pixels do not depend on the
kind of worker."""

from __future__ import annotations

import multiprocessing as mp
import os
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import make_tiny_model, smooth_image

from igc.codec import loop, strip_workers
from igc.codec.strip_workers import each_strip
from igc.errors import FormatError, UsageError, WorkerStopped
from igc.plugins.compose import compose

needs_fork = pytest.mark.skipif(not strip_workers.can_fork(), reason="strips fork on Linux only")


@pytest.fixture(params=["processes", "threads"])
def kind(request, monkeypatch):
    if request.param == "processes" and not strip_workers.can_fork():
        pytest.skip("strips fork on Linux only")
    monkeypatch.setenv(strip_workers.ENV, request.param)
    return request.param


def test_results_come_back_in_strip_order(kind, two_threads):
    out = each_strip(lambda i, threads, report: (i, threads, os.getpid()), 5)
    assert [i for i, _, _ in out] == list(range(5))
    assert {threads for _, threads, _ in out} == {1}  # two workers share two threads
    pids = {pid for _, _, pid in out}
    assert len(pids) == (2 if kind == "processes" else 1)
    assert out[0][2] == os.getpid()  # the caller codes a share itself


def test_one_thread_runs_every_strip_here(kind, one_thread):
    out = each_strip(lambda i, threads, report: (threads, os.getpid()), 3)
    assert out == [(1, os.getpid())] * 3


def test_a_strip_error_reaches_the_caller_as_it_was(kind, two_threads):
    def work(i, threads, report):
        if i == 1:
            raise FormatError("corrupted file: strip 1 is damaged")
        return i

    with pytest.raises(FormatError) as raised:
        each_strip(work, 4)
    assert str(raised.value) == "corrupted file: strip 1 is damaged"
    if kind == "processes":  # where it failed, for IGC_DEBUG's traceback
        assert "in a worker process" in raised.value.__notes__[0]


def test_the_first_failed_strip_is_the_one_reported(kind, two_threads):
    def work(i, threads, report):
        raise FormatError(f"strip {i} failed")

    with pytest.raises(FormatError) as raised:
        each_strip(work, 2)
    assert str(raised.value) == "strip 0 failed"


def test_which_failed_strip_is_reported_does_not_depend_on_who_ran_it(kind, two_threads):
    """Strips 1 (a child's, with processes) and 2 (the caller's) fail: strip 1's error, as on
    threads, though the caller learns of its own first."""
    def work(i, threads, report):
        if i in (1, 2):
            raise FormatError(f"strip {i} failed")
        return i

    with pytest.raises(FormatError) as raised:
        each_strip(work, 4)
    assert str(raised.value) == "strip 1 failed"
    assert mp.active_children() == []


def test_large_results_of_several_strips_a_worker_come_back_whole(kind, two_threads):
    """Results far beyond a pipe's buffer, two strips a worker: every one, in order, and no
    worker left behind."""
    out = each_strip(lambda i, threads, report: np.full(300_000, i, np.int64), 4)
    assert [int(a[0]) for a in out] == [0, 1, 2, 3]
    assert all(a.shape == (300_000,) and (a == a[0]).all() for a in out)
    assert mp.active_children() == []


class TwoArguments(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


@needs_fork
def test_an_error_that_cannot_be_rebuilt_arrives_as_its_type_and_message(two_threads,
                                                                         monkeypatch):
    monkeypatch.setenv(strip_workers.ENV, "processes")

    def work(i, threads, report):
        if i == 1:
            raise TwoArguments("x", "y")
        return i

    with pytest.raises(strip_workers.StripWorkerError) as raised:
        each_strip(work, 2)
    assert str(raised.value) == "TwoArguments: x and y"
    assert "in a worker process" in raised.value.__notes__[0]


@needs_fork
def test_a_result_that_cannot_be_sent_is_named_not_just_a_stopped_worker(two_threads,
                                                                       monkeypatch):
    import threading

    monkeypatch.setenv(strip_workers.ENV, "processes")
    with pytest.raises(strip_workers.StripWorkerError, match="could not be sent"):
        each_strip(lambda i, threads, report: threading.Lock(), 2)
    assert mp.active_children() == []


def test_work_that_may_not_fork_runs_on_threads(kind, two_threads):
    out = each_strip(lambda i, threads, report: os.getpid(), 3, forkable=False)
    assert out == [os.getpid()] * 3


def test_a_daemonic_process_runs_strips_on_threads(monkeypatch):
    """A multiprocessing pool's worker may not have children."""
    monkeypatch.delenv(strip_workers.ENV, raising=False)
    monkeypatch.setattr(strip_workers.mp, "current_process", lambda: SimpleNamespace(daemon=True))
    assert strip_workers.worker_kind() == "threads"


@needs_fork
def test_a_worker_that_dies_is_reported_in_one_line(two_threads, monkeypatch):
    monkeypatch.setenv(strip_workers.ENV, "processes")

    def work(i, threads, report):
        if i == 1:
            os._exit(7)
        return i

    with pytest.raises(WorkerStopped, match=r"^the worker process coding strip 1 stopped \(exit "
                                       r"code 7\) before it finished; IGC_STRIP_WORKERS=threads "
                                       r"codes strips in this process instead$"):
        each_strip(work, 2)


def test_progress_sums_every_strip(kind, two_threads):
    seen = []

    def work(i, threads, report):
        for done in range(0, 11):
            report(done * (i + 1), 10 * (i + 1))
        return i

    each_strip(work, 3, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (60, 60)
    assert all(done <= total for done, total in seen)


def test_an_unknown_worker_kind_is_refused_in_one_line(monkeypatch, two_threads):
    monkeypatch.setenv(strip_workers.ENV, "fibres")
    with pytest.raises(UsageError, match=r"^IGC_STRIP_WORKERS must be 'processes' or 'threads', "
                                         r"got 'fibres'$"):
        each_strip(lambda i, threads, report: i, 2)


@needs_fork
def test_files_do_not_depend_on_the_kind_of_worker(tmp_path_factory, two_threads, monkeypatch):
    tiny = make_tiny_model(tmp_path_factory.mktemp("workers-tiny"), seed=3)
    image = smooth_image(26, 22, seed=4)
    files = {}
    for kind in strip_workers.KINDS:
        monkeypatch.setenv(strip_workers.ENV, kind)
        codec = compose(tiny, context=3, strip_rows=9)
        files[kind] = codec.encode(image).data
        assert np.array_equal(codec.decode(files[kind]), image)
        assert codec.estimate_bits(image) > 0
    assert files["processes"] == files["threads"]


def test_one_lane_and_the_header_lanes_write_the_same_file(tmp_path_factory, one_thread,
                                                           monkeypatch):
    """On one thread a group of numerics 2 steps as one lane (loop.ONE_LANE): the same bytes
    and pixels as the lanes the header records."""
    tiny = make_tiny_model(tmp_path_factory.mktemp("lanes-tiny"), seed=6)
    image = smooth_image(30, 26, seed=7)
    files = []
    for one in (True, False):
        monkeypatch.setattr(loop, "ONE_LANE", one)
        codec = compose(tiny, context=3, strip_rows=0, batch=4, lane=2)
        files.append(codec.encode(image).data)
        assert np.array_equal(codec.decode(files[-1]), image)
    assert files[0] == files[1]
