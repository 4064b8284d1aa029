"""What `igc compress` and `igc decompress` share: many inputs, `-` for the standard streams,
output names checked before any coding, a progress bar on a terminal, one line per file.

- Inputs: files, folders (their files of the kind the command reads, not recursively) or `-`
  (standard input, then the only input). Outputs: `-o FILE` for one input (`-o -`: standard
  output), `--out-dir DIR` for any number, else beside each input.
- Every output is checked before anything is coded (igc/cli/outputs.py), and two inputs that
  would write one output are refused, naming both.
- With one input a failure is the command's one `igc: error:` line. With several, a file that
  fails is reported on its own line and the others go on; the command then ends with a line
  naming the files that failed and exit status 1.
- A file's line says what was written, its size, bits per subpixel and the time it took. While
  a file is coded, a progress bar with an ETA runs on standard error when that is a terminal;
  `--quiet` prints nothing but errors. Lines go to standard output, or to standard error when
  the data does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from igc.cli.errors import debug, fail, write_stdout
from igc.cli.outputs import check_output, write_atomic
from igc.core.numerics import engine_choices
from igc.errors import FormatError, IgcError, ImageError, UsageError

# options both commands take, with one wording
FORCE = typer.Option(False, "--force", "-f", help="Overwrite existing outputs.")
THREADS = typer.Option(None, "--threads", help="CPU threads for the model.")
ENGINE = typer.Option(None, "--engine", metavar="NAME",
                      help=f"What computes the model's integer numerics: {engine_choices()}. "
                           "Every engine gives the same files.")
QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (no progress, no lines).")
WORKERS = typer.Option(1, "--workers", metavar="N",
                       help="Code the files on N processes of this machine (torch.distributed, "
                            "gloo on 127.0.0.1; across machines: torchrun, see docs/scale.md).")

STDIO = "-"
STDIN, STDOUT = "standard input", "standard output"  # how lines name them


@dataclass
class Job:
    """One input and where its output goes."""

    label: str  # how messages name the input
    source: Path | None  # None: standard input
    output: Path | None = None  # None: standard output
    error: IgcError | None = None  # found before any work (a missing file, an empty folder)


def plan(sources: list[str], *, output: Path | None, out_dir: Path | None,
         default_output: Callable[[Path], Path], folder_files: Callable[[Path], list[Path]],
         looked_for: str, settle: Callable[[list[Job]], None] | None = None) -> list[Job]:
    """The jobs for the command line's inputs, with their outputs; `settle` may rename default
    outputs that would clash before clashes are refused."""
    if not sources:
        raise UsageError("no input given")
    if STDIO in sources and len(sources) > 1:
        raise UsageError("- (standard input) must be the only input")
    if output is not None and out_dir is not None:
        raise UsageError("give -o for one output or --out-dir for many, not both")
    if "" in sources:  # Path("") is the current folder: every image in it would be coded
        raise UsageError("an input is an empty name (an unset variable?); give a file, a "
                         "folder, or - for standard input")
    jobs: list[Job] = []
    for raw in sources:
        if raw == STDIO:
            if typer.get_binary_stream("stdin").isatty():
                raise UsageError("- reads standard input, which is a terminal: redirect a file "
                                 "into it (< FILE) or pipe one")
            jobs.append(Job(STDIN, None))
            continue
        path = Path(raw)
        if path.is_dir():
            found = folder_files(path)
            jobs += [Job(str(f), f) for f in found] or [Job(str(path), path, error=UsageError(
                f"no files found in {path} (looked for {looked_for})"))]
        elif not path.exists():
            jobs.append(Job(str(path), path, error=UsageError(f"{path}: no such file")))
        else:
            jobs.append(Job(str(path), path))
    if output is not None:
        folders = [s for s in sources if s != STDIO and Path(s).is_dir()]
        if folders:
            raise UsageError(f"-o names one output file, but {folders[0]} is a folder of inputs: "
                             "use --out-dir DIR")
        if len(jobs) > 1:
            raise UsageError(f"-o names one output file, but {len(jobs)} inputs were given: use "
                             "--out-dir DIR")
    for job in jobs:
        if job.error:
            continue
        if output is not None:
            job.output = None if str(output) == STDIO else output
        elif out_dir is not None:
            if job.source is None:
                raise UsageError("- (standard input) has no file name to use in --out-dir; "
                                 "give -o FILE or -o -")
            job.output = out_dir / default_output(job.source).name
        elif job.source is not None:
            job.output = default_output(job.source)
    if settle is not None and output is None:
        settle(jobs)
    _refuse_collisions(jobs)
    return jobs


def _refuse_collisions(jobs: list[Job]) -> None:
    seen: dict[Path, str] = {}
    for job in jobs:
        if job.output is None or job.error:
            continue
        key = Path(os.path.realpath(job.output))  # Path.resolve raises on a loop of links
        if key in seen:
            raise UsageError(f"{seen[key]} and {job.label} would both be written to {job.output}; "
                             "write them to different folders")
        seen[key] = job.label


def check_outputs(jobs: list[Job], *, force: bool, out_dir: Path | None, binary: str) -> None:
    """Every output, checked before any coding; --out-dir is created when missing. With one
    input, what is already known to be wrong with it is said first."""
    if len(jobs) == 1 and jobs[0].error:
        raise jobs[0].error
    if out_dir is not None and any(not j.error for j in jobs):
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--out-dir {out_dir} is not a folder")
        if os.path.islink(out_dir) and not out_dir.exists():  # mkdir would say "File exists"
            raise UsageError(f"--out-dir {out_dir} is a symbolic link to nothing "
                             f"({os.readlink(out_dir)}); give a folder")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from None
    for job in jobs:
        if job.error:
            continue
        if job.output is None:
            if typer.get_binary_stream("stdout").isatty():
                raise UsageError(f"refusing to write {binary} to a terminal: redirect standard "
                                 "output, or give -o FILE")
        else:
            check_output(job.output, force=force,
                         inputs=[job.source] if job.source is not None else [])


def write(output: Path | None, data: bytes, force: bool) -> None:
    """To a file (atomically, igc/cli/outputs.py) or to standard output."""
    if output is None:
        write_stdout(data)
    else:
        write_atomic(output, data, force)


def seconds(s: float) -> str:
    if s < 10:
        return f"{s:.2f} s"
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {s % 60:04.1f} s"


def shown(output: Path | None) -> str:
    return STDOUT if output is None else str(output)


def bits_per_subpixel(n_bytes: int, height: int, width: int) -> str:
    return f"{n_bytes * 8 / (height * width * 3):.3f} bits/subpixel"


class Output:
    """Where a command's lines go (stdout, or stderr when the data goes to stdout) and its
    progress bar (standard error, terminals only)."""

    def __init__(self, jobs: list[Job], *, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.to_stderr = any(j.output is None and not j.error for j in jobs)
        self.console = Console(stderr=True, highlight=False)
        self.live = not quiet and self.console.is_terminal
        self.bar: Any = None

    def say(self, line: str) -> None:
        """A line on stdout (stderr when the data goes to stdout); on a terminal, wrapped at
        spaces to its width, never in the middle of a word."""
        if self.quiet:
            return
        stream = sys.stderr if self.to_stderr else sys.stdout
        if stream.isatty():
            import shutil
            import textwrap

            indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
            line = textwrap.fill(line, width=max(shutil.get_terminal_size().columns - 1, 40),
                                 subsequent_indent=indent, break_long_words=False,
                                 break_on_hyphens=False)
        typer.echo(line, err=self.to_stderr)

    def error(self, message: str) -> None:
        sys.stderr.write(f"igc: error: {message}\n")

    @contextmanager
    def status(self, what: str) -> Iterator[None]:
        """A spinner while `what` happens (loading the model), on a terminal."""
        if not self.live:
            yield
            return
        with self.console.status(what):
            yield

    @contextmanager
    def progress(self) -> Iterator[None]:
        """One file's bar (igc/cli/files.py, `bar_line`), cleared when the file is done, so that
        the file's line is printed after it and nothing of the bar stays on screen."""
        if not self.live:
            yield
            return
        from rich.progress import Progress, ProgressColumn

        console = self.console

        class Line(ProgressColumn):
            def render(self, task: Any) -> Any:
                return bar_line(task.description, task.completed, task.total,
                                task.time_remaining, console.width)

        self.bar = Progress(Line(), console=console, transient=True)
        try:
            with self.bar:
                yield
        finally:
            self.bar = None

    def tokens(self, description: str) -> Callable[[int, int], None] | None:
        """A callback for igc.compress/decompress's `progress`, drawing one file's bar."""
        if self.bar is None:
            return None
        bar = self.bar
        for task in list(bar.task_ids):
            bar.remove_task(task)
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return update


def bar_line(description: str, done: float, total: float | None, remaining: float | None,
             width: int) -> Any:
    """One line of at most `width - 1` columns (a full last column makes some terminals wrap):
    the file's name (shortened from the left), a bar, the percentage, the tokens and the ETA.
    What does not fit is left out, the counts first, never wrapped."""
    from rich.text import Text

    width = max(width - 1, 20)
    if total is None:  # the model is still loading
        return Text(_shorten(description, width - 12) + " loading…", no_wrap=True)
    fraction = done / total if total else 1.0
    eta = ("-:--:--" if remaining is None else
           f"{int(remaining) // 3600}:{int(remaining) % 3600 // 60:02d}:{int(remaining) % 60:02d}")
    percent = f"{int(fraction * 100):3d}%"
    tails = [f" {percent} {done:,.0f}/{total:,.0f} tokens eta {eta}",
             f" {percent} eta {eta}", f" {percent}"]
    for tail in tails:
        name = _shorten(description, min(24, width - len(tail) - 10))
        bar = width - len(name) - 1 - len(tail)
        if bar >= 8:
            break
    filled = round(bar * fraction)
    line = Text(no_wrap=True, overflow="crop")
    line.append(name + " ")
    line.append("━" * filled, style="bar.complete" if fraction < 1 else "bar.finished")
    line.append("━" * (bar - filled), style="bar.back")
    line.append(tail)
    return line


def _shorten(text: str, room: int) -> str:
    room = max(room, 4)
    return text if len(text) <= room else "…" + text[-(room - 1):]


# one job: its line (what was written, size, bits per subpixel; the time is added), then any
# detail lines
Work = Callable[[Job, Output], list[str]]


def run(jobs: list[Job], work: Work, reporter: Output, *, verb: str, group: Any = None) -> None:
    """`work` on every job, one line each; with several inputs a failure does not stop the rest
    and the command ends with a line naming the files that failed. With a `group` of several
    ranks (`joined`), the jobs are sharded over them and rank 0 prints every line."""
    if group is not None and group.world > 1:
        _run_sharded(jobs, work, reporter, verb=verb, group=group)
        return
    single = len(jobs) == 1
    failed: list[str] = []
    start = time.perf_counter()
    for n, job in enumerate(jobs, 1):
        if job.error:
            if single:
                raise job.error
            reporter.error(_named(job.label, job.error))
            failed.append(job.label)
            continue
        began = time.perf_counter()
        try:
            with reporter.progress():  # cleared before the file's line is printed
                lines = work(job, reporter if single else _numbered(reporter, n, len(jobs)))
        except (KeyboardInterrupt, BrokenPipeError):  # a closed standard output ends all
            raise
        except Exception as exc:
            if single and isinstance(exc, ABOUT_THE_INPUT) and job.source is not None:
                _name_the_input(exc, job.label)
            if single or debug():
                raise
            reporter.error(_named(job.label, exc))
            failed.append(job.label)
            continue
        reporter.say(f"{lines[0]}, {seconds(time.perf_counter() - began)}")
        for line in lines[1:]:
            reporter.say(line)
    if single:
        return
    done = len(jobs) - len(failed)
    reporter.say(f"{verb} {done} of {len(jobs)} files in {seconds(time.perf_counter() - start)}")
    if failed:
        raise fail(f"{len(failed)} of {len(jobs)} files failed: {', '.join(failed)}")


# -- several processes: --workers N, or ranks launched by torchrun -------------------------------
def workers_for(jobs: list[Job], workers: int) -> int:
    """How many processes to start for `--workers N` (none past the number of files), after
    refusing what cannot be sharded."""
    from igc import api

    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and api.launched():
        raise UsageError("--workers N starts processes on this machine; launched by torchrun, "
                         "give torchrun --nproc-per-node N instead")
    if workers > 1 and any(j.source is None or j.output is None for j in jobs if not j.error):
        raise UsageError("--workers codes files: standard input and output take one process")
    return max(1, min(workers, sum(1 for j in jobs if not j.error)))


def spawn(command: Callable[..., Any], params: dict, workers: int) -> None:
    """Run the command itself on `workers` processes forming one group (the environment
    torchrun would give on 127.0.0.1); rank 0 prints the lines. Ends with rank 0's status."""
    import os

    from igc import api

    threads = params.get("threads") or max(1, (os.cpu_count() or 1) // workers)
    code = api.spawn_workers(workers, rank_main, (command, {**params, "workers": 1}),
                             threads=threads)
    if code:
        raise typer.Exit(code)


def begin(jobs: list[Job], command: Callable[..., Any], params: dict, *, workers: int,
          check: Callable[[], None], out_dir: Path | None, threads: int | None,
          engine: str | None, quiet: bool) -> tuple[Output, Any] | None:
    """What compress and decompress do before any file: with `--workers N`, check the outputs
    and run the command on N processes (None: they did the work); else join the group this
    process is a rank of (`joined`), set threads and engine, and return (reporter, group).
    Ranks other than 0 print nothing."""
    from igc import api

    if workers > 1:
        check()
        spawn(command, params, workers)
        return None
    group = joined(check, out_dir)
    api.set_threads(threads or None)
    api.set_engine(engine)
    return Output(jobs, quiet=quiet or bool(group and group.rank)), group


def rank_main(command: Callable[..., Any], params: dict) -> int:
    """One spawned rank: the command, launched (it joins the group from its environment)."""
    try:
        command(**params)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


def joined(check: Callable[[], None], out_dir: Path | None = None) -> Any:
    """The group this process is a rank of (None when it runs alone, after `check`). Rank 0
    runs `check` (the outputs, which creates --out-dir) before any rank writes a file, and
    tells the others when it fails; the others create `out_dir` too (on another machine it is
    another folder)."""
    from igc import api
    from igc.errors import RankStopped

    if not api.launched():
        check()
        return None
    group = api.join_group()
    error: IgcError | None = None
    if group.rank == 0:
        try:
            check()
        except IgcError as exc:
            error = exc
    verdict = group.broadcast(None if error is None else (str(error), error.exit_code))
    if error is not None or verdict is not None:
        group.close()
        raise error if error is not None else RankStopped(*verdict)
    if out_dir is not None and group.rank:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            group.close()
            raise UsageError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") \
                from None
    return group


def _run_sharded(jobs: list[Job], work: Work, reporter: Output, *, verb: str,
                 group: Any) -> None:
    """The jobs in contiguous shards over the ranks; each result goes to rank 0, which prints
    the lines in the inputs' order as they become ready, then the summary."""
    import threading

    start = time.perf_counter()
    todo = [n for n, job in enumerate(jobs) if not job.error]
    base, extra = divmod(len(todo), group.world)
    first = group.rank * base + min(group.rank, extra)
    mine = todo[first : first + base + (1 if group.rank < extra else 0)]
    results: dict[int, tuple[list[str] | None, str | None]] = {
        n: (None, _named(job.label, job.error)) for n, job in enumerate(jobs) if job.error}
    shown_upto = [0]
    lock = threading.Lock()

    def show() -> None:  # rank 0: every result whose predecessors are printed
        with lock:
            while shown_upto[0] in results:
                lines, error = results[shown_upto[0]]
                if error is not None:
                    reporter.error(error)
                for line in lines or []:
                    reporter.say(line)
                shown_upto[0] += 1

    def handle(rank: int, message: dict) -> None:
        results[message["index"]] = (message["lines"], message["error"])
        show()

    group.start(handle)
    try:
        for n in mine:
            job, began = jobs[n], time.perf_counter()
            try:
                lines, error = work(job, reporter), None
                lines[0] = f"{lines[0]}, {seconds(time.perf_counter() - began)}"
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if debug():
                    raise
                lines, error = None, _named(job.label, exc)
            group.send({"kind": "file", "index": n, "lines": lines, "error": error})
        group.finish()
    except KeyboardInterrupt:
        lost = group.interrupted()
        if lost is not None:
            raise lost from None
        raise
    finally:
        group.close()
    if group.rank != 0:
        return
    show()
    failed = [jobs[n].label for n in sorted(results) if results[n][1] is not None]
    reporter.say(f"{verb} {len(jobs) - len(failed)} of {len(jobs)} files in "
                 f"{seconds(time.perf_counter() - start)}")
    if failed:
        raise fail(f"{len(failed)} of {len(jobs)} files failed: {', '.join(failed)}")


# Errors about what an input holds (not about where the output goes): a lone file's are named.
ABOUT_THE_INPUT = (FormatError, ImageError)


# how the messages that name their file begin after the name ("a.png: ...", "a.png has ...");
# any other start is the message's own ("image of 5×6 = 30 pixels ..." for a file named image)
NAMED_BY = (":", " is ", " has ", " does ")


def _name_the_input(exc: IgcError, label: str) -> None:
    """A lone file's error about what it holds names the file, as each of several files' does:
    its first line gets the label in front unless it already names it (NAMED_BY)."""
    first, *rest = str(exc).split("\n", 1)
    if not first.startswith(tuple(label + after for after in NAMED_BY)):
        exc.args = ("\n".join([f"{label}: {first}", *rest]),)


def _named(label: str, exc: Exception) -> str:
    message = (str(exc).splitlines() or [""])[0] if isinstance(exc, IgcError) else (
        f"unexpected {type(exc).__name__}: {exc}")
    return message if message.startswith(tuple(label + after for after in NAMED_BY)) else (
        f"{label}: {message}")


class _numbered:
    """The reporter, with "[n/N]" before the file's name on its progress bar."""

    def __init__(self, reporter: Output, n: int, total: int) -> None:
        self._reporter, self._prefix = reporter, f"[{n}/{total}] "

    def tokens(self, description: str) -> Callable[[int, int], None] | None:
        return self._reporter.tokens(self._prefix + description)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)
