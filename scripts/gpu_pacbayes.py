"""One short single-GPU run of the Lotfi et al. (2022) bound on FashionMNIST.

Lotfi-style: a small CNN trained in a Kronecker subspace (d in {2500, 5000}; two widths), and
with a data-dependent prior (half the training set; d in {250, 1000, 2500}), plus the CPU
tier's MLP recipe for comparison. Every configuration pays the same 7 misc bits (up to 2^7
configurations), so taking the best of them keeps the bound valid. Uses only paper_pacbayes (no harness), so it runs on a bare GPU image.
Each finished configuration is appended to OUT/pacbayes_gpu.json at once (nothing is lost
if the run is cut off).

    python scripts/gpu_pacbayes.py --out "$OUT"                 # on the GPU
    python scripts/gpu_pacbayes.py --device cpu --tiny --out /tmp/x   # CPU stand-in (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from paper_pacbayes import compression, data  # noqa: E402
from paper_pacbayes.recipe import Recipe  # noqa: E402

MLP = Recipe()  # the CPU small tier's recipe
CNN = Recipe(arch="cnn", hidden=16, subspace_dim=5000, levels=9, epochs=20, lr=0.05,
                         batch_size=512, qat_epochs=3, qat_lr=3e-3, misc_bits=7.0)
CONFIGS = [
    ("mlp_d1024", MLP, False),
    ("cnn16_d2500", replace(CNN, subspace_dim=2500), False),
    ("cnn16_d5000", CNN, False),
    ("cnn32_d2500", replace(CNN, hidden=32, subspace_dim=2500), False),  # 4x the parameters, same d
    # data-dependent prior: theta_0 trained on half the data, a small subspace around it, n = the other half
    ("cnn16_d2500_ddp", replace(CNN, subspace_dim=2500), True),
    ("cnn16_d1000_ddp", replace(CNN, subspace_dim=1000), True),
    ("cnn16_d250_ddp", replace(CNN, subspace_dim=250), True),
]
PRIOR_EPOCHS = 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="sklearn digits, 1 epoch: a CPU stand-in for tests")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device visible; use --device cpu --tiny for the CPU stand-in")
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    out = Path(args.out) / "pacbayes_gpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = data.load("digits" if args.tiny else "fmnist", args.data_dir)
    record = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "dataset": "digits" if args.tiny else "fmnist", "seed": args.seed,
              "runs": []}
    for name, recipe, ddp in CONFIGS:
        if args.tiny:
            recipe = replace(recipe, hidden=4 if recipe.arch == "cnn" else 16, subspace_dim=min(recipe.subspace_dim, 200),
                             epochs=1, qat_epochs=1)
        t0 = time.perf_counter()
        if ddp:
            prior, rest = compression.prior_split(len(ytr), 0.5, args.seed)
            theta0 = compression.pretrain_prior(xtr[prior], ytr[prior], recipe, args.seed,
                                                1 if args.tiny else PRIOR_EPOCHS, device=args.device)
            res = compression.compression_bound(xtr[rest], ytr[rest], xte, yte, recipe, args.seed,
                                                theta0=theta0, device=args.device)
        else:
            res = compression.compression_bound(xtr, ytr, xte, yte, recipe, args.seed, device=args.device)
        if args.device == "cuda":
            torch.cuda.synchronize()
        res.update(name=name, data_dependent_prior=ddp, wall_s=time.perf_counter() - t0)
        record["runs"].append(res)
        tmp = out.with_suffix(".part")
        tmp.write_text(json.dumps(record, indent=1, default=float))
        tmp.replace(out)
        print(f"{name}: bound {res['bound']:.4f} test err {res['test_error_quantized']:.4f} "
              f"train err {res['train_error_quantized']:.4f} bits {res['bits']:.0f} n {res['n_train']} "
              f"D {res['n_params']} ({res['wall_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
