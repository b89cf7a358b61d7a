"""One short single-GPU run of the infcompute sweep at 16x the CPU small tier's data.

The whole suite (standard recipe and its data law, certified regularized search, ensembles with
member selection, distillation, asymptotes, data efficiency) on 200 KB of byte-level stdlib text
with 4-layer models of d_model 64-256, seq 128, bf16, four worker processes sharing the GPU.
It calls the suite's own ``run`` with a plain config object, so it needs no Hydra or MLflow and
runs on a bare GPU image (torch, numpy, scipy). Results go to OUT/infcompute_gpu.json; finished
training runs are cached under --cache, so a rerun after a cut-off resumes.

    python scripts/gpu_infcompute.py --out "$OUT"                          # on the GPU
    python scripts/gpu_infcompute.py --device cpu --tiny --out /tmp/x      # CPU stand-in (tests)

``--paper-steps`` instead measures one training step of each of the paper's four shapes at the full
tier's settings (seq 4096, batch 64 in micro-batches of 4, the loss in chunks of 4096 rows, bf16) with
Llama 3's and GPT-2's vocabularies, on random tokens: seconds per step, tokens per second, MFU and the
peak memory beside the preflight's estimate, and the GPU-hours per epoch of the paper's 200M tokens.
Each shape's record is written to OUT/infcompute_paper_steps.json as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paper_infcompute.corpus import CorpusSpec  # noqa: E402
from suites.infcompute import InfComputeConfig, InfComputeSuite  # noqa: E402

GPU = InfComputeConfig(
    device="cuda", precision="bf16", data=CorpusSpec(train_bytes=200_000, val_bytes=100_000),
    data_sizes=[50_000, 100_000, 200_000, 400_000], seq_len=128, batch_size=64, n_layers=4,
    sizes=[64, 128, 192, 256], standard_epochs=[4, 8, 16, 32], standard_start_epochs=8, epochs_grid=[4, 8, 16, 32, 64],
    wd_grid=[0.1, 0.4, 0.8, 1.6, 3.2, 6.4], search_start_epochs=16, search_start_wd=1.6, max_search_runs=10,
    members=5, distill_tokens=3_200_000, distill_weight=0.75, distill_epochs=16, workers=4)
TINY = replace(GPU, device="cpu", precision="bf16", data=CorpusSpec(train_bytes=3000, val_bytes=2000),
               data_sizes=[1500, 3000, 6000], seq_len=16, batch_size=8, n_layers=1, sizes=[16, 24, 32], standard_epochs=[1, 2], standard_start_epochs=1, epochs_grid=[1, 2, 4],
               wd_grid=[0.1, 0.8, 3.2], search_start_epochs=2, search_start_wd=0.8, max_search_runs=3, members=3,
               distill_tokens=2000, distill_epochs=1, workers=2)


# The full tier's training-step settings (tests check them against the tier).
PAPER_STEP = {"seq_len": 4096, "batch_size": 64, "micro_batch": 4, "loss_chunk": 4096, "checkpointing": False}
TINY_STEP = {"seq_len": 32, "batch_size": 8, "micro_batch": 2, "loss_chunk": 24, "checkpointing": False}


def paper_steps(args) -> None:
    import torch

    from paper_infcompute import train as tr
    from suites.infcompute import PAPER_SHAPES, PAPER_TOKENS_PER_EPOCH, _memory, model_cfg

    step = TINY_STEP if args.tiny else PAPER_STEP
    base = replace(InfComputeConfig(), device=args.device, precision="bf16", paper_shapes=not args.tiny, **step)
    sizes = [16, 32] if args.tiny else list(PAPER_SHAPES)
    vocabs = [300, 50] if args.tiny else [128_256, 50_257]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "settings": step, "shapes": []}
    for vocab in vocabs:
        for d in sizes:
            cfg = replace(base, sizes=[d])
            model = model_cfg(cfg, d, vocab)
            run = tr.RunConfig(model=model, batch_size=cfg.batch_size, device=cfg.device, precision=cfg.precision,
                               micro_batch=cfg.micro_batch, loss_chunk=cfg.loss_chunk, checkpointing=cfg.checkpointing)
            row = {"d_model": d, "name": PAPER_SHAPES[d][0] if d in PAPER_SHAPES else f"d{d}", "vocab": vocab,
                   "estimate_gb": _memory(cfg, vocab)["training"] / 1e9}
            try:
                row.update(tr.step_benchmark(run, steps=args.steps))
                row["gpu_hours_per_paper_epoch"] = PAPER_TOKENS_PER_EPOCH / row["tokens_per_s"] / 3600
            except torch.OutOfMemoryError as err:
                row["error"] = f"out of memory: {str(err).splitlines()[0]}"
            if args.device == "cuda":
                torch.cuda.empty_cache()
            record["shapes"].append(row)
            (out / "infcompute_paper_steps.json").write_text(json.dumps(record, indent=1))
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "paperclub"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="seconds-long CPU stand-in for tests")
    ap.add_argument("--paper-steps", action="store_true", help="time one training step of each paper shape")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per shape (--paper-steps), after one warm-up")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device visible; use --device cpu --tiny for the CPU stand-in")
    if args.paper_steps:
        return paper_steps(args)
    cfg = replace(TINY if args.tiny else GPU, device=args.device, cache_dir=args.cache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    suite = InfComputeSuite()
    result = suite.run(cfg, args.seed, out)
    record = {"config": asdict(cfg), "wall_s": round(time.perf_counter() - t0, 1), "metrics": result.metrics,
              "inconclusive": result.inconclusive, "info": result.info,
              "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__}
    (out / "infcompute_gpu.json").write_text(json.dumps(record, indent=1, default=str))
    try:
        suite.figures([result], cfg, out)
    except ImportError as err:  # a bare image without matplotlib: the numbers are what matters
        print(f"figures skipped: {err}", file=sys.stderr)
    m = result.metrics
    print(json.dumps({k: round(m[k], 4) for k in ("standard_best", "e_regularized", "best_ensemble_loss", "e_joint",
                                                  "distill_retention", "data_efficiency_ensemble")}))


if __name__ == "__main__":
    main()
