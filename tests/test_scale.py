"""Benchmarks past one process: resumable row logs, torchrun "nodes" on 127.0.0.1, lost ranks.

The multi-process tests start real processes (torchrun, or ranks given torch.distributed's
environment by hand) on this machine and are marked slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import spawn

from igc import api
from igc.benchmark.distributed import Group
from igc.benchmark.rowlog import RowLog, image_hash, record, row_of
from igc.benchmark.run import as_loaded
from igc.benchmark.shard import bench_group
from igc.compressors.classical import ZstdCompressor
from igc.errors import UsageError

ROOT = Path(__file__).parent.parent
COMPRESSORS = ["png", "zstd", "uniform"]
TIMINGS = ("encode_seconds", "decode_seconds")


@pytest.fixture
def images():
    r = np.random.default_rng(5)
    return as_loaded([r.integers(0, 256, (5 + i, 7, 3), dtype=np.uint8) for i in range(6)])


def sizes(result) -> list[tuple]:
    return [(r.image, r.compressor, r.compressed_bits, r.model_bits, r.roundtrip_ok)
            for r in result.results]


def report(data: dict) -> dict:
    """A --json report without what differs between equal runs: timings, the environment."""
    data = json.loads(json.dumps(data))
    for row in data["results"]:
        for key in TIMINGS:
            row.pop(key, None)
    for entry in data["summary"].values():
        for key in [k for k in entry if k.endswith("per_second")]:
            entry.pop(key)
    data.pop("environment")
    return data


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_log(path: Path, lines: list[dict]) -> None:
    """A log holding `lines`, as a test edited them."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


class Counting(ZstdCompressor):
    """zstd that counts its calls and can stop the run (KeyboardInterrupt) at the n-th."""

    name = "counting"
    calls = 0
    stop_at: int | None = None

    def compress(self, image):
        type(self).calls += 1
        if self.stop_at is not None and type(self).calls >= self.stop_at:
            raise KeyboardInterrupt
        return super().compress(image)


def solo(images, compressors, log, **options):
    return bench_group(Group.solo(), images, compressors, log=log, **options)


# -- the log --------------------------------------------------------------------------------------
def test_a_log_line_holds_the_row_exactly(images, tmp_path):
    result = api.bench(images[:2], ["png", "uniform"])
    row = result.results[1]
    line = json.loads(json.dumps(record(row, "a" * 64, {"verify": True}, {
        "model_fingerprint": None, "model_numerics": None})))
    assert row_of(line) == row


def test_rerun_reuses_every_row_and_reports_the_same(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    clean = api.bench(images, COMPRESSORS)
    first = api.bench(images, COMPRESSORS, log=log)
    assert len(log_lines(log)) == len(images) * len(COMPRESSORS)
    notes: list[str] = []
    again = api.bench(images, COMPRESSORS, log=log, note=notes.append)
    assert len(log_lines(log)) == len(images) * len(COMPRESSORS)  # nothing coded twice
    assert report(again.to_dict()) == report(first.to_dict()) == report(clean.to_dict())
    assert again.environment["log"]["rows_reused"] == 18
    assert any("reusing 18 of 18 rows" in n for n in notes)


def test_only_missing_rows_are_coded(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    Counting.calls, Counting.stop_at = 0, None
    solo(images[:4], [Counting()], log)
    assert Counting.calls == 4
    result = solo(images, [Counting()], log)  # two more images
    assert Counting.calls == 6
    assert [r.image for r in result.results] == [i.name for i in images]
    assert len(log_lines(log)) == 6


def test_interrupted_run_resumes_with_every_row_once(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    Counting.calls, Counting.stop_at = 0, 4
    with pytest.raises(KeyboardInterrupt):
        solo(images, [Counting(), ZstdCompressor()], log)
    kept = log_lines(log)
    assert len(kept) == 2 * 3 + 0  # three images whole; the fourth's first row was in flight
    Counting.stop_at = None
    resumed = solo(images, [Counting(), ZstdCompressor()], log)
    lines = log_lines(log)
    keys = [(line["image_sha256"], line["compressor"]) for line in lines]
    assert len(keys) == len(set(keys)) == 2 * len(images)
    clean = api.bench(images, [Counting(), ZstdCompressor()])
    assert report(resumed.to_dict()) == report(clean.to_dict())


def test_rows_of_other_options_are_refused_in_one_line(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    api.bench(images[:2], ["png"], log=log)
    with pytest.raises(UsageError, match=r"line 1 comes from another run: verify was True there"):
        api.bench(images[:2], ["png"], log=log, verify=False)
    with pytest.raises(UsageError, match="another run: preprocessing"):
        api.bench(images[:2], ["png"], log=log, preprocessing="center crop")
    # the context mode changes a model's rows: a log of another mode was once reused as is
    with pytest.raises(UsageError, match="another run: context was None there and is 2 here"):
        api.bench(images[:2], ["png"], log=log, context=2)
    assert len(log_lines(log)) == 2  # refused before anything was appended
    lines = log_lines(log)
    del lines[0]["options"]["context"]  # as an earlier igc wrote it
    write_log(log, lines)
    with pytest.raises(UsageError, match=r"line 1 does not record context \(an earlier igc"):
        api.bench(images[:2], ["png"], log=log)


def test_a_log_of_another_model_is_refused(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    api.bench(images[:1], ["uniform"], log=log)
    lines = log_lines(log)
    lines[0]["model_fingerprint"] = "f" * 16
    log.write_text(json.dumps(lines[0]) + "\n")
    with pytest.raises(UsageError, match="another model: uniform had model_fingerprint"):
        api.bench(images[:1], ["uniform"], log=log)


@pytest.mark.parametrize("text, message", [
    ("not json\n", "line 1 is not JSON"),
    ('{"image": "x"}\n', "line 1 is not a bench row"),
    ("[1, 2]\n", "line 1 is not a bench row"),
    ("\n", "line 1 is not JSON"),
])
def test_a_log_that_is_not_rows_is_refused(images, tmp_path, text, message):
    log = tmp_path / "rows.jsonl"
    log.write_text(text)
    with pytest.raises(UsageError, match=message):
        api.bench(images[:1], ["png"], log=log)
    assert log.read_text() == text


def test_a_torn_last_line_is_cut_with_a_note(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    api.bench(images[:3], ["png"], log=log)
    whole = log.read_bytes()
    log.write_bytes(whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1] + b'{"image": "ima')
    notes: list[str] = []
    result = api.bench(images[:3], ["png"], log=log, note=notes.append)
    assert any("ignoring a torn last line" in n for n in notes)
    lines = log_lines(log)  # cut, then the missing row appended whole
    assert [line["image"] for line in lines] == ["image0", "image1", "image2"]
    assert log.read_bytes().startswith(whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 1])
    assert len(result.results) == 3


def test_same_pixels_under_another_name_reuse_the_row(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    api.bench(images[:2], ["png"], log=log)
    renamed = as_loaded([images[0].pixels, images[1].pixels])
    for item, name in zip(renamed, ("a.png", "b.png"), strict=True):
        item.name = name
    Counting.calls = 0
    result = api.bench(renamed, ["png"], log=log)
    assert [r.image for r in result.results] == ["a.png", "b.png"]
    assert len(log_lines(log)) == 2
    assert image_hash(images[0].pixels) == log_lines(log)[0]["image_sha256"]


def test_rowlog_refuses_a_folder(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        RowLog(tmp_path, {}, {})


# -- the command line -----------------------------------------------------------------------------
def igc_cli(*args: str, env: dict | None = None, launcher: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, str(launcher)] if launcher else [sys.executable, "-m", "igc"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                               **(env or {})}, cwd=ROOT)


def test_cli_refuses_a_log_that_is_not_json_lines(photo_dir, tmp_path):
    from typer.testing import CliRunner

    from igc.cli.app import app

    log = tmp_path / "rows.jsonl"
    log.write_text("hello\n")
    out = CliRunner().invoke(app, ["bench", "-c", "png", "-i", str(photo_dir), "--log", str(log)])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        f"igc: error: --log {log} line 1 is not JSON: give a JSON Lines file that igc bench --log "
        "wrote, or a new file"]


def test_cli_log_of_another_run_and_reuse(photo_dir, tmp_path):
    from typer.testing import CliRunner

    from igc.cli.app import app

    log = tmp_path / "rows.jsonl"
    base = ["bench", "-c", "png,zstd", "-i", str(photo_dir), "--json", "--log", str(log)]
    first = CliRunner().invoke(app, base)
    assert first.exit_code == 0, first.output
    other = CliRunner().invoke(app, [*base, "--crop", "8"])
    assert other.exit_code == 2
    assert other.output.count("\n") == 1 and "comes from another run: preprocessing" in \
        other.output
    again = CliRunner().invoke(app, base)
    assert again.exit_code == 0
    assert "igc: note: --log" in again.stderr and "reusing 8 of 8 rows" in again.stderr
    assert report(json.loads(again.stdout)) == report(json.loads(first.stdout))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_master_is_one_line(photo_dir):
    env = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "IGC_DIST_TIMEOUT": "3"}
    out = igc_cli("bench", "-c", "png", "-i", str(photo_dir), env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("igc: error: rank 1 of 2 cannot reach the group's master at "
                               "127.0.0.1:")


@pytest.mark.parametrize(("env", "message"), [
    ({"RANK": "x"}, "RANK='x' and WORLD_SIZE='2' must be whole numbers"),
    ({"RANK": "5"}, "RANK=5 is not a rank of WORLD_SIZE=2 (0 to 1)"),
    ({"RANK": "1", "IGC_DIST_TIMEOUT": "nan"},
     "IGC_DIST_TIMEOUT='nan': give a positive number of seconds, at most 10,000,000"),
])
def test_a_rank_s_environment_is_checked_before_joining(photo_dir, env, message):
    """A RANK that is not a number was an 'unexpected ValueError'; one outside WORLD_SIZE waited
    the whole timeout and then blamed the network; a NaN timeout was taken and failed later
    in two misleading lines."""
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           **env}
    out = igc_cli("bench", "-c", "png", "-i", str(photo_dir), env=env)
    assert (out.returncode, out.stderr) == (2, f"igc: error: {message}\n")


# -- torchrun: two "nodes" on 127.0.0.1 -----------------------------------------------------------
TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun_nodes(args: list[str], nodes: int = 2, env: dict | None = None,
                   launcher: Path | None = None) -> list[subprocess.Popen]:
    port = _free_port()
    target = [str(launcher)] if launcher else ["-m", "igc"]
    procs = []
    for node in range(nodes):
        procs.append(spawn(
            [str(TORCHRUN), "--nnodes", str(nodes), "--node-rank", str(node),
             "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
             *target, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}))
    return procs


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def kill_node(agent: int) -> None:
    """SIGKILL a torchrun agent and its ranks (which it starts in sessions of their own)."""
    ranks = children(agent)
    for pid in [agent, *ranks]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def finish(procs, timeout=300) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_two_torchrun_nodes_report_what_one_process_does(photo_dir, tmp_path):
    log = tmp_path / "rows.jsonl"
    args = ["bench", "-c", ",".join(COMPRESSORS), "-i", str(photo_dir), "--json"]
    (code0, out0, err0), (code1, out1, err1) = finish(torchrun_nodes(
        [*args, "--row-log", str(log)]))
    assert code0 == code1 == 0, err0 + err1
    assert out1 == ""  # only rank 0 reports
    alone = igc_cli(*args)
    assert alone.returncode == 0, alone.stderr
    together = json.loads(out0)
    assert report(together) == report(json.loads(alone.stdout))
    assert together["environment"]["workers"] == 2
    assert together["environment"]["distributed"] == "torch.distributed (gloo), 2 ranks on 1 host"
    keys = [(line["image"], line["compressor"]) for line in log_lines(log)]
    assert sorted(keys) == sorted({(r["image"], r["compressor"]) for r in together["results"]})


SLOW_LAUNCHER = '''
import os
import time

import igc
from igc import api
from igc.compressors.classical import ZstdCompressor


class Slow(ZstdCompressor):
    name = "slow"
    description = "zstd after a pause (tests)"

    def compress(self, image):
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0.5")))
        return super().compress(image)


class Plugin:
    @igc.hookimpl
    def register_compressors(self, register):
        register(Slow)


api.register_plugin(Plugin(), "slow-test")
from igc.cli.app import main

main()
'''


@pytest.fixture
def slow_igc(tmp_path) -> Path:
    path = tmp_path / "slow_igc.py"
    path.write_text(SLOW_LAUNCHER)
    return path


@pytest.fixture
def many_images(tmp_path) -> Path:
    r = np.random.default_rng(9)
    path = tmp_path / "many.npz"
    np.savez(path, images=r.integers(0, 256, (24, 6, 6, 3), dtype=np.uint8))
    return path


def wait_for_lines(path: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_run_resumes_to_a_clean_run(slow_igc, many_images, tmp_path, how):
    log = tmp_path / "rows.jsonl"
    args = ["bench", "-c", "slow,png", "-i", str(many_images), "-n", "24", "--json", "--log", str(log)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "SLOW_SECONDS": "0.2"}
    proc = spawn([sys.executable, str(slow_igc), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    wait_for_lines(log, 6)
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if how != signal.SIGKILL:
        assert stderr.strip().splitlines() == ["igc: error: interrupted"]
    kept = len(log_lines(log))
    assert 6 <= kept < 48
    resumed = igc_cli(*args, launcher=slow_igc, env={"SLOW_SECONDS": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"reusing {kept} of 48 rows" in resumed.stderr
    keys = [(line["image"], line["compressor"]) for line in log_lines(log)]
    assert len(keys) == len(set(keys)) == 48
    clean = igc_cli(*args[:-2], launcher=slow_igc, env={"SLOW_SECONDS": "0"})
    assert report(json.loads(resumed.stdout)) == report(json.loads(clean.stdout))


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_torchrun_run_killed_mid_way_resumes(slow_igc, many_images, tmp_path):
    """A node killed mid-run: the other ends with one line; the rerun codes only what is
    missing and reports what a clean run does."""
    log = tmp_path / "rows.jsonl"
    args = ["bench", "-c", "slow,png", "-i", str(many_images), "-n", "24", "--json", "--row-log", str(log)]
    procs = torchrun_nodes(args, env={"SLOW_SECONDS": "1", "IGC_PEER_TIMEOUT": "4"},
                           launcher=slow_igc)
    wait_for_lines(log, 4)
    kill_node(procs[1].pid)
    (code0, out0, err0), _ = finish(procs, timeout=120)
    assert code0 != 0 and out0 == ""
    ours = [line for line in err0.splitlines() if line.startswith("igc:")]
    assert len(ours) == 1, err0
    assert "igc: error: rank 1 of 2" in ours[0]
    kept = log_lines(log)
    keys = [(line["image"], line["compressor"]) for line in kept]
    assert len(keys) == len(set(keys))
    (code0, out0, err0), (code1, out1, err1) = finish(torchrun_nodes(
        args, env={"SLOW_SECONDS": "0"}, launcher=slow_igc))
    assert out1 == ""
    assert code0 == code1 == 0, err0 + err1
    keys = [(line["image"], line["compressor"]) for line in log_lines(log)]
    assert len(keys) == len(set(keys)) == 48
    clean = igc_cli(*args[:-2], launcher=slow_igc, env={"SLOW_SECONDS": "0"})
    assert report(json.loads(out0)) == report(json.loads(clean.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("victim", [0, 1])
def test_a_rank_that_loses_its_peer_ends_with_one_line(slow_igc, many_images, tmp_path, victim):
    """Ranks started by hand (no torchrun): kill one mid-run, the other says so in one line
    within the peer timeout instead of waiting for ever."""
    port = str(_free_port())
    log = tmp_path / "rows.jsonl"
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": str(rank),
               "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
               "SLOW_SECONDS": "0.3", "IGC_PEER_TIMEOUT": "4"}
        procs.append(spawn(
            [sys.executable, str(slow_igc), "bench", "-c", "slow", "-i", str(many_images), "-n", "24",
             "--json", "--log", str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env=env))
    wait_for_lines(log, 4)
    procs[victim].kill()
    survivor = procs[1 - victim]
    began = time.monotonic()
    _, stderr = survivor.communicate(timeout=60)
    assert survivor.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    expected = ("igc: error: rank 1 of 2 stopped answering" if victim == 1 else
                "igc: error: rank 1 of 2 lost the connection to the group's master")
    assert lines[0].startswith(expected)
    assert time.monotonic() - began < 30
    procs[victim].communicate()


@pytest.mark.slow
def test_bench_workers_with_a_log(photo_dir, tmp_path):
    log = tmp_path / "rows.jsonl"
    args = ["bench", "-c", "png,uniform", "-i", str(photo_dir), "--json", "--log", str(log),
            "--workers", "2"]
    first = igc_cli(*args)
    assert first.returncode == 0, first.stderr
    assert len(log_lines(log)) == 8
    again = igc_cli(*args)
    assert "reusing 8 of 8 rows" in again.stderr
    assert report(json.loads(again.stdout)) == report(json.loads(first.stdout))


def test_workers_refused_under_a_launch(images, monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(UsageError, match="torchrun --nproc-per-node"):
        api.bench(images, ["png"], workers=2)


# -- igc compress / decompress --workers ----------------------------------------------------------
def _untimed(text: str) -> list[str]:
    """Lines without their times ("…, 0.12 s", "… files in 1.3 s")."""
    import re

    return [re.sub(r"(, | in )[0-9.]+ s$", "", line) for line in text.splitlines()]


@pytest.mark.slow
def test_files_on_two_workers_print_what_one_process_does(photo_dir, tmp_path):
    (photo_dir / "junk.png").write_text("not an image")
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"igc{workers}"
        compressed = igc_cli("compress", str(photo_dir), "--out-dir", str(out), "-m", "uniform",
                             "--workers", workers)
        back = tmp_path / f"png{workers}"
        decompressed = igc_cli("decompress", str(out), "--out-dir", str(back), "--workers",
                               workers)
        runs[workers] = (compressed, decompressed, out, back)
    for k in range(2):
        one, two = runs["1"][k], runs["2"][k]
        assert one.returncode == two.returncode
        for stream in ("stdout", "stderr"):
            texts = [getattr(run[k], stream).replace(str(run[2]), "OUT").replace(str(run[3]),
                                                                                  "BACK")
                     for run in (runs["1"], runs["2"])]
            assert _untimed(texts[0]) == _untimed(texts[1])
    assert runs["2"][0].returncode == 1
    assert runs["2"][0].stderr.splitlines()[-1] == \
        f"igc: error: 1 of 5 files failed: {photo_dir / 'junk.png'}"
    assert runs["2"][0].stdout.splitlines()[-1].startswith("compressed 4 of 5 files in ")
    assert runs["2"][1].returncode == 0
    for name in ("img0.png", "img1.png", "img2.png", "img3.png"):
        assert (runs["2"][2] / f"{name}.igc").read_bytes() == \
            (runs["1"][2] / f"{name}.igc").read_bytes()
        assert (runs["2"][3] / name).read_bytes() == (runs["1"][3] / name).read_bytes()


def test_workers_take_files_not_standard_streams(photo_dir, tmp_path):
    from typer.testing import CliRunner

    from igc.cli.app import app

    out = CliRunner().invoke(app, ["compress", str(photo_dir / "img0.png"), "-o", "-",
                                   "--workers", "2", "-m", "uniform"])
    assert out.exit_code == 2
    assert out.output.strip() == ("igc: error: --workers codes files: standard input and "
                                  "output take one process")


def launch_ranks(args_of_rank: list[list[str]], env: dict | None = None) -> list:
    """Ranks started by hand with torch.distributed's environment (no torchrun agent)."""
    port = str(_free_port())
    procs = []
    for rank, args in enumerate(args_of_rank):
        procs.append(spawn(
            [sys.executable, "-m", "igc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                 "RANK": str(rank), "WORLD_SIZE": str(len(args_of_rank)),
                 "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, **(env or {})}))
    return procs


@pytest.mark.slow
def test_ranks_with_other_images_stop_with_one_line(photo_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("img0.png", "img1.png"):
        (other / name).write_bytes((photo_dir / name).read_bytes())
    (code0, out0, err0), (code1, out1, err1) = finish(launch_ranks([
        ["bench", "-c", "png", "-i", str(photo_dir)], ["bench", "-c", "png", "-i", str(other)]]))
    assert (code0, code1) == (2, 2)
    assert out0 == out1 == "" and err1 == ""  # rank 0 says why, once
    assert err0.splitlines() == ["igc: error: rank 1 has other images (names and pixels) than "
                                 "rank 0: every node must run the same command on the same files"]


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed")
def test_compress_on_two_torchrun_nodes(photo_dir, tmp_path):
    alone = igc_cli("compress", str(photo_dir), "--out-dir", str(tmp_path / "one"), "-m",
                    "uniform")
    (code0, out0, err0), (code1, out1, err1) = finish(torchrun_nodes(
        ["compress", str(photo_dir), "--out-dir", str(tmp_path / "two"), "-m", "uniform"]))
    assert code0 == code1 == 0, err0 + err1
    assert out1 == ""
    assert _untimed(out0.replace("/two/", "/one/")) == _untimed(alone.stdout)
    for name in ("img0.png", "img1.png", "img2.png", "img3.png"):
        assert (tmp_path / "two" / f"{name}.igc").read_bytes() == \
            (tmp_path / "one" / f"{name}.igc").read_bytes()


def _stderr_on_a_terminal(*args: str) -> str:
    """`igc ARGS` with standard error on a pseudo-terminal: everything written to it."""
    import pty

    master, slave = pty.openpty()
    proc = spawn([sys.executable, "-m", "igc", *args], stdout=subprocess.DEVNULL,
                            stderr=slave, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other end closed (Linux raises EIO)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_one_progress_bar_over_the_run_on_a_terminal(photo_dir):
    shown = _stderr_on_a_terminal("bench", "-c", "png,zstd", "-i", str(photo_dir))
    assert "benchmarking" in shown and "eta" in shown
    assert "0/4 images, 0/5,931 subpixels" in shown  # 4 images, 1,977 pixels
    assert "4/4 images, 5,931/5,931 subpixels" in shown
    assert " on img" not in shown  # no per-codec phases
    assert _stderr_on_a_terminal("bench", "-c", "png", "-i", str(photo_dir), "--quiet") == ""


@pytest.mark.slow
def test_workers_run_terminated_resumes_to_a_clean_run(many_images, tmp_path):
    """SIGTERM to `igc bench --workers 2` (the parent alone, as `kill` sends it): its ranks log
    what they finished and stop; the rerun codes the rest."""
    log = tmp_path / "rows.jsonl"
    args = ["bench", "-c", "imagegpt,png", "-i", str(many_images), "-n", "24", "--json",
            "--log", str(log)]
    proc = spawn([sys.executable, "-m", "igc", *args, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    wait_for_lines(log, 2)
    proc.terminate()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr.strip().splitlines() == ["igc: error: interrupted"]
    kept = len(log_lines(log))
    assert kept < 48
    resumed = igc_cli(*args, "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert f"reusing {kept} of 48 rows" in resumed.stderr
    keys = [(line["image"], line["compressor"]) for line in log_lines(log)]
    assert len(keys) == len(set(keys)) == 48
    clean = igc_cli(*args[:-2])
    assert report(json.loads(resumed.stdout)) == report(json.loads(clean.stdout))


@pytest.mark.parametrize(("edit", "problem"), [
    ({"compressed_bits": "big"}, "compressed_bits 'big' is not a size"),
    ({"compressed_bits": -5}, "compressed_bits -5 is not a size"),
    ({"compressed_bits": float("nan")}, "compressed_bits nan is not a size"),
    ({"compressed_bits": None}, "compressed_bits is null in a row without an error"),
    ({"height": 999}, "original_bits .* is not 999×.*"),
    ({"compressed_bits": 8}, "bits_per_subpixel .* disagrees with compressed_bits 8"),
    ({"roundtrip_ok": "yes"}, "roundtrip_ok is not true, false or null"),
])
def test_a_logged_row_whose_figures_cannot_be_bench_s_is_refused(images, tmp_path, edit,
                                                                 problem):
    """A reused row is reported as measured: a string once failed later as an 'unexpected
    TypeError', and a negative, NaN or inconsistent figure was printed as a result."""
    log = tmp_path / "rows.jsonl"
    api.bench(images[:2], ["png"], log=log)
    lines = log_lines(log)
    lines[0].update(edit)
    write_log(log, lines)
    with pytest.raises(UsageError, match=f"line 1 is not a bench row \\({problem}\\)"):
        api.bench(images[:2], ["png"], log=log)


def test_a_log_repeating_a_row_with_other_figures_is_refused(images, tmp_path):
    log = tmp_path / "rows.jsonl"
    api.bench(images[:1], ["png"], log=log)
    first = log_lines(log)[0]
    again = {**first, "encode_seconds": first["encode_seconds"] + 1}  # times may differ
    write_log(log, [first, again])
    api.bench(images[:1], ["png"], log=log)
    other = {**first, "compressed_bits": first["compressed_bits"] * 2,
             "bits_per_subpixel": first["bits_per_subpixel"] * 2, "ratio": first["ratio"] / 2}
    write_log(log, [first, other])
    with pytest.raises(UsageError, match=r"line 2 repeats the row of .* with other figures"):
        api.bench(images[:1], ["png"], log=log)
