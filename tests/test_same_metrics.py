"""scripts/same_metrics.py: a refactor's check that two runs measured the same things."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import same_metrics  # noqa: E402


def _run(folder: Path, metrics: dict) -> Path:
    (folder / "seed_0").mkdir(parents=True)
    summary = {"suite": "toy", "tier": "smoke", "hw_class": "cpu-2c",
               "metrics": {k: {"mean": v, "std": 0.0, "n": 1} for k, v in metrics.items()}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "seed_0" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    return folder


def test_equal_runs_agree_and_every_kind_of_difference_is_named(tmp_path, capsys):
    old = _run(tmp_path / "old", {"score": 0.5, "seconds": 1.0, "ratio": math.nan, "gone": 1.0})
    same = _run(tmp_path / "same", {"score": 0.5, "seconds": 2.0, "ratio": math.nan, "gone": 1.0})
    assert same_metrics.differences(old, same, varying={"seconds"}) == []
    new = _run(tmp_path / "new", {"score": 0.51, "seconds": 2.0, "ratio": math.nan, "added": 1.0})
    assert same_metrics.differences(old, new, varying={"seconds"}) == [
        "seed_0: added only in new", "seed_0: gone only in old", "seed_0: score 0.5 -> 0.51",
        "summary: added only in new", "summary: gone only in old", "summary: score 0.5 -> 0.51"]
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"tolerances": {"seconds": {"std": 0.3}, "score": {"std": 0.0}}}))
    assert same_metrics.main([str(old), str(same), "--baseline", str(base)]) == 0
    assert "1 vary between same-code runs (names only: seconds; 0 of them equal here too)" in capsys.readouterr().out
    assert same_metrics.main([str(old), str(new), "--baseline", str(base)]) == 1
