"""One progress bar over a whole run: images and subpixels done of all, with an ETA.

It counts whole images (every compressor done on one), weighted by their subpixels so that a
large photo moves the bar more than a thumbnail, and shows nothing per codec. Drawn on standard
error when that is a terminal (rich, transient); `RunBar(..., enabled=False)` draws nothing.
Updates may come from any thread (rank 0 hears the other ranks on a background thread).
"""

from __future__ import annotations

import threading
from typing import Any


class RunBar:
    def __init__(self, images: int, subpixels: int, *, done_images: int = 0,
                 done_subpixels: int = 0, enabled: bool = True,
                 description: str = "benchmarking") -> None:
        self._lock = threading.Lock()
        self.images, self.done = images, done_images
        self._progress: Any = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[images]} images, {task.completed:,.0f}/{task.total:,.0f} "
                       "subpixels"),
            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=True)
        self._task = self._progress.add_task(description, total=max(subpixels, 1),
                                             completed=done_subpixels,
                                             images=f"{done_images}/{images}")

    def __enter__(self) -> RunBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, subpixels: int) -> None:
        """One more image done."""
        with self._lock:
            self.done += 1
            if self._progress is not None:
                self._progress.update(self._task, advance=subpixels,
                                      images=f"{self.done}/{self.images}")
