"""Output files (issue 16, item 5): the user's umask, --force keeping a file's mode, and every
output that cannot or must not be written refused before any coding.

"Before any coding" is shown by giving a model that does not exist: the output's error comes
first, so nothing was loaded or coded.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import error_line, igc_process, invoke, rgb, train_args, train_error
from PIL import Image

import igc

PIXELS = np.random.default_rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)


NO_MODEL = "/nonexistent/igc-model"  # loading it would fail: its error must not be the one seen


not_as_root = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                             reason="root writes regardless of permissions")


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(PIXELS).save(path)
    return path


@pytest.fixture
def igc_file(tmp_path):
    path = tmp_path / "in.igc"
    path.write_bytes(igc.compress(PIXELS, model="uniform"))
    return path


def compress(png, out, *extra):
    return invoke("compress", png, "-o", out, "--model", "uniform", *extra)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)],
                         ids=["umask-022", "umask-027", "umask-002"])
def test_outputs_get_the_users_umask(png, igc_file, tmp_path, mask, expected):
    with umask(mask):
        assert compress(png, tmp_path / "a.igc").exit_code == 0
        assert invoke("decompress", igc_file, "-o", tmp_path / "a.png").exit_code == 0
    assert (mode(tmp_path / "a.igc"), mode(tmp_path / "a.png")) == (expected, expected)


@pytest.mark.parametrize("kept", [0o600, 0o664, 0o640], ids=["600", "664", "640"])
def test_force_keeps_the_replaced_files_mode(png, igc_file, tmp_path, kept):
    for out, result in ((tmp_path / "a.igc", lambda o: compress(png, o, "--force")),
                        (tmp_path / "a.png",
                         lambda o: invoke("decompress", igc_file, "-o", o, "--force"))):
        out.write_bytes(b"old")
        out.chmod(kept)
        with umask(0o022):
            assert result(out).exit_code == 0
        assert mode(out) == kept and out.read_bytes() != b"old"
    np.testing.assert_array_equal(igc.decompress((tmp_path / "a.igc").read_bytes()), PIXELS)


def test_missing_output_folder_is_refused_before_coding(png, igc_file, tmp_path):
    out = tmp_path / "no" / "such" / "x.igc"
    line = error_line(invoke("compress", png, "-o", out, "--model", NO_MODEL))
    assert line == f"igc: error: cannot write {out}: folder {out.parent} does not exist"
    out = tmp_path / "missing" / "x.png"
    line = error_line(invoke("decompress", igc_file, "-o", out, "--model", NO_MODEL))
    assert line == f"igc: error: cannot write {out}: folder {out.parent} does not exist"


def test_output_that_is_a_directory_is_refused_even_with_force(png, igc_file, tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    for command in (["compress", png], ["decompress", igc_file]):
        line = error_line(invoke(*command, "-o", folder, "--force", "--model", NO_MODEL))
        assert line == f"igc: error: {folder} is a directory, not a file"
    assert list(folder.iterdir()) == []


def _node(path, kind: str) -> None:
    """A special file at `path`, in the test's temporary folder (never under /dev)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a device node needs root")
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null


@pytest.mark.parametrize(("kind", "described"), [("device", "a character device"),
                                                 ("fifo", "a FIFO (named pipe)"),
                                                 ("socket", "a socket")])
def test_output_that_is_not_a_regular_file_is_refused_even_with_force(png, igc_file, tmp_path,
                                                                       kind, described):
    node = tmp_path / "node"
    if len(str(node)) > 100 and kind == "socket":
        pytest.skip("path too long for a Unix socket")
    _node(node, kind)
    before = os.lstat(node)
    for command in (["compress", png], ["decompress", igc_file]):
        line = error_line(invoke(*command, "-o", node, "--force", "--model", NO_MODEL))
        assert line == (f"igc: error: {node} is {described}, not a regular file; igc writes only "
                        "regular files (-o - writes to standard output)")
    after = os.lstat(node)
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode,
                                                             before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.igc", "in.png", "node"]


def test_output_equal_to_the_input_is_refused_even_with_force(png, igc_file, tmp_path):
    before = png.read_bytes(), igc_file.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(png)
    for source, out in ((png, png), (png, link), (igc_file, igc_file)):
        command = "compress" if source.suffix == ".png" else "decompress"
        line = error_line(invoke(command, source, "-o", out, "--force", "--model", NO_MODEL))
        assert line == f"igc: error: {out} is the input file; write the output elsewhere"
    assert (png.read_bytes(), igc_file.read_bytes()) == before


def test_a_dangling_symlink_counts_as_an_existing_output(png, tmp_path):
    out = tmp_path / "out.igc"
    target = tmp_path / "elsewhere" / "target.igc"
    out.symlink_to(target)
    line = error_line(invoke("compress", png, "-o", out, "--model", NO_MODEL))
    assert line == f"igc: error: {out} exists; pass --force to overwrite it"
    result = compress(png, out, "--force")
    assert result.exit_code == 0, result.output
    assert not out.is_symlink() and not target.exists()  # the link is replaced, not followed
    np.testing.assert_array_equal(igc.decompress(out.read_bytes()), PIXELS)


@not_as_root
def test_output_folder_without_write_permission(png, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        line = error_line(invoke("compress", png, "-o", folder / "x.igc", "--model", NO_MODEL))
        assert line == f"igc: error: cannot write {folder / 'x.igc'}: folder {folder} is not writable"
    finally:
        folder.chmod(0o755)


def test_a_failed_write_is_one_line_and_leaves_nothing(png, tmp_path, monkeypatch):
    from igc.cli import outputs

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", full)
    out = tmp_path / "out.igc"
    line = error_line(compress(png, out))
    assert line == f"igc: error: cannot write {out}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.mark.parametrize("option", ["--csv", "--plot"])
def test_reports_never_overwrite_an_input_image(photo_dir, option):
    victim = photo_dir / "img1.png"
    before = victim.read_bytes()
    for images in (victim, photo_dir):
        line = error_line(invoke("bench", "-c", "png", "--images", images, option, victim))
        assert line == (f"igc: error: {option} {victim} is one of the input images; it would be "
                        "overwritten")
    assert victim.read_bytes() == before


def test_reports_are_checked_before_the_run(photo_dir, tmp_path):
    bench = ("bench", "-c", "imagegpt", "--model", NO_MODEL, "--images", photo_dir)
    missing = tmp_path / "nowhere" / "r.csv"
    line = error_line(invoke(*bench, "--csv", missing))
    assert line == f"igc: error: --csv {missing}: folder {missing.parent} does not exist"
    line = error_line(invoke(*bench, "--plot", tmp_path))
    assert line == f"igc: error: --plot {tmp_path} is a directory, not a file"
    same = tmp_path / "r.out"
    line = error_line(invoke(*bench, "--csv", same, "--plot", same))
    assert line == f"igc: error: --csv and --plot both name {same}; give them different files"
    assert list(tmp_path.glob("*.csv")) == [] and not same.exists()
    line = error_line(invoke(*bench, "--plot", tmp_path / "chart.out"))
    assert line == (f"igc: error: --plot {tmp_path / 'chart.out'}: matplotlib cannot draw a "
                    "'.out' file; name it .png, .svg or .pdf")


@pytest.mark.parametrize("option", ["--csv", "--plot"])
def test_reports_overwrite_an_existing_file_only_with_force(photo_dir, tmp_path, option):
    existing = tmp_path / ("report.csv" if option == "--csv" else "report.png")
    existing.write_text("keep me")
    bench = ("bench", "-c", "png", "--images", photo_dir, "--count", "1")
    line = error_line(invoke(*bench, option, existing))
    assert line == f"igc: error: {option} {existing} exists; pass --force to overwrite it"
    assert existing.read_text() == "keep me"
    dangling = tmp_path / f"link{existing.suffix}"
    dangling.symlink_to(tmp_path / "missing" / "target")
    assert "exists; pass --force" in error_line(invoke(*bench, option, dangling))
    result = invoke(*bench, option, existing, "--force")
    assert result.exit_code == 0, result.output
    assert existing.read_bytes() != b"keep me"
    fifo = tmp_path / f"fifo{existing.suffix}"
    os.mkfifo(fifo)
    line = error_line(invoke(*bench, option, fifo, "--force"))
    assert line == (f"igc: error: {option} {fifo} is a FIFO (named pipe), not a regular file; "
                    "igc writes only regular files")


@pytest.fixture
def big_png(tmp_path):
    """An image whose .igc file (uniform model: 8 bits per subpixel) is larger than a pipe's
    64 KiB buffer, so a write to a pipe is short."""
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (160, 160, 3), np.uint8)).save(path)
    return path


def test_standard_output_is_written_whole_through_a_pipe(big_png, tmp_path):
    import subprocess

    proc = igc_process("compress", big_png, "--model", "uniform", "-o", "-", stdout=subprocess.PIPE)
    data, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    expected = igc.compress(np.asarray(Image.open(big_png)), model="uniform")
    assert len(data) > 65536 and data == expected


def test_a_closed_pipe_ends_quietly_with_status_141(big_png, tmp_path, igc_file):
    """`igc compress big.png -o - | head -c1` and `igc info FILE | head -1`: no message,
    status 141 (128 + SIGPIPE, as for a Unix tool)."""
    import subprocess

    proc = igc_process("compress", big_png, "--model", "uniform", "-o", "-", stdout=subprocess.PIPE)
    assert len(proc.stdout.read(1)) == 1
    proc.stdout.close()  # the reader goes away with most of the data unread
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""
    for args in (["info", igc_file], ["compress", big_png, "--model", "uniform", "-o", "-"]):
        read, write = os.pipe()
        os.close(read)  # nobody will ever read: the first write fails
        proc = igc_process(*args, stdout=write)
        os.close(write)
        assert proc.wait(timeout=120) == 141, args
        assert proc.stderr.read() == b"", args


@pytest.mark.skipif(not os.access("/dev/full", os.W_OK), reason="no writable /dev/full")
def test_a_full_disk_on_standard_output_is_one_line(big_png, igc_file):
    for args in (["info", igc_file], ["compress", big_png, "--model", "uniform", "-o", "-"]):
        with open("/dev/full", "wb") as full:
            proc = igc_process(*args, stdout=full)
            assert proc.wait(timeout=120) == 1, args
        assert proc.stderr.read().decode() == ("igc: error: cannot write standard output: No "
                                               "space left on device\n"), args


def test_exporting_to_a_full_disk_is_one_line_and_leaves_no_temporary_folder(tmp_path,
                                                                            monkeypatch):
    import errno

    from igc.training import model

    def full(path, data):
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model, "_write", full)
    line = train_error(invoke(*train_args(tmp_path), "--out", tmp_path / "run"))
    assert line == (f"igc: error: cannot export the model to {tmp_path / 'run' / 'best'}: No "
                    "space left on device")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_a_checkpoint_on_a_full_disk_is_one_line_and_keeps_nothing_half_written(tmp_path,
                                                                               monkeypatch):
    import torch

    def full(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half")
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    line = train_error(invoke(*train_args(tmp_path), "--out", tmp_path / "run"))
    assert line.startswith(f"igc: error: cannot save the checkpoint "
                           f"{tmp_path / 'run' / 'checkpoint.pt'}: ")
    assert not (tmp_path / "run" / "checkpoint.pt.tmp").exists()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_an_export_is_a_model_igc_reads(tmp_path):
    """The export's own writer (serialised safetensors, written and synced by Python) makes a
    complete model folder."""
    result = invoke(*train_args(tmp_path), "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    best = tmp_path / "run" / "best"
    assert sorted(p.name for p in best.iterdir()) == ["config.json", "model.safetensors",
                                                      "training.json"]
    assert not (tmp_path / "run" / "best.tmp").exists()
    data = igc.compress(PIXELS, model=str(best))
    assert igc.decompress(data, model=str(best)).tolist() == PIXELS.tolist()


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_failing_decode_leaves_existing_output_untouched_even_with_force(tmp_path):
    good = igc.compress(rgb(), model="uniform")
    bad = tmp_path / "bad.igc"
    bad.write_bytes(good[:-4] + bytes(b ^ 0xFF for b in good[-4:]))
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    before = _listing(tmp_path)
    line = error_line(invoke("decompress", bad, "-o", out, "--force"))
    assert "checksum" in line or "range decoder" in line
    assert out.read_bytes() == b"precious" and _listing(tmp_path) == before


def test_failing_compress_leaves_existing_output_untouched_even_with_force(tmp_path):
    src = tmp_path / "notes.png"
    src.write_text("not an image")
    out = tmp_path / "out.igc"
    out.write_bytes(b"precious")
    before = _listing(tmp_path)
    error_line(invoke("compress", src, "-o", out, "--force", "--model", "uniform"))
    assert _listing(tmp_path) == before


def test_failing_write_removes_its_temp_file(tmp_path, small_png, monkeypatch):
    from igc.cli import outputs

    out = tmp_path / "out.igc"
    out.write_bytes(b"precious")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", refuse)
    result = invoke("compress", small_png, "-o", out, "--force", "--model", "uniform")
    assert result.exit_code != 0 and "No space left on device" in result.output
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.igc", "small.png"]


def test_overwriting_needs_force(tmp_path, small_png):
    out = tmp_path / "small.png.igc"  # the default output name
    out.write_bytes(b"precious")
    line = error_line(invoke("compress", small_png, "--model", "uniform"))
    assert f"{out} exists; pass --force to overwrite it" in line
    assert out.read_bytes() == b"precious"
    result = invoke("compress", small_png, "--model", "uniform", "--force")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(igc.decompress(out.read_bytes()), rgb())
    png = tmp_path / "small.png"
    before = png.read_bytes()
    line = error_line(invoke("decompress", out, "-o", png))
    assert "small.png exists; pass --force" in line and png.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png", "small.png.igc"]


def test_bench_writes_nothing_into_the_image_folder(photo_dir, tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    reports.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _listing(photo_dir)
    result = invoke("bench", "-c", "uniform,png,zstd", "--images", photo_dir, "--csv",
                    reports / "r.csv", "--plot", reports / "r.png")
    assert result.exit_code == 0, result.output
    assert _listing(photo_dir) == before
    assert sorted(p.name for p in reports.iterdir()) == ["r.csv", "r.png"]
    assert list(cwd.iterdir()) == []


def test_a_name_too_long_or_a_loop_of_links_is_one_line(png, tmp_path):
    """What the system refuses about the output's name itself, said before any coding, not as
    an 'unexpected OSError' (or pathlib's RuntimeError for a loop of links)."""
    long_name = tmp_path / ("x" * 300 + ".igc")
    assert error_line(invoke("compress", png, "-o", long_name, "--model", NO_MODEL)) == (
        f"igc: error: cannot write {long_name}: File name too long")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    loop = tmp_path / "loop1"
    assert error_line(compress(png, loop)) == f"igc: error: {loop} exists; pass --force to overwrite it"
    assert compress(png, loop, "--force").exit_code == 0
    assert not loop.is_symlink() and igc.decompress(loop.read_bytes()).shape == PIXELS.shape


def test_reports_replace_a_link_and_never_write_through_it(png, tmp_path):
    """--csv and --plot are written as every output is: a temporary file renamed over the
    path, so a symbolic link is replaced and its target left as it was (the CSV once went into
    the link's target), and a report that cannot be written is one line."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "rows.csv"
    link.symlink_to(victim)
    result = invoke("bench", "-c", "png", "-i", png, "--csv", link, "--force", "-q")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text().startswith("image,compressor,")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary
    bench = igc.bench([PIXELS], ["png"])
    with pytest.raises(igc.IgcError, match=r"^cannot write /nonexistent/x.csv: No such file"):
        igc.report(bench, "csv", destination="/nonexistent/x.csv")
    with pytest.raises(igc.UsageError, match=r"cannot write the report to .*: it is a folder"):
        igc.report(bench, "csv", destination=tmp_path)


@pytest.mark.parametrize(("args", "redirect", "message"), [
    (["models"], ">&-", "cannot write standard output: it is closed"),
    (["--help"], ">&-", "cannot write standard output: it is closed"),
    (["compress", "IN", "-o", "-"], ">&-", "cannot write standard output: it is closed"),
    (["compress", "-", "-o", "OUT"], "<&-", "cannot read standard input: it is closed"),
])
def test_a_closed_standard_stream_is_named_in_one_line(png, tmp_path, args, redirect, message):
    """Started with standard output or input closed (`>&-`, `<&-`), Python leaves it None:
    every print failed as an 'unexpected AttributeError', click's stream lookup as an
    'unexpected RuntimeError'. Each is now the one line a Unix tool would give."""
    import shlex
    import subprocess
    import sys

    words = [str(png) if a == "IN" else str(tmp_path / "o.igc") if a == "OUT" else a
             for a in args]
    root = Path(__file__).resolve().parents[1]
    command = " ".join(shlex.quote(w) for w in [sys.executable, "-m", "igc", *words])
    done = subprocess.run(["sh", "-c", f"{command} {redirect}"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 1
    assert done.stderr == f"igc: error: {message}\n"


@pytest.mark.skipif(sys.platform != "linux", reason="strips code in forked processes on Linux")
def test_strips_in_processes_code_with_standard_input_closed(tmp_path, tiny_model):
    """A forked child closes standard input first; the closed input's stand-in takes that."""
    import subprocess

    Image.fromarray(rgb(24, 20, seed=2)).save(tmp_path / "in.png")
    root = Path(__file__).resolve().parents[1]
    command = (f"{sys.executable} -m igc compress {tmp_path / 'in.png'} -o {tmp_path / 'o.igc'} "
               f"--model {tiny_model} --strip-rows 8 --threads 2 --context 0 <&-")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert np.array_equal(igc.decompress((tmp_path / "o.igc").read_bytes(), model=tiny_model),
                          rgb(24, 20, seed=2))


def test_a_plot_without_a_suffix_and_a_table_to_a_file(photo_dir, tmp_path):
    """Through the temporary file, a --plot name without a suffix is still a PNG under that
    very name, and the table reporter writes its tables into the file it is given (it used to
    print them and leave the file empty)."""
    pytest.importorskip("matplotlib")
    chart = tmp_path / "chart"
    result = invoke("bench", "-c", "png", "--images", photo_dir, "--count", "1", "--plot", chart,
                    "-q")
    assert result.exit_code == 0, result.output
    assert chart.read_bytes().startswith(b"\x89PNG")
    table = tmp_path / "table.txt"
    table.write_text("precious")
    igc.report(igc.bench([PIXELS], ["png"]), "table", table)
    assert "Per image: 1 image × 1 compressor" in table.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_info_reads_standard_input_and_out_dir_names_a_dangling_link(png, igc_file, tmp_path):
    """`igc info -` reads a file from standard input as `igc decompress -` does (it said
    `-: no such file`); an --out-dir that is a link to nothing is named as one (mkdir said
    `File exists`)."""
    out = invoke("info", "-", "--json", input=igc_file.read_bytes())
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["height"] == PIXELS.shape[0]
    assert error_line(invoke("info", "-", input=png.read_bytes())) == (
        "igc: error: -: not an igc file (bad magic bytes)")
    link = tmp_path / "dlink"
    link.symlink_to("nowhere")
    assert error_line(invoke("compress", png, "-d", link, "--model", "uniform")) == (
        f"igc: error: --out-dir {link} is a symbolic link to nothing (nowhere); give a folder")


def test_a_small_decode_budget_is_printed_in_a_unit_that_shows_it():
    from igc.codec.memory import size

    assert [size(n) for n in (10, 1024, 1536, 5 << 20, 3 << 30)] == [
        "10 bytes", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.00 GiB"]


@pytest.mark.parametrize("suffix,fmt", [(".bmp", "BMP"), (".TIFF", "TIFF"), (".tif", "TIFF"),
                                        (".ppm", "PPM"), (".webp", "WEBP"), (".out", "PNG"),
                                        ("", "PNG")])
def test_decompress_writes_the_lossless_format_its_output_names(igc_file, tmp_path, suffix, fmt):
    """As djxl: the output's suffix picks the format, where it is lossless; any other name is
    PNG. Every one holds the pixels exactly."""
    out = tmp_path / f"out{suffix}"
    result = invoke("decompress", igc_file, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as back:
        assert back.format == fmt
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), PIXELS)


@pytest.mark.parametrize("name,why", [("x.jpg", "JPEG is lossy"), ("x.JPEG", "JPEG is lossy"),
                                      ("x.jpe", "JPEG is lossy"), ("x.jfif", "JPEG is lossy"),
                                      ("x.gif", "GIF holds 256 colours"),
                                      ("x.pgm", "PGM holds grey levels only"),
                                      ("x.jxl", "igc decompress does not write JXL"),
                                      ("x.ico", "igc decompress does not write ICO")])
def test_decompress_refuses_an_output_that_cannot_hold_the_pixels(igc_file, tmp_path, name, why):
    """`-o x.jpg` once wrote PNG bytes under a JPEG name; now any image suffix igc does not
    write is a usage error (exit 2) before decoding, and nothing is written."""
    result = invoke("decompress", igc_file, "-o", tmp_path / name)
    line = error_line(result)
    assert result.exit_code == 2
    assert f"{name}: {why}" in line and ".png" in line and ".webp" in line
    assert not (tmp_path / name).exists()


def test_an_image_webp_cannot_hold_is_refused_before_decoding_and_names_the_output(tmp_path):
    """WebP holds 16383 pixels a side: a wider image is refused from the header, naming the
    output, not the input."""
    wide = tmp_path / "wide.igc"
    wide.write_bytes(igc.compress(np.zeros((1, 16384, 3), np.uint8), model="uniform"))
    out = tmp_path / "out.webp"
    result = invoke("decompress", wide, "-o", out)
    assert error_line(result) == (f"igc: error: {out}: WebP holds at most 16383 pixels a side, "
                                  "and the image is 16384×1; name the output .png")
    assert result.exit_code == 2 and not out.exists()


def test_a_lone_file_s_error_is_named_once(tmp_path, monkeypatch):
    """The file is named in front of a message about what it holds, and a message that starts
    with its name is left alone."""
    monkeypatch.chdir(tmp_path)
    Path("small.igc").write_bytes(igc.compress(np.zeros((4, 5, 3), np.uint8), model="uniform"))
    monkeypatch.setenv("IGC_MAX_PIXELS", "10")
    line = error_line(invoke("decompress", "small.igc", "-o", "x.png"))
    assert line == ("igc: error: small.igc: image of 5×4 = 20 pixels exceeds the limit of 10 "
                    "pixels (set IGC_MAX_PIXELS to raise it)")
    Path("bad.igc").write_bytes(b"IGC" + bytes(40))
    assert error_line(invoke("decompress", "bad.igc", "-o", "y.png")).count("bad.igc") == 1


def test_a_file_named_like_the_start_of_its_error_is_still_named(tmp_path, monkeypatch):
    """A lone file's error names the file unless the message already does ("x: ...", "x is
    ...", "x has ..."): a file called `image` gets its name in front of "image of ..." too."""
    data = igc.compress(PIXELS, model="uniform")
    (tmp_path / "image").write_bytes(data)
    (tmp_path / "b.igc").write_bytes(data)
    monkeypatch.setenv("IGC_MAX_PIXELS", "29")
    monkeypatch.chdir(tmp_path)  # names as typed: the label is `image`, not a whole path
    for name in ("image", "b.igc"):
        line = error_line(invoke("decompress", name, "-o", "out.png"))
        assert line.startswith(f"igc: error: {name}: image of 5×6 = 30 pixels exceeds the limit "
                               "of 29 pixels"), line
    (tmp_path / "notes.igc").write_text("hello")  # a message that names its file: not twice
    line = error_line(invoke("decompress", "notes.igc"))
    assert line.startswith("igc: error: notes.igc is not an .igc file;"), line
