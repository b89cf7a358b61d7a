"""The official SSD engine (tanishqkumar/ssd) as a peer: each mode (AR, SD, SSD) runs in its own process,
from the engine's own virtualenv, with its own visible GPUs (the engine fixes its rendezvous port and
shared-memory name, and ends its process on exit), on our token-id prompts. Returned per prompt: the
token ids, the wall time of its ``generate`` call, and the engine's own metrics for it (accepted lengths,
cache hits, step and verify times). The paper's speed claims are judged on these numbers.

Note the engine's open issue: synchronous SD at temperature > 0 is not exact (its PR #24); sampling
comparisons wait for that fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paper_ssd import theory

WORKER = Path(__file__).with_name("official_worker.py")
MODES = ("ar", "sd", "ssd")


@dataclass(frozen=True)
class OfficialRun:
    python: str  # the engine's interpreter, in its own virtualenv
    target: str  # model directories (the engine loads local checkpoints)
    draft: str
    mode: str  # ar | sd | ssd
    gpus: tuple[int, ...]  # visible GPUs: the target's tensor-parallel ranks, then (ssd) the draft's
    k: int = 6
    fan_out: int = 3
    backup: str = "jit"  # jit | fast
    temperature: float = 0.0
    new_tokens: int = 512
    eager: bool = False  # True: no CUDA graphs
    block_size: int = 256
    max_model_len: int = 8192
    cuda_home: str = ""  # the CUDA toolkit FlashInfer compiles its kernels with, where not the system's

    def llm_kwargs(self) -> dict:
        """The engine's ``LLM`` arguments for this mode (its bench.py's names), batch 1."""
        if self.mode not in MODES:
            raise ValueError(f"official engine mode {self.mode!r}: use one of {', '.join(MODES)}")
        kwargs = {"enforce_eager": self.eager, "num_gpus": len(self.gpus), "kvcache_block_size": self.block_size,
                  "max_num_seqs": 1, "max_model_len": self.max_model_len, "speculate": self.mode != "ar"}
        if self.mode != "ar":
            kwargs.update(draft=self.draft, speculate_k=self.k, draft_async=self.mode == "ssd")
        if self.mode == "ssd":
            kwargs.update(async_fan_out=self.fan_out, jit_speculate=self.backup == "jit")
        return kwargs


def run(spec: OfficialRun, prompts: list[list[int]], timeout_s: float = 7200.0) -> list[dict]:
    """One mode over ``prompts`` in a fresh process: per prompt {token_ids, seconds, metrics}."""
    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({"model": spec.target, "llm_kwargs": spec.llm_kwargs(), "prompts": prompts,
                                       "temperature": spec.temperature, "new_tokens": spec.new_tokens}))
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(map(str, spec.gpus))}
        if spec.cuda_home:
            env.update(CUDA_HOME=spec.cuda_home, PATH=f"{spec.cuda_home}/bin:{env.get('PATH', '')}")
        proc = subprocess.run([spec.python, str(WORKER), str(request), str(result)], env=env, capture_output=True,
                              text=True, timeout=timeout_s)
        if not result.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the official engine's {spec.mode} run left no result (exit {proc.returncode}): {tail[0]}")
        return json.loads(result.read_text())["rows"]


def summary(rows: list[dict], k: int) -> dict:
    """The engine's measures, as its own log computes them: decode tokens per second, prefill excluded (the
    paper's tables; per prompt and pooled), end-to-end tokens per second (each call's wall time), tokens
    per target step, the fraction of speculated tokens accepted, the speculation cache's hit rate (SSD),
    and mean target step and verify times."""
    decoded = [r["metrics"]["decode_total_tokens"] for r in rows]
    decode_s = [r["metrics"]["decode_total_time"] for r in rows]
    pooled = {key: [x for r in rows for x in r["metrics"].get(key, [])]
              for key in ("accepted_suffix_lens_with_recovery", "cache_hits", "target_step_times", "target_verify_times")}
    out = {"tokens_per_s": sum(decoded) / sum(decode_s),
           "per_prompt_tokens_per_s": [t / s for t, s in zip(decoded, decode_s, strict=True)],
           "end_to_end_tokens_per_s": sum(len(r["token_ids"]) for r in rows) / sum(r["seconds"] for r in rows),
           "per_prompt_end_to_end_tokens_per_s": [len(r["token_ids"]) / r["seconds"] for r in rows],
           "target_step_ms": 1000 * float(np.mean(pooled["target_step_times"])) if pooled["target_step_times"] else None}
    accepted = pooled["accepted_suffix_lens_with_recovery"]
    if accepted:
        out["tokens_per_step"] = float(np.mean(accepted))
        out["acceptance"] = (out["tokens_per_step"] - 1) / k
    if pooled["cache_hits"]:
        out["cache_hit_rate"] = float(np.mean(pooled["cache_hits"]))
    if pooled["target_verify_times"]:
        out["verify_ms"] = 1000 * float(np.mean(pooled["target_verify_times"]))
    return out


def ratios(faster: dict, slower: dict) -> list[float]:
    """Per prompt, one mode's tokens per second over another's (the same prompts, in order)."""
    return [a / b for a, b in zip(faster["per_prompt_tokens_per_s"], slower["per_prompt_tokens_per_s"], strict=True)]


def theorem7(ssd_rows: list[dict], sd_rows: list[dict]) -> list[dict]:
    """Theorem 7 per prompt on the engine's own measures, SSD's counts with SD's latencies: from the SSD run,
    the hit rate p and the tokens per round after a hit and after a miss (E_hit, E_miss: its on-hit and
    on-miss accepted lengths, the bonus or recovery token included); from the SD run on the same prompt (the
    same target, draft and K), the mean verification time t_v and T_b, its drafting time per round (round
    minus verification) over t_v, since a just-in-time backup drafts K tokens as SD does; and T_p = 1, the
    draft's cache build hidden behind verification as a separate draft GPU intends (slower drafting only
    lowers the measured speed). Per prompt: the terms, the predicted decode tokens/s
    (``theory.ssd_speedup`` / t_v) and the measured one (decode tokens over decode time, as the engine logs)."""
    out = []
    for ssd, sd in zip(ssd_rows, sd_rows, strict=True):
        m, n = ssd["metrics"], sd["metrics"]
        t_verify = float(np.mean(n["target_verify_times"]))
        sd_round = n["decode_total_time"] / len(n["accepted_suffix_lens_with_recovery"])
        terms = {"p_hit": float(np.mean(m["cache_hits"])),
                 "e_hit": float(np.mean(m["accepted_suffix_lens_on_hit"] or [0.0])),
                 "e_miss": float(np.mean(m["accepted_suffix_lens_on_miss"] or [0.0])),
                 "t_verify_ms": 1000 * t_verify, "t_primary": 1.0, "t_backup": max(sd_round - t_verify, 0.0) / t_verify}
        speedup = theory.ssd_speedup(terms["p_hit"], terms["e_hit"], terms["e_miss"], 1.0, terms["t_backup"])
        out.append({**terms, "model_tokens_per_s": speedup / t_verify,
                    "measured_tokens_per_s": m["decode_total_tokens"] / m["decode_total_time"]})
    return out
