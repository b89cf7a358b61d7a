"""The named phases of one seed's run, recorded as each finishes.

A suite marks its phases with ``runners.progress.Laps.done(name)``; each lap is recorded here with
its wall seconds and the peak memory of this process on every device since the lap before:
``cuda:i`` from torch's allocator (``max_memory_allocated``, reset at each lap), ``cpu`` as the
peak resident set size (Linux resets it at each lap; elsewhere it is the peak so far). Memory of
worker processes is not included. While a seed runs (``begin``), the laps are written to the seed's
``phases.json`` as they finish, so a run cut off keeps what it finished; the rehearsal projects the
real run's time from them.

A phase run through ``Laps.run`` also keeps its result (pickled, in the seed's ``phases/`` folder) once
it finishes: when the seed runs again in the same folder (``paperclub run --resume``), a finished
phase's result is loaded instead of computed, and its row says ``resumed``. A result that cannot be
pickled is not kept (that phase runs again), with a warning.
"""

from __future__ import annotations

import pickle
import re
import resource
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from runners.rundir import atomic_write_json

PHASES = "phases.json"
KEPT = "phases"  # the seed's folder of finished phases' results
MISSING = object()
_state: dict = {"path": None, "rows": [], "loops": []}
_worker: dict = {"kept": None}  # a worker process's folder for checkpoints (``checkpoints_in``)


def _cuda():
    """torch.cuda where torch is imported and has made a CUDA context, else None."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


def _reset_peaks() -> None:
    cuda = _cuda()
    if cuda is not None:
        for i in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(i)
    with suppress(OSError):  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_gb() -> dict[str, float]:
    """Peak memory since the last reset, per device, in GB (1e9 bytes)."""
    peaks = {}
    cuda = _cuda()
    if cuda is not None:
        peaks.update({f"cuda:{i}": cuda.max_memory_allocated(i) / 1e9 for i in range(cuda.device_count())})
    try:
        hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
        peaks["cpu"] = int(hwm.split()[1]) * 1024 / 1e9
    except (OSError, StopIteration):
        peaks["cpu"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return {k: round(v, 3) for k, v in peaks.items()}


def begin(seed_dir: Path | None) -> None:
    """Start recording a seed's phases into ``seed_dir/phases.json`` (None: keep them in memory only)."""
    _state["path"] = None if seed_dir is None else Path(seed_dir).resolve() / PHASES
    _state.update(rows=[], loops=[])
    _worker["kept"] = None  # a pool run inline set it for the seed before
    _reset_peaks()


@contextmanager
def recording(seed_dir: Path):
    """Record the phases of the seed run inside the block into ``seed_dir/phases.json``; after it, laps
    are kept in memory only."""
    begin(seed_dir)
    try:
        yield
    finally:
        _state["path"] = _worker["kept"] = None


def tracked(start: float, end: float, warmup: float = 0.0) -> None:
    """A tracked loop of the current phase ran from ``start`` to ``end`` (``time.perf_counter``), ``warmup``
    seconds of it not recurring with its steps (``runners.progress.track``)."""
    _state["loops"].append((start, end, warmup))


def _loop_seconds(loops: list[tuple[float, float, float]], since: float) -> tuple[float, float]:
    """(the time after ``since`` covered by any loop, the warm-up of the loops no other loop contains)."""
    covered, warm, reach = 0.0, 0.0, since
    for start, end, w in sorted(loops, key=lambda x: (x[0], -x[1])):
        if end <= reach:  # inside a loop already counted, or before the phase
            continue
        warm += w
        covered += end - max(start, reach)
        reach = end
    return covered, warm


def record(name: str, seconds: float, parts: dict[str, float] | None = None) -> None:
    """One finished phase: its seconds, the part of them that does not grow with its steps, and the peak
    memory per device since the previous one. The fixed part is the time outside tracked loops plus their
    warm-up; a phase without a tracked loop has none measured (``None``: a rehearsal projects all of it).
    Where ``parts`` gives the seconds of its kinds of work (which may have overlapped in a pool), each part
    is recorded instead, with its share of the phase's wall time (and of its fixed part) and the phase's
    peak memory."""
    peak, total = peak_memory_gb(), sum((parts or {}).values())
    loops, warm = _loop_seconds(_state["loops"], time.perf_counter() - seconds)
    _state["loops"] = []
    fixed = min(seconds, max(0.0, seconds - loops + warm)) if loops > 0 else None
    shares = {k: v / total for k, v in parts.items()} if parts and total > 0 else {name: 1.0}
    _state["rows"] += [{"phase": k, "seconds": round(seconds * f, 6),
                        "fixed_seconds": None if fixed is None else round(fixed * f, 6), "peak_memory_gb": peak}
                       for k, f in shares.items()]
    _reset_peaks()
    if _state["path"] is not None:
        atomic_write_json(_state["path"], {"phases": _state["rows"]})


def _kept(name: str) -> Path | None:
    folder = kept_folder() or _worker["kept"]
    return None if folder is None else folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".pkl")


def kept_folder() -> Path | None:
    """The recorded seed's folder of kept results and checkpoints; None outside a recorded seed."""
    return None if _state["path"] is None else _state["path"].parent / KEPT


def checkpoints_in(folder: Path | None) -> None:
    """In a worker process of a recorded seed (a pool's initializer): keep ``Checkpoint``s in ``folder``, the
    seed's ``kept_folder()``, as its own process does; None: none."""
    _worker["kept"] = None if folder is None else Path(folder)


def kept(name: str):
    """What ``keep_result`` kept under ``name`` in this seed's folder, or MISSING."""
    path = _kept(name)
    if path is None or not path.is_file():
        return MISSING
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301 - this run's own folder


def keep_result(name: str, value) -> None:
    """Keep a finished piece of work's result (a phase, a job of a graph) for a resumed run, written
    whole, then renamed; one that cannot be pickled is not kept (it runs again), with a warning."""
    path = _kept(name)
    if path is None:
        return
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        print(f"{name!r}: result not kept for a resume ({type(exc).__name__}: {exc})", file=sys.stderr)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(blob)
    tmp.replace(path)


def load(name: str):
    """A finished phase's kept result (recording its rows as resumed), or MISSING."""
    saved = kept(name)
    if saved is MISSING:
        return MISSING
    rows_then, value = saved
    _state["rows"] += [{**row, "resumed": True} for row in rows_then]
    if _state["path"] is not None:
        atomic_write_json(_state["path"], {"phases": _state["rows"]})
    return value


def keep(name: str, value, rows_then: list[dict]) -> None:
    """Keep a finished phase's result and its rows for a resumed run."""
    keep_result(name, (rows_then, value))


class Checkpoint:
    """A long training loop's state, saved every ``every_s`` seconds into the seed's ``phases/`` folder
    (``PAPERCLUB_CHECKPOINT_S``, default 300) and loaded when the seed runs again (``--resume``); in a
    pool's worker, into the folder ``checkpoints_in`` named. Outside a recorded seed it saves nothing. The
    loop decides what its state is: everything it needs to go on exactly as if it had not stopped
    (weights, optimiser, schedule, generators, step, history)."""

    def __init__(self, name: str, every_s: float | None = None):
        import os

        self.path = _kept(f"{name}.ckpt")
        self.every_s = float(os.environ.get("PAPERCLUB_CHECKPOINT_S", 300)) if every_s is None else every_s
        self._last = time.monotonic()

    def load(self) -> dict | None:
        if self.path is None or not self.path.is_file():
            return None
        import torch

        return torch.load(self.path, weights_only=False)  # this run's own folder

    def due(self) -> bool:
        return self.path is not None and time.monotonic() - self._last >= self.every_s

    def save(self, state: dict) -> None:
        if self.path is None:
            return
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.part")
        torch.save(state, tmp)
        tmp.replace(self.path)
        self._last = time.monotonic()


def rows() -> list[dict]:
    """The phases recorded since ``begin``."""
    return list(_state["rows"])
