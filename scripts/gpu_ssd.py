"""One short single-GPU run of the ssd engines: AR, SD and SSD (both backups) for the Qwen2.5-Coder
1.5B / 0.5B pair in bf16, K in {3, 5}, fan-out F in {2, 3}, temperatures 0 and 0.7, batches 1, 4
and 8, with the greedy exactness check (bf16: a divergence counts as explained only where the
target's top-2 logit gap is below --eps). Target and draft processes share the one GPU (the paper
gives the draft its own GPU; say so beside the numbers). Harness-free; results are written to
OUT/ssd_gpu.json after every configuration, so a run cut off by its time limit keeps what finished.

    python scripts/gpu_ssd.py --target DIR --draft DIR --out "$OUT"     # the pair, from local copies
    python scripts/gpu_ssd.py --out "$OUT"                              # the pair via paper_ssd.models.locate
    python scripts/gpu_ssd.py --tiny --device cpu --out /tmp/x          # random tiny Qwen2 pair (tests)
    python scripts/gpu_ssd.py --train-pair --out "$OUT"                 # a pair trained here (no model hub)
    python scripts/gpu_ssd.py --compile reduce-overhead --out "$OUT"    # static KV cache and CUDA graphs vs eager

``--train-pair`` trains a byte-level target (d_model 512, 8 layers) and draft (d_model 128, 2 layers) on
2 MB of the standard library's source (paper_infcompute's decoder and trainer, bf16 on a GPU; a couple of
minutes on one card), so acceptance rates are real where no model hub is reachable; the prompts are
held-out bytes. With --tiny it is a seconds-long CPU stand-in of the same path.

``--compile MODE`` runs only a comparison of how our engine's Hugging Face models run (where they pay):
batch-1 AR, SD and SSD (greedy, the first K and fan-out, the fast backup) with both models eager over a
dynamic KV cache, over a static one, and over a static one with their short forwards compiled by
``torch.compile`` (``MODE``: reduce-overhead for CUDA graphs; eager traces without compiling, the CPU
check): tokens/s of each, their ratio to eager, and whether the greedy streams are the eager ones (to
OUT/ssd_gpu.json, key ``graphs``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


PROMPT_BYTES = 64  # --train-pair's prompts


def positions(prompt_len: int, args) -> int:
    """The positions a decode may reach: the prompt, the new tokens, and two speculations of the largest K beyond
    them (K + 1 positions each), as the static KV cache reserves."""
    return prompt_len + args.new_tokens + 2 * (max(args.ks) + 1)


def trained_pair(args, out_dir: Path):
    """(target spec, draft spec, prompts, facts): a byte-level pair trained on stdlib text on ``args.device``,
    and ``args.prompts`` prompts of 64 held-out bytes at evenly spaced offsets."""
    import numpy as np

    from paper_infcompute import corpus
    from paper_infcompute import train as tr
    from paper_infcompute.model import Decoder, ModelConfig
    from paper_ssd.lm import TinySpec, save_tiny

    seq_len = 128 if args.tiny else 512  # the models' learned positions
    need = positions(PROMPT_BYTES, args)
    if need > seq_len:  # before any training: the decode would run out of positions
        raise SystemExit(f"--new-tokens {args.new_tokens} after {PROMPT_BYTES}-byte prompts, K up to {max(args.ks)}, "
                         f"needs {need} positions; the trained pair has {seq_len}")
    scale = 64 if args.tiny else 1  # the CPU stand-in: a sixty-fourth of the text, small models
    spec = corpus.CorpusSpec(train_bytes=2_000_000 // scale, val_bytes=200_000 // scale)
    text = corpus.load(spec)
    shapes = {"target": (64, 2) if args.tiny else (512, 8), "draft": (32, 1) if args.tiny else (128, 2)}
    gpu = args.device.startswith("cuda")
    specs, facts = {}, {"train_bytes": len(text.train), "corpus_sha256": text.sha256, "seq_len": seq_len}
    for role, (d, layers) in shapes.items():
        run = tr.RunConfig(model=ModelConfig(d_model=d, n_layers=layers, n_heads=max(2, d // 64), seq_len=seq_len),
                           corpus=spec, epochs=1 if args.tiny else args.train_epochs, batch_size=64,
                           weight_decay=0.1, device=args.device, precision="bf16" if gpu else "fp32")
        model, metrics = tr.train(run, text)
        path = save_tiny(model, out_dir / f"{role}.pt").path
        specs[role] = TinySpec(path, Decoder, ModelConfig, args.device)
        facts[role] = {"d_model": d, "layers": layers, **{k: metrics[k] for k in ("n_params", "val_loss", "train_s")}}
        print(json.dumps({role: facts[role]}), flush=True)
    starts = np.linspace(0, len(text.val) - PROMPT_BYTES - 1, args.prompts).astype(int)
    prompts = [text.val[i:i + PROMPT_BYTES].tolist() for i in starts]
    return specs["target"], specs["draft"], prompts, facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--target", default="", help="directory, hub id or GGUF file (default: the Qwen pair)")
    ap.add_argument("--draft", default="")
    ap.add_argument("--cache", default=os.environ.get("PAPERCLUB_CACHE", str(Path.home() / ".cache" / "paperclub")))
    ap.add_argument("--tiny", action="store_true", help="random tiny Qwen2 pair: the code paths, not the numbers")
    ap.add_argument("--train-pair", action="store_true", help="train a byte-level target and draft here first")
    ap.add_argument("--train-epochs", type=int, default=8, help="--train-pair: passes over the text")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--ks", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--fans", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.0, 0.7])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--eps", type=float, default=0.25, help="bf16 top-2 logit gap that explains a greedy divergence")
    ap.add_argument("--budget-s", type=float, default=480, help="stop starting new configurations after this")
    ap.add_argument("--compile", default="", help="only compare eager, static-cache and compiled runs (a mode)")
    args = ap.parse_args(argv)

    import torch

    from paper_ssd import engine, exactness, models
    from paper_ssd.prompts import stdlib_prompts

    t_start = time.perf_counter()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
                    or "cpu", "torch": torch.__version__, "args": vars(args), "runs": [], "complete": False}

    def save() -> None:
        tmp = out_dir / "ssd_gpu.json.part"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out_dir / "ssd_gpu.json")

    if args.train_pair:
        target_spec, draft_spec, prompts, result["training"] = trained_pair(args, out_dir)
        save()
    elif args.tiny:
        root = Path(tempfile.mkdtemp())
        target_spec = models.tiny_qwen2(root / "target", 2, 64, 0)
        draft_spec = models.tiny_qwen2(root / "draft", 1, 32, 1)
        target_spec = models.HFSpec(target_spec.where, "float32", args.device)
        draft_spec = models.HFSpec(draft_spec.where, "float32", args.device)
    else:
        pair = models.PAIRS["qwen2.5-coder"]
        where_t = models.locate(pair[0], Path(args.cache) / "ssd", args.target)
        where_d = models.locate(pair[1], Path(args.cache) / "ssd", args.draft)
        target_spec = models.HFSpec(where_t, "bfloat16", args.device)
        draft_spec = models.HFSpec(where_d, "bfloat16", args.device)
    if not args.train_pair:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(target_spec.where)
        prompts = [tokenizer(p["text"])["input_ids"] for p in stdlib_prompts(args.prompts, 0)]
        result["models"] = {"target": target_spec.where, "draft": draft_spec.where, "dtype": target_spec.dtype}
    result["prompt_tokens"] = [len(p) for p in prompts]
    if args.compile:
        if args.train_pair:
            raise SystemExit("--compile applies to Hugging Face models, not --train-pair's")
        graphs(args, target_spec, draft_spec, prompts, result.setdefault("graphs", {}), save)
        result["complete"] = True
        save()
        return 0
    target, draft = target_spec.session(), draft_spec.session()

    def decode(mode: str, batch: int, cfg, proc=None) -> tuple[list[list[int]], engine.Stats]:
        total, streams = engine.Stats(), []
        for i in range(0, len(prompts) - batch + 1, batch):
            group = prompts[i:i + batch]
            if mode == "ar":
                out, st = engine.autoregressive(target, group, args.new_tokens, cfg.temperature, cfg.seed)
            elif mode == "sd":
                out, st = engine.speculative(target, draft, group, args.new_tokens, cfg)
            else:
                out, st = engine.ssd(target, proc, group, args.new_tokens, cfg, core=0)
            total.add(st)
            streams += out
        return streams, total

    def record(**row) -> None:
        stats = row.pop("stats").summary()
        row.update({k: stats[k] for k in ("tokens_per_s", "tokens_per_round", "acceptance", "hit_rate",
                                          "bonus_hit_rate", "all_hit_step_rate", "verify_ms", "new_tokens")})
        row["wait_ms_per_step"] = 1000 * stats["wait_s"] / max(stats["steps"], 1)
        result["runs"].append(row)
        save()
        print(json.dumps(row), flush=True)

    # warm-up: CUDA context, kernels, allocator
    engine.autoregressive(target, prompts[0], 8)
    # one draft process for every SSD run, configured afresh for each (loading the draft once)
    first = engine.DecodeConfig(k=args.ks[0], temperature=0.0, fan_out=[args.fans[0]] * (args.ks[0] + 1))
    with engine.DraftProcess(draft_spec, first, core=1) as proc:
        reference: dict[float, list[list[int]]] = {}
        for temperature in args.temperatures:
            for batch in args.batches:
                if time.perf_counter() - t_start > args.budget_s:
                    result["stopped"] = f"budget of {args.budget_s} s reached before T={temperature}, batch {batch}"
                    save()
                    return 0
                if batch > len(prompts):
                    continue
                base = engine.DecodeConfig(k=args.ks[0], temperature=temperature, fan_out=[args.fans[0]] * (args.ks[0] + 1))
                streams, st = decode("ar", batch, base)
                if batch == 1:
                    reference[temperature] = streams
                record(mode="ar", temperature=temperature, batch=batch, stats=st)
                checks: dict[str, list] = {f"ar_b{batch}": streams} if batch > 1 else {}
                for k in args.ks:
                    cfg = engine.DecodeConfig(k=k, temperature=temperature, fan_out=[args.fans[0]] * (k + 1))
                    streams, st = decode("sd", batch, cfg)
                    checks[f"sd_k{k}_b{batch}"] = streams
                    record(mode="sd", k=k, temperature=temperature, batch=batch, stats=st)
                    for fan in args.fans:
                        for backup in ("jit", "fast"):
                            cfg = engine.DecodeConfig(k=k, temperature=temperature, fan_out=[fan] * (k + 1), backup=backup)
                            proc.configure(cfg)  # as a new draft process with this config
                            streams, st = decode("ssd", batch, cfg, proc)
                            checks[f"ssd_{backup}_k{k}_f{fan}_b{batch}"] = streams
                            record(mode=f"ssd_{backup}", k=k, fan=fan, temperature=temperature, batch=batch, stats=st)
                if temperature == 0 and 0.0 in reference:
                    matches, divergences = exactness.greedy_identity(target, prompts, {"ar": reference[0.0], **checks},
                                                                     args.eps)
                    result.setdefault("greedy_exact_match", {})[str(batch)] = sum(matches) / len(matches)
                    result.setdefault("greedy_divergences", []).extend(divergences)
                    save()
    result["complete"] = True
    result["wall_s"] = time.perf_counter() - t_start
    save()
    return 0


def graphs(args, target_spec, draft_spec, prompts, rows: dict, save) -> None:
    """``--compile``: batch-1 greedy AR, SD and SSD (the fast backup; the draft's tree in its own process) with
    both models eager over a dynamic KV cache, over a static one (slots for the longest prompt, the new tokens
    and a speculation), and over a static one compiled; each variant warmed up on the first prompt (the
    compiled one's graphs made there), then timed over all. Where CUDA graphs ran, each row has this process's
    count of graphs recorded again because a static input moved, and of calls that fell back to no graph."""
    from dataclasses import replace

    from paper_ssd import engine

    slots = positions(max(len(p) for p in prompts), args)
    variants = {"eager": {}, "static": {"static_cache": slots},
                f"compiled_{args.compile}": {"static_cache": slots, "compile": args.compile}}
    k = args.ks[0]
    cfg = engine.DecodeConfig(k=k, temperature=0.0, fan_out=[args.fans[0]] * (k + 1), backup="fast")
    eager: dict[str, list] = {}
    for name, options in variants.items():
        target, draft = replace(target_spec, **options).session(), replace(draft_spec, **options).session()
        with engine.DraftProcess(replace(draft_spec, **options), cfg, core=1) as proc:
            runs = {"ar": lambda p, t=target: engine.autoregressive(t, p, args.new_tokens),
                    "sd": lambda p, t=target, d=draft: engine.speculative(t, d, p, args.new_tokens, cfg),
                    "ssd": lambda p, t=target, d=proc: engine.ssd(t, d, p, args.new_tokens, cfg, core=0)}
            t0 = time.perf_counter()
            for run in runs.values():
                run(prompts[0])
            row = {"slots_per_row": options.get("static_cache", 0), "warmup_s": time.perf_counter() - t0}
            for mode, run in runs.items():
                total, streams = engine.Stats(), []
                for prompt in prompts:
                    out, st = run(prompt)
                    total.add(st)
                    streams += out
                row[f"{mode}_tokens_per_s"] = total.summary()["tokens_per_s"]
                eager.setdefault(mode, streams)
                same = sum(a == b for a, b in zip(streams, eager[mode], strict=True))
                row[f"{mode}_streams_identical_to_eager"] = same / len(streams)
                if name != "eager":
                    row[f"{mode}_speedup_over_eager"] = row[f"{mode}_tokens_per_s"] / rows["eager"][f"{mode}_tokens_per_s"]
        row.update(_cuda_graph_counts())
        rows[name] = row
        save()
        print(json.dumps({name: row}), flush=True)


def _cuda_graph_counts() -> dict:
    """This process's CUDA graphs so far (torch's internal counters; nothing where no graph was made): graphs
    recorded again because a static input's address changed, and calls that skipped CUDA graphs."""
    import torch

    if not torch.cuda.is_initialized():
        return {}
    try:
        from torch._dynamo.utils import counters
        from torch._inductor.cudagraph_trees import get_container

        manager = get_container(torch.cuda.current_device()).tree_manager
    except (ImportError, AttributeError, RuntimeError):  # an internal API: absent or renamed
        return {}
    if manager is None:
        return {}
    return {"cuda_graph_rerecords": sum(sum(n.values()) for n in getattr(manager, "num_rerecord", {}).values()),
            "cuda_graph_skips": int(counters["inductor"]["cudagraph_skips"])}


if __name__ == "__main__":
    raise SystemExit(main())
