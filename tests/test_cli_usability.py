"""The command line as a user meets it (issue 17), item by item:

1. tables at 80 columns: test_bench_table_fits_80_columns_with_every_number_whole,
   test_bench_wide_adds_columns_without_cutting_numbers,
   test_readme_commands_print_every_number_whole_at_80_columns
2. progress: test_progress_bar_on_a_terminal_only (rich's forced terminal),
   test_progress_bar_in_a_pseudo_terminal, test_library_reports_progress_in_tokens,
   test_quiet_and_threads
3. many files: test_many_files_one_line_each_and_bad_ones_named,
   test_outputs_are_checked_before_any_coding
4. pipes: test_pipes
5. errors: test_usage_errors_are_one_line, test_usage_error_through_the_console_script_is_one_line,
   test_outputs_are_checked_before_any_coding, test_decompressing_a_file_that_is_not_igc_says_so_first,
   test_json_and_markdown_together_are_refused, test_decompress_names_the_png_after_the_igc_file
6. bench outputs: test_bench_notes_name_the_model_and_mark_estimates,
   test_markdown_carries_the_terminal_notes, test_the_run_line_in_json,
   test_plot_names_what_was_measured_and_summarises,
   test_plot_of_many_images_is_a_distribution_of_capped_width
7. small things: test_info_rounds_and_explains_json_stays_exact, test_help_has_no_type_tags,
   test_command_list_has_one_sentence_per_command, test_train_help_says_where_its_default_data_lives,
   test_library_expands_a_grayscale_array_as_documented
"""

from __future__ import annotations

import re

import pytest
from helpers import invoke
from typer.testing import CliRunner

from igc.cli.app import app

runner = CliRunner()




def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- 5. usage errors are one line -----------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["compress", "--forc", "a.png"],
     "igc: error: no such option: --forc (Possible options: --force, --order); "
     "see 'igc compress --help'"),
    (["bench", "-n", "x"],
     "igc: error: invalid value for '--count' / '-n': Input should be a valid integer, unable to "
     "parse string as an integer; see 'igc bench --help'"),
    (["bench", "extra"],
     "igc: error: got unexpected extra argument(s) (extra); see 'igc bench --help'"),
    (["info", "a.igc", "b.igc"],
     "igc: error: got unexpected extra argument(s) (b.igc); see 'igc info --help'"),
    (["nosuch"], "igc: error: no such command 'nosuch'; see 'igc --help'"),
    (["info"], "igc: error: missing argument 'FILE'; see 'igc info --help'"),
])
def test_usage_errors_are_one_line(args, message):
    out = invoke(*args)
    assert out.exit_code == 2
    assert lines_of(out.output) == [message]
    assert out.stdout == ""


def test_usage_error_through_the_console_script_is_one_line():
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "igc", "speed", "--threads", "many"],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 2
    assert out.stderr.startswith("igc: error: invalid value for '--threads'")
    assert len(out.stderr.splitlines()) == 1 and out.stdout == ""


def test_igc_alone_prints_the_help():
    out = invoke()
    assert out.exit_code == 2 and "Usage: igc" in out.output and "error" not in out.output


# -- 7. help texts --------------------------------------------------------------------------------
COMMANDS = ("bench", "compress", "decompress", "info", "models", "plugins", "speed", "train")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_type_tags(command):
    out = invoke(command, "--help")
    assert out.exit_code == 0
    assert not re.search(r"<(bool|int|str|float|path|list\[\w+\])>", out.output), out.output
    assert "{" not in out.output.splitlines()[1]  # the usage line names arguments plainly
    assert all(len(line) <= 80 for line in out.output.splitlines())


def test_command_list_has_one_sentence_per_command():
    out = invoke("--help")
    assert out.exit_code == 0
    rows = [line for line in out.output.splitlines() if line.startswith("│ ")]
    listed = {}
    for row in rows:
        text = row.strip("│ ").rstrip()
        name, _, rest = text.partition(" ")
        if name in COMMANDS:
            listed[name] = rest.strip()
        elif listed:  # a continuation line: the sentence went on
            last = list(listed)[-1]
            listed[last] += " " + text.strip()
    assert set(listed) == set(COMMANDS)
    for name, sentence in listed.items():
        assert sentence.endswith("."), (name, sentence)
        assert sentence.count(". ") == 0, (name, sentence)  # one sentence, not two run together


def test_help_paragraphs_are_not_broken_mid_sentence():
    """Typer's rich help keeps a docstring's line breaks: a paragraph wrapped in the source was
    printed as a sentence split in two. Each paragraph is one line in the source."""
    import inspect

    import typer

    group = typer.main.get_command(app)
    for name in COMMANDS:
        for paragraph in inspect.cleandoc(group.commands[name].help).split("\n\n"):
            assert "\n" not in paragraph, (name, paragraph)
    out = invoke("compress", "--help")
    assert "a progress bar with an ETA while the model codes." in " ".join(out.output.split())
    description = [line.strip() for line in out.output.split("╭")[0].splitlines()]
    assert "progress bar with an ETA while the model codes." in description  # wrapped by width


def test_train_help_says_where_its_default_data_lives():
    out = invoke("train", "--help")
    text = " ".join(line.strip("│ ") for line in out.output.splitlines())
    text = " ".join(text.split())
    assert "../shared/data" in text
    for part in ("photos/bsds500/train", "photos/sun_hays80", "cifar10/train_first4000.npz",
                 "photos/bsds500/test"):
        assert part in text


# -- 2, 3, 4. compress and decompress: progress, many files, pipes --------------------------------
def _png(path, seed=0, shape=(9, 14, 3)):
    import numpy as np
    from PIL import Image

    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(image).save(path)
    return image


def _pixels(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


FILE_LINE = re.compile(r"^(?P<src>\S+) -> (?P<dst>\S+): (?P<w>\d+)×(?P<h>\d+), (?P<bytes>[\d,]+) "
                       r"bytes, (?P<bpsp>\d+\.\d{3}) bits/subpixel, "
                       r"(ratio \d+\.\d{3}|checksum verified), (?P<secs>\d+\.\d+) s$")


def test_many_files_one_line_each_and_bad_ones_named(tmp_path):
    import numpy as np

    a = _png(tmp_path / "a.png", 0)
    folder = tmp_path / "photos"
    folder.mkdir()
    p = _png(folder / "p.png", 1, (20, 7, 3))
    (folder / "notes.txt").write_text("not an image, and not *.png: left out")
    (tmp_path / "bad.png").write_text("not an image")
    out_dir = tmp_path / "OUT"
    out = invoke("compress", tmp_path / "a.png", tmp_path / "bad.png", folder,
                 tmp_path / "gone.png", "--out-dir", out_dir, "--model", "uniform")
    assert out.exit_code == 1
    lines = out.stdout.splitlines()
    assert [FILE_LINE.match(line)["dst"] for line in lines[:2]] == [
        str(out_dir / "a.png.igc"), str(out_dir / "p.png.igc")]
    first = FILE_LINE.match(lines[0])
    assert (first["w"], first["h"]) == ("14", "9")
    assert int(first["bytes"].replace(",", "")) == (out_dir / "a.png.igc").stat().st_size
    assert re.fullmatch(r"compressed 2 of 4 files in \d+\.\d+ s", lines[2])
    assert lines_of(out.stderr) == [
        f"igc: error: {tmp_path / 'bad.png'}: not an image file (or a format Pillow cannot read)",
        f"igc: error: {tmp_path / 'gone.png'}: no such file",
        f"igc: error: 2 of 4 files failed: {tmp_path / 'bad.png'}, {tmp_path / 'gone.png'}"]
    assert sorted(f.name for f in out_dir.iterdir()) == ["a.png.igc", "p.png.igc"]

    dec = tmp_path / "DEC"
    out = invoke("decompress", *sorted(out_dir.glob("*.igc")), "--out-dir", dec)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert [FILE_LINE.match(line)["dst"] for line in lines[:2]] == [str(dec / "a.png"),
                                                                   str(dec / "p.png")]
    assert re.fullmatch(r"decompressed 2 of 2 files in \d+\.\d+ s", lines[2])
    np.testing.assert_array_equal(_pixels(dec / "a.png"), a)
    np.testing.assert_array_equal(_pixels(dec / "p.png"), p)


def test_outputs_are_checked_before_any_coding(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", 1)
    out_dir = tmp_path / "OUT"
    out_dir.mkdir()
    (out_dir / "b.png.igc").write_bytes(b"precious")
    out = invoke("compress", tmp_path / "a.png", tmp_path / "b.png", "--out-dir", out_dir,
                 "--model", "uniform")
    assert out.exit_code == 2
    assert lines_of(out.output) == [
        f"igc: error: {out_dir / 'b.png.igc'} exists; pass --force to overwrite it"]
    assert sorted(f.name for f in out_dir.iterdir()) == ["b.png.igc"]  # a.png was not coded
    other = tmp_path / "other"
    other.mkdir()
    _png(other / "a.png", 2)
    out = invoke("compress", tmp_path / "a.png", other / "a.png", "--out-dir", out_dir,
                 "--model", "uniform")
    assert lines_of(out.output) == [
        f"igc: error: {tmp_path / 'a.png'} and {other / 'a.png'} would both be written to "
        f"{out_dir / 'a.png.igc'}; write them to different folders"]
    out = invoke("compress", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "x.igc")
    assert lines_of(out.output) == [
        "igc: error: -o names one output file, but 2 inputs were given: use --out-dir DIR"]
    out = invoke("compress", tmp_path / "a.png", "-o", "x.igc", "--out-dir", out_dir)
    assert lines_of(out.output) == [
        "igc: error: give -o for one output or --out-dir for many, not both"]


def test_decompress_names_the_png_after_the_igc_file(tmp_path):
    import numpy as np

    image = _png(tmp_path / "a.png")
    (tmp_path / "a.png").rename(tmp_path / "orig.png")
    assert invoke("compress", tmp_path / "orig.png", "-o", tmp_path / "a.png.igc",
                  "--model", "uniform").exit_code == 0
    (tmp_path / "b.igc").write_bytes((tmp_path / "a.png.igc").read_bytes())
    (tmp_path / "c.jpg.igc").write_bytes((tmp_path / "a.png.igc").read_bytes())
    out = invoke("decompress", tmp_path / "a.png.igc", tmp_path / "b.igc", tmp_path / "c.jpg.igc")
    assert out.exit_code == 0, out.output
    for name in ("a.png", "b.png", "c.png"):
        np.testing.assert_array_equal(_pixels(tmp_path / name), image)
    assert not (tmp_path / "a.png.png").exists()


def test_decompressing_a_file_that_is_not_igc_says_so_first(tmp_path):
    src = tmp_path / "crop128.png"
    _png(src)
    before = src.read_bytes()
    out = invoke("decompress", src)  # its default output would be the input itself
    assert out.exit_code == 1
    assert lines_of(out.output) == [
        f"igc: error: {src} is not an .igc file (it is a PNG image); igc decompress reads the "
        "files igc compress writes"]
    assert src.read_bytes() == before
    (tmp_path / "notes.igc").write_text("hello")
    out = invoke("decompress", tmp_path / "notes.igc")
    assert lines_of(out.output) == [
        f"igc: error: {tmp_path / 'notes.igc'} is not an .igc file; igc decompress reads the "
        "files igc compress writes"]


def test_pipes(tmp_path):
    import numpy as np

    image = _png(tmp_path / "a.png")
    out = runner.invoke(app, ["compress", "-", "-o", "-", "--model", "uniform"],
                        input=(tmp_path / "a.png").read_bytes(), env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    data = out.stdout_bytes
    assert data[:3] == b"IGC"
    # the data goes to stdout, so the file's line goes to stderr
    assert re.fullmatch(r"standard input -> standard output: 14×9, [\d,]+ bytes, 8\.\d{3} "
                        r"bits/subpixel, ratio 0\.\d{3}, \d+\.\d+ s\n", out.stderr)
    out = runner.invoke(app, ["decompress", "-"], input=data, env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert out.stdout_bytes[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out.stdout_bytes))), image)
    (tmp_path / "a.igc").write_bytes(data)
    out = invoke("decompress", tmp_path / "a.igc", "-o", "-")
    assert out.exit_code == 0 and out.stdout_bytes[:4] == b"\x89PNG"
    assert not (tmp_path / "-").exists()
    out = runner.invoke(app, ["decompress", "-"], input=b"\x89PNG\r\n\x1a\nxx")
    assert lines_of(out.output) == [
        "igc: error: standard input is not an .igc file; igc decompress reads the files igc "
        "compress writes"]
    out = invoke("compress", "-", tmp_path / "a.png")
    assert lines_of(out.output) == ["igc: error: - (standard input) must be the only input"]


def test_quiet_and_threads(tmp_path):
    _png(tmp_path / "a.png")
    out = invoke("compress", tmp_path / "a.png", "--model", "uniform", "--quiet", "--threads", "1",
                 env={"TTY_COMPATIBLE": "1"})
    assert out.exit_code == 0 and out.output == ""
    assert (tmp_path / "a.png.igc").exists()
    out = invoke("decompress", tmp_path / "a.png.igc", "-o", tmp_path / "b.png", "-q")
    assert out.exit_code == 0 and out.output == ""
    for threads in ("-1", str(10**20)):  # past a C int, OpenMP warned and the run went on
        out = invoke("compress", tmp_path / "a.png", "--force", "--threads", threads)
        assert lines_of(out.output) == [f"igc: error: --threads must be from 1 to 4096, got "
                                        f"{threads}"]


def test_progress_bar_on_a_terminal_only(tmp_path):
    _png(tmp_path / "a.png", shape=(16, 16, 3))
    out = invoke("compress", tmp_path / "a.png", "--model", "uniform")
    assert out.exit_code == 0 and out.stderr == ""  # not a terminal: no bar
    out = invoke("decompress", tmp_path / "a.png.igc", "-o", tmp_path / "b.png",
                 env={"TTY_COMPATIBLE": "1"})  # rich's switch for a forced terminal
    assert out.exit_code == 0, out.output
    assert "768/768 tokens" in out.stderr and "100%" in out.stderr and "eta" in out.stderr
    assert FILE_LINE.match(out.stdout.strip())  # the file's line, with its time, on stdout


@pytest.mark.slow
def test_progress_bar_in_a_pseudo_terminal(tmp_path):
    """The real thing: igc's stderr is a pseudo-terminal, its stdout a pipe."""
    import os
    import pty
    import select
    import subprocess
    import sys

    _png(tmp_path / "a.png", shape=(32, 32, 3))
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "igc", "compress", str(tmp_path / "a.png"),
                             "--model", "uniform"], stdout=subprocess.PIPE, stderr=slave,
                            env={**env, "COLUMNS": "80", "TERM": "xterm"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    stdout = proc.stdout.read().decode()
    assert proc.wait(timeout=60) == 0
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen).decode()
    assert "3,072/3,072 tokens" in shown and "100%" in shown and "eta" in shown
    assert FILE_LINE.match(stdout.strip()), stdout


# -- 2. the progress callback through the library; 7. grayscale arrays ---------------------------
def test_library_reports_progress_in_tokens(tiny_model):
    import numpy as np

    import igc

    image = np.random.default_rng(3).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    for_encode, for_decode = [], []
    data = igc.compress(image, model=tiny_model, progress=lambda d, t: for_encode.append((d, t)))
    decoded = igc.decompress(data, progress=lambda d, t: for_decode.append((d, t)),
                             model=tiny_model)
    np.testing.assert_array_equal(decoded, image)
    total = 9 * 14 * 3  # every subpixel is a token; padding is copied, not counted
    for calls in (for_encode, for_decode):
        assert calls[0] == (0, total) and calls[-1] == (total, total)
        done = [d for d, _ in calls]
        assert done == sorted(done) and {t for _, t in calls} == {total}
    assert igc.decompress(data, model=tiny_model).shape == (9, 14, 3)  # no callback: fine too


def test_library_expands_a_grayscale_array_as_documented():
    import numpy as np

    import igc

    gray = np.random.default_rng(4).integers(0, 256, (6, 5), dtype=np.uint8)
    decoded = igc.decompress(igc.compress(gray, model="uniform"))
    assert decoded.shape == (6, 5, 3)
    assert all((decoded[:, :, c] == gray).all() for c in range(3))
    assert "grayscale (H, W) or (H, W, 1) array is coded as RGB" in " ".join(
        igc.compress.__doc__.split())
    with pytest.raises(igc.ImageError, match=r"expected uint8 pixels, got a float64 array of "
                                             r"shape \(6, 5\)"):
        igc.compress(gray.astype(float), model="uniform")


# -- 7. igc info ----------------------------------------------------------------------------------
def test_info_rounds_and_explains_json_stays_exact(tmp_path):
    import json

    _png(tmp_path / "a.png")
    assert invoke("compress", tmp_path / "a.png", "--model", "uniform").exit_code == 0
    path = tmp_path / "a.png.igc"
    exact = json.loads(invoke("info", path, "--json").stdout)
    size = path.stat().st_size
    assert exact["file_bytes"] == size
    assert exact["bits_per_subpixel"] == size * 8 / (9 * 14 * 3)  # not rounded
    out = invoke("info", path)
    assert out.exit_code == 0
    lines = out.stdout.splitlines()
    assert lines[0] == f"{path}:" and lines[-1] == "(--json prints every field, exact)"
    text = " ".join(" ".join(lines).split())
    bpsp = f"{exact['bits_per_subpixel']:.3f}"
    assert f"rate {bpsp} bits per subpixel, compression ratio {8 / exact['bits_per_subpixel']:.3f}" \
        in text
    assert repr(exact["bits_per_subpixel"]) not in text  # rounded for reading
    assert "image 14×9 pixels, RGB: 378 subpixels" in text
    assert (f"size {size:,} bytes: header {exact['header_bytes']}, coded payload "
            f"{exact['payload_length']:,}") in text
    assert "model uniform (model plugin uniform, fingerprint 0000000000000000)" in text
    assert "tokens subpixel (lossless), interleaved order" in text
    assert all(len(line) <= 80 for line in lines)


# -- 1, 6. bench: tables at 80 columns, notes everywhere, the plot --------------------------------
@pytest.fixture
def long_names(photo_dir):
    """photo_dir with one image renamed as cameras name them: long."""
    (photo_dir / "img2.png").rename(photo_dir / "DSC_0042_a_rather_long_holiday_photo_name.png")
    return photo_dir


def _json(*args):
    import json

    out = invoke(*args, "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_bench_table_fits_80_columns_with_every_number_whole(long_names):
    args = ("bench", "-c", "png,zstd,webp", "--images", long_names)
    data = _json(*args)
    out = invoke(*args)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in out.stdout
    text = out.stdout
    for row in data["results"]:  # bytes, bits per subpixel and ratio of every row, whole
        cells = next(line for line in lines if f"│ {row['compressor']} " in line
                     and f"{row['width']}×{row['height']}" in line
                     and f" {row['compressed_bits'] // 8:,} " in line)
        assert f" {row['bits_per_subpixel']:.3f} " in cells and f" {row['ratio']:.3f} " in cells
    for name, s in data["summary"].items():
        row = next(line for line in lines if line.startswith(f"│ {name} "))
        assert re.search(rf"│ +4 │ {s['bits_per_subpixel']:.3f} │ {s['total_ratio']:.3f} │ "
                         r"+[\d,]+ │ +[\d,]+ │ +✓ +│$", row), row
    # the summary is set apart from the per-image rows, and the run's line ends the report
    rule = next(i for i, line in enumerate(lines) if "Summary" in line and "═" in line)
    assert lines[0] == "Per image: 4 images × 3 compressors" and rule > 4 + 12
    assert re.fullmatch(r"4 of 4 images \(seed 0\), \d+\.\d s wall", lines[-1])
    # a long name wraps within its column instead of being cut
    names = "".join(line.split("│")[1].strip() for line in lines[:rule] if line.startswith("│"))
    assert "DSC_0042_a_rather_long_holiday_photo_name.png" in names
    assert "DSC_0042_a_rather_long_holiday_photo_name.png" not in text  # it did need wrapping


def column(lines: list[str], n: int) -> str:
    """Column n of a rich table's rows, its wrapped cells joined."""
    return "".join(line.split("│")[n].strip() for line in lines if line.startswith("│"))


def test_bench_wide_adds_columns_without_cutting_numbers(photo_dir):
    out = invoke("bench", "-c", "png,zstd", "--images", photo_dir, "--wide")
    assert out.exit_code == 0, out.output
    assert "…" not in out.stdout
    for header in ("model bits", "overhead", "encode s", "decode s", "mean ratio",
                   "coder overhead", "header bytes"):
        assert header in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) > 80  # wider, not squeezed
    narrow = invoke("bench", "-c", "png,zstd", "--images", photo_dir)
    assert "mean ratio" not in narrow.stdout and "model bits" not in narrow.stdout


def test_bench_notes_name_the_model_and_mark_estimates(photo_dir, tiny_model):
    out = invoke("bench", "-c", "imagegpt,png", "--images", photo_dir, "--model", tiny_model,
                 "--estimate")
    assert out.exit_code == 0, out.output
    assert all(len(line) <= 80 for line in out.stdout.splitlines())
    text = " ".join(out.stdout.split())
    lines = out.stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if "Summary" in line and "═" in line)
    # the label stays whole in its column, wrapped or not: the column's width follows the
    # measured speeds' digits (rows sorted by bpsp: png may come first)
    labels = [part.replace(" ", "") for part in column(lines[rule:], 1).split("png")]
    assert sorted(labels) == ["", "imagegpt(estimate)"]
    sizes = [line.split("│")[4].strip() for line in lines[:rule]
             if line.startswith("│") and "imagegpt" in line]
    assert len(sizes) == 4 and all(re.fullmatch(r"≈[\d,]+", size) for size in sizes)
    assert "imagegpt: model tiny-imagegpt0 (fingerprint " in text
    assert "model code length" in text
    assert "estimate (≈): the model's code length −Σlog2 p from one parallel pass; no file was " \
           "written or decoded" in text


def test_json_and_markdown_together_are_refused(photo_dir):
    out = invoke("bench", "-c", "png", "--images", photo_dir, "--json", "--markdown")
    assert out.exit_code == 2
    assert lines_of(out.output) == [
        "igc: error: --json and --markdown each choose how the result is printed; give one "
        "(--csv and --plot can be added to any)"]
    out = invoke("bench", "-c", "png", "--images", photo_dir, "--json", "--wide")
    assert lines_of(out.output) == [
        "igc: error: --wide widens the terminal table; JSON and CSV have every field"]


def test_markdown_carries_the_terminal_notes(photo_dir, tiny_model):
    args = ("bench", "-c", "imagegpt,png", "--images", photo_dir, "--model", tiny_model,
            "--estimate", "-n", "3", "--seed", "2")
    table = invoke(*args)
    markdown = invoke(*args, "--markdown")
    assert markdown.exit_code == 0, markdown.output
    md_lines = markdown.stdout.splitlines()
    assert md_lines[0] == ("| compressor | images | bits/subpixel | total ratio | mean ratio | "
                           "round trip |")
    notes = [line[2:].replace("\\", "") for line in md_lines if line.startswith("- ")]
    flat_table = " ".join(table.stdout.split())
    for note in notes[:-1]:  # the same notes as the terminal's, in the same order
        assert " ".join(note.split()) in flat_table, note
    assert re.fullmatch(r"3 of 4 images \(picked with seed 2\), \d+\.\d s wall", notes[-1])
    assert any(n.startswith("imagegpt: model tiny-imagegpt0 (fingerprint ") for n in notes)
    assert any(n.startswith("estimate (≈)") for n in notes)
    assert any(n.startswith("preprocessing: none (full resolution)") for n in notes)


def test_the_run_line_in_json(photo_dir):
    env = _json("bench", "-c", "png", "--images", photo_dir, "-n", "2")["environment"]
    assert env["images_available"] == 4 and env["seed"] == 0 and env["wall_seconds"] > 0


def _result(images: int, estimate: bool = False):
    """A bench result over `images` synthetic images, as the plot gets it."""
    import numpy as np

    import igc
    from igc.benchmark.run import PickedImages

    rng = np.random.default_rng(0)
    loaded = PickedImages(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(images))
    loaded.available = images + 5
    return igc.bench(loaded, ["png", "zstd"], seed=3, preprocessing="center crop to 8x8")


def test_plot_names_what_was_measured_and_summarises(tmp_path):
    from igc.reporters.files import figure

    result = _result(5)
    result.environment["models"] = {"imagegpt": {
        "model": "igc-rgb16-v2", "fingerprint": "c862dd8d8d6cbab8", "parameters": 956160,
        "tile": 16, "tokenizer": "subpixel", "mode": "subpixel", "coder": "range"}}
    result.summary["png"]["estimate"] = True  # marked as an estimate would be
    fig = figure(result)
    title = fig._suptitle.get_text()
    assert "preprocessing: center crop to 8x8" in title
    assert "5 of 10 images (picked with seed 3)" in title
    assert "imagegpt: model igc-rgb16-v2 (fingerprint c862dd8d8d6cbab8" in title
    assert "hatched, (estimate): the model's code length" in title
    per_image, total = fig.axes
    assert per_image.get_title() == "Ratio per image" and total.get_title() == "Total ratio"
    labels = [t.get_text() for t in total.get_xticklabels()]
    assert sorted(label.split("\n")[0] for label in labels) == ["png (estimate)", "zstd"]
    assert any(p.get_hatch() == "//" for p in per_image.patches)
    assert "png (estimate)" in [t.get_text() for t in per_image.get_legend().get_texts()]


def test_plot_of_many_images_is_a_distribution_of_capped_width(tmp_path):
    from PIL import Image

    import igc
    from igc.reporters.files import MAX_BARS_IMAGES, figure

    result = _result(MAX_BARS_IMAGES + 10)
    fig = figure(result)
    assert fig.axes[0].get_title() == f"Ratio per image: distribution over {MAX_BARS_IMAGES + 10} " \
                                      "images"
    igc.report(result, "plot", tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as im:
        assert im.width <= 1920
    igc.report(_result(300), "plot", tmp_path / "q.png")
    with Image.open(tmp_path / "q.png") as im:
        assert im.width <= 1920  # 300 images once gave a 32,640-pixel-wide PNG


# -- the README's commands at 80 columns ----------------------------------------------------------
def _whole(out) -> None:
    assert out.exit_code == 0, out.output
    assert "…" not in out.output, out.output
    assert all(len(line) <= 80 for line in out.output.splitlines()), out.output


@pytest.mark.parametrize("args", [
    ("bench", "-c", "png,zstd,webp,jxl"),  # the bundled gallery, as the README's main job
    ("bench", "-c", "imagegpt,png,jxl", "--estimate", "-n", "3"),
    ("models",),
    ("plugins",),
    ("--help",),
])
def test_readme_commands_print_every_number_whole_at_80_columns(args):
    _whole(invoke(*args))


@pytest.mark.slow
def test_speed_prints_every_number_whole_at_80_columns():
    _whole(invoke("speed", "--count", "1", "--crop", "16"))


# -- issue 26, §3: what a newcomer meets -----------------------------------------------------------
def test_report_returns_the_text_and_prints_nothing(capsys):
    import numpy as np

    import igc

    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    result = igc.bench([image], ["png", "zstd"])
    capsys.readouterr()
    text = igc.report(result, "markdown")
    assert text.startswith("| compressor | images | bits/subpixel")
    assert "| png | 1 |" in text
    assert capsys.readouterr().out == ""  # returned, not printed
    assert igc.report(result, "markdown", "-") is None
    assert capsys.readouterr().out == text  # "-": printed


def test_bench_says_where_the_csv_went(tmp_path):
    _png(tmp_path / "a.png")
    out = invoke("bench", "-c", "png", "-i", tmp_path / "a.png", "--csv", tmp_path / "r.csv")
    assert out.exit_code == 0, out.output
    assert f"wrote the CSV to {tmp_path / 'r.csv'}" in " ".join(out.stderr.split())
    assert (tmp_path / "r.csv").read_text().startswith("image,compressor")


def test_igc_named_files_that_meet_in_one_folder_all_decode(tmp_path):
    """a.png.igc and a.jpg.igc in one --out-dir: a.png and a.jpg.png, not a refused batch."""
    png = _png(tmp_path / "a.png", 0, shape=(6, 7, 3))
    jpg = _png(tmp_path / "other.png", 1, shape=(5, 4, 3))
    out = invoke("compress", tmp_path / "a.png", "--out-dir", tmp_path / "OUT", "-m", "uniform")
    assert out.exit_code == 0, out.output
    out = invoke("compress", tmp_path / "other.png", "-o", tmp_path / "OUT" / "a.jpg.igc",
                 "-m", "uniform")
    assert out.exit_code == 0, out.output
    out = invoke("decompress", tmp_path / "OUT" / "a.jpg.igc", tmp_path / "OUT" / "a.png.igc",
                 "--out-dir", tmp_path / "DEC")
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "DEC").iterdir()) == ["a.jpg.png", "a.png"]
    assert (_pixels(tmp_path / "DEC" / "a.png") == png).all()
    assert (_pixels(tmp_path / "DEC" / "a.jpg.png") == jpg).all()
    # names igc did not make still clash, and are refused naming both
    (tmp_path / "OUT" / "a.igc").write_bytes((tmp_path / "OUT" / "a.png.igc").read_bytes())
    out = invoke("decompress", tmp_path / "OUT" / "a.igc", tmp_path / "OUT" / "a.png.igc",
                 "--out-dir", tmp_path / "DEC2")
    assert out.exit_code != 0 and "would both be written to" in out.output


def test_info_on_an_image_says_what_it_is(tmp_path):
    _png(tmp_path / "x.png")
    out = invoke("info", tmp_path / "x.png")
    assert out.exit_code != 0
    assert lines_of(out.output) == [f"igc: error: {tmp_path / 'x.png'} is not an .igc file (it is a "
                                    "PNG image); igc decompress reads the files igc compress writes"]


@pytest.mark.parametrize(("fixture", "says"), [
    ("igc-rgb16-v2-numerics2.igc", "to the same pixels on any machine"),
    ("igc-rgb16-v3.igc", "only on the kind of CPU that wrote it"),  # numerics 1
    ("igc-rgb16-w256-v4.igc", "only on the kind of CPU that wrote it"),
])
def test_info_says_where_a_file_decodes(fixture, says):
    from pathlib import Path

    out = invoke("info", Path(__file__).parent / "data" / fixture)
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert f"decodes {says}" in text


def test_compress_help_sends_the_user_to_igc_models_for_names():
    out = invoke("compress", "--help")
    text = " ".join(out.output.replace("│", " ").split())  # the help's box, unwrapped
    assert "A model: a shipped one's name (see `igc models`)" in text


@pytest.mark.parametrize("width", [40, 60, 80, 120])
@pytest.mark.parametrize("total", [768, 1_179_648, 12_582_912])
def test_the_progress_bar_is_one_line_that_fits(width, total):
    """A 7- or 8-digit token count must not wrap the bar: wrapped, its clearing ate the file's line
    and left its last frame on screen."""
    from igc.cli.files import bar_line

    for done in (0, total // 3, total):
        for name in ("a.png", "[12/300] a-very-long-photograph-name-from-a-camera.png"):
            line = bar_line(name, done, total, 83.0, width).plain
            assert len(line) <= width - 1 and "\n" not in line, (width, line)
            assert f"{100 * done // total:3d}%" in line
    assert f"{total:,}/{total:,} tokens" in bar_line("a.png", total, total, 0, 80).plain
    assert "loading" in bar_line("a.png", 0, None, None, 80).plain


def test_file_lines_wrap_at_spaces_on_a_narrow_terminal(monkeypatch, capsys):
    import os

    from igc.cli import files

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr(files.sys, "stdout", Terminal())
    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((40, 24)))
    said = []
    monkeypatch.setattr(files.typer, "echo", lambda text, err=False: said.append(text))
    reporter = files.Output([], quiet=False)
    reporter.say("photos/kodim23.png -> OUT/kodim23.png.igc: 768×512, 423,786 bytes, "
                 "2.874 bits/subpixel, ratio 2.784, 1 min 46.2 s")
    lines = said[0].splitlines()
    assert all(len(line) <= 39 for line in lines) and len(lines) > 1
    assert "bits/subpixel," in said[0].split() and "2.874" in said[0].split()  # words whole


@pytest.mark.parametrize("command", [
    ["bench", "-c", "png", "-q"], ["speed", "-n", "1", "--crop", "8", "-b", "int"],
    ["train", "--steps", "1", "--no-compile"],
])
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_a_seed_numpy_or_torch_cannot_take_is_one_line(tmp_path, command, seed):
    """numpy refuses negative seeds and torch those past int64, in words that name neither the
    option nor the range: every command checks --seed first."""
    from helpers import error_line

    result = invoke(*command, "--seed", seed, *(["--out", tmp_path / "run"]
                                                if command[0] == "train" else []))
    assert error_line(result) == ("igc: error: --seed must be a whole number from 0 to "
                                  f"2**63 - 1, got {seed}")
    assert result.exit_code == 2
