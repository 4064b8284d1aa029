"""The command line as a user meets it (issue 17): one-line usage errors, help texts without type
tags, tables that fit 80 columns, progress, many files, pipes."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from igc.cli.app import app

runner = CliRunner()


def invoke(*args, env=None, input=None):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})},
                         input=input)


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


def test_train_help_says_where_its_default_data_lives():
    out = invoke("train", "--help")
    text = " ".join(line.strip("│ ") for line in out.output.splitlines())
    text = " ".join(text.split())
    assert "../shared/data" in text
    for part in ("photos/bsds500/train", "photos/sun_hays80", "cifar10/train_first4000.npz",
                 "photos/bsds500/test"):
        assert part in text
