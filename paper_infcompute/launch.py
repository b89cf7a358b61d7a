"""One training run on several devices: ``torchrun --nproc_per_node N -m paper_infcompute.launch RUN.json``.

RUN.json is a run's config (``dataclasses.asdict`` of a ``RunConfig``, as the cache entries and
``--print-config`` hold it). Every rank trains its share of each batch (``train.train``, data parallel);
rank 0 writes the finished run to the cache (``--cache``), where the sweep finds it by its config hash,
and prints its metrics as one JSON line. Without torchrun it is the same run in one process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m paper_infcompute.launch")
    ap.add_argument("config", type=Path, help="the run's config as JSON")
    ap.add_argument("--cache", type=Path, required=True, help="the sweep's run cache")
    args = ap.parse_args(argv)
    from paper_infcompute import distributed
    from paper_infcompute import train as tr

    cfg = tr.RunConfig.from_dict(json.loads(args.config.read_text()))
    metrics = tr.train_job((cfg, cfg.corpus, str(args.cache)))
    if distributed.rank_world()[0] == 0:
        print(json.dumps(metrics))


if __name__ == "__main__":
    main()
