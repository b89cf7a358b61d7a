"""Locally optimal hyper-parameters, as the paper certifies them.

Coordinate search on discrete grids: evaluate the current point and every one-step neighbour
(one axis moved one grid step up or down); move to the best; stop when the current point is
better than all of its neighbours (it is *certified* locally optimal) or the run budget is
spent (then it is reported uncertified, never as optimal). Neighbours are evaluated as one
batch by ``evaluate_many`` so a process pool or a cluster launcher can run them side by side;
no point is evaluated twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Point = tuple[tuple[str, object], ...]


@dataclass
class SearchResult:
    best: dict
    loss: float
    certified: bool
    evaluated: dict[Point, float] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.evaluated)


def _key(point: dict) -> Point:
    return tuple(sorted(point.items()))


def neighbours(point: dict, grids: dict[str, list]) -> list[dict]:
    out = []
    for name, grid in grids.items():
        i = grid.index(point[name])
        for j in (i - 1, i + 1):
            if 0 <= j < len(grid):
                out.append({**point, name: grid[j]})
    return out


def local_optimum(evaluate_many: Callable[[list[dict]], Iterable[float]], grids: dict[str, list], start: dict,
                  max_runs: int = 50) -> SearchResult:
    for name, grid in grids.items():
        if start[name] not in grid:
            raise ValueError(f"start value {name}={start[name]!r} is not on its grid {grid}")
    seen: dict[Point, float] = {}

    def run_all(points: list[dict]) -> None:
        todo = [p for p in points if _key(p) not in seen][: max(0, max_runs - len(seen))]
        for p, loss in zip(todo, evaluate_many(todo), strict=True):
            seen[_key(p)] = float(loss)

    current = dict(start)
    run_all([current])
    while True:
        around = neighbours(current, grids)
        run_all(around)  # nothing new once the budget is spent; already-seen neighbours still count
        known = [p for p in around if _key(p) in seen]
        best = min(known, key=lambda p: seen[_key(p)], default=None)
        if best is not None and seen[_key(best)] < seen[_key(current)]:
            current = best  # strictly better: the walk cannot cycle
            continue
        if len(known) == len(around):
            return SearchResult(current, seen[_key(current)], True, seen)
        # budget spent with a neighbour never run: report the best point seen, uncertified
        winner = min(seen, key=seen.get)
        return SearchResult(dict(winner), seen[winner], False, seen)
