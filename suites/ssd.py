"""Suite `ssd`: Kumar, Dao, May, "Speculative Speculative Decoding" (arXiv 2603.03251).

Per seed: the same prompts decoded autoregressively, with synchronous speculative decoding and
with SSD (the draft in its own process on its own core, building the speculation cache while the
target verifies), greedy and sampled; exactness checked before any speed is reported; the
verification-outcome statistics (bonus-token hit rate against fan-out, temperature and Saguaro's
C) measured teacher-forced on held-out text; and the paper's speedup model (Theorem 7)
evaluated on the measured hit rate and latencies, beside the measured speedup.

Smoke tier: a byte-level target / draft pair trained for seconds on Python's standard-library
source (cached). Small tier: Qwen2.5-Coder-1.5B-Instruct / 0.5B in bf16, one CPU core each, from
their PyPI part packages, at batch 1 and a batch of 4. Full tier: the paper's setup on GPUs -
Llama-3.1-70B-Instruct split over 4 GPUs with Llama-3.2-1B-Instruct on a 5th (or Qwen3-32B /
0.6B, ``pair=qwen3-32b``), by hub id; the paper's four prompt sets; 512 tokens; K = 6, F = 3;
batches 1-16; vLLM's draft-model speculative decoding as the peer baseline (skipped without vllm).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from runners.api import Claim, Invariant, Preparation, RunResult, Suite, SuiteConfig, at_tiers
from runners.progress import Laps, track
from runners.rundir import cache_root

# Held-out bytes per token the offline statistics may need: byte-level tokens take 1, BPE tokenizers about 3-4
# on code and English; 6 leaves a margin.
HELD_OUT_BYTES_PER_TOKEN = 6


def text_spec(cfg):
    """The stdlib text: training bytes for the tiny pair, and held-out text for prompts and the offline
    statistics (16 KB, or what ``offline_chunks`` x ``offline_len`` tokens need, whichever is more)."""
    from paper_infcompute.corpus import CorpusSpec

    need = HELD_OUT_BYTES_PER_TOKEN * cfg.offline_chunks * cfg.offline_len
    return CorpusSpec(train_bytes=cfg.train_bytes, val_bytes=max(16_000, need))


PAPER = "Kumar, Dao, May 2026 (arXiv 2603.03251)"
# an end-to-end law test fails below this p-value: a test at level 0.001, so that the four p-values of a
# run (SD and SSD, first and second token) give a false alarm in under 0.4% of correct runs
TV_P_FLOOR = 1e-3
# the sampling-law test's i-th batch of generations runs with seed SAMPLING_RUNS_PER_SEED s + i (s: the run's)
SAMPLING_RUNS_PER_SEED = 10_000


@dataclass
class Pair:
    """The target and draft (specs that open sessions), the prompts and held-out text as token ids, what
    the run's record says about them, (a Hugging Face pair) the folders the models are in, how a text
    becomes token ids, and Spec-Bench's questions as token ids (none unless ``spec_bench``)."""

    target: Any
    draft: Any
    prompts: list[list[int]]
    held_out: list[int]
    facts: dict
    where: tuple[str, str] | None = None
    encode: Callable[[str], list[int]] | None = None
    spec_bench: list[list[int]] = field(default_factory=list)


@dataclass
class Decoding:
    """Each mode's engine.Stats and token streams per prompt (ar, sd; with ``_2t``: both cores of a CPU;
    ssd_jit, ssd_fast), and each batch size's summaries (or why it was skipped) and streams."""

    parts: dict[str, list]
    streams: dict[str, list]
    batches: dict[int, dict | str]
    batch_streams: dict[str, list]
    hf_ratios: list[float] | None  # transformers' seconds over ours, per prompt (a Hugging Face pair)
    hf_facts: dict | None

    def __post_init__(self):
        from paper_ssd import engine, theory

        self.totals = {m: engine.Stats.total(p) for m, p in self.parts.items()}
        self.summaries = {m: t.summary() for m, t in self.totals.items()}
        self.tokens_per_s = {mode: summary["tokens_per_s"] for mode, summary in self.summaries.items()}
        self.best = max(("ssd_jit", "ssd_fast"), key=lambda m: self.tokens_per_s[m])  # the faster backup
        # Theorem 7 on the measured quantities (T_p and T_b in units of one verification): over all
        # prompts, and per prompt (the claim's units)
        self.theorem7 = theory.ssd_model_on_measured(self.totals[self.best])
        self.theorem7_per_prompt = [theory.ssd_model_on_measured(p) for p in self.parts[self.best]]


@dataclass
class SpecBench:
    """Spec-Bench's questions decoded in every mode at batch 1: each question's category, each mode's
    engine.Stats per question, and (greedy) the identity of every stream with AR's, with the divergences."""

    kinds: list[str]
    parts: dict[str, list]
    greedy: list[float] | None
    divergences: list | None

    def summaries(self) -> dict[str, dict[str, dict]]:
        """Per category, each mode's summary over the category's questions."""
        from paper_ssd import engine

        return {c: {m: engine.Stats.total([st for st, k in zip(parts, self.kinds, strict=True) if k == c]).summary()
                    for m, parts in self.parts.items()} for c in dict.fromkeys(self.kinds)}


@dataclass
class Exactness:
    """Greedy identity, 1.0 per (mode, prompt) stream equal to AR's or explained by a bf16 tie (None when
    sampling), with the divergences; the verifier's toy law tests; end-to-end p-values on the tiny pair."""

    greedy: list[float] | None
    divergences: list | None
    toy_pass: list[bool]
    e2e: dict[str, float]

    def law_units(self) -> list[float]:
        return [float(ok) for ok in self.toy_pass] + [float(p > TV_P_FLOOR) for p in self.e2e.values()]


@dataclass
class Outcomes:
    """Teacher-forced verification outcomes on held-out chunks (the claims' units): per temperature the
    per-chunk and pooled statistics, Saguaro's at the hottest temperature per ``c``, and the fan-outs:
    those measured and the one the claims read (nearest the run's own)."""

    fans: list[int]
    sizes: list[int]
    chunked: dict[float, list]
    pooled: dict[float, dict]
    saguaro: list[dict]
    f_ref: int

    @property
    def t_lo(self) -> float:
        return min(self.pooled)

    @property
    def t_hi(self) -> float:
        return max(self.pooled)


def _tag(t: float) -> str:
    """A temperature in a metric's name: 0.7 -> 0p7."""
    return f"{t:g}".replace(".", "p")


def _tiny_prompts(cfg, text, tiny) -> Pair:
    """The byte-level pair, with prompts of held-out bytes at evenly spaced offsets."""
    import numpy as np

    starts = np.linspace(0, len(text.val) - cfg.prompt_len - 1, cfg.prompts).astype(int)
    return Pair(*tiny, prompts=[text.val[i:i + cfg.prompt_len].tolist() for i in starts],
                held_out=text.val.tolist(), facts={"prompts": [f"held-out bytes at {i}" for i in starts]},
                encode=lambda s: list(s.encode("utf-8"))[:cfg.prompt_len])  # a text's first prompt_len bytes


def _hf_pair(cfg, seed: int, text, cache: Path) -> Pair:
    """A Hugging Face pair (from the cache or a given folder) with the stdlib or the paper's prompts,
    tokenised; the held-out text tokenised for the teacher-forced statistics."""
    import numpy as np
    from transformers import AutoTokenizer

    from paper_ssd import models
    from paper_ssd.prompts import paper_prompts, paper_token_ids, stdlib_prompts

    if cfg.pair not in models.PAIRS:
        raise ValueError(f"unknown pair {cfg.pair!r}; known: tiny, {', '.join(models.PAIRS)}")
    if cfg.prompt_set not in ("paper", "stdlib"):
        raise ValueError(f"prompt_set must be stdlib or paper, got {cfg.prompt_set!r}")
    t0 = time.perf_counter()
    target_model, draft_model = models.PAIRS[cfg.pair]
    where_t = models.locate(target_model, cache, cfg.target_path)
    where_d = models.locate(draft_model, cache, cfg.draft_path)
    tokenizer = AutoTokenizer.from_pretrained(where_t)
    chosen = paper_prompts(cfg.prompts_per_set) if cfg.prompt_set == "paper" else stdlib_prompts(cfg.prompts, seed)
    prompts = paper_token_ids(tokenizer, chosen) if cfg.prompt_set == "paper" else \
        [tokenizer(p["text"])["input_ids"] for p in chosen]
    facts = {"prompts": [{"kind": p["kind"], "source": p["source"], "tokens": len(t)}
                         for p, t in zip(chosen, prompts, strict=True)],
             "models": {"target": where_t, "draft": where_d, "prepare_s": round(time.perf_counter() - t0, 1)}}
    return Pair(models.HFSpec(where_t, cfg.dtype, cfg.target_device, cfg.target_tp, cfg.static_cache,
                              cfg.target_compile),
                models.HFSpec(where_d, cfg.dtype, cfg.draft_device, static_cache=cfg.static_cache,
                              compile=cfg.draft_compile),
                prompts, tokenizer(bytes(text.val.astype(np.uint8)).decode("utf-8", "replace"))["input_ids"], facts,
                (where_t, where_d), encode=lambda s: paper_token_ids(tokenizer, [{"text": s}])[0])


def _with_spec_bench(cfg, pair: Pair, cache: Path) -> Pair:
    """The pair with ``cfg.spec_bench`` questions of each Spec-Bench category (a local file, else the pinned
    commit's, fetched into the cache) as token ids, and their record in the facts; read and checked here,
    before any decoding."""
    from paper_ssd import prompts as sets

    if not cfg.spec_bench:
        return pair
    where = Path(cfg.spec_bench_path) if cfg.spec_bench_path else sets.fetch_spec_bench(cache)
    chosen, digest = sets.spec_bench_prompts(where, cfg.spec_bench, cfg.spec_bench_sha256)
    ids = [pair.encode(p["text"]) for p in chosen]
    facts = {"file": str(where), "sha256": digest, "commit": "" if cfg.spec_bench_path else sets.SPEC_BENCH_COMMIT,
             "prompts": [{"kind": p["kind"], "source": p["source"], "tokens": len(t)}
                         for p, t in zip(chosen, ids, strict=True)]}
    return replace(pair, spec_bench=ids, facts={**pair.facts, "spec_bench": facts})


def _decode_config(cfg, seed: int):
    """The decoding settings of every mode's runs (speculation, temperature, fan-outs, seed)."""
    from paper_ssd import engine

    return engine.DecodeConfig(k=cfg.k, temperature=cfg.temperature, fan_out=cfg.fan_out,
                               fan_out_miss=cfg.fan_out_miss, seed=seed)


def _decode(cfg, seed: int, pair: Pair, target, draft) -> Decoding:
    """AR, SD and SSD with both backups on the same prompts (on a CPU AR and SD with one core, the
    paper's SD arrangement, then both), every mode at each batch size, and (a Hugging Face pair) our SD
    against transformers' assisted generation."""
    import torch

    dcfg = _decode_config(cfg, seed)
    parts, streams = {}, {}
    on_cpu = cfg.target_device == "cpu"
    for threads in (1, 2) if on_cpu else (cfg.threads,):
        torch.set_num_threads(threads)
        tag = "_2t" if on_cpu and threads == 2 else ""
        for m, (stats, outs) in SSDSuite._ar_sd_runs(target, draft, dcfg, pair.prompts, cfg.new_tokens,
                                                     f", {threads} thread(s)").items():
            parts[m + tag], streams[m + tag] = stats, outs
    torch.set_num_threads(cfg.threads)
    for m, (stats, outs) in SSDSuite._ssd_runs(target, pair.draft, dcfg, pair.prompts, cfg.new_tokens, "").items():
        parts[m], streams[m] = stats, outs
    batches, batch_streams = SSDSuite._batch_sweep(cfg, target, draft, pair.draft, dcfg, pair.prompts)
    # a Hugging Face pair: transformers' assisted generation against our SD (the prompts are the units)
    # (not with a tensor-parallel target: generate() would run on this rank's shard alone)
    hf = SSDSuite._hf_assisted(target, draft, pair.prompts, cfg, streams["sd"]) \
        if pair.where and cfg.target_tp == 1 else (None, None)
    return Decoding(parts, streams, batches, batch_streams, *hf)


def _exactness(cfg, seed: int, pair: Pair, tiny, text, target, dec: Decoding) -> Exactness:
    """Greedy identity of every stream with AR's (at temperature 0); the verifier's toy cases, each 200k
    rounds of one law pair (sync / SSD hit, Saguaro, random backup; vocabularies of 4, 8 and 16) testing
    the first token's law; then SD's and SSD's first two tokens' laws end to end on the tiny pair."""
    import torch

    from paper_ssd import exactness
    from paper_ssd.verify import probs

    greedy = divergences = None
    if cfg.temperature == 0:
        greedy, divergences = exactness.greedy_identity(target, pair.prompts, {**dec.streams, **dec.batch_streams},
                                                        cfg.greedy_eps)
    gen = torch.Generator().manual_seed(seed)
    toy_pass = []
    for v in (4, 8, 16):
        p = probs(2 * torch.randn(3, v, generator=gen), 1.0)
        q = probs(2 * torch.randn(2, v, generator=gen), 1.0)
        for kw in ({}, {"c": 0.3}, {"proposal": "random"}):
            _, _, first = exactness.toy_rounds(p, q, 200_000, gen, **kw)
            toy_pass.append(exactness.passes(first, p[0], gen))
    e2e = SSDSuite._sampling_law(cfg, tiny, text.val[:cfg.prompt_len].tolist(), seed)
    return Exactness(greedy, divergences, toy_pass, e2e)


def _spec_bench(cfg, seed: int, pair: Pair, target, draft) -> SpecBench:
    """Spec-Bench's questions decoded as the main prompts are (AR and SD alternating, then SSD with each
    backup; batch 1), and at temperature 0 every stream checked against AR's (``exactness.greedy_identity``)."""
    from paper_ssd import exactness

    dcfg = _decode_config(cfg, seed)
    runs = {**SSDSuite._ar_sd_runs(target, draft, dcfg, pair.spec_bench, cfg.new_tokens, " on Spec-Bench"),
            **SSDSuite._ssd_runs(target, pair.draft, dcfg, pair.spec_bench, cfg.new_tokens, " on Spec-Bench")}
    greedy = divergences = None
    if cfg.temperature == 0:
        greedy, divergences = exactness.greedy_identity(target, pair.spec_bench, {m: o for m, (_, o) in runs.items()},
                                                        cfg.greedy_eps)
    kinds = [p["kind"] for p in pair.facts["spec_bench"]["prompts"]]
    return SpecBench(kinds, {m: st for m, (st, _) in runs.items()}, greedy, divergences)


def _exactness_with(exact: Exactness, sb: SpecBench | None) -> Exactness:
    """Greedy identity over the run's prompts and (where decoded) Spec-Bench's: their streams are more units
    of the same claim; their divergences are marked as Spec-Bench's."""
    if sb is None or exact.greedy is None:
        return exact
    return replace(exact, greedy=exact.greedy + sb.greedy,
                   divergences=exact.divergences + [{**d, "prompt_set": "spec_bench"} for d in sb.divergences])


def _spec_bench_metrics(sb: SpecBench | None) -> dict[str, float]:
    """Per Spec-Bench category: SD's acceptance and tokens per round, each SSD backup's cache-hit rate, each
    mode's decode tokens/s (reported; the claims read none of them); the greedy identity over its streams."""
    if sb is None:
        return {}
    m = {} if sb.greedy is None else {"spec_bench_greedy_exact_match": sum(sb.greedy) / len(sb.greedy)}
    for c, modes in sb.summaries().items():
        m[f"spec_bench_{c}_sd_acceptance"] = modes["sd"]["acceptance"]
        m[f"spec_bench_{c}_sd_tokens_per_round"] = modes["sd"]["tokens_per_round"]
        m.update({f"spec_bench_{c}_{mode}_hit_rate": modes[mode]["hit_rate"] for mode in ("ssd_jit", "ssd_fast")})
        m.update({f"spec_bench_{c}_{mode}_tokens_per_s": v["tokens_per_s"] for mode, v in modes.items()})
    return m


@dataclass
class Official:
    """The official engine's runs: per mode (ar, sd, ssd) its rows (``official.run``), summary
    (``official.summary``) and streams; the K sweep's SSD summaries by K, over the sweep's prompts."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
    streams: dict[str, list[list[int]]] = field(default_factory=dict)
    k_sweep: dict[int, dict] = field(default_factory=dict)


def _official(cfg, pair: Pair) -> Official:
    """AR, SD and SSD in the official engine (``paper_ssd.official``), each in its own process on the run's
    GPUs: the target's tensor-parallel GPUs, and for SSD the draft's after them; batch 1, the run's K,
    fan-out, temperature and new tokens; the models from their local copies."""
    from paper_ssd import models, official

    def index(device: str) -> list[int]:
        return [] if device == "cpu" else [int(d.split(":")[1]) for d in models.parse_devices(device)]

    where_t, where_d = (_local_dir(w) for w in pair.where)
    out = Official()

    def spec(mode: str, k: int):
        gpus = index(cfg.target_device) + (index(cfg.draft_device) if mode == "ssd" else [])
        return official.OfficialRun(_official_python(cfg), where_t, where_d, mode, tuple(gpus), k=k,
                                    fan_out=cfg.fan_out[0], temperature=cfg.temperature, new_tokens=cfg.new_tokens,
                                    cuda_home=os.environ.get("PAPERCLUB_OFFICIAL_CUDA_HOME", ""))

    for mode in official.MODES:
        rows = out.rows[mode] = official.run(spec(mode, cfg.k), pair.prompts)
        out.summaries[mode], out.streams[mode] = official.summary(rows, cfg.k), [r["token_ids"] for r in rows]
    few = pair.prompts[:cfg.official_sweep_prompts]
    if cfg.official_k_sweep:
        out.k_sweep[cfg.k] = official.summary(out.rows["ssd"][:len(few)], cfg.k)
    for k in sorted(set(cfg.official_k_sweep) - {cfg.k}):
        out.k_sweep[k] = official.summary(official.run(spec("ssd", k), few), k)
    return out


def _official_python(cfg) -> str:
    """The official engine's interpreter: as configured, else the CUDA image's ($PAPERCLUB_OFFICIAL_PYTHON)."""
    return cfg.official_python or os.environ.get("PAPERCLUB_OFFICIAL_PYTHON", "")


def _agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    """Two engines' greedy streams on the same prompts: the fraction identical, and the mean fraction of a
    stream before their first difference."""
    def prefix(x, y):
        n = next((i for i, (u, v) in enumerate(zip(x, y, strict=False)) if u != v), min(len(x), len(y)))
        return n / max(len(x), len(y), 1)

    pairs = list(zip(a, b, strict=True))
    return {"identical": sum(x == y for x, y in pairs) / len(pairs),
            "common_prefix": sum(prefix(x, y) for x, y in pairs) / len(pairs)}


def _vllm_agreement(ours_ar: list[list[int]], vllm: dict[str, list], official: Official | None) -> dict:
    """vLLM's greedy streams (AR, and its SD) against ours and the official engine's AR (``_agreement``)."""
    out = {f"vllm_{mode}_vs_ours_ar": _agreement(streams, ours_ar) for mode, streams in vllm.items()}
    if "ar" in vllm and "sd" in vllm:
        out["vllm_sd_vs_vllm_ar"] = _agreement(vllm["sd"], vllm["ar"])
    if official is not None and "ar" in vllm:
        out["vllm_ar_vs_official_ar"] = _agreement(vllm["ar"], official.streams["ar"])
    return out


def _local_dir(where: str) -> str:
    """A model's local directory: as given, or its hub snapshot (the official engine reads local files)."""
    if Path(where).exists():
        return where
    from huggingface_hub import snapshot_download

    return snapshot_download(where)


def _official_metrics(off: Official, ours_ar: list[list[int]], vllm_sd: dict | None = None) -> tuple[dict, dict, dict]:
    """(metrics, per-prompt units, info): each mode's tokens per second; SSD over SD and over AR, and SSD
    over Theorem 7's prediction (``official.theorem7``) (the geometric mean of the per-prompt ratios, the
    prompts being the units); the K sweep's SSD tokens per second; with vLLM's draft-model SD
    measured (``vllm_sd``, batch 1), the official SSD over it, end to end on both sides (the paper's SD
    baseline); SD's acceptance and SSD's cache hit rate as the engine measures them; and the greedy streams
    compared token for token: the official SD and SSD against its AR, its AR against ours."""
    import numpy as np

    from paper_ssd import official

    s = off.summaries
    model = official.theorem7(off.rows["ssd"], off.rows["sd"])
    per_prompt = {"official_ssd_over_sd": official.ratios(s["ssd"], s["sd"]),
                  "official_ssd_over_ar": official.ratios(s["ssd"], s["ar"]),
                  "official_ssd_vs_model": [t["measured_tokens_per_s"] / t["model_tokens_per_s"] for t in model]}
    if vllm_sd is not None:
        per_prompt["official_ssd_over_vllm_sd"] = [a / b for a, b in zip(
            s["ssd"]["per_prompt_end_to_end_tokens_per_s"], vllm_sd["per_call_tokens_per_s"], strict=True)]
    m = {f"official_{mode}_tokens_per_s": v["tokens_per_s"] for mode, v in s.items()}
    m.update({k: float(np.exp(np.mean(np.log(v)))) for k, v in per_prompt.items()})
    m.update(official_sd_acceptance=s["sd"].get("acceptance", float("nan")),
             official_ssd_cache_hit_rate=s["ssd"].get("cache_hit_rate", float("nan")),
             official_ssd_model_tokens_per_s=float(np.mean([t["model_tokens_per_s"] for t in model])))
    m.update({f"official_ssd_k{k}_tokens_per_s": v["tokens_per_s"] for k, v in off.k_sweep.items()})

    matches = {"sd_vs_its_ar": _agreement(off.streams["sd"], off.streams["ar"]),
               "ssd_vs_its_ar": _agreement(off.streams["ssd"], off.streams["ar"]),
               "its_ar_vs_ours": _agreement(off.streams["ar"], ours_ar)}
    def pooled(summary: dict) -> dict:
        return {k: v for k, v in summary.items() if not k.startswith("per_prompt")}

    info = {"summaries": {mode: pooled(x) for mode, x in s.items()}, "greedy_streams_equal": matches,
            "theorem7": model, "k_sweep": {str(k): pooled(x) for k, x in off.k_sweep.items()}}
    return m, per_prompt, info


def _held_out_chunks(cfg, pair: Pair) -> list[list[int]]:
    """The held-out text in ``offline_chunks`` chunks of ``offline_len`` tokens; too little text is an error
    here, before any decoding."""
    chunks = [pair.held_out[i * cfg.offline_len:(i + 1) * cfg.offline_len] for i in range(cfg.offline_chunks)]
    if len(chunks[-1]) < cfg.offline_len:
        raise ValueError(f"held-out text has {len(pair.held_out)} tokens; offline_chunks x offline_len = "
                         f"{cfg.offline_chunks * cfg.offline_len} needs more")
    return chunks


def _outcome_prediction(cfg, pair: Pair, target, draft) -> Outcomes:
    """Both models fed the held-out chunks (teacher forcing); per chunk and temperature, how often the
    verification's outcome is among the draft's top fan-out guesses; Saguaro's trade-off per ``c``. A
    chunk's statistics are computed as soon as both models have read it, on the target's output device
    (the draft's logits moved there), so only one chunk's logits exist at a time."""
    from paper_ssd import offline

    chunks = _held_out_chunks(cfg, pair)
    fans, sizes = cfg.offline_fan_outs, [len(c) for c in chunks]
    f_ref = min(fans, key=lambda f: abs(f - cfg.fan_out[0]))
    t_hi = max(cfg.offline_temperatures)
    chunked = {t: [] for t in cfg.offline_temperatures}
    saguaro_parts = {c: [] for c in cfg.saguaro_cs}
    for chunk in track(chunks, "teacher-forced outcome statistics", work="steps"):
        target.reset()
        draft.reset()
        p = target.feed(chunk)
        q = draft.feed(chunk).to(p.device)
        for t in cfg.offline_temperatures:
            chunked[t].append(offline.outcome_prediction(p, q, t, fans))
        for c in cfg.saguaro_cs:
            saguaro_parts[c].append(offline.outcome_prediction(p, q, t_hi, [f_ref], c=c, saguaro_fan=f_ref))
        del p, q
    saguaro = [offline.pooled(saguaro_parts[c], sizes) for c in cfg.saguaro_cs]
    return Outcomes(fans, sizes, chunked, {t: offline.pooled(c, sizes) for t, c in chunked.items()}, saguaro, f_ref)


def _saguaro_steps(out: Outcomes) -> list[bool]:
    """For each step up in ``c``: acceptance fell and bonus hits rose (Saguaro's trade-off)."""
    sag, f = out.saguaro, out.f_ref
    return [(b["acceptance"] < a["acceptance"]) and (b["hit"][f] > a["hit"][f]) for a, b in zip(sag, sag[1:], strict=False)]


def _metrics(cfg, dec: Decoding, exact: Exactness, out: Outcomes, vllm: dict) -> dict[str, float]:
    """Every metric of a seed, the one place their names are written (``vllm``: vLLM's speeds, measured
    in their own processes before ours)."""
    import numpy as np

    summ, tps, tot = dec.summaries, dec.tokens_per_s, dec.totals  # per mode: summary, tokens/s, totals
    m = dict(vllm)
    for b, batch in dec.batches.items():
        if isinstance(batch, dict):  # per mode at batch size b (a string: why it was skipped)
            m.update({f"b{b}_{mode}_tokens_per_s": v["tokens_per_s"] for mode, v in batch.items()})
            for backup in ("jit", "fast"):
                m[f"b{b}_ssd_{backup}_all_hit_step_rate"] = batch[f"ssd_{backup}"]["all_hit_step_rate"]
                m[f"b{b}_ssd_{backup}_hit_rate"] = batch[f"ssd_{backup}"]["hit_rate"]
            m[f"b{b}_fast_over_jit"] = batch["ssd_fast"]["tokens_per_s"] / batch["ssd_jit"]["tokens_per_s"]
    if exact.greedy is not None:
        m["greedy_exact_match"] = sum(exact.greedy) / len(exact.greedy)
    m.update({f"{mode}_tokens_per_s": v for mode, v in tps.items()})
    for mode in ("sd", "ssd_jit", "ssd_fast"):
        m[f"{mode}_tokens_per_round"], m[f"{mode}_acceptance"] = summ[mode]["tokens_per_round"], summ[mode]["acceptance"]
    for mode in ("ssd_jit", "ssd_fast"):
        m.update({f"{mode}_{k}": summ[mode][k] for k in ("hit_rate", "length_hit_rate", "bonus_hit_rate")})
        m[f"{mode}_wait_ms_per_round"] = 1000 * tot[mode].wait_s / max(tot[mode].rounds, 1)
        m[f"{mode}_draft_busy_ms_per_round"] = 1000 * tot[mode].draft_busy_s / max(tot[mode].rounds, 1)
    m["verify_ms_per_round"] = summ["sd"]["verify_ms"]
    m["sd_draft_ms_per_round"] = 1000 * tot["sd"].draft_s / max(tot["sd"].rounds, 1)
    # the paper's framing: SSD gets extra hardware (its draft core) against single-core SD and AR;
    # equal hardware: against SD and AR that use both cores
    m["ssd_over_sd"], m["ssd_over_ar"] = tps[dec.best] / tps["sd"], tps[dec.best] / tps["ar"]
    if "sd_2t" in tps:
        m["ssd_over_sd_equal_cores"] = tps[dec.best] / tps["sd_2t"]
        m["ssd_over_ar_equal_cores"] = tps[dec.best] / tps["ar_2t"]
    m["sd_over_ar"] = tps["sd"] / tps["ar"]
    m["ssd_model_tokens_per_s"] = dec.theorem7["model_tokens_per_s"]
    m["ssd_vs_model"] = tps[dec.best] / m["ssd_model_tokens_per_s"]
    if cfg.vllm and "vllm_sd_tokens_per_s_end_to_end" in m:
        best = tot[dec.best]
        # ours against vLLM: reported, never claimed (engines, not algorithms; the claim uses the official SSD)
        m["ours_ssd_over_vllm_sd"] = best.new_tokens / (best.prefill_s + best.decode_s) / m["vllm_sd_tokens_per_s_end_to_end"]
    if dec.hf_ratios is not None:
        m["sd_vs_hf_assisted"] = float(np.exp(np.mean(np.log(dec.hf_ratios))))
    m["sampling_tv_pass"] = float(all(exact.law_units()))
    m["bonus_hit_temperature_drop"] = out.pooled[out.t_lo]["hit"][out.f_ref] - out.pooled[out.t_hi]["hit"][out.f_ref]
    for t, v in out.pooled.items():
        m[f"miss_exponent_t{_tag(t)}"] = _miss_exponent(out.fans, v)
        m[f"acceptance_t{_tag(t)}"] = v["acceptance"]
        m.update({f"bonus_hit_f{f}_t{_tag(t)}": v["hit"][f] for f in out.fans})
    steps = _saguaro_steps(out)
    m["saguaro_tradeoff"] = float(np.mean(steps)) if steps else float("nan")
    return m


def _miss_exponent(fans: list[int], stats: dict) -> float:
    """The power-law exponent of bonus-token misses against fan-out (``offline.miss_exponent``)."""
    from paper_ssd import offline

    return offline.miss_exponent(fans, stats["hit"])[0]


def _units(dec: Decoding, exact: Exactness, out: Outcomes) -> dict[str, list[float]]:
    """The claims' units, one value each: streams (greedy identity), prompts (Theorem 7, transformers),
    law tests (sampling), held-out chunks (temperature drop; the exponent's jackknife pseudo-values),
    steps up in c (Saguaro)."""
    from paper_ssd import offline

    units = {} if exact.greedy is None else {"greedy_exact_match": exact.greedy}
    units["ssd_vs_model"] = [t["measured_tokens_per_s"] / t["model_tokens_per_s"] for t in dec.theorem7_per_prompt]
    if dec.hf_ratios is not None:
        units["sd_vs_hf_assisted"] = dec.hf_ratios
    units["sampling_tv_pass"] = exact.law_units()
    units["bonus_hit_temperature_drop"] = [lo["hit"][out.f_ref] - hi["hit"][out.f_ref] for lo, hi in
                                           zip(out.chunked[out.t_lo], out.chunked[out.t_hi], strict=True)]
    units[f"miss_exponent_t{_tag(out.t_lo)}"] = offline.jackknife(lambda v: _miss_exponent(out.fans, v),
                                                                  out.chunked[out.t_lo], out.sizes)
    units["saguaro_tradeoff"] = [float(step) for step in _saguaro_steps(out)]
    return units


def _series(cfg, dec: Decoding, out: Outcomes, m: dict) -> dict[str, list]:
    """Bonus hits against fan-out per temperature, Saguaro's acceptance and hits against c, each mode's
    throughput against batch size (batch 1 from the single-prompt runs), and (where decoded) SD's acceptance
    and each SSD backup's hit rate per Spec-Bench category (x: the category's place in Spec-Bench's order)."""
    from paper_ssd.prompts import SPEC_BENCH_CATEGORIES

    series = {f"bonus_hit_t{_tag(t)}": [(f, v["hit"][f]) for f in out.fans] for t, v in out.pooled.items()}
    series["saguaro_acceptance"] = [(c, v["acceptance"]) for c, v in zip(cfg.saguaro_cs, out.saguaro, strict=True)]
    series["saguaro_hit"] = [(c, v["hit"][out.f_ref]) for c, v in zip(cfg.saguaro_cs, out.saguaro, strict=True)]
    for mode in ("ar", "sd", "ssd_jit", "ssd_fast"):
        series[f"batch_{mode}"] = [(1, dec.tokens_per_s[mode])] + [
            (b, m[f"b{b}_{mode}_tokens_per_s"]) for b in cfg.batch_sizes if f"b{b}_{mode}_tokens_per_s" in m]
    if f"official_ssd_k{cfg.k}_tokens_per_s" in m:  # the official engine's K sweep ran
        series["official_ssd_k"] = [(k, m[f"official_ssd_k{k}_tokens_per_s"]) for k in sorted({cfg.k, *cfg.official_k_sweep})]
    for name in ("sd_acceptance", "ssd_jit_hit_rate", "ssd_fast_hit_rate"):
        pts = [(i, m[f"spec_bench_{c}_{name}"]) for i, c in enumerate(SPEC_BENCH_CATEGORIES) if f"spec_bench_{c}_{name}" in m]
        if pts:
            series[f"spec_bench_{name}"] = pts
    return series


def _info(cfg, text, pair: Pair, vllm_facts: dict, dec: Decoding, exact: Exactness, out: Outcomes) -> dict:
    """The seed's record beside its metrics: corpus, pair and prompts, every mode's and batch size's
    summary, the divergences from AR, Theorem 7's terms, the law tests, the outcome statistics."""
    info = {"corpus_sha256": text.sha256, "pair": cfg.pair, **pair.facts, **vllm_facts,
            "batched": {str(b): v for b, v in dec.batches.items()}}
    if exact.divergences is not None:
        info["greedy_divergences"] = exact.divergences
    info.update({"decode": dec.summaries, "best_ssd_backup": dec.best, "theorem7": dec.theorem7})
    if dec.hf_facts is not None:
        info["hf_assisted"] = dec.hf_facts
    info["sampling"] = {"toy_cases_passed": int(sum(exact.toy_pass)), "toy_cases": len(exact.toy_pass), **exact.e2e}
    info["outcome_prediction"] = {str(t): v for t, v in out.pooled.items()}
    info["saguaro"] = [{"c": c, **v} for c, v in zip(cfg.saguaro_cs, out.saguaro, strict=True)]
    return info


@dataclass
class SSDConfig(SuiteConfig):
    # tiny byte-level pair (smoke): trained on stdlib source, cached by config hash
    target_d: int = 64
    target_layers: int = 2
    draft_d: int = 24
    draft_layers: int = 1
    train_bytes: int = 60_000
    train_epochs: int = 4
    prompts: int = 4
    prompt_len: int = 32
    new_tokens: int = 48
    k: int = 3
    fan_out: list[int] = field(default_factory=lambda: [3, 3, 3, 3])
    fan_out_miss: list[int] = field(default_factory=list)
    temperature: float = 0.0  # the speed runs; sampling is tested separately at temperature 1
    sampling_runs: int = 2000  # seeded 2-token generations per mode for the end-to-end law test
    offline_fan_outs: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    offline_temperatures: list[float] = field(default_factory=lambda: [0.0, 0.7, 1.0])
    saguaro_cs: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.2, 0.05])
    offline_chunks: int = 16  # teacher-forced positions: chunks x len tokens of held-out text
    offline_len: int = 128
    greedy_eps: float = 0.0  # fp32: streams must match exactly; bf16 pairs set a logit-gap tolerance
    pair: str = "tiny"  # tiny | qwen2.5-coder
    target_path: str = ""  # explicit model (directory, hub id or GGUF) instead of the pair's default
    draft_path: str = ""
    dtype: str = "bfloat16"
    cache_dir: str = ""
    prompt_set: str = "stdlib"  # stdlib (offline, ships with Python) | paper (HumanEval, Alpaca, GSM8K, UltraFeedback)
    prompts_per_set: int = 128  # prompt_set=paper: the first n of each set (the paper: 128)
    # Spec-Bench (paper_ssd.prompts.spec_bench_prompts): this many questions of each of its six categories
    # (0: none, at most 80) decoded in every mode after the run's prompts, for greedy identity (more units of
    # greedy_exact_match) and per-category acceptance and cache-hit rates (reported, not claimed)
    spec_bench: int = 0
    spec_bench_path: str = ""  # a local question.jsonl; "": the pinned commit's, downloaded once into the cache
    spec_bench_sha256: str = ""  # insist on this hash of the file ("": the hash read is recorded in the run's info)
    target_device: str = "cpu"  # cpu | cuda[:N] | cuda:A-B (layers split over GPUs A..B)
    # (``device`` names where the run's GPU requirements apply: cuda at the full tier; the models go to
    # target_device and draft_device)
    draft_device: str = "cpu"
    batch_sizes: list[int] = field(default_factory=list)  # batched runs beside batch 1 (all modes, both backups)
    vllm: bool = False  # also time vLLM's draft-model SD and AR (where vllm is installed)
    tensor_parallel: int = 4  # vLLM's tensor parallelism for the target
    # our engine's target over this many tensor-parallel ranks (paper_ssd.tp): the GPUs of target_device, or
    # CPU processes with target_device=cpu; 1: one process (a GPU range then splits the layers)
    target_tp: int = 1
    # our engine's models over a static KV cache of this many slots per row (0: dynamic), and a torch.compile
    # mode for each model's forwards of a few tokens (verification, draft steps; reduce-overhead: CUDA graphs),
    # which needs the static cache (paper_ssd.models.session_over); scripts/gpu_ssd.py --compile measures them
    static_cache: int = 0
    target_compile: str = ""
    draft_compile: str = ""
    # the official engine (tanishqkumar/ssd) as a peer, from its own virtualenv's interpreter
    # (paper_ssd.official): AR, SD and SSD on the same prompts and GPUs; the paper's speed claims use it
    official: bool = False
    official_python: str = ""  # "": $PAPERCLUB_OFFICIAL_PYTHON (the CUDA image's)
    # the official SSD at these K besides ``k``, on the first official_sweep_prompts prompts (reported)
    official_k_sweep: list[int] = field(default_factory=list)
    official_sweep_prompts: int = 32


_t = partial(at_tiers, tiers=("small", "full"))
# parameters and vocabulary of the hub pairs' models (their model cards), for the preflight's estimates
HUB_PARAMS = {"llama-3.1-70b-instruct": 70.6e9, "llama-3.2-1b-instruct": 1.24e9, "qwen3-32b": 32.8e9,
              "qwen3-0.6b": 0.6e9}
HUB_VOCAB = {"llama-3.1-70b-instruct": 128_256, "qwen3-32b": 151_936}
# layers x key-value heads x head dimension (their config.json files)
HUB_KV = {"llama-3.1-70b-instruct": 80 * 8 * 128, "llama-3.2-1b-instruct": 16 * 8 * 64, "qwen3-32b": 64 * 8 * 128,
          "qwen3-0.6b": 28 * 8 * 128}


def _spec_bench_need(cfg) -> list:
    """Spec-Bench's question file, where questions are asked for: the given path, or the pinned commit's
    cached here or answering at its URL."""
    from paper_ssd import prompts as sets
    from runners import preflight as pf

    if not cfg.spec_bench:
        return []
    if cfg.spec_bench_path:
        return [pf.present("Spec-Bench's questions (spec_bench_path)", cfg.spec_bench_path)]
    cached = sets.spec_bench_cached(cache_root(cfg.cache_dir) / "ssd").is_file()
    return [pf.fetchable(f"Spec-Bench's questions (commit {sets.SPEC_BENCH_COMMIT[:12]})", cached, sets.spec_bench_url())]


def _graph_note(cfg) -> str:
    """How our engine's models run: eagerly over a dynamic KV cache, or over a static one, compiled or not."""
    if not cfg.static_cache:
        return "Our engine: eager, dynamic KV cache, no CUDA graphs."
    modes = {"target": cfg.target_compile, "draft": cfg.draft_compile}
    return (f"Our engine: static KV cache of {cfg.static_cache} slots per row; " + ", ".join(
        f"{k} {'torch.compile mode ' + v if v else 'eager'}" for k, v in modes.items()) + ".")


def _weight_bytes(model, given: str) -> float:
    """The weights' bytes: a folder's safetensors files, else the hub model's parameters in bf16."""
    files = list(Path(given).glob("*.safetensors")) if given and Path(given).is_dir() else []
    return float(sum(f.stat().st_size for f in files)) if files else HUB_PARAMS[model.name] * 2.0


def _folder_config(given: str) -> dict | None:
    """A model folder's config.json, or None (no folder given, or none there)."""
    import json

    config = Path(given) / "config.json" if given else None
    return json.loads(config.read_text()) if config is not None and config.is_file() else None


def _kv_bytes_per_token(model, given: str, dtype: str) -> float:
    """Keys and values of one token in every layer: from a folder's config.json, else the hub model's card."""
    import torch

    c = _folder_config(given)
    if c is not None:
        head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        kv = c["num_hidden_layers"] * c.get("num_key_value_heads", c["num_attention_heads"]) * head_dim
    else:
        kv = HUB_KV[model.name]
    return 2.0 * kv * getattr(torch, dtype).itemsize


def _vocab(model, given: str) -> int:
    """The vocabulary of a folder's config.json, else the hub model's."""
    c = _folder_config(given)
    return int(c.get("vocab_size", HUB_VOCAB[model.name])) if c is not None else HUB_VOCAB[model.name]



class SSDSuite(Suite):
    name = "ssd"
    version = 1
    config = SSDConfig
    paper = PAPER
    description = "SSD vs speculative decoding vs autoregressive: losslessness, cache hit rates, tokens/s"
    tiers = {
        "smoke": ["batch_sizes=[2]"],
        # Qwen2.5-Coder-1.5B-Instruct target, 0.5B draft (one tokenizer; the shape of the paper's
        # Qwen3-32B / 0.6B pair), bf16, one core each; prompts from stdlib code and docstrings
        "small": ["pair=qwen2.5-coder", "prompts=6", "new_tokens=32", "k=2", "fan_out=[2,2,2]", "greedy_eps=0.25",
                  "offline_chunks=6", "offline_len=160", "offline_fan_outs=[1,2,4,8,16,32]", "batch_sizes=[4]"],
        # the paper's Table 1 setup: Llama-3.1-70B (4 GPUs) / Llama-3.2-1B (a 5th), batch 1, greedy,
        # 512 tokens, the four prompt sets; SSD at K = 6, F = 3 (the authors' logs); batch sweep 2-16
        "full": ["device=cuda", "pair=llama3.1-70b", "prompt_set=paper", "prompts_per_set=128", "new_tokens=512", "k=6",
                 "fan_out=[3,3,3,3,3,3,3]", "target_device=cuda:0-3", "target_tp=4", "draft_device=cuda:4", "official=true", "greedy_eps=0.25",
                 "official_k_sweep=[4,5,7]", "batch_sizes=[2,4,8,16]", "vllm=true", "tensor_parallel=4", "offline_chunks=64",
                 "offline_len=512", "offline_fan_outs=[1,2,4,8,16,32]", "threads=4", "spec_bench=16"],
    }
    # the paper's layout: a 70B target over four 80 GB GPUs, the draft on a fifth
    tier_requires = {"full": frozenset({"gpus>=5", "gpu_mem>=80GB"})}
    default_seeds = {"smoke": 1, "small": 1, "full": 1}
    expected_minutes = {"smoke": 0.5, "small": 11.0}  # 2 cores, once the models are converted (README)
    claims = (
        Claim("greedy_exact_match", "greedy_exact_match", "ge", _t(1.0, tiers=("smoke", "small", "full")),
              paper_value=1.0, source=f"{PAPER}, Sec. 3 (lossless); the authors' reference logs",
              unit="streams", rule="exact",
              description="every (mode, prompt) greedy stream of SD, SSD (both backups) and the batched runs equals "
                          "AR's, on the run's prompts and (where decoded) Spec-Bench's questions"),
        Claim("sampling_tv_pass", "sampling_tv_pass", "ge", _t(1.0, tiers=("smoke", "small", "full")), paper_value=1.0,
              source="official tests/test_verify_distribution.py (TV < max(0.01, 5x noise floor))",
              unit="tests", rule="exact",
              description="every toy verification law (sync, SSD hit, miss with jit and random backups, Saguaro) "
                          "and every end-to-end chi-square / PIT test of SD and SSD sampling passes"),
        # The threshold comes from the research notes' measurement of this pair under this protocol (3 chunks x
        # 160 held-out stdlib tokens, teacher-forced, F = 1-64: r = 0.51 at T = 0), less a margin for the
        # small tier's F <= 32; that the hit rate rises with F at all holds by construction (an invariant).
        Claim("miss_rate_power_law", "miss_exponent_t0", "ge", _t(0.4), scale="linear", unit="chunks",
              source=f"{PAPER}, Definition 11 (1 - p_hit(F) = F^-r); threshold from the research notes' r = 0.51 "
                     "for this pair at T = 0",
              description="r in the greedy miss-rate power law over the offline fan-outs, fitted by least squares "
                          "on the pooled held-out positions; its interval is the jackknife's over the chunks"),
        Claim("bonus_hit_falls_with_temperature", "bonus_hit_temperature_drop", "ge", _t(0.0), unit="chunks",
              source=f"{PAPER}, Figs. 4/12 (hit rates fall as temperature rises)",
              context="the research notes measured F = 1: 0.43 at T = 0 and 0.16 at T = 1 for this pair on a CPU",
              description="P(bonus among F candidates | rejection) at T=0 minus at T=1, F = the run's fan-out, "
                          "per held-out chunk"),
        Claim("saguaro_trades_acceptance_for_hits", "saguaro_tradeoff", "ge", _t(1.0), paper_value=1.0,
              source=f"{PAPER}, Definition 14 / Fig. 5", unit="C steps", rule="exact",
              description="at every step of C (decreasing), acceptance falls and the bonus hit rate rises"),
        Claim("ssd_vs_model", "ssd_vs_model", "ge", _t(0.85), unit="prompts",
              source=f"{PAPER}, Theorem 7 (speedup model)",
              description="measured SSD tokens/s over Theorem 7's prediction from the measured hit rate and "
                          "latencies, per prompt (the faster backup over all prompts)"),
        Claim("ssd_over_sd", "ssd_over_sd", "ge", _t(1.0, tiers=("full",)), paper_value=round(255.8 / 161.8, 2),
              scale="log", source=f"{PAPER}, Table 1 (Llama-3.1-70B / 3.2-1B, batch 1, greedy: SSD 255.8, SD 161.8 tok/s)",
              context="v3 abstract: 30% over SD on average over its setups",
              description="SSD (draft on its own accelerator) over SD; not claimed on CPUs, where one draft "
                          "forward costs ~0.45 of a target forward (the paper's pairs: ~1/70) - reported only"),
        Claim("sd_vs_hf_assisted", "sd_vs_hf_assisted", "ge", _t(1.0), scale="log", unit="prompts",
              applies=(("target_tp", 1),),  # generate() cannot drive a target split over processes
              source="peer comparison: transformers' assisted generation, same pair, prompts, K, greedy",
              description="transformers' assisted generation's seconds over our SD's, per prompt, both timed end "
                          "to end, interleaved prompt by prompt"),
        Claim("official.ssd_over_sd", "official_ssd_over_sd", "ge", _t(1.0, tiers=("full",)),
              scale="log", unit="prompts", applies=(("official", True),),
              source=f"{PAPER}, Table 1 (Llama-3.1-70B on 4 H100s, 1B draft on a fifth, batch 1, greedy)",
              context="the paper's 1.58 is over an open-source engine's SD (K = 5: ssd_over_vllm_sd below), not this "
                      "engine's own; an independent reproduction measured 1.49 for Qwen3-32B against the engine's sync SD",
              description="the official engine's SSD decode tokens/s (prefill excluded, as the paper's tables) over "
                          "its SD's, per prompt (same prompts, GPUs, K)"),
        Claim("official.ssd_over_ar", "official_ssd_over_ar", "ge", _t(1.0, tiers=("full",)), paper_value=4.68,
              scale="log", unit="prompts", applies=(("official", True),),
              source=f"{PAPER}, Table 1 (255.8 over 54.7 tok/s, the mean of four prompt sets)",
              description="the official engine's SSD decode tokens/s over its autoregressive decoding's, per prompt"),
        Claim("official.ssd_vs_model", "official_ssd_vs_model", "ge", _t(0.85, tiers=("full",)), unit="prompts",
              applies=(("official", True),), source=f"{PAPER}, Theorem 7 (speedup model); threshold as ssd_vs_model's",
              description="the official engine's SSD decode tokens/s over Theorem 7's prediction from its SSD run's "
                          "hit rate and accepted lengths after hits and misses, with its SD run's verification and "
                          "drafting latencies on the same prompt and the draft hidden (T_p = 1), per prompt"),
        Claim("ssd_over_vllm_sd", "official_ssd_over_vllm_sd", "ge", _t(1.0, tiers=("full",)), paper_value=1.58,
              scale="log", unit="prompts", version=2,  # v2: the official engine's SSD, not ours, over vLLM's SD
              requires=frozenset({"vllm"}), applies=(("official", True),),
              source=f"{PAPER}, Table 1 (SD column: an open-source engine's draft-model SD, 5 draft tokens)",
              description="the official engine's SSD over vLLM's draft-model speculative decoding (K = 5), end to "
                          "end on both sides, batch 1, per prompt"),
    )

    invariants = (
        Invariant("hit_rate_nondecreasing_in_fan_out", "miss_exponent_t0", "ge", 0.0, tol=1e-9,
                  source="the top-(F+1) candidate sets nest, so the miss rate cannot rise with F and the "
                         "least-squares slope of log miss on log F cannot be positive"),
    )

    def rehearsal(self, cfg):
        """The same models, tokens, K, F and batches; two prompts of each set, two chunks of held-out text,
        one Spec-Bench question of each category."""
        return [f"{k}={min(2, getattr(cfg, k))}" for k in ("prompts_per_set", "prompts", "offline_chunks")] + \
            [f"spec_bench={min(1, cfg.spec_bench)}"]

    def phase_steps(self, cfg):
        """Prompts decoded (every mode; and again for exactness; the official engine's three modes and its K
        sweep's extra runs, in prompt-runs), Spec-Bench's questions decoded, and chunks of held-out text scored."""
        from paper_ssd.prompts import SPEC_BENCH_CATEGORIES

        prompts = cfg.prompts_per_set * 4 if cfg.prompt_set == "paper" else cfg.prompts
        extra_k = len(set(cfg.official_k_sweep) - {cfg.k})
        return {"official_engine": 3 * prompts + extra_k * min(cfg.official_sweep_prompts, prompts), "vllm": prompts,
                "decode": prompts, "exactness": prompts, "spec_bench": len(SPEC_BENCH_CATEGORIES) * cfg.spec_bench,
                "outcome_prediction": cfg.offline_chunks}

    def preflight(self, cfg):
        """A hub pair's weights (a local copy, or a token where the repository is gated), the target's
        weights split over its GPUs with 10% for the KV cache and activations (and, tensor parallel, one GPU
        per rank and the accelerate package), the draft's on its own, and
        the offline statistics of one held-out chunk on the target's first GPU (both models' fp32 logits and
        about six fp64 [tokens, vocabulary] arrays in ``offline.outcome_prediction``), and with
        ``static_cache`` its slots for every row: the target's largest batch; for the draft, that batch, the
        tree's branches at each fan-out (batch x the fan-out's sum, with and without a hit) and the jit
        backup's subsets of missed rows (1 .. batch - 1), each of which its pool keeps
        (``paper_ssd.models.StaticHFSession``). A model given by path counts its safetensors files; a hub
        model its card's parameters in bf16."""
        from paper_ssd import models
        from runners import preflight as pf

        needs = _spec_bench_need(cfg)
        pair = models.PAIRS.get(cfg.pair)
        if not isinstance(pair, tuple) or not isinstance(pair[0], models.HubModel):
            return needs
        from huggingface_hub import try_to_load_from_cache

        needs += [pf.hub_access(m.hub_id, bool(given) or isinstance(try_to_load_from_cache(m.hub_id, "config.json"), str),
                                gated=m.hub_id.startswith("meta-llama/"))
                  for m, given in zip(pair, (cfg.target_path, cfg.draft_path), strict=True)]
        target_gpus = models.parse_devices(cfg.target_device)
        target_b, draft_b = (1.1 * _weight_bytes(m, given) for m, given in zip(pair, (cfg.target_path, cfg.draft_path),
                                                                                strict=True))
        logits = (2 * 4 + 6 * 8.0) * cfg.offline_len * _vocab(pair[0], cfg.target_path)
        rows = max([1, *cfg.batch_sizes])  # a static cache's rows: the target's batch; the draft's, above
        draft_rows = rows * (1 + sum(cfg.fan_out) + sum(cfg.fan_out_miss)) + rows * (rows - 1) // 2
        target_kv, draft_kv = (cfg.static_cache * n * _kv_bytes_per_token(m, given, cfg.dtype)
                               for m, given, n in zip(pair, (cfg.target_path, cfg.draft_path), (rows, draft_rows),
                                                      strict=True))
        needs += [pf.memory("decode (target share)", d, (target_b + target_kv) / len(target_gpus)
                            + (logits if i == 0 else 0)) for i, d in enumerate(target_gpus)]
        needs.append(pf.memory("decode (draft)", cfg.draft_device, draft_b + draft_kv))
        if cfg.official:  # the official engine's own interpreter (its virtualenv)
            python = _official_python(cfg)
            given = bool(python) and Path(python).is_file()
            needs.append(pf.Need("the official engine's interpreter (official_python)", "its virtualenv's python",
                                 python if given else (python or "nothing set"), given))
        if cfg.target_tp > 1:  # transformers loads tensor-parallel shards through accelerate
            import importlib.util

            have = importlib.util.find_spec("accelerate") is not None
            needs.append(pf.Need("the package accelerate (tensor-parallel loading)", "it installed",
                                 "it" if have else "nothing", have))
            if cfg.target_device != "cpu":  # on CPUs the ranks are processes
                needs.append(pf.Need("the target's tensor-parallel GPUs", f"{cfg.target_tp} in target_device",
                                     f"{len(target_gpus)} in {cfg.target_device}", len(target_gpus) == cfg.target_tp))
        return needs

    def preparation(self, cfg, seeds):
        from paper_ssd import models

        if cfg.pair not in models.PAIRS:
            return []
        cache = cache_root(cfg.cache_dir) / "ssd"
        return [Preparation(f"{m.name} weights (assembled and converted)",
                            bool(given) or (cache / "hf" / m.name / "config.json").is_file(), 1.0)
                for m, given in zip(models.PAIRS[cfg.pair], (cfg.target_path, cfg.draft_path), strict=True)]

    def notes(self, cfg, tier):
        spec_bench = [f"Spec-Bench ({cfg.spec_bench_path or 'hemingkx/Spec-Bench at its pinned commit'}): the first "
                      f"{cfg.spec_bench} questions of each of its six categories, first turn only, raw text (Spec-Bench "
                      "itself wraps both MT-Bench turns in Vicuna's chat template), decoded in every mode at batch 1 "
                      "after the run's prompts: their greedy streams are more units of greedy_exact_match; acceptance "
                      "and cache-hit rates per category are reported, not claimed."] if cfg.spec_bench else []
        return self._pair_notes(cfg) + spec_bench

    def _pair_notes(self, cfg):
        batch_note = (f"Batches of {cfg.batch_sizes} (prompts of different lengths decoded together; rolled-back "
                      "slots masked per row) are run in every mode beside batch 1; on a miss the jit backup drafts "
                      "only the rows that missed (the official engine re-drafts the whole batch).") \
            if cfg.batch_sizes else "Batch 1 only."
        if cfg.pair not in ("tiny", "qwen2.5-coder"):
            return [
                f"Pair {cfg.pair} by hub id, {cfg.dtype}: target on {cfg.target_device} "
                + (f"(tensor parallel over {cfg.target_tp} ranks, transformers' plan, one process per GPU driven by "
                   "ours; the paper runs TP = 4 in its own engine), " if cfg.target_tp > 1 else
                   "(layers split across the GPUs in one process: one GPU works at a time; the paper runs TP = 4), ")
                + f"draft on {cfg.draft_device} in its own process. " + _graph_note(cfg),
                f"Prompts: {cfg.prompt_set} ({cfg.prompts_per_set} per set), {cfg.new_tokens} new tokens, K = {cfg.k}, "
                f"fan-out {cfg.fan_out}. {batch_note}",
                "Peer baseline: vLLM draft-model SD (K = 5) and AR with tensor parallelism "
                f"{cfg.tensor_parallel}, end to end, each in its own process before our engines load.",
            ] + ([f"The official engine (tanishqkumar/ssd, from {_official_python(cfg) or 'official_python'}) runs AR, SD "
                  "and SSD on the same prompts and GPUs, each in its own process; the paper's SSD/SD and SSD/AR are "
                  "judged on its decode tokens/s (prefill excluded, as the paper's tables), per prompt. Its synchronous "
                  "SD at temperature > 0 is not exact (its PR #24): sampling is compared only at temperature 0. "
                  "Theorem 7 is set beside its SSD with its SSD run's hit rate and accepted lengths and its SD run's "
                  "verification and drafting latencies (the draft taken as hidden, T_p = 1)"
                  + (f"; its SSD also runs at K = {cfg.official_k_sweep} on the first {cfg.official_sweep_prompts} "
                     "prompts (reported)." if cfg.official_k_sweep else ".")]
                 if cfg.official else [])
        if cfg.pair != "tiny":
            return [
                f"Pair {cfg.pair}: Qwen2.5-Coder-1.5B-Instruct target, 0.5B draft, {cfg.dtype}, assembled from their "
                "PyPI part packages (Q4_K_M / Q5_0 GGUF, dequantized) - the paper: Llama-3.1-70B / 3.2-1B and "
                "Qwen3-32B / 0.6B on H100s.",
                f"{cfg.prompts} prompts from the standard library (function signatures with docstrings; module "
                f"docstrings), {cfg.new_tokens} new tokens, greedy, K = {cfg.k}, fan-out {cfg.fan_out}. SSD: target on "
                "core 0, draft process on core 1, one thread each. SD and AR are measured on one core (the paper's "
                "framing: SSD has extra hardware) and with two threads (equal hardware).",
                "A draft forward costs roughly half a target forward here (the paper's pairs: ~1/70), so the "
                "draft's cache build cannot hide behind verification; SSD/SD is reported, not claimed, and Theorem 7 "
                "is evaluated on the measured latencies beside the measured speed.",
                f"bf16: a greedy stream may leave AR's only where the target's top-2 logit gap is below "
                f"{cfg.greedy_eps} (logged); sampling exactness is tested on the tiny byte pair.",
                batch_note,
                "transformers' assisted generation and our SD are timed end to end, interleaved prompt by prompt "
                "with the order alternating.",
            ]
        return [
            f"Smoke tier: a byte-level pair trained for {cfg.train_epochs} epochs on {cfg.train_bytes} bytes of "
            f"stdlib source: target d_model {cfg.target_d} x {cfg.target_layers} layers, draft d_model "
            f"{cfg.draft_d} x {cfg.draft_layers} (the paper: Llama-3.1-70B / 3.2-1B on 5 H100s).",
            f"{cfg.prompts} prompts of {cfg.prompt_len} bytes from held-out stdlib files, {cfg.new_tokens} new tokens, "
            f"K = {cfg.k}, fan-out {cfg.fan_out}; SSD's draft runs in its own process pinned to core 1, the target "
            "on core 0; SD runs draft and target in one process on one core, AR on one core.",
            "At this size one draft forward costs a large fraction of a target forward and Python overhead "
            "dominates, so tokens/s ratios are reported but not claimed at smoke; the speedup model (Theorem 7) "
            "is evaluated on the measured latencies beside them.",
        ]

    def run(self, cfg: SSDConfig, seed: int, out_dir: Path) -> RunResult:
        import torch

        from paper_infcompute import corpus as corpus_mod

        torch.set_num_threads(cfg.threads)
        laps = Laps()
        cache = cache_root(cfg.cache_dir) / "ssd"
        text = corpus_mod.load(text_spec(cfg))
        tiny = self._tiny_pair(cfg, text, cache)  # the smoke pair, and the end-to-end sampling-law test
        pair = _tiny_prompts(cfg, text, tiny) if cfg.pair == "tiny" else _hf_pair(cfg, seed, text, cache)
        pair = _with_spec_bench(cfg, pair, cache)
        _held_out_chunks(cfg, pair)  # enough held-out text, known before hours of decoding
        laps.done("models_and_prompts")
        vllm, vllm_facts, official = {}, {}, None
        if cfg.official and pair.where:  # before our models take the GPUs; each mode in its own process
            official = _official(cfg, pair)
            laps.done("official_engine")
        vllm_streams: dict[str, list] = {}
        if cfg.vllm and pair.where:  # the same; in its own processes
            vllm = self._vllm(cfg, *pair.where, pair.prompts, vllm_facts, vllm_streams)
            laps.done("vllm")
        target, draft = pair.target.session(), pair.draft.session()
        sb = None
        try:
            dec = laps.run("decode", _decode, cfg, seed, pair, target, draft)
            exact = laps.run("exactness", _exactness, cfg, seed, pair, tiny, text, target, dec)
            if pair.spec_bench:
                sb = laps.run("spec_bench", _spec_bench, cfg, seed, pair, target, draft)
            out = laps.run("outcome_prediction", _outcome_prediction, cfg, pair, target, draft)
        finally:
            getattr(target, "close", lambda: None)()  # a tensor-parallel target's other ranks stop
        exact = _exactness_with(exact, sb)
        metrics, units, info = (_metrics(cfg, dec, exact, out, vllm) | _spec_bench_metrics(sb), _units(dec, exact, out),
                                _info(cfg, text, pair, vllm_facts, dec, exact, out))
        if sb is not None:
            info["spec_bench"] = {**info["spec_bench"], "summaries": sb.summaries()}
        if official is not None:
            vllm_sd = vllm_facts.get("vllm", {}).get("sd") if isinstance(vllm_facts.get("vllm"), dict) else None
            more, per_prompt, info["official_engine"] = _official_metrics(official, dec.streams["ar"], vllm_sd)
            metrics.update(more)
            units.update(per_prompt)
        if vllm_streams and cfg.temperature == 0:  # the three engines' greedy streams, token for token
            info["vllm_greedy_streams"] = _vllm_agreement(dec.streams["ar"], vllm_streams, official)
        return RunResult(metrics=metrics, series=_series(cfg, dec, out, metrics), units=units, info=info)

    @staticmethod
    def _tiny_pair(cfg, text, cache):
        """A byte-level target and a smaller draft trained for seconds on the same bytes (cached)."""
        from paper_infcompute import train as tr
        from paper_infcompute.model import Decoder, ModelConfig
        from paper_ssd.lm import TinySpec, save_tiny

        seq_len = max(128, cfg.prompt_len + cfg.new_tokens + cfg.k + 2)
        specs = []
        for d, layers in ((cfg.target_d, cfg.target_layers), (cfg.draft_d, cfg.draft_layers)):
            run = tr.RunConfig(model=ModelConfig(d_model=d, n_layers=layers, n_heads=max(2, d // 16), seq_len=seq_len),
                               corpus=text_spec(cfg), epochs=cfg.train_epochs, batch_size=32, weight_decay=0.1)
            path = Path(cache) / f"tiny-{run.key()}.pt"
            spec = TinySpec(str(path), Decoder, ModelConfig)
            try:
                spec.session()
            except Exception as exc:  # missing, torn, altered or planted: trained (or taken from its run) again
                if path.is_file():
                    print(f"cache entry {path} does not load ({type(exc).__name__}); saving it again", file=sys.stderr)
                save_tiny(tr.cached_run(run, text, cache)[0], path)
            specs.append(spec)
        return specs[0], specs[1]

    @staticmethod
    def _ar_sd_runs(target, draft, dcfg, units, n_new, label) -> dict[str, tuple]:
        """AR and SD, alternating unit by unit, over ``units`` (prompts, or batches of prompts):
        (Stats per unit, outputs per unit) per mode."""
        from paper_ssd import engine

        stats, outs = {"ar": [], "sd": []}, {"ar": [], "sd": []}
        for unit in track(units, f"AR and SD{label}"):
            runs = {"ar": engine.autoregressive(target, unit, n_new, dcfg.temperature, dcfg.seed),
                    "sd": engine.speculative(target, draft, unit, n_new, dcfg)}
            for mode, (o, st) in runs.items():
                stats[mode].append(st)
                outs[mode].append(o)
        return {m: (stats[m], outs[m]) for m in stats}

    @staticmethod
    def _ssd_runs(target, draft_spec, dcfg, units, n_new, label) -> dict[str, tuple]:
        """SSD with each backup over ``units`` (prompts, or batches of prompts), the draft process
        on core 1 (one process, configured afresh for each backup) and the target on core 0: (Stats per
        unit, outputs per unit) per mode."""
        from paper_ssd import engine

        out = {}
        with engine.DraftProcess(draft_spec, dcfg, core=1) as proc:
            for backup in ("jit", "fast"):
                bcfg = engine.DecodeConfig(**{**dcfg.__dict__, "backup": backup})
                proc.configure(bcfg)
                stats, outs = [], []
                for unit in track(units, f"SSD ({backup} backup){label}, draft on core 1"):
                    o, st = engine.ssd(target, proc, unit, n_new, bcfg, core=0)
                    stats.append(st)
                    outs.append(o)
                out[f"ssd_{backup}"] = (stats, outs)
        return out

    @staticmethod
    def _batch_sweep(cfg, target, draft, draft_spec, dcfg, prompts) -> tuple[dict[int, dict | str], dict[str, list]]:
        """Every mode at each batch size in ``cfg.batch_sizes`` over the first B x (n // B) prompts:
        ({batch size: every mode's summary, or why it was skipped}, {"b{B}_{mode}": streams}). A summary
        has aggregate decode tokens/s, and for SSD the fraction of steps in which every row hit (a step
        with one miss waits for the backup: the paper's p_hit^b argument for the fast backup)."""
        from paper_ssd import engine

        batches, streams = {}, {}
        for b in cfg.batch_sizes:
            if b > len(prompts):
                batches[b] = f"skipped: {len(prompts)} prompts < batch {b}"
                continue
            groups = [prompts[i:i + b] for i in range(0, len(prompts) - b + 1, b)]
            runs = {**SSDSuite._ar_sd_runs(target, draft, dcfg, groups, cfg.new_tokens, f" at batch {b}"),
                    **SSDSuite._ssd_runs(target, draft_spec, dcfg, groups, cfg.new_tokens, f" at batch {b}")}
            batches[b] = {m: engine.Stats.total(stats).summary() for m, (stats, _) in runs.items()}
            streams.update({f"b{b}_{m}": [x for group in per_group for x in group] for m, (_, per_group) in runs.items()})
        return batches, streams

    @staticmethod
    def _vllm(cfg, where_t, where_d, prompts, info, streams) -> dict[str, float]:
        """vLLM autoregressive and draft-model SD (K = 5, the paper's SD baseline) on the same
        prompts, each in a fresh process (so the GPUs are free again for our engines); each mode's
        token streams go to ``streams``."""
        import importlib.util
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from paper_ssd.vllm_baseline import VLLMRun, measure

        if importlib.util.find_spec("vllm") is None:
            info["vllm"] = "skipped: vllm is not installed"
            return {}
        out, info["vllm"] = {}, {}
        for name, run in (("ar", VLLMRun(where_t, tensor_parallel=cfg.tensor_parallel, dtype=cfg.dtype)),
                          ("sd", VLLMRun(where_t, where_d, 5, cfg.tensor_parallel, cfg.dtype))):
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                res = pool.submit(measure, run, prompts, cfg.new_tokens, cfg.temperature).result()
            info["vllm"][name], streams[name] = {k: v for k, v in res.items() if k != "streams"}, res["streams"]
            out[f"vllm_{name}_tokens_per_s_end_to_end"] = res["tokens_per_s_end_to_end"]
        return out

    @staticmethod
    def _hf_assisted(target, draft, prompts, cfg, sd_streams):
        """transformers' assisted generation on the same pair and prompts (greedy, K draft tokens,
        constant schedule) against our SD, both timed end to end (prefill included), interleaved
        prompt by prompt with the order alternating (so drift in machine speed hits both alike):
        (their seconds over ours per prompt, facts for info)."""
        import copy

        import torch

        from paper_ssd import engine

        gen_cfg = copy.deepcopy(target.model.generation_config)
        gen_cfg.update(do_sample=False, max_new_tokens=cfg.new_tokens, min_new_tokens=cfg.new_tokens,
                       num_assistant_tokens=cfg.k, num_assistant_tokens_schedule="constant",
                       assistant_confidence_threshold=0.0)
        dcfg = engine.DecodeConfig(k=cfg.k, temperature=0.0, fan_out=cfg.fan_out)

        def ours(prompt):
            t0 = time.perf_counter()
            engine.speculative(target, draft, prompt, cfg.new_tokens, dcfg)
            return time.perf_counter() - t0, None

        def theirs(prompt):
            t0 = time.perf_counter()
            out = target.model.generate(torch.tensor([prompt], device=target.device), assistant_model=draft.model,
                                        generation_config=gen_cfg)
            return time.perf_counter() - t0, out[0, len(prompt):].tolist()

        ours_s = hf_s = 0.0
        same, ratios = [], []
        for i, (prompt, ref) in enumerate(zip(track(prompts, "transformers assisted vs ours, interleaved"),
                                              sd_streams, strict=True)):
            if i % 2 == 0:
                (a, _), (b, hf_out) = ours(prompt), theirs(prompt)
            else:
                (b, hf_out), (a, _) = theirs(prompt), ours(prompt)
            ours_s, hf_s = ours_s + a, hf_s + b
            ratios.append(b / a)
            same.append(hf_out == ref)
        n = len(prompts) * cfg.new_tokens
        return ratios, {"hf_tokens_per_s_end_to_end": n / hf_s, "ours_tokens_per_s_end_to_end": n / ours_s,
                        "same_stream_as_ours": sum(same), "prompts": len(same)}

    @staticmethod
    def _sampling_law(cfg, tiny, prompt, seed) -> dict[str, float]:
        """p-values of the first generated token (chi-square against the target's law) and of the
        second (randomised PIT against its conditional law, Kolmogorov-Smirnov), for SD and SSD,
        on the tiny pair (thousands of seeded generations)."""
        from paper_ssd import engine, exactness

        target, draft = tiny[0].session(), tiny[1].session()
        out = {}
        scfg = engine.DecodeConfig(k=1, temperature=1.0, fan_out=[2, 2], backup="fast", saguaro_c=0.5)
        with engine.DraftProcess(tiny[1], scfg, core=None) as proc:
            batch = 20  # every row of a batch is an independent generation
            for mode in ("sd", "ssd"):
                samples = []
                for i in track(range(-(-cfg.sampling_runs // batch)), f"sampling law ({mode})"):
                    run_cfg = engine.DecodeConfig(**{**scfg.__dict__, "seed": SAMPLING_RUNS_PER_SEED * seed + i})
                    if mode == "sd":
                        toks, _ = engine.speculative(target, draft, [prompt] * batch, 2, run_cfg)
                    else:
                        toks, _ = engine.ssd(target, proc, [prompt] * batch, 2, run_cfg, core=None)
                    samples += [tuple(t) for t in toks]
                chi2, ks = exactness.two_token_pvalues(target, prompt, samples, seed)
                out[f"{mode}_first_token_chi2_p"], out[f"{mode}_second_token_pit_ks_p"] = chi2, ks
        return out

    def figures(self, results, cfg, out_dir):
        from runners.plotting import FigureWriter, pyplot

        plt = pyplot()
        out = FigureWriter(out_dir)

        r = results[0]
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
        for name, pts in r.series.items():
            if name.startswith("bonus_hit_t"):
                f, h = zip(*pts, strict=True)
                ax.plot(f, h, "o-", label="T = " + name.removeprefix("bonus_hit_t").replace("p", "."))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("fan-out F (bonus candidates per accepted length)")
        ax.set_ylabel("P(bonus among candidates | rejection)")
        ax.set_title("Verification-outcome prediction (teacher-forced)")
        ax.legend(fontsize=8)
        c, acc = zip(*r.series["saguaro_acceptance"], strict=True)
        _, hit = zip(*r.series["saguaro_hit"], strict=True)
        bx.plot(acc, hit, "o-")
        for ci, a, h in zip(c, acc, hit, strict=True):
            bx.annotate(f"C={ci:g}", (a, h), fontsize=8, xytext=(3, 3), textcoords="offset points")
        bx.set_xlabel("acceptance rate")
        bx.set_ylabel("bonus hit rate | rejection")
        bx.set_title("Saguaro sampling: acceptance for hits (T = 1)")
        out.save(fig, "fig-outcome-prediction.png")

        m = r.metrics
        fig, ax = plt.subplots(figsize=(6.5, 4))
        modes = [("AR", "ar"), ("SD", "sd"), ("SSD (jit backup)", "ssd_jit"), ("SSD (random backup)", "ssd_fast")]
        vals = [m[f"{k}_tokens_per_s"] for _, k in modes]
        ax.bar([n for n, _ in modes], vals, color=["C7", "C0", "C2", "C2"])
        ax.axhline(m["ssd_model_tokens_per_s"], color="C3", ls="--", lw=1,
                   label=f"Theorem 7 on measured latencies: {m['ssd_model_tokens_per_s']:.0f} tok/s")
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("decode tokens/s (prefill excluded)")
        ax.set_title(f"Decoding speed, greedy, K = {cfg.k} (tiny pair on CPU cores)")
        ax.legend(fontsize=8)
        out.save(fig, "fig-decode-speed.png")

        if any(len(r.series.get("batch_ar", [])) > 1 for r in results):
            fig, ax = plt.subplots(figsize=(6.5, 4))
            for (label, key), color in zip(modes, ["C7", "C0", "C2", "C1"], strict=True):
                b, v = zip(*r.series[f"batch_{key}"], strict=True)
                ax.plot(b, v, "o-", color=color, label=label)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size (sequences decoded together)")
            ax.set_ylabel("aggregate decode tokens/s")
            ax.set_title("Throughput against batch size (cf. the paper's Figs. 6, 13)")
            ax.legend(fontsize=8)
            out.save(fig, "fig-batch.png")
        if "official_ssd_k" in r.series:
            fig, ax = plt.subplots(figsize=(6.5, 4))
            k, v = zip(*r.series["official_ssd_k"], strict=True)
            ax.plot(k, v, "o-", color="C2")
            ax.set_xlabel("K (speculated tokens per round)")
            ax.set_ylabel("decode tokens/s (prefill excluded)")
            ax.set_title(f"The official engine's SSD against K ({cfg.official_sweep_prompts} prompts, batch 1)")
            out.save(fig, "fig-official-k-sweep.png")
        if "spec_bench_sd_acceptance" in r.series:
            from paper_ssd.prompts import SPEC_BENCH_CATEGORIES

            fig, ax = plt.subplots(figsize=(8, 4))
            names = [("SD acceptance", "sd_acceptance"), ("SSD hit rate (jit backup)", "ssd_jit_hit_rate"),
                     ("SSD hit rate (random backup)", "ssd_fast_hit_rate")]
            for j, (label, key) in enumerate(names):
                x, v = zip(*r.series[f"spec_bench_{key}"], strict=True)
                ax.bar([i + 0.27 * (j - 1) for i in x], v, width=0.27, label=label)
            ax.set_xticks(range(len(SPEC_BENCH_CATEGORIES)), SPEC_BENCH_CATEGORIES, fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("rate")
            ax.set_title(f"Spec-Bench per category ({cfg.spec_bench} questions each, greedy, K = {cfg.k})")
            ax.legend(fontsize=8)
            out.save(fig, "fig-spec-bench.png")
        return out.paths
