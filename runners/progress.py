"""Progress bars (rich) shared by the runner and the suites.

The runner opens one live Progress for a run; suites call ``track`` for their inner loops
and get a bar under the seed bar. Outside a run (or when stderr is not a terminal and
PAPERCLUB_PROGRESS is not set) the bars collapse to nothing and ``track`` is a plain loop.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_progress = None


def enabled() -> bool:
    flag = os.environ.get("PAPERCLUB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()


@contextmanager
def live():
    """Open the run's progress display (no-op when disabled)."""
    global _progress
    if not enabled() or _progress is not None:
        yield _progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    _progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TimeElapsedColumn(), console=Console(stderr=True), transient=False)
    try:
        with _progress:
            yield _progress
    finally:
        _progress = None


def track(items: Iterable[T], description: str, total: int | None = None, work: str | None = None) -> Iterator[T]:
    """``items`` with a bar under the seed's (a plain loop when bars are off).

    ``work`` says the loop is all of its phase's work that grows with the phase's steps
    (``Suite.phase_steps``), for the rehearsal's projection (``runners.phases.tracked``): its time is
    projected linearly, and what the phase spends outside such loops (building, loading, caching) is fixed.
    ``"items"``: items of any size; ``"steps"``: equal steps (training steps), so the first one's excess over
    the median of the others is warm-up (lazy initialisation, kernel selection), fixed too. Nested loops
    count once. A phase with no such loop is projected linearly as a whole."""
    if work not in (None, "items", "steps"):
        raise ValueError(f"work must be None, 'items' or 'steps', got {work!r}")
    starts, t0 = [], time.perf_counter()
    try:
        for item in _bar(items, description, total):
            starts.append(time.perf_counter())
            yield item
    finally:
        if work is not None:
            from runners import phases

            end = time.perf_counter()
            phases.tracked(t0, end, warmup(starts, end) if work == "steps" else 0.0)


def warmup(starts: list[float], end: float) -> float:
    """The first iteration's excess over the median of the others (at least two), from each iteration's
    start time and the loop's end: the part of a loop of equal steps that does not recur."""
    durations = [b - a for a, b in zip(starts, [*starts[1:], end], strict=True)]
    if len(durations) < 3:
        return 0.0
    return max(0.0, durations[0] - statistics.median(durations[1:]))


def _bar(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    if _progress is None:
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    task = _progress.add_task(description, total=total)
    try:
        for item in items:
            yield item
            _progress.advance(task)
    finally:
        _progress.remove_task(task)


class Laps(dict):
    """Wall-clock seconds of a run's named phases, each from the end of the one before (``done``), and
    the whole (``total``)."""

    def __init__(self):
        super().__init__()
        self.start = self._last = time.perf_counter()

    def done(self, phase: str, parts: dict[str, float] | None = None) -> None:
        """End ``phase`` (recorded with its peak memory: ``runners.phases``). ``parts``: the seconds its
        kinds of work took (jobs of a pool, which may overlap), recorded as phases of their own that
        share the phase's wall time in proportion."""
        from runners import phases

        now = time.perf_counter()
        self[phase], self._last = now - self._last, now
        phases.record(phase, self[phase], parts)

    def run(self, phase: str, fn, *args, parts=None, **kwargs):
        """``fn(*args, **kwargs)`` as the phase ``phase``: recorded like ``done``, and its result kept so
        that a resumed seed loads it instead of running it again (``runners.phases``). ``parts``: a
        function of the result giving ``done``'s parts."""
        from runners import phases

        kept = phases.load(phase)
        if kept is not phases.MISSING:
            self[phase], self._last = 0.0, time.perf_counter()
            return kept
        before = len(phases.rows())
        result = fn(*args, **kwargs)
        self.done(phase, parts(result) if parts else None)
        phases.keep(phase, result, phases.rows()[before:])
        return result

    def total(self) -> float:
        return time.perf_counter() - self.start
