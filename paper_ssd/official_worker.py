"""Runs inside the official SSD engine's own virtualenv (tanishqkumar/ssd, pinned): one mode over token-id
prompts, one prompt per ``generate`` call after a warm-up, writing each prompt's token ids, wall time and
the engine's own metrics for that call. It imports only the engine and the standard library (our
packages are not installed there).

    python official_worker.py REQUEST.json RESULT.json

REQUEST: {"model", "llm_kwargs", "temperature", "new_tokens", "prompts"}. The engine ends its process
itself when it exits, so the result is written first.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _snapshot(metrics: dict) -> dict:
    return {k: len(v) if isinstance(v, list) else v for k, v in metrics.items()}


def _since(metrics: dict, before: dict) -> dict:
    """What one call added: the new items of each list, the increase of each number."""
    return {k: v[before.get(k, 0):] if isinstance(v, list) else v - before.get(k, 0) for k, v in metrics.items()}


def main(request_path: str, result_path: str) -> None:
    with open(request_path) as fh:
        request = json.load(fh)
    from ssd import LLM, SamplingParams

    llm = LLM(request["model"], **request["llm_kwargs"])
    params = SamplingParams(temperature=request["temperature"], ignore_eos=True, max_new_tokens=request["new_tokens"])
    _, metrics = llm.generate([request["prompts"][0]], [params], use_tqdm=False)  # warm-up: graphs, allocator
    rows = []
    for prompt in request["prompts"]:
        before = _snapshot(metrics)
        t0 = time.perf_counter()
        outputs, metrics = llm.generate([prompt], [params], use_tqdm=False)
        seconds = time.perf_counter() - t0
        rows.append({"token_ids": list(outputs[0]["token_ids"]), "seconds": seconds, "metrics": _since(metrics, before)})
    tmp = f"{result_path}.part"
    with open(tmp, "w") as fh:
        json.dump({"rows": rows}, fh)
    os.replace(tmp, result_path)
    llm.exit(hard=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
