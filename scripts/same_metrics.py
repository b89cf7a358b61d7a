"""Whether two runs of one suite and tier measured the same things: the same metric names, and equal values
for every metric that does not vary between runs of the same code. Used to check that a change meant to
leave results alone (a refactor) did: run the tier at the old and the new commit, same seeds, then

    python scripts/same_metrics.py OLD_RUN NEW_RUN

Metrics that vary between same-code runs (timings) are those with a non-zero spread in the calibrated
baseline of the suite and tier (``--baseline``, default this machine class's); they are compared by name only.
Exit 0 when the runs agree, 1 when they do not (each difference on its own line)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runners import baseline  # noqa: E402


def _metrics(run: Path) -> dict[str, dict[str, float | None]]:
    """{"summary" or "seed_N": {metric: value}} of a run directory."""
    out = {"summary": {k: v["mean"] if isinstance(v, dict) else v
                       for k, v in json.loads((run / "summary.json").read_text())["metrics"].items()}}
    for seed in sorted(run.glob("seed_*/metrics.json")):
        out[seed.parent.name] = json.loads(seed.read_text())["metrics"]
    return out


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def differences(old: Path, new: Path, varying: set[str]) -> list[str]:
    """One line per difference between the runs' metrics; ``varying`` are compared by name only."""
    a, b = _metrics(old), _metrics(new)
    lines = [f"{part}: only in {'old' if part in a else 'new'}" for part in sorted(set(a) ^ set(b))]
    for part in sorted(set(a) & set(b)):
        ma, mb = a[part], b[part]
        lines += [f"{part}: {k} only in {'old' if k in ma else 'new'}" for k in sorted(set(ma) ^ set(mb))]
        lines += [f"{part}: {k} {ma[k]!r} -> {mb[k]!r}" for k in sorted(set(ma) & set(mb))
                  if k not in varying and not _equal(ma[k], mb[k])]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--baseline", type=Path, default=None, help="calibrated baseline naming the varying metrics")
    args = ap.parse_args(argv)
    summary = json.loads((args.new / "summary.json").read_text())
    path = args.baseline or baseline.baseline_path(summary["suite"], summary["tier"], summary["hw_class"])
    tolerances = json.loads(Path(path).read_text()).get("tolerances", {}) if Path(path).is_file() else {}
    varying = {k for k, t in tolerances.items() if t.get("std", 0.0) > 0.0}
    lines = differences(args.old, args.new, varying)
    old, new = _metrics(args.old)["summary"], _metrics(args.new)["summary"]
    anyway = sum(k in old and k in new and _equal(old[k], new[k]) for k in varying)
    print(f"{summary['suite']} {summary['tier']}: {len(new)} metrics; {len(varying)} vary between same-code runs "
          f"(names only: {', '.join(sorted(varying)) or 'none'}; {anyway} of them equal here too)")
    print("\n".join(lines) if lines else "the same metric names, and equal values for every other metric")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
