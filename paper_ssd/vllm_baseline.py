"""A peer baseline: vLLM's own speculative decoding with a draft model (the paper's SD baseline
runs in the same family of engines), and vLLM autoregressive decoding, timed on the same token
prompts. Runs only where vllm is installed (GPU); the suite skips the claims that need it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class VLLMRun:
    target: str  # hub id or directory
    draft: str = ""  # empty: autoregressive
    k: int = 5  # the paper's SD baseline: 5 draft tokens
    tensor_parallel: int = 1
    dtype: str = "bfloat16"
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.85

    def engine_args(self) -> dict:
        args = {"model": self.target, "tensor_parallel_size": self.tensor_parallel, "dtype": self.dtype,
                "max_model_len": self.max_model_len, "gpu_memory_utilization": self.gpu_memory_utilization,
                "seed": 0}
        if self.draft:
            args["speculative_config"] = {"model": self.draft, "num_speculative_tokens": self.k,
                                          "method": "draft_model"}
        return args


def sampling_args(n_new: int, temperature: float) -> dict:
    """Exactly ``n_new`` tokens per prompt (no early stop), so tokens/s compares like with like."""
    return {"temperature": temperature, "max_tokens": n_new, "min_tokens": n_new, "ignore_eos": True}


def measure(run: VLLMRun, prompts: list[list[int]], n_new: int, temperature: float = 0.0,
            batch: int = 1) -> dict:
    """Decode tokens/s of vLLM on token-id prompts, ``batch`` requests at a time (batch 1 is the
    paper's latency setting), pooled and per call (per prompt at batch 1). Prefill is included: vLLM does
    not report it apart."""
    from vllm import LLM, SamplingParams

    llm = LLM(**run.engine_args())
    params = SamplingParams(**sampling_args(n_new, temperature))
    requests = [{"prompt_token_ids": p} for p in prompts]
    llm.generate(requests[:1], params, use_tqdm=False)  # warm-up: graphs, allocator
    streams, seconds = [], []
    for i in range(0, len(requests), batch):
        t0 = time.perf_counter()
        outs = llm.generate(requests[i:i + batch], params, use_tqdm=False)
        seconds.append(time.perf_counter() - t0)
        streams += [list(o.outputs[0].token_ids) for o in outs]
    n = sum(len(s) for s in streams)
    per_call = [sum(len(s) for s in streams[i:i + batch]) / t for i, t in zip(range(0, len(streams), batch), seconds,
                                                                               strict=True)]
    return {"tokens_per_s_end_to_end": n / sum(seconds), "tokens": n, "seconds": sum(seconds), "streams": streams,
            "per_call_tokens_per_s": per_call}
