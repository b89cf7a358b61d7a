"""The official SSD engine as a peer (paper_ssd.official), against a stand-in of its interface: our token-id
prompts in, each mode in its own process with its own visible GPUs, token ids and the engine's metrics out,
and the paper's speed claims judged on them (passing and failing)."""

from __future__ import annotations

import json
import sys
import textwrap
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")

from paper_ssd import official  # noqa: E402
from runners.claims import evaluate  # noqa: E402
from suites import ssd  # noqa: E402

# the engine's public surface as its bench.py uses it: LLM(model, **kwargs).generate(prompts, params) returns
# ([{"text", "token_ids"}], METRICS), METRICS accumulating over calls; exit() ends the process
STAND_IN = textwrap.dedent('''
    import json, os

    METRICS = {"cache_hits": [], "accepted_suffix_lens_with_recovery": [], "accepted_suffix_lens_on_hit": [],
               "accepted_suffix_lens_on_miss": [], "prefill_total_time": 0, "decode_total_time": 0,
               "prefill_total_tokens": 0, "decode_total_tokens": 0, "target_step_times": [], "target_verify_times": []}
    SECONDS_PER_TOKEN = json.loads(os.environ["STAND_IN_SPEED"])
    VERIFY_S = 0.012  # each round's verification


    class SamplingParams:
        def __init__(self, temperature=0.0, ignore_eos=False, max_new_tokens=64):
            self.max_new_tokens = max_new_tokens


    class LLM:
        def __init__(self, model, **kwargs):
            self.mode = "ssd" if kwargs.get("draft_async") else "sd" if kwargs["speculate"] else "ar"
            with open(os.environ["STAND_IN_LOG"], "a") as fh:
                fh.write(json.dumps({"model": model, "kwargs": kwargs, "visible": os.environ["CUDA_VISIBLE_DEVICES"],
                                     "cuda_home": os.environ.get("CUDA_HOME")}) + "\\n")

        def generate(self, prompts, params, use_tqdm=True):
            outputs = []
            for prompt, p in zip(prompts, params):
                n = p.max_new_tokens
                METRICS["decode_total_tokens"] += n
                METRICS["decode_total_time"] += SECONDS_PER_TOKEN[self.mode] * n
                METRICS["target_step_times"] += [0.01] * (n // 3)
                if self.mode != "ar":  # rounds of 3 tokens
                    METRICS["accepted_suffix_lens_with_recovery"] += [3] * (n // 3)
                    METRICS["target_verify_times"] += [VERIFY_S] * (n // 3)
                if self.mode == "ssd":  # 12 tokens: 4 rounds, one a miss
                    METRICS["cache_hits"] += [1, 1, 0, 1]
                    METRICS["accepted_suffix_lens_on_hit"] += [3, 3, 3]
                    METRICS["accepted_suffix_lens_on_miss"] += [3]
                outputs.append({"text": "", "token_ids": [(sum(prompt) + 7 * i) % 97 for i in range(n)]})
            return outputs, METRICS

        def exit(self, hard=True):
            os._exit(0)
''')


@pytest.fixture
def engine(tmp_path, monkeypatch):
    (tmp_path / "ssd").mkdir()
    (tmp_path / "ssd" / "__init__.py").write_text(STAND_IN)
    for name in ("target", "draft"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "calls.jsonl"))
    cfg = SimpleNamespace(official_python=sys.executable, target_device="cuda:0-3", draft_device="cuda:4", k=6,
                          fan_out=[3] * 7, temperature=0.0, new_tokens=12, official_k_sweep=[],
                          official_sweep_prompts=2)
    prompts = [[5, 6, 7], [1, 2], [40, 41, 42, 43]]
    pair = ssd.Pair(None, None, prompts, [], {}, (str(tmp_path / "target"), str(tmp_path / "draft")))
    return SimpleNamespace(cfg=cfg, pair=pair, log=tmp_path / "calls.jsonl", monkeypatch=monkeypatch)


def claims_on(per_prompt: dict) -> dict:
    return {c.id: evaluate(c, per_prompt[c.metric], "full")["status"] for c in ssd.SSDSuite.claims
            if c.metric.startswith("official_")}


def test_each_mode_runs_in_its_own_process_and_the_speed_claims_are_judged(engine):
    engine.monkeypatch.setenv("STAND_IN_SPEED", json.dumps({"ar": 0.02, "sd": 0.006, "ssd": 0.004}))
    off = ssd._official(engine.cfg, engine.pair)
    calls = [json.loads(line) for line in engine.log.read_text().splitlines()]
    assert [c["visible"] for c in calls] == ["0,1,2,3", "0,1,2,3", "0,1,2,3,4"]  # the draft's GPU joins for SSD
    ar, sd, ssd_call = (c["kwargs"] for c in calls)
    assert not ar["speculate"] and ar["num_gpus"] == 4 and ar["max_num_seqs"] == 1
    assert sd["speculate"] and not sd["draft_async"] and sd["speculate_k"] == 6 and sd["draft"].endswith("draft")
    assert ssd_call["draft_async"] and ssd_call["num_gpus"] == 5 and ssd_call["async_fan_out"] == 3
    assert ssd_call["jit_speculate"]
    # vLLM's SD at batch 1, end to end (prefill included, as the official calls' wall times are)
    vllm_sd = {"per_call_tokens_per_s": [0.8 * x for x in off.summaries["ssd"]["per_prompt_end_to_end_tokens_per_s"]]}
    metrics, per_prompt, info = ssd._official_metrics(off, ours_ar=off.streams["ar"], vllm_sd=vllm_sd)
    assert metrics["official_ssd_over_vllm_sd"] == pytest.approx(1.25)
    assert metrics["official_ssd_over_sd"] == pytest.approx(0.006 / 0.004)
    assert metrics["official_ssd_over_ar"] == pytest.approx(0.02 / 0.004)
    assert metrics["official_sd_acceptance"] == pytest.approx((3 - 1) / 6)  # the engine's own definition
    assert metrics["official_ssd_cache_hit_rate"] == pytest.approx(0.75)
    assert len(per_prompt["official_ssd_over_sd"]) == 3  # one unit per prompt
    same = {"identical": 1.0, "common_prefix": 1.0}
    assert info["greedy_streams_equal"] == {"sd_vs_its_ar": same, "ssd_vs_its_ar": same, "its_ar_vs_ours": same}
    # Theorem 7: p = 3/4, E_hit = E_miss = 3 tokens; SD's round 3 x 6 ms of which 12 ms verifying, so
    # T_b = (18 - 12) / 12; 3 / (12 ms x (3/4 x 1 + 1/4 x (1 + T_b))) against SSD's measured 1 / 4 ms
    model = 3 / (0.012 * (0.75 + 0.25 * (1 + 0.5)))
    assert info["theorem7"][0]["t_backup"] == pytest.approx(0.5) and info["theorem7"][0]["p_hit"] == 0.75
    assert metrics["official_ssd_model_tokens_per_s"] == pytest.approx(model)
    assert metrics["official_ssd_vs_model"] == pytest.approx(250 / model)
    assert claims_on(per_prompt) == {"official.ssd_over_sd": "pass", "official.ssd_over_ar": "pass",
                                     "official.ssd_vs_model": "pass", "ssd_over_vllm_sd": "pass"}


def test_an_ssd_slower_than_sd_or_vllm_fails_the_claims(engine):
    engine.monkeypatch.setenv("STAND_IN_SPEED", json.dumps({"ar": 0.02, "sd": 0.004, "ssd": 0.006}))
    off = ssd._official(engine.cfg, engine.pair)
    vllm_sd = {"per_call_tokens_per_s": [2 * x for x in off.summaries["ssd"]["per_prompt_end_to_end_tokens_per_s"]]}
    metrics, per_prompt, _ = ssd._official_metrics(off, ours_ar=[[0]] * 3, vllm_sd=vllm_sd)
    # SD's rounds are all verification (T_b = 0): the model predicts 3 tokens per 12 ms, SSD makes 1 per 6 ms
    assert metrics["official_ssd_vs_model"] == pytest.approx((1 / 0.006) / (3 / 0.012))
    assert claims_on(per_prompt) == {"official.ssd_over_sd": "fail", "official.ssd_over_ar": "pass",
                                     "official.ssd_vs_model": "fail", "ssd_over_vllm_sd": "fail"}


def test_the_k_sweep_runs_ssd_at_each_k_on_the_first_prompts(engine):
    """... from the CUDA image's interpreter and toolkit where none is configured."""
    engine.monkeypatch.setenv("STAND_IN_SPEED", json.dumps({"ar": 0.02, "sd": 0.006, "ssd": 0.004}))
    engine.monkeypatch.setenv("PAPERCLUB_OFFICIAL_PYTHON", engine.cfg.official_python)
    engine.monkeypatch.setenv("PAPERCLUB_OFFICIAL_CUDA_HOME", "/opt/cuda-12.8")
    engine.cfg.official_python, engine.cfg.official_k_sweep = "", [4, 6, 8]
    off = ssd._official(engine.cfg, engine.pair)
    logged = [json.loads(line) for line in engine.log.read_text().splitlines()]
    assert {c["cuda_home"] for c in logged} == {"/opt/cuda-12.8"}
    calls = [c["kwargs"] for c in logged]
    assert [c.get("speculate_k") for c in calls] == [None, 6, 6, 4, 8] and all(c["draft_async"] for c in calls[2:])
    assert sorted(off.k_sweep) == [4, 6, 8]  # K = 6 from the main run's first two prompts
    assert all(len(v["per_prompt_tokens_per_s"]) == 2 for v in off.k_sweep.values())
    metrics, _, info = ssd._official_metrics(off, ours_ar=off.streams["ar"])
    assert {k: metrics[f"official_ssd_k{k}_tokens_per_s"] for k in (4, 6, 8)} == pytest.approx({4: 250, 6: 250, 8: 250})
    assert set(info["k_sweep"]) == {"4", "6", "8"}


def test_a_run_that_leaves_no_result_is_one_line(tmp_path):
    spec = official.OfficialRun(sys.executable, str(tmp_path), str(tmp_path), "ar", ())  # no `ssd` to import
    with pytest.raises(RuntimeError, match=r"the official engine's ar run left no result \(exit 1\): .*ssd"):
        official.run(spec, [[1, 2]])
    with pytest.raises(ValueError, match="mode 'eagle'"):
        official.OfficialRun(sys.executable, "t", "d", "eagle", ()).llm_kwargs()


def test_the_three_engines_greedy_streams_are_compared_token_for_token():
    ours = [[1, 2, 3, 4], [5, 6, 7, 8]]
    vllm = {"ar": [[1, 2, 3, 4], [5, 6, 0, 8]], "sd": [[1, 2, 3, 4], [5, 6, 0, 8]]}
    off = ssd.Official(streams={"ar": [[1, 9, 3, 4], [5, 6, 0, 8]]})
    agree = ssd._vllm_agreement(ours, vllm, off)
    # the second stream first differs at token 2 of 4: half of it is common
    assert agree["vllm_ar_vs_ours_ar"] == {"identical": 0.5, "common_prefix": (1 + 0.5) / 2}
    assert agree["vllm_sd_vs_vllm_ar"] == {"identical": 1.0, "common_prefix": 1.0}
    assert agree["vllm_ar_vs_official_ar"] == {"identical": 0.5, "common_prefix": (0.25 + 1) / 2}
    assert ssd._agreement([[1, 2]], [[1, 2, 3]]) == {"identical": 0.0, "common_prefix": 2 / 3}
